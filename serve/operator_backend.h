// The operator API's backend over the pipeline: incidents (list, get, ack,
// note, resolve) and silences (list, add, remove) as JSON, for serve/api.cpp.
// Runs on the reactor (the API posts every call there).
//
// In a fleet ([fleet], docs/fleet.md) the incidents are the fleet's: a local
// incident that is this agent's copy of a fleet incident is shown under the
// fleet id (its own id stays as local_id, and either finds it), and the
// fleet's incidents this agent has no copy of are listed too. An ack, note or
// resolve applies to the local copy here, if any, and is recorded in the
// fleet incident (fleet/operations.h); the answer waits for that record.
#pragma once

#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

#include "fleet/operations.h"
#include "fleet/protocol.h"
#include "pipeline/pipeline.h"
#include "serve/api.h"

namespace nightshift {

// What the backend needs of the agent's fleet membership; reactor thread only.
class FleetIncidentAccess {
 public:
  virtual ~FleetIncidentAccess() = default;
  // The fleet incident `local` is this agent's copy of, or null.
  virtual const fleet::FleetIncident* fleet_copy_of(const Incident& local) const = 0;
  // This agent's copy of `inc`, or null.
  virtual const Incident* local_copy_of(const fleet::FleetIncident& inc) const = 0;
  // Every fleet incident known (open and resolved ones still in the bucket).
  virtual std::vector<const fleet::FleetIncident*> fleet_incidents() const = 0;
  // True while not connected to the fleet (then nothing can be recorded).
  virtual bool fleet_alone() const = 0;
  // This agent sends the incident's notifications (it holds the lease).
  virtual bool notifies(const fleet::FleetIncident& inc) const = 0;
  // Records the action in the fleet incident (FleetNode::amend).
  virtual void amend(const std::string& key, fleet::OperatorAction action,
                     std::function<void(Result<fleet::FleetIncident>)> done) = 0;
};

// `after_change` runs after every call that may have changed the pipeline
// (the daemon re-arms its timer there). `list_targets` answers
// /api/v1/targets (the daemon knows the probes' last results). `fleet`:
// null without [fleet]; `agent`: this agent's name, recorded with actions.
ApiBackend make_operator_backend(Pipeline& pipeline, const Clock& clock, std::function<void()> after_change,
                                 std::function<nlohmann::json()> list_targets, FleetIncidentAccess* fleet = nullptr,
                                 std::string agent = "");

}  // namespace nightshift
