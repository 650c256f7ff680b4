// The pipeline on a simulated clock: timelines of samples in, pages out.
// Real rules (the built-in ones), the real incident manager and paging; only
// the store, the notifier and the engines are replaced by an in-memory
// Effects that records what the pipeline asked for.
#include "pipeline/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <queue>
#include <set>

#include "config/config.h"
#include "core/scheduler.h"
#include "rules/default_rules.h"

namespace nightshift {
namespace {

using namespace std::chrono_literals;

struct Commit {
  SteadyTime at;
  std::optional<Incident> incident;
  std::vector<OutboxEntry> rows;
};

struct Confirmation {
  SteadyTime at;
  std::string target, probe;
};

class MemoryEffects final : public PipelineEffects {
 public:
  explicit MemoryEffects(const Clock& clock) : clock_(clock) {}
  void commit(const Incident* incident, std::vector<OutboxEntry> rows) override {
    commits.push_back({clock_.now(), incident ? std::optional<Incident>(*incident) : std::nullopt, std::move(rows)});
  }
  bool confirm(const std::shared_ptr<const Target>& target, const ProbeSpec& spec) override {
    confirmations.push_back({clock_.now(), target->name, spec.name});
    return spec.kind == "icmp";  // only ICMP has a burst, as the real engines
  }
  bool has_confirmation(const ProbeSpec& spec) const override { return spec.kind == "icmp"; }
  void diagnose(const Incident& incident) override { diagnosed.push_back(incident.id); }
  void uncertainty_changed(const std::string& target, const std::string& probe, bool uncertain) override {
    uncertainty.push_back({clock_.now(), target + "/" + probe, uncertain});
    if (on_uncertain) on_uncertain(target, probe, uncertain);
  }
  struct Uncertainty {
    SteadyTime at;
    std::string key;
    bool uncertain;
  };
  std::vector<Uncertainty> uncertainty;
  std::function<void(const std::string&, const std::string&, bool)> on_uncertain;
  std::vector<Commit> commits;
  std::vector<Confirmation> confirmations;
  std::vector<std::string> diagnosed;

 private:
  const Clock& clock_;
};

struct Row {
  SteadyTime at;
  OutboxEntry entry;
};

class Timeline {
 public:
  explicit Timeline(std::vector<std::shared_ptr<const Target>> targets, NotifyPolicy notify = {},
                    IncidentPolicy policy = {})
      : fx_(clock_) {
    PipelineSettings s;
    s.rules = rules::default_rules(rule_variables());
    s.incidents = policy;
    SinkSpec pager;
    pager.name = "pager";
    pager.url = "http://127.0.0.1:1/pager";
    pager.min_severity = Severity::kCritical;
    SinkSpec chat;
    chat.name = "chat";
    chat.url = "http://127.0.0.1:1/chat";
    chat.min_severity = Severity::kWarning;
    s.sinks = {pager, chat};
    s.notify = notify;
    s.notify.status_url = "https://status.example.net/status";
    s.targets = targets;
    for (const auto& t : targets) targets_[t->name] = t;
    start_ = clock_.now();
    pipeline_ = std::make_unique<Pipeline>(clock_, std::move(s), fx_);
  }

  // Moves simulated time to `t` after the start, running tick() at every
  // deadline on the way (as the daemon's timer would).
  void at(Duration t) {
    const SteadyTime end = start_ + t;
    for (int guard = 0; guard < 100000; ++guard) {
      auto due = pipeline_->next_deadline();
      if (!due || *due > end) break;
      clock_.set(std::max(*due, clock_.now()));
      pipeline_->tick();
    }
    clock_.set(std::max(end, clock_.now()));
  }
  void ok(const std::string& target, Duration t) { sample(target, t, true, false); }
  void miss(const std::string& target, Duration t) { sample(target, t, false, false); }
  // A confirmation burst after a miss: every echo lost (or answered).
  void burst_lost(const std::string& target, Duration t) { sample(target, t, false, true); }
  void burst_answered(const std::string& target, Duration t) { sample(target, t, true, true); }
  // A round whose first echoes were answered and whose miss then confirmed down.
  void burst_lost_after_reply(const std::string& target, Duration t) { sample(target, t, false, true, true); }
  // A round that got through, having lost `loss` of its echoes.
  void lossy(const std::string& target, Duration t, double loss) { sample(target, t, true, false, false, loss); }

  // One SNMP poll of `target` that answered, with `interfaces_down` of 4
  // selected interfaces admin up and oper down.
  void poll(const std::string& target, Duration t, int interfaces_down, int rebooted = 0) {
    at(t);
    const auto& tg = targets_.at(target);
    const ProbeSpec& spec = tg->probes.front();
    Sample s;
    s.target = target;
    s.probe = spec.name;
    s.kind = spec.kind;
    s.started = clock_.now();
    s.duration = 20ms;
    s.ok = true;
    s.values = {{"interfaces", 4}, {"interfaces_down", interfaces_down}, {"rebooted", rebooted}};
    pipeline_->on_sample(tg, s);
  }

  // Every round of `target` every `interval` from `from` to `to`, up or down.
  void rounds(const std::string& target, Duration from, Duration to, Duration interval, bool up) {
    for (Duration t = from; t <= to; t += interval) sample(target, t, up, false);
  }

  // Rows a sink received, in order, with when they were written.
  std::vector<Row> rows(const std::string& sink, const std::string& event = "") const {
    std::vector<Row> out;
    for (const auto& c : fx_.commits) {
      for (const auto& r : c.rows) {
        if (r.sink == sink && (event.empty() || r.event == event)) out.push_back({c.at, r});
      }
    }
    return out;
  }
  // Pages: what rings the on-call (declared, reopened, renotify, escalated).
  std::vector<Row> pages() const {
    std::vector<Row> out;
    for (const auto& r : rows("pager")) {
      if (r.entry.event == "declared" || r.entry.event == "reopened" || r.entry.event == "renotify" ||
          r.entry.event == "escalated") {
        out.push_back(r);
      }
    }
    return out;
  }
  // Seconds since the start, for messages and range checks.
  double seconds(SteadyTime t) const { return std::chrono::duration<double>(t - start_).count(); }
  void expect_page_between(Duration from, Duration to, const std::string& title_has) const {
    auto p = pages();
    ASSERT_FALSE(p.empty()) << "no page at all";
    EXPECT_GE(p.front().at, start_ + from) << "first page at " << seconds(p.front().at) << " s";
    EXPECT_LE(p.front().at, start_ + to) << "first page at " << seconds(p.front().at) << " s";
    const Incident* inc = pipeline_->incidents().find(p.front().entry.incident);
    ASSERT_NE(inc, nullptr);
    EXPECT_NE(inc->title.find(title_has), std::string::npos) << inc->title;
  }
  std::vector<Incident> open_incidents() const {
    std::vector<Incident> out;
    for (const auto& inc : pipeline_->incidents().incidents()) {
      if (inc.open()) out.push_back(inc);
    }
    return out;
  }

  Pipeline& pipeline() { return *pipeline_; }
  MemoryEffects& effects() { return fx_; }
  ManualClock& clock() { return clock_; }
  SteadyTime start() const { return start_; }

 private:
  void sample(const std::string& target, Duration t, bool ok, bool burst, bool answered_before = false,
              double loss = -1) {
    at(t);
    const auto& tg = targets_.at(target);
    const ProbeSpec& spec = tg->probes.front();
    Sample s;
    s.target = target;
    s.probe = spec.name;
    s.kind = spec.kind;
    s.started = clock_.now();
    s.duration = ok ? 1ms : spec.timeout;
    s.ok = ok;
    s.reason = ok ? FailureReason::kNone : FailureReason::kTimeout;
    if (spec.kind == "icmp") {
      if (burst) s.values.emplace_back("confirmation", 1.0);
      s.values.emplace_back("loss_ratio", loss >= 0 ? loss : ok ? 0.0 : 1.0);
      if (ok || answered_before) s.observations.emplace_back("rtt_seconds", 0.001);
    }
    pipeline_->on_sample(tg, s);
  }

  ManualClock clock_;
  MemoryEffects fx_;
  SteadyTime start_;
  std::map<std::string, std::shared_ptr<const Target>> targets_;
  std::unique_ptr<Pipeline> pipeline_;
};

std::shared_ptr<const Target> host(const std::string& name, const std::string& kind = "icmp",
                                   const std::string& group = "core", const std::string& site = "fra",
                                   const std::string& parent = "", bool canary = false) {
  auto t = std::make_shared<Target>();
  t->name = name;
  t->group = group;
  t->site = site;
  t->depends_on = parent;
  t->canary = canary;
  ProbeSpec p;
  p.kind = kind;
  p.name = kind;
  p.interval = 10s;
  p.timeout = 2s;
  t->probes.push_back(p);
  return t;
}

TEST(PipelineTimeline, FirstMissAsksForEvidenceAndALostBurstPagesAtOnce) {
  Timeline tl({host("r1")});
  tl.rounds("r1", 0s, 20s, 10s, true);
  tl.miss("r1", 30s);
  ASSERT_EQ(tl.effects().confirmations.size(), 1u);
  EXPECT_EQ(tl.effects().confirmations[0].at, tl.start() + 30s);
  EXPECT_TRUE(tl.pages().empty()) << "one miss is never a page";
  tl.burst_lost("r1", 32s);
  tl.expect_page_between(32s, 32s, "r1");
  EXPECT_EQ(tl.pages().size(), 1u);
  EXPECT_EQ(tl.effects().diagnosed.size(), 1u) << "a declared incident asks where the path breaks";
}

TEST(PipelineTimeline, AnAnsweredBurstIsNoPage) {
  Timeline tl({host("r1")});
  tl.rounds("r1", 0s, 20s, 10s, true);
  tl.miss("r1", 30s);
  tl.burst_answered("r1", 32s);
  tl.rounds("r1", 40s, 300s, 10s, true);
  EXPECT_TRUE(tl.pages().empty());
  EXPECT_TRUE(tl.open_incidents().empty());
}

TEST(PipelineTimeline, WithoutABurstThreeFailedRunsPage) {
  Timeline tl({host("web", "tcp")});
  tl.rounds("web", 0s, 20s, 10s, true);
  tl.rounds("web", 30s, 40s, 10s, false);
  EXPECT_TRUE(tl.pages().empty());
  tl.miss("web", 50s);
  tl.expect_page_between(50s, 50s, "web");
}

TEST(PipelineTimeline, RecoveryResolvesAfterClearForAndReachesTheSinksThatHeard) {
  Timeline tl({host("r1")});
  tl.ok("r1", 0s);
  tl.miss("r1", 10s);
  tl.burst_lost("r1", 12s);
  ASSERT_EQ(tl.pages().size(), 1u);
  tl.rounds("r1", 20s, 60s, 10s, true);
  EXPECT_EQ(tl.open_incidents().size(), 0u) << "clear_for is 30 s";
  const auto resolved = tl.rows("pager", "resolved");
  ASSERT_EQ(resolved.size(), 1u);
  EXPECT_GE(resolved[0].at, tl.start() + 50s);
  EXPECT_EQ(resolved[0].entry.incident, tl.pages()[0].entry.incident);
}

TEST(PipelineTimeline, OneScopeFailingTogetherIsOneIncidentAndOnePage) {
  Timeline tl({host("a"), host("b"), host("c"), host("other", "icmp", "edge", "ams")});
  for (const char* t : {"a", "b", "c", "other"}) tl.ok(t, 0s);
  for (const char* t : {"a", "b", "c"}) {
    tl.miss(t, 10s);
    tl.burst_lost(t, 12s);
  }
  tl.at(30s);
  EXPECT_EQ(tl.pages().size(), 1u);
  ASSERT_EQ(tl.open_incidents().size(), 1u);
  EXPECT_EQ(tl.open_incidents()[0].active_impact(), 3u);
  // Failing together (within the evidence hold), all three are in the one
  // declaration: no page each, and no update a batch later.
  EXPECT_NE(tl.pages().front().entry.body.find("3 targets unreachable"), std::string::npos)
      << tl.pages().front().entry.body;
  EXPECT_EQ(tl.rows("pager", "updated").size(), 0u);
}

// A site goes dark with no depends_on: the first host whose round noticed
// waits while its scope-mates are probed now; their bursts come back lost and
// the one page names the site and all ten, not the host that noticed first.
TEST(PipelineTimeline, ASiteGoingDarkWithoutDependsOnPagesOnceNamingTheSite) {
  std::vector<std::shared_ptr<const Target>> ts;
  for (int i = 0; i < 10; ++i) ts.push_back(host("access-" + std::to_string(i), "icmp", "access"));
  ts.push_back(host("elsewhere", "icmp", "access", "ams"));
  Timeline tl(ts);
  for (const auto& t : ts) tl.ok(t->name, 0s);
  // access-0's round misses first; its burst is lost 1.2 s later.
  tl.miss("access-0", 10s);
  tl.burst_lost("access-0", 11200ms);
  std::set<std::string> asked;
  for (const auto& c : tl.effects().confirmations) {
    if (c.at >= tl.start() + 11200ms) asked.insert(c.target);
  }
  EXPECT_EQ(asked.size(), 9u) << "its nine scope-mates are probed at once";
  EXPECT_EQ(asked.count("elsewhere"), 0u);
  EXPECT_TRUE(tl.pages().empty()) << "no page before the mates are heard from";
  // Their bursts: all lost, over the next 1.3 s.
  for (int i = 1; i < 10; ++i) tl.burst_lost("access-" + std::to_string(i), 11200ms + 1200ms + i * 10ms);
  tl.at(60s);
  const auto p = tl.pages();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_LE(p.front().at, tl.start() + 12400ms + 90ms);
  EXPECT_NE(p.front().entry.body.find("site fra, group access: 10 targets unreachable (access-0, access-1, access-2 and 7 more)"),
            std::string::npos)
      << p.front().entry.body;
  EXPECT_EQ(tl.open_incidents().size(), 1u);
}

// One host fails while its scope-mates are fine: they answer the evidence
// probe within a round trip and the page goes at once, under its name.
TEST(PipelineTimeline, ALoneFailurePagesWithinARoundTripOfItsMatesAnswers) {
  Timeline tl({host("a"), host("b"), host("c")});
  for (const char* t : {"a", "b", "c"}) tl.ok(t, 0s);
  tl.miss("a", 10s);
  tl.burst_lost("a", 11200ms);
  EXPECT_TRUE(tl.pages().empty());
  tl.burst_answered("b", 11201ms);
  tl.burst_answered("c", 11202ms);
  tl.at(11202ms);
  tl.expect_page_between(11200ms, 11202ms, "a unreachable");
}

TEST(PipelineTimeline, AChildOfADownParentIsImpactNotASecondPage) {
  Timeline tl({host("router"), host("access-1", "icmp", "access", "fra", "router"),
               host("access-2", "icmp", "access", "fra", "router")});
  for (const char* t : {"router", "access-1", "access-2"}) tl.ok(t, 0s);
  tl.miss("router", 10s);
  tl.burst_lost("router", 12s);
  for (const char* t : {"access-1", "access-2"}) {
    tl.miss(t, 13s);
    tl.burst_lost(t, 15s);
  }
  tl.at(30s);
  ASSERT_EQ(tl.pages().size(), 1u);
  tl.expect_page_between(12s, 12s, "router");
  ASSERT_EQ(tl.open_incidents().size(), 1u);
  const Incident inc = tl.open_incidents()[0];
  EXPECT_EQ(inc.active_impact(), 3u);
  for (const auto& t : inc.impacted) {
    if (t.target != "router") {
      EXPECT_EQ(t.via_parent, "router") << t.target;
    }
  }
}

TEST(PipelineTimeline, AParentFailingAfterItsChildTakesTheChildsIncidentOver) {
  Timeline tl({host("router"), host("access-1", "icmp", "access", "fra", "router")});
  tl.ok("router", 0s);
  tl.ok("access-1", 0s);
  tl.miss("access-1", 10s);
  tl.burst_lost("access-1", 12s);
  tl.miss("router", 14s);
  tl.burst_lost("router", 16s);
  tl.at(30s);
  ASSERT_EQ(tl.open_incidents().size(), 1u) << "the child's incident merged into the parent's";
  EXPECT_NE(tl.open_incidents()[0].title.find("router"), std::string::npos) << tl.open_incidents()[0].title;
  EXPECT_EQ(tl.rows("pager", "merged").size() + tl.rows("pager", "resolved").size() >= 1, true)
      << "whoever heard of the child's incident hears that it is now the router's";
}

TEST(PipelineTimeline, EverythingDownWithTheCanaryIsThisAgentsIsolation) {
  std::vector<std::shared_ptr<const Target>> targets = {host("canary", "icmp", "ref", "ext", "", true)};
  for (int i = 0; i < 6; ++i) targets.push_back(host("h" + std::to_string(i), "icmp", "g" + std::to_string(i % 3)));
  Timeline tl(targets);
  for (const auto& t : targets) tl.ok(t->name, 0s);
  tl.miss("canary", 10s);
  for (const auto& t : targets) {
    if (t->name != "canary") tl.miss(t->name, 10s);
  }
  tl.burst_lost("canary", 12s);
  for (const auto& t : targets) {
    if (t->name != "canary") tl.burst_lost(t->name, 12s);
  }
  tl.at(30s);
  const auto open = tl.open_incidents();
  const auto isolated = std::count_if(open.begin(), open.end(), [](const Incident& i) { return i.vantage; });
  EXPECT_EQ(isolated, 1) << "one \"this agent is isolated\" incident";
  EXPECT_EQ(open.size(), 1u) << "it replaces the per-target ones";
  // Held while the canary fails: the per-target declarations never page.
  EXPECT_EQ(tl.pages().size(), 1u);
}

TEST(PipelineTimeline, ALinkFlappingForAMinuteIsOneIncidentPagedOnce) {
  Timeline tl({host("r1")});
  tl.ok("r1", 0s);
  for (int i = 0; i < 6; ++i) {
    const Duration t = 10s + i * 20s;
    tl.miss("r1", t);
    tl.burst_lost("r1", t + 2s);
    tl.ok("r1", t + 10s);
  }
  tl.at(130s);
  EXPECT_EQ(tl.pages().size(), 1u);
  EXPECT_EQ(tl.rows("pager", "declared").size(), 1u);
  ASSERT_EQ(tl.open_incidents().size(), 1u);
  EXPECT_TRUE(tl.open_incidents()[0].flapping) << "12 down/up changes in 2 minutes";
}

// The samples the ICMP engine makes at the defaults of a link that is down
// for `down` and up for `up` from `from` to `to`: a round every 10 s sends 3
// echoes 3.3 s apart; an echo into a down spell that stays down for the
// confirmation after it (about 0.5 s wait plus 12 echoes 80 ms apart) ends the
// round as a lost burst (with the RTTs of the echoes answered before it); else
// the round succeeds if any echo was answered.
// Returns the number of lost bursts.
int flapping_link(Timeline& tl, const std::string& target, Duration from, Duration to, Duration down, Duration up) {
  auto is_down = [&](Duration t) { return t >= from && t < to && (t - from) % (down + up) < down; };
  int lost = 0;
  for (Duration round = from - from % 10s; round < to + 10s; round += 10s) {
    bool answered = false, confirmed = false;
    for (int echo = 0; echo < 3 && !confirmed; ++echo) {
      const Duration e = round + echo * 3333ms;
      if (!is_down(e)) {
        answered = true;
        continue;
      }
      const Duration burst_end = e + 1500ms;
      bool all_lost = true;
      for (Duration b = e + 500ms; b <= burst_end; b += 80ms) all_lost = all_lost && is_down(b);
      if (all_lost) {
        if (answered) tl.burst_lost_after_reply(target, burst_end);
        else tl.burst_lost(target, burst_end);
        confirmed = true;
        ++lost;
      }
    }
    if (!confirmed) {
      if (answered) tl.ok(target, round + 7s);
      else tl.miss(target, round + 7s);
    }
  }
  return lost;
}

std::size_t count_kind(const Incident& inc, const std::string& kind) {
  return static_cast<std::size_t>(std::count_if(inc.timeline.begin(), inc.timeline.end(),
                                                [&](const TimelineEntry& e) { return e.kind == kind; }));
}

TEST(PipelineTimeline, ATargetFlappingForAMinuteIsMarkedFlappingPagedOnceAndResolvedOnce) {
  Timeline tl({host("r1")});
  tl.rounds("r1", 0s, 50s, 10s, true);
  // 3 s down / 3 s up from 60 s to 120 s, then up for good.
  const int lost = flapping_link(tl, "r1", 60s, 120s, 3s, 3s);
  ASSERT_GE(lost, 3) << "the model confirms most down spells";
  tl.at(125s);
  ASSERT_EQ(tl.pages().size(), 1u);
  ASSERT_EQ(tl.open_incidents().size(), 1u) << "still open: it has not held up for clear_for";
  const Incident flapping = tl.open_incidents()[0];
  EXPECT_TRUE(flapping.flapping);
  EXPECT_NE(flapping.flapping_since, SystemTime{});
  EXPECT_NE(flapping.title.find("(flapping)"), std::string::npos) << flapping.title;
  ASSERT_EQ(count_kind(flapping, "flapping"), 1u);
  const auto mark = std::find_if(flapping.timeline.begin(), flapping.timeline.end(),
                                 [](const TimelineEntry& e) { return e.kind == "flapping"; });
  EXPECT_NE(mark->text.find("down/up changes in"), std::string::npos) << mark->text;
  // The mark reached the sinks as an update, which pages no one.
  const auto updates = tl.rows("pager", "updated");
  ASSERT_FALSE(updates.empty());
  EXPECT_NE(updates.back().entry.body.find("\"flapping\":true"), std::string::npos);
  // Up from 120 s: resolved once, after clear_for (30 s), and the resolve says it flapped.
  tl.rounds("r1", 130s, 400s, 10s, true);
  EXPECT_TRUE(tl.open_incidents().empty());
  const auto resolved = tl.rows("pager", "resolved");
  ASSERT_EQ(resolved.size(), 1u);
  // Last down sample at 105 s, the last answered round at 117 s: 30 s later.
  EXPECT_EQ(resolved[0].at, tl.start() + 147s) << tl.seconds(resolved[0].at);
  EXPECT_NE(resolved[0].entry.body.find("(flapping)"), std::string::npos) << resolved[0].entry.body;
  EXPECT_EQ(tl.pages().size(), 1u);
  EXPECT_EQ(tl.rows("pager", "reopened").size(), 0u);
  const Incident* done = tl.pipeline().incidents().find(resolved[0].entry.incident);
  ASSERT_NE(done, nullptr);
  EXPECT_TRUE(done->flapping) << "a resolved incident still says it flapped";
  EXPECT_EQ(count_kind(*done, "settled"), 1u);
}

TEST(PipelineTimeline, AnInterfaceFlappingForAMinuteIsMarkedFlappingPagedOnceAndResolvedOnce) {
  Timeline tl({host("sw1", "snmp")});
  for (Duration t = 0s; t <= 40s; t += 10s) tl.poll("sw1", t, 0);
  // ifOperStatus down and up on every other poll for a minute.
  for (int i = 0; i < 6; ++i) tl.poll("sw1", 50s + i * 10s, i % 2 == 0 ? 1 : 0);
  tl.at(111s);
  ASSERT_EQ(tl.pages().size(), 1u);
  ASSERT_EQ(tl.open_incidents().size(), 1u);
  const Incident inc = tl.open_incidents()[0];
  EXPECT_TRUE(inc.flapping);
  EXPECT_EQ(inc.impacted.at(0).rule, "interface_down");
  EXPECT_NE(inc.title.find("(flapping)"), std::string::npos) << inc.title;
  EXPECT_EQ(count_kind(inc, "flapping"), 1u);
  for (Duration t = 110s; t <= 400s; t += 10s) tl.poll("sw1", t, 0);
  EXPECT_TRUE(tl.open_incidents().empty());
  ASSERT_EQ(tl.rows("pager", "resolved").size(), 1u);
  EXPECT_NE(tl.rows("pager", "resolved")[0].entry.body.find("(flapping)"), std::string::npos);
  EXPECT_EQ(tl.pages().size(), 1u);
}

TEST(PipelineTimeline, OneDownAndUpIsNotFlapping) {
  Timeline tl({host("r1"), host("sw1", "snmp")});
  tl.ok("r1", 0s);
  tl.poll("sw1", 0s, 0);
  tl.miss("r1", 10s);
  tl.burst_lost("r1", 12s);
  tl.poll("sw1", 12s, 1);
  for (Duration t = 20s; t <= 120s; t += 10s) {
    tl.ok("r1", t);
    tl.poll("sw1", t, 0);
  }
  EXPECT_TRUE(tl.open_incidents().empty());
  EXPECT_EQ(tl.rows("pager", "resolved").size(), 1u) << "one incident for the scope, resolved once";
  for (const auto& inc : tl.pipeline().incidents().incidents()) {
    EXPECT_FALSE(inc.flapping) << inc.title;
    EXPECT_EQ(inc.title.find("flapping"), std::string::npos) << inc.title;
    EXPECT_EQ(count_kind(inc, "flapping"), 0u);
  }
}

// The built-in SNMP rules: an interface the operator left up going oper-down
// pages at the poll that sees it; a device that rebooted is a notice to the
// sinks that take info, never a page.
TEST(PipelineTimeline, AnInterfaceDownPagesAtThePollThatSeesIt) {
  Timeline tl({host("sw1", "snmp", "access", "fra")});
  for (int i = 0; i < 3; ++i) tl.poll("sw1", std::chrono::seconds(10 * i), 0);
  tl.poll("sw1", 30s, 1);
  tl.at(31s);
  tl.expect_page_between(30s, 30s + 100ms, "sw1");
  ASSERT_EQ(tl.pages().size(), 1u);
  const Incident* inc = tl.pipeline().incidents().find(tl.pages().front().entry.incident);
  ASSERT_NE(inc, nullptr);
  EXPECT_EQ(inc->impacted.front().rule, "interface_down");
  // Up again: resolved after clear_for (30 s), once.
  for (int i = 4; i < 12; ++i) tl.poll("sw1", std::chrono::seconds(10 * i), 0);
  tl.at(120s);
  EXPECT_EQ(tl.rows("pager", "resolved").size(), 1u);
  EXPECT_EQ(tl.pages().size(), 1u);
}

TEST(PipelineTimeline, ADeviceRebootIsANoticeNotAPage) {
  NotifyPolicy notify;
  Timeline tl({host("sw1", "snmp", "access", "fra")}, notify);
  tl.poll("sw1", 0s, 0);
  tl.poll("sw1", 10s, 0, /*rebooted=*/1);
  tl.poll("sw1", 20s, 0);
  tl.at(60s);
  EXPECT_TRUE(tl.pages().empty()) << "a reboot that is over pages no one";
  EXPECT_TRUE(tl.rows("pager").empty());
  EXPECT_TRUE(tl.rows("chat").empty()) << "chat takes warnings and worse; a reboot is info";
  // It is recorded: an info incident about the device, resolved at the next poll.
  bool recorded = false;
  for (const auto& inc : tl.pipeline().incidents().incidents()) {
    bool about_reboot = false;
    for (const auto& t : inc.impacted) about_reboot = about_reboot || (t.rule == "device_rebooted" && t.target == "sw1");
    if (!about_reboot) continue;
    recorded = true;
    EXPECT_EQ(inc.severity, Severity::kInfo);
  }
  EXPECT_TRUE(recorded);
}

TEST(PipelineTimeline, TheSameFaultSoonAfterReopensTheIncident) {
  Timeline tl({host("r1")});
  tl.ok("r1", 0s);
  tl.miss("r1", 10s);
  tl.burst_lost("r1", 12s);
  tl.rounds("r1", 20s, 120s, 10s, true);
  ASSERT_TRUE(tl.open_incidents().empty());
  tl.miss("r1", 600s);
  tl.burst_lost("r1", 602s);
  const auto reopened = tl.rows("pager", "reopened");
  ASSERT_EQ(reopened.size(), 1u);
  EXPECT_EQ(reopened[0].entry.incident, tl.rows("pager", "declared")[0].entry.incident);
  EXPECT_EQ(tl.rows("pager", "declared").size(), 1u);
}

TEST(PipelineTimeline, UnacknowledgedIsRenotifiedAndAckStopsIt) {
  NotifyPolicy notify;
  notify.renotify_every = 5min;
  Timeline tl({host("r1")}, notify);
  tl.ok("r1", 0s);
  tl.miss("r1", 10s);
  tl.burst_lost("r1", 12s);
  tl.rounds("r1", 20s, 320s, 10s, false);
  const auto renotified = tl.rows("pager", "renotify");
  ASSERT_EQ(renotified.size(), 1u);
  EXPECT_GE(renotified[0].at, tl.start() + 312s - 1s);
  EXPECT_LE(renotified[0].at, tl.start() + 312s + 1s);
  const std::string id = tl.pages()[0].entry.incident;
  ASSERT_TRUE(tl.pipeline().acknowledge(id, "alice").ok());
  EXPECT_EQ(tl.rows("pager", "acknowledged").size(), 1u);
  tl.rounds("r1", 330s, 1500s, 10s, false);
  EXPECT_EQ(tl.rows("pager", "renotify").size(), 1u) << "no renotify after the acknowledgement";
  EXPECT_FALSE(tl.pipeline().acknowledge("NS-nope", "alice").ok());
}

TEST(PipelineTimeline, ASilencedOutageIsDeclaredButPagesNoOne) {
  Timeline tl({host("r1")});
  Silence s;
  s.matchers.push_back({"target", Matcher::Op::kEqual, "r1", nullptr});
  s.starts_at = SystemTime{};
  s.ends_at = SystemTime{} + std::chrono::hours(24 * 365 * 100);  // the simulated wall clock starts in 2026
  s.author = "ops";
  s.comment = "router swap";
  ASSERT_TRUE(tl.pipeline().add_silence(s).ok());
  tl.ok("r1", 0s);
  tl.miss("r1", 10s);
  tl.burst_lost("r1", 12s);
  tl.at(30s);
  EXPECT_EQ(tl.open_incidents().size(), 1u);
  EXPECT_TRUE(tl.pages().empty());
}

TEST(PipelineTimeline, SamplesOfAProbeRemovedByAReloadAreIgnored) {
  Timeline tl({host("r1"), host("r2")});
  PipelineSettings s = tl.pipeline().settings();
  s.targets.erase(s.targets.begin());
  EXPECT_FALSE(tl.pipeline().configure(s)) << "same rules: alert states kept";
  tl.miss("r1", 10s);
  tl.burst_lost("r1", 12s);
  EXPECT_TRUE(tl.pages().empty());
  EXPECT_TRUE(tl.effects().confirmations.empty());
}

// ---- Probing more while uncertain (core/scheduler.h) ------------------------

TEST(PipelineTimeline, AProbeIsUncertainFromItsFirstMissUntilItsAlertResolves) {
  Timeline tl({host("r1"), host("r2")});
  tl.rounds("r1", 0s, 20s, 10s, true);
  EXPECT_TRUE(tl.effects().uncertainty.empty()) << "steady state: nothing to say";
  tl.miss("r1", 30s);
  ASSERT_EQ(tl.effects().uncertainty.size(), 1u);
  EXPECT_EQ(tl.effects().uncertainty[0].key, "r1/icmp");
  EXPECT_TRUE(tl.effects().uncertainty[0].uncertain) << "a failed run";
  tl.burst_lost("r1", 32s);
  // Up again, but the alert fires until it has held clear for 30 s: still uncertain.
  for (Duration t = 34s; t <= 62s; t += 2s) tl.ok("r1", t);
  EXPECT_EQ(tl.effects().uncertainty.size(), 1u);
  ASSERT_EQ(tl.open_incidents().size(), 1u);
  tl.ok("r1", 64s);
  tl.at(70s);
  EXPECT_TRUE(tl.open_incidents().empty());
  ASSERT_EQ(tl.effects().uncertainty.size(), 2u);
  EXPECT_FALSE(tl.effects().uncertainty[1].uncertain) << "certain again once resolved";
  EXPECT_EQ(tl.effects().uncertainty[1].at, tl.start() + 64s) << tl.seconds(tl.effects().uncertainty[1].at);
}

TEST(PipelineTimeline, AMissTheBurstAnswersIsUncertainOnlyUntilTheNextGoodRun) {
  Timeline tl({host("r1")});
  tl.ok("r1", 0s);
  tl.miss("r1", 10s);
  tl.burst_answered("r1", 11s);
  ASSERT_EQ(tl.effects().uncertainty.size(), 2u);
  EXPECT_TRUE(tl.effects().uncertainty[0].uncertain);
  EXPECT_FALSE(tl.effects().uncertainty[1].uncertain);
}

TEST(PipelineTimeline, AWarningDoesNotMakeAProbeUncertain) {
  // 35 % loss for minutes: packet_loss pends and fires (a warning); its
  // statistics are not decided faster by more runs, so nothing accelerates.
  Timeline tl({host("r1")});
  for (Duration t = 0s; t <= 300s; t += 10s) tl.lossy("r1", t, 1.0 / 3);
  EXPECT_FALSE(tl.pipeline().firing().empty()) << "packet_loss fires";
  EXPECT_TRUE(tl.effects().uncertainty.empty());
}

// The agent's loop on the simulated clock: a Scheduler dispatches runs, a
// model of the ICMP engine turns each into the sample it would make of a link
// flapping `down` / `up` between `from` and `to`, and the pipeline's
// uncertainty goes back to the scheduler, as Agent::uncertainty_changed does.
// The engine model: a round on its slot sends 3 echoes 3.33 s apart; an
// accelerated round (span 2 s) one. A lost echo is confirmed 0.5 s to 1.5 s
// after it (12 echoes 80 ms apart) unless the target is confirmed down and
// has not answered since: all lost ends the round failed with confirmation = 1;
// an answer makes an accelerated round a success and lets a scheduled round go
// on. A scheduled round succeeds if any echo was answered.
struct FlapRun {
  int pages = 0;
  bool flapping = false;
  std::size_t accelerated_at_end = 99;
  bool open_at_end = true;
  int echoes_accelerated = 0, rounds_accelerated = 0;  // echoes and confirmation echoes
  int echoes_steady = 0, rounds_steady = 0;
};

FlapRun simulate_flap(Duration offset, bool accelerate, Duration down = 3s, Duration up = 3s) {
  auto target = host("r1");
  Timeline tl({target});
  Scheduler sched(tl.clock(), 0, 1);
  sched.set_targets({target});
  if (accelerate) {
    tl.effects().on_uncertain = [&](const std::string& t, const std::string& p, bool u) { sched.set_uncertain(t, p, u); };
  }
  const Duration from = 60s + offset, to = from + 60s;
  auto is_down = [&](Duration t) { return t >= from && t < to && (t - from) % (down + up) < down; };
  bool confirmed_down = false;  // the engine's TargetState::down
  struct Pending {
    Duration at;
    bool ok, burst, answered_before;
    bool operator>(const Pending& o) const { return at > o.at; }
  };
  std::priority_queue<Pending, std::vector<Pending>, std::greater<Pending>> pending;
  FlapRun run;
  auto since = [&] { return tl.clock().now() - tl.start(); };
  // A lost echo at `e`: true when its confirmation is all lost (and counts its echoes).
  auto confirm_all_lost = [&](Duration e, int& echoes) {
    for (Duration b = e + 500ms; b <= e + 1380ms; b += 80ms) {
      ++echoes;
      if (!is_down(b)) return false;
    }
    return true;
  };
  auto dispatch = [&](const ScheduledProbe&, Duration, Duration span) {
    const Duration t0 = since();
    if (span > 0s) {
      ++run.rounds_accelerated;
      ++run.echoes_accelerated;
      if (!is_down(t0)) {
        confirmed_down = false;
        pending.push({t0 + 1ms, true, false, false});
      } else if (confirmed_down) {
        pending.push({t0 + span * 9 / 10, false, false, false});
      } else if (confirm_all_lost(t0, run.echoes_accelerated)) {
        confirmed_down = true;
        pending.push({t0 + 1500ms, false, true, false});
      } else {
        pending.push({t0 + 1500ms, true, false, false});  // alive on its confirmation
      }
      return;
    }
    ++run.rounds_steady;
    bool answered = false;
    for (int echo = 0; echo < 3; ++echo) {
      const Duration e = t0 + echo * 3333ms;
      ++run.echoes_steady;
      if (!is_down(e)) {
        answered = true;
        confirmed_down = false;
        continue;
      }
      if (!confirmed_down && confirm_all_lost(e, run.echoes_steady)) {
        confirmed_down = true;
        pending.push({e + 1500ms, false, true, answered});
        return;
      }
    }
    pending.push({t0 + 7s, answered, false, false});
  };
  // Bounded: every step moves time on to the next run or sample, within 400 s.
  for (int step = 0; step < 100000 && since() < 400s; ++step) {
    const SteadyTime next_run = sched.run_due(dispatch);
    const Duration run_at = next_run - tl.start();
    if (!pending.empty() && pending.top().at <= run_at) {
      const Pending p = pending.top();
      pending.pop();
      if (p.burst) {
        if (p.answered_before) tl.burst_lost_after_reply("r1", p.at);
        else tl.burst_lost("r1", p.at);
      } else if (p.ok) {
        tl.ok("r1", p.at);
      } else {
        tl.miss("r1", p.at);
      }
    } else {
      tl.at(std::min<Duration>(run_at, 400s));
    }
    for (const auto& inc : tl.open_incidents()) run.flapping = run.flapping || inc.flapping;
  }
  run.pages = static_cast<int>(tl.pages().size());
  run.accelerated_at_end = sched.accelerated();
  run.open_at_end = !tl.open_incidents().empty();
  return run;
}

TEST(PipelineTimeline, AtTheDefaultIntervalALinkFlappingForAMinuteIsMarkedFlappingInEveryPhase) {
  int accelerated_rounds = 0, accelerated_echoes = 0, steady_rounds = 0, steady_echoes = 0;
  for (int offset_ms = 0; offset_ms < 10000; offset_ms += 500) {
    SCOPED_TRACE("flapping from 60 s + " + std::to_string(offset_ms) + " ms");
    const FlapRun run = simulate_flap(std::chrono::milliseconds(offset_ms), true);
    EXPECT_TRUE(run.flapping);
    EXPECT_EQ(run.pages, 1);
    EXPECT_FALSE(run.open_at_end) << "resolved once it held up";
    EXPECT_EQ(run.accelerated_at_end, 0u) << "back on its schedule after the resolve";
    accelerated_rounds += run.rounds_accelerated;
    accelerated_echoes += run.echoes_accelerated;
    steady_rounds += run.rounds_steady;
    steady_echoes += run.echoes_steady;
  }
  // Packets while accelerated: one echo per 2 s round plus the confirmations
  // of its misses, against 3 per 10 s round on the schedule.
  ASSERT_GT(accelerated_rounds, 0);
  std::printf("accelerated: %.2f echoes per round every 2 s (%.2f/s); steady: %.2f per round every 10 s (%.2f/s)\n",
              static_cast<double>(accelerated_echoes) / accelerated_rounds,
              static_cast<double>(accelerated_echoes) / accelerated_rounds / 2,
              static_cast<double>(steady_echoes) / steady_rounds,
              static_cast<double>(steady_echoes) / steady_rounds / 10);
}

TEST(PipelineTimeline, WithoutAccelerationTheDefaultRoundsAliasAFlapInSomePhases) {
  // What the acceleration is for: the same model on the schedule alone.
  int marked = 0, runs = 0;
  for (int offset_ms = 0; offset_ms < 10000; offset_ms += 500, ++runs) {
    const FlapRun run = simulate_flap(std::chrono::milliseconds(offset_ms), false);
    marked += run.flapping ? 1 : 0;
    EXPECT_EQ(run.pages, 1);
  }
  std::printf("on the schedule alone: marked flapping in %d of %d phases\n", marked, runs);
  EXPECT_LT(marked, runs);
}

}  // namespace
}  // namespace nightshift
