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
// - Probe more only while uncertain (Trinocular's idea): a (target, probe) the
//   caller marks uncertain (an alert that may page is pending or firing, or its
//   last run failed) runs every accelerated_cadence(interval) = max(1 s,
//   interval / 5) on average (only when that is at least three times as
//   often: an interval of 3 s or more) instead of on its slots, which it skips
//   meanwhile. The gaps are jittered (uniform from half to one and a half
//   cadences, reproducible per probe), so that a flap whose period is a
//   multiple of the cadence is not sampled at the same phase every time.
//   Each run is told its span (the time to the next), and kinds send their share of the
//   interval's packets in it (at least one), so a target costs about its
//   normal packet rate plus at most one packet per accelerated run. Marked
//   certain again, it is back on its own phase slots at once. At most
//   max_accelerated probes run accelerated at once (kMaxAccelerated, 64):
//   in a mass outage the rest keep their schedule and take a freed place in
//   the order they became uncertain, so doubt never multiplies traffic.
//
// Pure logic over a Clock: the reactor calls run_due() from a timer; tests call
// it on a ManualClock. Thread safety: one thread (the reactor).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <deque>
#include <map>
#include <set>
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

// Probes running accelerated at once, at most (a mass outage keeps the rest on schedule).
inline constexpr std::size_t kMaxAccelerated = 64;

class Scheduler {
 public:
  // `span`: zero for a run on its slot; for an accelerated run, the time it
  // spans (its cadence) in place of the probe's interval.
  using Dispatch = std::function<void(const ScheduledProbe& probe, Duration lag, Duration span)>;

  // `max_per_second` <= 0 means no cap. `burst` is the bucket size.
  Scheduler(const Clock& clock, double max_per_second, double burst, std::size_t max_accelerated = kMaxAccelerated);

  // Replaces the schedule. A probe whose (target name, probe name, interval)
  // survives keeps its next due time; new ones start at their next phase slot.
  void set_targets(const std::vector<std::shared_ptr<const Target>>& targets);

  // Dispatches every probe that is due now, within the rate cap. Returns when
  // it should be called next (the next due time, or when a token returns).
  SteadyTime run_due(const Dispatch& dispatch);

  // Changes the rate cap (a reload); the bucket keeps its current fill.
  void set_rate(double max_per_second, double burst);

  std::size_t size() const { return entries_.size(); }

  // Marks (target, probe) uncertain or certain again; unknown pairs are
  // ignored. An uncertain probe runs accelerated from one cadence after now,
  // while fewer than max_accelerated others do; else it waits its turn.
  // Survives set_targets() for pairs that survive it.
  void set_uncertain(const std::string& target, const std::string& probe, bool uncertain);
  // Which probes can run accelerated (their kind honours the shorter span);
  // others stay on schedule while uncertain. Unset: all can.
  void set_accelerates(std::function<bool(const ProbeSpec&)> can) { accelerates_ = std::move(can); }
  // Probes running accelerated now, and those uncertain (accelerated or waiting).
  std::size_t accelerated() const { return quick_.size(); }
  std::size_t uncertain() const { return uncertain_.size(); }

  // How often an uncertain probe with this interval runs on average: max(1 s,
  // interval / 5); no faster than the interval itself (a 1 s probe is not
  // accelerated).
  static Duration accelerated_cadence(Duration interval);

  // The phase of a probe within its interval: deterministic. Exposed for tests.
  static Duration phase_of(const std::string& target, const std::string& probe, Duration interval);

 private:
  void refill(SteadyTime now);
  SteadyTime first_slot_at_or_after(SteadyTime now, Duration interval, Duration phase) const;
  // Starts accelerated runs for the longest-waiting uncertain probes while places are free.
  void fill_accelerated(SteadyTime now);
  bool is_accelerated(std::size_t index) const;
  struct Group;
  // Takes the group's first slot and queues the probe's next one.
  void skip_slot(Group& group, SteadyTime now);

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

  // Uncertain probes by (target, probe): the order they became uncertain in.
  std::map<std::pair<std::string, std::string>, std::uint64_t> uncertain_;
  std::uint64_t uncertain_order_ = 0;
  // Uncertain and waiting for a place: (order, entry index), oldest first.
  std::set<std::pair<std::uint64_t, std::size_t>> waiting_;
  // Accelerated now: at most max_accelerated_, scanned linearly (small).
  struct Quick {
    std::size_t index;
    Duration cadence;
    SteadyTime due;
    std::uint64_t seed;  // of the jitter, from the probe's names
    std::uint64_t runs;
  };
  // The time to a probe's next accelerated run: uniform in [cadence / 2,
  // 3 cadence / 2), so the cadence on average.
  static Duration next_gap(Quick& q);
  std::vector<Quick> quick_;
  std::size_t max_accelerated_;
  std::function<bool(const ProbeSpec&)> accelerates_;
  // Entry by (target, probe): built at the first set_uncertain() after
  // set_targets(), so a schedule that never doubts pays nothing for it.
  std::map<std::pair<std::string, std::string>, std::size_t> index_;
  bool index_built_ = false;
};

}  // namespace nightshift
