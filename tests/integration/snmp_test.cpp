// The SNMP probe against a real snmpd (Debian's) that each test starts on
// 127.0.0.1 (or inside a test namespace) with its own config, persistent
// directory and pid file: a v2c community and a v3 authPriv user (SHA + AES).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "tests/support/agent_run.h"
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

const std::string kNetnsError = enter_private_netns();
const char kCommunity[] = "c0mm-7fa2-secret";
const char kAuth[] = "authpass-5e1d";
const char kPriv[] = "privpass-9b3c";

class SnmpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
    NIGHTSHIFT_REQUIRE_PROGRAM("/usr/sbin/snmpd");
    ASSERT_FALSE(agent_binary().empty());
    write_text_file(dir_.file("snmpd.conf"), std::string("rocommunity ") + kCommunity + " 127.0.0.1\nrocommunity " +
                                            kCommunity + " 198.51.100.0/24\ncreateUser nsuser SHA \"" + kAuth +
                                            "\" AES \"" + kPriv + "\"\nrouser nsuser priv\n");
    write_text_file(dir_.file("community"), std::string(kCommunity) + "\n");
    write_text_file(dir_.file("auth"), std::string(kAuth) + "\n");
    write_text_file(dir_.file("priv"), std::string(kPriv) + "\n");
    write_text_file(dir_.file("wrong"), "wrong-password-1\n");
  }

  // snmpd on address:port, in this namespace or a peer's.
  void start_snmpd(const std::string& address = "127.0.0.1", const std::string& netns = "") {
    std::vector<std::string> argv;
    if (!netns.empty()) argv = {"ip", "netns", "exec", netns};
    argv.insert(argv.end(), {"snmpd", "-f", "-Lo", "-C", "-c", dir_.file("snmpd.conf"), "-p", dir_.file("snmpd.pid"),
                             "--persistentDir=" + dir_.path() + "/snmp-persist",
                             "udp:" + address + ":" + std::to_string(port_)});
    snmpd_ = std::make_unique<Process>(argv);
    ASSERT_TRUE(wait_until([&] {
      RunResult r = run_process(snmp_cmd("snmpget", address, {"1.3.6.1.2.1.1.3.0"}), 5s);
      return r.status && r.status->code == 0;
    }, 10s)) << snmpd_->stderr_text() << snmpd_->stdout_text();
  }

  std::vector<std::string> snmp_cmd(const std::string& tool, const std::string& address,
                                    std::vector<std::string> oids) {
    std::vector<std::string> argv = {tool, "-v2c", "-c", kCommunity, "-On", "-Oq", "-t", "1", "-r", "0",
                                     address + ":" + std::to_string(port_)};
    argv.insert(argv.end(), oids.begin(), oids.end());
    return argv;
  }

  std::string probe(const std::string& name, const std::string& address, const std::string& credentials,
                    const std::string& extra = "") {
    return "[[target]]\nname = \"" + name + "\"\naddress = \"" + address + "\"\ngroup = \"net\"\n  [[target.probe]]\n  kind = \"snmp\"\n  port = " +
           std::to_string(port_) + "\n" + credentials + extra + "\n";
  }
  std::string v2c() const { return "  community_file = \"" + dir_.file("community") + "\"\n"; }
  std::string v3(const std::string& auth_file) const {
    return "  version = \"3\"\n  username = \"nsuser\"\n  security_level = \"authPriv\"\n  auth_protocol = \"SHA\"\n"
           "  auth_password_file = \"" + auth_file + "\"\n  priv_protocol = \"AES\"\n  priv_password_file = \"" +
           dir_.file("priv") + "\"\n";
  }

  void start_agent(const std::string& targets) {
    write_text_file(dir_.file("agent.toml"), "[agent]\nname = \"snmp-test\"\nlisten = \"127.0.0.1:0\"\nstate_dir = \"" +
                                            dir_.path() + "/state\"\n[defaults]\ninterval = \"1s\"\ntimeout = \"800ms\"\n" +
                                            "[[rule]]\nname = \"device_rebooted\"\ncondition = \"rebooted > 0\"\nseverity = \"warning\"\n" +
                                            "[[rule]]\nname = \"interface_down\"\ncondition = \"interfaces_down > 0\"\n" +
                                            targets);
    RunningAgent agent = nightshift::test::start_agent(dir_.file("agent.toml"));
    agent_ = std::move(agent.process);
    agent_port_ = agent.port;
    ASSERT_NE(agent_port_, 0) << agent_->stderr_text();
  }

  PromText scrape() { return parse_prom_text(http_get("http://127.0.0.1:" + std::to_string(agent_port_) + "/metrics").body); }
  std::optional<double> metric(const std::string& name, const PromLabels& labels) { return scrape().value(name, labels); }

  TempDir dir_;
  int port_ = 20000 + static_cast<int>(::getpid() % 20000);
  std::unique_ptr<Process> snmpd_;
  std::unique_ptr<Process> agent_;
  int agent_port_ = 0;
};

TEST_F(SnmpTest, V2cValuesEqualWhatSnmpbulkwalkReturns) {
  start_snmpd();
  start_agent(probe("host", "127.0.0.1", v2c()));
  ASSERT_TRUE(wait_until([&] { return metric("probe_success", {{"target", "host"}}) == 1.0; }, 8s)) << agent_->stderr_text();
  const PromText m = scrape();
  // ifName, ifOperStatus, ifAdminStatus and ifHighSpeed per ifIndex, as snmpbulkwalk sees them.
  RunResult names = run_process(snmp_cmd("snmpbulkwalk", "127.0.0.1", {"1.3.6.1.2.1.31.1.1.1.1"}), 10s);
  ASSERT_EQ(names.status->code, 0) << names.err;
  std::map<std::string, std::string> if_name;  // ifIndex -> ifName
  std::istringstream lines(names.out);
  for (std::string line; std::getline(lines, line);) {
    std::smatch match;
    if (std::regex_match(line, match, std::regex(R"re(\.1\.3\.6\.1\.2\.1\.31\.1\.1\.1\.1\.(\d+) "?([^"]*)"?)re"))) {
      if_name[match[1]] = match[2];
    }
  }
  ASSERT_FALSE(if_name.empty()) << names.out;
  for (const char* column : {"8", "7"}) {
    RunResult walk = run_process(snmp_cmd("snmpbulkwalk", "127.0.0.1", {std::string("1.3.6.1.2.1.2.2.1.") + column}), 10s);
    std::istringstream rows(walk.out);
    int compared = 0;
    for (std::string line; std::getline(rows, line);) {
      std::smatch match;
      if (!std::regex_match(line, match, std::regex(R"(\.1\.3\.6\.1\.2\.1\.2\.2\.1\.\d+\.(\d+) (\d+))"))) continue;
      const std::string name = std::string(column) == "8" ? "ifOperStatus" : "ifAdminStatus";
      EXPECT_EQ(m.value(name, {{"target", "host"}, {"ifIndex", match[1]}, {"ifName", if_name[match[1]]}}),
                std::stod(match[2]))
          << name << " of ifIndex " << match[1];
      ++compared;
    }
    EXPECT_GT(compared, 0);
  }
  RunResult uptime = run_process(snmp_cmd("snmpget", "127.0.0.1", {"1.3.6.1.2.1.1.3.0"}), 5s);
  const double ticks = std::stod(uptime.out.substr(uptime.out.find(' ') + 1));
  EXPECT_NEAR(m.value("probe_snmp_uptime_seconds", {{"target", "host"}}).value_or(-1), ticks / 100.0, 3.0);
  EXPECT_EQ(m.value("probe_snmp_interfaces", {{"target", "host"}}), static_cast<double>(if_name.size()));
  // The community never leaves the agent.
  EXPECT_EQ(http_get("http://127.0.0.1:" + std::to_string(agent_port_) + "/metrics").body.find(kCommunity), std::string::npos);
  EXPECT_THAT(agent_->stderr_text(), ::testing::Not(HasSubstr(kCommunity)));
}

TEST_F(SnmpTest, V3AuthPrivPollsAndAWrongPasswordIsAnAuthFailure) {
  start_snmpd();
  start_agent(probe("v3", "127.0.0.1", v3(dir_.file("auth"))));
  ASSERT_TRUE(wait_until([&] { return metric("probe_success", {{"target", "v3"}}) == 1.0; }, 8s)) << agent_->stderr_text();
  EXPECT_GT(metric("probe_snmp_uptime_seconds", {{"target", "v3"}}).value_or(0), 0.0);
  agent_->kill_and_wait();
  // Another agent process (Net-SNMP caches v3 keys per process) with the wrong password.
  start_agent(probe("v3bad", "127.0.0.1", v3(dir_.file("wrong"))));
  ASSERT_TRUE(wait_until([&] {
    return metric("nightshift_probe_failure_reason", {{"target", "v3bad"}, {"reason", "auth_failure"}}) == 1.0;
  }, 8s)) << agent_->stderr_text();
  EXPECT_THAT(agent_->stderr_text(), ::testing::Not(HasSubstr("wrong-password-1")));
  EXPECT_THAT(agent_->stderr_text(), ::testing::Not(HasSubstr(kPriv)));
}

TEST_F(SnmpTest, WrongCommunityIsATimeoutThatSaysSoNotAHang) {
  start_snmpd();
  write_text_file(dir_.file("bad-community"), "not-the-community\n");
  start_agent(probe("badcomm", "127.0.0.1", "  community_file = \"" + dir_.file("bad-community") + "\"\n"));
  ASSERT_TRUE(wait_until([&] {
    return metric("nightshift_probe_failure_reason", {{"target", "badcomm"}, {"reason", "timeout"}}) == 1.0;
  }, 6s)) << agent_->stderr_text();
  EXPECT_LE(metric("probe_duration_seconds", {{"target", "badcomm"}}).value_or(99), 0.9) << "bounded by the probe timeout";
}

TEST_F(SnmpTest, StoppedIsATimeoutAndARestartIsAReboot) {
  start_snmpd();
  start_agent(probe("dev", "127.0.0.1", v2c()));
  ASSERT_TRUE(wait_until([&] { return metric("probe_snmp_uptime_seconds", {{"target", "dev"}}) >= 2.0; }, 10s))
      << agent_->stderr_text();
  snmpd_->send_signal(SIGTERM);
  ASSERT_TRUE(snmpd_->wait_for(5s));
  ASSERT_TRUE(wait_until([&] {
    return metric("nightshift_probe_failure_reason", {{"target", "dev"}, {"reason", "timeout"}}) == 1.0;
  }, 6s)) << agent_->stderr_text();
  start_snmpd();  // a fresh snmpd: sysUpTime starts again from 0
  ASSERT_TRUE(agent_->wait_for_stderr("rule=device_rebooted", 8s)) << agent_->stderr_text();
  EXPECT_THAT(agent_->stderr_text(), HasSubstr("msg=\"alert firing\" rule=device_rebooted"));
}

TEST_F(SnmpTest, InterfaceLosingItsCarrierInANamespaceIsReportedDown) {
  PeerHost peer;
  ASSERT_TRUE(peer.ok()) << peer.error();
  // Inside the test host: a veth pair snmp0 <-> snmp1, both up.
  ASSERT_EQ(peer.exec_in_peer({"ip", "link", "add", "snmp0", "type", "veth", "peer", "name", "snmp1"}), 0);
  ASSERT_EQ(peer.exec_in_peer({"ip", "link", "set", "snmp0", "up"}), 0);
  ASSERT_EQ(peer.exec_in_peer({"ip", "link", "set", "snmp1", "up"}), 0);
  start_snmpd(PeerHost::kPeer, peer.name());
  start_agent(probe("router", PeerHost::kPeer, v2c(), "  interfaces = [\"snmp*\"]\n"));
  ASSERT_TRUE(wait_until([&] {
    return metric("ifOperStatus", {{"target", "router"}, {"ifName", "snmp0"}}) == 1.0;
  }, 8s)) << agent_->stderr_text();
  EXPECT_EQ(metric("probe_snmp_interfaces", {{"target", "router"}}), 2.0) << "only snmp0 and snmp1 are selected";
  // Its peer goes down: snmp0 is admin up, oper down — an outage. snmp1 is admin down: intent.
  ASSERT_EQ(peer.exec_in_peer({"ip", "link", "set", "snmp1", "down"}), 0);
  ASSERT_TRUE(wait_until([&] { return metric("probe_snmp_interfaces_down", {{"target", "router"}}) == 1.0; }, 8s))
      << agent_->stderr_text();
  EXPECT_NE(metric("ifOperStatus", {{"target", "router"}, {"ifName", "snmp0"}}), 1.0);
  EXPECT_EQ(metric("ifAdminStatus", {{"target", "router"}, {"ifName", "snmp1"}}), 2.0);
  ASSERT_TRUE(agent_->wait_for_stderr("rule=interface_down", 5s)) << agent_->stderr_text();
}

}  // namespace
}  // namespace nightshift::test
