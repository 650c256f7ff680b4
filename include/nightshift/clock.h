// Clock: the one source of time in nightshift.
//
// steady time (monotonic) for scheduling, windows and durations; system time only
// for what is shown to people. Components take a `Clock&` so that tests can drive
// hours of simulated time with ManualClock::advance() and never sleep.
//
// Thread safety: SystemClock is safe from any thread. ManualClock is safe from any
// thread too (its value is atomic), but tests normally drive it from one thread.
#pragma once

#include <atomic>
#include <chrono>

namespace nightshift {

using SteadyTime = std::chrono::steady_clock::time_point;
using SystemTime = std::chrono::system_clock::time_point;
using Duration = std::chrono::nanoseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time: never jumps, use for every interval and timeout.
  virtual SteadyTime now() const = 0;
  // Wall-clock time: only for timestamps people read (logs, incidents).
  virtual SystemTime wall_now() const = 0;
};

class SystemClock final : public Clock {
 public:
  SteadyTime now() const override { return std::chrono::steady_clock::now(); }
  SystemTime wall_now() const override { return std::chrono::system_clock::now(); }
};

// A clock that moves only when told to. Wall time moves in step with steady time.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(SteadyTime start = SteadyTime{} + std::chrono::hours(1),
                       SystemTime wall_start = SystemTime{} + std::chrono::hours(24 * 365 * 56))
      : steady_ns_(start.time_since_epoch().count()),
        wall_offset_(wall_start.time_since_epoch() -
                     std::chrono::duration_cast<SystemTime::duration>(start.time_since_epoch())) {}

  SteadyTime now() const override { return SteadyTime(Duration(steady_ns_.load())); }
  SystemTime wall_now() const override {
    return SystemTime(std::chrono::duration_cast<SystemTime::duration>(now().time_since_epoch()) +
                      wall_offset_);
  }
  void advance(Duration d) { steady_ns_ += d.count(); }
  void set(SteadyTime t) { steady_ns_ = t.time_since_epoch().count(); }

 private:
  std::atomic<Duration::rep> steady_ns_;
  SystemTime::duration wall_offset_;
};

}  // namespace nightshift
