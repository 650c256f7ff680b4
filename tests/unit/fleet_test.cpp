// The fleet's wire format, quorum decisions (on the ManualClock) and settings.
#include <gtest/gtest.h>

#include "fleet/protocol.h"
#include "fleet/settings.h"
#include "fleet/view.h"

namespace nightshift::fleet {
namespace {

using namespace std::chrono_literals;
using V = Assessment::Verdict;

Verdict verdict(const std::string& target, bool ok, const std::string& probe = "tcp") {
  Verdict v;
  v.target = target;
  v.probe = probe;
  v.ok = ok;
  if (!ok) {
    v.reason = "refused";
    v.detail = "connection refused by 198.51.100.2:443";
  }
  v.since_ms = 1764590000000;
  return v;
}

Observation table(const std::string& agent, std::uint64_t version, std::vector<Verdict> vs) {
  Observation o;
  o.agent = agent;
  o.version = version;
  o.full = true;
  o.verdicts = std::move(vs);
  return o;
}

TEST(FleetProtocol, MessagesRoundTrip) {
  Observation o = table("edge-ams1", 7, {verdict("core-ams1", false), verdict("core-fra1", true)});
  auto back = decode_observation(encode(o));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->agent, "edge-ams1");
  EXPECT_EQ(back->version, 7u);
  EXPECT_TRUE(back->full);
  ASSERT_EQ(back->verdicts.size(), 2u);
  EXPECT_EQ(back->verdicts[0], o.verdicts[0]);

  Heartbeat h{"edge-ams1", 7, 1764590000000, 5000, 2, 1, "k3f9qa"};
  auto hb = decode_heartbeat(encode(h));
  ASSERT_TRUE(hb.ok()) << hb.error().message;
  EXPECT_EQ(hb->id_tag, "k3f9qa");
  EXPECT_EQ(hb->down, 1u);

  FleetIncident inc;
  inc.key = scope_key("group=core site=ams");
  inc.id = "NS-20261201-k3f9qa-0001";
  inc.impacted = {{"core-ams1", "tcp", "target_down", {"edge-ams1", "edge-fra1"}, true}};
  inc.seq = 2;
  inc.notified = 1;
  inc.last_event = "updated";
  inc.severity = Severity::kWarning;
  EXPECT_NE(encode(inc).find(R"("severity":"warning")"), std::string::npos) << "the word, not a number";
  auto ib = decode_incident(encode(inc));
  ASSERT_TRUE(ib.ok()) << ib.error().message;
  EXPECT_EQ(ib->id, inc.id);
  EXPECT_EQ(ib->severity, Severity::kWarning);
  EXPECT_EQ(ib->impacted, inc.impacted);
  EXPECT_EQ(ib->seq, 2u);
  EXPECT_EQ(ib->notified, 1u);
}

TEST(FleetProtocol, BadMessagesNameTheField) {
  struct Case {
    const char* name;
    std::string bytes;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"not json", "{nope", "not JSON"},
      {"not an object", "[1,2]", "message: expected an object"},
      {"agent missing", R"({"version":1,"sent_ms":0})", "agent: missing"},
      {"version negative", R"({"agent":"a","version":-1,"sent_ms":0})", "version: expected a non-negative integer"},
      {"verdict target", R"({"agent":"a","version":1,"sent_ms":0,"verdicts":[{"target":"t","probe":"p","ok":true},{"target":3}]})",
       "verdicts[1].target: expected a string"},
      {"agent with space", R"({"agent":"a b","version":1,"sent_ms":0})", "agent: holds a space or control character"},
      {"part beyond parts", R"({"agent":"a","version":1,"sent_ms":0,"full":true,"part":2,"parts":2})", "part: expected below parts (2)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = decode_observation(c.bytes);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, c.error);
  }
  auto hb = decode_heartbeat(R"({"agent":"a","version":1,"sent_ms":0,"interval_ms":0})");
  ASSERT_FALSE(hb.ok());
  EXPECT_EQ(hb.error().message, "interval_ms: must be positive");
  auto inc = decode_incident(R"({"key":"s-1","id":"NS-1","open":true,"seq":1,"notified":2})");
  ASSERT_FALSE(inc.ok());
  EXPECT_EQ(inc.error().message, "notified: ahead of seq");
  auto imp = decode_incident(R"({"key":"s-1","id":"NS-1","open":true,"seq":1,"impacted":[{"target":"t","vantages":[1]}]})");
  ASSERT_FALSE(imp.ok());
  EXPECT_EQ(imp.error().message, "impacted[0].vantages[0]: expected a string");
  auto loud = decode_incident(R"({"key":"s-1","id":"NS-1","open":true,"seq":1,"severity":"loud"})");
  ASSERT_FALSE(loud.ok());
  EXPECT_EQ(loud.error().message, "severity: unknown value \"loud\"");
  // Written before the field existed: critical, as every fleet incident was then.
  auto old = decode_incident(R"({"key":"s-1","id":"NS-1","open":true,"seq":1})");
  ASSERT_TRUE(old.ok()) << old.error().message;
  EXPECT_EQ(old->severity, Severity::kCritical);
}

TEST(FleetProtocol, ScopeKeysAreStableAndSubjectSafe) {
  EXPECT_EQ(scope_key("group=core site=ams"), scope_key("group=core site=ams"));
  EXPECT_NE(scope_key("group=core site=ams"), scope_key("group=core site=fra"));
  EXPECT_EQ(scope_key("").size(), 18u);
  // FNV-1a 64 of "": the same on every agent and compiler.
  EXPECT_EQ(scope_key(""), "s-cbf29ce484222325");
  EXPECT_EQ(subject_token("edge.ams1 x"), "edge_ams1_x");
  EXPECT_EQ(check_token("name", "prod-noc_1"), "");
  EXPECT_NE(check_token("name", "prod.noc"), "");
}

struct ViewFixture {
  ManualClock clock;
  FleetView view{clock, "a1", 0, 15s};
  void peer(const std::string& name, bool ok, std::uint64_t version = 1) {
    view.apply(table(name, version, {verdict("svc", ok)}));
  }
};

TEST(FleetView, MajorityOfReportingWatchersDeclares) {
  ViewFixture f;
  f.view.set_local({verdict("svc", false)});
  f.peer("a2", false);
  f.peer("a3", true);
  Assessment a = f.view.assess("svc");
  EXPECT_EQ(a.verdict, V::kDown);
  EXPECT_EQ(a.watchers, 3u);
  EXPECT_EQ(a.needed, 2u);
  EXPECT_EQ(a.down_vantages, (std::vector<std::string>{"a1", "a2"}));
  EXPECT_EQ(a.up_vantages, (std::vector<std::string>{"a3"}));
}

TEST(FleetView, MinorityIsThatVantagesPath) {
  ViewFixture f;
  f.view.set_local({verdict("svc", false)});
  f.peer("a2", true);
  f.peer("a3", true);
  Assessment a = f.view.assess("svc");
  EXPECT_EQ(a.verdict, V::kPathProblem);
  EXPECT_EQ(a.down_vantages, (std::vector<std::string>{"a1"}));
  EXPECT_EQ(f.view.assess("other").verdict, V::kUnknown);
}

TEST(FleetView, SilentPeersStopCountingAfterTheTimeout) {
  ViewFixture f;
  f.view.set_local({verdict("svc", false)});
  f.peer("a2", true);
  f.peer("a3", true);
  f.clock.advance(14s);
  EXPECT_EQ(f.view.assess("svc").watchers, 3u);
  f.view.apply(Heartbeat{"a2", 1, 0, 5000, 1, 0, ""});
  f.clock.advance(2s);
  // a3 silent for 16 s: the two that remain decide; a1 alone is not a majority of 2.
  Assessment a = f.view.assess("svc");
  EXPECT_EQ(a.watchers, 2u);
  EXPECT_EQ(a.needed, 2u);
  EXPECT_EQ(a.verdict, V::kPathProblem);
  EXPECT_EQ(f.view.reporting(), (std::vector<std::string>{"a1", "a2"}));
  f.clock.advance(20s);
  a = f.view.assess("svc");
  EXPECT_EQ(a.watchers, 1u);
  EXPECT_EQ(a.verdict, V::kDown) << "the last one reporting decides alone";
}

TEST(FleetView, ConfiguredQuorumIsCappedAtTheWatchers) {
  ManualClock clock;
  FleetView view(clock, "a1", 3, 15s);
  view.set_local({verdict("svc", false)});
  view.apply(table("a2", 1, {verdict("svc", false)}));
  Assessment a = view.assess("svc");
  EXPECT_EQ(a.needed, 2u);
  EXPECT_EQ(a.verdict, V::kDown);
  view.apply(table("a3", 1, {verdict("svc", true)}));
  view.apply(table("a4", 1, {verdict("svc", true)}));
  a = view.assess("svc");
  EXPECT_EQ(a.needed, 3u);
  EXPECT_EQ(a.verdict, V::kPathProblem);
}

TEST(FleetView, GapsAskForATable) {
  ViewFixture f;
  Observation change;
  change.agent = "a2";
  change.version = 5;
  change.verdicts = {verdict("svc", false)};
  EXPECT_TRUE(f.view.apply(change)) << "no table yet";
  EXPECT_FALSE(f.view.apply(table("a2", 5, {verdict("svc", false)})));
  change.version = 6;
  change.verdicts = {verdict("svc", true)};
  EXPECT_FALSE(f.view.apply(change));
  change.version = 8;
  EXPECT_TRUE(f.view.apply(change)) << "version 7 was lost";
  EXPECT_TRUE(f.view.apply(Heartbeat{"a2", 9, 0, 5000, 1, 0, ""}));
  EXPECT_FALSE(f.view.apply(Heartbeat{"a2", 8, 0, 5000, 1, 0, ""}));
}

TEST(FleetView, LargeTablesArriveInParts) {
  ViewFixture f;
  Observation p0 = table("a2", 3, {verdict("t1", false)});
  p0.parts = 2;
  Observation p1 = table("a2", 3, {verdict("t2", true)});
  p1.part = 1;
  p1.parts = 2;
  f.view.apply(p0);
  EXPECT_EQ(f.view.assess("t1").watchers, 0u) << "a partial table does not count yet";
  f.view.apply(p1);
  EXPECT_EQ(f.view.assess("t1").verdict, V::kDown);
  EXPECT_EQ(f.view.assess("t2").verdict, V::kUp);
  EXPECT_EQ(f.view.watchers_of("t2"), (std::vector<std::string>{"a2"}));
}

TEST(FleetView, LocalChangesOnlyWhenOkFlips) {
  ViewFixture f;
  EXPECT_TRUE(f.view.update_local(verdict("svc", true)));
  EXPECT_FALSE(f.view.update_local(verdict("svc", true)));
  Verdict down = verdict("svc", false);
  EXPECT_TRUE(f.view.update_local(down));
  down.detail = "another timeout";
  EXPECT_FALSE(f.view.update_local(down)) << "new evidence alone is not news";
}

TEST(FleetSettings, ValidationAndNoSecretsInDescribe) {
  FleetSettings s;
  s.enabled = true;
  s.servers = {"nats://alice:hunter2@127.0.0.1:19400", "localhost:4222"};
  s.token = "s3cret-token";
  s.user = "alice";
  const auto errors = validate(s);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0], "servers[1]: expected nats://host:port or tls://host:port, found \"localhost:4222\"");
  EXPECT_EQ(errors[1], "credentials_file, user/password and token: give at most one of them");
  EXPECT_EQ(errors[2], "user and password: give both or neither");
  const std::string d = describe(s);
  EXPECT_EQ(d.find("hunter2"), std::string::npos) << d;
  EXPECT_EQ(d.find("s3cret"), std::string::npos) << d;
  EXPECT_NE(d.find("nats://127.0.0.1:19400"), std::string::npos) << d;
  FleetSettings off;
  off.servers.clear();
  EXPECT_TRUE(validate(off).empty()) << "a disabled fleet needs nothing";
}

}  // namespace
}  // namespace nightshift::fleet
