// Outbox: every notification is written here (SQLite, in the state database)
// before any attempt to send it, so a crash, a restart or an endpoint that is
// down for hours loses nothing.
//
// Rows are appended by the reactor thread in the same transaction as the
// incident change they announce (Store::save); the notifier thread reads and
// updates them through its own connection. Per sink, rows are delivered in
// `seq` order, one at a time: a resolve never overtakes its trigger. A row is
// pending until delivered, or dead-lettered (a permanent 4xx, or undelivered
// past the policy's dead_after).
//
// Thread safety: one Outbox per thread (each has its own SQLite connection).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nightshift/result.h"

struct sqlite3;

namespace nightshift {

struct OutboxEntry {
  std::int64_t seq = 0;  // assigned at insert; the delivery order within a sink
  std::string sink;
  std::string key;  // idempotency key, unique within the sink, stable across retries and restarts
  std::string incident;
  std::string event;
  std::string body;  // rendered payload; never holds a secret
  std::int64_t created_ms = 0;  // unix ms
  int attempts = 0;
  std::int64_t next_attempt_ms = 0;
  std::string last_error;
  // A keep-alive (Alertmanager refresh): skipped when the sink already has a
  // pending row for the incident.
  bool coalesce = false;
};

// The outbox table, created with the store's schema.
extern const char kOutboxSchema[];
// Appends rows inside the caller's transaction; a row whose (sink, key)
// exists already is skipped. Used by Store::save.
Status outbox_insert(sqlite3* db, const std::vector<OutboxEntry>& entries);

// What the notifier reads and marks: the seam between delivery and storage.
// Outbox (SQLite) is the implementation; tests wrap one to fail on purpose
// between "sent" and "marked delivered" (tests/integration/outbox_fault_test.cpp).
class OutboxQueue {
 public:
  virtual ~OutboxQueue() = default;

  // Per sink, the oldest pending row (the only one that may be sent now).
  virtual Result<std::vector<OutboxEntry>> heads() = 0;
  virtual Status delivered(std::int64_t seq, std::int64_t now_ms) = 0;
  virtual Status retry_later(std::int64_t seq, int attempts, std::int64_t next_attempt_ms,
                             const std::string& error) = 0;
  virtual Status dead_letter(std::int64_t seq, std::int64_t now_ms, const std::string& error) = 0;

  struct Counts {
    std::int64_t pending = 0;
    std::int64_t dead = 0;
    std::int64_t oldest_pending_ms = 0;  // created_ms of the oldest pending row; 0: none
  };
  virtual Result<std::map<std::string, Counts>> counts() = 0;
  // Forgets delivered and dead rows older than `before_ms`: the table stays small.
  virtual Status prune(std::int64_t before_ms) = 0;
};

class Outbox final : public OutboxQueue {
 public:
  static Result<std::unique_ptr<Outbox>> open(const std::string& db_path);
  ~Outbox() override;

  // OutboxQueue
  Result<std::vector<OutboxEntry>> heads() override;
  Status delivered(std::int64_t seq, std::int64_t now_ms) override;
  Status retry_later(std::int64_t seq, int attempts, std::int64_t next_attempt_ms, const std::string& error) override;
  Status dead_letter(std::int64_t seq, std::int64_t now_ms, const std::string& error) override;
  Result<std::map<std::string, Counts>> counts() override;
  Status prune(std::int64_t before_ms) override;

  struct DeadLetter {
    std::string sink, key, incident, event, error;
    std::int64_t created_ms = 0, dead_ms = 0;
    int attempts = 0;
  };
  Result<std::vector<DeadLetter>> dead_letters(int limit);

 private:
  explicit Outbox(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

}  // namespace nightshift
