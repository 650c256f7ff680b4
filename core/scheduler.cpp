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

Scheduler::Scheduler(const Clock& clock, double max_per_second, double burst, std::size_t max_accelerated)
    : clock_(clock),
      rate_(max_per_second),
      burst_(std::max(1.0, burst)),
      tokens_(std::max(1.0, burst)),
      last_refill_(clock.now()),
      max_accelerated_(max_accelerated) {}

Duration Scheduler::accelerated_cadence(Duration interval) {
  return std::max<Duration>(std::chrono::seconds(1), interval / 5);
}

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

  // Uncertain probes that survive stay uncertain, in their order, and start
  // their accelerated runs one cadence after the reload.
  quick_.clear();
  waiting_.clear();
  index_.clear();
  index_built_ = false;
  if (uncertain_.empty()) return;
  index_built_ = true;
  for (std::size_t i = 0; i < entries_.size(); ++i) index_[{entries_[i].target->name, entries_[i].spec->name}] = i;
  std::erase_if(uncertain_, [&](const auto& u) { return !index_.count(u.first); });
  for (const auto& [key, order] : uncertain_) waiting_.insert({order, index_.at(key)});
  fill_accelerated(now);
}

bool Scheduler::is_accelerated(std::size_t index) const {
  return std::any_of(quick_.begin(), quick_.end(), [&](const Quick& q) { return q.index == index; });
}

void Scheduler::fill_accelerated(SteadyTime now) {
  // Bounded by the places free: each pass takes one waiting probe or stops.
  while (quick_.size() < max_accelerated_ && !waiting_.empty()) {
    const std::size_t index = waiting_.begin()->second;
    waiting_.erase(waiting_.begin());
    const Duration interval = entries_[index].spec->interval;
    const Duration cadence = accelerated_cadence(interval);
    // Under a threefold speed-up the gain is small, and one-echo runs of a
    // fast probe would change what its failures report (probe_duration_seconds
    // of a dead target, which blackbox_exporter users' rules read): a 2 s
    // probe keeps its schedule.
    if (cadence * 3 > interval) continue;
    if (accelerates_ && !accelerates_(*entries_[index].spec)) continue;
    Quick q{index, cadence, now, fnv1a(entries_[index].target->name + '\x1f' + entries_[index].spec->name), 0};
    q.due = now + next_gap(q);
    quick_.push_back(q);
  }
}

Duration Scheduler::next_gap(Quick& q) {
  // splitmix64 of (probe, run number): reproducible, and no fixed period for
  // a flap of some fixed period to alias with.
  std::uint64_t z = q.seed + 0x9e3779b97f4a7c15ull * ++q.runs;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  const double u = static_cast<double>(z >> 11) / 9007199254740992.0;  // [0, 1)
  return q.cadence / 2 + std::chrono::duration_cast<Duration>(q.cadence * u);
}

void Scheduler::set_uncertain(const std::string& target, const std::string& probe, bool uncertain) {
  if (!index_built_) {
    for (std::size_t i = 0; i < entries_.size(); ++i) index_[{entries_[i].target->name, entries_[i].spec->name}] = i;
    index_built_ = true;
  }
  const std::pair<std::string, std::string> key{target, probe};
  auto entry = index_.find(key);
  if (entry == index_.end()) return;
  const std::size_t index = entry->second;
  auto it = uncertain_.find(key);
  if (uncertain) {
    if (it != uncertain_.end()) return;
    const std::uint64_t order = uncertain_order_++;
    uncertain_.emplace(key, order);
    waiting_.insert({order, index});
  } else {
    if (it == uncertain_.end()) return;
    waiting_.erase({it->second, index});
    uncertain_.erase(it);
    // Back on its own slots, which kept moving on meanwhile.
    std::erase_if(quick_, [&](const Quick& q) { return q.index == index; });
  }
  fill_accelerated(clock_.now());
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
  // Bounded: each pass dispatches or skips one slot that is due now, and every
  // slot moves past now when taken; the loop ends at the first one not due.
  for (;;) {
    // The soonest head across the groups, ties by index (as one heap would order them).
    Group* soonest = nullptr;
    for (auto& g : groups_) {
      if (!g.queue.empty() && (soonest == nullptr || g.queue.front() < soonest->queue.front())) soonest = &g;
    }
    Quick* quick = nullptr;
    for (auto& q : quick_) {
      if (quick == nullptr || q.due < quick->due) quick = &q;
    }
    if (soonest == nullptr && quick == nullptr) break;
    const bool take_quick = quick != nullptr && (soonest == nullptr || quick->due < soonest->queue.front().due);
    const SteadyTime due = take_quick ? quick->due : soonest->queue.front().due;
    if (due > now) return due;
    if (!take_quick && is_accelerated(soonest->queue.front().index)) {
      // Its accelerated runs stand in for this slot: move it on, run nothing.
      skip_slot(*soonest, now);
      continue;
    }
    if (rate_ > 0 && tokens_ < 1.0) {
      // Wake when the next token is back.
      const double need = (1.0 - tokens_) / rate_;
      return now + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(need)) +
             Duration(1);
    }
    if (rate_ > 0) tokens_ -= 1.0;
    if (take_quick) {
      const Duration lag = now - quick->due;
      if (quick->due + quick->cadence / 2 <= now) quick->due = now;  // late: no catching up in a burst
      const Duration gap = next_gap(*quick);
      quick->due += gap;
      // The run spans the time to the next one.
      dispatch(entries_[quick->index], lag, quick->due - now);
      continue;
    }
    ScheduledProbe& e = entries_[soonest->queue.front().index];
    const Duration lag = now - e.next_due;
    skip_slot(*soonest, now);
    dispatch(e, lag, Duration::zero());
  }
  return now + std::chrono::hours(1);
}

void Scheduler::skip_slot(Group& group, SteadyTime now) {
  const Slot top = group.queue.front();
  group.queue.pop_front();
  ScheduledProbe& e = entries_[top.index];
  // Next slot: one interval on, unless we are more than an interval late
  // (rate cap or a stalled host); then skip to the next slot after now.
  SteadyTime next = e.next_due + group.interval;
  if (next <= now) next = first_slot_at_or_after(now + Duration(1), group.interval, e.phase);
  e.next_due = next;
  const Slot again{next, top.index};
  auto& q = group.queue;
  if (q.empty() || !(again < q.back())) {
    q.push_back(again);
  } else {
    // A skip can land before probes skipped earlier: keep the order.
    q.insert(std::upper_bound(q.begin(), q.end(), again), again);
  }
}

}  // namespace nightshift
