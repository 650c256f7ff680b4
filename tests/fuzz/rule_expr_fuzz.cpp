// libFuzzer target over rule conditions: any text, parsed against the real
// variable catalogue and evaluated on an environment where every variable is
// missing and on one where each has a value. A parse error always names a column.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/config.h"
#include "rules/rule_engine.h"

namespace {
using namespace nightshift::rules;

class Missing final : public Environment {
 public:
  std::optional<Value> get(std::string_view) const override { return std::nullopt; }
};

class Filled final : public Environment {
 public:
  std::optional<Value> get(std::string_view name) const override {
    for (const auto& v : nightshift::rule_variables()) {
      if (v.name != name) continue;
      switch (v.type) {
        case ValueType::kNumber: return Value(0.5);
        case ValueType::kString: return Value(std::string("down"));
        case ValueType::kBool: return Value(true);
      }
    }
    return std::nullopt;
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto c = Condition::parse(text, nightshift::rule_variables());
  if (!c.ok()) {
    if (c.error().message.rfind("column ", 0) != 0) std::abort();
    return 0;
  }
  (void)c->evaluate(Missing{});
  (void)c->evaluate(Filled{});
  return 0;
}
