#include "tests/support/wait.h"

#include <algorithm>
#include <thread>

namespace nightshift::test {

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
  interval = std::max(interval, std::chrono::milliseconds(1));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const long max_checks = timeout / interval + 1;
  for (long i = 0; i < max_checks; ++i) {
    if (condition()) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(interval, deadline - now));
  }
  return condition();
}

}  // namespace nightshift::test
