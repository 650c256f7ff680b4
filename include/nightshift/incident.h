// Incident: a declared outage, the unit people are paged and told about.
// Plain data; the IncidentManager owns the lifecycle.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "nightshift/clock.h"
#include "nightshift/severity.h"

namespace nightshift {

enum class IncidentStatus { kDeclared, kAcknowledged, kResolved };
std::string_view to_string(IncidentStatus status);

struct ImpactedTarget {
  std::string target;
  std::string probe;
  std::string rule;
  Severity severity = Severity::kCritical;
  std::string summary;       // why the alert fired, for the person paged: target, cause, evidence
  std::string via_parent;    // set when it is impact of a parent's outage (depends_on)
  SystemTime since{};
  bool active = true;        // false once its alert resolved
  std::string expression;    // the rule's condition and the values it read, for operators (not in pages)
};

struct TimelineEntry {
  SystemTime at{};
  std::string kind;  // declared, joined, cleared, acknowledged, note, resolved, reopened, flapping, settled
  std::string text;
  bool is_public = false;  // shown to customers on the status page
  std::string author;      // empty for the agent itself
};

struct Incident {
  std::string id;  // stable: "NS-20261124-0001"
  std::string title;
  Severity severity = Severity::kCritical;  // the worst of its active alerts
  std::map<std::string, std::string> scope;  // the group_by labels it covers
  IncidentStatus status = IncidentStatus::kDeclared;
  std::vector<ImpactedTarget> impacted;
  std::vector<TimelineEntry> timeline;
  SystemTime started_at{};      // first anomaly
  SystemTime declared_at{};
  SystemTime acknowledged_at{};
  SystemTime resolved_at{};
  SystemTime next_update_due{};  // the promise of when people hear again
  std::string acknowledged_by;
  bool vantage = false;  // "this agent is isolated", not an outage of the targets
  // A target or interface in it flapped: its verdict changed more than
  // max_flips times within flap_window (docs/incidents.md). Stays set through
  // the resolve, so the resolve says so; a reopen (a new fault) clears it.
  bool flapping = false;
  SystemTime flapping_since{};

  bool open() const { return status != IncidentStatus::kResolved; }
  std::size_t active_impact() const;
};

}  // namespace nightshift
