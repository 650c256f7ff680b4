// IncidentManager: turns alerts into declared incidents, the unit people are
// paged and told about.
//
// - Declared at the first firing alert: grouping never delays the first page.
// - Grouping: a firing alert joins the open incident of its scope (the values
//   of the `group_by` labels, default site and group); joins are announced as
//   batched updates, at most one per `batch` per incident.
// - Topology: a target whose `depends_on` parent is down in an open incident
//   joins that incident as impact (via_parent) and never pages on its own; when
//   a parent goes down after its children, the children's incidents merge into
//   the parent's.
// - Vantage: when at least `vantage_ratio` of the targets not behind a down
//   parent (depends_on: the parent explains them) have critical alerts at
//   once, and every canary is down (or, with no canaries configured, at least
//   `vantage_min_targets` of them count and every scope among them has lost
//   targets — one dark site is an outage, not isolation), one
//   "this agent is isolated" incident replaces the per-target ones. Declarations are held for
//   `vantage_hold` only while a canary is failing — the one case where
//   isolation is plausible.
// - Evidence before the page: a critical alert that would declare a new
//   incident is held while the evidence that names its cause comes in — its
//   depends_on ancestors and the canaries, which the caller probes at once
//   (take_evidence_requests(), answered through on_evidence()). It is placed
//   as soon as that evidence is in: under the parent's incident if the parent
//   went down meanwhile (the child never pages first), in the isolation
//   incident if every canary went down, else on its own; and at the latest
//   after `evidence_hold`. A target with no parent (depends_on) also waits for
//   its scope-mates (the other targets of its site and group, up to
//   kScopeMatesAsked), probed at once too: in a site going dark the first page
//   then names the site and every target that failed with it, not the one
//   host whose probe noticed first. A mate that answers, fires, or cannot
//   confirm (on_no_evidence) is heard from; a lone failure pages as soon as its
//   healthy mates have answered (a round trip). Once the scope's incident is
//   open, its later failures join at once. A target with no parent, no
//   canaries and no scope-mates configured is never held.
// - Lifecycle: declared → acknowledged → resolved (automatically when every
//   impacted alert has resolved, which already includes its clear_for; or by
//   hand); reopened rather than duplicated if its scope fires again within
//   `reopen_window`. `next_update_due` moves `update_every` ahead at every
//   change; tick() reports when a promise is overdue.
// - Flapping: an alert whose verdict changes more than max_flips times within
//   flap_window (rules/alert_state.h) marks its incident `flapping` (a
//   timeline entry, " (flapping)" in the title, a batched update that pages
//   no one); it stays one incident with one page, and resolves once the
//   alert does (held up for its hysteresis).
//
// Pure logic over a Clock; persistence is the caller's. Thread safety: one thread.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "rules/rule_engine.h"
#include "nightshift/clock.h"
#include "nightshift/incident.h"
#include "nightshift/result.h"
#include "nightshift/target.h"

namespace nightshift {

struct IncidentPolicy {
  std::vector<std::string> group_by = {"site", "group"};
  Duration reopen_window = std::chrono::minutes(30);
  Duration update_every = std::chrono::minutes(30);
  Duration batch = std::chrono::seconds(5);
  double vantage_ratio = 0.9;
  std::size_t vantage_min_targets = 4;
  Duration vantage_hold = std::chrono::seconds(2);
  // Longest wait for a parent's or a canary's out-of-schedule probe (an ICMP
  // confirmation of a dead host takes about 2 s); 0 declares at once.
  Duration evidence_hold = std::chrono::milliseconds(2500);
  // Resolved incidents stay in memory this long (for reopening and for people
  // to see); the store keeps them all.
  Duration keep_resolved = std::chrono::hours(24);
  std::string agent_name = "nightshift";
};

struct IncidentEvent {
  enum class Kind { kDeclared, kUpdated, kAcknowledged, kNote, kResolved, kReopened, kMerged, kUpdateOverdue };
  Kind kind;
  Incident incident;  // snapshot after the change
  bool page = false;  // true: the on-call should hear about it now
};
std::string_view to_string(IncidentEvent::Kind kind);

class IncidentManager {
 public:
  IncidentManager(const Clock& clock, IncidentPolicy policy);

  // Targets' labels, topology and canaries. Call at start and every reload.
  void set_targets(const std::vector<std::shared_ptr<const Target>>& targets);
  void set_policy(IncidentPolicy policy) { policy_ = std::move(policy); }

  // Only notified changes matter (AlertChange::notify); the rest are ignored.
  std::vector<IncidentEvent> on_alert(const rules::AlertEvent& alert);
  // Releases held declarations, batched updates and overdue reminders due now.
  std::vector<IncidentEvent> tick();
  std::optional<SteadyTime> next_deadline() const;

  // Targets to probe now, out of schedule, for held alerts (each asked once
  // per hold); cleared by the call.
  std::vector<std::string> take_evidence_requests();
  // The result of such a probe: `up` when the target answered. A target that
  // did not answer needs no call: its own alert comes through on_alert().
  std::vector<IncidentEvent> on_evidence(const std::string& target, bool up);
  // The caller could not probe these targets now (no probe of theirs has a
  // quick confirmation, or a budget refused it): held alerts do not wait for
  // them as scope-mates (an ancestor or canary still answers with its next run).
  std::vector<IncidentEvent> on_no_evidence(const std::vector<std::string>& targets);
  // At most this many scope-mates are probed for one held alert.
  static constexpr std::size_t kScopeMatesAsked = 32;

  Result<IncidentEvent> acknowledge(const std::string& id, const std::string& who);
  Result<IncidentEvent> add_note(const std::string& id, const std::string& text, bool is_public,
                                 const std::string& author);
  Result<IncidentEvent> resolve(const std::string& id, const std::string& who);

  // Open incidents first, then resolved ones, newest first.
  std::vector<Incident> incidents() const;
  const Incident* find(const std::string& id) const;

  // Restores state after a restart (from the store): incidents as they were,
  // and the next id number. The number also moves past every restored id
  // with this manager's tag, so a lost counter never hands out an id twice.
  void restore(std::vector<Incident> incidents, std::uint64_t next_sequence);
  std::uint64_t next_sequence() const { return next_sequence_; }

  // Incident ids are NS-<UTC date>-<tag>-<number>: `tag` names the state
  // store that issued the id (random, kept with it: see new_id_tag()), the
  // number counts up forever. Two agents, or one agent after losing its
  // store, never share a tag, so their ids, webhook idempotency keys,
  // PagerDuty dedup keys and Alertmanager labels never collide. Ids of the
  // older form NS-<date>-<number> stay valid for what was stored with them.
  // Unset: a tag derived from agent_name (for tests and tools without a store).
  void set_id_tag(std::string tag) { id_tag_ = std::move(tag); }
  const std::string& id_tag() const;

 private:
  struct State {
    Incident incident;
    SteadyTime last_change{};
    SteadyTime resolved_steady{};
    bool update_pending = false;
    SteadyTime update_due{};
    SteadyTime next_update_steady{};
    bool overdue_reported = false;
  };
  struct Held {
    rules::AlertEvent alert;
    SteadyTime until;
    std::set<std::string> awaiting;  // evidence holds: ancestors and canaries not heard from yet
    std::set<std::string> mates;     // evidence holds: scope-mates not heard from yet
    bool vantage = false;            // held because isolation is plausible
  };

  std::map<std::string, std::string> scope_of(const std::string& target) const;
  std::string new_id();
  State* open_incident_with(const std::string& target);
  State* open_incident_for_scope(const std::map<std::string, std::string>& scope);
  std::vector<IncidentEvent> place(const rules::AlertEvent& alert, bool may_hold = true);
  // The ancestors and canaries whose state would change where `target`'s alert goes.
  std::set<std::string> evidence_for(const std::string& target);
  // Whether `target` is in `when` (answered_, no_evidence_) within evidence_hold.
  bool within_hold(const std::map<std::string, SteadyTime>& when, const std::string& target) const;
  // The scope-mates of a target with no parent whose state is not known yet.
  std::set<std::string> mates_for(const std::string& target);
  void request_evidence(const std::string& target);
  // Places held alerts whose evidence is in (ancestors first); `expired`: also
  // those whose hold ran out.
  std::vector<IncidentEvent> release_held(bool expired);
  // After an alert was placed: when that declared its scope's incident, the
  // held alerts of its scope-mates join it before the declaration goes out.
  void declare_with_mates(const rules::AlertEvent& alert, std::vector<IncidentEvent>& placed);
  std::size_t depth(const std::string& target) const;
  // Whether an ancestor of `target` (depends_on, transitively) has a critical
  // alert: its own state is explained by that ancestor.
  bool behind_down_parent(const std::string& target) const;
  std::vector<IncidentEvent> place_in_scope(const rules::AlertEvent& alert);
  std::vector<IncidentEvent> on_fired(const rules::AlertEvent& alert);
  std::vector<IncidentEvent> on_resolved(const rules::AlertEvent& alert);
  // Marks the open incident holding the alert flapping, or notes that it
  // settled, and schedules a (non-paging) update.
  void on_flapping(const rules::AlertEvent& alert);
  std::vector<IncidentEvent> check_vantage();
  bool vantage_plausible() const;
  IncidentEvent declare(std::map<std::string, std::string> scope, std::vector<ImpactedTarget> impact, bool vantage);
  void touch(State& s, const std::string& kind, const std::string& text);
  void retitle(Incident& inc) const;
  std::string what_failed(const ImpactedTarget& t) const;
  SystemTime wall(SteadyTime t) const;
  ImpactedTarget impact_of(const rules::AlertEvent& alert, const std::string& via_parent) const;

  const Clock& clock_;
  IncidentPolicy policy_;
  std::map<std::string, std::shared_ptr<const Target>> targets_;
  // Configured targets behind each target (depends_on, transitively), and the
  // number of topology roots (targets with no depends_on).
  std::map<std::string, std::size_t> behind_;
  std::size_t roots_ = 0;
  std::map<std::string, State> incidents_;  // by id
  std::set<std::string> critical_targets_;  // targets with a firing critical alert
  std::vector<Held> held_;
  std::vector<std::string> evidence_requests_;
  std::map<std::string, SteadyTime> evidence_asked_;  // target -> when asked
  std::map<std::string, SteadyTime> answered_;        // target -> when it last answered an evidence probe
  std::map<std::string, SteadyTime> no_evidence_;     // target -> when it could not be probed at once
  // Targets with no parent, by scope (scope_of), in name order.
  std::map<std::map<std::string, std::string>, std::vector<std::string>> scope_members_;
  std::uint64_t next_sequence_ = 1;
  mutable std::string id_tag_;
};

// A fresh id tag: 6 characters of [a-z2-9] without the look-alikes i, l, o,
// from `random` (pass a value from std::random_device). About 30 bits: 50
// agents share one by chance with odds of about one in a million.
std::string new_id_tag(std::uint64_t random);
// Whether `tag` can be an id tag (what new_id_tag makes).
bool valid_id_tag(std::string_view tag);
// The number of an id with this tag ("NS-20261201-k3f9qa-0042" -> 42), or 0.
std::uint64_t id_sequence(std::string_view id, std::string_view tag);

}  // namespace nightshift
