// Status page: the public view of this agent's incidents and of the health of
// the sites and groups it watches, as server-rendered HTML (no script, no
// external asset, readable on a phone) and as JSON with the same data.
//
// Rendered once per change on the reactor thread and served from memory by
// every HTTP worker (an immutable snapshot with an ETag), never per request:
// the page must hold when everyone opens it at the same moment. Optionally
// exported to a directory (temp file, fsync, rename) for any web server or CDN.
//
// Public: no internal notes, no failure details — titles, scope, impact
// counts, times and the public updates operators write.
//
// Pure rendering; thread safety: none needed.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nightshift/clock.h"
#include "nightshift/incident.h"
#include "nightshift/result.h"

namespace nightshift {

struct TargetHealth {
  enum class State { kUnknown, kUp, kDown };
  std::string name;
  std::string group;
  std::string site;
  State state = State::kUnknown;
};
std::string_view to_string(TargetHealth::State state);

struct StatusInput {
  std::string agent;
  SystemTime now{};
  std::vector<Incident> incidents;  // open and recently resolved
  std::vector<TargetHealth> targets;
  std::vector<std::string> silenced;  // ids of open incidents under a silence (maintenance)
  long long dead_letters = 0;         // notifications given up on
  std::size_t max_resolved = 10;
  Duration resolved_window = std::chrono::hours(24);
};

struct StatusPage {
  std::string html;
  std::string json;
  std::string etag;  // quoted, over the content (not the render time)
};

StatusPage render_status(const StatusInput& input);

// Writes status.html and status.json into `dir` atomically (temp file, fsync,
// rename), so a web server never serves half a page.
Status export_status(const StatusPage& page, const std::string& dir);

// HTML escaping of text and attribute values. Pure.
std::string html_escape(std::string_view text);

}  // namespace nightshift
