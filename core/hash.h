// Hashing for (target, probe) keys: per-sample lookups on the probe loop's hot
// path use hash maps, not ordered maps of string pairs.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace nightshift {

// A (target, probe) key to look up without building one: maps declared with
// both StringPairHash and StringPairEqual take it in find() and count().
using ProbeKeyView = std::pair<std::string_view, std::string_view>;

struct StringPairHash {
  using is_transparent = void;
  std::size_t operator()(ProbeKeyView p) const noexcept {
    const std::size_t a = std::hash<std::string_view>{}(p.first);
    const std::size_t b = std::hash<std::string_view>{}(p.second);
    return a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
  }
  std::size_t operator()(const std::pair<std::string, std::string>& p) const noexcept {
    return (*this)(ProbeKeyView{p.first, p.second});
  }
};

struct StringPairEqual {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const noexcept {
    return std::string_view(a.first) == std::string_view(b.first) &&
           std::string_view(a.second) == std::string_view(b.second);
  }
};

}  // namespace nightshift
