// Rule conditions: a small expression language over a target's recent results.
//
//   condition  := or
//   or         := and ("or" and)*
//   and        := not ("and" not)*
//   not        := "not" not | comparison
//   comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
//   operand    := number [unit] | string | "true" | "false" | variable | "(" condition ")"
//   unit       := "%" (÷100) | "us" | "ms" | "s" | "m" | "h" (→ seconds)
//   string     := '"' ... '"' (\" and \\ escapes)
//
// Examples: `loss > 20%`, `rtt_p95 > 150ms`, `success == 0`,
// `reason == "refused" and consecutive_failures >= 2`, `confirmed_down`.
//
// Variables come from a catalogue given at parse time, each with a type; the
// parser checks types, so `loss > "high"` is an error at its column, not a
// silent false at 03:00. At evaluation a variable may have no value yet (no RTT
// before the first reply): a comparison with a missing value is *unknown*, and
// unknown propagates (Kleene logic); a condition that ends unknown does not fire.
//
// Thread safety: a parsed Condition is immutable; evaluate() from any thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "nightshift/result.h"

namespace nightshift::rules {

enum class ValueType { kNumber, kString, kBool };
using Value = std::variant<double, std::string, bool>;

struct Variable {
  std::string name;
  ValueType type;
  std::string help;  // one line, for error messages and docs
  std::string unit;  // "seconds", "ratio", "count", ... or "" (see nightshift/measure.h)
};

// Supplies variable values at evaluation time.
class Environment {
 public:
  virtual ~Environment() = default;
  virtual std::optional<Value> get(std::string_view name) const = 0;
};

struct Node;

class Condition {
 public:
  // Parses `text`; errors say "column N: ..." (1-based) with what was expected
  // and what was found.
  static Result<Condition> parse(std::string_view text, const std::vector<Variable>& variables);

  // true / false, or nullopt when a needed value is missing.
  std::optional<bool> evaluate(const Environment& env) const;
  bool fires(const Environment& env) const { return evaluate(env).value_or(false); }

  const std::string& text() const { return text_; }
  // Variables the condition reads, for selecting what to compute.
  const std::vector<std::string>& variables() const { return used_; }

 private:
  std::string text_;
  std::shared_ptr<const Node> root_;
  std::vector<std::string> used_;
};

}  // namespace nightshift::rules
