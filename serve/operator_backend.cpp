#include "serve/operator_backend.h"

#include "incidents/incident_json.h"

namespace nightshift {

ApiBackend make_operator_backend(Pipeline& pipeline, const Clock& clock, std::function<void()> after_change,
                                 std::function<nlohmann::json()> list_targets) {
  auto with_silence = [&pipeline](const Incident& inc) {
    nlohmann::json j = to_json(inc);
    j["silenced"] = inc.open() && pipeline.silenced(inc);
    return j;
  };
  auto changed = [after_change, with_silence](Result<Incident> r) -> Result<nlohmann::json> {
    if (after_change) after_change();
    if (!r.ok()) return r.error();
    return with_silence(r.value());
  };
  ApiBackend b;
  b.list_incidents = [&pipeline, with_silence](const std::string& filter) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& inc : pipeline.incidents().incidents()) {
      if (filter == "open" && !inc.open()) continue;
      if (filter == "resolved" && inc.open()) continue;
      out.push_back(with_silence(inc));
    }
    return out;
  };
  b.get_incident = [&pipeline, with_silence](const std::string& id) -> Result<nlohmann::json> {
    const Incident* inc = pipeline.incidents().find(id);
    if (inc == nullptr) return Error::not_found("no such incident: " + id);
    return with_silence(*inc);
  };
  b.acknowledge = [&pipeline, changed](const std::string& id, const std::string& by) {
    return changed(pipeline.acknowledge(id, by));
  };
  b.add_note = [&pipeline, changed](const std::string& id, const std::string& text, bool is_public,
                                    const std::string& by) { return changed(pipeline.add_note(id, text, is_public, by)); };
  b.resolve = [&pipeline, changed](const std::string& id, const std::string& by) {
    return changed(pipeline.resolve(id, by));
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
