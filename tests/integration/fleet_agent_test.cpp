// Three agent processes in one fleet, end to end: a real nats-server (JetStream)
// started by the test in its private network namespace, three `nightshift run`
// processes watching one loopback TCP service, and a real webhook receiver.
// The service stops: one page, not three, under the fleet incident's id. The
// owner is killed with SIGKILL: the resolve still arrives, once, from another
// agent.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/scheduler.h"
#include "tests/support/agent_run.h"
#include "tests/support/http_get.h"
#include "tests/support/process.h"
#include "tests/support/receiver.h"
#include "tests/support/temp_dir.h"
#include "tests/support/testnet.h"
#include "tests/support/wait.h"

namespace nightshift::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const std::string kNetnsError = enter_private_netns();
constexpr int kNatsPort = 19950;  // inside the test's own namespace
constexpr int kOpsNatsPort = 19460;  // the operator-action tests' own
constexpr const char* kToken = "fleet-ops-token-0123456789";

// A TCP service on 127.0.0.1 the agents probe; stop() makes connects refused.
// It accepts and closes, as a real service does: connections nobody accepts
// stay in the listen queue (a reset from the prober does not take them out),
// and once it is full every connect times out as if the service hung.
class Service {
 public:
  Service() { start(); }
  ~Service() { stop(); }
  void start() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port_));
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 64) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    running_ = true;
    acceptor_ = std::thread([this] {
      while (running_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) ::close(c);
      }
    });
  }
  void stop() {
    running_ = false;
    if (acceptor_.joinable()) acceptor_.join();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool ok() const { return fd_ >= 0; }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> running_{false};
  std::thread acceptor_;
};

std::string event_of(const ReceivedRequest& r) {
  auto j = json::parse(r.body, nullptr, false);
  return j.is_object() && j.contains("event") ? j["event"].get<std::string>() : "";
}

std::string incident_of(const ReceivedRequest& r) {
  auto j = json::parse(r.body, nullptr, false);
  return j.is_object() && j.contains("incident") ? j["incident"].value("id", "") : "";
}

std::vector<ReceivedRequest> with_event(const Receiver& rx, const std::string& event) {
  std::vector<ReceivedRequest> out;
  for (const auto& r : rx.accepted()) {
    if (event_of(r) == event) out.push_back(r);
  }
  return out;
}

// How an agent probes "svc": fast rounds, three misses (the default), or
// `slow` (a 30 s interval, one confirmed miss: the probe's name sets its
// phase, so each agent's round comes at another time).
struct Probing {
  std::string interval = "300ms";
  std::string timeout = "200ms";
  std::string condition = "consecutive_failures >= 3";
  std::string probe = "tcp";
};
Probing slow(const std::string& probe) { return {"30s", "1s", "consecutive_failures >= 1", probe}; }

class FleetAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
    ASSERT_FALSE(agent_binary().empty()) << "NIGHTSHIFT_BINARY is set by ctest";
    ASSERT_TRUE(service_.ok());
    // No nats-server fails the test (CI or not): the fleet is what is tested.
    nats_ = std::make_unique<Process>(std::vector<std::string>{
        "nats-server", "-js", "-a", "127.0.0.1", "-p", std::to_string(nats_port_), "-sd", dir_.file("js")});
    ASSERT_TRUE(nats_->wait_for_stderr("Server is ready", 10s).has_value())
        << "cannot start nats-server (scripts/install-deps.sh installs it): " << nats_->stderr_text();
  }

  // `port`: the service's port as this agent reaches it (0: the shared service).
  std::string config(const std::string& name, int port = 0, const Probing& probing = {}) {
    return common_config(name, probing) + R"(
[[target]]
name = "svc"
address = "127.0.0.1"
group = "edge"
site = "lab"
  [[target.probe]]
  kind = "tcp"
  name = ")" + probing.probe + R"("
  port = )" + std::to_string(port ? port : service_.port()) + "\n";
  }

  // Everything but the targets.
  std::string common_config(const std::string& name, const Probing& probing = {}) {
    write_text_file(dir_.file("token"), std::string(kToken) + "\n");
    return R"([agent]
name = ")" + name + R"("
listen = "127.0.0.1:0"
state_dir = ")" + dir_.file("state-" + name) + R"("

[defaults]
interval = ")" + probing.interval + R"("
timeout = ")" + probing.timeout + R"("

[[rule]]
name = "target_down"
condition = ")" + probing.condition + R"("
clear_for = "900ms"

[incidents]
batch = "1s"

[notify]
first_backoff = "200ms"
max_backoff = "800ms"
)" + notify_extra_ + R"(

[api]
token_file = ")" + dir_.file("token") + R"("
public_read = true

[fleet]
servers = ["nats://127.0.0.1:)" + std::to_string(nats_port_) + R"("]
name = "wire"
heartbeat = "500ms"
lease = "2s"
confirm_timeout = "1s"

[[sink]]
name = "hook"
type = "webhook"
url = ")" + receiver_.url("/hook") + R"("

[[sink]]
name = "pager"
type = "webhook"
min_severity = "critical"
url = ")" + pager_.url("/pager") + "\"\n";
  }

  // `c_port`: edge-c reaches "svc" at this port instead (its own path to it).
  void start_agents(int c_port = 0) {
    for (const char* name : {"edge-a", "edge-b", "edge-c"}) {
      const std::string path = dir_.file(std::string(name) + ".toml");
      write_text_file(path, config(name, std::string(name) == "edge-c" ? c_port : 0));
      RunningAgent a = start_agent(path);
      ASSERT_NE(a.port, 0) << a.process->stderr_text();
      names_.push_back(name);
      agents_.push_back(std::move(a));
    }
    for (std::size_t i = 0; i < agents_.size(); ++i) {
      auto& a = agents_[i];
      // With the agent label: the shipped Prometheus quorum rule joins on it
      // to leave fleet agents out (else Prometheus pages the outage again).
      const PromLabels agent{{"agent", names_[i]}};
      ASSERT_TRUE(wait_until([&] { return a.metric("nightshift_fleet_connected", agent) == 1.0; }, 10s))
          << a.process->stderr_text();
      ASSERT_TRUE(wait_until([&] { return a.metric("probe_success", {{"target", "svc"}}) == 1.0; }, 5s))
          << a.process->stderr_text();
    }
    // Three heartbeats (500 ms): every agent counts the other two as watchers.
    std::this_thread::sleep_for(1500ms);
  }

  std::string logs() const {
    std::string out;
    for (std::size_t i = 0; i < agents_.size(); ++i) {
      out += "---- " + names_[i] + "\n" + agents_[i].process->stderr_text();
    }
    return out + "---- nats-server\n" + nats_->stderr_text();
  }

  // The agent that logged it owns the fleet incident; -1 when none did.
  int owner() const {
    for (std::size_t i = 0; i < agents_.size(); ++i) {
      if (agents_[i].process->stderr_text().find("this agent owns the incident and pages") != std::string::npos) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }

  int nats_port_ = kNatsPort;
  std::string notify_extra_;  // lines for [notify]
  TempDir dir_;
  Service service_;
  Receiver receiver_;
  Receiver pager_;  // a sink that takes critical incidents only
  Receiver pd_;     // PagerDuty's Events API, for the tests that add a pagerduty sink
  std::unique_ptr<Process> nats_;
  std::vector<std::string> names_;
  std::vector<RunningAgent> agents_;
};

TEST_F(FleetAgentTest, ThreeAgentsOneOutageOnePageAndTheResolveSurvivesTheOwner) {
  ASSERT_NO_FATAL_FAILURE(start_agents());

  const auto cut = std::chrono::steady_clock::now();
  service_.stop();
  ASSERT_TRUE(receiver_.wait_accepted(1, 10s)) << logs();
  const auto paged_after = std::chrono::steady_clock::now() - cut;
  std::printf("fleet of 3: service stopped -> page received in %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(paged_after).count()));
  // Every agent declares within a few probe intervals: wait long enough for a
  // second or third page to show up if one were sent.
  std::this_thread::sleep_for(3s);
  const auto declared = with_event(receiver_, "declared");
  ASSERT_EQ(declared.size(), 1u) << logs();
  const std::string id = incident_of(declared[0]);
  EXPECT_EQ(declared[0].headers.at("idempotency-key"), id + ":declared:1") << "keys come from the fleet incident";
  // The page says it is an outage seen by the fleet, naming the vantages (a
  // quorum of the three at least).
  const json page = json::parse(declared[0].body, nullptr, false);
  const std::string summary = page["incident"]["impacted"][0].value("summary", "");
  std::printf("the page's summary: %s\n", summary.c_str());
  EXPECT_NE(summary.find(" agents watching it ("), std::string::npos) << declared[0].body;
  int named = 0;
  for (const char* name : {"edge-a", "edge-b", "edge-c"}) named += summary.find(name) != std::string::npos;
  EXPECT_GE(named, 2) << summary;
  const int paged_by = owner();
  ASSERT_GE(paged_by, 0) << logs();
  int recorded = 0;
  for (const auto& a : agents_) {
    if (a.process->stderr_text().find("incident recorded; its owner pages") != std::string::npos) ++recorded;
  }
  EXPECT_EQ(recorded, 2) << "the two others record the fleet incident\n" << logs();

  // The owner dies mid-incident; the outage ends: another agent takes over
  // and the resolve goes out once, under the same id.
  agents_[paged_by].process->kill_and_wait();
  service_.start();
  ASSERT_TRUE(service_.ok());
  ASSERT_TRUE(wait_until([&] { return !with_event(receiver_, "resolved").empty(); }, 20s)) << logs();
  std::this_thread::sleep_for(2s);
  const auto resolved = with_event(receiver_, "resolved");
  ASSERT_EQ(resolved.size(), 1u) << logs();
  EXPECT_EQ(incident_of(resolved[0]), id);
  EXPECT_EQ(with_event(receiver_, "declared").size(), 1u) << "the new owner does not page the declaration again";
  bool took_over = false;
  for (const auto& a : agents_) {
    took_over = took_over || a.process->stderr_text().find("took over the incident") != std::string::npos;
  }
  EXPECT_TRUE(took_over) << logs();
}

// An agent restarted mid-incident (kill -9: no goodbye) restores its open
// incident from its store and is again a copy of the fleet incident: its
// resolve is not a second one under its own id.
TEST_F(FleetAgentTest, AnAgentRestartedMidIncidentResolvesUnderTheFleetIdOnce) {
  ASSERT_NO_FATAL_FAILURE(start_agents());
  service_.stop();
  ASSERT_TRUE(receiver_.wait_accepted(1, 10s)) << logs();
  std::this_thread::sleep_for(2s);
  const auto declared = with_event(receiver_, "declared");
  ASSERT_EQ(declared.size(), 1u) << logs();
  const std::string id = incident_of(declared[0]);
  const int paged_by = owner();
  ASSERT_GE(paged_by, 0) << logs();
  const std::size_t other = paged_by == 0 ? 1 : 0;
  agents_[other].process->kill_and_wait();
  agents_[other] = start_agent(dir_.file(names_[other] + ".toml"));
  ASSERT_NE(agents_[other].port, 0) << agents_[other].process->stderr_text();
  ASSERT_TRUE(wait_until(
      [&] { return agents_[other].metric("nightshift_fleet_connected", {{"agent", names_[other]}}) == 1.0; }, 10s))
      << logs();
  std::this_thread::sleep_for(1s);
  service_.start();
  ASSERT_TRUE(service_.ok());
  ASSERT_TRUE(wait_until([&] { return !with_event(receiver_, "resolved").empty(); }, 20s)) << logs();
  std::this_thread::sleep_for(3s);
  const auto resolved = with_event(receiver_, "resolved");
  ASSERT_EQ(resolved.size(), 1u) << logs();
  EXPECT_EQ(incident_of(resolved[0]), id);
  for (const auto& r : receiver_.accepted()) EXPECT_EQ(incident_of(r), id) << "one id for the outage: " << r.body;
  EXPECT_NE(agents_[other].process->stderr_text().find("is again this agent's copy of the fleet incident"),
            std::string::npos)
      << logs();
}

// Two agents of one fleet, each alone in watching its own service (other
// sites): two outages at once are two incidents with ids, webhook keys and
// PagerDuty dedup keys of their own, never one merged into the other.
TEST_F(FleetAgentTest, TwoOutagesOnTwoAgentsHaveDistinctIdsAndDedupKeys) {
  Service other;
  ASSERT_TRUE(other.ok());
  write_text_file(dir_.file("pd.key"), "pd-routing-key-0123456789abcdef\n");
  auto config_for = [&](const std::string& name, const std::string& site, int port) {
    return common_config(name) + R"(
[[sink]]
name = "pd"
type = "pagerduty"
url = ")" + pd_.url("/v2/enqueue") + R"("
routing_key_file = ")" + dir_.file("pd.key") + R"("

[[target]]
name = "svc-)" + site + R"("
address = "127.0.0.1"
group = "edge"
site = ")" + site + R"("
  [[target.probe]]
  kind = "tcp"
  name = "tcp"
  port = )" + std::to_string(port) + "\n";
  };
  const std::vector<std::pair<std::string, std::string>> agents = {{"edge-a", "fra"}, {"edge-b", "ams"}};
  for (std::size_t i = 0; i < agents.size(); ++i) {
    const std::string path = dir_.file(agents[i].first + ".toml");
    write_text_file(path, config_for(agents[i].first, agents[i].second, i == 0 ? service_.port() : other.port()));
    RunningAgent a = start_agent(path);
    ASSERT_NE(a.port, 0) << a.process->stderr_text();
    names_.push_back(agents[i].first);
    agents_.push_back(std::move(a));
  }
  for (std::size_t i = 0; i < agents_.size(); ++i) {
    ASSERT_TRUE(wait_until(
        [&] { return agents_[i].metric("nightshift_fleet_connected", {{"agent", names_[i]}}) == 1.0; }, 10s))
        << logs();
  }
  std::this_thread::sleep_for(1500ms);
  service_.stop();
  other.stop();
  ASSERT_TRUE(wait_until([&] { return with_event(receiver_, "declared").size() >= 2; }, 15s)) << logs();
  ASSERT_TRUE(wait_until([&] { return pd_.accepted().size() >= 2; }, 10s)) << logs();
  std::this_thread::sleep_for(2s);
  const auto declared = with_event(receiver_, "declared");
  ASSERT_EQ(declared.size(), 2u) << logs();
  EXPECT_NE(incident_of(declared[0]), incident_of(declared[1]));
  EXPECT_NE(declared[0].headers.at("idempotency-key"), declared[1].headers.at("idempotency-key"));
  std::set<std::string> dedup;
  for (const auto& r : pd_.accepted()) {
    const json body = json::parse(r.body, nullptr, false);
    if (body.value("event_action", "") == "trigger") dedup.insert(body.value("dedup_key", ""));
  }
  EXPECT_EQ(dedup.size(), 2u) << "one PagerDuty incident per outage\n" << logs();
  EXPECT_EQ(dedup.count(""), 0u);
}

TEST_F(FleetAgentTest, DownFromOneVantageOfThreeIsAWarningNamingItNotAPage) {
  // edge-c reaches "svc" through a path of its own (another listener); cutting
  // that path leaves the service up for edge-a and edge-b.
  Service c_path;
  ASSERT_TRUE(c_path.ok());
  ASSERT_NO_FATAL_FAILURE(start_agents(c_path.port()));
  c_path.stop();
  ASSERT_TRUE(agents_[2].process->wait_for_stderr("a path problem, a warning, not a page", 10s).has_value()) << logs();
  const std::string c = agents_[2].process->stderr_text();
  EXPECT_NE(c.find("vantage=edge-c"), std::string::npos) << c;
  // Visible: one warning naming the vantage to the sinks that take warnings;
  // the pager (critical only) hears nothing.
  ASSERT_TRUE(receiver_.wait_accepted(1, 5s)) << logs();
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(pager_.requests().empty()) << "no page for one vantage's path\n" << logs();
  const auto declared = with_event(receiver_, "declared");
  ASSERT_EQ(declared.size(), 1u) << logs();
  const json body = json::parse(declared[0].body, nullptr, false);
  EXPECT_EQ(body["incident"].value("severity", ""), "warning") << declared[0].body;
  EXPECT_NE(body["incident"].value("title", "").find("edge-c only"), std::string::npos) << declared[0].body;
  for (const auto& r : receiver_.requests()) {
    EXPECT_EQ(r.body.find("\"critical\""), std::string::npos) << "never critical: " << r.body;
  }
  EXPECT_EQ(agents_[0].metric("probe_success", {{"target", "svc"}}), 1.0) << logs();
  // Its local incident's timeline says so too.
  const json listed = json::parse(http_get(agents_[2].url("/api/v1/incidents?status=open")).body, nullptr, false);
  ASSERT_TRUE(listed.is_array() && listed.size() == 1) << listed.dump();
  EXPECT_NE(listed[0]["timeline"].dump().find("down from edge-c only"), std::string::npos) << listed[0].dump();
  // Customers reading edge-c's status page see the service as the fleet does:
  // no incident, no outage, as on every other agent's page.
  json page;
  ASSERT_TRUE(wait_until(
      [&] {
        HttpResult r = http_get(agents_[2].url("/status.json"));
        page = r.status == 200 ? json::parse(r.body, nullptr, false) : json();
        return page["open_incidents"].is_array() && page["open_incidents"].empty();
      },
      5s))
      << page.dump();
  for (const auto& component : page["components"]) {
    EXPECT_EQ(component.value("state", ""), "ok") << page.dump();
  }
}

TEST_F(FleetAgentTest, AloneSaysSoInTheMetricHealthzAndLogThenJoins) {
  nats_->kill_and_wait();
  const std::string path = dir_.file("alone.toml");
  write_text_file(path, config("edge-a"));
  RunningAgent a = start_agent(path);
  ASSERT_NE(a.port, 0) << a.process->stderr_text();
  ASSERT_TRUE(wait_until([&] { return a.metric("nightshift_fleet_connected") == 0.0; }, 5s)) << a.process->stderr_text();
  HttpResult health = http_get(a.url("/healthz"));
  EXPECT_EQ(health.status, 200);
  EXPECT_NE(health.body.find("fleet: alone"), std::string::npos) << health.body;
  ASSERT_TRUE(a.process->wait_for_stderr("fleet: alone", 5s).has_value()) << a.process->stderr_text();

  nats_ = std::make_unique<Process>(std::vector<std::string>{
      "nats-server", "-js", "-a", "127.0.0.1", "-p", std::to_string(nats_port_), "-sd", dir_.file("js")});
  ASSERT_TRUE(nats_->wait_for_stderr("Server is ready", 10s).has_value()) << nats_->stderr_text();
  ASSERT_TRUE(wait_until([&] { return a.metric("nightshift_fleet_connected") == 1.0; }, 15s)) << a.process->stderr_text();
  health = http_get(a.url("/healthz"));
  EXPECT_EQ(health.body, "ok\n");
  const std::string log = a.process->stderr_text();
  EXPECT_LT(log.find("fleet: alone"), log.find("fleet: connected")) << log;
}

// NATS is down while the service fails: edge-a and edge-b page alone, each
// under its own id. NATS comes back: they claim what they paged as already
// announced, so when edge-c (which reaches the service its own way) sees it
// fail afterwards, it joins the fleet incident instead of paging a third time,
// and every id that was paged gets its resolve, once.
TEST_F(FleetAgentTest, AfterNatsIsBackWhatWasPagedAloneIsNotPagedAgain) {
  Service c_path;
  ASSERT_TRUE(c_path.ok());
  ASSERT_NO_FATAL_FAILURE(start_agents(c_path.port()));
  nats_->kill_and_wait();
  for (auto& a : agents_) {
    ASSERT_TRUE(wait_until([&] { return a.metric("nightshift_fleet_connected") == 0.0; }, 10s)) << logs();
  }
  service_.stop();
  ASSERT_TRUE(receiver_.wait_accepted(2, 10s)) << logs();
  std::this_thread::sleep_for(1s);
  const auto alone = with_event(receiver_, "declared");
  ASSERT_EQ(alone.size(), 2u) << "a and b page alone\n" << logs();
  EXPECT_NE(incident_of(alone[0]), incident_of(alone[1]));

  nats_ = std::make_unique<Process>(std::vector<std::string>{
      "nats-server", "-js", "-a", "127.0.0.1", "-p", std::to_string(nats_port_), "-sd", dir_.file("js")});
  ASSERT_TRUE(nats_->wait_for_stderr("Server is ready", 10s).has_value()) << nats_->stderr_text();
  for (auto& a : agents_) {
    ASSERT_TRUE(wait_until([&] { return a.metric("nightshift_fleet_connected") == 1.0; }, 15s)) << logs();
  }
  std::this_thread::sleep_for(1500ms);  // c hears a and b again: they count as watchers
  for (int i : {0, 1}) {
    EXPECT_NE(agents_[i].process->stderr_text().find("incident paged alone"), std::string::npos) << logs();
  }

  c_path.stop();
  ASSERT_TRUE(agents_[2].process->wait_for_stderr("incident recorded; its owner pages", 10s).has_value()) << logs();
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(with_event(receiver_, "declared").size(), 2u) << "c joins; nobody pages it again\n" << logs();

  service_.start();
  c_path.start();
  ASSERT_TRUE(service_.ok());
  ASSERT_TRUE(wait_until([&] { return with_event(receiver_, "resolved").size() >= 2; }, 15s)) << logs();
  std::this_thread::sleep_for(2s);
  std::multiset<std::string> resolved;
  for (const auto& r : with_event(receiver_, "resolved")) resolved.insert(incident_of(r));
  EXPECT_EQ(resolved, (std::multiset<std::string>{incident_of(alone[0]), incident_of(alone[1])}))
      << "each id paged gets one resolve\n" << logs();
}

// A reload that changes [fleet] says it takes effect at restart and keeps the
// running fleet: the agent stays connected, owns what it owned, and the rest
// of the new config applies.
TEST_F(FleetAgentTest, AReloadKeepsTheRunningFleetAndSaysSo) {
  const std::string path = dir_.file("edge-a.toml");
  write_text_file(path, config("edge-a"));
  RunningAgent a = start_agent(path);
  ASSERT_NE(a.port, 0) << a.process->stderr_text();
  ASSERT_TRUE(wait_until([&] { return a.metric("nightshift_fleet_connected") == 1.0; }, 10s)) << a.process->stderr_text();
  std::string moved = config("edge-a");
  const std::string from = "nats://127.0.0.1:" + std::to_string(kNatsPort);
  moved.replace(moved.find(from), from.size(), "nats://127.0.0.1:1");  // nothing listens there
  write_text_file(path, moved);
  ASSERT_TRUE(a.process->send_signal(SIGHUP));
  ASSERT_TRUE(a.process->wait_for_stderr("[fleet] changed: takes effect at restart", 5s).has_value())
      << a.process->stderr_text();
  EXPECT_TRUE(wait_until([&] { return a.metric("nightshift_config_last_reload_successful") == 1.0; }, 5s));
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(a.metric("nightshift_fleet_connected"), 1.0) << a.process->stderr_text();
}

// Each agent's round of "svc" comes at another time (30 s apart at most):
// the first to see the service fail asks the two others, which probe it at
// once instead of at their next round, so the page comes seconds after the
// first failed round, before the second agent's own round is due.
TEST_F(FleetAgentTest, PeersProbeOnRequestSoTheFirstFailedRoundPages) {
  const std::vector<std::string> probes = {"tcp-a", "tcp-b", "tcp-c"};
  const Duration interval = 30s;
  for (std::size_t i = 0; i < 3; ++i) {
    const std::string name = std::string("edge-") + static_cast<char>('a' + i);
    const std::string path = dir_.file(name + ".toml");
    write_text_file(path, config(name, 0, slow(probes[i])));
    RunningAgent a = start_agent(path);
    ASSERT_NE(a.port, 0) << a.process->stderr_text();
    names_.push_back(name);
    agents_.push_back(std::move(a));
  }
  for (auto& a : agents_) {
    ASSERT_TRUE(wait_until([&] { return a.metric("nightshift_fleet_connected") == 1.0; }, 10s)) << logs();
  }
  // When each agent's round is due: the scheduler's phase on the shared
  // monotonic clock (every process on this machine reads the same one).
  auto next_round = [&](std::size_t i, std::chrono::steady_clock::time_point after) {
    const Duration phase = Scheduler::phase_of("svc", probes[i], interval);
    const Duration into = Duration(after.time_since_epoch().count() % interval.count());
    Duration wait = phase - into;
    if (wait <= Duration::zero()) wait += interval;
    return after + wait;
  };
  // Every agent has had a round (the service up) and heard the others' heartbeats.
  auto now = std::chrono::steady_clock::now();
  std::vector<std::chrono::steady_clock::time_point> rounds;
  for (std::size_t i = 0; i < 3; ++i) rounds.push_back(next_round(i, now + 2s));
  const std::size_t first = static_cast<std::size_t>(std::min_element(rounds.begin(), rounds.end()) - rounds.begin());
  // The service stops 1.5 s before the first round due after that.
  std::this_thread::sleep_until(rounds[first] - 1500ms);
  service_.stop();
  std::vector<std::chrono::steady_clock::time_point> due;
  for (std::size_t i = 0; i < 3; ++i) due.push_back(next_round(i, std::chrono::steady_clock::now()));
  std::vector<std::chrono::steady_clock::time_point> after = due;
  std::sort(after.begin(), after.end());
  ASSERT_GT(after[1] - after[0], 5s) << "the probes' names must spread their rounds";
  ASSERT_TRUE(receiver_.wait_accepted(1, 25s)) << logs();
  const auto paged = std::chrono::steady_clock::now();
  std::printf("first failed round -> page: %lld ms; the second agent's round was %lld ms after the first\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(paged - after[0]).count()),
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(after[1] - after[0]).count()));
  EXPECT_LT(paged, after[1]) << "paged only when a second agent's own round failed\n" << logs();
  EXPECT_LT(paged - after[0], 5s) << logs();
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(with_event(receiver_, "declared").size(), 1u) << logs();
  for (std::size_t i = 0; i < 3; ++i) {
    if (due[i] == after[0]) continue;  // the agent whose round failed first
    EXPECT_GE(agents_[i].metric("nightshift_confirmations_total", {{"kind", "tcp"}, {"result", "started"}}).value_or(0), 1.0)
        << names_[i] << " probed on request";
  }
}

// Operator actions fleet-wide (docs/fleet.md): through any agent's CLI or
// API, applied by every copy, announced once by the owner.
class FleetOpsTest : public FleetAgentTest {
 protected:
  FleetOpsTest() { nats_port_ = kOpsNatsPort; }

  // The operator CLI against one agent.
  RunResult cli(const RunningAgent& a, std::vector<std::string> args) {
    std::vector<std::string> argv = {agent_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--url", a.url(""), "--token-file", dir_.file("token")});
    return run_process(argv, 10s);
  }

  static json get_json(const RunningAgent& a, const std::string& path) {
    HttpResult r = http_get(a.url(path));
    return r.status == 200 ? json::parse(r.body, nullptr, false) : json();
  }

  // The incidents of that id on the agent's /status.json (open ones).
  static int on_status_page(const RunningAgent& a, const std::string& id) {
    json page = get_json(a, "/status.json");
    int n = 0;
    if (page.is_object() && page["open_incidents"].is_array()) {
      for (const auto& inc : page["open_incidents"]) n += inc.value("id", "") == id ? 1 : 0;
    }
    return n;
  }

  // Starts a fourth agent that watches another service only: it has no copy
  // of the outage of "svc".
  void start_hub(const Service& other) {
    const std::string path = dir_.file("hub.toml");
    write_text_file(path, common_config("hub") + R"(
[[target]]
name = "other"
address = "127.0.0.1"
group = "core"
site = "dc"
  [[target.probe]]
  kind = "tcp"
  name = "tcp"
  port = )" + std::to_string(other.port()) + "\n");
    RunningAgent a = start_agent(path);
    ASSERT_NE(a.port, 0) << a.process->stderr_text();
    ASSERT_TRUE(wait_until([&] { return a.metric("nightshift_fleet_connected") == 1.0; }, 10s))
        << a.process->stderr_text();
    names_.push_back("hub");
    agents_.push_back(std::move(a));
  }
};

TEST_F(FleetOpsTest, AckThroughAnotherAgentStopsTheOwnersRenotifyAndNotesReachEveryAgent) {
  notify_extra_ = "renotify_every = \"1s\"";
  ASSERT_NO_FATAL_FAILURE(start_agents());
  service_.stop();
  ASSERT_TRUE(receiver_.wait_accepted(1, 10s)) << logs();
  ASSERT_TRUE(wait_until([&] { return !with_event(receiver_, "renotify").empty(); }, 5s))
      << "unacknowledged, the owner renotifies every second\n" << logs();
  const auto declared = with_event(receiver_, "declared");
  ASSERT_EQ(declared.size(), 1u) << logs();
  const std::string id = incident_of(declared[0]);
  const int owner_index = owner();
  ASSERT_GE(owner_index, 0) << logs();
  const RunningAgent& other = agents_[static_cast<std::size_t>((owner_index + 1) % 3)];
  const RunningAgent& third = agents_[static_cast<std::size_t>((owner_index + 2) % 3)];

  // Acknowledged through an agent that does not page: the owner stops.
  RunResult acked = cli(other, {"ack", id, "--by", "alice"});
  ASSERT_TRUE(acked.status && acked.status->exited && acked.status->code == 0) << acked.err << acked.out << logs();
  EXPECT_NE(acked.out.find(id), std::string::npos) << "the CLI names the fleet id: " << acked.out;
  EXPECT_NE(acked.out.find("acknowledged"), std::string::npos) << acked.out;
  ASSERT_TRUE(wait_until([&] { return !with_event(receiver_, "acknowledged").empty(); }, 10s)) << logs();
  std::this_thread::sleep_for(500ms);  // a renotify already in the outbox may still land
  const std::size_t renotified = with_event(receiver_, "renotify").size();
  std::this_thread::sleep_for(3s);  // three renotify periods
  EXPECT_EQ(with_event(receiver_, "renotify").size(), renotified) << "acknowledged: no more renotify\n" << logs();
  const auto acks = with_event(receiver_, "acknowledged");
  ASSERT_EQ(acks.size(), 1u) << "the ack is announced once, by the owner\n" << logs();
  EXPECT_EQ(incident_of(acks[0]), id);
  EXPECT_EQ(acks[0].headers.at("idempotency-key").rfind(id + ":acknowledged:", 0), 0u) << acks[0].headers.at("idempotency-key");
  for (const auto& a : agents_) {
    ASSERT_TRUE(wait_until([&] { return get_json(a, "/api/v1/incidents/" + id).value("status", "") == "acknowledged"; }, 5s))
        << "every agent's API shows the ack\n" << logs();
    EXPECT_EQ(get_json(a, "/api/v1/incidents/" + id).value("acknowledged_by", ""), "alice");
  }

  // A public update through the third agent: one notification, on every status page.
  const std::string update = "A fibre cut at the lab; the carrier is on site";
  RunResult noted = cli(third, {"note", id, update, "--public", "--by", "bob"});
  ASSERT_TRUE(noted.status && noted.status->exited && noted.status->code == 0) << noted.err << logs();
  ASSERT_TRUE(wait_until([&] { return !with_event(receiver_, "note").empty(); }, 10s)) << logs();
  for (const auto& a : agents_) {
    ASSERT_TRUE(wait_until([&] { return get_json(a, "/status.json").dump().find(update) != std::string::npos; }, 5s))
        << get_json(a, "/status.json").dump() << "\n" << logs();
    EXPECT_EQ(on_status_page(a, id), 1) << "once, under the fleet id: " << get_json(a, "/status.json").dump();
    json inc = get_json(a, "/api/v1/incidents/" + id);
    int notes = 0;
    for (const auto& e : inc["timeline"]) notes += e.value("text", "") == update ? 1 : 0;
    EXPECT_EQ(notes, 1) << "applied once on every copy: " << inc.dump();
  }
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(with_event(receiver_, "note").size(), 1u) << logs();
}

TEST_F(FleetOpsTest, ResolveThroughAnAgentWithoutACopySendsOneResolvePage) {
  Service other;
  ASSERT_TRUE(other.ok());
  ASSERT_NO_FATAL_FAILURE(start_agents());
  ASSERT_NO_FATAL_FAILURE(start_hub(other));
  service_.stop();
  ASSERT_TRUE(receiver_.wait_accepted(1, 10s)) << logs();
  const auto declared = with_event(receiver_, "declared");
  ASSERT_EQ(declared.size(), 1u) << logs();
  const std::string id = incident_of(declared[0]);
  RunningAgent& hub = agents_.back();

  // Every agent's status page shows the outage once, the hub's too (it watches none of it).
  for (const auto& a : agents_) {
    ASSERT_TRUE(wait_until([&] { return on_status_page(a, id) == 1; }, 5s)) << get_json(a, "/status.json").dump();
  }
  const std::string hub_page = get_json(hub, "/status.json").dump();
  EXPECT_EQ(hub_page.find("\"svc\""), std::string::npos) << "public: no target names " << hub_page;
  EXPECT_EQ(hub_page.find("target_down"), std::string::npos) << "public: no rule names " << hub_page;
  json listed = get_json(hub, "/api/v1/incidents?status=open");
  ASSERT_EQ(listed.size(), 1u) << listed.dump();
  EXPECT_EQ(listed[0].value("id", ""), id);
  EXPECT_TRUE(listed[0]["local_id"].is_null()) << "the hub has no copy: " << listed[0].dump();

  // Resolved by hand through the hub while the service is still down: the
  // owner sends the resolve page, once; every copy is resolved.
  RunResult resolved = cli(hub, {"resolve", id, "--by", "carol"});
  ASSERT_TRUE(resolved.status && resolved.status->exited && resolved.status->code == 0) << resolved.err << logs();
  ASSERT_TRUE(wait_until([&] { return !with_event(receiver_, "resolved").empty(); }, 10s)) << logs();
  std::this_thread::sleep_for(3s);
  const auto pages = with_event(receiver_, "resolved");
  ASSERT_EQ(pages.size(), 1u) << logs();
  EXPECT_EQ(incident_of(pages[0]), id);
  EXPECT_EQ(pages[0].headers.at("idempotency-key").rfind(id + ":resolved:", 0), 0u);
  EXPECT_EQ(with_event(receiver_, "declared").size(), 1u) << logs();
  for (const auto& a : agents_) {
    EXPECT_EQ(get_json(a, "/api/v1/incidents/" + id).value("status", ""), "resolved") << logs();
    EXPECT_EQ(on_status_page(a, id), 0);
  }
  // Asked again anywhere: refused as one agent refuses it.
  RunResult again = cli(agents_[0], {"resolve", id, "--by", "dave"});
  ASSERT_TRUE(again.status && again.status->exited);
  EXPECT_NE(again.status->code, 0) << again.out;
}

}  // namespace
}  // namespace nightshift::test
