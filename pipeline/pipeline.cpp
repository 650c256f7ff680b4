#include "pipeline/pipeline.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "core/log.h"
#include "incidents/incident_json.h"

namespace nightshift {

Pipeline::Pipeline(const Clock& clock, PipelineSettings settings, PipelineEffects& effects)
    : clock_(clock),
      effects_(effects),
      settings_(std::move(settings)),
      rules_(std::make_unique<rules::RuleEngine>(clock, settings_.rules)),
      incidents_(std::make_unique<IncidentManager>(clock, settings_.incidents)),
      paging_(std::make_unique<Paging>(clock, settings_.sinks, settings_.notify,
                                       [this](const Incident& inc) { return silenced(inc); })) {
  incidents_->set_targets(settings_.targets);
  (void)reset_configured();  // nothing was uncertain yet
}

std::vector<std::pair<std::string, std::string>> Pipeline::reset_configured() {
  evidence_pending_.clear();
  ProbeDoubts next;
  for (const auto& t : settings_.targets) {
    for (const auto& p : t->probes) next.try_emplace({t->name, p.name});
  }
  // Surviving pairs keep what they knew; the gone ones that were reported
  // uncertain are reported certain by the caller.
  std::vector<std::pair<std::string, std::string>> gone_uncertain;
  for (auto& [key, doubt] : probes_) {
    if (auto it = next.find(key); it != next.end()) {
      it->second = doubt;
    } else if (doubt.uncertain) {
      gone_uncertain.push_back(key);
    }
  }
  probes_ = std::move(next);
  return gone_uncertain;
}

bool Pipeline::configure(PipelineSettings settings) {
  settings_ = std::move(settings);
  const auto gone_uncertain = reset_configured();
  incidents_->set_policy(settings_.incidents);
  incidents_->set_targets(settings_.targets);
  paging_->configure(settings_.sinks, settings_.notify);
  bool changed = false;
  if (rules::fingerprint(rules_->rules()) != rules::fingerprint(settings_.rules)) {
    rules_ = std::make_unique<rules::RuleEngine>(clock_, settings_.rules);
    log::info("rules changed: alert states start afresh", {{"rules", settings_.rules.size()}});
    for (auto& [key, doubt] : probes_) doubt.alerts = 0;  // the alerts behind them are gone
    changed = true;
  } else {
    apply_alerts(rules_->retain(settings_.targets));
  }
  for (const auto& key : gone_uncertain) effects_.uncertainty_changed(key.first, key.second, false);
  for (auto& [key, doubt] : probes_) update_uncertainty(key, doubt);
  return changed;
}

void Pipeline::restore(std::vector<Incident> incidents, std::uint64_t next_sequence, std::vector<Silence> silences) {
  incidents_->restore(std::move(incidents), next_sequence);
  paging_->restore(incidents_->incidents());
  silences_.restore(std::move(silences));
}

void Pipeline::on_sample(const std::shared_ptr<const Target>& target, const Sample& sample) {
  // A probe still in flight when a reload removed it must not bring back rule state.
  auto it = probes_.find(ProbeKeyView{sample.target, sample.probe});
  if (it == probes_.end()) return;
  // Entries are only erased by a reload, never from here: the reference holds.
  ProbeDoubt& doubt = it->second;
  apply_alerts(rules_->on_sample(*target, sample));
  if (!evidence_pending_.empty() && evidence_pending_.erase(sample.target) && sample.ok) {
    // A target asked for evidence answered: a held alert may go now.
    apply_incidents(incidents_->on_evidence(sample.target, true));
  }
  const bool first_failure = !sample.ok && !doubt.failing;
  doubt.failing = !sample.ok;
  if (first_failure) ask_for_evidence(target, sample);
  update_uncertainty(it->first, doubt);
}

// Only alerts that may page: a warning's sustained statistics (loss over
// minutes) are not decided faster by more runs, and a run with fewer packets
// would change what they measure.
void Pipeline::count_doubt(const rules::AlertEvent& e) {
  if (e.severity != Severity::kCritical) return;
  const bool was = e.change.from != rules::AlertPhase::kInactive;
  const bool is = e.change.to != rules::AlertPhase::kInactive;
  if (was == is) return;
  // Alerts of pairs a reload removed resolve here too: those are not configured any more.
  auto it = probes_.find(ProbeKeyView{e.target, e.probe});
  if (it == probes_.end()) return;
  ProbeDoubt& doubt = it->second;
  doubt.alerts = is ? doubt.alerts + 1 : std::max(doubt.alerts - 1, 0);
  update_uncertainty(it->first, doubt);
}

void Pipeline::update_uncertainty(const std::pair<std::string, std::string>& key, ProbeDoubt& doubt) {
  const bool uncertain = doubt.failing || doubt.alerts > 0;
  if (uncertain == doubt.uncertain) return;
  doubt.uncertain = uncertain;
  effects_.uncertainty_changed(key.first, key.second, uncertain);
}

// The first miss asks the engine for evidence at once (an ICMP burst) rather
// than waiting for two more intervals.
void Pipeline::ask_for_evidence(const std::shared_ptr<const Target>& target, const Sample& sample) {
  for (const auto& spec : target->probes) {
    if (spec.name == sample.probe) {
      effects_.confirm(target, spec);
      return;
    }
  }
}

void Pipeline::tick() {
  apply_alerts(rules_->tick());
  apply_incidents(incidents_->tick());
  gather_evidence();
  std::vector<OutboxEntry> rows = paging_->tick();
  if (!rows.empty()) effects_.commit(nullptr, std::move(rows));
}

std::optional<SteadyTime> Pipeline::next_deadline() const {
  std::optional<SteadyTime> due;
  for (const auto& d : {rules_->next_deadline(), incidents_->next_deadline(), paging_->next_deadline()}) {
    if (d && (!due || *d < *due)) due = d;
  }
  return due;
}

void Pipeline::apply_alerts(const std::vector<rules::AlertEvent>& events) {
  for (const auto& e : events) {
    effects_.alert_changed(e);
    count_doubt(e);
    const std::string state(rules::to_string(e.change.to));
    // A fire or resolve that also starts or ends flapping is logged as what it
    // is (flapping=yes/no says the rest); a mark without one as its own line.
    const std::string msg = e.change.from == e.change.to
                                ? (e.change.flapping ? "alert flapping" : "alert settled")
                                : "alert " + std::string(e.change.to == rules::AlertPhase::kInactive ? "resolved" : state);
    const LogLevel level = !e.change.notify ? LogLevel::kDebug
                           : e.change.to == rules::AlertPhase::kFiring ? LogLevel::kWarn
                                                                      : LogLevel::kInfo;
    log::write(level, msg, {{"rule", e.rule},
                            {"severity", std::string(to_string(e.severity))},
                            {"target", e.target},
                            {"probe", e.probe},
                            {"state", state},
                            {"flapping", e.change.flapping ? "yes" : "no"},
                            {"summary", e.summary},
                            {"expression", e.expression}});
    apply_incidents(incidents_->on_alert(e));
  }
  gather_evidence();
}

void Pipeline::gather_evidence() {
  std::vector<std::string> unasked;
  for (const auto& name : incidents_->take_evidence_requests()) {
    auto t = std::find_if(settings_.targets.begin(), settings_.targets.end(),
                          [&](const auto& target) { return target->name == name; });
    if (t == settings_.targets.end()) {
      unasked.push_back(name);  // gone with a reload
      continue;
    }
    evidence_pending_.insert(name);
    // Declined by a kind that has a confirmation: one is running, or the
    // target confirmed down already; its sample or alert is coming.
    bool coming = false;
    for (const auto& spec : (*t)->probes) coming = effects_.confirm(*t, spec) || effects_.has_confirmation(spec) || coming;
    if (!coming) unasked.push_back(name);
  }
  // Held alerts do not wait for scope-mates that cannot answer now.
  if (!unasked.empty()) apply_incidents(incidents_->on_no_evidence(unasked));
}

void Pipeline::apply_incidents(const std::vector<IncidentEvent>& events) {
  for (const auto& e : events) {
    const Incident& inc = e.incident;
    log::write(e.page ? LogLevel::kWarn : LogLevel::kInfo, "incident " + std::string(to_string(e.kind)),
               {{"id", inc.id},
                {"title", inc.title},
                {"severity", std::string(to_string(inc.severity))},
                {"status", std::string(to_string(inc.status))},
                {"impacted", inc.active_impact()},
                {"page", e.page ? "yes" : "no"}});
    effects_.incident_changed(e);
    if ((e.kind == IncidentEvent::Kind::kDeclared || e.kind == IncidentEvent::Kind::kReopened) && !inc.vantage) {
      effects_.diagnose(inc);
    }
    effects_.commit(&inc, paging_->on_event(e));
  }
  if (!events.empty()) effects_.sequence_changed(incidents_->next_sequence());
}

void Pipeline::reconcile() {
  std::set<std::tuple<std::string, std::string, std::string>> firing;
  for (const auto& e : rules_->firing()) firing.insert({e.rule, e.target, e.probe});
  std::vector<IncidentEvent> events;
  for (const auto& inc : incidents_->incidents()) {
    if (!inc.open()) continue;
    for (const auto& t : inc.impacted) {
      if (!t.active || firing.count({t.rule, t.target, t.probe})) continue;
      rules::AlertEvent cleared;
      cleared.rule = t.rule;
      cleared.severity = t.severity;
      cleared.target = t.target;
      cleared.probe = t.probe;
      cleared.change = {rules::AlertPhase::kFiring, rules::AlertPhase::kInactive, clock_.now()};
      cleared.summary = "not firing since the agent restarted";
      auto out = incidents_->on_alert(cleared);
      events.insert(events.end(), out.begin(), out.end());
    }
  }
  apply_incidents(events);
}

Duration Pipeline::reconcile_grace() const {
  Duration max_interval = std::chrono::seconds(10);
  for (const auto& t : settings_.targets) {
    for (const auto& p : t->probes) max_interval = std::max(max_interval, p.interval);
  }
  Duration max_for{};
  for (const auto& r : settings_.rules) max_for = std::max(max_for, r.timing.for_duration);
  return std::max<Duration>(std::chrono::minutes(3), 5 * max_interval + max_for);
}

Result<Incident> Pipeline::apply_action(Result<IncidentEvent> event) {
  if (!event.ok()) return event.error();
  apply_incidents({event.value()});
  return event.value().incident;
}

Result<Incident> Pipeline::acknowledge(const std::string& id, const std::string& by) {
  if (!incidents_->find(id)) return Error::not_found("no such incident: " + id);
  log::info("incident acknowledged by hand", {{"id", id}, {"by", by}});
  return apply_action(incidents_->acknowledge(id, by.empty() ? "operator" : by));
}

Result<Incident> Pipeline::add_note(const std::string& id, const std::string& text, bool is_public,
                                    const std::string& by) {
  if (!incidents_->find(id)) return Error::not_found("no such incident: " + id);
  return apply_action(incidents_->add_note(id, text, is_public, by.empty() ? "operator" : by));
}

Result<Incident> Pipeline::resolve(const std::string& id, const std::string& by) {
  if (!incidents_->find(id)) return Error::not_found("no such incident: " + id);
  log::info("incident resolved by hand", {{"id", id}, {"by", by}});
  return apply_action(incidents_->resolve(id, by.empty() ? "operator" : by));
}

void Pipeline::add_finding(const std::string& id, const std::string& finding) {
  auto noted = incidents_->add_note(id, finding, /*is_public=*/false, "nightshift");
  if (!noted.ok()) return;  // resolved and gone meanwhile
  log::info("incident diagnosis", {{"id", id}, {"finding", finding}});
  // A finding is for the timeline, not a notification.
  effects_.commit(&noted->incident, {});
}

Result<Silence> Pipeline::add_silence(Silence silence) {
  auto added = silences_.add(std::move(silence), clock_.wall_now());
  if (!added.ok()) return added.error();
  effects_.silence_saved(*added);
  std::string matchers;
  for (const auto& m : added->matchers) matchers += (matchers.empty() ? "" : ",") + m.to_string();
  log::info("silence added", {{"id", added->id},
                              {"matchers", matchers},
                              {"author", added->author},
                              {"ends_at", format_time(added->ends_at)}});
  return added;
}

bool Pipeline::remove_silence(const std::string& id) {
  if (!silences_.remove(id)) return false;
  effects_.silence_removed(id);
  log::info("silence removed", {{"id", id}});
  return true;
}

std::vector<std::string> Pipeline::expire_silences() {
  auto gone = silences_.expire(clock_.wall_now());
  for (const auto& id : gone) {
    log::info("silence expired", {{"id", id}});
    effects_.silence_removed(id);
  }
  return gone;
}

bool Pipeline::silenced(const Incident& incident) const { return silences_.silences(incident, clock_.wall_now()); }

}  // namespace nightshift
