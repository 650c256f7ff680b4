// Parser for the Prometheus text exposition format (version 0.0.4), so tests
// can assert series and their labels exactly instead of grepping text.
//
//   # HELP name text
//   # TYPE name gauge
//   name{label="value",other="x\"y"} 1.5 [timestamp_ms]
//
// Malformed lines are reported in `errors` (with their line number) and
// skipped; a test should usually assert that `errors` is empty.
//
// Thread safety: pure functions, any thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace nightshift::test {

using PromLabels = std::map<std::string, std::string>;

struct PromSample {
  std::string name;  // the sample's own name, e.g. "x_bucket", "x_sum"
  PromLabels labels;
  double value = 0;
  std::optional<std::int64_t> timestamp_ms;
  std::string to_string() const;  // name{a="b",c="d"} value
};
void PrintTo(const PromSample& s, std::ostream* os);

struct PromText {
  std::vector<PromSample> samples;           // in exposition order
  std::map<std::string, std::string> types;  // family name -> counter, gauge, histogram, ...
  std::map<std::string, std::string> help;   // family name -> help text (unescaped)
  std::vector<std::string> errors;           // "line 12: ...", empty when the text is well formed

  // Samples named `name` whose labels include every pair of `subset`.
  std::vector<PromSample> select(const std::string& name, const PromLabels& subset = {}) const;
  // The value of the one sample `select` finds; empty when none or several match.
  std::optional<double> value(const std::string& name, const PromLabels& subset = {}) const;
  bool has(const std::string& name, const PromLabels& subset = {}) const { return !select(name, subset).empty(); }
  // Every sample name present.
  std::set<std::string> names() const;
};

PromText parse_prom_text(std::string_view text);

}  // namespace nightshift::test
