// Scheduler: decides when each (target, probe) runs.
//
// - Deterministic phase: a probe with interval I runs at times t where
//   (t mod I) == hash(target, probe) mod I, so 10 000 targets with the same
//   interval are spread across it instead of firing at the same instant, and
//   the same config always yields the same spread.
// - Global rate cap: a token bucket (rate per second, burst) bounds how many
//   probes start per second, whatever the config says. Probes held back by the
//   cap run in due order as tokens return; how late they ran is the lag.
// - A probe never overlaps itself: config requires timeout < interval, and a
//   slot missed by more than a whole interval is skipped, not made up.
//
// Pure logic over a Clock: the reactor calls run_due() from a timer; tests call
// it on a ManualClock. Thread safety: one thread (the reactor).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <deque>
#include <string>
#include <vector>

#include "nightshift/clock.h"
#include "nightshift/target.h"

namespace nightshift {

struct ScheduledProbe {
  std::shared_ptr<const Target> target;
  const ProbeSpec* spec = nullptr;  // points into *target
  Duration phase{};                 // offset within the interval
  SteadyTime next_due{};
};

class Scheduler {
 public:
  using Dispatch = std::function<void(const ScheduledProbe& probe, Duration lag)>;

  // `max_per_second` <= 0 means no cap. `burst` is the bucket size.
  Scheduler(const Clock& clock, double max_per_second, double burst);

  // Replaces the schedule. A probe whose (target name, probe name, interval)
  // survives keeps its next due time; new ones start at their next phase slot.
  void set_targets(const std::vector<std::shared_ptr<const Target>>& targets);

  // Dispatches every probe that is due now, within the rate cap. Returns when
  // it should be called next (the next due time, or when a token returns).
  SteadyTime run_due(const Dispatch& dispatch);

  // Changes the rate cap (a reload); the bucket keeps its current fill.
  void set_rate(double max_per_second, double burst);

  std::size_t size() const { return entries_.size(); }

  // The phase of a probe within its interval: deterministic. Exposed for tests.
  static Duration phase_of(const std::string& target, const std::string& probe, Duration interval);

 private:
  void refill(SteadyTime now);
  SteadyTime first_slot_at_or_after(SteadyTime now, Duration interval, Duration phase) const;

  const Clock& clock_;
  double rate_;
  double burst_;
  double tokens_;
  SteadyTime last_refill_;

  std::vector<ScheduledProbe> entries_;
  struct Slot {
    SteadyTime due;
    std::size_t index;
    bool operator<(const Slot& o) const { return due != o.due ? due < o.due : index < o.index; }
  };
  // Probes of one interval in due order. A probe goes back one interval after
  // its slot, behind every other probe of the group, so the order holds by
  // appending: O(1) per probe, where a heap of 10 000 probes cost a dozen cache
  // misses each. (A probe late by more than an interval skips to its next slot
  // after now, which may sort before others: inserted in place.)
  struct Group {
    Duration interval{};
    std::deque<Slot> queue;
  };
  std::vector<Group> groups_;  // few: one per distinct interval
};

}  // namespace nightshift
