// The rules every agent runs unless the config says otherwise, so that a
// config with only targets still detects outages. See docs/rules.md.
#pragma once

#include <vector>

#include "rules/rule_engine.h"

namespace nightshift::rules {

// `variables`: what conditions may read (rules::variables of the registry).
std::vector<RuleSpec> default_rules(const std::vector<Variable>& variables);

}  // namespace nightshift::rules
