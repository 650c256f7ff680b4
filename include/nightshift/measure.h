// Measure: what a probe kind measures, declared once in its registry entry.
//
// Each name a kind puts in Sample::values or Sample::observations is declared
// here with its type, unit and help. Rule variables (rules/), the help text of
// the exported probe_<kind>_<name> series (serve/metrics) and the variable
// table in docs/rules.md all come from these declarations, so a new kind
// touches nothing outside its own folder and the registry line.
#pragma once

#include <span>
#include <string_view>

namespace nightshift {

enum class MeasureType { kNumber, kBool, kString };

struct Measure {
  enum class Export {
    kGauge,      // Sample::values: the last value, a rule variable and a gauge probe_<kind>_<name>
    kHistogram,  // Sample::observations: a histogram probe_<kind>_<name>, no rule variable of its own
  };
  std::string_view name;
  MeasureType type = MeasureType::kNumber;
  std::string_view unit;  // "seconds", "ratio" (0 to 1), "per second", "bytes per second", "count", "" (none)
  std::string_view help;  // one line: shown in /metrics, errors and docs
  Export exported = Export::kGauge;
};

// The measures of one kind, as the registry lists them.
struct KindMeasures {
  std::string_view kind;
  std::span<const Measure> measures;
};

}  // namespace nightshift
