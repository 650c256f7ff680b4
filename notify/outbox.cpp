#include "notify/outbox.h"

#include <sqlite3.h>

#include <functional>

namespace nightshift {

const char kOutboxSchema[] =
    "CREATE TABLE IF NOT EXISTS outbox ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  sink TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  incident TEXT NOT NULL,"
    "  event TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_ms INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT NOT NULL DEFAULT '',"
    "  state TEXT NOT NULL DEFAULT 'pending',"  // pending, delivered, dead
    "  done_ms INTEGER,"
    "  UNIQUE (sink, key));"
    "CREATE INDEX IF NOT EXISTS outbox_state ON outbox(state, sink, seq);";

namespace {
struct Stmt {
  sqlite3_stmt* s = nullptr;
  ~Stmt() { sqlite3_finalize(s); }
};

std::string message(sqlite3* db, const std::string& what) { return what + ": " + sqlite3_errmsg(db); }

std::string text(sqlite3_stmt* s, int col) {
  const unsigned char* t = sqlite3_column_text(s, col);
  return t ? reinterpret_cast<const char*>(t) : "";
}

Status run(sqlite3* db, const char* sql, const std::string& what,
           const std::function<void(sqlite3_stmt*)>& bind) {
  Stmt st;
  if (sqlite3_prepare_v2(db, sql, -1, &st.s, nullptr) != SQLITE_OK) return Error::io(message(db, "prepare " + what));
  bind(st.s);
  if (sqlite3_step(st.s) != SQLITE_DONE) return Error::io(message(db, what));
  return {};
}
}  // namespace

Status outbox_insert(sqlite3* db, const std::vector<OutboxEntry>& entries) {
  static const char kInsert[] =
      "INSERT OR IGNORE INTO outbox (sink, key, incident, event, body, created_ms, next_attempt_ms) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)";
  static const char kInsertCoalesced[] =
      "INSERT OR IGNORE INTO outbox (sink, key, incident, event, body, created_ms, next_attempt_ms) "
      "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6 WHERE NOT EXISTS "
      "(SELECT 1 FROM outbox WHERE state = 'pending' AND sink = ?1 AND incident = ?3)";
  for (const auto& e : entries) {
    Status s = run(db, e.coalesce ? kInsertCoalesced : kInsert, "queue notification " + e.key, [&](sqlite3_stmt* st) {
      sqlite3_bind_text(st, 1, e.sink.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 2, e.key.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 3, e.incident.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 4, e.event.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 5, e.body.c_str(), static_cast<int>(e.body.size()), SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 6, e.created_ms);
    });
    if (!s.ok()) return s;
  }
  return {};
}

Result<std::unique_ptr<Outbox>> Outbox::open(const std::string& db_path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    std::string m = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Error::io("open " + db_path + ": " + m);
  }
  sqlite3_busy_timeout(db, 5000);
  for (const char* sql : {"PRAGMA synchronous=FULL", kOutboxSchema}) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string m = err ? err : "error";
      sqlite3_free(err);
      sqlite3_close(db);
      return Error::io("outbox schema: " + m);
    }
  }
  return std::unique_ptr<Outbox>(new Outbox(db));
}

Outbox::~Outbox() { sqlite3_close(db_); }

Result<std::vector<OutboxEntry>> Outbox::heads() {
  Stmt st;
  const char* sql =
      "SELECT seq, sink, key, incident, event, body, created_ms, attempts, next_attempt_ms, last_error FROM outbox "
      "WHERE seq IN (SELECT MIN(seq) FROM outbox WHERE state = 'pending' GROUP BY sink) ORDER BY seq";
  if (sqlite3_prepare_v2(db_, sql, -1, &st.s, nullptr) != SQLITE_OK) return Error::io(message(db_, "prepare heads"));
  std::vector<OutboxEntry> out;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    OutboxEntry e;
    e.seq = sqlite3_column_int64(st.s, 0);
    e.sink = text(st.s, 1);
    e.key = text(st.s, 2);
    e.incident = text(st.s, 3);
    e.event = text(st.s, 4);
    e.body = text(st.s, 5);
    e.created_ms = sqlite3_column_int64(st.s, 6);
    e.attempts = sqlite3_column_int(st.s, 7);
    e.next_attempt_ms = sqlite3_column_int64(st.s, 8);
    e.last_error = text(st.s, 9);
    out.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return Error::io(message(db_, "read outbox"));
  return out;
}

Status Outbox::delivered(std::int64_t seq, std::int64_t now_ms) {
  return run(db_, "UPDATE outbox SET state = 'delivered', done_ms = ?2, attempts = attempts + 1 WHERE seq = ?1",
             "mark delivered", [&](sqlite3_stmt* st) {
               sqlite3_bind_int64(st, 1, seq);
               sqlite3_bind_int64(st, 2, now_ms);
             });
}

Status Outbox::retry_later(std::int64_t seq, int attempts, std::int64_t next_attempt_ms, const std::string& error) {
  return run(db_, "UPDATE outbox SET attempts = ?2, next_attempt_ms = ?3, last_error = ?4 WHERE seq = ?1",
             "schedule retry", [&](sqlite3_stmt* st) {
               sqlite3_bind_int64(st, 1, seq);
               sqlite3_bind_int(st, 2, attempts);
               sqlite3_bind_int64(st, 3, next_attempt_ms);
               sqlite3_bind_text(st, 4, error.c_str(), -1, SQLITE_TRANSIENT);
             });
}

Status Outbox::dead_letter(std::int64_t seq, std::int64_t now_ms, const std::string& error) {
  return run(db_,
             "UPDATE outbox SET state = 'dead', done_ms = ?2, last_error = ?3, attempts = attempts + 1 WHERE seq = ?1",
             "dead-letter", [&](sqlite3_stmt* st) {
               sqlite3_bind_int64(st, 1, seq);
               sqlite3_bind_int64(st, 2, now_ms);
               sqlite3_bind_text(st, 3, error.c_str(), -1, SQLITE_TRANSIENT);
             });
}

Result<std::map<std::string, Outbox::Counts>> Outbox::counts() {
  Stmt st;
  const char* sql =
      "SELECT sink, SUM(state = 'pending'), SUM(state = 'dead'), MIN(CASE WHEN state = 'pending' THEN created_ms END) "
      "FROM outbox GROUP BY sink";
  if (sqlite3_prepare_v2(db_, sql, -1, &st.s, nullptr) != SQLITE_OK) return Error::io(message(db_, "prepare counts"));
  std::map<std::string, Counts> out;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    Counts& c = out[text(st.s, 0)];
    c.pending = sqlite3_column_int64(st.s, 1);
    c.dead = sqlite3_column_int64(st.s, 2);
    c.oldest_pending_ms = sqlite3_column_int64(st.s, 3);
  }
  if (rc != SQLITE_DONE) return Error::io(message(db_, "count outbox"));
  return out;
}

Result<std::vector<Outbox::DeadLetter>> Outbox::dead_letters(int limit) {
  Stmt st;
  const char* sql =
      "SELECT sink, key, incident, event, last_error, created_ms, done_ms, attempts FROM outbox "
      "WHERE state = 'dead' ORDER BY seq DESC LIMIT ?";
  if (sqlite3_prepare_v2(db_, sql, -1, &st.s, nullptr) != SQLITE_OK) return Error::io(message(db_, "prepare dead"));
  sqlite3_bind_int(st.s, 1, limit);
  std::vector<DeadLetter> out;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    out.push_back({text(st.s, 0), text(st.s, 1), text(st.s, 2), text(st.s, 3), text(st.s, 4),
                   sqlite3_column_int64(st.s, 5), sqlite3_column_int64(st.s, 6), sqlite3_column_int(st.s, 7)});
  }
  if (rc != SQLITE_DONE) return Error::io(message(db_, "read dead letters"));
  return out;
}

Status Outbox::prune(std::int64_t before_ms) {
  return run(db_, "DELETE FROM outbox WHERE state != 'pending' AND done_ms < ?1", "prune outbox",
             [&](sqlite3_stmt* st) { sqlite3_bind_int64(st, 1, before_ms); });
}

}  // namespace nightshift
