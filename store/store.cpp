#include "store/store.h"
#include "nightshift/json_text.h"

#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "incidents/incident_json.h"

namespace nightshift {

namespace {
const char kSchema[] =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS incidents ("
    "  id TEXT PRIMARY KEY,"
    "  open INTEGER NOT NULL,"
    "  resolved_unix INTEGER,"
    "  body TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS incidents_open ON incidents(open, resolved_unix);"
    "CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, ends_unix INTEGER NOT NULL, body TEXT NOT NULL);";

std::string message(sqlite3* db, const std::string& what) {
  return what + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
}

// Statement guard.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  ~Stmt() { sqlite3_finalize(s); }
};

Result<sqlite3*> open_checked(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string m = message(db, "open " + path);
    sqlite3_close(db);
    return Error::io(m);
  }
  sqlite3_busy_timeout(db, 2000);
  // quick_check reads every page header: a damaged file fails here, not at the
  // first incident at 03:00.
  Stmt st;
  std::string verdict;
  if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st.s, nullptr) == SQLITE_OK &&
      sqlite3_step(st.s) == SQLITE_ROW) {
    verdict = reinterpret_cast<const char*>(sqlite3_column_text(st.s, 0));
  } else {
    verdict = sqlite3_errmsg(db);
  }
  sqlite3_finalize(st.s);
  st.s = nullptr;
  if (verdict != "ok") {
    sqlite3_close(db);
    return Error::invalid("database " + path + " is damaged: " + verdict);
  }
  return db;
}
}  // namespace

Result<Store::Opened> Store::open(const std::string& state_dir) {
  const std::string path = state_dir + "/nightshift.db";
  Opened out;
  auto db = open_checked(path);
  if (!db.ok() && db.error().code == ErrorCode::kInvalidArgument) {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    out.moved_aside = path + ".corrupt-" + std::to_string(now);
    std::error_code ec;
    std::filesystem::rename(path, out.moved_aside, ec);
    if (ec) return Error::io("cannot move damaged " + path + " aside: " + ec.message());
    for (const char* suffix : {"-wal", "-shm"}) std::filesystem::rename(path + suffix, out.moved_aside + suffix, ec);
    db = open_checked(path);
  }
  if (!db.ok()) return db.error();
  out.store.reset(new Store(*db, path));
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"}) {
    if (Status s = out.store->exec(pragma); !s.ok()) return s.error();
  }
  if (Status s = out.store->exec(kSchema); !s.ok()) return s.error();
  if (Status s = out.store->exec(kOutboxSchema); !s.ok()) return s.error();
  return out;
}

Store::~Store() { sqlite3_close(db_); }

Status Store::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = std::string(sql).substr(0, 40) + ": " + (err ? err : "error");
    sqlite3_free(err);
    return Error::io(m);
  }
  return {};
}

Status Store::save(const Incident& incident, const std::vector<OutboxEntry>& notifications) {
  if (notifications.empty()) return save_incident(incident);
  if (Status s = exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  Status s = save_incident(incident);
  if (s.ok()) s = outbox_insert(db_, notifications);
  if (s.ok()) s = exec("COMMIT");
  if (!s.ok()) (void)exec("ROLLBACK");
  return s;
}

Status Store::enqueue(const std::vector<OutboxEntry>& notifications) {
  if (notifications.empty()) return {};
  if (Status s = exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  Status s = outbox_insert(db_, notifications);
  if (s.ok()) s = exec("COMMIT");
  if (!s.ok()) (void)exec("ROLLBACK");
  return s;
}

Status Store::save_incident(const Incident& incident) {
  Stmt st;
  if (sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO incidents (id, open, resolved_unix, body) VALUES (?, ?, ?, ?)",
                         -1, &st.s, nullptr) != SQLITE_OK) {
    return Error::io(message(db_, "prepare save"));
  }
  const std::string body = json_text(to_json(incident));
  sqlite3_bind_text(st.s, 1, incident.id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st.s, 2, incident.open() ? 1 : 0);
  if (incident.open()) {
    sqlite3_bind_null(st.s, 3);
  } else {
    sqlite3_bind_int64(st.s, 3, std::chrono::duration_cast<std::chrono::seconds>(incident.resolved_at.time_since_epoch()).count());
  }
  sqlite3_bind_text(st.s, 4, body.c_str(), static_cast<int>(body.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(st.s) != SQLITE_DONE) return Error::io(message(db_, "save incident " + incident.id));
  return {};
}

Result<std::vector<Incident>> Store::load(std::int64_t recent_seconds, std::vector<std::string>* skipped) {
  Stmt st;
  if (sqlite3_prepare_v2(db_, "SELECT id, body FROM incidents WHERE open = 1 OR resolved_unix >= ?", -1, &st.s,
                         nullptr) != SQLITE_OK) {
    return Error::io(message(db_, "prepare load"));
  }
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  sqlite3_bind_int64(st.s, 1, now - recent_seconds);
  std::vector<Incident> out;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    const std::string id = reinterpret_cast<const char*>(sqlite3_column_text(st.s, 0));
    const char* body = reinterpret_cast<const char*>(sqlite3_column_text(st.s, 1));
    // One damaged row must not cost the others: skip it and say which.
    auto j = nlohmann::json::parse(body ? body : "", nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      if (skipped) skipped->push_back("incident " + id + ": stored body is not JSON");
      continue;
    }
    auto inc = incident_from_json(j);
    if (!inc.ok()) {
      if (skipped) skipped->push_back("incident " + id + ": " + inc.error().message);
      continue;
    }
    out.push_back(std::move(inc.value()));
  }
  if (rc != SQLITE_DONE) return Error::io(message(db_, "load incidents"));
  return out;
}

Status Store::save_silence(const Silence& silence) {
  Stmt st;
  if (sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO silences (id, ends_unix, body) VALUES (?, ?, ?)", -1, &st.s,
                         nullptr) != SQLITE_OK) {
    return Error::io(message(db_, "prepare silence"));
  }
  const std::string body = json_text(to_json(silence));
  sqlite3_bind_text(st.s, 1, silence.id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st.s, 2, std::chrono::duration_cast<std::chrono::seconds>(silence.ends_at.time_since_epoch()).count());
  sqlite3_bind_text(st.s, 3, body.c_str(), static_cast<int>(body.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(st.s) != SQLITE_DONE) return Error::io(message(db_, "save silence " + silence.id));
  return {};
}

Status Store::delete_silence(const std::string& id) {
  Stmt st;
  if (sqlite3_prepare_v2(db_, "DELETE FROM silences WHERE id = ?", -1, &st.s, nullptr) != SQLITE_OK) {
    return Error::io(message(db_, "prepare delete silence"));
  }
  sqlite3_bind_text(st.s, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st.s) != SQLITE_DONE) return Error::io(message(db_, "delete silence " + id));
  return {};
}

Result<std::vector<Silence>> Store::load_silences(SystemTime now, std::vector<std::string>* skipped) {
  Stmt st;
  if (sqlite3_prepare_v2(db_, "SELECT id, body FROM silences WHERE ends_unix >= ?", -1, &st.s, nullptr) != SQLITE_OK) {
    return Error::io(message(db_, "prepare load silences"));
  }
  sqlite3_bind_int64(st.s, 1, std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
  std::vector<Silence> out;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    const std::string id = reinterpret_cast<const char*>(sqlite3_column_text(st.s, 0));
    const char* body = reinterpret_cast<const char*>(sqlite3_column_text(st.s, 1));
    auto j = nlohmann::json::parse(body ? body : "", nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      if (skipped) skipped->push_back("silence " + id + ": stored body is not JSON");
      continue;
    }
    // Parsed as of its creation, so a silence that started long ago still loads.
    auto created = j.is_object() && j.contains("created_at") && j["created_at"].is_string()
                       ? parse_time(j["created_at"].get<std::string>())
                       : Result<SystemTime>(now);
    auto s = silence_from_json(j, created.ok() ? *created : now);
    if (!s.ok()) {
      if (skipped) skipped->push_back("silence " + id + ": " + s.error().message);
      continue;
    }
    out.push_back(std::move(s.value()));
  }
  if (rc != SQLITE_DONE) return Error::io(message(db_, "load silences"));
  return out;
}

Status Store::set_meta(const std::string& key, const std::string& value) {
  Stmt st;
  if (sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", -1, &st.s, nullptr) != SQLITE_OK) {
    return Error::io(message(db_, "prepare meta"));
  }
  sqlite3_bind_text(st.s, 1, key.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 2, value.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st.s) != SQLITE_DONE) return Error::io(message(db_, "save " + key));
  return {};
}

Result<std::string> Store::get_meta(const std::string& key) {
  Stmt st;
  if (sqlite3_prepare_v2(db_, "SELECT value FROM meta WHERE key = ?", -1, &st.s, nullptr) != SQLITE_OK) {
    return Error::io(message(db_, "prepare meta"));
  }
  sqlite3_bind_text(st.s, 1, key.c_str(), -1, SQLITE_TRANSIENT);
  const int rc = sqlite3_step(st.s);
  if (rc == SQLITE_ROW) return std::string(reinterpret_cast<const char*>(sqlite3_column_text(st.s, 0)));
  if (rc == SQLITE_DONE) return Error::not_found(key);
  return Error::io(message(db_, "read " + key));
}

}  // namespace nightshift
