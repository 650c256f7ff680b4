// Rule engine on a simulated clock: timelines of samples in, alert changes out.
#include "rules/rule_engine.h"

#include "config/config.h"

#include <gtest/gtest.h>

#include <random>

#include "rules/default_rules.h"

namespace nightshift::rules {
namespace {

using namespace std::chrono_literals;

RuleSpec rule(const std::string& name, const std::string& condition, Duration for_d, Duration clear_for,
              Selector selector = {}, Duration window = 2min) {
  auto c = Condition::parse(condition, rule_variables());
  EXPECT_TRUE(c.ok()) << condition << ": " << (c.ok() ? "" : c.error().message);
  RuleSpec r{name, c.value(), {}, Severity::kCritical, std::move(selector), window};
  r.timing.for_duration = for_d;
  r.timing.clear_for = clear_for;
  r.timing.max_flips = 0;
  return r;
}

Target target(const std::string& name, const std::string& group = "core") {
  Target t;
  t.name = name;
  t.address = "127.0.0.1";
  t.group = group;
  ProbeSpec p;
  p.kind = "icmp";
  p.name = "icmp";
  t.probes.push_back(p);
  return t;
}

Sample sample(const Target& t, bool ok, double loss = -1, std::vector<double> rtts = {}) {
  Sample s;
  s.target = t.name;
  s.probe = "icmp";
  s.kind = "icmp";
  s.ok = ok;
  s.reason = ok ? FailureReason::kNone : FailureReason::kTimeout;
  if (loss >= 0) s.values.emplace_back("loss_ratio", loss);
  for (double r : rtts) s.observations.emplace_back("rtt_seconds", r);
  return s;
}

// Push-at / expect: feeds samples at the given offsets and records the notified
// changes with their time offsets.
struct Timeline {
  ManualClock clock;
  SteadyTime start = clock.now();
  std::unique_ptr<RuleEngine> engine;
  std::vector<std::pair<Duration, AlertEvent>> seen;

  explicit Timeline(std::vector<RuleSpec> rules) : engine(std::make_unique<RuleEngine>(clock, std::move(rules))) {}

  void at(Duration offset, const Target& t, const Sample& s) {
    run_until(offset);
    for (auto& e : engine->on_sample(t, s)) seen.emplace_back(offset, e);
  }
  // Moves time on, running tick() at every deadline on the way.
  void run_until(Duration offset) {
    for (int guard = 0; guard < 100000; ++guard) {
      auto d = engine->next_deadline();
      if (!d || *d > start + offset) break;
      clock.set(std::max(*d, clock.now()));
      for (auto& e : engine->tick()) seen.emplace_back(clock.now() - start, e);
    }
    clock.set(start + offset);
  }
  std::vector<AlertEvent> notified_events() const {
    std::vector<AlertEvent> out;
    for (const auto& [t, e] : seen) {
      if (e.change.notify) out.push_back(e);
    }
    return out;
  }
  std::vector<std::pair<Duration, AlertPhase>> notified() const {
    std::vector<std::pair<Duration, AlertPhase>> out;
    for (const auto& [t, e] : seen) {
      if (e.change.notify) out.emplace_back(t, e.change.to);
    }
    return out;
  }
};

TEST(RuleEngineTest, DownFiresAfterForAndResolvesAfterClearFor) {
  Timeline tl({rule("down", "success == 0", 30s, 20s)});
  const Target t = target("r1");
  for (int i = 0; i <= 20; ++i) {
    const bool ok = i < 5 || i > 12;  // down from 50 s to 120 s
    tl.at(i * 10s, t, sample(t, ok));
  }
  const std::vector<std::pair<Duration, AlertPhase>> want = {{80s, AlertPhase::kFiring}, {150s, AlertPhase::kInactive}};
  EXPECT_EQ(tl.notified(), want);
  ASSERT_FALSE(tl.seen.empty());
  // The expression is for operators, kept apart; the summary is in words.
  EXPECT_NE(tl.seen[1].second.expression.find("success == 0 (success=0)"), std::string::npos)
      << tl.seen[1].second.expression;
  EXPECT_NE(tl.seen[1].second.expression.find("last failure timeout"), std::string::npos);
  EXPECT_EQ(tl.seen[1].second.summary.find("=="), std::string::npos) << tl.seen[1].second.summary;
  EXPECT_EQ(tl.seen[1].second.summary.rfind("r1 unreachable: ", 0), 0u) << tl.seen[1].second.summary;
}

// Pages in operator language: the target, the cause and the evidence, never
// the rule's expression text.
TEST(RuleEngineTest, ConfirmedDownSummaryNamesTargetCauseAndEvidence) {
  Timeline tl(default_rules(rule_variables()));
  const Target t = target("web-1");
  tl.at(0s, t, sample(t, true, 0, {0.001}));
  Sample down = sample(t, false, 1.0);
  down.detail = "no reply from 198.51.100.2 to 1 echo and 12 of 12 confirmation echoes lost";
  down.values.emplace_back("confirmation", 1.0);
  tl.at(10s, t, down);
  const auto events = tl.notified_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].rule, "target_down");
  EXPECT_EQ(events[0].summary,
            "web-1 unreachable: no reply from 198.51.100.2 to 1 echo and 12 of 12 confirmation echoes lost");
  EXPECT_EQ(events[0].expression.rfind("consecutive_failures >= 3 or confirmed_down (", 0), 0u) << events[0].expression;
}

TEST(RuleEngineTest, RefusedServiceSummaryNamesTheProbe) {
  Timeline tl(default_rules(rule_variables()));
  Target t = target("api");
  t.probes.front().kind = "tcp";
  t.probes.front().name = "tcp_443";
  Sample refused;
  refused.target = "api";
  refused.probe = "tcp_443";
  refused.kind = "tcp";
  refused.reason = FailureReason::kRefused;
  refused.detail = "connect to 198.51.100.7:443 refused; 3 of 3 confirmation connects refused";
  refused.values.emplace_back("confirmation", 1.0);
  tl.at(0s, t, refused);
  const auto events = tl.notified_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].summary,
            "api tcp_443 refusing connections: connect to 198.51.100.7:443 refused; 3 of 3 confirmation connects refused");
}

TEST(RuleEngineTest, FailuresInARowSummaryCountsThem) {
  Timeline tl(default_rules(rule_variables()));
  const Target t = target("db-2");
  for (int i = 0; i < 3; ++i) {
    Sample s = sample(t, false);
    s.detail = "no reply from 198.51.100.9 to 3 echo requests within 3s";
    tl.at(i * 10s, t, s);
  }
  const auto events = tl.notified_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].summary,
            "db-2 unreachable: 3 failed runs in a row; last: no reply from 198.51.100.9 to 3 echo requests within 3s");
}

TEST(RuleEngineTest, NonFailureRuleSummaryGivesValuesInUnits) {
  Timeline tl({rule("packet_loss", "loss > 20%", 0s, 0s, {}, 2min)});
  const Target t = target("edge");
  tl.at(0s, t, sample(t, true, 0.5, {0.002}));
  const auto events = tl.notified_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].summary, "edge losing packets: loss 50 %");
  EXPECT_EQ(events[0].expression, "loss > 20% (loss=0.5)");
  Timeline custom({rule("slow_dns_path", "rtt_p95 > 100ms", 0s, 0s)});
  custom.at(0s, t, sample(t, true, 0, {0.25}));
  ASSERT_EQ(custom.notified_events().size(), 1u);
  EXPECT_EQ(custom.notified_events()[0].summary, "edge slow dns path: rtt_p95 250 ms");
}

TEST(RuleEngineTest, SustainCompletesOnTheClockBetweenSparseSamples) {
  Timeline tl({rule("down", "success == 0", 15s, 0s)});
  const Target t = target("r1");
  tl.at(0s, t, sample(t, false));
  tl.at(10s, t, sample(t, false));
  tl.run_until(60s);
  const std::vector<std::pair<Duration, AlertPhase>> want = {{15s, AlertPhase::kFiring}};
  EXPECT_EQ(tl.notified(), want);
}

TEST(RuleEngineTest, LossOverTheWindowUsesTheSamplesLossRatio) {
  Timeline tl({rule("loss", "loss > 20%", 1min, 1min)});
  const Target t = target("r1");
  // 10 s rounds with 40 % loss for 3 minutes, then clean.
  for (int i = 0; i < 36; ++i) tl.at(i * 10s, t, sample(t, true, i < 18 ? 0.4 : 0.0));
  auto n = tl.notified();
  ASSERT_EQ(n.size(), 2u);
  EXPECT_EQ(n[0], std::make_pair(Duration(60s), AlertPhase::kFiring));
  // The 2-minute window keeps loss above 20 % until 40 % rounds are under half of it.
  EXPECT_EQ(n[1].second, AlertPhase::kInactive);
  EXPECT_GE(n[1].first, 180s + 60s);
}

// The window's running sums against a count done afresh at every sample: two
// rules with different windows, ten times more samples than a window keeps,
// irregular gaps, failures, loss values and confirmations mixed.
TEST(RuleEngineTest, RunningWindowSumsEqualAFreshCount) {
  Timeline tl({rule("loss", "loss > 30% and samples >= 5", 0s, 0s, {}, 90s),
               rule("fails", "failure_ratio > 0.25", 0s, 0s, {}, 4min)});
  const Target t = target("r1");
  struct Seen {
    Duration at;
    bool ok;
    double loss;
    bool counts_loss;
  };
  std::vector<Seen> kept;  // what the window keeps: the newest kMaxWindowEntries, within the longest window
  std::uint32_t x = 12345;
  auto next = [&x] { return x = x * 1103515245u + 12345u, (x >> 16) % 1000; };
  Duration now = 0s;
  int loss_fired = 0, fails_fired = 0;
  for (int i = 0; i < 1400; ++i) {
    now += std::chrono::milliseconds(200 + next() * 2);
    // Bad and good spells of 150 samples: the windows cross both thresholds.
    const bool bad = (i / 150) % 2 == 1;
    const bool ok = next() >= (bad ? 400u : 50u);
    const double loss = ok ? static_cast<double>(next() % (bad ? 4 : 9) != 0 && (bad || next() % 8 == 0) ? 1 + next() % 2 : 0) / 3.0 : 1.0;
    Sample s = sample(t, ok, loss);
    const bool confirmation = !ok && next() % 2 == 0;
    if (confirmation) s.values.emplace_back("confirmation", 1.0);
    tl.at(now, t, s);
    kept.push_back({now, ok, static_cast<double>(static_cast<float>(loss)), ok && !confirmation});
    while (kept.size() > kMaxWindowEntries || now - kept.front().at > 4min) kept.erase(kept.begin());
    // The fresh count, as the rules read it.
    double loss_sum = 0;
    int runs90 = 0, loss_runs = 0, runs240 = 0, fails240 = 0;
    for (const Seen& e : kept) {
      if (e.at >= now - 90s) {
        ++runs90;
        if (e.counts_loss) {
          loss_sum += e.loss;
          ++loss_runs;
        }
      }
      if (e.at >= now - 4min) {
        ++runs240;
        fails240 += e.ok ? 0 : 1;
      }
    }
    const bool loss_fires = loss_runs > 0 && loss_sum / loss_runs > 0.30 && runs90 >= 5;
    const bool fails_fires = static_cast<double>(fails240) / runs240 > 0.25;
    bool loss_firing = false, fails_firing = false;
    for (const auto& e : tl.engine->firing()) {
      loss_firing |= e.rule == "loss";
      fails_firing |= e.rule == "fails";
    }
    ASSERT_EQ(loss_firing, loss_fires) << "sample " << i;
    ASSERT_EQ(fails_firing, fails_fires) << "sample " << i;
    loss_fired += loss_fires ? 1 : 0;
    fails_fired += fails_fires ? 1 : 0;
  }
  // Both conditions went both ways many times: the comparison saw each side.
  EXPECT_GT(loss_fired, 100);
  EXPECT_LT(loss_fired, 1300);
  EXPECT_GT(fails_fired, 100);
  EXPECT_LT(fails_fired, 1300);
}

// Entries keep their time in milliseconds from a window epoch that moves on
// every 37 hours or so: across several moves (and an uneven gap of days) the
// window still holds exactly the samples of its last two hours.
TEST(RuleEngineTest, WindowTimesStayExactAcrossEpochMoves) {
  Timeline tl({rule("fails", "failure_ratio > 0.25 and samples >= 3", 0s, 0s, {}, 2h)});
  const Target t = target("r1");
  std::vector<std::pair<Duration, bool>> kept;
  Duration now = 0s;
  int fired = 0, cleared = 0;
  for (int i = 0; i < 1200; ++i) {
    now += i == 600 ? Duration(50h) : Duration(std::chrono::milliseconds(7 * 60 * 1000 + 13 * (i % 7)));
    const bool ok = (i / 40) % 2 == 0 || i % 3 != 0;
    tl.at(now, t, sample(t, ok));
    kept.emplace_back(now, ok);
    while (now - kept.front().first > 2h) kept.erase(kept.begin());
    int fails = 0;
    for (const auto& [at, was_ok] : kept) fails += was_ok ? 0 : 1;
    const bool fires = kept.size() >= 3 && static_cast<double>(fails) / static_cast<double>(kept.size()) > 0.25;
    ASSERT_EQ(!tl.engine->firing().empty(), fires) << "sample " << i << " at " << now.count();
    (fires ? fired : cleared) += 1;
  }
  EXPECT_GT(now, Duration(150h));  // four epoch moves at least
  EXPECT_GT(fired, 100);
  EXPECT_GT(cleared, 100);
}

TEST(RuleEngineTest, RandomLossBelowThresholdNeverFires) {
  // 5 % random loss for an hour never crosses a 20 % two-minute window mean
  // sustained for two minutes (36 packets a window: 20 % is 4 sigma away).
  // At 15 % it would: small windows are noisy, which is why "down" needs
  // confirmation evidence rather than a loss threshold.
  Timeline tl({rule("loss", "loss > 20%", 2min, 1min)});
  const Target t = target("r1");
  std::mt19937 rng(42);
  std::binomial_distribution<int> lost(3, 0.05);  // 3 packets a round
  for (int i = 0; i < 360; ++i) tl.at(i * 10s, t, sample(t, true, lost(rng) / 3.0));
  EXPECT_TRUE(tl.notified().empty());
}

TEST(RuleEngineTest, LatencyPercentileFromRttObservations) {
  Timeline tl({rule("slow", "rtt_p95 > 150ms", 0s, 0s, {}, 1min)});
  const Target t = target("r1");
  std::vector<double> fast(20, 0.010);
  tl.at(0s, t, sample(t, true, 0, fast));
  EXPECT_TRUE(tl.notified().empty());
  std::vector<double> slow(20, 0.400);
  tl.at(10s, t, sample(t, true, 0, slow));  // 20 of 40 values slow: p95 = 400 ms
  ASSERT_EQ(tl.notified().size(), 1u);
}

TEST(RuleEngineTest, SelectorLimitsARuleToMatchingTargets) {
  Timeline tl({rule("core-down", "success == 0", 0s, 0s, {{"group", "core"}})});
  const Target core = target("c1", "core");
  const Target edge = target("e1", "edge");
  tl.at(0s, edge, sample(edge, false));
  EXPECT_TRUE(tl.notified().empty());
  tl.at(1s, core, sample(core, false));
  ASSERT_EQ(tl.notified().size(), 1u);
  EXPECT_EQ(tl.seen.back().second.target, "c1");
}

TEST(RuleEngineTest, SelectorOnAnUnknownLabelSelectsNothing) {
  Timeline tl({rule("r", "success == 0", 0s, 0s, {{"role", "bastion"}})});
  const Target t = target("c1");
  tl.at(0s, t, sample(t, false));
  EXPECT_TRUE(tl.notified().empty());
}

TEST(RuleEngineTest, EachTargetHasItsOwnAlert) {
  Timeline tl({rule("down", "success == 0", 0s, 0s)});
  std::vector<Target> ts;
  for (int i = 0; i < 40; ++i) ts.push_back(target("t" + std::to_string(i)));
  for (const auto& t : ts) tl.at(1s, t, sample(t, false));
  EXPECT_EQ(tl.notified().size(), 40u);
  EXPECT_EQ(tl.engine->firing().size(), 40u);
}

TEST(RuleEngineTest, RemovingAFiringTargetResolvesItsAlert) {
  Timeline tl({rule("down", "success == 0", 0s, 0s)});
  const Target a = target("a");
  const Target b = target("b");
  tl.at(0s, a, sample(a, false));
  tl.at(0s, b, sample(b, false));
  auto events = tl.engine->retain({std::make_shared<Target>(b)});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].target, "a");
  EXPECT_EQ(events[0].change.to, AlertPhase::kInactive);
  EXPECT_EQ(tl.engine->firing().size(), 1u);
}

TEST(RuleEngineTest, LatencyFarAboveTheLearnedBaselineFires) {
  Timeline tl({rule("latency", "rtt_ratio > 3 and rtt_p95 > 20ms", 5min, 5min, {}, 5min)});
  const Target t = target("r1");
  // An hour of normal 10 ms round trips teaches the baseline.
  for (int i = 0; i < 360; ++i) tl.at(i * 10s, t, sample(t, true, 0, {0.010, 0.011, 0.009}));
  EXPECT_TRUE(tl.notified().empty());
  // Then 80 ms for ten minutes: fires after the 5 minutes of sustain, and the
  // window must first be mostly slow (p95 over 5 min).
  for (int i = 360; i < 420; ++i) tl.at(i * 10s, t, sample(t, true, 0, {0.080, 0.081, 0.079}));
  auto n = tl.notified();
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].second, AlertPhase::kFiring);
  EXPECT_GE(n[0].first, 3600s + 5min);
  EXPECT_LE(n[0].first, 3600s + 6min);
}

// The baseline learns in time, not in samples: the same sustained shift warns
// at a 1 s interval as at 10 s (per-sample weights let 1 s probes absorb it
// within minutes).
TEST(RuleEngineTest, BaselineLearnsPerTimeSoASustainedShiftWarnsAtOneSecondToo) {
  Timeline tl({rule("latency", "rtt_ratio > 3 and rtt_p95 > 20ms", 5min, 5min, {}, 5min)});
  const Target t = target("r1");
  for (int i = 0; i < 3600; ++i) tl.at(i * 1s, t, sample(t, true, 0, {0.010, 0.011, 0.009}));
  EXPECT_TRUE(tl.notified().empty());
  for (int i = 3600; i < 4200; ++i) tl.at(i * 1s, t, sample(t, true, 0, {0.080, 0.081, 0.079}));
  auto n = tl.notified();
  ASSERT_EQ(n.size(), 1u) << "fires, and the learning has not absorbed the shift within 10 minutes";
  EXPECT_EQ(n[0].second, AlertPhase::kFiring);
  EXPECT_LE(n[0].first, 3600s + 6min);
}

// An outage's own rounds (every echo lost) are target_down's evidence: once
// it is over, packet_loss over a window full of them must not fire.
TEST(RuleEngineTest, LossRuleIgnoresAnOutagesOwnRounds) {
  Timeline tl({rule("packet_loss", "loss > 20%", 2min, 2min, {}, 2min)});
  const Target t = target("r1");
  int i = 0;
  for (; i < 30; ++i) tl.at(i * 10s, t, sample(t, true, 0.0));
  for (; i < 36; ++i) tl.at(i * 10s, t, sample(t, false, 1.0));  // a minute down
  for (; i < 80; ++i) tl.at(i * 10s, t, sample(t, true, 0.0));
  EXPECT_TRUE(tl.notified().empty());
  // Real loss on rounds that get through still warns.
  for (; i < 110; ++i) tl.at(i * 10s, t, sample(t, true, 1.0 / 3));
  ASSERT_EQ(tl.notified().size(), 1u);
}

// The built-in rules cover what the kinds measure: an SNMP interface down
// (admin up, oper down) pages at once, a reboot is an info notice, a pcap
// traffic drop warns after two minutes.
TEST(RuleEngineTest, BuiltinRulesCoverSnmpAndPcapMeasurements) {
  Timeline tl(default_rules(rule_variables()));
  const Target sw = target("sw1");
  auto snmp = [&](double down, double rebooted) {
    Sample s;
    s.target = "sw1";
    s.probe = "snmp";
    s.kind = "snmp";
    s.ok = true;
    s.values = {{"interfaces", 4}, {"interfaces_down", down}, {"rebooted", rebooted}};
    return s;
  };
  tl.at(0s, sw, snmp(0, 0));
  tl.at(10s, sw, snmp(1, 0));
  tl.at(20s, sw, snmp(1, 1));
  auto n = tl.notified_events();
  ASSERT_EQ(n.size(), 2u);
  EXPECT_EQ(n[0].rule, "interface_down");
  EXPECT_EQ(n[0].severity, Severity::kCritical);
  EXPECT_EQ(n[1].rule, "device_rebooted");
  EXPECT_EQ(n[1].severity, Severity::kInfo);
  const Target edge = target("edge-prefix");
  Sample pcap;
  pcap.target = "edge-prefix";
  pcap.probe = "pcap";
  pcap.kind = "pcap";
  pcap.ok = true;
  pcap.values = {{"traffic_drop", 0.95}};
  for (int i = 0; i <= 13; ++i) tl.at(30s + i * 10s, edge, pcap);
  n = tl.notified_events();
  ASSERT_EQ(n.size(), 3u);
  EXPECT_EQ(n[2].rule, "traffic_drop");
  EXPECT_EQ(n[2].change.to, AlertPhase::kFiring);
}

TEST(RuleEngineTest, NoBaselineBeforeWarmupMeansNoLatencyAlert) {
  Timeline tl({rule("latency", "rtt_ratio > 3", 0s, 0s)});
  const Target t = target("r1");
  for (int i = 0; i < 5; ++i) tl.at(i * 10s, t, sample(t, true, 0, {0.010}));
  tl.at(60s, t, sample(t, true, 0, {1.0}));
  EXPECT_TRUE(tl.notified().empty());
}

TEST(RuleEngineTest, RemovingAPendingTargetClearsItQuietly) {
  Timeline tl({rule("down", "success == 0", 1min, 0s)});
  const Target a = target("a");
  tl.at(0s, a, sample(a, false));
  auto events = tl.engine->retain({});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].change.from, AlertPhase::kPending);
  EXPECT_EQ(events[0].change.to, AlertPhase::kInactive);
  EXPECT_FALSE(events[0].change.notify);
  EXPECT_EQ(tl.engine->next_deadline(), std::nullopt);
}

TEST(RuleEngineTest, ConsecutiveFailuresCountsRunsInARow) {
  Timeline tl({rule("down", "consecutive_failures >= 3", 0s, 0s)});
  const Target t = target("r1");
  tl.at(0s, t, sample(t, false));
  tl.at(1s, t, sample(t, false));
  tl.at(2s, t, sample(t, true));  // breaks the run
  tl.at(3s, t, sample(t, false));
  tl.at(4s, t, sample(t, false));
  EXPECT_TRUE(tl.notified().empty());
  tl.at(5s, t, sample(t, false));
  ASSERT_EQ(tl.notified().size(), 1u);
  EXPECT_EQ(tl.notified()[0].first, 5s);
}

}  // namespace
}  // namespace nightshift::rules
