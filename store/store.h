// Store: incidents and their timeline in SQLite (WAL) in the state directory,
// so a restart — including kill -9 — resumes open incidents with their history
// and pages nobody twice.
//
// A file SQLite cannot read (corrupt, not a database) is moved aside as
// `nightshift.db.corrupt-<unix time>` and a fresh one started; the caller is
// told, and logs it. Write errors (disk full) come back as values: the agent
// keeps probing and alerting and reports them.
//
// Thread safety: one thread (the reactor).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "notify/outbox.h"
#include "incidents/silences.h"
#include "nightshift/incident.h"
#include "nightshift/result.h"

struct sqlite3;

namespace nightshift {

class Store {
 public:
  struct Opened {
    std::unique_ptr<Store> store;
    std::string moved_aside;  // non-empty: a corrupt file was kept aside under this path
  };
  // Opens (creating if needed) `<state_dir>/nightshift.db`.
  static Result<Opened> open(const std::string& state_dir);
  ~Store();

  // Saves the incident and queues its notifications in one transaction: both
  // are on disk, or neither.
  Status save(const Incident& incident, const std::vector<OutboxEntry>& notifications = {});
  // Queues notifications that belong to no incident change (renotify, keep-alive).
  Status enqueue(const std::vector<OutboxEntry>& notifications);
  // Open incidents and those resolved within `recent_seconds`. A row that
  // cannot be read (not JSON, not an incident) is skipped, not fatal: it is
  // reported in `skipped` ("incident NS-1: stored body is not JSON") and the
  // others load. An error only when the table itself cannot be read.
  Result<std::vector<Incident>> load(std::int64_t recent_seconds, std::vector<std::string>* skipped = nullptr);
  Status save_silence(const Silence& silence);
  Status delete_silence(const std::string& id);
  // Silences that have not ended by `now`. Like load(): a row that cannot be
  // read is skipped and reported in `skipped`, the others load.
  Result<std::vector<Silence>> load_silences(SystemTime now, std::vector<std::string>* skipped = nullptr);
  Status set_meta(const std::string& key, const std::string& value);
  Result<std::string> get_meta(const std::string& key);

  const std::string& path() const { return path_; }

 private:
  Store(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  Status exec(const char* sql);
  Status save_incident(const Incident& incident);
  sqlite3* db_;
  std::string path_;
};

}  // namespace nightshift
