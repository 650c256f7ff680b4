#include "rules/alert_state.h"

#include <algorithm>

namespace nightshift::rules {

std::string_view to_string(AlertPhase phase) {
  switch (phase) {
    case AlertPhase::kInactive: return "inactive";
    case AlertPhase::kPending: return "pending";
    case AlertPhase::kFiring: return "firing";
  }
  return "inactive";
}

AlertChange AlertState::change(AlertPhase to, SteadyTime at) {
  AlertChange c{phase_, to, at};
  // Pending, and a pending that lapsed, are recorded only.
  c.notify = (to == AlertPhase::kFiring) || (phase_ == AlertPhase::kFiring && to == AlertPhase::kInactive);
  phase_ = to;
  return c;
}

Duration AlertState::hold_to_clear() const {
  if (!flapping_) return timing_.clear_for;
  Duration longest{};
  for (std::size_t i = 0; i + 1 < changes_.size(); ++i) {
    if (!changes_[i].active && changes_[i + 1].active) longest = std::max(longest, changes_[i + 1].at - changes_[i].at);
  }
  return std::max(timing_.clear_for, 2 * longest);
}

std::optional<AlertChange> AlertState::step(bool active, SteadyTime now) {
  switch (phase_) {
    case AlertPhase::kInactive:
      if (!active) return std::nullopt;
      active_since_ = now;
      if (timing_.for_duration <= Duration::zero()) {
        firing_since_ = now;
        return change(AlertPhase::kFiring, now);
      }
      return change(AlertPhase::kPending, now);
    case AlertPhase::kPending:
      if (!active) return change(AlertPhase::kInactive, now);
      if (now - active_since_ >= timing_.for_duration) {
        firing_since_ = now;
        return change(AlertPhase::kFiring, now);
      }
      return std::nullopt;
    case AlertPhase::kFiring:
      if (active) {
        clear_since_.reset();
        return std::nullopt;
      }
      if (!clear_since_) clear_since_ = now;
      if (now - *clear_since_ >= hold_to_clear()) {
        clear_since_.reset();
        return change(AlertPhase::kInactive, now);
      }
      return std::nullopt;
  }
  return std::nullopt;
}

bool AlertState::count_change(bool active, SteadyTime now) {
  changes_.push_back({now, active});
  std::erase_if(changes_, [&](const Change& c) { return now - c.at > timing_.flap_window; });
  if (changes_.size() > kMaxChanges) changes_.erase(changes_.begin());
  if (flapping_ || static_cast<int>(changes_.size()) <= timing_.max_flips) return false;
  flapping_ = true;
  return true;
}

std::optional<AlertChange> AlertState::observe(bool active, SteadyTime now, bool bounced) {
  const bool changed = active != last_active_;
  last_active_ = active;
  if (!changed && flapping_ && !changes_.empty() && now - changes_.back().at >= timing_.flap_window) {
    // No change for a whole window: settled down (still firing), or a
    // flapping pending that lapsed has settled quietly.
    if ((phase_ == AlertPhase::kFiring && active) || phase_ == AlertPhase::kInactive) {
      flapping_ = false;
      changes_.clear();
      AlertChange c{phase_, phase_, now};
      c.notify = phase_ == AlertPhase::kFiring;
      c.flapping_changed = true;
      return c;
    }
  }
  bool started = false;
  // A change of the verdict counts while the alert is pending or firing, or
  // becomes so by it.
  if (timing_.max_flips > 0) {
    if (changed && (phase_ != AlertPhase::kInactive || active)) {
      started = count_change(active, now);
    } else if (bounced && active && phase_ != AlertPhase::kInactive) {
      started = count_change(false, now);
      started = count_change(true, now) || started;
    }
  }
  std::optional<AlertChange> c = step(active, now);
  if (c && !started && flapping_ && c->from == AlertPhase::kFiring && c->to == AlertPhase::kInactive) {
    // Held clear for the (stretched) hysteresis: it settled up.
    flapping_ = false;
    changes_.clear();
    c->flapping_changed = true;
  }
  if (started) {
    if (!c) {
      c = AlertChange{phase_, phase_, now};
      c->notify = phase_ == AlertPhase::kFiring;
    }
    c->flapping_changed = true;
  }
  if (c) {
    c->flapping = flapping_;
    if (flapping_ && !changes_.empty()) {
      c->flap_changes = static_cast<int>(changes_.size());
      c->flap_span = now - changes_.front().at;
    }
  }
  return c;
}

std::optional<SteadyTime> AlertState::next_deadline() const {
  std::optional<SteadyTime> d;
  auto earliest = [&](SteadyTime t) {
    if (!d || t < *d) d = t;
  };
  if (phase_ == AlertPhase::kPending && last_active_) earliest(active_since_ + timing_.for_duration);
  if (phase_ == AlertPhase::kFiring && clear_since_) earliest(*clear_since_ + hold_to_clear());
  // Settling is checked firing and down, or inactive (see observe()), so only then is it a deadline.
  if (flapping_ && !changes_.empty() &&
      ((phase_ == AlertPhase::kFiring && last_active_) || phase_ == AlertPhase::kInactive)) {
    earliest(changes_.back().at + timing_.flap_window);
  }
  return d;
}

}  // namespace nightshift::rules
