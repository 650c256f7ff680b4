#include "core/scheduler.h"

#include <algorithm>
#include <map>

namespace nightshift {

namespace {
// FNV-1a, 64-bit: stable across runs and builds (std::hash is not).
std::uint64_t fnv1a(const std::string& s, std::uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}
}  // namespace

Scheduler::Scheduler(const Clock& clock, double max_per_second, double burst)
    : clock_(clock),
      rate_(max_per_second),
      burst_(std::max(1.0, burst)),
      tokens_(std::max(1.0, burst)),
      last_refill_(clock.now()) {}

Duration Scheduler::phase_of(const std::string& target, const std::string& probe, Duration interval) {
  if (interval <= Duration::zero()) return Duration::zero();
  std::uint64_t h = fnv1a(target);
  h = fnv1a("\x1f" + probe, h);
  // Mix the high bits in: FNV's low bits are weak for short, similar names.
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return Duration(static_cast<Duration::rep>(h % static_cast<std::uint64_t>(interval.count())));
}

SteadyTime Scheduler::first_slot_at_or_after(SteadyTime now, Duration interval, Duration phase) const {
  const Duration since_epoch = now.time_since_epoch();
  const Duration into = Duration(since_epoch.count() % interval.count());
  Duration wait = phase - into;
  if (wait < Duration::zero()) wait += interval;
  return now + wait;
}

void Scheduler::set_targets(const std::vector<std::shared_ptr<const Target>>& targets) {
  // Keep the due times of probes that survive the reload.
  std::map<std::pair<std::string, std::string>, std::pair<Duration, SteadyTime>> kept;
  for (const auto& e : entries_) kept[{e.target->name, e.spec->name}] = {e.spec->interval, e.next_due};

  const SteadyTime now = clock_.now();
  entries_.clear();
  for (const auto& t : targets) {
    for (const auto& spec : t->probes) {
      ScheduledProbe e;
      e.target = t;
      e.spec = &spec;
      e.phase = phase_of(t->name, spec.name, spec.interval);
      auto it = kept.find({t->name, spec.name});
      if (it != kept.end() && it->second.first == spec.interval) {
        e.next_due = it->second.second;
      } else {
        e.next_due = first_slot_at_or_after(now, spec.interval, e.phase);
      }
      entries_.push_back(std::move(e));
    }
  }
  groups_.clear();
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    const Duration interval = entries_[i].spec->interval;
    auto g = std::find_if(groups_.begin(), groups_.end(), [&](const Group& x) { return x.interval == interval; });
    if (g == groups_.end()) g = groups_.insert(groups_.end(), Group{interval, {}});
    g->queue.push_back({entries_[i].next_due, i});
  }
  for (auto& g : groups_) std::sort(g.queue.begin(), g.queue.end());
}

void Scheduler::set_rate(double max_per_second, double burst) {
  refill(clock_.now());
  rate_ = max_per_second;
  burst_ = std::max(1.0, burst);
  tokens_ = std::min(tokens_, burst_);
}

void Scheduler::refill(SteadyTime now) {
  if (rate_ <= 0) return;
  const double elapsed = std::chrono::duration<double>(now - last_refill_).count();
  if (elapsed > 0) {
    tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
    last_refill_ = now;
  }
}

SteadyTime Scheduler::run_due(const Dispatch& dispatch) {
  const SteadyTime now = clock_.now();
  refill(now);
  for (;;) {
    // The soonest head across the groups, ties by index (as one heap would order them).
    Group* soonest = nullptr;
    for (auto& g : groups_) {
      if (!g.queue.empty() && (soonest == nullptr || g.queue.front() < soonest->queue.front())) soonest = &g;
    }
    if (soonest == nullptr) break;
    const Slot top = soonest->queue.front();
    if (top.due > now) return top.due;
    if (rate_ > 0 && tokens_ < 1.0) {
      // Wake when the next token is back.
      const double need = (1.0 - tokens_) / rate_;
      return now + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(need)) +
             Duration(1);
    }
    soonest->queue.pop_front();
    ScheduledProbe& e = entries_[top.index];
    if (rate_ > 0) tokens_ -= 1.0;
    const Duration lag = now - e.next_due;
    // Next slot: one interval on, unless we are more than an interval late
    // (rate cap or a stalled host); then skip to the next slot after now.
    SteadyTime next = e.next_due + soonest->interval;
    if (next <= now) next = first_slot_at_or_after(now + Duration(1), soonest->interval, e.phase);
    e.next_due = next;
    const Slot again{next, top.index};
    auto& q = soonest->queue;
    if (q.empty() || !(again < q.back())) {
      q.push_back(again);
    } else {
      // A skip can land before probes skipped earlier: keep the order.
      q.insert(std::upper_bound(q.begin(), q.end(), again), again);
    }
    dispatch(e, lag);
  }
  return now + std::chrono::hours(1);
}

}  // namespace nightshift
