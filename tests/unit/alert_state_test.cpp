// Alert state machine on explicit times: sustain and hysteresis exactly at their
// boundaries, single misses never fire, flapping is marked once and holds the
// alert until it settles.
#include "rules/alert_state.h"

#include <gtest/gtest.h>

namespace nightshift::rules {
namespace {

using namespace std::chrono_literals;

const SteadyTime T0 = SteadyTime{} + 1h;

AlertTiming timing(Duration for_d, Duration clear_for, int max_flips = 0, Duration window = 10min) {
  AlertTiming t;
  t.for_duration = for_d;
  t.clear_for = clear_for;
  t.max_flips = max_flips;
  t.flap_window = window;
  return t;
}

TEST(AlertStateTest, FiresExactlyWhenSustainedForTheFullFor) {
  AlertState a(timing(30s, 0s));
  auto c = a.observe(true, T0);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->to, AlertPhase::kPending);
  EXPECT_FALSE(c->notify);
  EXPECT_FALSE(a.observe(true, T0 + 29s));  // one nanosecond short still pending below
  EXPECT_FALSE(a.observe(true, T0 + 30s - 1ns));
  EXPECT_EQ(a.phase(), AlertPhase::kPending);
  c = a.observe(true, T0 + 30s);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->from, AlertPhase::kPending);
  EXPECT_EQ(c->to, AlertPhase::kFiring);
  EXPECT_TRUE(c->notify);
  EXPECT_EQ(a.active_since(), T0);
}

TEST(AlertStateTest, NextDeadlineLetsTimeAloneCompleteTheSustain) {
  AlertState a(timing(30s, 0s));
  a.observe(true, T0);
  ASSERT_EQ(a.next_deadline(), T0 + 30s);
  auto c = a.advance(*a.next_deadline());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->to, AlertPhase::kFiring);
  EXPECT_EQ(a.next_deadline(), std::nullopt);
}

TEST(AlertStateTest, ASingleMissNeverFires) {
  AlertState a(timing(30s, 0s));
  for (int i = 0; i < 100; ++i) {
    const SteadyTime t = T0 + i * 10s;
    auto c = a.observe(i % 10 == 3, t);  // one miss in ten samples
    if (c) {
      EXPECT_NE(c->to, AlertPhase::kFiring) << "at sample " << i;
    }
  }
}

TEST(AlertStateTest, PendingThatLapsesIsNotNotified) {
  AlertState a(timing(30s, 0s));
  a.observe(true, T0);
  auto c = a.observe(false, T0 + 10s);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->from, AlertPhase::kPending);
  EXPECT_EQ(c->to, AlertPhase::kInactive);
  EXPECT_FALSE(c->notify);
  // The sustain restarts from the next anomaly.
  a.observe(true, T0 + 20s);
  EXPECT_FALSE(a.observe(true, T0 + 45s));
  EXPECT_TRUE(a.observe(true, T0 + 50s));
}

TEST(AlertStateTest, ResolvesExactlyAfterClearFor) {
  AlertState a(timing(0s, 60s));
  ASSERT_EQ(a.observe(true, T0)->to, AlertPhase::kFiring) << "for = 0 fires at once";
  EXPECT_FALSE(a.observe(false, T0 + 10s));
  EXPECT_EQ(a.next_deadline(), T0 + 70s);
  EXPECT_FALSE(a.observe(false, T0 + 70s - 1ns));
  auto c = a.observe(false, T0 + 70s);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->to, AlertPhase::kInactive);
  EXPECT_TRUE(c->notify);
}

TEST(AlertStateTest, OneGoodSampleDoesNotResolve) {
  AlertState a(timing(0s, 60s));
  a.observe(true, T0);
  EXPECT_FALSE(a.observe(false, T0 + 10s));
  EXPECT_FALSE(a.observe(true, T0 + 20s));  // bad again: clearing restarts
  EXPECT_FALSE(a.observe(false, T0 + 30s));
  EXPECT_FALSE(a.observe(false, T0 + 89s));
  EXPECT_EQ(a.phase(), AlertPhase::kFiring);
  EXPECT_TRUE(a.observe(false, T0 + 90s));
}

TEST(AlertStateTest, FlappingIsMarkedOnceThenHeldFiringThenSettlesUp) {
  AlertState a(timing(0s, 0s, /*max_flips=*/4, /*window=*/10min));
  int changes = 0, flap_starts = 0;
  SteadyTime t = T0;
  for (int i = 0; i < 20; ++i) {  // the verdict changes every 10 s for 200 s
    auto c = a.observe(i % 2 == 0, t);
    if (c) {
      ++changes;
      EXPECT_TRUE(c->notify) << i << ": fires and resolves are never damped";
      if (c->flapping_changed && c->flapping) {
        ++flap_starts;
        EXPECT_EQ(c->flap_changes, 5);
        EXPECT_EQ(c->flap_span, 40s);
      }
    }
    t += 10s;
  }
  EXPECT_EQ(changes, 5) << "two outages, then the fire that marks it flapping; then it holds";
  EXPECT_EQ(flap_starts, 1);
  EXPECT_TRUE(a.flapping());
  EXPECT_EQ(a.phase(), AlertPhase::kFiring);
  EXPECT_EQ(a.hold_to_clear(), 20s) << "twice the longest clear spell (10 s)";
  // Clear from the last observation (false, at 190 s) for the stretched hold: settled up.
  const SteadyTime last = t - 10s;
  ASSERT_EQ(a.next_deadline(), last + 20s);
  EXPECT_FALSE(a.observe(false, last + 20s - 1ns));
  auto settled = a.observe(false, last + 20s);
  ASSERT_TRUE(settled);
  EXPECT_TRUE(settled->notify);
  EXPECT_TRUE(settled->flapping_changed);
  EXPECT_FALSE(settled->flapping);
  EXPECT_EQ(settled->to, AlertPhase::kInactive);
  EXPECT_FALSE(a.flapping());
}

TEST(AlertStateTest, ChangesInsideOneFiringAlertMarkItFlappingWithoutAResolve) {
  // target_down's timing: 3 s down / 3 s up never holds clear for 30 s.
  AlertState a(timing(0s, 30s, /*max_flips=*/4, /*window=*/10min));
  std::vector<AlertChange> out;
  SteadyTime t = T0;
  for (int i = 0; i < 20; ++i, t += 3s) {
    if (auto c = a.observe(i % 2 == 0, t)) out.push_back(*c);
  }
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].to, AlertPhase::kFiring);
  EXPECT_FALSE(out[0].flapping);
  // The fifth change (down at 12 s) marks it, as a change from firing to firing.
  EXPECT_EQ(out[1].from, AlertPhase::kFiring);
  EXPECT_EQ(out[1].to, AlertPhase::kFiring);
  EXPECT_EQ(out[1].at, T0 + 12s);
  EXPECT_TRUE(out[1].notify);
  EXPECT_TRUE(out[1].flapping_changed);
  EXPECT_TRUE(out[1].flapping);
  EXPECT_EQ(out[1].flap_changes, 5);
  EXPECT_EQ(a.hold_to_clear(), 30s) << "3 s clear spells: clear_for is longer";
  // Up from 57 s: resolves once, 30 s later, and that ends the flapping.
  const SteadyTime up = T0 + 57s;
  EXPECT_FALSE(a.observe(false, up + 29s));
  auto resolved = a.observe(false, up + 30s);
  ASSERT_TRUE(resolved);
  EXPECT_EQ(resolved->to, AlertPhase::kInactive);
  EXPECT_TRUE(resolved->flapping_changed);
  EXPECT_FALSE(resolved->flapping);
}

TEST(AlertStateTest, OneDownAndUpIsNotFlapping) {
  AlertState a(timing(0s, 30s, /*max_flips=*/4, /*window=*/10min));
  ASSERT_TRUE(a.observe(true, T0));
  EXPECT_FALSE(a.observe(false, T0 + 10s));
  auto resolved = a.observe(false, T0 + 40s);
  ASSERT_TRUE(resolved);
  EXPECT_FALSE(resolved->flapping);
  EXPECT_FALSE(resolved->flapping_changed);
  EXPECT_FALSE(a.flapping());
}

TEST(AlertStateTest, AFlapSlowerThanClearForIsHeldFiringOnceFlapping) {
  // 40 s down / 40 s up with clear_for 30 s: it resolves twice, then the
  // fifth change marks it, and the hold grows to 80 s: no more resolves.
  AlertState a(timing(0s, 30s, /*max_flips=*/4, /*window=*/10min));
  int fires = 0, resolves = 0;
  SteadyTime t = T0;
  for (int s = 0; s < 400; s += 5, t += 5s) {
    if (auto c = a.observe((s / 40) % 2 == 0, t)) {
      if (c->to == AlertPhase::kFiring && c->from != AlertPhase::kFiring) ++fires;
      if (c->to == AlertPhase::kInactive) ++resolves;
    }
  }
  EXPECT_EQ(fires, 3);
  EXPECT_EQ(resolves, 2);
  EXPECT_TRUE(a.flapping());
  EXPECT_EQ(a.phase(), AlertPhase::kFiring);
}

TEST(AlertStateTest, PendingWhileFlappingHasNoDeadlineInThePast) {
  // A deadline in the past would make the agent's timer spin.
  AlertState a(timing(30s, 0s, /*max_flips=*/1, /*window=*/1min));
  SteadyTime t = T0;
  a.observe(true, t);
  a.observe(true, t += 30s);  // firing
  a.observe(false, t += 1s);  // resolved: 2 flips > 1, flapping
  ASSERT_TRUE(a.flapping());
  a.observe(true, t += 1s);   // pending again
  ASSERT_EQ(a.phase(), AlertPhase::kPending);
  auto due = a.next_deadline();
  ASSERT_TRUE(due);
  EXPECT_EQ(*due, t + 30s) << "only the sustain deadline, not the flap window's end";
}

TEST(AlertStateTest, FlipsOutsideTheWindowDoNotCount) {
  AlertState a(timing(0s, 0s, /*max_flips=*/2, /*window=*/1min));
  SteadyTime t = T0;
  for (int i = 0; i < 10; ++i) {  // a flip every 2 minutes
    auto c = a.observe(i % 2 == 0, t);
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->notify) << i;
    EXPECT_FALSE(c->flapping);
    t += 2min;
  }
}

}  // namespace
}  // namespace nightshift::rules
