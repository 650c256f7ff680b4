// Operator actions on fleet incidents: an ack, a note (public or not) or a
// resolve made through any agent's API or CLI applies fleet-wide.
//
// The agent the operator used records the action in the fleet incident (one
// compare-and-set, FleetNode::amend, with apply() below); every agent that
// holds a local copy of the incident applies what its copy lacks
// (missing_locally()) through its own pipeline. The owner's copy then
// announces what follows (an ack stops its renotify and escalation; the note
// and the resolve are sent once, keyed by the fleet event's seq); the other
// copies record it and send nothing. A resolve is recorded as a request
// (resolved_by): the incident closes when its owner, or whoever takes it over,
// resolves its copy, so the resolve page is not lost with a dead owner.
//
// Pure functions over plain data; unit-tested (tests/unit/fleet_test.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fleet/protocol.h"
#include "nightshift/incident.h"
#include "nightshift/result.h"

namespace nightshift::fleet {

struct OperatorAction {
  enum class Kind { kAcknowledge, kNote, kResolve };
  Kind kind = Kind::kAcknowledge;
  std::string by;          // the operator
  std::string text;        // kNote
  bool is_public = false;  // kNote: a public update
  std::int64_t at_ms = 0;
  std::string agent;  // the agent it was made through
};
std::string_view to_string(OperatorAction::Kind kind);

// Notes a fleet incident holds at most, and their text in all: the incident
// is one KV value and must stay far below NATS' 1 MB message size.
constexpr std::size_t kMaxFleetNotes = 200;
constexpr std::size_t kMaxFleetNoteBytes = 256 * 1024;

// Records `action` in `inc`: true when it changed it, false when it was
// already there (acknowledged or resolve requested before: every copy applies
// an action once, whoever records it first). Refuses an ack or a resolve of a
// closed incident (kInvalidArgument, as one agent does) and a note past the
// limits above (kLimitReached); notes on a closed incident are kept.
Result<bool> apply(FleetIncident& inc, const OperatorAction& action);

// What `local` (this agent's copy of `inc`) lacks of the operator actions the
// fleet recorded, in the order to apply them: the ack, the notes (a note is
// there when the copy's timeline holds as many notes of that author, text and
// visibility), then the resolve. Empty when the copy is closed.
std::vector<OperatorAction> missing_locally(const FleetIncident& inc, const Incident& local);

// What the fleet lacks of the operator actions on `local` (made while its
// copy was not linked to the fleet incident yet): the ack and the operators'
// notes (not the agent's own findings, author "nightshift").
std::vector<OperatorAction> missing_in_fleet(const Incident& local, const FleetIncident& inc);

// The fleet incident as an Incident under its fleet id: for the API and the
// status page of an agent without a local copy. Its timeline holds the
// declaration, the acknowledgement, the notes and the resolve.
Incident as_incident(const FleetIncident& inc);

}  // namespace nightshift::fleet
