// Incident <-> JSON, one codec for the store, /status.json, the API and webhook
// payloads. Times are RFC 3339 UTC with milliseconds ("2026-11-24T03:12:45.120Z");
// unset times are null.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "nightshift/incident.h"
#include "nightshift/result.h"

namespace nightshift {

nlohmann::json to_json(const Incident& incident);
Result<Incident> incident_from_json(const nlohmann::json& j);

std::string format_time(SystemTime t);           // RFC 3339, ms, UTC
Result<SystemTime> parse_time(const std::string& text);

}  // namespace nightshift
