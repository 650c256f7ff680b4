// Alert state machine on explicit times: sustain and hysteresis exactly at their
// boundaries, single misses never fire, flapping is notified once.
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

TEST(AlertStateTest, FlappingIsNotifiedOnceThenDampedThenSettles) {
  AlertState a(timing(0s, 0s, /*max_flips=*/4, /*window=*/10min));
  int notified = 0, recorded = 0, flap_starts = 0;
  SteadyTime t = T0;
  for (int i = 0; i < 20; ++i) {  // flips every 10 s for 200 s
    auto c = a.observe(i % 2 == 0, t);
    ASSERT_TRUE(c) << i;
    ++recorded;
    if (c->notify) ++notified;
    if (c->flapping_changed && c->flapping) ++flap_starts;
    t += 10s;
  }
  EXPECT_EQ(recorded, 20);
  EXPECT_EQ(flap_starts, 1);
  EXPECT_EQ(notified, 5) << "4 ordinary flips, then one 'flapping' notice";
  EXPECT_TRUE(a.flapping());
  // Stays resolved (last observation false) for a whole window: one "settled".
  const SteadyTime last = t - 10s;
  EXPECT_FALSE(a.observe(false, last + 10min - 1s));
  auto settled = a.observe(false, last + 10min);
  ASSERT_TRUE(settled);
  EXPECT_TRUE(settled->notify);
  EXPECT_TRUE(settled->flapping_changed);
  EXPECT_FALSE(settled->flapping);
  EXPECT_EQ(settled->to, AlertPhase::kInactive);
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
