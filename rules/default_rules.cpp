#include "rules/default_rules.h"

#include <stdexcept>

namespace nightshift::rules {

namespace {
RuleSpec make(const std::vector<Variable>& variables, const char* name, const char* condition, Duration for_d,
              Duration clear_for, const char* severity, Selector selector, Duration window) {
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
      // Down on evidence, not on elapsed time. A failed ICMP round (3 packets
      // lost: p = 0.3^3 = 0.027 at 30 % random loss) triggers a confirmation
      // burst of 10 packets; all 10 lost has p = 0.3^10 = 6e-6, so a cut link is
      // declared about 2 s after its first failed round. Kinds without a burst,
      // or a burst the budget refused, need three failed runs in a row
      // (p = 0.027^3 = 2e-5 per round for ICMP). Clearing needs 30 s of success.
      make(variables, "target_down", "consecutive_failures >= 3 or confirmed_down", 0s, 30s, "critical", {}, 2min),
      // Sustained loss: a warning, never a "down" page.
      make(variables, "packet_loss", "loss > 20%", 2min, 2min, "warning", {{"kind", "icmp"}}, 2min),
      // Far slower than the target's own learned normal for 5 minutes; the
      // absolute floor keeps microsecond-scale jitter on a LAN from counting.
      make(variables, "latency_anomaly", "rtt_ratio > 3 and rtt_p95 > 20ms", 5min, 5min, "warning", {{"kind", "icmp"}}, 5min),
  };
}

}  // namespace nightshift::rules
