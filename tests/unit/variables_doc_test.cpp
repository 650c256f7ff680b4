// Rule variables come from one declaration (the rule engine's own and each
// probe kind's measures): the docs' table must be that declaration, and every
// variable it names must be accepted by check-config.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "config/config.h"
#include "probes/registry/registry.h"

namespace nightshift {
namespace {

std::string read_doc(const std::string& relative) {
  std::ifstream in(std::string(NIGHTSHIFT_TEST_SOURCE_DIR) + "/" + relative);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

TEST(VariablesDoc, RulesMdTableIsTheDeclaration) {
  const std::string doc = read_doc("docs/rules.md");
  const std::string begin = "<!-- variables:begin -->\n", end = "<!-- variables:end -->";
  const auto b = doc.find(begin), e = doc.find(end);
  ASSERT_NE(b, std::string::npos) << "docs/rules.md lacks the " << begin << "marker";
  ASSERT_NE(e, std::string::npos) << "docs/rules.md lacks the " << end << " marker";
  const std::string table = doc.substr(b + begin.size(), e - b - begin.size());
  EXPECT_EQ(table, rule_variables_markdown())
      << "docs/rules.md's variable table differs from the declarations; the table should read:\n"
      << rule_variables_markdown();
}

TEST(VariablesDoc, CheckConfigAcceptsEveryDeclaredVariable) {
  std::string config = "[[target]]\nname = \"t\"\naddress = \"127.0.0.1\"\n  [[target.probe]]\n  kind = \"icmp\"\n";
  int n = 0;
  for (const auto& v : rule_variables()) {
    std::string condition = v.name;
    if (v.type == rules::ValueType::kNumber) condition += " > 0";
    if (v.type == rules::ValueType::kString) condition += " == \\\"x\\\"";
    config += "[[rule]]\nname = \"r" + std::to_string(n++) + "\"\ncondition = \"" + condition + "\"\n";
  }
  auto loaded = parse_config(config, "variables.toml");
  std::string errors;
  for (const auto& e : loaded.errors) errors += e.to_string() + "\n";
  EXPECT_TRUE(loaded.ok()) << errors;
  EXPECT_GT(n, 30);
}

TEST(VariablesDoc, EveryDeclaredMeasureIsInMetricsMd) {
  const std::string doc = read_doc("docs/metrics.md");
  for (const auto& kind : kind_measures()) {
    for (const auto& m : kind.measures) {
      const std::string metric = "probe_" + std::string(kind.kind) + "_" + std::string(m.name);
      EXPECT_NE(doc.find(metric), std::string::npos) << metric << " is declared but docs/metrics.md does not name it";
    }
  }
}

TEST(VariablesDoc, NoTwoKindsDeclareOneNameWithTwoTypes) {
  const auto kinds = kind_measures();
  EXPECT_NO_THROW(rules::variables(kinds));
}

TEST(VariablesDoc, AnUnknownVariableSuggestsTheClosest) {
  auto c = rules::Condition::parse("consecutive_failure >= 3", rule_variables());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("did you mean \"consecutive_failures\"?"), std::string::npos) << c.error().message;
  EXPECT_EQ(c.error().message.rfind("column 1:", 0), 0u) << c.error().message;
}

}  // namespace
}  // namespace nightshift
