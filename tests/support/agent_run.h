// Running the agent binary in a test: its path (NIGHTSHIFT_BINARY, set by
// ctest), writing its config, starting it and learning the HTTP port it
// picked ("listen = 127.0.0.1:0"), and reading one metric from it.
//
// Thread safety: one test thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/prom_text.h"

namespace nightshift::test {

// The agent binary under test; "" when NIGHTSHIFT_BINARY is not set.
std::string agent_binary();

// Writes `text` to `path` (truncating).
void write_text_file(const std::string& path, const std::string& text);

struct RunningAgent {
  std::unique_ptr<Process> process;
  int port = 0;  // 0 when it did not start listening in time (see process->stderr_text())

  std::string url(const std::string& path) const;
  // One value from its /metrics, or nullopt.
  std::optional<double> metric(const std::string& name, const PromLabels& labels = {}) const;
};

// `nightshift run -c config_path`, waiting (bounded) for its "listening" line.
RunningAgent start_agent(const std::string& config_path, std::vector<std::string> extra_env = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace nightshift::test
