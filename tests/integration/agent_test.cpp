// End-to-end: the `nightshift` binary as an operator runs it. Each test writes a
// config into a temp dir, starts `nightshift run` with probes against loopback
// listeners the test owns (one accepting, one bound but not listening, so it
// refuses), scrapes /metrics over HTTP and sends real signals.
//
// Network safety: every probe and request goes to 127.0.0.1. Every wait is
// bounded; the agent process is SIGKILLed and reaped by its guard whatever
// happens to the test.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "nightshift/version.h"
#include "tests/support/http_get.h"
#include "tests/support/process.h"
#include "tests/support/prom_text.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace nightshift::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

std::string agent_binary() {
  const char* b = std::getenv("NIGHTSHIFT_BINARY");
  return b != nullptr ? b : "";
}

int bound_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

int bind_loopback() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A TCP port on 127.0.0.1 that accepts connections and closes them at once.
class OpenPort {
 public:
  OpenPort() {
    fd_ = bind_loopback();
    if (fd_ < 0 || ::listen(fd_, 64) != 0) return;
    port_ = bound_port(fd_);
    accepter_ = std::thread([this] {
      // Runs until the destructor sets stop_; each turn waits at most 50 ms.
      while (!stop_.load()) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) > 0) {
          const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
          if (c >= 0) ::close(c);
        }
      }
    });
  }
  ~OpenPort() {
    stop_ = true;
    if (accepter_.joinable()) accepter_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accepter_;
};

// A port on 127.0.0.1 that is bound (so nobody else takes it) but not
// listening: connecting to it is refused.
class ClosedPort {
 public:
  ClosedPort() : fd_(bind_loopback()), port_(fd_ >= 0 ? bound_port(fd_) : 0) {}
  ~ClosedPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_;
  int port_;
};

struct TargetDef {
  std::string name;
  int port;
  std::string group;
  std::string labels;  // inline TOML table, e.g. { role = "web" }; may be empty
};

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(agent_binary().empty()) << "NIGHTSHIFT_BINARY is not set (run through ctest)";
    ASSERT_GT(open_.port(), 0);
    ASSERT_GT(closed_.port(), 0);
  }

  // The config, one line per setting so tests can predict error positions.
  std::string config_text(const std::vector<TargetDef>& targets) const {
    std::string t =
        "[agent]\n"
        "name = \"e2e\"\n"
        "site = \"lab\"\n"
        "listen = \"127.0.0.1:0\"\n"
        "state_dir = \"" +
        dir_.file("state") +
        "\"\n"
        "log_level = \"info\"\n"
        "\n"
        "[defaults]\n"
        "interval = \"500ms\"\n"
        "timeout = \"200ms\"\n";
    for (const auto& d : targets) {
      t += "\n[[target]]\n";
      t += "name = \"" + d.name + "\"\n";
      t += "address = \"127.0.0.1\"\n";
      t += "group = \"" + d.group + "\"\n";
      if (!d.labels.empty()) t += "labels = " + d.labels + "\n";
      t += "  [[target.probe]]\n";
      t += "  kind = \"tcp\"\n";
      t += "  port = " + std::to_string(d.port) + "\n";
    }
    return t;
  }

  std::vector<TargetDef> default_targets() const {
    return {{"web", open_.port(), "front", "{ role = \"web\", tier = \"1\" }"}, {"dead", closed_.port(), "back", ""}};
  }

  // Starts `nightshift run -c CONFIG` and learns its HTTP port from the log.
  void start(const std::string& config) {
    config_path_ = dir_.file("agent.toml");
    write_file(config_path_, config);
    agent_.emplace(Process::Options{{agent_binary(), "run", "-c", config_path_}, {}, dir_.path()});
    const std::string marker = "msg=listening address=127.0.0.1:";
    auto pos = agent_->wait_for_stderr(marker, 5s);
    ASSERT_TRUE(pos.has_value()) << "the agent did not log its address; stderr:\n" << agent_->stderr_text();
    const std::string err = agent_->stderr_text();
    port_ = std::atoi(err.c_str() + *pos + marker.size());
    ASSERT_GT(port_, 0) << err;
  }

  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  // One scrape; a failed request or malformed exposition fails the test.
  PromText scrape() {
    HttpResult r = http_get(url("/metrics"));
    EXPECT_EQ(r.status, 200) << r.error;
    PromText t = parse_prom_text(r.body);
    EXPECT_THAT(t.errors, ::testing::IsEmpty()) << r.body;
    return t;
  }

  // Scrapes until `pred` holds on an exposition (bounded); returns the last one.
  PromText scrape_until(const std::function<bool(const PromText&)>& pred, std::chrono::milliseconds timeout,
                        const std::string& what) {
    PromText last;
    const bool ok = wait_until(
        [&] {
          HttpResult r = http_get(url("/metrics"));
          if (r.status != 200) return false;
          last = parse_prom_text(r.body);
          return pred(last);
        },
        timeout, 50ms);
    EXPECT_TRUE(ok) << "timed out waiting for: " << what << "\nstderr:\n" << (agent_ ? agent_->stderr_text() : "");
    return last;
  }

  PromLabels probe_labels(const std::string& target, const std::string& group, int port) const {
    return {{"target", target}, {"probe", "tcp_" + std::to_string(port)},
            {"kind", "tcp"},    {"group", group},
            {"site", "lab"},    {"agent", "e2e"}};
  }

  // Sends `sig` and expects a clean stop: exit 0 within a few seconds, "stopped" logged.
  void expect_clean_stop(int sig, const std::string& sig_name) {
    ASSERT_TRUE(agent_->send_signal(sig));
    auto status = agent_->wait_for(8s);
    ASSERT_TRUE(status.has_value()) << sig_name << " did not stop the agent within 8 s; stderr:\n"
                                    << agent_->stderr_text();
    EXPECT_TRUE(status->exited) << status->to_string();
    EXPECT_EQ(status->code, 0) << agent_->stderr_text();
    const std::string err = agent_->stderr_text();
    EXPECT_THAT(err, HasSubstr("signal=" + sig_name));
    EXPECT_THAT(err, HasSubstr("msg=stopped"));
  }

  // Declared in destruction order: the agent goes first, then the ports, then the files.
  TempDir dir_{"nightshift-agent-test-"};
  OpenPort open_;
  ClosedPort closed_;
  std::string config_path_;
  std::optional<Process> agent_;
  int port_ = 0;
};

bool both_probed(const PromText& t) {
  return t.has("probe_success", {{"target", "web"}}) && t.has("probe_success", {{"target", "dead"}});
}

TEST_F(AgentTest, ExportsProbeResultsWithExactLabels) {
  ASSERT_NO_FATAL_FAILURE(start(config_text(default_targets())));
  PromText m = scrape_until(both_probed, 5s, "probe_success for web and dead");
  ASSERT_TRUE(both_probed(m));

  const PromLabels web = probe_labels("web", "front", open_.port());
  const PromLabels dead = probe_labels("dead", "back", closed_.port());

  // probe_success: exactly one series per probe, with exactly the six labels.
  auto success = m.select("probe_success");
  ASSERT_EQ(success.size(), 2u);
  for (const auto& s : success) {
    if (s.labels.at("target") == "web") {
      EXPECT_EQ(s.labels, web);
      EXPECT_EQ(s.value, 1);
    } else {
      EXPECT_EQ(s.labels, dead);
      EXPECT_EQ(s.value, 0);
    }
  }
  EXPECT_EQ(m.types["probe_success"], "gauge");
  EXPECT_FALSE(m.help["probe_success"].empty());

  // probe_duration_seconds: measured, short (loopback), same labels.
  for (const auto& labels : {web, dead}) {
    auto d = m.select("probe_duration_seconds", labels);
    ASSERT_EQ(d.size(), 1u) << labels.at("target");
    EXPECT_EQ(d[0].labels, labels);
    EXPECT_GE(d[0].value, 0);
    EXPECT_LT(d[0].value, 1.0);  // sane: the timeout is 200ms
  }

  // The refused port says why; the open one has no failure-reason series.
  auto reason = m.select("nightshift_probe_failure_reason", {{"target", "dead"}});
  ASSERT_EQ(reason.size(), 1u);
  PromLabels dead_reason = dead;
  dead_reason["reason"] = "refused";
  EXPECT_EQ(reason[0].labels, dead_reason);
  EXPECT_EQ(reason[0].value, 1);
  EXPECT_FALSE(m.has("nightshift_probe_failure_reason", {{"target", "web"}}));
  EXPECT_GE(m.value("nightshift_probe_results_total", {{"target", "web"}, {"result", "ok"}}).value_or(0), 1);
  EXPECT_GE(m.value("nightshift_probe_results_total", {{"target", "dead"}, {"result", "refused"}}).value_or(0), 1);

  // Target info carries the address and the target's extra labels, exactly.
  auto info = m.select("nightshift_target_info", {{"target", "web"}});
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].labels, (PromLabels{{"target", "web"},
                                        {"address", "127.0.0.1"},
                                        {"group", "front"},
                                        {"site", "lab"},
                                        {"agent", "e2e"},
                                        {"role", "web"},
                                        {"tier", "1"}}));
  EXPECT_EQ(info[0].value, 1);
  auto dead_info = m.select("nightshift_target_info", {{"target", "dead"}});
  ASSERT_EQ(dead_info.size(), 1u);
  EXPECT_EQ(
      dead_info[0].labels,
      (PromLabels{{"target", "dead"}, {"address", "127.0.0.1"}, {"group", "back"}, {"site", "lab"}, {"agent", "e2e"}}));

  // Build info.
  auto build = m.select("nightshift_build_info");
  ASSERT_EQ(build.size(), 1u);
  EXPECT_EQ(build[0].value, 1);
  EXPECT_EQ(build[0].labels.at("version"), kVersion);
  EXPECT_EQ(build[0].labels.at("revision"), kRevision);
  EXPECT_EQ(build[0].labels.at("agent"), "e2e");
  EXPECT_TRUE(build[0].labels.count("compiler"));

  // Scheduler lag: a histogram with cumulative buckets ending in +Inf == count.
  EXPECT_EQ(m.types["nightshift_scheduler_lag_seconds"], "histogram");
  auto count = m.value("nightshift_scheduler_lag_seconds_count", {{"agent", "e2e"}});
  ASSERT_TRUE(count.has_value());
  EXPECT_GE(*count, 2);
  EXPECT_TRUE(m.value("nightshift_scheduler_lag_seconds_sum", {{"agent", "e2e"}}).has_value());
  auto buckets = m.select("nightshift_scheduler_lag_seconds_bucket");
  ASSERT_GE(buckets.size(), 2u);
  double previous = 0;
  for (const auto& b : buckets) {
    EXPECT_GE(b.value, previous) << b.to_string();
    previous = b.value;
  }
  EXPECT_EQ(buckets.back().labels.at("le"), "+Inf");
  EXPECT_EQ(buckets.back().value, *count);

  EXPECT_EQ(m.value("nightshift_targets"), 2);
  EXPECT_EQ(m.value("nightshift_probes_configured"), 2);
  EXPECT_EQ(m.value("nightshift_config_last_reload_successful"), 1);

  // Probes keep being sent: the counter grows between scrapes.
  const double sent = m.value("nightshift_probes_sent_total", {{"kind", "tcp"}, {"agent", "e2e"}}).value_or(0);
  EXPECT_GE(sent, 2);
  scrape_until(
      [&](const PromText& t) {
        return t.value("nightshift_probes_sent_total", {{"kind", "tcp"}}).value_or(0) >= sent + 2;
      },
      5s, "nightshift_probes_sent_total to grow");
}

TEST_F(AgentTest, ServesHealthzAndRejectsUnknownPathsAndMethods) {
  ASSERT_NO_FATAL_FAILURE(start(config_text(default_targets())));

  HttpResult health = http_get(url("/healthz"));
  EXPECT_EQ(health.status, 200) << health.error;
  EXPECT_EQ(health.body, "ok\n");

  HttpResult metrics = http_get(url("/metrics"));
  EXPECT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.header("Content-Type"), HasSubstr("text/plain; version=0.0.4"));

  HttpResult missing = http_get(url("/no-such-page"));
  EXPECT_EQ(missing.status, 404) << missing.error;
  EXPECT_THAT(missing.body, HasSubstr("/no-such-page"));

  HttpResult post = http_request("POST", url("/metrics"), "x=1");
  EXPECT_EQ(post.status, 405) << post.error;
  EXPECT_EQ(post.header("Allow"), "GET, HEAD");

  HttpResult del = http_request("DELETE", url("/healthz"));
  EXPECT_EQ(del.status, 405) << del.error;

  HttpResult head = http_request("HEAD", url("/healthz"));
  EXPECT_EQ(head.status, 200) << head.error;
  EXPECT_TRUE(head.body.empty());
}

TEST_F(AgentTest, ListensOnIpv6LoopbackAndOnEveryAddressWithBrackets) {
  for (const std::string listen : {"[::1]:0", "[::]:0"}) {
    SCOPED_TRACE(listen);
    std::string config = config_text(default_targets());
    config.replace(config.find("127.0.0.1:0"), std::string("127.0.0.1:0").size(), listen);
    config_path_ = dir_.file("agent.toml");
    write_file(config_path_, config);
    Process agent(Process::Options{{agent_binary(), "run", "-c", config_path_}, {}, dir_.path()});
    const std::string marker = listen == "[::1]:0" ? "msg=listening address=[::1]:" : "msg=listening address=127.0.0.1:";
    auto pos = agent.wait_for_stderr(marker, 5s);
    ASSERT_TRUE(pos.has_value()) << agent.stderr_text();
    const int port = std::atoi(agent.stderr_text().c_str() + *pos + marker.size());
    ASSERT_GT(port, 0);
    HttpResult v6 = http_get("http://[::1]:" + std::to_string(port) + "/healthz");
    EXPECT_EQ(v6.status, 200) << v6.error;
    if (listen == "[::]:0") {
      // Every address, as people expect of [::]: IPv4 too.
      HttpResult v4 = http_get("http://127.0.0.1:" + std::to_string(port) + "/healthz");
      EXPECT_EQ(v4.status, 200) << v4.error;
    }
    ASSERT_TRUE(agent.send_signal(SIGTERM));
    ASSERT_TRUE(agent.wait_for(8s).has_value());
  }
}

TEST_F(AgentTest, SighupWithBrokenConfigKeepsTheRunningOne) {
  ASSERT_NO_FATAL_FAILURE(start(config_text(default_targets())));
  PromText before = scrape_until(both_probed, 5s, "first results");
  ASSERT_TRUE(both_probed(before));

  // A typo in a key: "gruop" on line 15 of the new file (the first target's group).
  std::string broken = config_text({{"web", open_.port(), "front", ""}, {"other", open_.port(), "x", ""}});
  const std::string good_key = "group = \"front\"";
  const auto at = broken.find(good_key);
  ASSERT_NE(at, std::string::npos);
  broken.replace(at, 5, "gruop");
  const int line = 1 + static_cast<int>(std::count(broken.begin(), broken.begin() + static_cast<long>(at), '\n'));
  write_file(config_path_, broken);

  const std::size_t log_mark = agent_->stderr_text().size();
  ASSERT_TRUE(agent_->send_signal(SIGHUP));
  ASSERT_TRUE(agent_->wait_for_stderr("config reload rejected", 5s, log_mark).has_value()) << agent_->stderr_text();
  const std::string err = agent_->stderr_text().substr(log_mark);
  EXPECT_THAT(err, HasSubstr(config_path_ + ":" + std::to_string(line) + ":1: target[0].gruop: unknown key"));
  EXPECT_THAT(err, HasSubstr("level=error"));
  ASSERT_TRUE(agent_->running());

  // The old config stays in force: the old targets are still probed, the new one never appears.
  const double ok_before =
      before.value("nightshift_probe_results_total", {{"target", "web"}, {"result", "ok"}}).value_or(0);
  PromText after = scrape_until(
      [&](const PromText& t) {
        return t.value("nightshift_probe_results_total", {{"target", "web"}, {"result", "ok"}}).value_or(0) >=
                   ok_before + 2 &&
               t.value("nightshift_probe_results_total", {{"target", "dead"}, {"result", "refused"}}).value_or(0) >= 2;
      },
      5s, "old targets probed after the rejected reload");
  EXPECT_EQ(after.value("nightshift_config_last_reload_successful", {{"agent", "e2e"}}), 0);
  EXPECT_EQ(after.value("nightshift_config_reloads_total", {{"result", "failure"}, {"agent", "e2e"}}), 1);
  EXPECT_EQ(after.value("nightshift_config_reloads_total", {{"result", "success"}, {"agent", "e2e"}}), 1);
  EXPECT_FALSE(after.has("probe_success", {{"target", "other"}}));
  EXPECT_FALSE(after.has("nightshift_target_info", {{"target", "other"}}));
  EXPECT_EQ(after.value("nightshift_targets"), 2);
  EXPECT_TRUE(agent_->running());

  // Fixing the file and sending SIGHUP again recovers.
  write_file(config_path_, config_text(default_targets()));
  ASSERT_TRUE(agent_->send_signal(SIGHUP));
  scrape_until(
      [](const PromText& t) {
        return t.value("nightshift_config_last_reload_successful").value_or(0) == 1 &&
               t.value("nightshift_config_reloads_total", {{"result", "success"}}).value_or(0) == 2;
      },
      5s, "the fixed config to load");
}

TEST_F(AgentTest, SighupWithValidConfigAddsRemovesAndKeepsSurvivors) {
  ASSERT_NO_FATAL_FAILURE(start(config_text(default_targets())));
  // Let the survivor build up history, and the doomed target fire its alert.
  PromText before = scrape_until(
      [](const PromText& t) {
        return t.value("nightshift_probe_results_total", {{"target", "web"}, {"result", "ok"}}).value_or(0) >= 3 &&
               t.has("nightshift_alerts", {{"target", "dead"}, {"state", "firing"}});
      },
      6s, "3 results for web and a firing alert for dead");
  const double web_ok =
      before.value("nightshift_probe_results_total", {{"target", "web"}, {"result", "ok"}}).value_or(0);
  ASSERT_GE(web_ok, 3);
  const double sent = before.value("nightshift_probes_sent_total", {{"kind", "tcp"}}).value_or(0);

  // "dead" goes, "api" comes, "web" stays exactly as it was.
  write_file(config_path_, config_text({{"web", open_.port(), "front", "{ role = \"web\", tier = \"1\" }"},
                                        {"api", open_.port(), "front", "{ role = \"api\" }"}}));
  const std::size_t log_mark = agent_->stderr_text().size();
  ASSERT_TRUE(agent_->send_signal(SIGHUP));
  ASSERT_TRUE(agent_->wait_for_stderr("msg=\"config reloaded\"", 5s, log_mark).has_value()) << agent_->stderr_text();
  EXPECT_THAT(agent_->stderr_text().substr(log_mark), HasSubstr("targets=2 added=1 removed=1"));

  PromText after = scrape_until(
      [](const PromText& t) {
        return t.has("probe_success", {{"target", "api"}});
      },
      5s, "the new target's results");
  EXPECT_EQ(after.select("probe_success", {{"target", "api"}}).at(0).labels,
            probe_labels("api", "front", open_.port()));
  EXPECT_EQ(after.value("probe_success", {{"target", "api"}}), 1);
  EXPECT_EQ(after.value("nightshift_target_info", {{"target", "api"}, {"role", "api"}}), 1);

  // Nothing about the removed target is left, in any family.
  for (const auto& s : after.samples) {
    auto it = s.labels.find("target");
    EXPECT_FALSE(it != s.labels.end() && it->second == "dead") << "left over: " << s.to_string();
  }

  // The survivor kept its counters and keeps counting.
  const double web_ok_after =
      after.value("nightshift_probe_results_total", {{"target", "web"}, {"result", "ok"}}).value_or(0);
  EXPECT_GE(web_ok_after, web_ok) << "results_total was reset by the reload";
  EXPECT_GE(after.value("nightshift_probes_sent_total", {{"kind", "tcp"}}).value_or(0), sent);
  EXPECT_EQ(after.value("probe_success", {{"target", "web"}}), 1);
  EXPECT_EQ(after.value("nightshift_targets"), 2);
  EXPECT_EQ(after.value("nightshift_config_last_reload_successful"), 1);
  EXPECT_EQ(after.value("nightshift_config_reloads_total", {{"result", "success"}}), 2);
  EXPECT_FALSE(after.has("nightshift_config_reloads_total", {{"result", "failure"}}));

  // And the agent still stops cleanly after a reload.
  expect_clean_stop(SIGTERM, "SIGTERM");
}

TEST_F(AgentTest, SigtermStopsCleanly) {
  ASSERT_NO_FATAL_FAILURE(start(config_text(default_targets())));
  scrape_until(both_probed, 5s, "first results");
  expect_clean_stop(SIGTERM, "SIGTERM");
}

TEST_F(AgentTest, SigintStopsCleanly) {
  ASSERT_NO_FATAL_FAILURE(start(config_text(default_targets())));
  scrape_until(both_probed, 5s, "first results");
  expect_clean_stop(SIGINT, "SIGINT");
}

TEST_F(AgentTest, RunRefusesBrokenConfig) {
  std::string text = config_text(default_targets());
  text.replace(text.find("interval = \"500ms\""), 8, "intervall");  // line 9 of the file
  const std::string path = dir_.file("broken.toml");
  write_file(path, text);
  RunResult r = run_process({agent_binary(), "run", "-c", path}, 10s);
  ASSERT_TRUE(r.status.has_value()) << "run on a broken config did not exit";
  EXPECT_TRUE(r.status->exited);
  EXPECT_EQ(r.status->code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr(path + ":9:1: defaults.intervall: unknown key; did you mean \"interval\"?"));
  EXPECT_THAT(r.err, HasSubstr("config rejected; not starting"));
  EXPECT_THAT(r.err, Not(HasSubstr("msg=listening")));
}

TEST_F(AgentTest, RunRefusesMissingConfig) {
  const std::string path = dir_.file("does-not-exist.toml");
  RunResult r = run_process({agent_binary(), "run", "-c", path}, 10s);
  ASSERT_TRUE(r.status.has_value());
  EXPECT_EQ(r.status->code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr(path));
  EXPECT_THAT(r.err, HasSubstr("cannot read config file"));
}

TEST(AgentCommandLineTest, VersionHelpAndUsageErrors) {
  const std::string bin = agent_binary();
  ASSERT_FALSE(bin.empty()) << "NIGHTSHIFT_BINARY is not set (run through ctest)";

  RunResult version = run_process({bin, "--version"});
  ASSERT_TRUE(version.status.has_value());
  EXPECT_EQ(version.status->code, 0);
  EXPECT_EQ(version.out, std::string("nightshift ") + kVersion + " (" + kRevision + ")\n");

  RunResult help = run_process({bin, "--help"});
  ASSERT_TRUE(help.status.has_value());
  EXPECT_EQ(help.status->code, 0);
  EXPECT_THAT(help.out, HasSubstr("Usage:"));
  EXPECT_THAT(help.out, HasSubstr("nightshift run -c FILE"));
  EXPECT_TRUE(help.err.empty()) << help.err;

  RunResult unknown = run_process({bin, "frobnicate"});
  ASSERT_TRUE(unknown.status.has_value());
  EXPECT_EQ(unknown.status->code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("unknown command: frobnicate"));
  EXPECT_TRUE(unknown.out.empty());

  RunResult none = run_process({bin});
  ASSERT_TRUE(none.status.has_value());
  EXPECT_EQ(none.status->code, 2);
  EXPECT_THAT(none.err, HasSubstr("Usage:"));

  RunResult no_config = run_process({bin, "run"});
  ASSERT_TRUE(no_config.status.has_value());
  EXPECT_EQ(no_config.status->code, 2);
  EXPECT_THAT(no_config.err, HasSubstr("run needs -c FILE"));

  RunResult bad_flag = run_process({bin, "run", "--bogus"});
  ASSERT_TRUE(bad_flag.status.has_value());
  EXPECT_EQ(bad_flag.status->code, 2);
}

}  // namespace
}  // namespace nightshift::test
