// Issue 18, part 1: incident ids that cannot collide across agents and
// restarts (NS-<date>-<tag>-<number>), the keys every sink derives from them,
// and stores written before the change (NS-<date>-<number>) that keep working.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "incidents/incident_json.h"
#include "incidents/incidents.h"
#include "notify/paging.h"
#include "store/store.h"
#include "tests/support/temp_dir.h"

namespace nightshift {
namespace {

using namespace std::chrono_literals;

// svc-a and svc-b are in different scopes: each outage is its own incident.
std::shared_ptr<const Target> target(const std::string& name) {
  auto t = std::make_shared<Target>();
  t->name = name;
  t->group = name == "svc-a" ? "core" : "edge";
  t->site = "ams";
  return t;
}

rules::AlertEvent alert(const Clock& clock, const std::string& target, bool firing) {
  rules::AlertEvent e;
  e.rule = "target_down";
  e.severity = Severity::kCritical;
  e.target = target;
  e.probe = "tcp";
  e.change.from = firing ? rules::AlertPhase::kPending : rules::AlertPhase::kFiring;
  e.change.to = firing ? rules::AlertPhase::kFiring : rules::AlertPhase::kInactive;
  e.change.at = clock.now();
  e.change.notify = true;
  e.summary = "consecutive_failures >= 3";
  return e;
}

SinkSpec sink(const std::string& name, SinkType type) {
  SinkSpec s;
  s.name = name;
  s.type = type;
  s.url = "http://127.0.0.1:9/";
  return s;
}

// One agent: its incident manager and its paging.
struct AgentModel {
  IncidentManager incidents;
  Paging paging;
  AgentModel(const Clock& clock, const std::string& name, const std::string& tag)
      : incidents(clock, policy(name)),
        paging(clock, {sink("pd", SinkType::kPagerDuty), sink("hook", SinkType::kWebhook),
                       sink("am", SinkType::kAlertmanager)},
               NotifyPolicy{}) {
    if (!tag.empty()) incidents.set_id_tag(tag);
    incidents.set_targets({target("svc-a"), target("svc-b")});
  }
  static IncidentPolicy policy(const std::string& name) {
    IncidentPolicy p;
    p.agent_name = name;
    return p;
  }
  std::vector<OutboxEntry> fire(const Clock& clock, const std::string& t) {
    std::vector<OutboxEntry> rows;
    for (const auto& e : incidents.on_alert(alert(clock, t, true))) {
      auto r = paging.on_event(e);
      rows.insert(rows.end(), r.begin(), r.end());
    }
    return rows;
  }
};

// What each sink uses to tell incidents apart.
std::set<std::string> identities(const std::vector<OutboxEntry>& rows) {
  std::set<std::string> out;
  for (const auto& r : rows) {
    out.insert(r.sink + " key " + r.key);
    const auto body = nlohmann::json::parse(r.body);
    if (r.sink == "pd") out.insert("pd dedup_key " + body["dedup_key"].get<std::string>());
    if (r.sink == "am") out.insert("am incident " + body[0]["labels"]["incident"].get<std::string>());
  }
  return out;
}

TEST(IncidentIds, ReadableAndTaggedWithTheirStore) {
  ManualClock clock(SteadyTime{} + 1h, parse_time("2026-12-01T03:12:45.000Z").value());
  AgentModel a(clock, "edge-a", "k3f9qa");
  a.fire(clock, "svc-a");
  const auto list = a.incidents.incidents();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, "NS-20261201-k3f9qa-0001");
  EXPECT_EQ(id_sequence(list[0].id, "k3f9qa"), 1u);
  EXPECT_EQ(id_sequence(list[0].id, "zzzzzz"), 0u);
  EXPECT_EQ(id_sequence("NS-20261201-0001", "k3f9qa"), 0u) << "the old form has no tag";
}

TEST(IncidentIds, TagsAreDrawnFromAPlainAlphabet) {
  std::set<std::string> seen;
  for (std::uint64_t r : {0ull, 1ull, 31ull, 0x9e3779b97f4a7c15ull, ~0ull}) {
    const std::string tag = new_id_tag(r);
    SCOPED_TRACE(tag);
    EXPECT_TRUE(valid_id_tag(tag));
    EXPECT_TRUE(std::regex_match(tag, std::regex("[a-hjkmnp-z2-9]{6}")));
    seen.insert(tag);
  }
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_FALSE(valid_id_tag("k3f9q"));
  EXPECT_FALSE(valid_id_tag("k3f9qO"));
  EXPECT_FALSE(valid_id_tag("k3f9q-"));
}

// The measured bug: three agents, each with its own daily counter, all named
// their incidents NS-20261201-0001, and two different outages shared one
// idempotency key, one PagerDuty dedup_key and one Alertmanager label.
TEST(IncidentIds, TwoAgentsWithDifferentOutagesShareNoKey) {
  ManualClock clock(SteadyTime{} + 1h, parse_time("2026-12-01T03:12:45.000Z").value());
  AgentModel a(clock, "nightshift", "k3f9qa");
  AgentModel b(clock, "nightshift", "w7m2xd");  // same (default) name: the tags still differ
  const auto ra = identities(a.fire(clock, "svc-a"));
  const auto rb = identities(b.fire(clock, "svc-b"));
  ASSERT_EQ(ra.size(), 5u) << "3 idempotency keys, 1 dedup_key, 1 label";
  for (const auto& id : ra) EXPECT_EQ(rb.count(id), 0u) << id;
  EXPECT_EQ(ra.count("pd dedup_key NS-20261201-k3f9qa-0001"), 1u);
  EXPECT_EQ(rb.count("am incident NS-20261201-w7m2xd-0001"), 1u);
  EXPECT_EQ(rb.count("hook key NS-20261201-w7m2xd-0001:declared:1"), 1u);
}

TEST(IncidentIds, WithoutATagTheAgentNameGivesAStableOne) {
  ManualClock clock;
  AgentModel a(clock, "edge-a", "");
  AgentModel again(clock, "edge-a", "");
  AgentModel other(clock, "edge-b", "");
  EXPECT_TRUE(valid_id_tag(a.incidents.id_tag()));
  EXPECT_EQ(a.incidents.id_tag(), again.incidents.id_tag());
  EXPECT_NE(a.incidents.id_tag(), other.incidents.id_tag());
}

TEST(IncidentIds, ARestartWithALostCounterNeverReusesAnId) {
  ManualClock clock;
  test::TempDir dir;
  std::string first;
  {
    auto s = Store::open(dir.path());
    ASSERT_TRUE(s.ok()) << s.error().message;
    AgentModel a(clock, "edge-a", "k3f9qa");
    a.fire(clock, "svc-a");
    const Incident inc = a.incidents.incidents().front();
    first = inc.id;
    ASSERT_TRUE(s->store->save(inc).ok());
    // The counter was never saved (a disk error, a kill at the wrong moment).
  }
  auto s = Store::open(dir.path());
  ASSERT_TRUE(s.ok());
  auto loaded = s->store->load(24 * 3600);
  ASSERT_TRUE(loaded.ok());
  AgentModel a(clock, "edge-a", "k3f9qa");
  a.incidents.restore(std::move(loaded.value()), /*next_sequence=*/1);
  EXPECT_EQ(a.incidents.next_sequence(), 2u);
  a.fire(clock, "svc-b");
  std::set<std::string> ids;
  for (const auto& inc : a.incidents.incidents()) ids.insert(inc.id);
  EXPECT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids.count(first), 1u);
}

// A state store written by the agent before this change: ids NS-<date>-<n>,
// a next_sequence in meta and no id_tag. After the upgrade its incidents load,
// can be acknowledged and resolved by their old ids, their notifications keep
// their old keys, and new incidents get tagged ids that cannot meet them.
TEST(IncidentIds, StoresFromBeforeTheUpgradeKeepWorking) {
  // The store keeps resolved incidents by real time: this test lives now.
  ManualClock clock(SteadyTime{} + 1h, std::chrono::system_clock::now());
  const std::string today = format_time(clock.wall_now()).substr(0, 10);  // YYYY-MM-DD
  const std::string date = today.substr(0, 4) + today.substr(5, 2) + today.substr(8, 2);
  test::TempDir dir;
  {
    auto s = Store::open(dir.path());
    ASSERT_TRUE(s.ok()) << s.error().message;
    Incident old;
    old.id = "NS-20261124-0001";
    old.title = "svc-a: target_down";
    old.severity = Severity::kCritical;
    old.scope = {{"site", "ams"}, {"group", "core"}};
    old.impacted = {{"svc-a", "tcp", "target_down", Severity::kCritical, "svc-a tcp not answering", "", clock.wall_now(), true,
                     "consecutive_failures >= 3"}};
    old.timeline = {{clock.wall_now(), "declared", "declared: svc-a", false, ""}};
    old.started_at = old.declared_at = clock.wall_now();
    old.next_update_due = clock.wall_now() + 30min;
    OutboxEntry row;
    row.sink = "pd";
    row.key = "NS-20261124-0001:declared:1";
    row.incident = old.id;
    row.event = "declared";
    row.body = R"({"event_action":"trigger","dedup_key":"NS-20261124-0001"})";
    ASSERT_TRUE(s->store->save(old, {row}).ok());
    ASSERT_TRUE(s->store->set_meta("next_sequence", "2").ok());
  }
  auto s = Store::open(dir.path());
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_FALSE(s->store->get_meta("id_tag").ok()) << "written before tags existed";
  auto loaded = s->store->load(24 * 3600);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ(loaded->front().id, "NS-20261124-0001");

  AgentModel a(clock, "edge-a", new_id_tag(0x5eed));
  a.incidents.restore(std::move(loaded.value()), 2);
  a.paging.restore(a.incidents.incidents());
  ASSERT_NE(a.incidents.find("NS-20261124-0001"), nullptr);

  // Acknowledged and resolved by its old id; the pages keep the old keys.
  auto ack = a.incidents.acknowledge("NS-20261124-0001", "alice");
  ASSERT_TRUE(ack.ok()) << ack.error().message;
  auto ack_rows = a.paging.on_event(*ack);
  ASSERT_FALSE(ack_rows.empty());
  for (const auto& r : ack_rows) {
    EXPECT_EQ(r.incident, "NS-20261124-0001");
    EXPECT_EQ(r.key.rfind("NS-20261124-0001:acknowledged:", 0), 0u) << r.key;
  }
  ASSERT_TRUE(s->store->save(ack->incident, ack_rows).ok());

  // A new outage: a tagged id, and the counter carried on from the old store.
  clock.advance(1min);
  auto rows = a.fire(clock, "svc-b");
  ASSERT_FALSE(rows.empty());
  const std::string fresh = rows.front().incident;
  EXPECT_EQ(fresh, "NS-" + date + "-" + a.incidents.id_tag() + "-0002");

  auto resolved = a.incidents.resolve("NS-20261124-0001", "alice");
  ASSERT_TRUE(resolved.ok()) << resolved.error().message;
  for (const auto& r : a.paging.on_event(*resolved)) {
    EXPECT_EQ(r.key.rfind("NS-20261124-0001:resolved:", 0), 0u) << r.key;
  }
  ASSERT_TRUE(s->store->save(resolved->incident).ok());
  auto again = s->store->load(24 * 3600);
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ(again->front().status, IncidentStatus::kResolved);
}

}  // namespace
}  // namespace nightshift
