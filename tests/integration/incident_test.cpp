// The whole path with real traffic: a namespaced test host whose link the test
// takes down is declared an incident within the rule's evidence (3 failed
// probes) plus one probe interval; a kill -9 and restart keeps the incident open
// and pages nobody twice; the link coming back resolves it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>

#include "tests/support/http_get.h"
#include "tests/support/process.h"
#include "tests/support/prom_text.h"
#include "tests/support/temp_dir.h"
#include "tests/support/testnet.h"
#include "tests/support/wait.h"

namespace nightshift::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// The agent we start inherits this process's private network namespace.
const std::string kNetnsError = enter_private_netns();

std::string binary() {
  const char* b = std::getenv("NIGHTSHIFT_BINARY");
  return b ? b : "";
}

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1)) ++n;
  return n;
}

class IncidentScenarioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
    ASSERT_FALSE(binary().empty()) << "NIGHTSHIFT_BINARY is set by ctest";
    peer_ = std::make_unique<PeerHost>();
    ASSERT_TRUE(peer_->ok()) << peer_->error();
    // The service on the test host: another nightshift, for its HTTP port.
    write_file(dir_.path() + "/server.toml",
               "[agent]\nname = \"server\"\nlisten = \"198.51.100.2:9000\"\nstate_dir = \"" + dir_.path() +
                   "/server-state\"\n");
    server_ = std::make_unique<Process>(
        std::vector<std::string>{"ip", "netns", "exec", peer_->name(), binary(), "run", "-c", dir_.path() + "/server.toml"});
    ASSERT_TRUE(server_->wait_for_stderr("msg=listening", 5s)) << server_->stderr_text();
    write_file(config_path(), R"([agent]
name = "scenario"
listen = "127.0.0.1:0"
state_dir = ")" + dir_.path() + R"(/state"

[defaults]
interval = "500ms"
timeout = "300ms"

[[rule]]
name = "target_down"
condition = "consecutive_failures >= 3"
clear_for = "1s"

[[target]]
name = "edge-host"
address = "198.51.100.2"
group = "edge"
  [[target.probe]]
  kind = "tcp"
  port = 9000
)");
  }

  std::string config_path() const { return dir_.path() + "/agent.toml"; }

  // An agent pinging the test host with the built-in rules.
  void write_icmp_config(const std::string& interval) {
    write_file(config_path(), R"([agent]
name = "scenario"
listen = "127.0.0.1:0"
state_dir = ")" + dir_.path() + R"(/state-icmp"

[defaults]
interval = ")" + interval + R"("
timeout = "400ms"

[[target]]
name = "edge-host"
address = "198.51.100.2"
group = "edge"
  [[target.probe]]
  kind = "icmp"
)");
  }

  std::unique_ptr<Process> start_agent() {
    auto agent = std::make_unique<Process>(std::vector<std::string>{binary(), "run", "-c", config_path()});
    auto at = agent->wait_for_stderr("msg=listening address=127.0.0.1:", 5s);
    EXPECT_TRUE(at) << agent->stderr_text();
    if (at) {
      const std::string err = agent->stderr_text();
      const std::size_t start = *at + std::string("msg=listening address=127.0.0.1:").size();
      port_ = std::stoi(err.substr(start, err.find_first_not_of("0123456789", start) - start));
    }
    return agent;
  }

  std::optional<double> metric(const std::string& name, const PromLabels& labels = {}) {
    HttpResult r = http_get("http://127.0.0.1:" + std::to_string(port_) + "/metrics");
    if (r.status != 200) return std::nullopt;
    return parse_prom_text(r.body).value(name, labels);
  }

  TempDir dir_;
  std::unique_ptr<PeerHost> peer_;
  std::unique_ptr<Process> server_;
  int port_ = 0;
};

TEST_F(IncidentScenarioTest, LinkDownDeclaredRestartKeepsItLinkUpResolves) {
  auto agent = start_agent();
  ASSERT_TRUE(wait_until([&] { return metric("probe_success", {{"target", "edge-host"}}) == 1.0; }, 5s))
      << agent->stderr_text();

  // Cut the link. Evidence: 3 failed probes 500 ms apart (each fails at once:
  // no route), so the incident is due within for (0) + 3 intervals.
  const auto cut = std::chrono::steady_clock::now();
  ASSERT_TRUE(peer_->set_link(false)) << peer_->error();
  ASSERT_TRUE(agent->wait_for_stderr("msg=\"incident declared\"", 5s)) << agent->stderr_text();
  const auto declared_after = std::chrono::steady_clock::now() - cut;
  EXPECT_LT(declared_after, 2s) << "3 probe intervals of 500 ms, plus one interval of slack";
  EXPECT_THAT(agent->stderr_text(), HasSubstr("title=\"edge-host: service tcp_9000 down\""));
  EXPECT_TRUE(wait_until([&] { return metric("nightshift_incidents_open", {{"severity", "critical"}}) == 1.0; }, 2s));

  // kill -9 in the middle of the outage, then start again on the same state.
  agent->kill_and_wait();
  agent = start_agent();
  ASSERT_TRUE(agent->wait_for_stderr("msg=\"open incidents restored\" open=1", 5s)) << agent->stderr_text();
  ASSERT_TRUE(agent->wait_for_stderr("msg=\"alert firing\"", 5s)) << agent->stderr_text();
  EXPECT_EQ(metric("nightshift_incidents_open", {{"severity", "critical"}}), 1.0);
  EXPECT_EQ(count(agent->stderr_text(), "msg=\"incident declared\""), 0u) << "no second page after the restart";

  // Restore the link: success for clear_for (1 s) resolves the alert and the incident.
  ASSERT_TRUE(peer_->set_link(true)) << peer_->error();
  ASSERT_TRUE(agent->wait_for_stderr("msg=\"incident resolved\"", 8s)) << agent->stderr_text();
  // The log line comes just before the gauges move: poll briefly.
  EXPECT_TRUE(wait_until([&] { return metric("nightshift_incidents_open", {{"severity", "critical"}}) == 0.0; }, 2s));
  EXPECT_EQ(metric("nightshift_incident_events_total", {{"event", "resolved"}}), 1.0);
  ASSERT_TRUE(agent->send_signal(SIGTERM));
  auto status = agent->wait_for(8s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0);
}

TEST_F(IncidentScenarioTest, IcmpConfirmationDeclaresACutWithinSecondsOfTheFirstMiss) {
  // A 5 s interval: without confirmation, three failed rounds would take 10-15 s.
  write_icmp_config("5s");
  auto agent = start_agent();
  // The first round comes at its phase within the 5 s interval, plus the start: up to about 8.4 s.
  ASSERT_TRUE(wait_until([&] { return metric("probe_success", {{"target", "edge-host"}}) == 1.0; }, 15s))
      << agent->stderr_text();
  ASSERT_TRUE(peer_->set_link(false)) << peer_->error();
  const auto cut = std::chrono::steady_clock::now();
  ASSERT_TRUE(agent->wait_for_stderr("msg=\"incident declared\"", 12s)) << agent->stderr_text();
  const auto after = std::chrono::steady_clock::now() - cut;
  // The first failed round starts within one interval (5 s); the burst and its
  // timeout add about 1.5 s.
  EXPECT_LT(after, 5s + 3s);
  EXPECT_THAT(agent->stderr_text(), HasSubstr("confirmed_down"));
  // The round confirmed its own miss: no separate confirmation was needed.
  EXPECT_THAT(agent->stderr_text(), HasSubstr("12 of 12 confirmation echoes lost"));
  // The incident says where the path breaks: here the link next to the agent.
  auto at = agent->wait_for_stderr("msg=\"incident diagnosis\"", 5s);
  ASSERT_TRUE(at) << agent->stderr_text();
  const std::string line = agent->stderr_text().substr(*at, 400);
  EXPECT_THAT(line, HasSubstr("path to 198.51.100.2:"));
  EXPECT_THAT(line, HasSubstr("no hop answered"));
}

TEST_F(IncidentScenarioTest, ThirtyPercentRandomLossNeverDeclaresDown) {
  // 30 % of packets into the test host dropped at random (nftables numgen in its
  // namespace); 60 rounds of 3 echoes, 500 ms apart.
  ASSERT_EQ(peer_->exec_in_peer({"nft", "add", "rule", "inet", "nightshift_test", "input", "ip", "daddr", "198.51.100.2",
                                 "numgen", "random", "mod", "100", "<", "30", "drop"}),
            0);
  write_icmp_config("500ms");
  auto agent = start_agent();
  ASSERT_TRUE(wait_until([&] { return metric("nightshift_probes_sent_total", {{"kind", "icmp"}}).value_or(0) >= 60; },
                         40s));
  EXPECT_EQ(count(agent->stderr_text(), "msg=\"incident declared\""), 0u) << agent->stderr_text();
  EXPECT_EQ(count(agent->stderr_text(), "rule=target_down"), 0u);
  // The loss itself is seen: some rounds lost packets.
  const auto results = metric("nightshift_probe_results_total", {{"target", "edge-host"}, {"result", "ok"}});
  EXPECT_GE(results.value_or(0), 50.0);
}

}  // namespace
}  // namespace nightshift::test
