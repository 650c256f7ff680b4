// Targets and the probes configured for them: the typed, validated form of the
// config. Immutable once built; shared between the scheduler and in-flight probes
// through shared_ptr so that a reload never pulls a target out from under a probe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nightshift/clock.h"

namespace nightshift {

// Kind-specific probe options (port, banner, packet count...). Each probe kind
// derives its own type; only that kind's engine reads it.
struct ProbeOptions {
  virtual ~ProbeOptions() = default;
};

struct ProbeSpec {
  std::string kind;  // a registered probe kind, e.g. "tcp"
  std::string name;  // unique within the target; the `probe` metric label
  Duration interval{};
  Duration timeout{};
  std::shared_ptr<const ProbeOptions> options;
};

struct Target {
  std::string name;     // unique within the agent; the `target` metric label
  std::string address;  // IP literal or hostname
  std::string group;
  std::string site;
  std::map<std::string, std::string> labels;  // extra labels, for selection and info
  std::string depends_on;  // parent target: when it is down, this one is its impact
  bool canary = false;     // an independent reference: all canaries down = the agent is cut off
  std::vector<ProbeSpec> probes;
};

}  // namespace nightshift
