// Faults the agent exists to survive, on the whole binary: its state disk
// filling up in the middle of an outage, replies lost on the way back
// (asymmetric drop), and a link flapping every two seconds.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "store/store.h"
#include "tests/support/agent_run.h"
#include "tests/support/http_get.h"
#include "tests/support/process.h"
#include "tests/support/prom_text.h"
#include "tests/support/receiver.h"
#include "tests/support/temp_dir.h"
#include "tests/support/testnet.h"
#include "tests/support/wait.h"

namespace nightshift::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

const std::string kNetnsError = enter_private_netns();

// A private mount namespace, so the small file systems a test mounts are
// invisible outside and vanish with the process. Before any thread starts.
std::string enter_private_mount_ns() {
  if (::unshare(CLONE_NEWNS) != 0) return std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
  if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return std::string("make / private: ") + std::strerror(errno);
  }
  return "";
}
const std::string kMountError = enter_private_mount_ns();

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1)) ++n;
  return n;
}

// Fills the file system holding `dir` until it refuses (ENOSPC); bounded.
bool fill(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  static const char zeros[64 * 1024] = {};
  bool full = false;
  for (int i = 0; i < 100000 && !full; ++i) {  // at most 6 GiB: far beyond the test's tmpfs
    if (::write(fd, zeros, sizeof zeros) < 0) full = errno == ENOSPC;
  }
  // Small writes too, so not even a page is left.
  for (int i = 0; i < 100000 && ::write(fd, zeros, 512) > 0; ++i) {
  }
  ::close(fd);
  return full;
}

class FaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
    ASSERT_FALSE(agent_binary().empty()) << "NIGHTSHIFT_BINARY is set by ctest";
    peer_ = std::make_unique<PeerHost>();
    ASSERT_TRUE(peer_->ok()) << peer_->error();
  }

  void write_config(const std::string& extra) {
    write_text_file(dir_.file("agent.toml"), R"([agent]
name = "faults"
listen = "127.0.0.1:0"
state_dir = ")" + state_dir() + R"("

[defaults]
interval = "500ms"
timeout = "400ms"

[notify]
first_backoff = "200ms"
max_backoff = "1s"

[[sink]]
name = "hook"
type = "webhook"
url = ")" + receiver_.url("/hook") + R"("
timeout = "1s"

[[target]]
name = "edge-host"
address = "198.51.100.2"
group = "edge"
  [[target.probe]]
  kind = "icmp"
)" + extra);
  }

  std::string state_dir() const { return dir_.path() + "/state"; }

  // The test owns the process; agent_ keeps its port for metric().
  std::unique_ptr<Process> start_agent() {
    agent_ = test::start_agent(dir_.file("agent.toml"));
    EXPECT_NE(agent_.port, 0) << agent_.process->stderr_text();
    return std::move(agent_.process);
  }

  std::optional<double> metric(const std::string& name, const PromLabels& labels = {}) const {
    return agent_.metric(name, labels);
  }

  std::vector<std::string> events_received() {
    std::vector<std::string> out;
    for (const auto& r : receiver_.accepted()) {
      auto j = nlohmann::json::parse(r.body, nullptr, false);
      if (j.is_object()) out.push_back(j.value("event", ""));
    }
    return out;
  }

  TempDir dir_;
  Receiver receiver_;
  std::unique_ptr<PeerHost> peer_;
  RunningAgent agent_;
};

TEST_F(FaultsTest, FullStateDiskKeepsProbingAndPagingAndRecovers) {
  ASSERT_TRUE(kMountError.empty()) << kMountError;
  ASSERT_EQ(::mkdir(state_dir().c_str(), 0700), 0);
  ASSERT_EQ(::mount("tmpfs", state_dir().c_str(), "tmpfs", 0, "size=2m"), 0) << std::strerror(errno);
  // The built-in target_down, with a short clear_for to keep the test short.
  write_config("\n[[rule]]\nname = \"target_down\"\ncondition = \"consecutive_failures >= 3 or confirmed_down\"\n"
               "clear_for = \"2s\"\n");
  auto agent = start_agent();
  ASSERT_TRUE(wait_until([&] { return metric("probe_success", {{"target", "edge-host"}}) == 1.0; }, 5s))
      << agent->stderr_text();

  ASSERT_TRUE(fill(state_dir() + "/filler")) << "the tmpfs never filled up";
  ASSERT_TRUE(peer_->set_link(false)) << peer_->error();
  // Declared and paged although nothing can be written.
  ASSERT_TRUE(receiver_.wait_accepted(1, 10s)) << agent->stderr_text();
  EXPECT_EQ(events_received().at(0), "declared");
  EXPECT_THAT(agent->stderr_text(), HasSubstr("msg=\"cannot write notifications to the outbox; delivering them from memory\""));
  EXPECT_THAT(agent->stderr_text(), HasSubstr("database or disk is full"));
  // The path trace's finding is noted (and fails to be saved) a little later.
  ASSERT_TRUE(agent->wait_for_stderr("msg=\"incident diagnosis\"", 10s)) << agent->stderr_text();
  // Probing goes on.
  const double sent = metric("nightshift_probes_sent_total", {{"kind", "icmp"}}).value_or(0);
  ASSERT_TRUE(wait_until([&] { return metric("nightshift_probes_sent_total", {{"kind", "icmp"}}).value_or(0) >= sent + 3; }, 5s));

  const double errors = metric("nightshift_store_errors_total").value_or(0);
  EXPECT_GE(errors, 1.0);
  // Space returns, then the link: the resolution is stored and paged.
  ASSERT_EQ(::unlink((state_dir() + "/filler").c_str()), 0);
  ASSERT_TRUE(peer_->set_link(true)) << peer_->error();
  ASSERT_TRUE(wait_until([&] {
    auto e = events_received();
    return !e.empty() && e.back() == "resolved";
  }, 15s)) << agent->stderr_text();
  EXPECT_EQ(metric("nightshift_store_errors_total").value_or(0), errors) << "no store error once space returned";
  ASSERT_TRUE(agent->send_signal(SIGTERM));
  ASSERT_TRUE(agent->wait_for(10s));

  // The resolved incident is in the state database.
  auto store = Store::open(state_dir());
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto incidents = store->store->load(3600);
  ASSERT_TRUE(incidents.ok()) << incidents.error().message;
  ASSERT_EQ(incidents->size(), 1u);
  EXPECT_EQ(incidents->at(0).status, IncidentStatus::kResolved);
  store->store.reset();
  ::umount(state_dir().c_str());
}

TEST_F(FaultsTest, RepliesDroppedOnTheWayBackAreAnOutage) {
  write_config("");
  auto agent = start_agent();
  ASSERT_TRUE(wait_until([&] { return metric("probe_success", {{"target", "edge-host"}}) == 1.0; }, 5s))
      << agent->stderr_text();
  // Requests reach the host; its echo replies are dropped on the way out.
  ASSERT_EQ(peer_->exec_in_peer({"nft", "add", "table", "inet", "asym"}), 0);
  ASSERT_EQ(peer_->exec_in_peer({"nft", "add", "chain", "inet", "asym", "out",
                                 "{ type filter hook output priority 0 ; }"}),
            0);
  ASSERT_EQ(peer_->exec_in_peer({"nft", "add", "rule", "inet", "asym", "out", "icmp", "type", "echo-reply", "drop"}), 0);
  ASSERT_TRUE(agent->wait_for_stderr("msg=\"incident declared\"", 10s)) << agent->stderr_text();
  ASSERT_TRUE(receiver_.wait_accepted(1, 5s));
  // The host itself still counts the requests it received.
  std::string out;
  peer_->exec_in_peer({"nft", "list", "chain", "inet", "asym", "out"}, &out);
  EXPECT_THAT(out, HasSubstr("echo-reply"));
  ASSERT_EQ(peer_->exec_in_peer({"nft", "delete", "table", "inet", "asym"}), 0);
}

TEST_F(FaultsTest, LinkFlappingEveryTwoSecondsPagesOnce) {
  write_config("");
  auto agent = start_agent();
  ASSERT_TRUE(wait_until([&] { return metric("probe_success", {{"target", "edge-host"}}) == 1.0; }, 5s))
      << agent->stderr_text();
  // 8 cycles of 2 s down, 2 s up: shorter than clear_for (30 s), so the
  // outage never looks over and is never paged again.
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(peer_->set_link(false)) << peer_->error();
    std::this_thread::sleep_for(2s);
    ASSERT_TRUE(peer_->set_link(true)) << peer_->error();
    std::this_thread::sleep_for(2s);
  }
  const std::string log = agent->stderr_text();
  EXPECT_EQ(count(log, "msg=\"incident declared\""), 1u) << log;
  EXPECT_EQ(count(log, "msg=\"incident reopened\""), 0u) << log;
  EXPECT_EQ(count(log, "msg=\"incident resolved\""), 0u) << log;
  ASSERT_TRUE(receiver_.wait_accepted(1, 5s));
  std::size_t pages = 0;
  for (const auto& e : events_received()) pages += (e == "declared" || e == "reopened") ? 1 : 0;
  EXPECT_EQ(pages, 1u);
}

TEST_F(FaultsTest, SiteBehindItsRouterGoingDarkIsOneIncidentAndOnePage) {
  // The router (198.51.100.2) and two hosts behind it on the same test host;
  // a canary on loopback stays up, so this is an outage, not isolation.
  ASSERT_TRUE(peer_->add_peer_address("198.51.100.4/32")) << peer_->error();
  ASSERT_TRUE(peer_->add_peer_address("198.51.100.5/32")) << peer_->error();
  write_config(R"(  [target.labels]
  role = "router"

[[target]]
name = "host-a"
address = "198.51.100.4"
group = "edge"
depends_on = "edge-host"
  [[target.probe]]
  kind = "icmp"

[[target]]
name = "host-b"
address = "198.51.100.5"
group = "edge"
depends_on = "edge-host"
  [[target.probe]]
  kind = "icmp"

[[target]]
name = "canary"
address = "127.0.0.1"
group = "self"
canary = true
  [[target.probe]]
  kind = "icmp"
)");
  auto agent = start_agent();
  ASSERT_TRUE(wait_until([&] {
    return metric("probe_success", {{"target", "host-a"}}) == 1.0 && metric("probe_success", {{"target", "host-b"}}) == 1.0 &&
           metric("probe_success", {{"target", "edge-host"}}) == 1.0;
  }, 5s)) << agent->stderr_text();
  ASSERT_TRUE(peer_->set_link(false)) << peer_->error();
  ASSERT_TRUE(receiver_.wait_accepted(1, 10s)) << agent->stderr_text();
  // Whichever failed first, the incident is named after the router and what
  // is behind it; the hosts join it in one batched update (batch: 5 s).
  ASSERT_TRUE(agent->wait_for_stderr("title=\"edge-host unreachable (2 targets behind it)\"", 10s))
      << agent->stderr_text();
  ASSERT_TRUE(agent->wait_for_stderr("impacted=3", 10s)) << agent->stderr_text();
  // The log line comes just before the gauges move: poll briefly.
  EXPECT_TRUE(wait_until([&] { return metric("nightshift_incidents_open", {{"severity", "critical"}}) == 1.0; }, 2s));
  const std::string log = agent->stderr_text();
  EXPECT_EQ(count(log, "msg=\"incident declared\""), 1u) << log;
  EXPECT_THAT(log, ::testing::Not(HasSubstr("isolated")));
  std::size_t pages = 0;
  for (const auto& e : events_received()) pages += (e == "declared" || e == "reopened") ? 1 : 0;
  EXPECT_EQ(pages, 1u);
}

TEST_F(FaultsTest, LatencySpikeThroughNfqueueRaisesALatencyIncident) {
  // Replies held 250 ms by an NFQUEUE program in the host's namespace: slow,
  // not lost (the timeout is 400 ms), so a latency rule fires and target_down does not.
  write_config(R"(
[[rule]]
name = "slow"
condition = "rtt_p95 > 150ms"
window = "2s"
for = "1s"
clear_for = "1s"
severity = "warning"
)");
  auto agent = start_agent();
  ASSERT_TRUE(wait_until([&] { return metric("probe_success", {{"target", "edge-host"}}) == 1.0; }, 5s))
      << agent->stderr_text();
  Process delay({"ip", "netns", "exec", peer_->name(), NIGHTSHIFT_NFQ_DELAY, "7", "250", "60"});
  ASSERT_TRUE(delay.wait_for_stderr("ready", 5s)) << delay.stderr_text();
  // This kernel's nftables has no `queue` expression; iptables' NFQUEUE target works.
  const std::vector<std::string> rule = {"OUTPUT", "-p", "icmp", "--icmp-type", "echo-reply", "-j", "NFQUEUE",
                                         "--queue-num", "7", "--queue-bypass"};
  auto iptables = [&](const std::string& op) {
    std::vector<std::string> argv = {"iptables", op};
    argv.insert(argv.end(), rule.begin(), rule.end());
    return peer_->exec_in_peer(argv);
  };
  ASSERT_EQ(iptables("-A"), 0);
  ASSERT_TRUE(agent->wait_for_stderr("title=\"edge-host slow\"", 10s)) << agent->stderr_text();
  EXPECT_THAT(agent->stderr_text(), HasSubstr("msg=\"incident declared\""));
  EXPECT_THAT(agent->stderr_text(), ::testing::Not(HasSubstr("rule=target_down")));
  EXPECT_EQ(metric("probe_success", {{"target", "edge-host"}}), 1.0);
  // The spike ends: the incident resolves.
  ASSERT_EQ(iptables("-D"), 0);
  ASSERT_TRUE(agent->wait_for_stderr("msg=\"incident resolved\"", 10s)) << agent->stderr_text();
  delay.kill_and_wait();
}

}  // namespace
}  // namespace nightshift::test
