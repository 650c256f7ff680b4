// Metrics: every Prometheus family nightshift exports, declared in one place.
//
// Per probe: probe_success and probe_duration_seconds (the blackbox_exporter
// names), a failure-reason series while failing, result counters by reason, and
// kind-specific gauges from Sample::values (probe_<kind>_<value>). Labels: target,
// probe, kind, group, site, agent. Self-metrics: probes sent, in flight,
// scheduler lag, config reloads, build info, process CPU/memory/fds.
//
// The per-probe series (nearly all of them at scale) are not prometheus-cpp
// objects: each configured probe has one compact record, updated in place per
// sample without allocating, and the families are built from those records at
// scrape time (ProbeFamilies, a prometheus::Collectable; render() writes the
// text straight from them). The few agent-wide series stay in the registry.
//
// Thread safety: record()/sync_targets() and the other updates from the reactor
// thread; collect()/render() from any thread. Rendering takes the probe lock
// for a few hundred probes at a time, so a scrape never stalls the probe loop.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "core/hash.h"
#include "incidents/incidents.h"
#include "nightshift/measure.h"
#include "nightshift/sample.h"
#include "nightshift/target.h"
#include "rules/rule_engine.h"
#include "serve/http.h"
#include "serve/process_metrics.h"

namespace nightshift {

// The two exposition formats /metrics speaks.
enum class MetricsFormat {
  kText,         // text/plain; version=0.0.4
  kOpenMetrics,  // application/openmetrics-text; version=1.0.0
};

// Where rendered text goes, in pieces (a string, a gzip stream).
using MetricsSink = std::function<void(std::string_view)>;

// Writes prometheus-cpp families in either format (prometheus-cpp 1.0 has only
// the text serializer). Pure.
void write_families(const std::vector<prometheus::MetricFamily>& families, MetricsFormat format,
                    const MetricsSink& sink);

// One probe's last result as the exporters' own formats write it (/probe,
// /snmp): read from its metric record, so no Sample is kept per probe.
struct ProbeResult {
  bool ok = false;
  FailureReason reason = FailureReason::kNone;
  double duration_seconds = 0;
  std::uint64_t runs = 0;  // results recorded so far, this one included
  // The sample's labeled series in its order, with their own labels only
  // (series whose labels merged with the probe's are equal appear once).
  std::vector<LabeledValue> series;
};

// The per-probe families, from one compact record per configured probe.
class ProbeFamilies final : public prometheus::Collectable {
 public:
  // `measures`: every kind's declared measures, for the help text of the
  // probe_<kind>_<name> series (nightshift/measure.h).
  ProbeFamilies(std::string agent_name, std::vector<KindMeasures> measures);
  ~ProbeFamilies() override;

  void sync_targets(const std::vector<std::shared_ptr<const Target>>& targets);
  void record(const Sample& sample);

  // prometheus-cpp's view (the same series render() writes); allocates a lot:
  // for tests and prometheus-cpp consumers, not for /metrics.
  std::vector<prometheus::MetricFamily> Collect() const override;
  void render(MetricsFormat format, const MetricsSink& sink) const;
  // nullopt when the probe is not configured or has not completed a run.
  // Any thread.
  std::optional<ProbeResult> last_result(std::string_view target, std::string_view probe) const;
  // The results recorded so far (ProbeResult::runs), 0 for an unknown probe.
  std::uint64_t runs(std::string_view target, std::string_view probe) const;

  struct Table;  // in metrics.cpp

 private:
  // The number of `v`'s name and own labels in t.series, added at first sight.
  static std::uint32_t intern(Table& t, const LabeledValue& v);

  std::string agent_;
  std::vector<KindMeasures> measures_;
  mutable std::mutex mu_;        // guards the records in *table_ and table_ itself
  std::shared_ptr<Table> table_;  // replaced (copied) by sync_targets
};

class AgentMetrics {
 public:
  // `measures`: every kind's declared measures, for the help text of the
  // probe_<kind>_<name> series (nightshift/measure.h).
  explicit AgentMetrics(std::string agent_name, std::vector<KindMeasures> measures = {});

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  const ProbeFamilies& probe_families() const { return probes_; }
  // The /metrics body.
  std::string render(MetricsFormat format = MetricsFormat::kText) const;
  void render(MetricsFormat format, const MetricsSink& sink) const;

  // Creates the series of every configured probe and removes those of probes
  // that are gone or whose labels changed.
  void sync_targets(const std::vector<std::shared_ptr<const Target>>& targets);
  void record(const Sample& sample) { probes_.record(sample); }

  void probe_sent(const std::string& kind);
  void set_in_flight(const std::string& kind, double n);
  void scheduler_lag(double seconds) { scheduler_lag_->Observe(seconds); }
  // Probes accelerated now, and uncertain (accelerated or waiting for a place).
  void set_accelerated(std::size_t accelerated, std::size_t uncertain) {
    accelerated_->Set(static_cast<double>(accelerated));
    uncertain_->Set(static_cast<double>(uncertain));
  }
  void config_reload(bool success, double unix_time);
  // HTTPS only (the series appear with the first call): the served
  // certificate's notAfter, and whether the last SIGHUP's re-read of the
  // certificate and key worked (0: the previous pair is still served).
  void tls_certificate(double not_after_unix);
  void tls_reload(bool success);
  // Alert states as series like Prometheus' own ALERTS: present while pending or firing.
  void alert(const rules::AlertEvent& event);
  // Incident counters and the time from first anomaly to declaration.
  void incident(const IncidentEvent& event);
  void set_open_incidents(const std::map<Severity, int>& by_severity);
  void store_error() { store_errors_->Increment(); }
  // Confirmation bursts after a miss: started, and answered (any reply) or not.
  void confirmation_started(const std::string& kind);
  void confirmation_done(const std::string& kind, bool answered);

 private:
  std::string agent_;
  std::shared_ptr<prometheus::Registry> registry_;
  ProcessMetrics process_;
  ProbeFamilies probes_;

  prometheus::Family<prometheus::Counter>& probes_sent_;
  prometheus::Family<prometheus::Gauge>& in_flight_;
  prometheus::Family<prometheus::Counter>& reloads_;
  prometheus::Histogram* scheduler_lag_;
  prometheus::Gauge* reload_ok_;
  prometheus::Gauge* reload_time_;
  std::mutex tls_mu_;
  prometheus::Gauge* tls_expiry_ = nullptr;
  prometheus::Gauge* tls_reload_ok_ = nullptr;
  prometheus::Gauge* targets_count_;
  prometheus::Gauge* probes_count_;
  prometheus::Gauge* accelerated_;
  prometheus::Gauge* uncertain_;

  // By kind; the last kind asked for is remembered, so the per-probe calls
  // (one kind, usually) skip the map.
  struct KindSeries {
    prometheus::Counter* sent = nullptr;
    prometheus::Gauge* in_flight = nullptr;
  };
  KindSeries& kind_series(const std::string& kind);
  std::map<std::string, KindSeries> by_kind_;
  std::pair<const std::string*, KindSeries*> last_kind_{nullptr, nullptr};

  prometheus::Family<prometheus::Gauge>& alerts_;
  prometheus::Family<prometheus::Counter>& alert_changes_;
  prometheus::Family<prometheus::Counter>& incident_events_;
  prometheus::Family<prometheus::Gauge>& open_incidents_;
  prometheus::Family<prometheus::Counter>& confirmations_;
  prometheus::Histogram* time_to_declare_ = nullptr;
  prometheus::Counter* store_errors_ = nullptr;
  std::map<std::tuple<std::string, std::string, std::string>, prometheus::Gauge*> alert_series_;  // rule, target, probe
};

// GET /metrics: content negotiation (OpenMetrics when the scraper's Accept
// prefers it, gzip when its Accept-Encoding allows it), the body streamed
// while it is rendered (and compressed while it is written), so a scrape
// holds a few 64 KiB pieces however many targets there are, and concurrent
// scrapes each hold their own few.
class MetricsEndpoint {
 public:
  explicit MetricsEndpoint(const AgentMetrics& metrics) : metrics_(metrics) {}
  // The headers now; the body is written by the response's stream.
  HttpResponse serve(const HttpRequest& req);

  // Negotiation, pure; exposed for tests.
  static MetricsFormat format_for(std::string_view accept);
  static bool wants_gzip(std::string_view accept_encoding);

 private:
  void produce(MetricsFormat format, bool gzip, const HttpResponse::Emit& emit) const;

  const AgentMetrics& metrics_;
};

// gzip of `text`, pure; exposed for tests.
std::string gzip_compress(std::string_view text);

}  // namespace nightshift
