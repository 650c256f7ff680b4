// Ring: the FIFO behind rule windows keeps order across wrap-around and growth.
#include "core/ring.h"

#include <gtest/gtest.h>

#include <deque>

namespace nightshift {
namespace {

TEST(RingTest, KeepsFifoOrderThroughWrapAroundAndGrowth) {
  Ring<int> ring;
  std::deque<int> model;
  int next = 0;
  // Pushes and pops in uneven runs, so the head wraps at several sizes.
  for (int round = 0; round < 200; ++round) {
    const int pushes = 1 + round % 7;
    const int pops = round % 5;
    for (int i = 0; i < pushes; ++i) {
      ring.push_back(next);
      model.push_back(next++);
    }
    for (int i = 0; i < pops && !model.empty(); ++i) {
      ring.pop_front();
      model.pop_front();
    }
    ASSERT_EQ(ring.size(), model.size());
    for (std::size_t i = 0; i < model.size(); ++i) ASSERT_EQ(ring[i], model[i]) << "round " << round;
    if (!model.empty()) {
      EXPECT_EQ(ring.front(), model.front());
      EXPECT_EQ(ring.back(), model.back());
    }
  }
  const std::size_t n = ring.size();
  ring.pop_front(n / 2);
  model.erase(model.begin(), model.begin() + static_cast<std::ptrdiff_t>(n / 2));
  ASSERT_EQ(ring.size(), model.size());
  for (std::size_t i = 0; i < model.size(); ++i) EXPECT_EQ(ring[i], model[i]);
  ring.pop_front(ring.size());
  EXPECT_TRUE(ring.empty());
}

}  // namespace
}  // namespace nightshift
