// AlertState: the state machine behind one (rule, target, probe) alert.
//
//   inactive ──true──► pending ──true for `for`──► firing ──false for `clear_for`──► inactive
//              ◄─false─                    ◄──true again while clearing──
//
// `for` is the sustain time (one lost packet never fires), `clear_for` the
// hysteresis (one good packet never resolves). Boundaries are inclusive: a
// condition true for exactly `for` fires.
//
// Flapping: every change of the condition's value (the target's own up/down
// verdict for this rule) while the alert is pending or firing is a *change*;
// a clean outage is two (down, up). When more than `max_flips` changes fall
// inside `flap_window`, the alert is *flapping*: one change says so
// (flapping_changed), on a phase change if there is one, else as a change
// from a phase to itself. A link 3 s down / 3 s up inside one firing alert
// (never clear for `clear_for`) flaps without ever resolving, so the
// verdict's changes count, not only fires and resolves.
//
// While flapping, a firing alert resolves only once it has held clear for
// clear_for or twice the longest clear spell in the window, whichever is
// longer: a flap slower than clear_for does not resolve (and reopen, and
// page) on every up spell. That resolve ends the flapping (it settled up).
// A firing alert that held down with no change for a whole flap_window has
// settled down: one change from firing to firing says so. Nothing is ever
// damped: every fire and resolve is notified.
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
  int max_flips = 4;           // more changes than this within flap_window = flapping; 0 disables
  Duration flap_window = std::chrono::minutes(10);
};

struct AlertChange {
  AlertPhase from;
  AlertPhase to;
  SteadyTime at;
  bool notify = true;         // false: recorded only (pending, a pending that lapsed)
  bool flapping = false;      // the alert is flapping after this change
  bool flapping_changed = false;  // this change started or ended flapping
  // While flapping: the verdict's changes in the window and the time they
  // span ("6 down/up changes in 60 s").
  int flap_changes = 0;
  Duration flap_span{};
};

class AlertState {
 public:
  explicit AlertState(AlertTiming timing) : timing_(timing) {}

  // The condition's value at `now` (false when unknown). Returns the change it
  // caused, if any. Times must not go backwards. `bounced`: the sample behind
  // a true value saw the target up in between (an ICMP round answered, then
  // confirmed down): while the alert is pending or firing that is two
  // changes, up and down again, even though the value stayed true.
  std::optional<AlertChange> observe(bool active, SteadyTime now, bool bounced = false);
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
  // How long a firing alert must hold clear to resolve now (clear_for, or
  // longer while flapping).
  Duration hold_to_clear() const;

 private:
  struct Change {
    SteadyTime at;
    bool active;  // the value it changed to
  };
  std::optional<AlertChange> step(bool active, SteadyTime now);
  // Records one change of the verdict; true when that starts flapping.
  bool count_change(bool active, SteadyTime now);
  AlertChange change(AlertPhase to, SteadyTime at);

  AlertTiming timing_;
  AlertPhase phase_ = AlertPhase::kInactive;
  bool last_active_ = false;
  SteadyTime active_since_{};
  SteadyTime firing_since_{};
  std::optional<SteadyTime> clear_since_;
  bool flapping_ = false;
  // The verdict's changes within flap_window, oldest first (at most
  // kMaxChanges). A vector, not a deque: an empty deque allocates, and most
  // alerts never change.
  std::vector<Change> changes_;
  static constexpr std::size_t kMaxChanges = 64;
};

}  // namespace nightshift::rules
