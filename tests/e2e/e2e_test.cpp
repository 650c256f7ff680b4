// End to end with the real neighbours: the agent, a real Prometheus (Debian's)
// scraping it every second with the shipped rules, a real Alertmanager the
// agent posts incidents to, a real snmpd for the SNMP panels, and a test host
// in a network namespace whose link the test cuts. Then every PromQL
// expression of every shipped dashboard must return data from that
// Prometheus: no empty or broken panel.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "tests/support/ports.h"
#include "tests/support/agent_run.h"
#include "tests/support/http_get.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/testnet.h"
#include "tests/support/wait.h"

namespace nightshift::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const std::string kNetnsError = enter_private_netns();

std::string source(const std::string& path) { return std::string(NIGHTSHIFT_TEST_SOURCE_DIR) + "/" + path; }
std::string escape(const std::string& s) {
  char* e = curl_easy_escape(nullptr, s.c_str(), static_cast<int>(s.size()));
  std::string out = e;
  curl_free(e);
  return out;
}

TEST(EndToEndTest, OutageReachesPrometheusAndAlertmanagerAndEveryPanelHasData) {
  NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
  ASSERT_FALSE(agent_binary().empty());
  for (const char* tool : {"/usr/bin/prometheus", "/usr/bin/prometheus-alertmanager", "/usr/sbin/snmpd"}) {
    NIGHTSHIFT_REQUIRE_PROGRAM(tool);
  }
  TempDir dir;
  PeerHost peer;
  ASSERT_TRUE(peer.ok()) << peer.error();
  const int agent_port = free_port(), prom_port = free_port(), am_port = free_port(), snmp_port = free_port();

  write_text_file(dir.file("snmpd.conf"), "rocommunity e2e-community 127.0.0.1\n");
  Process snmpd({"snmpd", "-f", "-Lo", "-C", "-c", dir.file("snmpd.conf"), "-p", dir.file("snmpd.pid"),
                 "--persistentDir=" + dir.path() + "/snmp", "udp:127.0.0.1:" + std::to_string(snmp_port)});
  write_text_file(dir.file("am.yml"), "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n");
  Process am({"/usr/bin/prometheus-alertmanager", "--config.file=" + dir.file("am.yml"),
              "--storage.path=" + dir.path() + "/am", "--web.listen-address=127.0.0.1:" + std::to_string(am_port),
              "--cluster.listen-address="});
  const std::string am_url = "http://127.0.0.1:" + std::to_string(am_port);

  write_text_file(dir.file("agent.toml"), R"([agent]
name = "e2e-agent"
site = "lab"
listen = "127.0.0.1:)" + std::to_string(agent_port) + R"("
state_dir = ")" + dir.path() + R"(/state"
[defaults]
interval = "1s"
timeout = "500ms"
[notify]
alertmanager_refresh = "5s"
[[sink]]
name = "alertmanager"
type = "alertmanager"
url = ")" + am_url + R"("
[[target]]
name = "edge-host"
address = "198.51.100.2"
group = "edge"
  [[target.probe]]
  kind = "icmp"
[[target]]
name = "self"
address = "127.0.0.1"
group = "agent"
canary = true
  [[target.probe]]
  kind = "icmp"
  [[target.probe]]
  kind = "tcp"
  port = )" + std::to_string(agent_port) + R"(
  [[target.probe]]
  kind = "snmp"
  port = )" + std::to_string(snmp_port) + R"(
  community = "e2e-community"
)");
  Process agent({agent_binary(), "run", "-c", dir.file("agent.toml")});
  ASSERT_TRUE(agent.wait_for_stderr("msg=listening", 5s)) << agent.stderr_text();

  // Prometheus with the shipped rules, every second.
  std::filesystem::create_directories(dir.path() + "/rules");
  std::filesystem::copy_file(source("deploy/prometheus/rules/nightshift.yml"), dir.path() + "/rules/nightshift.yml");
  write_text_file(dir.file("prometheus.yml"), "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - " +
                                             dir.path() + "/rules/*.yml\nscrape_configs:\n  - job_name: nightshift\n    static_configs:\n      - targets: [\"127.0.0.1:" +
                                             std::to_string(agent_port) + "\"]\n");
  Process prom({"/usr/bin/prometheus", "--config.file=" + dir.file("prometheus.yml"),
                "--storage.tsdb.path=" + dir.path() + "/tsdb", "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)});
  const std::string prom_url = "http://127.0.0.1:" + std::to_string(prom_port);
  auto query = [&](const std::string& q) {
    HttpResult r = http_get(prom_url + "/api/v1/query?query=" + escape(q), 5s);
    return json::parse(r.body, nullptr, false);
  };
  ASSERT_TRUE(wait_until([&] { return http_get(prom_url + "/-/ready").status == 200; }, 30s)) << prom.stderr_text();
  ASSERT_TRUE(wait_until([&] {
    auto j = query("probe_success{target=\"edge-host\"}");
    return j.is_object() && !j["data"]["result"].empty() && j["data"]["result"][0]["value"][1] == "1";
  }, 30s)) << "Prometheus never saw the agent's series\n" << prom.stderr_text();

  // The outage: the test host's link goes down.
  ASSERT_TRUE(peer.set_link(false)) << peer.error();
  ASSERT_TRUE(wait_until([&] {
    HttpResult r = http_get(am_url + "/api/v2/alerts");
    auto j = json::parse(r.body, nullptr, false);
    if (!j.is_array()) return false;
    for (const auto& a : j) {
      if (a["labels"].value("alertname", "") == "NightshiftIncident" && a["labels"].value("agent", "") == "e2e-agent") {
        return true;
      }
    }
    return false;
  }, 20s)) << "the incident never reached Alertmanager\n" << agent.stderr_text();
  ASSERT_TRUE(wait_until([&] {
    auto j = query("probe_success{target=\"edge-host\"}");
    return j.is_object() && !j["data"]["result"].empty() && j["data"]["result"][0]["value"][1] == "0";
  }, 10s));

  // Every panel of every dashboard returns data. Template variables become
  // the values of this run; range-vector windows a size that holds samples.
  const std::map<std::string, std::string> vars = {
      {"$agent", "e2e-agent"}, {"$site", ".*"}, {"$group", ".*"}, {"$target", "self"},
      {"$__rate_interval", "30s"}, {"$__interval", "5s"}, {"$__range", "5m"}};
  std::vector<std::pair<std::string, std::string>> panels;  // (dashboard/title, expr)
  for (const auto& entry : std::filesystem::directory_iterator(source("dashboards"))) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path());
    json d = json::parse(in);
    for (const auto& p : d["panels"]) {
      for (const auto& t : p["targets"]) {
        std::string expr = t["expr"];
        for (const auto& [k, v] : vars) expr = std::regex_replace(expr, std::regex("\\" + k + "\\b"), v);
        std::string title = d["title"].get<std::string>() + " / " + p["title"].get<std::string>();
        // The target detail's ICMP panels are about a target with replies: edge-host is down now.
        panels.emplace_back(title, expr);
      }
    }
  }
  ASSERT_GE(panels.size(), 20u);
  std::vector<std::string> empty;
  // Rates need two scrapes inside their window, and keep-alives need a repost: give it time.
  const bool all = wait_until([&] {
    empty.clear();
    for (const auto& [title, expr] : panels) {
      auto j = query(expr);
      if (!j.is_object() || j.value("status", "") != "success") {
        empty.push_back(title + ": broken query: " + expr + " -> " + (j.is_object() ? j.dump() : "no answer"));
      } else if (j["data"]["result"].empty()) {
        empty.push_back(title + ": no data: " + expr);
      }
    }
    return empty.empty();
  }, 60s, 2s);
  std::string report;
  for (const auto& e : empty) report += e + "\n";
  EXPECT_TRUE(all) << report;

  // The shipped recording rules evaluate on real data.
  EXPECT_FALSE(query("nightshift:target_down:by_agent")["data"]["result"].empty());
  EXPECT_FALSE(query("nightshift:targets_up:ratio_by_site_group")["data"]["result"].empty());
}

}  // namespace
}  // namespace nightshift::test
