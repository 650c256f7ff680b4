// Pipeline: where a sample becomes a page.
//
//   Sample ──► RuleEngine ──AlertEvent──► IncidentManager ──IncidentEvent──► Paging ──► OutboxEntry rows
//      │           (windows, for, clear_for, flap)   (scope, depends_on, vantage,      (sinks, renotify,
//      └─ first miss: ask for evidence (confirm)       reopen, silences;                escalation)
//                                                      a new critical alert waits
//                                                      for its parents' and the
//                                                      canaries' evidence)
//
// Driven by samples and the Clock alone: no sockets, no threads, no Agent. The
// daemon feeds it samples (probe runs and confirmation bursts alike) and calls
// tick() at next_deadline(); everything the pipeline decides comes back
// through Effects, in order: store the incident change and its notification
// rows in one transaction, ask an engine for evidence now, note a metric.
// Unit tests drive it on a ManualClock with an in-memory Effects
// (tests/unit/pipeline_test.cpp: timelines of samples in, pages out).
//
// Thread safety: one thread (the reactor). Effects are called on that thread,
// from inside on_sample(), tick() and the operator actions.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/hash.h"
#include "incidents/incidents.h"
#include "incidents/silences.h"
#include "notify/outbox.h"
#include "notify/paging.h"
#include "notify/sinks.h"
#include "rules/rule_engine.h"
#include "nightshift/clock.h"
#include "nightshift/result.h"
#include "nightshift/sample.h"
#include "nightshift/target.h"

namespace nightshift {

// What the pipeline runs on; all of it may change at a reload (configure()).
struct PipelineSettings {
  std::vector<rules::RuleSpec> rules;
  IncidentPolicy incidents;
  std::vector<SinkSpec> sinks;
  NotifyPolicy notify;  // status_url already resolved to something a person can open
  std::vector<std::shared_ptr<const Target>> targets;
};

class PipelineEffects {
 public:
  virtual ~PipelineEffects() = default;
  // Persist the incident's new state (when given) and the rows announcing it
  // in one transaction, then hand the rows to the notifier. Rows may be empty.
  virtual void commit(const Incident* incident, std::vector<OutboxEntry> rows) = 0;
  // Evidence now, out of schedule: ask (target, probe)'s engine for a quick
  // confirmation whose Sample comes back through Pipeline::on_sample. False
  // when the kind has none or a budget refused it.
  virtual bool confirm(const std::shared_ptr<const Target>& target, const ProbeSpec& spec) = 0;
  // Whether `spec`'s kind has such a confirmation at all (when confirm()
  // declines one of a kind that has, the target's state is in or coming).
  virtual bool has_confirmation(const ProbeSpec& spec) const {
    (void)spec;
    return false;
  }
  // Where does the path break? For a new incident's timeline; the finding
  // comes back through Pipeline::add_finding().
  virtual void diagnose(const Incident& incident) { (void)incident; }
  // Probe more only while uncertain: (target, probe) now has a critical alert
  // pending or firing, or its last run failed (uncertain), or neither any
  // longer. Called on each change; the agent runs uncertain probes more often
  // (core/scheduler.h).
  virtual void uncertainty_changed(const std::string& target, const std::string& probe, bool uncertain) {
    (void)target;
    (void)probe;
    (void)uncertain;
  }
  // Observations, for metrics and logs.
  virtual void alert_changed(const rules::AlertEvent& event) { (void)event; }
  virtual void incident_changed(const IncidentEvent& event) { (void)event; }
  virtual void sequence_changed(std::uint64_t next_sequence) { (void)next_sequence; }
  virtual void silence_saved(const Silence& silence) { (void)silence; }
  virtual void silence_removed(const std::string& id) { (void)id; }
};

class Pipeline {
 public:
  Pipeline(const Clock& clock, PipelineSettings settings, PipelineEffects& effects);

  // A reload. Alert states survive when the rules are unchanged (alerts of
  // (target, probe) pairs that are gone resolve); new rules start afresh and
  // the caller should reconcile() after reconcile_grace().
  // Returns true when the rules changed.
  bool configure(PipelineSettings settings);
  // After a restart: incidents as stored, the next id number, silences.
  // Paging follows the open incidents as if they had been announced.
  void restore(std::vector<Incident> incidents, std::uint64_t next_sequence, std::vector<Silence> silences);
  // This store's tag in every incident id it issues (see IncidentManager).
  void set_id_tag(std::string tag) { incidents_->set_id_tag(std::move(tag)); }

  // One probe run or confirmation of `target`. Samples of probes no longer
  // configured (in flight across a reload) are ignored.
  void on_sample(const std::shared_ptr<const Target>& target, const Sample& sample);
  // Completes what is due now: sustain and hysteresis, held declarations,
  // batched updates, overdue promises, renotify, escalation, keep-alives.
  void tick();
  std::optional<SteadyTime> next_deadline() const;

  // Resolves open incidents whose alerts are not firing: after a restart
  // (the outage ended while the agent was down) or a change of rules.
  void reconcile();
  // How long to wait before reconcile(): every probe runs a few times and
  // every sustain passes.
  Duration reconcile_grace() const;

  // Operator actions; NotFound for an unknown id.
  Result<Incident> acknowledge(const std::string& id, const std::string& by);
  Result<Incident> add_note(const std::string& id, const std::string& text, bool is_public, const std::string& by);
  Result<Incident> resolve(const std::string& id, const std::string& by);
  // A diagnosis finding for the incident's timeline (internal note); ignored
  // when the incident is gone.
  void add_finding(const std::string& id, const std::string& finding);

  Result<Silence> add_silence(Silence silence);
  bool remove_silence(const std::string& id);
  // Drops silences that ended; returns their ids.
  std::vector<std::string> expire_silences();
  bool silenced(const Incident& incident) const;

  const IncidentManager& incidents() const { return *incidents_; }
  const SilenceSet& silences() const { return silences_; }
  std::vector<rules::AlertEvent> firing() const { return rules_->firing(); }
  const PipelineSettings& settings() const { return settings_; }

 private:
  void apply_alerts(const std::vector<rules::AlertEvent>& events);
  void apply_incidents(const std::vector<IncidentEvent>& events);
  Result<Incident> apply_action(Result<IncidentEvent> event);
  void ask_for_evidence(const std::shared_ptr<const Target>& target, const Sample& sample);
  // Ask before paging: probes now, out of schedule, the targets whose state
  // decides where a held alert belongs (its parents, the canaries).
  void gather_evidence();
  // Per configured (target, probe): whether its last run failed, its critical
  // alerts pending or firing, and whether it was last reported uncertain
  // (failing or with such an alert). One entry per pair: one lookup a sample.
  struct ProbeDoubt {
    bool failing = false;
    int alerts = 0;
    bool uncertain = false;
  };
  using ProbeDoubts = std::unordered_map<std::pair<std::string, std::string>, ProbeDoubt, StringPairHash, StringPairEqual>;
  // Rebuilds probes_ from settings_.targets; returns the pairs gone that were uncertain.
  std::vector<std::pair<std::string, std::string>> reset_configured();
  // Reports a change of (target, probe)'s uncertainty to the effects.
  void update_uncertainty(const std::pair<std::string, std::string>& key, ProbeDoubt& doubt);
  void count_doubt(const rules::AlertEvent& event);

  const Clock& clock_;
  PipelineEffects& effects_;
  PipelineSettings settings_;
  std::unique_ptr<rules::RuleEngine> rules_;
  std::unique_ptr<IncidentManager> incidents_;
  SilenceSet silences_;
  std::unique_ptr<Paging> paging_;
  ProbeDoubts probes_;  // exactly the configured pairs
  // Targets asked for evidence whose answer has not come in yet.
  std::set<std::string> evidence_pending_;
};

}  // namespace nightshift
