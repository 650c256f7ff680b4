// Incident manager on a simulated clock: declare at once, group, topology,
// vantage isolation, lifecycle, reopen, promised updates.
#include "incidents/incidents.h"

#include <gtest/gtest.h>

namespace nightshift {
namespace {

using namespace std::chrono_literals;
using Kind = IncidentEvent::Kind;

std::shared_ptr<const Target> target(const std::string& name, const std::string& group = "core",
                                     const std::string& site = "fra", const std::string& parent = "",
                                     bool canary = false) {
  auto t = std::make_shared<Target>();
  t->name = name;
  t->group = group;
  t->site = site;
  t->depends_on = parent;
  t->canary = canary;
  return t;
}

struct Fixture {
  ManualClock clock;
  IncidentPolicy policy;
  std::unique_ptr<IncidentManager> m;
  std::vector<IncidentEvent> events;

  explicit Fixture(const std::vector<std::shared_ptr<const Target>>& targets, IncidentPolicy p = {}) : policy(p) {
    m = std::make_unique<IncidentManager>(clock, policy);
    m->set_targets(targets);
  }
  rules::AlertEvent alert(const std::string& target, bool firing, Severity severity = Severity::kCritical,
                          const std::string& rule = "target_down") {
    rules::AlertEvent e;
    e.rule = rule;
    e.severity = severity;
    e.target = target;
    e.probe = "icmp";
    e.change.from = firing ? rules::AlertPhase::kPending : rules::AlertPhase::kFiring;
    e.change.to = firing ? rules::AlertPhase::kFiring : rules::AlertPhase::kInactive;
    e.change.at = clock.now();
    e.change.notify = true;
    e.summary = "consecutive_failures >= 3";
    return e;
  }
  std::vector<IncidentEvent> fire(const std::string& t, Severity severity = Severity::kCritical) {
    auto out = m->on_alert(alert(t, true, severity));
    events.insert(events.end(), out.begin(), out.end());
    return out;
  }
  std::vector<IncidentEvent> clear(const std::string& t) {
    auto out = m->on_alert(alert(t, false));
    events.insert(events.end(), out.begin(), out.end());
    return out;
  }
  // Moves the clock on, running tick() at every deadline on the way.
  void run_for(Duration d) {
    const SteadyTime end = clock.now() + d;
    for (int guard = 0; guard < 10000; ++guard) {
      auto due = m->next_deadline();
      if (!due || *due > end) break;
      clock.set(std::max(*due, clock.now()));
      auto out = m->tick();
      events.insert(events.end(), out.begin(), out.end());
    }
    clock.set(end);
  }
  int count(Kind k) const {
    return static_cast<int>(std::count_if(events.begin(), events.end(), [&](const IncidentEvent& e) { return e.kind == k; }));
  }
  int pages() const {
    return static_cast<int>(std::count_if(events.begin(), events.end(), [](const IncidentEvent& e) { return e.page; }));
  }
};

TEST(IncidentsTest, FirstAlertDeclaresAtOnce) {
  Fixture f({target("r1")});
  const SystemTime t0 = f.clock.wall_now();
  auto out = f.fire("r1");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kDeclared);
  EXPECT_TRUE(out[0].page);
  const Incident& inc = out[0].incident;
  EXPECT_EQ(inc.title, "r1 unreachable");
  EXPECT_EQ(inc.severity, Severity::kCritical);
  EXPECT_EQ(inc.declared_at, t0);
  EXPECT_EQ(inc.started_at, t0);
  EXPECT_EQ(inc.next_update_due, t0 + 30min);
  EXPECT_EQ(inc.scope, (std::map<std::string, std::string>{{"group", "core"}, {"site", "fra"}}));
  EXPECT_EQ(inc.id.substr(0, 3), "NS-");
  ASSERT_EQ(inc.timeline.size(), 1u);
  EXPECT_EQ(inc.timeline[0].kind, "declared");
}

TEST(IncidentsTest, FortyTargetsOfOneSiteAreOneIncidentWithOneBatchedUpdate) {
  std::vector<std::shared_ptr<const Target>> ts;
  for (int i = 0; i < 40; ++i) ts.push_back(target("t" + std::to_string(i)));
  ts.push_back(target("elsewhere", "core", "ams"));
  Fixture f(ts);
  for (int i = 0; i < 40; ++i) {
    f.fire("t" + std::to_string(i));
    f.clock.advance(50ms);
  }
  f.run_for(10s);
  EXPECT_EQ(f.count(Kind::kDeclared), 1);
  EXPECT_EQ(f.count(Kind::kUpdated), 1) << "joins within the batch window are one update";
  EXPECT_EQ(f.pages(), 1);
  auto all = f.m->incidents();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].active_impact(), 40u);
  EXPECT_EQ(all[0].title, "site fra, group core: 40 targets unreachable (t0, t1, t2 and 37 more)");
}

TEST(IncidentsTest, OneDarkSiteIsAnOutageNotIsolation) {
  std::vector<std::shared_ptr<const Target>> ts;
  for (int i = 0; i < 20; ++i) ts.push_back(target("t" + std::to_string(i)));
  ts.push_back(target("ams1", "core", "ams"));
  Fixture f(ts);
  for (int i = 0; i < 20; ++i) f.fire("t" + std::to_string(i));
  for (const auto& inc : f.m->incidents()) EXPECT_FALSE(inc.vantage);
}

TEST(IncidentsTest, DifferentScopesAreDifferentIncidents) {
  Fixture f({target("a", "core", "fra"), target("b", "core", "ams")});
  f.fire("a");
  f.fire("b");
  EXPECT_EQ(f.count(Kind::kDeclared), 2);
}

TEST(IncidentsTest, ChildOfADownParentIsImpactAndDoesNotPage) {
  Fixture f({target("router"), target("switch", "access", "fra", "router")});
  f.fire("router");
  auto out = f.fire("switch");
  EXPECT_TRUE(out.empty());
  f.run_for(10s);
  EXPECT_EQ(f.pages(), 1);
  auto all = f.m->incidents();
  ASSERT_EQ(all.size(), 1u);
  ASSERT_EQ(all[0].impacted.size(), 2u);
  EXPECT_EQ(all[0].impacted[1].via_parent, "router");
}

// With no evidence hold (or evidence that came too late) children that
// declared before their parent merge into its incident.
TEST(IncidentsTest, ChildrenDownBeforeTheirParentMergeIntoItsIncident) {
  IncidentPolicy p;
  p.evidence_hold = 0s;
  Fixture f({target("router", "core"), target("sw1", "access", "fra", "router"), target("sw2", "access", "fra", "router")},
            p);
  f.fire("sw1");
  f.fire("sw2");
  ASSERT_EQ(f.count(Kind::kDeclared), 1);
  auto out = f.fire("router");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].kind, Kind::kDeclared);
  EXPECT_EQ(out[1].kind, Kind::kMerged);
  EXPECT_FALSE(out[1].page);
  const Incident* parent = f.m->find(out[0].incident.id);
  ASSERT_NE(parent, nullptr);
  EXPECT_EQ(parent->active_impact(), 3u);
}

TEST(IncidentsTest, ParentJoiningItsChildrensIncidentInTheSameScopeNamesIt) {
  // All in one scope: the child that failed first declared; the router's
  // alert joins and the incident becomes the router's, the rest behind it.
  IncidentPolicy p;
  p.evidence_hold = 0s;
  Fixture f({target("router", "edge"), target("h1", "edge", "fra", "router"), target("h2", "edge", "fra", "router")},
            p);
  const std::string id = f.fire("h1")[0].incident.id;
  f.fire("h2");
  f.fire("router");
  ASSERT_EQ(f.count(Kind::kDeclared), 1);
  const Incident* inc = f.m->find(id);
  ASSERT_NE(inc, nullptr);
  EXPECT_EQ(inc->title, "router unreachable (2 targets behind it)");
  for (const auto& t : inc->impacted) {
    if (t.target != "router") {
      EXPECT_EQ(t.via_parent, "router") << t.target;
    }
  }
}

// --- ask before you page: the evidence hold ----------------------------------

// Child first: its parent's state is unknown, so the child waits while the
// parent is probed out of schedule; the parent's confirmation comes back down
// and pages once, with the children as its impact.
TEST(IncidentsTest, ChildFirstWaitsForItsParentThenJoinsTheParentsPage) {
  Fixture f({target("router", "core"), target("sw1", "access", "fra", "router"), target("sw2", "access", "fra", "router")});
  EXPECT_TRUE(f.fire("sw1").empty()) << "held while its parent is asked";
  EXPECT_EQ(f.m->take_evidence_requests(), std::vector<std::string>{"router"});
  f.clock.advance(300ms);
  EXPECT_TRUE(f.fire("sw2").empty());
  EXPECT_TRUE(f.m->take_evidence_requests().empty()) << "the router is asked once";
  f.clock.advance(1500ms);  // the router's confirmation: 12 echoes lost
  auto out = f.fire("router");
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].kind, Kind::kDeclared);
  EXPECT_TRUE(out[0].page);
  EXPECT_EQ(out[0].incident.title, "router unreachable (2 targets behind it)")
      << "the page names the parent and what is cut off behind it";
  f.run_for(10s);
  EXPECT_EQ(f.pages(), 1);
  EXPECT_EQ(f.count(Kind::kDeclared), 1);
  EXPECT_EQ(f.count(Kind::kMerged), 0) << "nothing to merge: the children never declared";
  const Incident* inc = f.m->find(out[0].incident.id);
  ASSERT_NE(inc, nullptr);
  EXPECT_EQ(inc->title, "router unreachable (2 targets behind it)");
  for (const auto& t : inc->impacted) {
    if (t.target != "router") {
      EXPECT_EQ(t.via_parent, "router") << t.target;
    }
  }
}

// The parent answers: the child is the outage, declared as soon as that is known.
TEST(IncidentsTest, ChildWhoseParentAnswersPagesAsSoonAsTheParentDoes) {
  Fixture f({target("router", "core"), target("sw1", "access", "fra", "router")});
  EXPECT_TRUE(f.fire("sw1").empty());
  f.clock.advance(40ms);
  auto out = f.m->on_evidence("router", true);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kDeclared);
  EXPECT_EQ(out[0].incident.title, "sw1 unreachable");
  EXPECT_TRUE(out[0].page);
}

// The parent never answers the question (its kind has no confirmation): the
// hold is bounded.
TEST(IncidentsTest, UnansweredEvidenceHoldsTheFirstPageAtMostTheHold) {
  Fixture f({target("router", "core"), target("sw1", "access", "fra", "router")});
  f.fire("sw1");
  f.run_for(2400ms);
  EXPECT_EQ(f.count(Kind::kDeclared), 0);
  f.run_for(200ms);
  EXPECT_EQ(f.count(Kind::kDeclared), 1) << "declared 2.5 s after the alert";
}

// Parent first: the parent is placed at once (no parent of its own, no
// canaries); its children join without a page.
TEST(IncidentsTest, ParentFirstPagesAtOnceAndChildrenJoin) {
  Fixture f({target("router", "core"), target("sw1", "access", "fra", "router")});
  auto out = f.fire("router");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].page);
  EXPECT_TRUE(f.fire("sw1").empty());
  EXPECT_TRUE(f.m->take_evidence_requests().empty()) << "the parent is known down";
  f.run_for(10s);
  EXPECT_EQ(f.pages(), 1);
}

// Canaries configured: a failing target asks them first; they answer and the
// target pages on its own, milliseconds later.
TEST(IncidentsTest, CanariesAnsweringReleaseTheTargetsPage) {
  Fixture f({target("canary1", "ref", "x", "", true), target("canary2", "ref", "y", "", true), target("a"), target("b", "edge"),
             target("c")});
  EXPECT_TRUE(f.fire("a").empty());
  auto asked = f.m->take_evidence_requests();
  std::sort(asked.begin(), asked.end());
  EXPECT_EQ(asked, (std::vector<std::string>{"c", "canary1", "canary2"})) << "the canaries and a's scope-mate";
  f.clock.advance(5ms);
  EXPECT_TRUE(f.m->on_evidence("canary1", true).empty()) << "one canary is not all";
  EXPECT_TRUE(f.m->on_evidence("canary2", true).empty()) << "its scope-mate has not answered";
  auto out = f.m->on_evidence("c", true);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].incident.title, "a unreachable");
  // A second target within the hold: the canaries' answers still count.
  f.clock.advance(100ms);
  auto b = f.fire("b");
  EXPECT_EQ(b.size(), 1u) << "no need to ask again";
}

// A site goes dark with no depends_on configured: the first target to fail
// waits while its scope-mates are probed at once; they fail within their
// confirmation and the first page is about the site and all of them, not the
// host that noticed first.
TEST(IncidentsTest, ASiteGoingDarkPagesOnceForTheSiteWithEveryTargetThatFailed) {
  std::vector<std::shared_ptr<const Target>> ts;
  for (int i = 0; i < 12; ++i) ts.push_back(target("t" + std::to_string(i), "access"));
  ts.push_back(target("router", "core"));  // another scope: not asked, not held for
  Fixture f(ts);
  EXPECT_TRUE(f.fire("t3").empty()) << "held while its scope-mates are asked";
  auto asked = f.m->take_evidence_requests();
  EXPECT_EQ(asked.size(), 11u);
  EXPECT_EQ(std::count(asked.begin(), asked.end(), "router"), 0);
  // Their confirmations come back down over the next 1.2 s (spread rounds).
  for (int i = 0; i < 12; ++i) {
    if (i == 3) continue;
    f.clock.advance(100ms);
    auto out = f.fire("t" + std::to_string(i));
    if (i != 11) {
      EXPECT_TRUE(out.empty()) << "t" << i << ": nothing pages before every mate is heard from";
    } else {
      ASSERT_EQ(out.size(), 1u);
      EXPECT_EQ(out[0].kind, Kind::kDeclared);
      EXPECT_TRUE(out[0].page);
      EXPECT_EQ(out[0].incident.title, "site fra, group access: 12 targets unreachable (t3, t0, t1 and 9 more)");
      EXPECT_EQ(out[0].incident.active_impact(), 12u);
    }
  }
  f.run_for(30s);
  EXPECT_EQ(f.pages(), 1);
  EXPECT_EQ(f.count(Kind::kDeclared), 1);
  EXPECT_EQ(f.count(Kind::kUpdated), 0) << "the declaration carried every target; no update a batch later";
}

// Part of a scope fails: the held alerts go together once the last mate
// answers, in one declaration that started with the first failure; a mate
// failing after that joins the open incident at once, asking no one.
TEST(IncidentsTest, PartOfAScopeFailingIsOneDeclarationAndLaterFailuresJoinAtOnce) {
  Fixture f({target("a"), target("b"), target("c"), target("d"), target("e")});
  const SystemTime t0 = f.clock.wall_now();
  EXPECT_TRUE(f.fire("a").empty());
  EXPECT_EQ(f.m->take_evidence_requests().size(), 4u);
  f.clock.advance(1s);
  EXPECT_TRUE(f.fire("b").empty());
  EXPECT_TRUE(f.fire("c").empty());
  EXPECT_TRUE(f.m->take_evidence_requests().empty()) << "each mate is asked once per hold";
  EXPECT_TRUE(f.m->on_evidence("d", true).empty()) << "e has not answered";
  auto out = f.m->on_evidence("e", true);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kDeclared);
  EXPECT_EQ(out[0].incident.title, "site fra, group core: 3 targets unreachable (a, b and c)");
  EXPECT_EQ(out[0].incident.started_at, t0) << "when a failed, not when the declaration went";
  EXPECT_EQ(out[0].incident.timeline.front().text, "declared: site fra, group core: 3 targets unreachable (a, b and c)");
  // d fails a minute later: its scope's incident is open, it joins without a hold.
  f.clock.advance(1min);
  EXPECT_TRUE(f.fire("d").empty());
  EXPECT_TRUE(f.m->take_evidence_requests().empty()) << "nothing to ask: it joins";
  EXPECT_EQ(f.m->find(out[0].incident.id)->active_impact(), 4u);
  f.run_for(10s);
  EXPECT_EQ(f.pages(), 0) << "the one page was the declaration";
  EXPECT_EQ(f.count(Kind::kUpdated), 1) << "d's join is announced in an update";
}

// A target with two critical alerts, one held, the other resolving meanwhile:
// it is still down, not probed as a healthy mate.
TEST(IncidentsTest, ATargetWithAHeldCriticalAlertStaysCriticalWhenItsOtherResolves) {
  Fixture f({target("a"), target("b"), target("c")});
  auto tcp = f.alert("b", true);
  tcp.probe = "tcp";
  f.m->on_alert(tcp);  // fires: b is critical, held for a and c
  f.fire("b");         // its ICMP alert too, held
  tcp.change.from = rules::AlertPhase::kFiring;
  tcp.change.to = rules::AlertPhase::kInactive;
  f.m->on_alert(tcp);  // the TCP alert clears while the ICMP one waits
  f.m->take_evidence_requests();
  EXPECT_TRUE(f.fire("a").empty());
  auto asked = f.m->take_evidence_requests();
  EXPECT_EQ(std::count(asked.begin(), asked.end(), "b"), 0) << "b is down: not asked as a mate";
}

// One host fails and its scope-mates answer: it pages as soon as they have
// (a round trip), under its own name.
TEST(IncidentsTest, ALoneFailurePagesAsSoonAsItsScopeMatesAnswer) {
  Fixture f({target("a"), target("b"), target("c"), target("x", "edge")});
  EXPECT_TRUE(f.fire("a").empty());
  auto asked = f.m->take_evidence_requests();
  std::sort(asked.begin(), asked.end());
  EXPECT_EQ(asked, (std::vector<std::string>{"b", "c"}));
  f.clock.advance(2ms);
  EXPECT_TRUE(f.m->on_evidence("b", true).empty());
  auto out = f.m->on_evidence("c", true);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].incident.title, "a unreachable");
  EXPECT_TRUE(out[0].page);
}

// A scope-mate that cannot be probed now (no quick confirmation of its kind)
// is not waited for; one that never answers holds the page at most the hold.
TEST(IncidentsTest, ScopeMatesThatCannotAnswerDoNotHoldThePage) {
  Fixture f({target("a"), target("snmp-only"), target("silent")});
  EXPECT_TRUE(f.fire("a").empty());
  f.m->take_evidence_requests();
  EXPECT_TRUE(f.m->on_no_evidence({"snmp-only"}).empty()) << "silent has not answered yet";
  f.run_for(2400ms);
  EXPECT_EQ(f.count(Kind::kDeclared), 0);
  f.run_for(200ms);
  EXPECT_EQ(f.count(Kind::kDeclared), 1) << "declared at the hold's end";
  Fixture g({target("a"), target("snmp-only")});
  g.fire("a");
  g.m->take_evidence_requests();
  auto out = g.m->on_no_evidence({"snmp-only"});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, Kind::kDeclared);
}

// The agent's own uplink is cut: targets fail first, the canaries are asked,
// they are down too, then every target is asked and the ratio shows isolation
// within seconds. One page: the isolation incident.
TEST(IncidentsTest, UplinkCutPagesOnceAsIsolation) {
  std::vector<std::shared_ptr<const Target>> ts = {target("canary1", "ref", "x", "", true),
                                                   target("canary2", "ref", "y", "", true)};
  for (int i = 0; i < 8; ++i) ts.push_back(target("t" + std::to_string(i), "g" + std::to_string(i % 3)));
  Fixture f(ts);
  f.fire("t0");
  f.fire("t1");
  f.clock.advance(1500ms);  // the canaries' confirmations: down
  f.fire("canary1");
  f.fire("canary2");
  auto asked = f.m->take_evidence_requests();
  EXPECT_GE(asked.size(), 6u) << "every target not known down is asked now";
  for (int i = 2; i < 8; ++i) {
    f.clock.advance(100ms);
    f.fire("t" + std::to_string(i));
  }
  f.run_for(10s);
  EXPECT_EQ(f.pages(), 1);
  auto all = f.m->incidents();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_TRUE(all[0].vantage);
  EXPECT_EQ(all[0].active_impact(), 10u);
}

// A router in one group and its children in another all go dark: every scope
// has lost targets, but the children are explained by the router
// (depends_on), so it is the router's outage, never this agent's isolation.
TEST(IncidentsTest, RouterAndEverythingBehindItDownIsNotIsolation) {
  std::vector<std::shared_ptr<const Target>> ts = {target("router", "core")};
  for (int i = 0; i < 10; ++i) ts.push_back(target("c" + std::to_string(i), "access", "fra", "router"));
  Fixture f(ts);
  f.fire("c0");
  f.clock.advance(1s);
  f.fire("router");
  for (int i = 1; i < 10; ++i) {
    f.clock.advance(100ms);
    f.fire("c" + std::to_string(i));
  }
  f.run_for(10s);
  EXPECT_EQ(f.pages(), 1);
  auto all = f.m->incidents();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_FALSE(all[0].vantage);
  EXPECT_EQ(all[0].title, "router unreachable (10 targets behind it)");
  EXPECT_EQ(all[0].active_impact(), 11u);
}

// The same topology with a canary beside the router: the agent's own uplink
// goes, the canary with it, and that is isolation (the router and the canary
// are what counts; the children follow the router).
TEST(IncidentsTest, UplinkCutWithTopologyAndACanaryIsIsolation) {
  std::vector<std::shared_ptr<const Target>> ts = {target("router", "core"),
                                                   target("canary", "ref", "x", "", true)};
  for (int i = 0; i < 10; ++i) ts.push_back(target("c" + std::to_string(i), "access", "fra", "router"));
  Fixture f(ts);
  f.fire("router");
  f.fire("canary");
  for (int i = 0; i < 10; ++i) f.fire("c" + std::to_string(i));
  f.run_for(10s);
  EXPECT_EQ(f.pages(), 1);
  auto all = f.m->incidents();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_TRUE(all[0].vantage);
}

// The title of a page names what is cut off behind the target (its configured
// dependants), before their own confirmations join.
TEST(IncidentsTest, ParentsFirstPageCountsTheTargetsBehindIt) {
  Fixture f({target("router", "core"), target("sw1", "access", "fra", "router"),
             target("host", "access", "fra", "sw1"), target("other", "core", "ams")});
  auto out = f.fire("router");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].incident.title, "router unreachable (2 targets behind it)") << "sw1 and, behind it, host";
  EXPECT_EQ(f.fire("other")[0].incident.title, "other unreachable") << "nothing behind it";
}

// 1 000 hosts behind one router go dark together, their misses spread over a
// third of the interval: one page, for the router, within the router's
// confirmation; every host listed as its impact.
TEST(IncidentsTest, MassOutageBehindOneRouterIsOnePageForTheRouter) {
  std::vector<std::shared_ptr<const Target>> ts = {target("router", "core", "dc1")};
  for (int i = 0; i < 1000; ++i) ts.push_back(target("h" + std::to_string(i), "access", "dc1", "router"));
  ts.push_back(target("elsewhere", "core", "dc2"));  // still answering: an outage, not isolation
  Fixture f(ts);
  const SteadyTime cut = f.clock.now();
  SteadyTime first_page{};
  for (int i = 0; i < 1000; ++i) {
    f.clock.advance(3ms);
    f.fire("h" + std::to_string(i));
    if (i == 500) {
      EXPECT_EQ(f.m->take_evidence_requests(), std::vector<std::string>{"router"});
      auto out = f.fire("router");  // its confirmation, 1.5 s after the first miss
      ASSERT_FALSE(out.empty());
      first_page = f.clock.now();
    }
  }
  f.run_for(10s);
  EXPECT_LT(first_page - cut, 5s);
  EXPECT_EQ(f.pages(), 1);
  auto all = f.m->incidents();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].active_impact(), 1001u);
  EXPECT_EQ(all[0].title, "router unreachable (1000 targets behind it)");
}

// The same site without depends_on: grouped by site and group, paged once.
TEST(IncidentsTest, MassOutageWithoutTopologyIsOneIncidentPerScope) {
  std::vector<std::shared_ptr<const Target>> ts;
  for (int i = 0; i < 1000; ++i) ts.push_back(target("h" + std::to_string(i), "access", "dc1"));
  ts.push_back(target("elsewhere", "core", "dc2"));
  Fixture f(ts);
  for (int i = 0; i < 1000; ++i) {
    f.clock.advance(3ms);
    f.fire("h" + std::to_string(i));
  }
  f.run_for(10s);
  EXPECT_EQ(f.pages(), 1);
  EXPECT_EQ(f.count(Kind::kDeclared), 1);
  EXPECT_EQ(f.m->incidents()[0].title, "site dc1, group access: 1000 targets unreachable (h0, h1, h2 and 997 more)");
}

// A grouped title counts what failed as it is: services when only services
// failed, named in the order they failed, every name when there are few.
TEST(IncidentsTest, AGroupOfStoppedServicesIsTitledAsServices) {
  auto service_target = [](const std::string& name) {
    auto t = std::make_shared<Target>();
    t->name = name;
    t->group = "shop";
    t->site = "ams1";
    ProbeSpec tcp;
    tcp.name = "tcp_443";
    tcp.kind = "tcp";
    t->probes.push_back(tcp);
    return std::shared_ptr<const Target>(t);
  };
  Fixture f({service_target("web-2"), service_target("web-1"), target("router", "shop", "ams1")});
  auto fire_service = [&](const std::string& name) {
    auto e = f.alert(name, true);
    e.probe = "tcp_443";
    f.m->on_alert(e);
  };
  fire_service("web-2");
  fire_service("web-1");
  f.run_for(10s);
  ASSERT_EQ(f.m->incidents().size(), 1u);
  EXPECT_EQ(f.m->incidents()[0].title, "site ams1, group shop: 2 services down (web-2 tcp_443 and web-1 tcp_443)");
  // A reachability failure joining makes it targets down, in general words.
  f.fire("router");
  f.run_for(10s);
  EXPECT_EQ(f.m->incidents()[0].title, "site ams1, group shop: 3 targets down (web-2, web-1 and router)");
}

// A target with two probes is one target; a resolved incident keeps its title.
TEST(IncidentsTest, TitlesCountTargetsAndNameTheFailure) {
  auto web = std::make_shared<Target>();
  web->name = "web-1";
  web->group = "web";
  web->probes.push_back({"icmp", "icmp", 10s, 3s, nullptr});
  web->probes.push_back({"tcp", "tcp_443", 10s, 3s, nullptr});
  Fixture f({web});
  auto a = f.alert("web-1", true);
  a.probe = "tcp_443";
  auto out = f.m->on_alert(a);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].incident.title, "web-1: service tcp_443 down");
  f.m->on_alert(f.alert("web-1", true));  // the icmp probe too
  EXPECT_EQ(f.m->incidents()[0].title, "web-1: service tcp_443 down, unreachable");
  auto ca = f.alert("web-1", false);
  ca.probe = "tcp_443";
  f.m->on_alert(ca);
  auto done = f.m->on_alert(f.alert("web-1", false));
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].kind, Kind::kResolved);
  EXPECT_EQ(done[0].incident.title, "web-1: service tcp_443 down, unreachable") << "1 target, not 2";
}

TEST(IncidentsTest, ResolvesWhenEveryAlertHasCleared) {
  Fixture f({target("a"), target("b")});
  f.fire("a");
  f.fire("b");
  auto partial = f.clear("a");
  EXPECT_TRUE(partial.empty());
  auto done = f.clear("b");
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].kind, Kind::kResolved);
  EXPECT_TRUE(done[0].page);
  EXPECT_EQ(done[0].incident.status, IncidentStatus::kResolved);
}

TEST(IncidentsTest, SameScopeFiringWithinTheReopenWindowReopens) {
  Fixture f({target("a")});
  const std::string id = f.fire("a")[0].incident.id;
  f.clear("a");
  f.clock.advance(29min);
  auto again = f.fire("a");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].kind, Kind::kReopened);
  EXPECT_EQ(again[0].incident.id, id);
  EXPECT_TRUE(again[0].incident.open());
  f.clear("a");
  f.clock.advance(31min);
  auto fresh = f.fire("a");
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0].kind, Kind::kDeclared);
  EXPECT_NE(fresh[0].incident.id, id);
}

TEST(IncidentsTest, AgentIsolationIsOneIncidentWhenCanariesFailFirst) {
  std::vector<std::shared_ptr<const Target>> ts = {target("canary1", "ref", "x", "", true),
                                                   target("canary2", "ref", "y", "", true)};
  for (int i = 0; i < 8; ++i) ts.push_back(target("t" + std::to_string(i), "g" + std::to_string(i % 3)));
  Fixture f(ts);
  f.fire("canary1");
  f.clock.advance(100ms);
  f.fire("canary2");
  for (int i = 0; i < 8; ++i) {
    f.clock.advance(100ms);
    f.fire("t" + std::to_string(i));
  }
  f.run_for(10s);
  EXPECT_EQ(f.count(Kind::kDeclared), 1);
  EXPECT_EQ(f.pages(), 1);
  auto all = f.m->incidents();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_TRUE(all[0].vantage);
  EXPECT_EQ(all[0].active_impact(), 10u);
  EXPECT_NE(all[0].title.find("cannot reach 10 of 10 targets"), std::string::npos) << all[0].title;
}

TEST(IncidentsTest, ACanaryDownAloneIsDeclaredAfterTheShortHold) {
  Fixture f({target("canary1", "ref", "x", "", true), target("a"), target("b"), target("c"), target("d")});
  auto out = f.fire("canary1");
  EXPECT_TRUE(out.empty()) << "held while isolation is plausible";
  f.run_for(1900ms);
  EXPECT_EQ(f.count(Kind::kDeclared), 0);
  f.run_for(200ms);
  EXPECT_EQ(f.count(Kind::kDeclared), 1);
  EXPECT_FALSE(f.m->incidents()[0].vantage);
}

TEST(IncidentsTest, WithoutCanariesIsolationIsDeclaredByRatioAndAbsorbsTheRest) {
  std::vector<std::shared_ptr<const Target>> ts;
  for (int i = 0; i < 10; ++i) ts.push_back(target("t" + std::to_string(i), "g" + std::to_string(i)));
  Fixture f(ts);
  for (int i = 0; i < 10; ++i) f.fire("t" + std::to_string(i));
  EXPECT_EQ(f.count(Kind::kDeclared), 10) << "9 ordinary declarations, then isolation when every scope is down";
  EXPECT_EQ(f.count(Kind::kMerged), 9);
  int open = 0;
  for (const auto& inc : f.m->incidents()) open += inc.open() ? 1 : 0;
  EXPECT_EQ(open, 1);
  EXPECT_TRUE(f.m->incidents()[0].vantage);
}

TEST(IncidentsTest, AcknowledgeNoteAndResolveByHand) {
  Fixture f({target("a")});
  const std::string id = f.fire("a")[0].incident.id;
  auto ack = f.m->acknowledge(id, "alice");
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(ack->incident.status, IncidentStatus::kAcknowledged);
  EXPECT_EQ(ack->incident.acknowledged_by, "alice");
  EXPECT_FALSE(f.m->acknowledge(id, "bob").ok()) << "already acknowledged";
  auto note = f.m->add_note(id, "fibre cut near the exchange; crew on site, fix expected 14:00", true, "alice");
  ASSERT_TRUE(note.ok());
  EXPECT_TRUE(note->incident.timeline.back().is_public);
  EXPECT_FALSE(f.m->add_note(id, "", false, "alice").ok());
  auto resolved = f.m->resolve(id, "alice");
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(resolved->incident.status, IncidentStatus::kResolved);
  EXPECT_FALSE(f.m->resolve(id, "alice").ok());
  auto missing = f.m->acknowledge("NS-nope", "x");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST(IncidentsTest, OverduePromiseRemindsOnceAndAPublicNoteRenewsIt) {
  Fixture f({target("a")});
  const std::string id = f.fire("a")[0].incident.id;
  f.run_for(30min - 1s);
  EXPECT_EQ(f.count(Kind::kUpdateOverdue), 0);
  f.run_for(2s);
  EXPECT_EQ(f.count(Kind::kUpdateOverdue), 1);
  f.run_for(1h);
  EXPECT_EQ(f.count(Kind::kUpdateOverdue), 1) << "reminded once, not every tick";
  ASSERT_TRUE(f.m->add_note(id, "still working on it", true, "alice").ok());
  f.run_for(30min + 1s);
  EXPECT_EQ(f.count(Kind::kUpdateOverdue), 2);
}

TEST(IncidentsTest, LongResolvedIncidentsAreForgottenFromMemory) {
  Fixture f({target("a"), target("b", "other")});
  const std::string old_id = f.fire("a")[0].incident.id;
  f.clear("a");
  f.clock.advance(25h);
  f.fire("b");
  EXPECT_EQ(f.m->find(old_id), nullptr);
  EXPECT_EQ(f.m->incidents().size(), 1u);
}

TEST(IncidentsTest, RestoredIncidentsStayOpenAndKeepTheirIds) {
  Fixture f({target("a")});
  const Incident before = f.fire("a")[0].incident;
  Fixture g({target("a")});
  g.m->restore({before}, f.m->next_sequence());
  ASSERT_NE(g.m->find(before.id), nullptr);
  EXPECT_TRUE(g.m->find(before.id)->open());
  // The same alert firing again after a restart joins, it does not page again.
  auto out = g.fire("a");
  EXPECT_TRUE(out.empty());
  auto next = g.fire("other");
  ASSERT_EQ(next.size(), 1u);
  EXPECT_NE(next[0].incident.id, before.id);
}

}  // namespace
}  // namespace nightshift
