// Lets no one in and tells no secrets: every secret the config holds is absent
// from every page, API answer, log line and the outbox on disk; paths that try
// to climb out of the server get nothing; oversized requests are refused and
// the agent keeps serving.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tests/support/agent_run.h"
#include "tests/support/http_get.h"
#include "tests/support/process.h"
#include "tests/support/receiver.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace nightshift::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

// Distinctive values: any occurrence anywhere is a leak.
const std::vector<std::string> kSecrets = {
    "whsec-91c2-LEAKCANARY-webhook",   // webhook HMAC key (file)
    "pdkey-5e7f-LEAKCANARY-routing",   // PagerDuty routing key (environment)
    "slackpath-LEAKCANARY-T0B0X0",     // the secret part of a Slack URL (file)
    "bearer-77aa-LEAKCANARY-token",    // a sink's bearer token (file)
    "apitoken-LEAKCANARY-0123456789",  // the operator API token (file)
    "community-LEAKCANARY-snmp",       // an SNMP v2c community (file)
    "v3auth-LEAKCANARY-pass",          // SNMPv3 auth password (file)
    "v3priv-LEAKCANARY-pass",          // SNMPv3 privacy password (environment)
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Sends raw bytes to 127.0.0.1:port and returns whatever comes back (bounded).
std::string raw_request(int port, const std::string& bytes) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    char buf[4096];
    for (int i = 0; i < 256; ++i) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return out;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(agent_binary().empty()) << "NIGHTSHIFT_BINARY is set by ctest";
    write_text_file(dir_.file("webhook.secret"), kSecrets[0] + "\n");
    write_text_file(dir_.file("slack.url"), receiver_.url("/services/" + kSecrets[2]) + "\n");
    write_text_file(dir_.file("bearer.token"), kSecrets[3]);
    write_text_file(dir_.file("api.token"), kSecrets[4] + "\n");
    write_text_file(dir_.file("community"), kSecrets[5] + "\n");
    write_text_file(dir_.file("v3auth"), kSecrets[6] + "\n");
    // A port nothing listens on: the probed service is down from the start.
    write_text_file(dir_.file("agent.toml"), R"([agent]
name = "sec"
log_level = "debug"
listen = "127.0.0.1:0"
state_dir = ")" + dir_.path() + R"(/state"

[defaults]
interval = "300ms"
timeout = "200ms"

[[rule]]
name = "target_down"
condition = "consecutive_failures >= 3"

[[sink]]
name = "hook"
type = "webhook"
url = ")" + receiver_.url("/hook") + R"("
secret_file = ")" + dir_.file("webhook.secret") + R"("
token_file = ")" + dir_.file("bearer.token") + R"("

[[sink]]
name = "pager"
type = "pagerduty"
url = ")" + receiver_.url("/pd") + R"("
routing_key_env = "NIGHTSHIFT_TEST_PD_KEY"

[[sink]]
name = "chat"
type = "slack"
url_file = ")" + dir_.file("slack.url") + R"("

[api]
token_file = ")" + dir_.file("api.token") + R"("
public_read = true

[[target]]
name = "svc"
address = "127.0.0.1"
  [[target.probe]]
  kind = "tcp"
  port = 9

# Nothing answers SNMP on port 9: the credentials are used and must not leak.
[[target]]
name = "switch-v2"
address = "127.0.0.1"
  [[target.probe]]
  kind = "snmp"
  port = 9
  community_file = ")" + dir_.file("community") + R"("

[[target]]
name = "switch-v3"
address = "127.0.0.1"
  [[target.probe]]
  kind = "snmp"
  port = 9
  version = "3"
  username = "noc"
  auth_password_file = ")" + dir_.file("v3auth") + R"("
  priv_password_env = "NIGHTSHIFT_TEST_V3_PRIV"
)");
    RunningAgent agent = start_agent(dir_.file("agent.toml"), {"NIGHTSHIFT_TEST_PD_KEY=" + kSecrets[1],
                                                               "NIGHTSHIFT_TEST_V3_PRIV=" + kSecrets[7]});
    agent_ = std::move(agent.process);
    port_ = agent.port;
    ASSERT_NE(port_, 0) << agent_->stderr_text();
  }

  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  TempDir dir_;
  Receiver receiver_;
  std::unique_ptr<Process> agent_;
  int port_ = 0;
};

TEST_F(SecurityTest, SecretsAppearNowhereButWhereTheyAreSent) {
  // Three sinks, one incident: each sink hears of it.
  ASSERT_TRUE(receiver_.wait_accepted(3, 8s)) << agent_->stderr_text();
  // Where they belong: the signature key never travels, the others do.
  for (const auto& r : receiver_.accepted()) {
    if (r.path == "/hook") {
      EXPECT_EQ(r.headers.at("authorization"), "Bearer " + kSecrets[3]);
    }
    if (r.path == "/pd") {
      EXPECT_THAT(r.body, HasSubstr(kSecrets[1]));
    }
    EXPECT_THAT(r.body, Not(HasSubstr(kSecrets[0])));
  }
  std::vector<std::pair<std::string, std::string>> seen;
  for (const char* path : {"/metrics", "/healthz", "/", "/status", "/status.json", "/api/v1/incidents",
                           "/api/v1/targets", "/api/v1/silences"}) {
    HttpResult r = http_get(url(path));
    seen.emplace_back(path, r.body);
  }
  ASSERT_EQ(::kill(agent_->pid(), SIGTERM), 0);
  ASSERT_TRUE(agent_->wait_for(10s));
  seen.emplace_back("the log", agent_->stderr_text() + agent_->stdout_text());
  for (const char* f : {"/state/nightshift.db", "/state/nightshift.db-wal"}) {
    seen.emplace_back(f, read_file(dir_.path() + f));
  }
  for (const auto& [where, text] : seen) {
    for (const auto& secret : kSecrets) {
      EXPECT_THAT(text, Not(HasSubstr(secret))) << "a secret leaks into " << where;
      EXPECT_THAT(text, Not(HasSubstr("LEAKCANARY"))) << "part of a secret leaks into " << where;
    }
  }
}

TEST_F(SecurityTest, PathsClimbingOutOfTheServerGetNothing) {
  for (const char* path : {"/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/status/../../../etc/passwd",
                           "//etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd", "/metrics/../../etc/shadow",
                           "/api/v1/incidents/..%2f..%2f..%2fetc%2fpasswd"}) {
    const std::string reply = raw_request(port_, std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_THAT(reply, Not(HasSubstr("root:"))) << path;
    EXPECT_THAT(reply, Not(HasSubstr("HTTP/1.1 200"))) << path;
  }
}

TEST_F(SecurityTest, OversizedRequestsAreRefusedAndServingGoesOn) {
  const std::string huge_header = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(200 * 1024, 'a') +
                                  "\r\nConnection: close\r\n\r\n";
  const std::string reply = raw_request(port_, huge_header);
  EXPECT_THAT(reply, Not(HasSubstr("HTTP/1.1 200"))) << reply.substr(0, 200);
  const std::string huge_url = "GET /" + std::string(100 * 1024, 'b') + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  EXPECT_THAT(raw_request(port_, huge_url), Not(HasSubstr("HTTP/1.1 200")));
  // A body far beyond any limit on a read-only path.
  const std::string huge_body = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\nConnection: close\r\n\r\n" +
                                std::string(64 * 1024, 'c');
  EXPECT_THAT(raw_request(port_, huge_body), Not(HasSubstr("HTTP/1.1 200")));
  HttpResult health = http_get(url("/healthz"));
  EXPECT_EQ(health.status, 200) << health.error;
  EXPECT_TRUE(agent_->running());
}

}  // namespace
}  // namespace nightshift::test
