// The registry: every probe kind this build knows. Adding a kind is its own
// folder under probes/ and one line in registry.cpp; config, rules, metrics
// and docs learn its options and measures from its entry.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "probes/probe.h"

namespace nightshift {

std::span<const ProbeKind> probe_kinds();
const ProbeKind* find_probe_kind(std::string_view name);
// Every kind's declared measures, in registry order.
std::vector<KindMeasures> kind_measures();

}  // namespace nightshift
