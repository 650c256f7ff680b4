// Paging end to end, with real endpoints on loopback: the agent binary, a
// service it probes over TCP that the test stops and starts, a real HTTP
// receiver (tests/support/receiver.h) that checks payloads and signatures and
// can fail on purpose, and a real Alertmanager (Debian's
// prometheus-alertmanager) started by the test.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "notify/sinks.h"
#include "tests/support/agent_run.h"
#include "tests/support/http_get.h"
#include "tests/support/loopback_service.h"
#include "tests/support/process.h"
#include "tests/support/prom_text.h"
#include "tests/support/receiver.h"
#include "tests/support/require.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace nightshift::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

const char kSecret[] = "whsec-7f3a9c1e-never-in-logs";

class NotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(agent_binary().empty()) << "NIGHTSHIFT_BINARY is set by ctest";
    ASSERT_TRUE(service_.ok());
    write_text_file(dir_.file("webhook.secret"), std::string(kSecret) + "\n");
  }

  void write_config(const std::string& sinks) {
    write_text_file(dir_.file("agent.toml"), R"([agent]
name = "pager-test"
listen = "127.0.0.1:0"
state_dir = ")" + dir_.path() + R"(/state"

[defaults]
interval = "300ms"
timeout = "200ms"

[[rule]]
name = "target_down"
condition = "consecutive_failures >= 3"
clear_for = "900ms"

[incidents]
batch = "1s"

[notify]
first_backoff = "200ms"
max_backoff = "800ms"
alertmanager_refresh = "2s"

[[target]]
name = "svc"
address = "127.0.0.1"
group = "edge"
site = "lab"
  [[target.probe]]
  kind = "tcp"
  port = )" + std::to_string(service_.port()) + "\n\n" + sinks);
  }

  std::string webhook_sink(const std::string& timeout = "1s") {
    return "[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"" + receiver_.url("/hook") +
           "\"\nsecret_file = \"" + dir_.file("webhook.secret") + "\"\ntimeout = \"" + timeout + "\"\n";
  }

  // The test owns the process; agent_ keeps its port for metric().
  std::unique_ptr<Process> start_agent() {
    agent_ = test::start_agent(dir_.file("agent.toml"));
    EXPECT_NE(agent_.port, 0) << agent_.process->stderr_text();
    return std::move(agent_.process);
  }

  std::optional<double> metric(const std::string& name, const PromLabels& labels = {}) const {
    return agent_.metric(name, labels);
  }

  static std::string event_of(const ReceivedRequest& r) {
    auto j = json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("event") ? j["event"].get<std::string>() : "";
  }

  TempDir dir_;
  LoopbackService service_;  // the service the agent probes; stop() makes connects refused
  Receiver receiver_;
  RunningAgent agent_;
};

TEST_F(NotifyTest, OutageReachesTheWebhookSignedAndVersionedThenItsResolution) {
  write_config(webhook_sink());
  auto agent = start_agent();
  ASSERT_TRUE(wait_until([&] { return metric("probe_success", {{"target", "svc"}}) == 1.0; }, 5s))
      << agent->stderr_text();
  const auto cut = std::chrono::steady_clock::now();
  service_.stop();
  ASSERT_TRUE(receiver_.wait_accepted(1, 5s)) << agent->stderr_text();
  const auto paged_after = std::chrono::steady_clock::now() - cut;
  EXPECT_LT(paged_after, 2500ms) << "3 failed probes 300 ms apart, then one POST";

  const ReceivedRequest declared = receiver_.accepted().at(0);
  EXPECT_EQ(declared.method, "POST");
  EXPECT_EQ(declared.path, "/hook");
  EXPECT_EQ(declared.headers.at("content-type"), "application/json");
  // The signature covers the timestamp and the exact body.
  const std::string ts = declared.headers.at("x-nightshift-timestamp");
  EXPECT_EQ(declared.headers.at("x-nightshift-signature"), "sha256=" + hmac_sha256_hex(kSecret, ts + "." + declared.body));
  EXPECT_NE(declared.headers.at("x-nightshift-signature"), "sha256=" + hmac_sha256_hex("wrong", ts + "." + declared.body));
  const json j = json::parse(declared.body);
  EXPECT_EQ(j["version"], "1");
  EXPECT_EQ(j["event"], "declared");
  EXPECT_EQ(j["agent"], "pager-test");
  EXPECT_EQ(j["idempotency_key"], declared.headers.at("idempotency-key"));
  EXPECT_EQ(j["incident"]["severity"], "critical");
  EXPECT_EQ(j["incident"]["status"], "declared");
  EXPECT_EQ(j["incident"]["scope"]["site"], "lab");
  EXPECT_EQ(j["incident"]["impacted"][0]["target"], "svc");
  EXPECT_THAT(j["status_url"].get<std::string>(), HasSubstr("/status#" + j["incident"]["id"].get<std::string>()));
  for (const char* key : {"started_at", "declared_at", "resolved_at", "next_update_due"}) {
    EXPECT_TRUE(j["incident"].contains(key)) << key;
  }

  service_.start();
  ASSERT_TRUE(wait_until([&] {
    for (const auto& r : receiver_.accepted()) {
      if (event_of(r) == "resolved") return true;
    }
    return false;
  }, 8s)) << agent->stderr_text();
  // In order, and the resolution is about the same incident.
  const auto accepted = receiver_.accepted();
  EXPECT_EQ(event_of(accepted.front()), "declared");
  EXPECT_EQ(event_of(accepted.back()), "resolved");
  EXPECT_EQ(json::parse(accepted.back().body)["incident"]["id"], j["incident"]["id"]);
  EXPECT_EQ(json::parse(accepted.back().body)["incident"]["status"], "resolved");

  EXPECT_TRUE(wait_until([&] { return metric("nightshift_notifications_total", {{"sink", "hook"}, {"result", "delivered"}}) >= 2.0; }, 3s));
  EXPECT_EQ(metric("nightshift_outbox_depth", {{"sink", "hook"}}).value_or(-1), 0.0);
  // The secret is nowhere the operator or a scraper can see.
  EXPECT_THAT(agent->stderr_text(), Not(HasSubstr(kSecret)));
  EXPECT_THAT(http_get(agent_.url("/metrics")).body, Not(HasSubstr(kSecret)));
}

TEST_F(NotifyTest, ErrorsAndTimeoutsAreRetriedInOrderWithStableKeysUntilDelivered) {
  write_config(webhook_sink("500ms"));
  receiver_.answer(500);
  auto agent = start_agent();
  ASSERT_TRUE(wait_until([&] { return metric("probe_success", {{"target", "svc"}}) == 1.0; }, 5s));
  service_.stop();
  ASSERT_TRUE(wait_until([&] { return receiver_.requests().size() >= 3; }, 8s)) << agent->stderr_text();
  // Now the endpoint hangs past the sink's 500 ms timeout (curl reports the time it
  // actually waited: 500 ms and a few more on a busy machine).
  receiver_.answer(503, 1500ms);
  ASSERT_TRUE(agent->wait_for_stderr("Operation timed out after 5", 8s)) << agent->stderr_text();
  // The outage ends while the endpoint is still failing: the resolution queues behind.
  service_.start();
  ASSERT_TRUE(agent->wait_for_stderr("msg=\"incident resolved\"", 8s)) << agent->stderr_text();
  receiver_.answer(200);
  ASSERT_TRUE(wait_until([&] {
    auto a = receiver_.accepted();
    return !a.empty() && event_of(a.back()) == "resolved";
  }, 15s)) << agent->stderr_text();

  // Every attempt of one notification carried the same key; the trigger was
  // accepted before the resolution was ever sent.
  std::map<std::string, std::string> key_of_event;
  std::vector<std::string> order;
  for (const auto& r : receiver_.requests()) {
    const std::string ev = event_of(r);
    const std::string key = r.headers.at("idempotency-key");
    auto [it, inserted] = key_of_event.emplace(ev, key);
    EXPECT_EQ(it->second, key) << ev << " changed its key between attempts";
    if (order.empty() || order.back() != ev) order.push_back(ev);
  }
  ASSERT_GE(order.size(), 2u);
  EXPECT_EQ(order.front(), "declared");
  EXPECT_EQ(order.back(), "resolved");
  bool declared_accepted = false;
  for (const auto& r : receiver_.requests()) {
    if (event_of(r) == "declared" && r.answered == 200) declared_accepted = true;
    if (event_of(r) == "resolved") {
      EXPECT_TRUE(declared_accepted) << "a resolve overtook its trigger";
    }
  }
  EXPECT_GE(metric("nightshift_notifications_total", {{"sink", "hook"}, {"result", "retry"}}).value_or(0), 3.0);
  EXPECT_EQ(metric("nightshift_notifications_total", {{"sink", "hook"}, {"result", "dead_letter"}}).value_or(0), 0.0);
}

TEST_F(NotifyTest, KilledWithUndeliveredNotificationsSendsThemAfterRestart) {
  write_config(webhook_sink());
  receiver_.answer(503);
  auto agent = start_agent();
  ASSERT_TRUE(wait_until([&] { return metric("probe_success", {{"target", "svc"}}) == 1.0; }, 5s));
  service_.stop();
  ASSERT_TRUE(wait_until([&] { return !receiver_.requests().empty(); }, 8s)) << agent->stderr_text();
  const std::string key_before = receiver_.requests().front().headers.at("idempotency-key");
  agent->kill_and_wait();  // kill -9 with the trigger undelivered

  receiver_.answer(200);
  agent = start_agent();
  ASSERT_TRUE(receiver_.wait_accepted(1, 8s)) << agent->stderr_text();
  const auto accepted = receiver_.accepted();
  EXPECT_EQ(accepted.front().headers.at("idempotency-key"), key_before) << "the same notification, not a new one";
  EXPECT_EQ(event_of(accepted.front()), "declared");
  // The outage goes on across the restart: no second declaration.
  std::this_thread::sleep_for(1500ms);  // several probe intervals for a wrong second page to show up
  std::size_t declared = 0;
  for (const auto& r : receiver_.accepted()) declared += event_of(r) == "declared" ? 1 : 0;
  EXPECT_EQ(declared, 1u);
}

TEST_F(NotifyTest, DeadEndpointIsRetriedWithoutBlockingTheAgent) {
  // Nothing listens on this port: every attempt is refused.
  write_config("[[sink]]\nname = \"gone\"\ntype = \"slack\"\nurl = \"http://127.0.0.1:" + std::to_string(free_loopback_port()) +
               "/services/T000/B000/XXXXSECRETPATH\"\n");
  auto agent = start_agent();
  ASSERT_TRUE(wait_until([&] { return metric("probe_success", {{"target", "svc"}}) == 1.0; }, 5s));
  service_.stop();
  ASSERT_TRUE(wait_until([&] { return metric("nightshift_notifications_total", {{"sink", "gone"}, {"result", "retry"}}) >= 3.0; }, 8s))
      << agent->stderr_text();
  EXPECT_TRUE(wait_until([&] { return metric("nightshift_outbox_depth", {{"sink", "gone"}}) == 1.0; }, 4s));
  // Probing goes on, and the URL (a Slack webhook's path is its secret) is never logged.
  EXPECT_EQ(metric("probe_success", {{"target", "svc"}}), 0.0);
  EXPECT_THAT(agent->stderr_text(), HasSubstr("sink=gone"));
  EXPECT_THAT(agent->stderr_text(), Not(HasSubstr("XXXXSECRETPATH")));
}

// A real Alertmanager on loopback.
class AlertmanagerTest : public NotifyTest {
 protected:
  void SetUp() override {
    NotifyTest::SetUp();
    NIGHTSHIFT_REQUIRE_PROGRAM("/usr/bin/prometheus-alertmanager");
    am_port_ = free_loopback_port();
    write_text_file(dir_.file("am.yml"), "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n");
    am_ = std::make_unique<Process>(std::vector<std::string>{
        "/usr/bin/prometheus-alertmanager", "--config.file=" + dir_.file("am.yml"),
        "--storage.path=" + dir_.path() + "/am-data", "--web.listen-address=127.0.0.1:" + std::to_string(am_port_),
        "--cluster.listen-address="});
    ASSERT_TRUE(wait_until([&] { return http_get(am_url("/-/ready")).status == 200; }, 15s)) << am_->stderr_text();
  }
  std::string am_url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(am_port_) + path; }

  json alerts() {
    HttpResult r = http_get(am_url("/api/v2/alerts"));
    auto j = json::parse(r.body, nullptr, false);
    return j.is_array() ? j : json::array();
  }

  int am_port_ = 0;
  std::unique_ptr<Process> am_;
};

TEST_F(AlertmanagerTest, IncidentShowsAsAnActiveAlertAndResolves) {
  write_config("[[sink]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"" + am_url("") + "\"\n");
  auto agent = start_agent();
  ASSERT_TRUE(wait_until([&] { return metric("probe_success", {{"target", "svc"}}) == 1.0; }, 5s));
  service_.stop();
  json alert;
  ASSERT_TRUE(wait_until([&] {
    for (const auto& a : alerts()) {
      if (a["labels"].value("alertname", "") == "NightshiftIncident") {
        alert = a;
        return true;
      }
    }
    return false;
  }, 8s)) << agent->stderr_text();
  EXPECT_EQ(alert["status"]["state"], "active");
  EXPECT_EQ(alert["labels"]["severity"], "critical");
  EXPECT_EQ(alert["labels"]["site"], "lab");
  EXPECT_EQ(alert["labels"]["agent"], "pager-test");
  EXPECT_THAT(alert["labels"]["incident"].get<std::string>(), HasSubstr("NS-"));
  EXPECT_EQ(alert["annotations"]["summary"], "svc: service tcp_" + std::to_string(service_.port()) + " down");
  EXPECT_THAT(alert["generatorURL"].get<std::string>(), HasSubstr("/status#NS-"));
  // Kept alive: the keep-alive re-posts it (every 2 s in this config).
  ASSERT_TRUE(wait_until([&] { return metric("nightshift_notifications_total", {{"sink", "am"}, {"result", "delivered"}}) >= 2.0; }, 6s));

  service_.start();
  ASSERT_TRUE(wait_until([&] {
    for (const auto& a : alerts()) {
      if (a["labels"].value("alertname", "") == "NightshiftIncident") return false;
    }
    return true;
  }, 10s)) << "resolved alerts leave Alertmanager's active list\n" << agent->stderr_text();
}

}  // namespace
}  // namespace nightshift::test
