// The operator API's backend over the pipeline: incidents (list, get, ack,
// note, resolve) and silences (list, add, remove) as JSON, for serve/api.cpp.
// Runs on the reactor (the API posts every call there).
#pragma once

#include <functional>

#include <nlohmann/json.hpp>

#include "pipeline/pipeline.h"
#include "serve/api.h"

namespace nightshift {

// `after_change` runs after every call that may have changed the pipeline
// (the daemon re-arms its timer there). `list_targets` answers
// /api/v1/targets (the daemon knows the probes' last results).
ApiBackend make_operator_backend(Pipeline& pipeline, const Clock& clock, std::function<void()> after_change,
                                 std::function<nlohmann::json()> list_targets);

}  // namespace nightshift
