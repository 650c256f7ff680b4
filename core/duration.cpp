#include "core/duration.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <sstream>
#include <string>

namespace nightshift {

Result<Duration> parse_duration(std::string_view text) {
  if (text.empty()) return Error::invalid("empty duration");
  if (text.front() == '-') return Error::invalid("durations cannot be negative");
  static const std::pair<std::string_view, std::int64_t> kUnits[] = {
      {"ns", 1}, {"us", 1'000}, {"µs", 1'000}, {"ms", 1'000'000},
      {"s", 1'000'000'000}, {"m", 60'000'000'000}, {"h", 3'600'000'000'000},
      {"d", 86'400'000'000'000}};
  long double total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t num_start = i;
    bool dot = false;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || (text[i] == '.' && !dot))) {
      if (text[i] == '.') dot = true;
      ++i;
    }
    if (i == num_start || (i - num_start == 1 && dot)) return Error::invalid("expected a number");
    const long double number = std::stold(std::string(text.substr(num_start, i - num_start)));
    const std::size_t unit_start = i;
    while (i < text.size() && !std::isdigit(static_cast<unsigned char>(text[i])) && text[i] != '.') ++i;
    const std::string_view unit = text.substr(unit_start, i - unit_start);
    if (unit.empty()) return Error::invalid("missing unit (ms, s, m, h)");
    auto it = std::find_if(std::begin(kUnits), std::end(kUnits), [&](const auto& u) { return u.first == unit; });
    if (it == std::end(kUnits)) return Error::invalid("unknown unit \"" + std::string(unit) + "\"");
    total += number * static_cast<long double>(it->second);
  }
  if (total > 1e18L) return Error::invalid("duration too long");
  return Duration(static_cast<Duration::rep>(std::llround(total)));
}

std::string format_duration(Duration d) {
  using namespace std::chrono;
  const auto ns = d.count();
  if (ns == 0) return "0s";
  if (ns % 1'000'000'000 != 0) {
    if (ns < 1'000'000'000) {
      if (ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + "ms";
      std::ostringstream o;
      o << static_cast<double>(ns) / 1e6 << "ms";
      return o.str();
    }
    std::ostringstream o;
    o << static_cast<double>(ns) / 1e9 << "s";
    return o.str();
  }
  auto s = ns / 1'000'000'000;
  std::string out;
  if (s >= 3600) {
    out += std::to_string(s / 3600) + "h";
    s %= 3600;
  }
  if (s >= 60) {
    out += std::to_string(s / 60) + "m";
    s %= 60;
  }
  if (s > 0) out += std::to_string(s) + "s";
  return out;
}

}  // namespace nightshift
