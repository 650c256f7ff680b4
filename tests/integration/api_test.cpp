// The operator API and the status page on the agent binary: a TCP service the
// test stops makes an incident; the test then acknowledges, annotates and
// resolves it through the API and the CLI, checks auth and input errors, and
// sees every change in /status.json. A silence keeps a second outage from
// paging (a real receiver counts the pages) while it is still declared.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/support/agent_run.h"
#include "tests/support/http_get.h"
#include "tests/support/loopback_service.h"
#include "tests/support/process.h"
#include "tests/support/receiver.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace nightshift::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using ::testing::HasSubstr;

const char kToken[] = "op-token-4d1f8a2b9c7e6f50";

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(agent_binary().empty()) << "NIGHTSHIFT_BINARY is set by ctest";
    ASSERT_TRUE(service_.ok());
    write_text_file(dir_.file("token"), std::string(kToken) + "\n");
    write_text_file(dir_.file("agent.toml"), R"([agent]
name = "api-test"
listen = "127.0.0.1:0"
state_dir = ")" + dir_.path() + R"(/state"

[defaults]
interval = "300ms"
timeout = "200ms"

[[rule]]
name = "target_down"
condition = "consecutive_failures >= 3"
clear_for = "600ms"

[incidents]
batch = "1s"

[api]
token_file = ")" + dir_.file("token") + R"("

[status]
export_dir = ")" + dir_.path() + R"("

[[sink]]
name = "hook"
type = "webhook"
url = ")" + receiver_.url("/hook") + R"("

[[target]]
name = "shop"
address = "127.0.0.1"
group = "web"
site = "ams1"
  [[target.probe]]
  kind = "tcp"
  port = )" + std::to_string(service_.port()) + "\n");
    RunningAgent agent = start_agent(dir_.file("agent.toml"));
    agent_ = std::move(agent.process);
    port_ = agent.port;
    ASSERT_NE(port_, 0) << agent_->stderr_text();
  }

  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  // curl with headers, for what http_request cannot say.
  RunResult curl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"curl", "-s", "-m", "5", "-w", "\n%{http_code}"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, 10s);
  }
  static int code_of(const RunResult& r) { return std::stoi(r.out.substr(r.out.rfind('\n') + 1)); }
  static json body_of(const RunResult& r) { return json::parse(r.out.substr(0, r.out.rfind('\n')), nullptr, false); }

  RunResult post(const std::string& path, const std::string& body, const std::string& token = kToken) {
    std::vector<std::string> args = {"-X", "POST", url(path), "-H", "Content-Type: application/json", "--data-binary", body};
    if (!token.empty()) {
      args.push_back("-H");
      args.push_back("Authorization: Bearer " + token);
    }
    return curl(args);
  }

  RunResult cli(std::vector<std::string> args) {
    std::vector<std::string> argv = {agent_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--url", url(""), "--token-file", dir_.file("token")});
    return run_process(argv, 20s);
  }

  json status_json() { return json::parse(http_get(url("/status.json")).body, nullptr, false); }

  std::string open_incident() {
    std::string id;
    EXPECT_TRUE(wait_until([&] {
      auto j = status_json();
      if (!j.is_object() || j["open_incidents"].empty()) return false;
      id = j["open_incidents"][0]["id"];
      return true;
    }, 8s)) << agent_->stderr_text();
    return id;
  }

  TempDir dir_;
  Receiver receiver_;
  LoopbackService service_;  // the service the agent probes; stop() makes it "down"
  std::unique_ptr<Process> agent_;
  int port_ = 0;
};

TEST_F(ApiTest, AuthNoTokenWrongTokenRightToken) {
  service_.stop();
  const std::string id = open_incident();
  ASSERT_FALSE(id.empty());
  // Reads are private by default when a token is configured.
  EXPECT_EQ(code_of(curl({url("/api/v1/incidents")})), 401);
  RunResult none = curl({"-i", url("/api/v1/incidents")});
  EXPECT_THAT(none.out, HasSubstr("WWW-Authenticate: Bearer realm=\"nightshift\""));
  EXPECT_EQ(code_of(curl({url("/api/v1/incidents"), "-H", "Authorization: Bearer wrong-token-0000000"})), 403);
  EXPECT_EQ(code_of(curl({url("/api/v1/incidents"), "-H", "Authorization: Basic b3A6eA=="})), 403);
  RunResult ok = curl({url("/api/v1/incidents"), "-H", std::string("Authorization: Bearer ") + kToken});
  EXPECT_EQ(code_of(ok), 200);
  EXPECT_EQ(body_of(ok)[0]["id"], id);
  // Mutations likewise.
  EXPECT_EQ(code_of(post("/api/v1/incidents/" + id + "/ack", "{}", "")), 401);
  EXPECT_EQ(code_of(post("/api/v1/incidents/" + id + "/ack", "{}", "nope-nope-nope-nope")), 403);
  EXPECT_EQ(code_of(post("/api/v1/incidents/" + id + "/ack", R"({"by":"alice"})")), 200);
  // The status page stays public.
  EXPECT_EQ(http_get(url("/status")).status, 200);
}

TEST_F(ApiTest, BadInputGetsAClearFourHundredAndChangesNothing) {
  service_.stop();
  const std::string id = open_incident();
  ASSERT_FALSE(id.empty());
  RunResult malformed = post("/api/v1/incidents/" + id + "/notes", R"({"text": "x", )");
  EXPECT_EQ(code_of(malformed), 400);
  EXPECT_THAT(body_of(malformed)["error"].get<std::string>(), HasSubstr("malformed JSON at byte"));
  EXPECT_EQ(code_of(post("/api/v1/incidents/" + id + "/notes", R"({"text": 5})")), 400);
  EXPECT_EQ(body_of(post("/api/v1/incidents/" + id + "/notes", R"({"txt": "x"})"))["error"], "unknown field \"txt\"");
  EXPECT_EQ(code_of(post("/api/v1/incidents/" + id + "/notes", "[1,2]")), 400);
  EXPECT_EQ(code_of(post("/api/v1/incidents/NS-00000000-9999/ack", "{}")), 404);
  EXPECT_EQ(code_of(post("/api/v1/incidents/" + id + "/explode", "{}")), 404);
  EXPECT_EQ(code_of(post("/api/v1/silences", R"({"matchers": ["site"], "duration_seconds": 60})")), 400);
  EXPECT_EQ(code_of(curl({"-X", "POST", url("/api/v1/incidents/" + id + "/ack"), "-H", "Content-Type: text/plain", "-H",
                          std::string("Authorization: Bearer ") + kToken, "--data-binary", "ack!"})),
            415);
  // Oversized: refused before it is read.
  const std::string big = R"({"text": ")" + std::string(100 * 1024, 'x') + R"("})";
  write_text_file(dir_.file("big.json"), big);
  EXPECT_EQ(code_of(curl({"-X", "POST", url("/api/v1/incidents/" + id + "/notes"), "-H", "Content-Type: application/json",
                          "-H", std::string("Authorization: Bearer ") + kToken, "--data-binary", "@" + dir_.file("big.json")})),
            413);
  EXPECT_EQ(code_of(curl({"-X", "DELETE", url("/api/v1/incidents")})), 405);
  // Nothing of that reached the incident.
  RunResult got = curl({url("/api/v1/incidents/" + id), "-H", std::string("Authorization: Bearer ") + kToken});
  const json incident = body_of(got);
  for (const auto& e : incident["timeline"]) EXPECT_NE(e["kind"], "note");
  EXPECT_TRUE(agent_->running());
}

TEST_F(ApiTest, AckNotesAndResolveShowInTheStatusJsonWithFreshEtags) {
  service_.stop();
  const std::string id = open_incident();
  ASSERT_FALSE(id.empty());
  RunResult first = curl({"-i", url("/status.json")});
  const std::string etag = first.out.substr(first.out.find("ETag: ") + 6, 18);
  EXPECT_THAT(first.out, HasSubstr("Cache-Control: public, max-age=5"));
  EXPECT_EQ(code_of(curl({url("/status.json"), "-H", "If-None-Match: " + etag})), 304);

  RunResult acked = cli({"ack", id, "--by", "alice"});
  ASSERT_EQ(acked.status->code, 0) << acked.err;
  EXPECT_THAT(acked.out, HasSubstr(id + " acknowledged"));
  RunResult noted = cli({"note", id, "Fibre", "cut", "near", "Haarlem;", "crew", "on", "site.", "--public"});
  ASSERT_EQ(noted.status->code, 0) << noted.err;
  ASSERT_EQ(code_of(post("/api/v1/incidents/" + id + "/notes", R"({"text": "internal: swap linecard 3", "by": "bob"})")), 201);
  ASSERT_TRUE(wait_until([&] {
    auto j = status_json();
    return j["open_incidents"][0]["acknowledged"] == true && !j["open_incidents"][0]["latest_update"].is_null();
  }, 3s));
  auto j = status_json();
  EXPECT_EQ(j["open_incidents"][0]["latest_update"]["text"], "Fibre cut near Haarlem; crew on site.");
  EXPECT_EQ(http_get(url("/status.json")).body.find("linecard"), std::string::npos) << "internal notes stay internal";
  EXPECT_NE(curl({url("/status.json"), "-H", "If-None-Match: " + etag}).out.substr(0, 1), "\n") << "content changed";
  EXPECT_NE(code_of(curl({url("/status.json"), "-H", "If-None-Match: " + etag})), 304);
  // The exported copy follows.
  ASSERT_TRUE(wait_until([&] {
    std::ifstream in(dir_.file("status.json"));
    std::stringstream s;
    s << in.rdbuf();
    return s.str().find("Haarlem") != std::string::npos;
  }, 3s));

  RunResult listed = cli({"incidents"});
  ASSERT_EQ(listed.status->code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr(id));
  EXPECT_THAT(listed.out, HasSubstr("acknowledged"));
  RunResult resolved = cli({"resolve", id});
  ASSERT_EQ(resolved.status->code, 0) << resolved.err;
  ASSERT_TRUE(wait_until([&] {
    auto s = status_json();
    return s["open_incidents"].empty() && !s["resolved_incidents"].empty();
  }, 3s));
  EXPECT_EQ(status_json()["resolved_incidents"][0]["id"], id);
  // The pager heard every step, in order.
  ASSERT_TRUE(wait_until([&] { return receiver_.accepted().size() >= 5; }, 5s));
  std::vector<std::string> events;
  for (const auto& r : receiver_.accepted()) events.push_back(json::parse(r.body)["event"]);
  EXPECT_EQ(events.front(), "declared");
  EXPECT_EQ(events.back(), "resolved");
  EXPECT_NE(std::find(events.begin(), events.end(), "acknowledged"), events.end());
}

TEST_F(ApiTest, SilenceFromTheCliKeepsAnOutageFromPagingButNotFromBeingDeclared) {
  RunResult added = cli({"silence", "add", "site=ams1", "target=~sh.*", "--for", "1h", "--comment", "router swap"});
  ASSERT_EQ(added.status->code, 0) << added.err;
  const std::string sid = added.out.substr(6, added.out.find(' ', 6) - 6);
  RunResult listed = cli({"silence", "list"});
  EXPECT_THAT(listed.out, HasSubstr(sid));
  EXPECT_THAT(listed.out, HasSubstr("site=ams1 target=~sh.*"));
  EXPECT_THAT(listed.out, HasSubstr("router swap"));

  service_.stop();
  const std::string id = open_incident();
  ASSERT_FALSE(id.empty()) << "declared and recorded although silenced";
  EXPECT_EQ(status_json()["open_incidents"][0]["maintenance"], true);
  EXPECT_THAT(http_get(url("/status")).body, HasSubstr("maintenance"));
  // Several probe intervals: no page.
  EXPECT_FALSE(receiver_.wait_accepted(1, 1500ms)) << "a silenced incident paged";

  RunResult removed = cli({"silence", "rm", sid});
  ASSERT_EQ(removed.status->code, 0) << removed.err;
  EXPECT_THAT(cli({"silence", "list"}).out, HasSubstr("no silences"));
  EXPECT_NE(cli({"silence", "rm", sid}).status->code, 0);
}

}  // namespace
}  // namespace nightshift::test
