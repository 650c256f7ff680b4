// Reactor: timers on a manual clock, descriptors, cross-thread posts.
#include "nightshift/reactor.h"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <thread>

namespace nightshift {
namespace {

using namespace std::chrono_literals;

TEST(ReactorTest, TimersRunInTimeOrderWhenDue) {
  ManualClock clock;
  Reactor r(clock);
  std::vector<int> order;
  r.call_after(3s, [&] { order.push_back(3); });
  r.call_after(1s, [&] { order.push_back(1); });
  r.call_after(2s, [&] { order.push_back(2); });
  r.run_once(0ms);
  EXPECT_TRUE(order.empty());
  clock.advance(1s);
  r.run_once(0ms);
  EXPECT_EQ(order, (std::vector<int>{1}));
  clock.advance(5s);
  r.run_once(0ms);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(r.pending_timers(), 0u);
}

TEST(ReactorTest, CancelledTimerNeverRuns) {
  ManualClock clock;
  Reactor r(clock);
  bool ran = false;
  auto id = r.call_after(1s, [&] { ran = true; });
  r.cancel(id);
  r.cancel(id);  // twice is a no-op
  clock.advance(2s);
  r.run_once(0ms);
  EXPECT_FALSE(ran);
}

TEST(ReactorTest, TimerAddedForNowByATimerRunsNextTurn) {
  ManualClock clock;
  Reactor r(clock);
  int runs = 0;
  std::function<void()> rearm = [&] {
    ++runs;
    r.call_at(clock.now(), rearm);
  };
  r.call_at(clock.now(), rearm);
  r.run_once(0ms);
  EXPECT_EQ(runs, 1) << "a self-rearming timer must not starve the loop";
  r.run_once(0ms);
  EXPECT_EQ(runs, 2);
}

TEST(ReactorTest, FdCallbackFiresAndUnwatchInsideCallbackIsSafe) {
  SystemClock clock;
  Reactor r(clock);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  int calls = 0;
  ASSERT_TRUE(r.watch(fds[0], EPOLLIN, [&](std::uint32_t events) {
                 EXPECT_TRUE(events & EPOLLIN);
                 ++calls;
                 r.unwatch(fds[0]);
               }).ok());
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  r.run_once(100ms);
  r.run_once(10ms);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(r.watched_fds(), 0u);
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(ReactorTest, PostFromAnotherThreadRunsOnTheLoopInOrder) {
  SystemClock clock;
  Reactor r(clock);
  std::vector<int> seen;
  std::thread poster([&] {
    for (int i = 0; i < 100; ++i) r.post([&seen, i] { seen.push_back(i); });
    r.stop();
  });
  r.run();  // returns at stop(), which was posted after the 100 tasks
  poster.join();
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
}

TEST(ReactorTest, EarliestTimerKeepsTheEarliestWakeUp) {
  ManualClock clock;
  Reactor r(clock);
  std::vector<SteadyTime> fired;
  EarliestTimer t(r, [&] { fired.push_back(clock.now()); });
  const SteadyTime t0 = clock.now();
  t.arm(t0 + 5s);
  t.arm(t0 + 9s);  // later: ignored
  t.arm(t0 + 2s);  // earlier: moves it
  clock.advance(10s);
  r.run_once(0ms);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(r.pending_timers(), 0u);
  t.arm(clock.now() + 1s);  // re-armed after firing
  clock.advance(1s);
  r.run_once(0ms);
  EXPECT_EQ(fired.size(), 2u);
}

TEST(ReactorTest, WatchingAnInvalidFdIsAnError) {
  SystemClock clock;
  Reactor r(clock);
  Status s = r.watch(-1, EPOLLIN, [](std::uint32_t) {});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("epoll_ctl"), std::string::npos);
}

}  // namespace
}  // namespace nightshift
