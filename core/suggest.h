// "Did you mean ...?" for names people type: config keys, rule variables.
// Pure.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace nightshift {

// Levenshtein distance (insertions, deletions, substitutions).
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `name` if it is within `max_distance - 1` edits,
// else "". `Range` holds anything convertible to std::string_view.
template <typename Range>
std::string closest_match(std::string_view name, const Range& candidates, std::size_t max_distance = 3) {
  std::string best;
  std::size_t best_distance = max_distance;
  for (const auto& candidate : candidates) {
    const std::string_view c(candidate);
    const std::size_t d = edit_distance(name, c);
    if (d < best_distance) {
      best_distance = d;
      best = std::string(c);
    }
  }
  return best;
}

}  // namespace nightshift
