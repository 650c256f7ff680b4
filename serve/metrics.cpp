#include "serve/metrics.h"

#include <cctype>

#include <fstream>
#include <set>
#include <sstream>

#include <prometheus/text_serializer.h>

#include "nightshift/version.h"

namespace nightshift {

namespace {
const char kHelpSuccess[] = "Whether the probe's last run succeeded (1) or failed (0).";
const char kHelpDuration[] = "How long the probe's last run took, in seconds.";
const char kHelpFailureReason[] =
    "Present (value 1) while the probe's last run failed; the reason label says why "
    "(timeout, refused, unreachable, ttl_exceeded, dns_failure, banner_mismatch, connection_closed, resource_limit, error).";
const char kHelpResults[] = "Probe runs completed, by result (ok or the failure reason).";
const char kHelpTargetInfo[] = "Configured targets with their address and extra labels (value 1).";
}  // namespace

AgentMetrics::AgentMetrics(std::string agent_name, std::vector<KindMeasures> measures)
    : agent_(std::move(agent_name)),
      registry_(std::make_shared<prometheus::Registry>()),
      success_(prometheus::BuildGauge().Name("probe_success").Help(kHelpSuccess).Register(*registry_)),
      duration_(prometheus::BuildGauge().Name("probe_duration_seconds").Help(kHelpDuration).Register(*registry_)),
      failure_reason_(prometheus::BuildGauge()
                          .Name("nightshift_probe_failure_reason")
                          .Help(kHelpFailureReason)
                          .Register(*registry_)),
      results_(prometheus::BuildCounter()
                   .Name("nightshift_probe_results_total")
                   .Help(kHelpResults)
                   .Register(*registry_)),
      target_info_(prometheus::BuildGauge().Name("nightshift_target_info").Help(kHelpTargetInfo).Register(*registry_)),
      probes_sent_(prometheus::BuildCounter()
                       .Name("nightshift_probes_sent_total")
                       .Help("Probe runs started, by probe kind.")
                       .Register(*registry_)),
      in_flight_(prometheus::BuildGauge()
                     .Name("nightshift_probes_in_flight")
                     .Help("Probe runs started and not yet completed, by probe kind.")
                     .Register(*registry_)),
      reloads_(prometheus::BuildCounter()
                   .Name("nightshift_config_reloads_total")
                   .Help("Configuration reloads (SIGHUP), by result.")
                   .Register(*registry_)),
      alerts_(prometheus::BuildGauge()
                  .Name("nightshift_alerts")
                  .Help("Alerts now pending or firing (value 1), by rule, target, probe and state.")
                  .Register(*registry_)),
      alert_changes_(prometheus::BuildCounter()
                         .Name("nightshift_alert_changes_total")
                         .Help("Alert state changes, by rule and the state entered.")
                         .Register(*registry_)),
      incident_events_(prometheus::BuildCounter()
                           .Name("nightshift_incident_events_total")
                           .Help("Incident lifecycle events (declared, updated, resolved, reopened, ...), by severity.")
                           .Register(*registry_)),
      open_incidents_(prometheus::BuildGauge()
                          .Name("nightshift_incidents_open")
                          .Help("Open incidents, by severity.")
                          .Register(*registry_)),
      confirmations_(prometheus::BuildCounter()
                         .Name("nightshift_confirmations_total")
                         .Help("Confirmation bursts after a miss, by kind and result (started, answered, unanswered).")
                         .Register(*registry_)) {
  measures_ = std::move(measures);
  const prometheus::Labels agent_label{{"agent", agent_}};
  scheduler_lag_ = &prometheus::BuildHistogram()
                        .Name("nightshift_scheduler_lag_seconds")
                        .Help("How late probes started against their scheduled time.")
                        .Register(*registry_)
                        .Add(agent_label, prometheus::Histogram::BucketBoundaries{
                                              0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                              0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  auto& reload_ok = prometheus::BuildGauge()
                        .Name("nightshift_config_last_reload_successful")
                        .Help("Whether the last configuration load succeeded (1) or was rejected (0).")
                        .Register(*registry_);
  reload_ok_ = &reload_ok.Add(agent_label);
  reload_ok_->Set(1);
  reload_time_ = &prometheus::BuildGauge()
                      .Name("nightshift_config_last_reload_success_timestamp_seconds")
                      .Help("When the configuration was last loaded successfully, as a Unix time.")
                      .Register(*registry_)
                      .Add(agent_label);
  targets_count_ = &prometheus::BuildGauge()
                        .Name("nightshift_targets")
                        .Help("Configured targets.")
                        .Register(*registry_)
                        .Add(agent_label);
  probes_count_ = &prometheus::BuildGauge()
                       .Name("nightshift_probes_configured")
                       .Help("Configured probes across all targets.")
                       .Register(*registry_)
                       .Add(agent_label);
  time_to_declare_ = &prometheus::BuildHistogram()
                          .Name("nightshift_incident_time_to_declare_seconds")
                          .Help("From an incident's first anomaly to its declaration.")
                          .Register(*registry_)
                          .Add(agent_label, prometheus::Histogram::BucketBoundaries{
                                                0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800});
  store_errors_ = &prometheus::BuildCounter()
                       .Name("nightshift_store_errors_total")
                       .Help("Failed writes to the state store (disk full, I/O errors); probing and alerting go on.")
                       .Register(*registry_)
                       .Add(agent_label);
  for (const char* severity : {"critical", "warning", "info"}) {
    open_incidents_.Add({{"severity", severity}, {"agent", agent_}}).Set(0);
  }
  prometheus::BuildGauge()
      .Name("nightshift_build_info")
      .Help("Build information (value 1).")
      .Register(*registry_)
      .Add({{"agent", agent_}, {"version", kVersion}, {"revision", kRevision}, {"compiler", kCompiler}})
      .Set(1);
}

std::string AgentMetrics::render() const {
  std::ostringstream out;
  auto families = registry_->Collect();
  auto process = process_.Collect();
  families.insert(families.end(), std::make_move_iterator(process.begin()), std::make_move_iterator(process.end()));
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

void AgentMetrics::remove_series(Series& s) {
  success_.Remove(s.success);
  duration_.Remove(s.duration);
  if (s.failure_reason) failure_reason_.Remove(s.failure_reason);
  for (auto& [reason, c] : s.results) results_.Remove(c);
  for (auto& [name, g] : s.values) value_family(s.labels.at("kind"), name).Remove(g);
  for (auto& [name, h] : s.observations) histogram_family(s.labels.at("kind"), name).Remove(h);
  for (auto& [key, l] : s.labeled) remove_labeled(key.first, l);
}

void AgentMetrics::remove_labeled(const std::string& metric, Series::Labeled& l) {
  if (l.gauge != nullptr) labeled_gauges_.at(metric)->Remove(l.gauge);
  if (l.counter != nullptr) labeled_counters_.at(metric)->Remove(l.counter);
  l = {};
}

void AgentMetrics::record_series(Series& s, const std::vector<LabeledValue>& series) {
  std::set<std::pair<std::string, prometheus::Labels>> seen;
  for (const auto& v : series) {
    prometheus::Labels labels = s.labels;
    for (const auto& [k, value] : v.labels) labels[k] = value;
    auto key = std::make_pair(v.metric, std::move(labels));
    Series::Labeled& l = s.labeled[key];
    const bool counter = v.type == LabeledValue::Type::kCounter;
    if ((counter && l.gauge != nullptr) || (!counter && l.counter != nullptr)) remove_labeled(v.metric, l);
    if (counter) {
      if (l.counter != nullptr && v.value < l.counter->Value()) remove_labeled(v.metric, l);  // a reset
      if (l.counter == nullptr) {
        auto& family = labeled_counters_[v.metric];
        if (family == nullptr) {
          family = &prometheus::BuildCounter().Name(v.metric).Help("see docs/metrics.md").Register(*registry_);
        }
        l.counter = &family->Add(key.second);
      }
      if (v.value > l.counter->Value()) l.counter->Increment(v.value - l.counter->Value());
    } else {
      if (l.gauge == nullptr) {
        auto& family = labeled_gauges_[v.metric];
        if (family == nullptr) {
          family = &prometheus::BuildGauge().Name(v.metric).Help("see docs/metrics.md").Register(*registry_);
        }
        l.gauge = &family->Add(key.second);
      }
      l.gauge->Set(v.value);
    }
    seen.insert(std::move(key));
  }
  for (auto it = s.labeled.begin(); it != s.labeled.end();) {
    if (seen.count(it->first) == 0) {
      remove_labeled(it->first.first, it->second);
      it = s.labeled.erase(it);
    } else {
      ++it;
    }
  }
}

void AgentMetrics::sync_targets(const std::vector<std::shared_ptr<const Target>>& targets) {
  std::unordered_map<std::pair<std::string, std::string>, prometheus::Labels, StringPairHash> wanted;
  std::map<std::string, prometheus::Labels> wanted_info;
  std::size_t probe_count = 0;
  for (const auto& t : targets) {
    prometheus::Labels info{{"target", t->name}, {"address", t->address}, {"group", t->group},
                            {"site", t->site}, {"agent", agent_}};
    for (const auto& [k, v] : t->labels) info[k] = v;
    wanted_info[t->name] = std::move(info);
    for (const auto& p : t->probes) {
      ++probe_count;
      wanted[{t->name, p.name}] = {{"target", t->name}, {"probe", p.name}, {"kind", p.kind},
                                   {"group", t->group}, {"site", t->site}, {"agent", agent_}};
    }
  }
  // Remove what is gone or changed; a surviving probe keeps its series (and
  // counters). Series are created at a probe's first result, so a fresh start
  // shows no made-up value before anything was measured.
  for (auto it = series_.begin(); it != series_.end();) {
    auto w = wanted.find(it->first);
    if (w == wanted.end() || w->second != it->second.labels) {
      remove_series(it->second);
      it = series_.erase(it);
    } else {
      ++it;
    }
  }
  configured_ = std::move(wanted);
  for (auto it = target_info_series_.begin(); it != target_info_series_.end();) {
    auto w = wanted_info.find(it->first);
    if (w == wanted_info.end() || w->second != target_info_labels_[it->first]) {
      target_info_.Remove(it->second);
      target_info_labels_.erase(it->first);
      it = target_info_series_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [name, labels] : wanted_info) {
    if (target_info_series_.count(name)) continue;
    auto& g = target_info_.Add(labels);
    g.Set(1);
    target_info_series_[name] = &g;
    target_info_labels_[name] = labels;
  }
  targets_count_->Set(static_cast<double>(targets.size()));
  probes_count_->Set(static_cast<double>(probe_count));
}

std::string AgentMetrics::measure_help(const std::string& kind, const std::string& name,
                                      const std::string& fallback) const {
  for (const auto& k : measures_) {
    if (k.kind != kind) continue;
    for (const auto& m : k.measures) {
      if (m.name != name) continue;
      std::string help(m.help);
      if (!help.empty()) help[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(help[0])));
      if (!m.unit.empty()) help += " (" + std::string(m.unit) + ")";
      return help + ".";
    }
  }
  return fallback;
}

prometheus::Family<prometheus::Gauge>& AgentMetrics::value_family(const std::string& kind, const std::string& value) {
  const std::string name = "probe_" + kind + "_" + value;
  auto it = value_families_.find(name);
  if (it != value_families_.end()) return *it->second;
  auto& fam = prometheus::BuildGauge()
                  .Name(name)
                  .Help(measure_help(kind, value, "Last measured " + value + " of the " + kind + " probe (see docs/metrics.md)."))
                  .Register(*registry_);
  value_families_[name] = &fam;
  return fam;
}

prometheus::Family<prometheus::Histogram>& AgentMetrics::histogram_family(const std::string& kind,
                                                                        const std::string& name) {
  const std::string full = "probe_" + kind + "_" + name;
  auto it = histogram_families_.find(full);
  if (it != histogram_families_.end()) return *it->second;
  auto& fam = prometheus::BuildHistogram()
                  .Name(full)
                  .Help(measure_help(kind, name, "Distribution of the " + kind + " probe's " + name + " (see docs/metrics.md)."))
                  .Register(*registry_);
  histogram_families_[full] = &fam;
  return fam;
}

void AgentMetrics::record(const Sample& sample) {
  const std::pair<std::string, std::string> key{sample.target, sample.probe};
  auto it = series_.find(key);
  if (it == series_.end()) {
    auto c = configured_.find(key);
    if (c == configured_.end()) return;  // removed by a reload while in flight
    Series fresh;
    fresh.labels = c->second;
    fresh.success = &success_.Add(fresh.labels);
    fresh.duration = &duration_.Add(fresh.labels);
    it = series_.emplace(key, std::move(fresh)).first;
  }
  Series& s = it->second;
  s.success->Set(sample.ok ? 1 : 0);
  s.duration->Set(std::chrono::duration<double>(sample.duration).count());
  const std::string reason(to_string(sample.reason));
  auto& counter = s.results[reason];
  if (counter == nullptr) {
    prometheus::Labels labels = s.labels;
    labels["result"] = reason;
    counter = &results_.Add(labels);
  }
  counter->Increment();
  if (s.failure_reason != nullptr && (sample.ok || s.failure_reason_value != reason)) {
    failure_reason_.Remove(s.failure_reason);
    s.failure_reason = nullptr;
  }
  if (!sample.ok && s.failure_reason == nullptr) {
    prometheus::Labels labels = s.labels;
    labels["reason"] = reason;
    s.failure_reason = &failure_reason_.Add(labels);
    s.failure_reason->Set(1);
    s.failure_reason_value = reason;
  }
  for (const auto& [name, value] : sample.values) {
    auto& g = s.values[name];
    if (g == nullptr) g = &value_family(sample.kind, name).Add(s.labels);
    g->Set(value);
  }
  // 100us to 5s, roughly x2.5 per step: loopback to satellite round trips.
  static const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
  for (const auto& [name, value] : sample.observations) {
    auto& h = s.observations[name];
    if (h == nullptr) h = &histogram_family(sample.kind, name).Add(s.labels, kLatencyBuckets);
    h->Observe(value);
  }
  if (!sample.series.empty() || !s.labeled.empty()) record_series(s, sample.series);
}

void AgentMetrics::probe_sent(const std::string& kind) {
  auto& c = sent_by_kind_[kind];
  if (c == nullptr) c = &probes_sent_.Add({{"kind", kind}, {"agent", agent_}});
  c->Increment();
}

void AgentMetrics::set_in_flight(const std::string& kind, double n) {
  auto& g = in_flight_by_kind_[kind];
  if (g == nullptr) g = &in_flight_.Add({{"kind", kind}, {"agent", agent_}});
  g->Set(n);
}

void AgentMetrics::alert(const rules::AlertEvent& event) {
  const auto key = std::make_tuple(event.rule, event.target, event.probe);
  if (auto it = alert_series_.find(key); it != alert_series_.end()) {
    alerts_.Remove(it->second);
    alert_series_.erase(it);
  }
  const std::string state(rules::to_string(event.change.to));
  if (event.change.to != rules::AlertPhase::kInactive) {
    auto& g = alerts_.Add({{"rule", event.rule},
                           {"severity", event.severity},
                           {"target", event.target},
                           {"probe", event.probe},
                           {"state", state},
                           {"agent", agent_}});
    g.Set(1);
    alert_series_[key] = &g;
  }
  if (event.change.from != event.change.to) {
    alert_changes_.Add({{"rule", event.rule}, {"to", state}, {"agent", agent_}}).Increment();
  }
}

void AgentMetrics::incident(const IncidentEvent& event) {
  incident_events_.Add({{"event", std::string(to_string(event.kind))}, {"severity", event.incident.severity}, {"agent", agent_}})
      .Increment();
  if (event.kind == IncidentEvent::Kind::kDeclared) {
    time_to_declare_->Observe(
        std::chrono::duration<double>(event.incident.declared_at - event.incident.started_at).count());
  }
}

void AgentMetrics::set_open_incidents(const std::map<std::string, int>& by_severity) {
  for (const char* severity : {"critical", "warning", "info"}) {
    auto it = by_severity.find(severity);
    open_incidents_.Add({{"severity", severity}, {"agent", agent_}}).Set(it == by_severity.end() ? 0 : it->second);
  }
}

void AgentMetrics::confirmation_started(const std::string& kind) {
  confirmations_.Add({{"kind", kind}, {"result", "started"}, {"agent", agent_}}).Increment();
}

void AgentMetrics::confirmation_done(const std::string& kind, bool answered) {
  confirmations_.Add({{"kind", kind}, {"result", answered ? "answered" : "unanswered"}, {"agent", agent_}})
      .Increment();
}

void AgentMetrics::config_reload(bool success, double unix_time) {
  reloads_.Add({{"result", success ? "success" : "failure"}, {"agent", agent_}}).Increment();
  reload_ok_->Set(success ? 1 : 0);
  if (success) reload_time_->Set(unix_time);
}

}  // namespace nightshift
