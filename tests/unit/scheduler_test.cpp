// Scheduler on a simulated clock: phase spread, exact cadence, rate cap, reload.
#include "core/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

namespace nightshift {
namespace {

using namespace std::chrono_literals;

std::shared_ptr<const Target> make_target(const std::string& name, Duration interval, int probes = 1) {
  auto t = std::make_shared<Target>();
  t->name = name;
  t->address = "127.0.0.1";
  for (int i = 0; i < probes; ++i) {
    ProbeSpec p;
    p.kind = "tcp";
    p.name = "p" + std::to_string(i);
    p.interval = interval;
    p.timeout = interval / 2;
    t->probes.push_back(p);
  }
  return t;
}

std::vector<std::shared_ptr<const Target>> many(int n, Duration interval, const std::string& prefix = "t") {
  std::vector<std::shared_ptr<const Target>> out;
  for (int i = 0; i < n; ++i) out.push_back(make_target(prefix + std::to_string(i), interval));
  return out;
}

struct Dispatched {
  std::string target;
  std::string probe;
  SteadyTime at;
  Duration lag;
  Duration span;  // zero: a run on its slot
};

// Runs the scheduler on the manual clock until `until`, jumping straight to each
// wake-up time. Bounded: at most `max_steps` wake-ups.
std::vector<Dispatched> drive(Scheduler& s, ManualClock& clock, SteadyTime until, int max_steps = 1'000'000) {
  std::vector<Dispatched> out;
  for (int step = 0; step < max_steps && clock.now() < until; ++step) {
    const SteadyTime next = s.run_due([&](const ScheduledProbe& p, Duration lag, Duration span) {
      out.push_back({p.target->name, p.spec->name, clock.now(), lag, span});
    });
    clock.set(std::min(next, until));
  }
  return out;
}

TEST(SchedulerTest, PhaseIsDeterministicAndWithinInterval) {
  for (int i = 0; i < 1000; ++i) {
    const std::string name = "target-" + std::to_string(i);
    const Duration a = Scheduler::phase_of(name, "icmp", 10s);
    EXPECT_EQ(a, Scheduler::phase_of(name, "icmp", 10s));
    EXPECT_GE(a, 0s);
    EXPECT_LT(a, 10s);
  }
  EXPECT_NE(Scheduler::phase_of("a", "tcp_22", 10s), Scheduler::phase_of("a", "tcp_23", 10s));
}

TEST(SchedulerTest, ThousandTargetsSpreadAcrossTheInterval) {
  ManualClock clock;
  Scheduler s(clock, /*max_per_second=*/0, /*burst=*/1);
  s.set_targets(many(1000, 10s));
  const SteadyTime start = clock.now();
  auto d = drive(s, clock, start + 10s);
  ASSERT_EQ(d.size(), 1000u) << "each probe runs once in its first interval";
  // Ten one-second buckets: a uniform spread puts ~100 in each. No bucket may
  // hold more than twice its share (all-at-once would put 1000 in one).
  std::map<long, int> buckets;
  for (const auto& x : d) buckets[std::chrono::duration_cast<std::chrono::seconds>(x.at - start).count()]++;
  EXPECT_EQ(buckets.size(), 10u);
  for (const auto& [second, count] : buckets) {
    SCOPED_TRACE("second " + std::to_string(second));
    EXPECT_GT(count, 50);
    EXPECT_LT(count, 200);
  }
  // Nobody waits on an uncapped scheduler driven at its own wake-up times.
  for (const auto& x : d) EXPECT_EQ(x.lag, 0ns);
}

TEST(SchedulerTest, SameConfigSameScheduleAcrossInstances) {
  ManualClock c1, c2;
  Scheduler a(c1, 0, 1), b(c2, 0, 1);
  a.set_targets(many(200, 5s));
  b.set_targets(many(200, 5s));
  auto da = drive(a, c1, c1.now() + 5s);
  auto db = drive(b, c2, c2.now() + 5s);
  ASSERT_EQ(da.size(), db.size());
  for (std::size_t i = 0; i < da.size(); ++i) {
    EXPECT_EQ(da[i].target, db[i].target);
    EXPECT_EQ(da[i].at, db[i].at);
  }
}

TEST(SchedulerTest, EachProbeRunsExactlyOncePerInterval) {
  ManualClock clock;
  Scheduler s(clock, 0, 1);
  s.set_targets({make_target("fast", 1s), make_target("slow", 7s, /*probes=*/2)});
  const SteadyTime start = clock.now();
  auto d = drive(s, clock, start + 70s);
  std::map<std::string, std::vector<SteadyTime>> by_probe;
  for (const auto& x : d) by_probe[x.target + "/" + x.probe].push_back(x.at);
  ASSERT_EQ(by_probe.size(), 3u);
  EXPECT_EQ(by_probe["fast/p0"].size(), 70u);
  EXPECT_EQ(by_probe["slow/p0"].size(), 10u);
  EXPECT_EQ(by_probe["slow/p1"].size(), 10u);
  for (const auto& [key, times] : by_probe) {
    SCOPED_TRACE(key);
    for (std::size_t i = 1; i < times.size(); ++i) {
      EXPECT_EQ(times[i] - times[i - 1], key == "fast/p0" ? Duration(1s) : Duration(7s));
    }
  }
}

TEST(SchedulerTest, RateCapBoundsStartsPerSecond) {
  ManualClock clock;
  // 1000 probes a second wanted, 100 a second allowed, bursts of 10.
  Scheduler s(clock, 100, 10);
  s.set_targets(many(1000, 1s));
  const SteadyTime start = clock.now();
  auto d = drive(s, clock, start + 10s);
  // 10 s at 100/s plus the initial burst.
  EXPECT_GE(d.size(), 990u);
  EXPECT_LE(d.size(), 1010u);
  // Any one-second window holds at most rate + burst starts.
  for (std::size_t i = 0; i < d.size(); ++i) {
    std::size_t j = i;
    while (j < d.size() && d[j].at - d[i].at < 1s) ++j;
    ASSERT_LE(j - i, 110u) << "window starting at dispatch " << i;
  }
  // Held-back probes report how late they were.
  const auto max_lag = std::max_element(d.begin(), d.end(), [](auto& a, auto& b) { return a.lag < b.lag; })->lag;
  EXPECT_GT(max_lag, 500ms);
}

TEST(SchedulerTest, RateCapStartsHeldBackProbesInDueOrder) {
  ManualClock clock;
  Scheduler s(clock, 10, 1);
  s.set_targets(many(50, 10s));
  auto d = drive(s, clock, clock.now() + 10s);
  ASSERT_FALSE(d.empty());
  for (std::size_t i = 1; i < d.size(); ++i) EXPECT_LE(d[i - 1].at - d[i - 1].lag, d[i].at - d[i].lag);
}

TEST(SchedulerTest, ReloadKeepsSurvivorsPhaseAndDropsRemoved) {
  ManualClock clock;
  Scheduler s(clock, 0, 1);
  s.set_targets(many(10, 10s));
  auto first = drive(s, clock, clock.now() + 25s);
  std::map<std::string, SteadyTime> last_run;
  for (const auto& x : first) last_run[x.target] = x.at;

  // Keep t0..t4, drop t5..t9, add n0..n4.
  auto next = many(5, 10s);
  auto added = many(5, 10s, "n");
  next.insert(next.end(), added.begin(), added.end());
  s.set_targets(next);
  EXPECT_EQ(s.size(), 10u);
  auto second = drive(s, clock, clock.now() + 20s);
  std::map<std::string, std::vector<SteadyTime>> runs;
  for (const auto& x : second) runs[x.target].push_back(x.at);
  for (int i = 5; i < 10; ++i) EXPECT_EQ(runs.count("t" + std::to_string(i)), 0u);
  for (int i = 0; i < 5; ++i) {
    const std::string name = "t" + std::to_string(i);
    SCOPED_TRACE(name);
    ASSERT_EQ(runs[name].size(), 2u);
    EXPECT_EQ(runs[name].front() - last_run[name], 10s) << "survivor keeps its cadence across the reload";
    ASSERT_EQ(runs["n" + std::to_string(i)].size(), 2u);
  }
}

TEST(SchedulerTest, ReloadWithNewIntervalMovesToTheNewCadence) {
  ManualClock clock;
  Scheduler s(clock, 0, 1);
  s.set_targets({make_target("a", 10s)});
  drive(s, clock, clock.now() + 15s);
  s.set_targets({make_target("a", 2s)});
  auto d = drive(s, clock, clock.now() + 10s);
  EXPECT_EQ(d.size(), 5u);
}

TEST(SchedulerTest, StalledHostSkipsMissedSlotsInsteadOfBursting) {
  ManualClock clock;
  Scheduler s(clock, 0, 1);
  s.set_targets({make_target("a", 1s)});
  drive(s, clock, clock.now() + 3s);
  clock.advance(10s);  // the host was suspended: ten slots missed
  std::vector<Duration> lags;
  s.run_due([&](const ScheduledProbe&, Duration lag, Duration) { lags.push_back(lag); });
  ASSERT_EQ(lags.size(), 1u) << "one catch-up run, not ten";
  auto d = drive(s, clock, clock.now() + 3s);
  EXPECT_EQ(d.size(), 3u);
}

TEST(SchedulerTest, EmptyScheduleSleepsLong) {
  ManualClock clock;
  Scheduler s(clock, 0, 1);
  s.set_targets({});
  EXPECT_GE(s.run_due([](const ScheduledProbe&, Duration, Duration) { FAIL(); }) - clock.now(), 1min);
}


// Runs of one probe in `d`, accelerated (span > 0) or on its slots.
std::vector<Dispatched> runs_of(const std::vector<Dispatched>& d, const std::string& target) {
  std::vector<Dispatched> out;
  for (const auto& x : d) {
    if (x.target == target) out.push_back(x);
  }
  return out;
}

TEST(SchedulerTest, AcceleratedCadenceIsAFifthOfTheIntervalAndAtLeastOneSecond) {
  EXPECT_EQ(Scheduler::accelerated_cadence(10s), 2s);
  EXPECT_EQ(Scheduler::accelerated_cadence(60s), 12s);
  EXPECT_EQ(Scheduler::accelerated_cadence(3s), 1s);
  EXPECT_EQ(Scheduler::accelerated_cadence(1s), 1s);
}

TEST(SchedulerTest, UncertainProbeRunsAcceleratedInPlaceOfItsSlotsAndReturnsToItsPhase) {
  ManualClock clock;
  Scheduler s(clock, 0, 1);
  s.set_targets({make_target("a", 10s), make_target("b", 10s)});
  auto before = drive(s, clock, clock.now() + 25s);
  const auto a_before = runs_of(before, "a");
  ASSERT_GE(a_before.size(), 2u);
  const SteadyTime last_slot = a_before.back().at;

  s.set_uncertain("a", "p0", true);
  EXPECT_EQ(s.accelerated(), 1u);
  const SteadyTime marked = clock.now();
  auto during = drive(s, clock, marked + 30s + 1ns);  // drive() stops before its end
  const auto a = runs_of(during, "a");
  // One run every 2 s on average (gaps 1 s to 3 s), each spanning the time to
  // the next, and none on its own slots meanwhile.
  EXPECT_GE(a.size(), 12u);
  EXPECT_LE(a.size(), 18u);
  ASSERT_FALSE(a.empty());
  EXPECT_GE(a.front().at - marked, 1s);
  EXPECT_LT(a.front().at - marked, 3s);
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_GE(a[i].span, 1s);
    EXPECT_LT(a[i].span, 3s);
    if (i + 1 < a.size()) {
      EXPECT_EQ(a[i + 1].at, a[i].at + a[i].span);
    }
  }
  std::map<Duration, int> gaps;
  for (const auto& x : a) gaps[x.span]++;
  EXPECT_GT(gaps.size(), a.size() / 2) << "jittered: no fixed period";
  // The other probe keeps its schedule.
  const auto b = runs_of(during, "b");
  ASSERT_GE(b.size(), 3u);
  for (const auto& x : b) EXPECT_EQ(x.span, 0s);

  s.set_uncertain("a", "p0", false);
  EXPECT_EQ(s.accelerated(), 0u);
  auto after = drive(s, clock, clock.now() + 30s);
  const auto a_after = runs_of(after, "a");
  ASSERT_EQ(a_after.size(), 3u) << "back to one run per interval";
  for (const auto& x : a_after) {
    EXPECT_EQ(x.span, 0s);
    // On its own phase: a whole number of intervals after its last slot.
    EXPECT_EQ((x.at - last_slot) % Duration(10s), 0s);
  }
}

TEST(SchedulerTest, AcceleratedProbesAreCappedAndTheRestTakeFreedPlacesInOrder) {
  ManualClock clock;
  Scheduler s(clock, 0, 1, /*max_accelerated=*/3);
  s.set_targets(many(10, 10s));
  drive(s, clock, clock.now() + 10s);
  // A mass outage: all ten uncertain, three accelerated.
  for (int i = 0; i < 10; ++i) s.set_uncertain("t" + std::to_string(i), "p0", true);
  EXPECT_EQ(s.accelerated(), 3u);
  EXPECT_EQ(s.uncertain(), 10u);
  auto d = drive(s, clock, clock.now() + 20s + 1ns);
  std::size_t quick = 0;
  for (const auto& x : d) quick += x.span > 0s ? 1 : 0;
  EXPECT_GE(quick, 24u) << "3 probes x about 10 accelerated runs";
  EXPECT_LE(quick, 36u);
  EXPECT_EQ(d.size() - quick, 14u) << "the 7 waiting keep their schedule: 2 runs each";
  for (const auto& x : d) {
    if (x.span > 0s) {
      EXPECT_TRUE(x.target == "t0" || x.target == "t1" || x.target == "t2") << x.target;
    }
  }
  // t1 is certain again: the longest-waiting (t3) takes its place.
  s.set_uncertain("t1", "p0", false);
  EXPECT_EQ(s.accelerated(), 3u);
  d = drive(s, clock, clock.now() + 10s + 1ns);
  std::map<std::string, int> accelerated_runs;
  for (const auto& x : d) accelerated_runs[x.target] += x.span > 0s ? 1 : 0;
  EXPECT_GE(accelerated_runs["t3"], 3);
  EXPECT_LE(accelerated_runs["t3"], 7);
  EXPECT_EQ(accelerated_runs["t1"], 0);
  EXPECT_EQ(accelerated_runs["t4"], 0);
  // Marking twice changes nothing; unknown pairs are ignored.
  s.set_uncertain("t0", "p0", true);
  s.set_uncertain("nobody", "p0", true);
  EXPECT_EQ(s.uncertain(), 9u);
}

TEST(SchedulerTest, AOneSecondProbeIsNotAccelerated) {
  ManualClock clock;
  Scheduler s(clock, 0, 1);
  s.set_targets({make_target("a", 1s)});
  s.set_uncertain("a", "p0", true);
  EXPECT_EQ(s.accelerated(), 0u);
  auto d = drive(s, clock, clock.now() + 10s);
  EXPECT_EQ(d.size(), 10u);
}

TEST(SchedulerTest, UncertaintySurvivesAReloadForSurvivors) {
  ManualClock clock;
  Scheduler s(clock, 0, 1);
  s.set_targets(many(3, 10s));
  s.set_uncertain("t0", "p0", true);
  s.set_uncertain("t2", "p0", true);
  s.set_targets(many(2, 10s));  // t2 removed
  EXPECT_EQ(s.uncertain(), 1u);
  EXPECT_EQ(s.accelerated(), 1u);
  auto d = drive(s, clock, clock.now() + 10s + 1ns);
  EXPECT_GE(runs_of(d, "t0").size(), 3u);
  for (const auto& x : runs_of(d, "t0")) EXPECT_GT(x.span, 0s);
}

TEST(SchedulerTest, AcceleratedRunsTakeTokensFromTheRateCap) {
  ManualClock clock;
  // 2 starts a second at most: 20 accelerated probes cannot start 10 a second.
  Scheduler s(clock, 2, 1);
  s.set_targets(many(20, 10s));
  for (int i = 0; i < 20; ++i) s.set_uncertain("t" + std::to_string(i), "p0", true);
  // The first accelerated runs are due 1 s to 3 s on: 10 s of tokens after 2 s.
  auto d = drive(s, clock, clock.now() + 12s);
  EXPECT_LE(d.size(), 25u);
  EXPECT_GE(d.size(), 19u);
  std::size_t quick = 0;
  for (const auto& x : d) quick += x.span > 0s ? 1 : 0;
  EXPECT_GT(quick, 0u);
}

}  // namespace
}  // namespace nightshift
