// Hashing for (target, probe) keys: per-sample lookups on the probe loop's hot
// path use hash maps, not ordered maps of string pairs.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>

namespace nightshift {

struct StringPairHash {
  std::size_t operator()(const std::pair<std::string, std::string>& p) const noexcept {
    const std::size_t a = std::hash<std::string>{}(p.first);
    const std::size_t b = std::hash<std::string>{}(p.second);
    return a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
  }
};

}  // namespace nightshift
