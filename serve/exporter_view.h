// ExporterView: the latest result of every probe, served in the formats of
// blackbox_exporter (/probe?target=…&module=…) and snmp_exporter
// (/snmp?target=…&module=…), so those exporters' standard Prometheus scrape
// configs, alert rules and dashboards work against nightshift by changing only
// the exporter's address (docs/compatibility.md, deploy/prometheus/compat.yml).
//
// A scrape never starts a probe: it reads what the probe last measured on its
// own schedule. Names, label sets and units are the exporters': no target,
// probe or agent labels (the scrape config's relabelling sets `instance`), and
// `up` per target is Prometheus' own. A target that is not configured answers
// 404, one not measured yet 503, an SNMP device whose last poll failed 500 with
// the reason (as snmp_exporter does, so the community "target down" alert on
// `up` fires); a failed blackbox-style probe is a 200 with probe_success 0.
//
// Which probe answers: `target` is a target's name or address, "address:port"
// (or "name:port") picking the probe on that port; `module` narrows by probe
// name, or by kind when it is a kind's name or starts with one ("icmp",
// "tcp_connect"); any other module (ssh_banner) narrows nothing. The first
// probe left, in target-name then config order, answers. Values are written
// as Go's exporters write them (shortest, 0.0005, 1e-05, 1e+12).
//
// Thread safety: sync_targets() and record() on the reactor thread; probe(),
// snmp() and the render functions from any thread (one mutex, and the metric
// records' own).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "nightshift/sample.h"
#include "nightshift/target.h"
#include "serve/http.h"
#include "serve/metrics.h"

namespace nightshift {

class ExporterView {
 public:
  // The results are the metric records' (ProbeFamilies::last_result), kept
  // there per probe anyway: the view keeps no Sample of its own.
  explicit ExporterView(const ProbeFamilies& results) : results_(results) {}

  void sync_targets(const std::vector<std::shared_ptr<const Target>>& targets);
  // After the metric records took `sample`: keeps what they do not, a failed
  // SNMP poll's detail for the 500 answer. Other kinds' samples cost a compare.
  void record(const Sample& sample);

  HttpResponse probe(const HttpRequest& request) const;  // GET /probe
  HttpResponse snmp(const HttpRequest& request) const;   // GET /snmp

 private:
  struct Probe {
    std::string name, kind;
    int port = 0;               // 0: the kind connects to no port
    bool snmp_format = false;   // served by /snmp rather than /probe
    std::string failure_detail;  // snmp_format: the last failed poll's
    // Results up to this many measured an address the target no longer has
    // (a reload changed it): not served.
    std::uint64_t stale_runs = 0;
  };
  struct Entry {
    std::string address;
    std::vector<Probe> probes;  // config order
  };
  HttpResponse serve(const HttpRequest& request, bool snmp_format) const;

  const ProbeFamilies& results_;
  std::vector<std::string> snmp_kinds_;  // kinds whose samples record() keeps a detail of
  mutable std::mutex mu_;
  std::map<std::string, Entry> targets_;  // by name: /probe looks addresses up in name order
  // The same entries hashed, for record(): every sample looks its target up.
  std::unordered_map<std::string, Entry*> by_name_;
};

// The text exposition of one probe's result, as the exporter would write it:
// probe_success and probe_duration_seconds (blackbox), or snmp_scrape_* and
// the device's series (snmp). Pure; for tests.
std::string render_blackbox(const ProbeResult& result);
std::string render_snmp(const ProbeResult& result);

}  // namespace nightshift
