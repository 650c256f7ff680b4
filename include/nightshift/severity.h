// Severity of a rule's alert and of the incident it opens. Ordered, so the
// worst of several is std::max and a sink's floor is a comparison; the words
// are what configs, payloads, labels and stored incidents carry.
#pragma once

#include <optional>
#include <string_view>

namespace nightshift {

enum class Severity { kInfo, kWarning, kCritical };

inline constexpr Severity kSeverities[] = {Severity::kCritical, Severity::kWarning, Severity::kInfo};

constexpr std::string_view to_string(Severity severity) {
  switch (severity) {
    case Severity::kInfo:
      return "info";
    case Severity::kWarning:
      return "warning";
    case Severity::kCritical:
      return "critical";
  }
  return "critical";
}

constexpr std::optional<Severity> parse_severity(std::string_view text) {
  for (Severity s : kSeverities) {
    if (to_string(s) == text) return s;
  }
  return std::nullopt;
}

}  // namespace nightshift
