#include "rules/default_rules.h"

#include <stdexcept>

namespace nightshift::rules {

namespace {
RuleSpec make(const std::vector<Variable>& variables, const char* name, const char* condition, Duration for_d,
              Duration clear_for, Severity severity, Selector selector, Duration window) {
  auto c = Condition::parse(condition, variables);
  if (!c.ok()) throw std::logic_error(std::string("built-in rule ") + name + ": " + c.error().message);
  RuleSpec r{name, c.value(), {}, severity, std::move(selector), window};
  r.timing.for_duration = for_d;
  r.timing.clear_for = clear_for;
  return r;
}
}  // namespace

std::vector<RuleSpec> default_rules(const std::vector<Variable>& variables) {
  using namespace std::chrono_literals;
  return {
      // Down on evidence, not on elapsed time. A missed echo (ICMP) or a failed
      // connect (TCP) makes the engine confirm at once: 12 echoes all lost
      // (p = 0.3^12 = 5e-7 at 30 % random loss) or 3 refusals / 20 failed
      // connects, and the sample says confirmed_down, within seconds of the
      // miss. Kinds without a confirmation, or one the budget refused, need
      // three failed runs in a row (p = 0.027^3 = 2e-5 per ICMP round).
      // Clearing needs 30 s of success.
      make(variables, "target_down", "consecutive_failures >= 3 or confirmed_down", 0s, 30s, Severity::kCritical, {}, 2min),
      // Sustained loss: a warning, never a "down" page.
      make(variables, "packet_loss", "loss > 20%", 2min, 2min, Severity::kWarning, {{"kind", "icmp"}}, 2min),
      // Far slower than the target's own learned normal for 5 minutes; the
      // absolute floor keeps microsecond-scale jitter on a LAN from counting.
      make(variables, "latency_anomaly", "rtt_ratio > 3 and rtt_p95 > 20ms", 5min, 5min, Severity::kWarning, {{"kind", "icmp"}}, 5min),
      // What SNMP already measures: an interface the operator left up (admin
      // up) that is not (oper down) is an outage at once; which interfaces
      // count is the probe's `interfaces` patterns. A device that went through
      // a reboot is a notice (info: sinks with min_severity = "critical" stay
      // quiet), cleared by the next poll.
      make(variables, "interface_down", "interfaces_down > 0", 0s, 30s, Severity::kCritical, {{"kind", "snmp"}}, 2min),
      make(variables, "device_rebooted", "rebooted > 0", 0s, 0s, Severity::kInfo, {{"kind", "snmp"}}, 2min),
      // Passive traffic on a watched prefix fell below a tenth of its normal
      // for this hour of the week, for two minutes.
      make(variables, "traffic_drop", "traffic_drop > 0.9", 2min, 2min, Severity::kWarning, {{"kind", "pcap"}}, 2min),
  };
}

}  // namespace nightshift::rules
