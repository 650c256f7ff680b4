// Drop-in proof for blackbox_exporter and snmp_exporter users (issue 21): the
// community alert rules (tests/e2e/testdata/community_rules.yml) run in a
// real Prometheus (Debian's) against the real exporters (Debian's
// prometheus-blackbox-exporter and prometheus-snmp-exporter) AND against
// nightshift through deploy/prometheus/compat/prometheus.yml, on the same
// targets: loopback, a closed port, a TLS server whose certificate expires in
// 10 days, a real snmpd, an SNMP port nobody answers, and a namespaced host
// whose link the test cuts. Then:
//   - every rule fires on nightshift for exactly the instances it fires for
//     on the exporter (and the ones that should fire do);
//   - every series the exporters' jobs have, nightshift's jobs have with the
//     same name, instance and label set, and no more.
// The table (rule, fires on the exporter, fires on nightshift) is printed and,
// with NIGHTSHIFT_COMPAT_TABLE=path, written for docs/compatibility.md.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
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
std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
std::string escape(const std::string& s) {
  char* e = curl_easy_escape(nullptr, s.c_str(), static_cast<int>(s.size()));
  std::string out = e;
  curl_free(e);
  return out;
}
std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

// Which side a job scrapes: the exporters' copies of the jobs end in "-exporter".
bool exporter_job(const std::string& job) { return job.size() > 9 && job.rfind("-exporter") == job.size() - 9; }
std::string base_job(const std::string& job) { return exporter_job(job) ? job.substr(0, job.size() - 9) : job; }

// The community rules with `for` cut to a second: the expressions stay as published.
std::string fast_rules() {
  return std::regex_replace(read_file(source("tests/e2e/testdata/community_rules.yml")),
                            std::regex(R"(for: \d+m)"), "for: 1s");
}

// Rules that, on these targets, must fire (on both sides). BlackboxSlowProbe:
// the cut host's probes time out after 1.5 s, and a minute's average passes
// 1 s about 40 s after the cut.
const std::set<std::string> kMustFire = {"BlackboxProbeFailed", "BlackboxSlowProbe",
                                         "BlackboxSslCertificateWillExpireSoon", "SnmpTargetDown",
                                         "SnmpInterfaceDown", "SnmpDeviceRestarted"};

TEST(CompatTest, CommunityRulesFireAlikeAndSeriesMatchTheRealExporters) {
  NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
  ASSERT_FALSE(agent_binary().empty());
  for (const char* tool : {"/usr/bin/prometheus", "/usr/bin/prometheus-blackbox-exporter",
                           "/usr/bin/prometheus-snmp-exporter", "/usr/sbin/snmpd", "/usr/bin/openssl"}) {
    ASSERT_TRUE(std::filesystem::exists(tool)) << tool << " is installed by scripts/install-deps.sh";
  }
  TempDir dir;
  PeerHost peer;
  ASSERT_TRUE(peer.ok()) << peer.error();
  const int agent_port = free_port(), prom_port = free_port(), bb_port = free_port(), se_port = free_port();
  const int tls_port = free_port(), snmp_port = free_port(SOCK_DGRAM), dead_snmp_port = free_port(SOCK_DGRAM);
  const std::string lo = "127.0.0.1:";

  // A TLS server with a certificate this test makes, valid 10 days: the
  // community's "expires soon" warning (3 to 20 days) must fire on both.
  RunResult cert = run_process({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                                "-nodes", "-keyout", dir.file("key.pem"), "-out", dir.file("cert.pem"), "-days", "10",
                                "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"},
                               20s);
  ASSERT_TRUE(cert.status && cert.status->exited && cert.status->code == 0) << cert.err;
  // socat forks per connection: `openssl s_server` serves one at a time, and
  // under load one slow handshake stalled every probe of both sides for 120 s.
  Process tls({"socat", "OPENSSL-LISTEN:" + std::to_string(tls_port) + ",bind=127.0.0.1,reuseaddr,fork,verify=0,cert=" +
                            dir.file("cert.pem") + ",key=" + dir.file("key.pem"),
               "SYSTEM:cat"});

  write_text_file(dir.file("snmpd.conf"), "rocommunity public 127.0.0.1\n");
  Process snmpd({"snmpd", "-f", "-Lo", "-C", "-c", dir.file("snmpd.conf"), "-p", dir.file("snmpd.pid"),
                 "--persistentDir=" + dir.path() + "/snmp", "udp:127.0.0.1:" + std::to_string(snmp_port)});

  write_text_file(dir.file("blackbox.yml"), R"(modules:
  icmp:
    prober: icmp
    timeout: 1500ms
  tcp_connect:
    prober: tcp
    timeout: 1500ms
  tcp_tls:
    prober: tcp
    timeout: 1500ms
    tcp:
      tls: true
      tls_config:
        ca_file: )" + dir.file("cert.pem") + R"(
        server_name: localhost
)");
  Process blackbox({"/usr/bin/prometheus-blackbox-exporter", "--config.file=" + dir.file("blackbox.yml"),
                    "--web.listen-address=" + lo + std::to_string(bb_port)});
  Process snmp_exporter({"/usr/bin/prometheus-snmp-exporter",
                         "--config.file=" + source("tests/e2e/testdata/snmp_exporter_if_mib.yml"),
                         "--web.listen-address=" + lo + std::to_string(se_port)});

  // The same targets in nightshift, probed on the same cadence.
  write_text_file(dir.file("agent.toml"), R"([agent]
name = "compat"
listen = "127.0.0.1:)" + std::to_string(agent_port) + R"("
state_dir = ")" + dir.path() + R"(/state"
[defaults]
interval = "2s"
timeout = "1500ms"
[[target]]
name = "loopback"
address = "127.0.0.1"
  [[target.probe]]
  kind = "icmp"
  [[target.probe]]
  kind = "tcp"
  port = )" + std::to_string(agent_port) + R"(
  [[target.probe]]
  kind = "tcp"
  port = )" + std::to_string(tls_port) + R"(
  tls = true
  server_name = "localhost"
  ca_file = ")" + dir.file("cert.pem") + R"("
  [[target.probe]]
  kind = "snmp"
  port = )" + std::to_string(snmp_port) + R"(
  community = "public"
  timeout = "1s"
[[target]]
name = "closed-port"
address = "127.0.0.1"
  [[target.probe]]
  kind = "tcp"
  port = 1
[[target]]
name = "dead-snmp"
address = "127.0.0.1"
  [[target.probe]]
  kind = "snmp"
  port = )" + std::to_string(dead_snmp_port) + R"(
  community = "public"
  timeout = "1s"
  retries = 0
[[target]]
name = "peer"
address = "198.51.100.2"
  [[target.probe]]
  kind = "icmp"
)");
  Process agent({agent_binary(), "run", "-c", dir.file("agent.toml")});
  ASSERT_TRUE(agent.wait_for_stderr("msg=listening", 10s)) << agent.stderr_text();

  // Prometheus: the shipped compat jobs pointed at nightshift, and the same
  // jobs pointed at the exporters (named *-exporter). Same target files.
  const std::string shipped = read_file(source("deploy/prometheus/compat/prometheus.yml"));
  ASSERT_NE(shipped.find("scrape_configs:\n"), std::string::npos);
  std::string jobs = shipped.substr(shipped.find("scrape_configs:\n") + 16);
  std::string ours = replace_all(jobs, "127.0.0.1:9650", lo + std::to_string(agent_port));
  std::string theirs = std::regex_replace(jobs, std::regex(R"(job_name: (\S+))"), "job_name: $1-exporter");
  theirs = std::regex_replace(theirs, std::regex(R"(127\.0\.0\.1:9650(  # .*was blackbox))"),
                              lo + std::to_string(bb_port) + "$1");
  theirs = std::regex_replace(theirs, std::regex(R"(127\.0\.0\.1:9650(  # .*was snmp))"),
                              lo + std::to_string(se_port) + "$1");
  ASSERT_EQ(theirs.find("127.0.0.1:9650"), std::string::npos) << "every shipped job says which exporter it replaces";
  std::filesystem::create_directories(dir.path() + "/targets");
  write_text_file(dir.file("targets/blackbox-icmp.yml"), "- targets: [\"127.0.0.1\", \"198.51.100.2\"]\n");
  write_text_file(dir.file("targets/blackbox-tcp.yml"),
                  "- targets: [\"127.0.0.1:" + std::to_string(agent_port) + "\", \"127.0.0.1:1\"]\n");
  write_text_file(dir.file("targets/blackbox-tls.yml"), "- targets: [\"127.0.0.1:" + std::to_string(tls_port) + "\"]\n");
  write_text_file(dir.file("targets/snmp.yml"), "- targets: [\"127.0.0.1:" + std::to_string(snmp_port) +
                                                   "\", \"127.0.0.1:" + std::to_string(dead_snmp_port) + "\"]\n");
  write_text_file(dir.file("rules.yml"), fast_rules());
  write_text_file(dir.file("prometheus.yml"), "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n"
                                              "  evaluation_interval: 1s\nrule_files:\n  - " + dir.file("rules.yml") +
                                              "\nscrape_configs:\n" + ours + theirs);
  Process prom({"/usr/bin/prometheus", "--config.file=" + dir.file("prometheus.yml"),
                "--storage.tsdb.path=" + dir.path() + "/tsdb", "--web.listen-address=" + lo + std::to_string(prom_port)});
  const std::string prom_url = "http://127.0.0.1:" + std::to_string(prom_port);
  auto api = [&](const std::string& path) {
    HttpResult r = http_get(prom_url + path, 5s);
    return json::parse(r.body, nullptr, false);
  };
  ASSERT_TRUE(wait_until([&] { return http_get(prom_url + "/-/ready").status == 200; }, 30s)) << prom.stderr_text();
  // Every job up or, for the dead device, down: all scraped at least once on both sides.
  ASSERT_TRUE(wait_until([&] {
    auto j = api("/api/v1/query?query=" + escape("count(up)"));
    return j.is_object() && !j["data"]["result"].empty() && j["data"]["result"][0]["value"][1] == "14";
  }, 30s)) << "not every target scraped\n" << api("/api/v1/targets").dump(1) << agent.stderr_text();

  // The outage: the peer loses its link (carrier gone: packets vanish, and
  // snmpd's view of this side's veth goes oper down while admin up).
  ASSERT_TRUE(peer.set_peer_link(false)) << peer.error();

  // Firing alerts: rule -> side -> instances (plus ifIndex where the rule is per interface).
  using Fired = std::map<std::string, std::map<bool, std::set<std::string>>>;
  auto firing = [&] {
    Fired out;
    auto j = api("/api/v1/alerts");
    if (!j.is_object()) return out;
    for (const auto& a : j["data"]["alerts"]) {
      if (a.value("state", "") != "firing") continue;
      const auto& l = a["labels"];
      std::string what = l.value("instance", "?");
      if (l.contains("ifIndex")) what += " " + l.value("ifDescr", "") + "#" + l.value("ifIndex", "");
      out[l.value("alertname", "")][exporter_job(l.value("job", ""))].insert(what);
    }
    return out;
  };
  Fired fired;
  const bool alike = wait_until([&] {
    fired = firing();
    for (const auto& rule : kMustFire) {
      if (fired[rule][true].empty()) return false;
    }
    for (auto& [rule, sides] : fired) {
      if (sides[true] != sides[false]) return false;
    }
    return true;
  }, 120s, 1s);

  const std::string rules_text = read_file(source("tests/e2e/testdata/community_rules.yml"));
  std::vector<std::string> rule_names;
  static const std::regex kAlert(R"(alert: (\w+))");
  for (std::sregex_iterator it(rules_text.begin(), rules_text.end(), kAlert), end; it != end; ++it) {
    rule_names.push_back((*it)[1]);
  }
  ASSERT_EQ(rule_names.size(), 16u);
  auto list = [](const std::set<std::string>& s) {
    if (s.empty()) return std::string("no");
    std::string out;
    for (const auto& x : s) out += (out.empty() ? "" : ", ") + x;
    return "yes: " + out;
  };
  std::string table = "| rule | fires on blackbox_exporter / snmp_exporter | fires on nightshift |\n|---|---|---|\n";
  for (const auto& rule : rule_names) {
    auto& sides = fired[rule];
    table += "| " + rule + " | " + list(sides[true]) + " | " + list(sides[false]) + " |\n";
    EXPECT_EQ(sides[true], sides[false]) << rule << ": fires differently";
    if (kMustFire.count(rule)) {
      EXPECT_FALSE(sides[false].empty()) << rule << " must fire on these targets";
    }
  }
  EXPECT_TRUE(alike) << "the alerts never fired alike within 120 s";
  std::cout << table;
  if (const char* out = std::getenv("NIGHTSHIFT_COMPAT_TABLE")) write_text_file(out, table);

  // Series and label sets, per job: name, instance and every label but job.
  auto series = api("/api/v1/series?match[]=" + escape("{job=~\".+\"}") + "&start=" +
                    std::to_string(std::time(nullptr) - 600));
  ASSERT_TRUE(series.is_object() && series["status"] == "success") << series.dump();
  std::map<std::string, std::map<bool, std::set<std::string>>> by_job;  // base job -> side -> keys
  for (const auto& s : series["data"]) {
    const std::string job = s.value("job", "");
    std::string key;
    for (const auto& [k, v] : s.items()) {
      if (k != "job") key += k + "=" + v.get<std::string>() + ",";
    }
    by_job[base_job(job)][exporter_job(job)].insert(key);
  }
  ASSERT_EQ(by_job.size(), 4u);
  for (auto& [job, sides] : by_job) {
    SCOPED_TRACE(job);
    EXPECT_GT(sides[true].size(), 5u);
    std::string missing, extra;
    for (const auto& k : sides[true]) {
      if (!sides[false].count(k)) missing += "  " + k + "\n";
    }
    for (const auto& k : sides[false]) {
      if (!sides[true].count(k)) extra += "  " + k + "\n";
    }
    EXPECT_TRUE(missing.empty()) << "series the exporter has and nightshift lacks:\n" << missing;
    EXPECT_TRUE(extra.empty()) << "series nightshift has and the exporter does not:\n" << extra;
  }

  // Values that do not move between two scrapes of the same target are equal.
  for (const char* name : {"probe_ip_addr_hash", "probe_ip_protocol", "probe_icmp_reply_hop_limit",
                           "probe_failed_due_to_regex", "probe_ssl_earliest_cert_expiry",
                           "probe_ssl_last_chain_expiry_timestamp_seconds", "probe_tls_version_info", "ifMtu",
                           "ifIndex", "ifAdminStatus", "ifType_info", "ifPhysAddress", "ifNumber", "ifHighSpeed"}) {
    SCOPED_TRACE(name);
    auto j = api("/api/v1/query?query=" + escape(name));
    ASSERT_TRUE(j.is_object() && j["status"] == "success") << j.dump();
    std::map<std::string, std::map<bool, std::string>> values;  // series without job -> side -> value
    for (const auto& r : j["data"]["result"]) {
      std::string key;
      std::string job;
      for (const auto& [k, v] : r["metric"].items()) {
        if (k == "job") job = v.get<std::string>();
        else key += k + "=" + v.get<std::string>() + ",";
      }
      values[base_job(job) + " " + key][exporter_job(job)] = r["value"][1];
    }
    EXPECT_FALSE(values.empty());
    for (auto& [key, sides] : values) EXPECT_EQ(sides[true], sides[false]) << key;
  }
}

}  // namespace
}  // namespace nightshift::test
