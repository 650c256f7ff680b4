#include "fleet/operations.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace nightshift::fleet {

namespace {

SystemTime from_ms(std::int64_t ms) {
  return SystemTime(std::chrono::duration_cast<SystemTime::duration>(std::chrono::milliseconds(ms)));
}

using NoteKey = std::tuple<std::string, std::string, bool>;  // author, text, public

NoteKey key_of(const FleetNote& n) { return {n.author, n.text, n.is_public}; }
NoteKey key_of(const TimelineEntry& e) { return {e.author, e.text, e.is_public}; }

std::map<NoteKey, std::size_t> local_notes(const Incident& local) {
  std::map<NoteKey, std::size_t> out;
  for (const auto& e : local.timeline) {
    if (e.kind == "note") ++out[key_of(e)];
  }
  return out;
}

OperatorAction note_action(const FleetNote& n) {
  OperatorAction a;
  a.kind = OperatorAction::Kind::kNote;
  a.by = n.author;
  a.text = n.text;
  a.is_public = n.is_public;
  a.at_ms = n.at_ms;
  a.agent = n.agent;
  return a;
}

}  // namespace

std::string_view to_string(OperatorAction::Kind kind) {
  switch (kind) {
    case OperatorAction::Kind::kAcknowledge:
      return "acknowledge";
    case OperatorAction::Kind::kNote:
      return "note";
    case OperatorAction::Kind::kResolve:
      return "resolve";
  }
  return "acknowledge";
}

Result<bool> apply(FleetIncident& inc, const OperatorAction& a) {
  switch (a.kind) {
    case OperatorAction::Kind::kAcknowledge:
      if (inc.acknowledged) return false;
      if (!inc.open) return Error::invalid("incident " + inc.id + " is resolved");
      inc.acknowledged = true;
      inc.acknowledged_by = a.by;
      inc.acknowledged_ms = a.at_ms;
      return true;
    case OperatorAction::Kind::kResolve:
      if (!inc.resolved_by.empty()) return false;
      if (!inc.open) return Error::invalid("incident " + inc.id + " is already resolved");
      inc.resolved_by = a.by;
      return true;
    case OperatorAction::Kind::kNote: {
      if (a.text.empty()) return Error::invalid("a note needs text");
      std::size_t bytes = a.text.size();
      for (const auto& n : inc.notes) bytes += n.text.size();
      if (inc.notes.size() >= kMaxFleetNotes || bytes > kMaxFleetNoteBytes) {
        return Error::limit_reached("incident " + inc.id + " holds " + std::to_string(inc.notes.size()) +
                                    " notes; the fleet keeps at most " + std::to_string(kMaxFleetNotes) + " (" +
                                    std::to_string(kMaxFleetNoteBytes / 1024) + " KiB of text) per incident");
      }
      inc.notes.push_back({a.at_ms, a.by, a.text, a.is_public, a.agent});
      return true;
    }
  }
  return false;
}

std::vector<OperatorAction> missing_locally(const FleetIncident& inc, const Incident& local) {
  std::vector<OperatorAction> out;
  if (!local.open()) return out;
  if (inc.acknowledged && local.status == IncidentStatus::kDeclared) {
    OperatorAction a;
    a.kind = OperatorAction::Kind::kAcknowledge;
    a.by = inc.acknowledged_by;
    a.at_ms = inc.acknowledged_ms;
    out.push_back(std::move(a));
  }
  std::map<NoteKey, std::size_t> have = local_notes(local);
  for (const auto& n : inc.notes) {
    auto it = have.find(key_of(n));
    if (it != have.end() && it->second > 0) {
      --it->second;  // this one is there
      continue;
    }
    out.push_back(note_action(n));
  }
  if (!inc.resolved_by.empty()) {
    OperatorAction a;
    a.kind = OperatorAction::Kind::kResolve;
    a.by = inc.resolved_by;
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<OperatorAction> missing_in_fleet(const Incident& local, const FleetIncident& inc) {
  std::vector<OperatorAction> out;
  if (local.status == IncidentStatus::kAcknowledged && !inc.acknowledged && inc.open) {
    OperatorAction a;
    a.kind = OperatorAction::Kind::kAcknowledge;
    a.by = local.acknowledged_by;
    a.at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(local.acknowledged_at.time_since_epoch()).count();
    out.push_back(std::move(a));
  }
  std::map<NoteKey, std::size_t> have;
  for (const auto& n : inc.notes) ++have[key_of(n)];
  for (const auto& e : local.timeline) {
    if (e.kind != "note" || e.author == "nightshift") continue;  // the agent's own findings stay local
    auto it = have.find(key_of(e));
    if (it != have.end() && it->second > 0) {
      --it->second;
      continue;
    }
    OperatorAction a;
    a.kind = OperatorAction::Kind::kNote;
    a.by = e.author;
    a.text = e.text;
    a.is_public = e.is_public;
    a.at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(e.at.time_since_epoch()).count();
    out.push_back(std::move(a));
  }
  return out;
}

Incident as_incident(const FleetIncident& inc) {
  Incident out;
  out.id = inc.id;
  out.title = inc.title;
  out.severity = inc.severity;
  out.scope = inc.scope;
  out.status = !inc.open          ? IncidentStatus::kResolved
               : inc.acknowledged ? IncidentStatus::kAcknowledged
                                  : IncidentStatus::kDeclared;
  out.declared_at = out.started_at = from_ms(inc.declared_ms);
  if (inc.acknowledged) {
    out.acknowledged_at = from_ms(inc.acknowledged_ms);
    out.acknowledged_by = inc.acknowledged_by;
  }
  if (!inc.open) out.resolved_at = from_ms(inc.resolved_ms);
  out.flapping = inc.flapping;
  if (inc.flapping) out.flapping_since = from_ms(inc.flapping_ms);
  for (const auto& t : inc.impacted) {
    ImpactedTarget it;
    it.target = t.target;
    it.probe = t.probe;
    it.rule = t.rule;
    it.severity = inc.severity;
    it.active = t.active;
    it.since = out.declared_at;
    out.impacted.push_back(std::move(it));
  }
  out.timeline.push_back({out.declared_at, "declared", "declared by " + inc.declared_by, false, ""});
  if (inc.acknowledged) {
    out.timeline.push_back(
        {out.acknowledged_at, "acknowledged", "acknowledged by " + inc.acknowledged_by, false, inc.acknowledged_by});
  }
  for (const auto& n : inc.notes) out.timeline.push_back({from_ms(n.at_ms), "note", n.text, n.is_public, n.author});
  if (!inc.open) {
    const std::string by = inc.resolved_by.empty() ? std::string("nightshift") : inc.resolved_by;
    out.timeline.push_back({out.resolved_at, "resolved", "resolved by " + by, false, inc.resolved_by});
  }
  std::stable_sort(out.timeline.begin(), out.timeline.end(),
                   [](const TimelineEntry& a, const TimelineEntry& b) { return a.at < b.at; });
  return out;
}

}  // namespace nightshift::fleet
