// Store on a real SQLite file in a temporary directory.
#include "store/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>

#include <filesystem>
#include <fstream>

#include "incidents/incident_json.h"
#include "incidents/silences.h"

namespace nightshift {
namespace {

using namespace std::chrono_literals;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nightshift-store-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static Incident sample_incident(const std::string& id, bool open) {
    const SystemTime t = parse_time("2026-11-24T03:12:45.120Z").value();
    Incident inc;
    inc.id = id;
    inc.title = "group=core site=fra: 2 targets affected";
    inc.severity = Severity::kCritical;
    inc.scope = {{"site", "fra"}, {"group", "core"}};
    inc.status = open ? IncidentStatus::kAcknowledged : IncidentStatus::kResolved;
    inc.impacted = {{"r1", "icmp", "target_down", Severity::kCritical, "r1 unreachable: 3 failed runs in a row", "", t,
                     true, "consecutive_failures >= 3 (consecutive_failures=3)"},
                    {"sw1", "icmp", "target_down", Severity::kCritical, "x \"quoted\"\n", "r1", t + 2s, false, ""}};
    inc.timeline = {{t, "declared", "declared: r1", false, ""}, {t + 5min, "note", "crew on site", true, "alice"}};
    inc.started_at = t - 30s;
    inc.declared_at = t;
    inc.acknowledged_at = t + 1min;
    inc.acknowledged_by = "alice";
    inc.next_update_due = t + 30min;
    if (!open) inc.resolved_at = std::chrono::system_clock::now();
    return inc;
  }

  std::string dir_;
};

TEST_F(StoreTest, IncidentsSurviveCloseAndReopen) {
  const Incident open_inc = sample_incident("NS-20261124-0001", true);
  const Incident resolved = sample_incident("NS-20261124-0002", false);
  {
    auto s = Store::open(dir_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_TRUE(s->moved_aside.empty());
    ASSERT_TRUE(s->store->save(open_inc).ok());
    ASSERT_TRUE(s->store->save(resolved).ok());
    ASSERT_TRUE(s->store->set_meta("next_sequence", "3").ok());
  }
  auto s = Store::open(dir_);
  ASSERT_TRUE(s.ok());
  auto loaded = s->store->load(3600);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded->size(), 2u);
  const Incident& got = loaded->front().id == open_inc.id ? loaded->front() : loaded->back();
  EXPECT_EQ(to_json(got), to_json(open_inc)) << "every field round-trips";
  EXPECT_EQ(s->store->get_meta("next_sequence").value(), "3");
  EXPECT_EQ(s->store->get_meta("missing").error().code, ErrorCode::kNotFound);
}

TEST_F(StoreTest, TheFlappingMarkSurvivesARestartAndOldRowsLoadWithoutIt) {
  Incident flapping = sample_incident("NS-20261124-0001", true);
  flapping.flapping = true;
  flapping.flapping_since = flapping.declared_at + 20s;
  {
    auto s = Store::open(dir_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    ASSERT_TRUE(s->store->save(flapping).ok());
  }
  // A row written before incidents had the mark: its body has no such keys.
  nlohmann::json old_body = to_json(sample_incident("NS-20261124-0002", true));
  old_body.erase("flapping");
  old_body.erase("flapping_since");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/nightshift.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO incidents (id, open, resolved_unix, body) VALUES (?, 1, NULL, ?)", -1,
                               &st, nullptr),
            SQLITE_OK);
  const std::string body = old_body.dump();
  sqlite3_bind_text(st, 1, "NS-20261124-0002", -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, body.c_str(), -1, SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(st), SQLITE_DONE) << sqlite3_errmsg(db);
  sqlite3_finalize(st);
  sqlite3_close(db);

  auto s = Store::open(dir_);
  ASSERT_TRUE(s.ok());
  std::vector<std::string> skipped;
  auto loaded = s->store->load(3600, &skipped);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_TRUE(skipped.empty()) << skipped.front();
  ASSERT_EQ(loaded->size(), 2u);
  for (const auto& inc : *loaded) {
    if (inc.id == flapping.id) {
      EXPECT_TRUE(inc.flapping);
      EXPECT_EQ(inc.flapping_since, flapping.flapping_since);
      EXPECT_EQ(to_json(inc), to_json(flapping));
    } else {
      EXPECT_FALSE(inc.flapping);
      EXPECT_EQ(inc.flapping_since, SystemTime{});
    }
  }
}

TEST_F(StoreTest, LongResolvedIncidentsAreNotLoaded) {
  auto s = Store::open(dir_);
  ASSERT_TRUE(s.ok());
  Incident old = sample_incident("NS-1", false);
  old.resolved_at = std::chrono::system_clock::now() - 48h;
  ASSERT_TRUE(s->store->save(old).ok());
  ASSERT_TRUE(s->store->save(sample_incident("NS-2", true)).ok());
  auto loaded = s->store->load(24 * 3600);
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ(loaded->front().id, "NS-2");
}

TEST_F(StoreTest, SavingAgainReplaces) {
  auto s = Store::open(dir_);
  ASSERT_TRUE(s.ok());
  Incident inc = sample_incident("NS-1", true);
  ASSERT_TRUE(s->store->save(inc).ok());
  inc.status = IncidentStatus::kResolved;
  inc.resolved_at = std::chrono::system_clock::now();
  ASSERT_TRUE(s->store->save(inc).ok());
  auto loaded = s->store->load(3600);
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ(loaded->front().status, IncidentStatus::kResolved);
}

TEST_F(StoreTest, ACorruptFileIsKeptAsideAndAFreshOneStarted) {
  {
    std::ofstream f(dir_ + "/nightshift.db", std::ios::binary);
    f << std::string("SQLite format 3") + std::string(1, '\0') + std::string(4000, 'x');
  }
  auto s = Store::open(dir_);
  ASSERT_TRUE(s.ok()) << s.error().message;
  ASSERT_FALSE(s->moved_aside.empty());
  EXPECT_TRUE(std::filesystem::exists(s->moved_aside));
  EXPECT_EQ(std::filesystem::file_size(s->moved_aside), 4016u) << "the damaged file is kept as it was";
  EXPECT_TRUE(s->store->save(sample_incident("NS-1", true)).ok());
  EXPECT_EQ(s->store->load(60)->size(), 1u);
}

// A bad row costs only itself: the other incidents load, and the bad ones are
// named (the agent logs them) instead of the agent starting with no incidents.
TEST_F(StoreTest, BadIncidentRowsAreSkippedAndReportedNotFatal) {
  {
    auto s = Store::open(dir_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    ASSERT_TRUE(s->store->save(sample_incident("NS-20261124-0001", true)).ok());
    ASSERT_TRUE(s->store->save(sample_incident("NS-20261124-0004", true)).ok());
  }
  // Planted with SQLite itself, as a damaged or foreign write would leave them.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/nightshift.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "INSERT INTO incidents (id, open, resolved_unix, body) VALUES "
                         "('NS-20261124-0002', 1, NULL, '{not json'),"
                         "('NS-20261124-0003', 1, NULL, '{\"id\": 3}')",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);

  auto s = Store::open(dir_);
  ASSERT_TRUE(s.ok()) << s.error().message;
  std::vector<std::string> skipped;
  auto loaded = s->store->load(3600, &skipped);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  std::vector<std::string> ids;
  for (const auto& inc : *loaded) ids.push_back(inc.id);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"NS-20261124-0001", "NS-20261124-0004"}));
  std::sort(skipped.begin(), skipped.end());
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_EQ(skipped[0], "incident NS-20261124-0002: stored body is not JSON");
  EXPECT_EQ(skipped[1].rfind("incident NS-20261124-0003: ", 0), 0u) << skipped[1];
  // Without a list to report into, still skipped, still not fatal.
  auto quiet = s->store->load(3600);
  ASSERT_TRUE(quiet.ok());
  EXPECT_EQ(quiet->size(), 2u);
}

TEST_F(StoreTest, BadSilenceRowsAreSkippedAndReportedNotFatal) {
  const SystemTime now = std::chrono::system_clock::now();
  {
    auto s = Store::open(dir_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    Silence good;
    good.id = "good";
    good.matchers = {parse_matcher("site=fra").value()};
    good.starts_at = now - 1min;
    good.ends_at = now + 1h;
    good.created_at = now - 1min;
    good.author = "alice";
    good.comment = "maintenance";
    ASSERT_TRUE(s->store->save_silence(good).ok());
  }
  const auto ends = std::chrono::duration_cast<std::chrono::seconds>((now + 1h).time_since_epoch()).count();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/nightshift.db").c_str(), &db), SQLITE_OK);
  const std::string plant = "INSERT INTO silences (id, ends_unix, body) VALUES ('torn', " + std::to_string(ends) +
                            ", '{\"matchers\": [\"site'), ('badmatcher', " + std::to_string(ends) +
                            ", '{\"matchers\": [\"site=~(\"]}')";
  ASSERT_EQ(sqlite3_exec(db, plant.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);

  auto s = Store::open(dir_);
  ASSERT_TRUE(s.ok()) << s.error().message;
  std::vector<std::string> skipped;
  auto loaded = s->store->load_silences(now, &skipped);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].id, "good");
  EXPECT_EQ((*loaded)[0].comment, "maintenance");
  std::sort(skipped.begin(), skipped.end());
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_EQ(skipped[0].rfind("silence badmatcher: ", 0), 0u) << skipped[0];
  EXPECT_EQ(skipped[1], "silence torn: stored body is not JSON");
}

TEST_F(StoreTest, BytesThatAreNotUtf8AreStoredReplacedNotThrown) {
  auto s = Store::open(dir_);
  ASSERT_TRUE(s.ok()) << s.error().message;
  Incident inc = sample_incident("NS-20261124-0009", true);
  inc.impacted[0].summary = std::string("banner \xff\xfe\x80 from a device");
  ASSERT_TRUE(s->store->save(inc).ok());
  auto loaded = s->store->load(3600);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].impacted[0].summary, "banner \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd from a device");
}

TEST_F(StoreTest, AnUnwritableDirectoryIsAnError) {
  auto s = Store::open(dir_ + "/does/not/exist");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("nightshift.db"), std::string::npos) << s.error().message;
}

TEST(IncidentJsonTest, TimesAreRfc3339WithMilliseconds) {
  const auto t = parse_time("2026-11-24T03:12:45.120Z");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(format_time(*t), "2026-11-24T03:12:45.120Z");
  EXPECT_FALSE(parse_time("2026-11-24 03:12:45").ok());
  EXPECT_FALSE(parse_time("").ok());
}

TEST(IncidentJsonTest, MalformedJsonIsAnErrorNotACrash) {
  for (const char* text : {"{}", "{\"id\": 3}", "[]", "{\"id\":\"x\",\"title\":\"t\",\"severity\":\"c\",\"scope\":{},"
                                                      "\"status\":\"weird\",\"impacted\":[],\"timeline\":[]}"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(incident_from_json(nlohmann::json::parse(text)).ok());
  }
  auto loud = incident_from_json(nlohmann::json::parse(
      R"({"id":"x","title":"t","severity":"loud","scope":{},"status":"declared","impacted":[],"timeline":[]})"));
  ASSERT_FALSE(loud.ok());
  EXPECT_EQ(loud.error().message, "severity: unknown value \"loud\"");
}

TEST(IncidentJsonTest, SeverityIsStoredAsItsWord) {
  Incident inc;
  inc.id = "NS-1";
  inc.severity = Severity::kInfo;
  inc.impacted.push_back({"r1", "snmp", "device_rebooted", Severity::kInfo, "", "", {}, true, ""});
  const nlohmann::json j = to_json(inc);
  EXPECT_EQ(j["severity"], "info");
  EXPECT_EQ(j["impacted"][0]["severity"], "info");
  auto back = incident_from_json(j);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->severity, Severity::kInfo);
  EXPECT_EQ(back->impacted[0].severity, Severity::kInfo);
}

}  // namespace
}  // namespace nightshift
