// Rule conditions: grammar, types, units, Kleene logic for missing values,
// and parse errors that point at the column.
#include "rules/rule_expr.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace nightshift::rules {
namespace {

const std::vector<Variable> kVars = {
    {"success", ValueType::kNumber, "last run succeeded (1) or not (0)", ""},
    {"loss", ValueType::kNumber, "loss ratio in the window", ""},
    {"rtt_p95", ValueType::kNumber, "95th percentile RTT, seconds", ""},
    {"if_oper", ValueType::kString, "interface oper status", ""},
    {"if_admin", ValueType::kString, "interface admin status", ""},
    {"rebooted", ValueType::kBool, "device rebooted in the window", ""},
};

class MapEnv final : public Environment {
 public:
  std::map<std::string, Value, std::less<>> values;
  std::optional<Value> get(std::string_view name) const override {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  }
};

Condition parse_ok(const std::string& text) {
  auto c = Condition::parse(text, kVars);
  EXPECT_TRUE(c.ok()) << text << ": " << (c.ok() ? "" : c.error().message);
  return c.ok() ? c.value() : *Condition::parse("true", kVars);
}

TEST(RuleExprTest, ExamplesFromTheIssueEvaluate) {
  struct Case {
    std::string name, text;
    std::map<std::string, Value> env;
    std::optional<bool> want;
  };
  const std::vector<Case> cases = {
      {"loss above 20%", "loss > 0.2", {{"loss", 0.25}}, true},
      {"loss percent unit", "loss > 20%", {{"loss", 0.2}}, false},
      {"rtt in ms", "rtt_p95 > 150ms", {{"rtt_p95", 0.151}}, true},
      {"rtt below", "rtt_p95 > 150ms", {{"rtt_p95", 0.149}}, false},
      {"down", "success == 0", {{"success", 0.0}}, true},
      {"interface down but admin up", "if_oper == \"down\" and if_admin == \"up\"",
       {{"if_oper", std::string("down")}, {"if_admin", std::string("up")}}, true},
      {"admin down is no outage", "if_oper == \"down\" and if_admin == \"up\"",
       {{"if_oper", std::string("down")}, {"if_admin", std::string("down")}}, false},
      {"bare boolean variable", "rebooted", {{"rebooted", true}}, true},
      {"not", "not rebooted", {{"rebooted", true}}, false},
      {"precedence: and binds tighter than or", "success == 1 or loss > 0.5 and rebooted",
       {{"success", 1.0}, {"loss", 0.0}, {"rebooted", false}}, true},
      {"parentheses", "(success == 1 or loss > 0.5) and rebooted",
       {{"success", 1.0}, {"loss", 0.0}, {"rebooted", false}}, false},
      {"minutes unit", "rtt_p95 >= 2m", {{"rtt_p95", 120.0}}, true},
      {"missing value is unknown", "rtt_p95 > 150ms", {}, std::nullopt},
      {"unknown and false is false", "rtt_p95 > 150ms and success == 1", {{"success", 0.0}}, false},
      {"unknown or true is true", "rtt_p95 > 150ms or success == 0", {{"success", 0.0}}, true},
      {"not unknown stays unknown", "not (rtt_p95 > 150ms)", {}, std::nullopt},
      {"string inequality", "if_oper != \"up\"", {{"if_oper", std::string("lowerLayerDown")}}, true},
      {"escaped quote", "if_oper == \"a\\\"b\"", {{"if_oper", std::string("a\"b")}}, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    MapEnv env;
    for (const auto& [k, v] : c.env) env.values[k] = v;
    const Condition cond = parse_ok(c.text);
    EXPECT_EQ(cond.evaluate(env), c.want);
    EXPECT_EQ(cond.fires(env), c.want.value_or(false));
  }
}

TEST(RuleExprTest, ErrorsPointAtTheColumn) {
  struct Case {
    std::string name, text, message;
  };
  const std::vector<Case> cases = {
      {"unknown variable, close to a known one", "los > 0.2",
       "column 1: expected a known variable (did you mean \"loss\"?), found \"los\""},
      {"unknown variable", "temperature > 0.2",
       "column 1: expected a known variable (success, loss, rtt_p95, if_oper, if_admin, rebooted), found \"temperature\""},
      {"single equals", "success = 0", "column 9: expected \"==\" to compare, found \"=\""},
      {"type mismatch", "loss > \"high\"", "column 8: expected a number to compare with the left side, found a string"},
      {"ordering strings", "if_oper < \"up\"", "column 9: expected \"==\" or \"!=\" for a string, found \"<\""},
      {"bare number", "loss", "column 1: expected a condition, found a number (compare it, e.g. `loss > 20%`)"},
      {"bad unit", "rtt_p95 > 150xs", "column 14: expected a unit (%, us, ms, s, m, h) or nothing, found \"xs\""},
      {"unclosed paren", "(loss > 1", "column 10: expected \")\" to close the \"(\" at column 1, found the end of the condition"},
      {"unclosed string", "if_oper == \"down", "column 12: expected a closing '\"', found the end of the condition"},
      {"dangling and", "loss > 1 and", "column 13: expected a value, variable or \"(\", found the end of the condition"},
      {"chained comparison", "0 < loss < 1", "column 10: expected \"and\", \"or\" or the end (comparisons do not chain), found \"<\""},
      {"number in and", "loss and rebooted", "column 1: expected a condition on the left of \"and\", found a number"},
      {"stray character", "loss > 1 ; drop", "column 10: expected a number, string, variable, comparison or parenthesis, found \";\""},
      {"empty", "", "column 1: expected a value, variable or \"(\", found the end of the condition"},
      {"trailing garbage", "rebooted rebooted", "column 10: expected \"and\", \"or\" or the end, found \"rebooted\""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = Condition::parse(c.text, kVars);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().message, c.message);
  }
}

TEST(RuleExprTest, DeepNestingIsAnErrorNotAStackOverflow) {
  // Found by tests/fuzz/rule_expr_fuzz.cpp.
  const std::string parens(100000, '(');
  auto a = Condition::parse(parens, kVars);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().message, "column 65: expected at most 64 nested parentheses or \"not\", found deeper nesting");
  std::string nots;
  for (int i = 0; i < 50000; ++i) nots += "not ";
  EXPECT_FALSE(Condition::parse(nots + "rebooted", kVars).ok());
  std::string chain = "rebooted";
  for (int i = 0; i < 100000; ++i) chain += " and rebooted";
  auto c = Condition::parse(chain, kVars);
  ASSERT_FALSE(c.ok());
  // "rebooted" plus 256 " and rebooted": the 257th "and" starts at column 8 + 256 * 13 + 2.
  EXPECT_EQ(c.error().message, "column 3338: expected at most 256 \"and\"/\"or\" in one condition, found more");
  // 64 levels are fine.
  EXPECT_TRUE(Condition::parse(std::string(64, '(') + "rebooted" + std::string(64, ')'), kVars).ok());
}

TEST(RuleExprTest, ReportsTheVariablesItReads) {
  const Condition c = parse_ok("if_oper == \"down\" and if_admin == \"up\" or if_oper == \"x\"");
  EXPECT_EQ(c.variables(), (std::vector<std::string>{"if_oper", "if_admin"}));
}

TEST(RuleExprTest, NanComparesAsUnknown) {
  MapEnv env;
  env.values["loss"] = std::nan("");
  EXPECT_EQ(parse_ok("loss > 0.2").evaluate(env), std::nullopt);
}

}  // namespace
}  // namespace nightshift::rules
