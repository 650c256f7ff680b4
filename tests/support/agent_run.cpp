#include "tests/support/agent_run.h"

#include <cstdlib>
#include <fstream>

#include "tests/support/http_get.h"

namespace nightshift::test {

std::string agent_binary() {
  const char* b = std::getenv("NIGHTSHIFT_BINARY");
  return b ? b : "";
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string RunningAgent::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port) + path;
}

std::optional<double> RunningAgent::metric(const std::string& name, const PromLabels& labels) const {
  HttpResult r = http_get(url("/metrics"));
  if (r.status != 200) return std::nullopt;
  return parse_prom_text(r.body).value(name, labels);
}

RunningAgent start_agent(const std::string& config_path, std::vector<std::string> extra_env,
                         std::chrono::milliseconds timeout) {
  Process::Options o;
  o.argv = {agent_binary(), "run", "-c", config_path};
  o.extra_env = std::move(extra_env);
  RunningAgent agent;
  agent.process = std::make_unique<Process>(o);
  const std::string marker = "msg=listening address=127.0.0.1:";
  if (auto at = agent.process->wait_for_stderr(marker, timeout)) {
    const std::string err = agent.process->stderr_text();
    const std::size_t start = *at + marker.size();
    agent.port = std::stoi(err.substr(start, err.find_first_not_of("0123456789", start) - start));
  }
  return agent;
}

}  // namespace nightshift::test
