// Bounded polling for tests: check a condition until it holds or time runs out.
// Bounded in time and in count (timeout / interval + 1 checks), never forever.
//
// Thread safety: any thread.
#pragma once

#include <chrono>
#include <functional>

namespace nightshift::test {

// Calls `condition` until it returns true (then returns true) or until
// `timeout` has passed (then returns false after one last check).
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(20));

}  // namespace nightshift::test
