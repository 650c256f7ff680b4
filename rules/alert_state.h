// AlertState: the state machine behind one (rule, target, probe) alert.
//
//   inactive ──true──► pending ──true for `for`──► firing ──false for `clear_for`──► inactive
//              ◄─false─                    ◄──true again while clearing──
//
// `for` is the sustain time (one lost packet never fires), `clear_for` the
// hysteresis (one good packet never resolves). Boundaries are inclusive: a
// condition true for exactly `for` fires.
//
// Flap damping: each fire and each resolve is a flip. When more than
// `max_flips` flips fall inside `flap_window`, the alert is *flapping*: one
// transition says so (notify = true), and later flips are recorded with
// notify = false until the alert has held one state for a whole `flap_window`;
// then one more notified transition says it settled, in which state.
//
// Pure logic over times passed in: no clock, no I/O. Thread safety: one thread.
#pragma once

#include <vector>
#include <optional>
#include <string>

#include "nightshift/clock.h"

namespace nightshift::rules {

enum class AlertPhase { kInactive, kPending, kFiring };
std::string_view to_string(AlertPhase phase);

struct AlertTiming {
  Duration for_duration{};     // sustain before firing; 0 fires at once
  Duration clear_for{};        // hold clear before resolving; 0 resolves at once
  int max_flips = 4;           // more flips than this within flap_window = flapping; 0 disables
  Duration flap_window = std::chrono::minutes(10);
};

struct AlertChange {
  AlertPhase from;
  AlertPhase to;
  SteadyTime at;
  bool notify = true;         // false: recorded only (pending, or damped while flapping)
  bool flapping = false;      // the alert is flapping after this change
  bool flapping_changed = false;  // this change started or ended flapping
};

class AlertState {
 public:
  explicit AlertState(AlertTiming timing) : timing_(timing) {}

  // The condition's value at `now` (false when unknown). Returns the change it
  // caused, if any. Times must not go backwards.
  std::optional<AlertChange> observe(bool active, SteadyTime now);
  // Moves time on with the last observed value (sustain or hysteresis may
  // complete without a new sample). Same as observe(last value, now).
  std::optional<AlertChange> advance(SteadyTime now) { return observe(last_active_, now); }
  // When advance() should next be called for a time-based change, if any.
  std::optional<SteadyTime> next_deadline() const;

  AlertPhase phase() const { return phase_; }
  bool flapping() const { return flapping_; }
  // Start of the current anomaly (first true observation), while pending/firing.
  SteadyTime active_since() const { return active_since_; }
  SteadyTime firing_since() const { return firing_since_; }

 private:
  AlertChange change(AlertPhase to, SteadyTime at);

  AlertTiming timing_;
  AlertPhase phase_ = AlertPhase::kInactive;
  bool last_active_ = false;
  SteadyTime active_since_{};
  SteadyTime firing_since_{};
  std::optional<SteadyTime> clear_since_;
  bool flapping_ = false;
  SteadyTime last_flip_{};
  // A vector, not a deque: an empty deque allocates, and most alerts never flip.
  std::vector<SteadyTime> flips_;
};

}  // namespace nightshift::rules
