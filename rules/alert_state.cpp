#include "rules/alert_state.h"

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
  const bool flip = (to == AlertPhase::kFiring) || (phase_ == AlertPhase::kFiring && to == AlertPhase::kInactive);
  phase_ = to;
  c.notify = flip;  // pending, and pending that lapsed, are recorded only
  if (flip && timing_.max_flips > 0) {
    flips_.push_back(at);
    std::erase_if(flips_, [&](SteadyTime f) { return at - f > timing_.flap_window; });
    last_flip_ = at;
    if (!flapping_ && static_cast<int>(flips_.size()) > timing_.max_flips) {
      flapping_ = true;
      c.flapping_changed = true;
      c.notify = true;  // say once that it flaps
    } else if (flapping_) {
      c.notify = false;  // damped
    }
  }
  c.flapping = flapping_;
  return c;
}

std::optional<AlertChange> AlertState::observe(bool active, SteadyTime now) {
  last_active_ = active;
  // A flapping alert that has held one state for a whole window has settled.
  if (flapping_ && now - last_flip_ >= timing_.flap_window && phase_ != AlertPhase::kPending) {
    flapping_ = false;
    flips_.clear();
    AlertChange c{phase_, phase_, now};
    c.notify = true;
    c.flapping = false;
    c.flapping_changed = true;
    return c;
  }
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
      if (now - *clear_since_ >= timing_.clear_for) {
        clear_since_.reset();
        return change(AlertPhase::kInactive, now);
      }
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<SteadyTime> AlertState::next_deadline() const {
  std::optional<SteadyTime> d;
  auto earliest = [&](SteadyTime t) {
    if (!d || t < *d) d = t;
  };
  if (phase_ == AlertPhase::kPending && last_active_) earliest(active_since_ + timing_.for_duration);
  if (phase_ == AlertPhase::kFiring && clear_since_) earliest(*clear_since_ + timing_.clear_for);
  // Settling is checked outside pending (see observe()), so only then is it a deadline.
  if (flapping_ && phase_ != AlertPhase::kPending) earliest(last_flip_ + timing_.flap_window);
  return d;
}

}  // namespace nightshift::rules
