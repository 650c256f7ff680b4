#include "serve/operator_backend.h"

#include <set>

#include "incidents/incident_json.h"

namespace nightshift {

namespace {

using nlohmann::json;

std::int64_t unix_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

json fleet_json(const fleet::FleetIncident& inc, bool notifies) {
  std::set<std::string> vantages;
  for (const auto& t : inc.impacted) vantages.insert(t.vantages.begin(), t.vantages.end());
  return {{"key", inc.key},
          {"declared_by", inc.declared_by},
          {"vantages", std::vector<std::string>(vantages.begin(), vantages.end())},
          {"notifies", notifies},
          {"resolve_requested_by", inc.resolved_by}};
}

// An incident an id names: this agent's own (by its id, or as the copy of the
// fleet incident with that id), the fleet incident, or both.
struct Found {
  const Incident* local = nullptr;
  const fleet::FleetIncident* shared = nullptr;
};

}  // namespace

ApiBackend make_operator_backend(Pipeline& pipeline, const Clock& clock, std::function<void()> after_change,
                                 std::function<nlohmann::json()> list_targets, FleetIncidentAccess* fleet,
                                 std::string agent) {
  auto with_silence = [&pipeline](const Incident& inc) {
    nlohmann::json j = to_json(inc);
    j["silenced"] = inc.open() && pipeline.silenced(inc);
    return j;
  };
  // In a fleet, a local copy shows under the fleet id.
  auto local_json = [with_silence, fleet](const Incident& inc) {
    json j = with_silence(inc);
    if (!fleet) return j;
    j["local_id"] = inc.id;
    j["fleet"] = nullptr;
    if (const fleet::FleetIncident* shared = fleet->fleet_copy_of(inc)) {
      j["id"] = shared->id;
      j["fleet"] = fleet_json(*shared, fleet->notifies(*shared));
    }
    return j;
  };
  auto remote_json = [](const fleet::FleetIncident& inc) {
    json j = to_json(fleet::as_incident(inc));
    j["silenced"] = false;
    j["local_id"] = nullptr;
    j["fleet"] = fleet_json(inc, false);
    return j;
  };
  auto find = [&pipeline, fleet](const std::string& id) {
    Found f;
    f.local = pipeline.incidents().find(id);
    if (!fleet) return f;
    if (f.local) {
      f.shared = fleet->fleet_copy_of(*f.local);
      return f;
    }
    for (const auto* inc : fleet->fleet_incidents()) {
      if (inc->id != id) continue;
      f.shared = inc;
      f.local = fleet->local_copy_of(*inc);
      break;
    }
    return f;
  };
  // An operator action: on the local copy here (as one agent does), then
  // recorded in the fleet incident; on another agent's incident, recorded
  // only (its owner and every copy apply it from there).
  auto act = [fleet, after_change, local_json, remote_json, find, &clock, agent](
                 const std::string& id, fleet::OperatorAction action,
                 std::function<Result<Incident>(const std::string& local_id)> here, ApiBackend::Reply reply) {
    const Found f = find(id);
    if (!f.local && !f.shared) return reply(Error::not_found("no such incident: " + id));
    if (action.by.empty()) action.by = "operator";  // as the pipeline names an anonymous operator
    action.at_ms = unix_ms(clock.wall_now());
    action.agent = agent;
    if (f.local) {
      const std::string key = f.shared ? f.shared->key : "";
      Result<Incident> done = here(f.local->id);
      if (after_change) after_change();
      if (!done.ok()) return reply(done.error());
      json j = local_json(done.value());
      if (key.empty() || !j["fleet"].is_object()) return reply(j);
      if (fleet->fleet_alone()) {
        j["fleet"]["recorded"] = false;
        j["fleet"]["error"] = "alone: not connected to the fleet; applied here only";
        return reply(j);
      }
      fleet->amend(key, std::move(action), [reply, j](Result<fleet::FleetIncident> stored) mutable {
        j["fleet"]["recorded"] = stored.ok();
        if (!stored.ok()) j["fleet"]["error"] = stored.error().message;
        reply(j);
      });
      return;
    }
    if (fleet->fleet_alone()) {
      return reply(Error::unavailable("incident " + id +
                                      " is another agent's and this agent is not connected to the fleet: act on it "
                                      "through an agent that is"));
    }
    // Answered as one agent answers: an ack or resolve done before is refused.
    fleet::FleetIncident trial = *f.shared;
    auto changed = fleet::apply(trial, action);
    if (!changed.ok()) return reply(changed.error());
    if (!*changed) {
      return reply(Error::invalid(action.kind == fleet::OperatorAction::Kind::kAcknowledge
                                      ? "incident " + id + " is already acknowledged by " + f.shared->acknowledged_by
                                      : "incident " + id + " is already resolved"));
    }
    fleet->amend(f.shared->key, std::move(action), [reply, remote_json](Result<fleet::FleetIncident> stored) {
      if (!stored.ok()) return reply(stored.error());
      reply(remote_json(stored.value()));
    });
  };
  ApiBackend b;
  b.list_incidents = [&pipeline, fleet, local_json, remote_json](const std::string& filter) {
    auto wanted = [&filter](bool open) { return filter.empty() || (filter == "open") == open; };
    nlohmann::json out = nlohmann::json::array();
    for (const auto& inc : pipeline.incidents().incidents()) {
      if (wanted(inc.open())) out.push_back(local_json(inc));
    }
    if (!fleet) return out;
    for (const auto* inc : fleet->fleet_incidents()) {
      if (fleet->local_copy_of(*inc) || !wanted(inc->open)) continue;
      out.push_back(remote_json(*inc));
    }
    return out;
  };
  b.get_incident = [find, local_json, remote_json](const std::string& id) -> Result<nlohmann::json> {
    const Found f = find(id);
    if (f.local) return local_json(*f.local);
    if (f.shared) return remote_json(*f.shared);
    return Error::not_found("no such incident: " + id);
  };
  b.acknowledge = [&pipeline, act](const std::string& id, const std::string& by, ApiBackend::Reply reply) {
    fleet::OperatorAction a;
    a.kind = fleet::OperatorAction::Kind::kAcknowledge;
    a.by = by;
    auto here = [&pipeline, by](const std::string& local) { return pipeline.acknowledge(local, by); };
    act(id, a, here, std::move(reply));
  };
  b.add_note = [&pipeline, act](const std::string& id, const std::string& text, bool is_public, const std::string& by,
                                ApiBackend::Reply reply) {
    fleet::OperatorAction a;
    a.kind = fleet::OperatorAction::Kind::kNote;
    a.by = by;
    a.text = text;
    a.is_public = is_public;
    auto here = [&pipeline, text, is_public, by](const std::string& local) {
      return pipeline.add_note(local, text, is_public, by);
    };
    act(id, a, here, std::move(reply));
  };
  b.resolve = [&pipeline, act](const std::string& id, const std::string& by, ApiBackend::Reply reply) {
    fleet::OperatorAction a;
    a.kind = fleet::OperatorAction::Kind::kResolve;
    a.by = by;
    auto here = [&pipeline, by](const std::string& local) { return pipeline.resolve(local, by); };
    act(id, a, here, std::move(reply));
  };
  b.list_silences = [&pipeline, &clock] {
    nlohmann::json out = nlohmann::json::array();
    const SystemTime now = clock.wall_now();
    for (const auto& s : pipeline.silences().list()) {
      nlohmann::json j = to_json(s);
      j["active"] = s.active(now);
      out.push_back(std::move(j));
    }
    return out;
  };
  b.add_silence = [&pipeline, &clock, after_change](const nlohmann::json& body) -> Result<nlohmann::json> {
    auto parsed = silence_from_json(body, clock.wall_now());
    if (!parsed.ok()) return parsed.error();
    auto added = pipeline.add_silence(std::move(parsed.value()));
    if (after_change) after_change();
    if (!added.ok()) return added.error();
    return to_json(*added);
  };
  b.remove_silence = [&pipeline, after_change](const std::string& id) -> Result<nlohmann::json> {
    const bool removed = pipeline.remove_silence(id);
    if (after_change) after_change();
    if (!removed) return Error::not_found("no such silence: " + id);
    return nlohmann::json{{"id", id}, {"removed", true}};
  };
  b.list_targets = std::move(list_targets);
  return b;
}

}  // namespace nightshift
