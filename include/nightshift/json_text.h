// JSON text of a document that may hold bytes from outside (a device's
// string, a banner, a peer's error): invalid UTF-8 becomes U+FFFD instead of
// an exception that would take the agent down in the middle of a page.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace nightshift {

inline std::string json_text(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace nightshift
