// Metrics: every Prometheus family nightshift exports, declared in one place.
//
// Per probe: probe_success and probe_duration_seconds (the blackbox_exporter
// names), a failure-reason series while failing, result counters by reason, and
// kind-specific gauges from Sample::values (probe_<kind>_<value>). Labels: target,
// probe, kind, group, site, agent. Self-metrics: probes sent, in flight,
// scheduler lag, config reloads, build info, process CPU/memory/fds.
//
// Thread safety: record()/sync_targets() from the reactor thread; the registry
// may be collected from any thread (prometheus-cpp locks per family).
#pragma once

#include <map>
#include <unordered_map>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "serve/process_metrics.h"
#include "core/hash.h"
#include "incidents/incidents.h"
#include "rules/rule_engine.h"
#include "nightshift/measure.h"
#include "nightshift/sample.h"
#include "nightshift/target.h"

namespace nightshift {

class AgentMetrics {
 public:
  // `measures`: every kind's declared measures, for the help text of the
  // probe_<kind>_<name> series (nightshift/measure.h).
  explicit AgentMetrics(std::string agent_name, std::vector<KindMeasures> measures = {});

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // The /metrics body: the text exposition format.
  std::string render() const;

  // Creates the series of every configured probe and removes those of probes
  // that are gone or whose labels changed.
  void sync_targets(const std::vector<std::shared_ptr<const Target>>& targets);
  void record(const Sample& sample);

  void probe_sent(const std::string& kind);
  void set_in_flight(const std::string& kind, double n);
  void scheduler_lag(double seconds) { scheduler_lag_->Observe(seconds); }
  void config_reload(bool success, double unix_time);
  // Alert states as series like Prometheus' own ALERTS: present while pending or firing.
  void alert(const rules::AlertEvent& event);
  // Incident counters and the time from first anomaly to declaration.
  void incident(const IncidentEvent& event);
  void set_open_incidents(const std::map<std::string, int>& by_severity);
  void store_error() { store_errors_->Increment(); }
  // Confirmation bursts after a miss: started, and answered (any reply) or not.
  void confirmation_started(const std::string& kind);
  void confirmation_done(const std::string& kind, bool answered);

 private:
  struct Series {
    prometheus::Labels labels;  // target, probe, kind, group, site, agent
    prometheus::Gauge* success = nullptr;
    prometheus::Gauge* duration = nullptr;
    prometheus::Gauge* failure_reason = nullptr;  // set while the last run failed
    std::string failure_reason_value;
    std::map<std::string, prometheus::Counter*> results;  // by reason, created on first use
    std::map<std::string, prometheus::Gauge*> values;     // kind-specific values
    std::map<std::string, prometheus::Histogram*> observations;
    struct Labeled {
      prometheus::Gauge* gauge = nullptr;
      prometheus::Counter* counter = nullptr;
    };
    std::map<std::pair<std::string, prometheus::Labels>, Labeled> labeled;  // (metric, labels)
  };
  void record_series(Series& s, const std::vector<LabeledValue>& series);
  void remove_labeled(const std::string& metric, Series::Labeled& l);
  void remove_series(Series& s);
  prometheus::Family<prometheus::Gauge>& value_family(const std::string& kind, const std::string& value);
  prometheus::Family<prometheus::Histogram>& histogram_family(const std::string& kind, const std::string& name);

  std::string agent_;
  std::shared_ptr<prometheus::Registry> registry_;
  ProcessMetrics process_;

  prometheus::Family<prometheus::Gauge>& success_;
  prometheus::Family<prometheus::Gauge>& duration_;
  prometheus::Family<prometheus::Gauge>& failure_reason_;
  prometheus::Family<prometheus::Counter>& results_;
  prometheus::Family<prometheus::Gauge>& target_info_;
  prometheus::Family<prometheus::Counter>& probes_sent_;
  prometheus::Family<prometheus::Gauge>& in_flight_;
  prometheus::Family<prometheus::Counter>& reloads_;
  prometheus::Histogram* scheduler_lag_;
  prometheus::Gauge* reload_ok_;
  prometheus::Gauge* reload_time_;
  prometheus::Gauge* targets_count_;
  prometheus::Gauge* probes_count_;

  std::unordered_map<std::pair<std::string, std::string>, prometheus::Labels, StringPairHash> configured_;
  std::unordered_map<std::pair<std::string, std::string>, Series, StringPairHash> series_;  // at the first result
  std::map<std::string, prometheus::Gauge*> target_info_series_;
  std::map<std::string, prometheus::Labels> target_info_labels_;
  std::map<std::string, prometheus::Counter*> sent_by_kind_;
  std::map<std::string, prometheus::Gauge*> in_flight_by_kind_;
  std::map<std::string, prometheus::Family<prometheus::Gauge>*> value_families_;
  std::map<std::string, prometheus::Family<prometheus::Histogram>*> histogram_families_;
  std::map<std::string, prometheus::Family<prometheus::Gauge>*> labeled_gauges_;     // by metric name
  std::map<std::string, prometheus::Family<prometheus::Counter>*> labeled_counters_;  // by metric name
  prometheus::Family<prometheus::Gauge>& alerts_;
  prometheus::Family<prometheus::Counter>& alert_changes_;
  prometheus::Family<prometheus::Counter>& incident_events_;
  prometheus::Family<prometheus::Gauge>& open_incidents_;
  prometheus::Family<prometheus::Counter>& confirmations_;
  prometheus::Histogram* time_to_declare_ = nullptr;
  prometheus::Counter* store_errors_ = nullptr;
  std::map<std::tuple<std::string, std::string, std::string>, prometheus::Gauge*> alert_series_;  // rule, target, probe
  // The declared help of kind's measure `name`, with its unit; `fallback` if undeclared.
  std::string measure_help(const std::string& kind, const std::string& name, const std::string& fallback) const;
  std::vector<KindMeasures> measures_;
};

}  // namespace nightshift
