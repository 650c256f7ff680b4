// `nightshift probe tcp|snmp`: one run of the agent's own engines against
// targets on the command line — a real listener on loopback (v4 and ::1), a
// closed port, a banner server, a real snmpd — in a private network namespace.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/testnet.h"
#include "tests/support/wait.h"

namespace nightshift::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

const std::string kNetnsError = enter_private_netns();

std::string binary() {
  const char* b = std::getenv("NIGHTSHIFT_BINARY");
  return b ? b : "";
}

// A listening socket on `address` (v4 or v6 literal), port chosen by the kernel.
struct Listener {
  explicit Listener(const std::string& address) {
    const bool v6 = address.find(':') != std::string::npos;
    fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      ::inet_pton(AF_INET6, address.c_str(), &a->sin6_addr);
      len = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      ::inet_pton(AF_INET, address.c_str(), &a->sin_addr);
      len = sizeof *a;
    }
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 16) != 0) return;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }
  ~Listener() {
    if (fd >= 0) ::close(fd);
  }
  int fd = -1;
  int port = 0;
};

RunResult probe(std::vector<std::string> args) {
  std::vector<std::string> argv = {binary(), "probe"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, 20s);
}

class ProbeCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
    ASSERT_FALSE(binary().empty()) << "NIGHTSHIFT_BINARY is set by ctest";
  }
};

TEST_F(ProbeCliTest, TcpUpAndRefusedOnLoopbackV4AndV6) {
  Listener v4("127.0.0.1"), v6("::1");
  ASSERT_NE(v4.port, 0);
  ASSERT_NE(v6.port, 0);
  int closed_port = 0;
  {
    Listener gone("127.0.0.1");
    closed_port = gone.port;
  }  // closed: the next connect is refused
  const std::string up4 = "127.0.0.1:" + std::to_string(v4.port);
  const std::string up6 = "[::1]:" + std::to_string(v6.port);
  auto r = probe({"tcp", up4, up6});
  ASSERT_TRUE(r.status.has_value());
  EXPECT_EQ(r.status->code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr(up4 + " tcp_" + std::to_string(v4.port) + ": ok in "));
  EXPECT_THAT(r.out, HasSubstr(up6 + " tcp_" + std::to_string(v6.port) + ": ok in "));

  const std::string down = "127.0.0.1:" + std::to_string(closed_port);
  r = probe({"tcp", up4, down});
  ASSERT_TRUE(r.status.has_value());
  EXPECT_EQ(r.status->code, 1) << "one target failed";
  EXPECT_THAT(r.out, HasSubstr(down + " tcp_" + std::to_string(closed_port) + ": refused after "));

  // --port for targets without one; --json has the sample's fields.
  r = probe({"tcp", "--json", "-p", std::to_string(v4.port), "127.0.0.1"});
  ASSERT_TRUE(r.status.has_value());
  EXPECT_EQ(r.status->code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_array()) << r.out;
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["target"], "127.0.0.1");
  EXPECT_EQ(j[0]["kind"], "tcp");
  EXPECT_EQ(j[0]["ok"], true);
  EXPECT_EQ(j[0]["reason"], "ok");
  EXPECT_GT(j[0]["duration_seconds"].get<double>(), 0.0);
}

TEST_F(ProbeCliTest, TcpBannerThroughItsConfigKey) {
  Listener server("127.0.0.1");
  ASSERT_NE(server.port, 0);
  // Answers every connection with an SSH banner: a TCP run makes up to three
  // connects spread over its interval (bounded: 8 accepts, or the shutdown).
  std::thread banner([fd = server.fd] {
    for (int i = 0; i < 8; ++i) {
      const int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      const char text[] = "SSH-2.0-nightshift-test\r\n";
      (void)!::write(c, text, sizeof text - 1);
      ::usleep(200'000);
      ::close(c);
    }
  });
  const std::string target = "127.0.0.1:" + std::to_string(server.port);
  auto ok = probe({"tcp", "--expect-banner", "SSH-", "-t", "2000", target});
  auto bad = probe({"tcp", "--expect-banner=220 ", "-t", "2000", target});
  ::shutdown(server.fd, SHUT_RDWR);
  banner.join();
  ASSERT_TRUE(ok.status.has_value() && bad.status.has_value());
  EXPECT_EQ(ok.status->code, 0) << ok.out << ok.err;
  EXPECT_EQ(bad.status->code, 1) << bad.out << bad.err;
  EXPECT_THAT(bad.out, HasSubstr("banner_mismatch"));
  EXPECT_THAT(bad.out, HasSubstr("SSH-2.0-nightshift-test"));
}

TEST_F(ProbeCliTest, OptionsAreCheckedLikeTheConfig) {
  auto r = probe({"tcp", "--prot", "22", "127.0.0.1"});
  ASSERT_TRUE(r.status.has_value());
  EXPECT_EQ(r.status->code, 2);
  EXPECT_THAT(r.err, HasSubstr("--prot: unknown key; did you mean \"port\"?"));
  r = probe({"tcp", "127.0.0.1"});
  EXPECT_EQ(r.status->code, 2);
  EXPECT_THAT(r.err, HasSubstr("--port"));
  r = probe({"ftp", "127.0.0.1"});
  EXPECT_EQ(r.status->code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown kind \"ftp\""));
}

TEST_F(ProbeCliTest, SnmpAgainstARealSnmpd) {
  TempDir dir;
  const int port = 20000 + static_cast<int>(::getpid() % 20000);
  const std::string community = "c0mm-probe-cli";
  write_file(dir.file("snmpd.conf"), "rocommunity " + community + " 127.0.0.1\n");
  Process snmpd({"snmpd", "-f", "-Lo", "-C", "-c", dir.file("snmpd.conf"), "-p", dir.file("snmpd.pid"),
                 "--persistentDir=" + dir.path() + "/persist", "udp:127.0.0.1:" + std::to_string(port)});
  ASSERT_TRUE(wait_until([&] {
    RunResult g = run_process({"snmpget", "-v2c", "-c", community, "-t", "1", "-r", "0",
                               "127.0.0.1:" + std::to_string(port), "1.3.6.1.2.1.1.3.0"},
                              5s);
    return g.status && g.status->code == 0;
  }, 10s)) << snmpd.stderr_text();

  const std::string target = "127.0.0.1:" + std::to_string(port);
  auto r = probe({"snmp", "--community", community, "--json", target});
  ASSERT_TRUE(r.status.has_value());
  EXPECT_EQ(r.status->code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_array() && j.size() == 1) << r.out;
  EXPECT_EQ(j[0]["ok"], true);
  EXPECT_TRUE(j[0]["values"].contains("uptime_seconds")) << j[0].dump();
  EXPECT_GE(j[0]["series"].size(), 1u) << "the loopback interface at least";

  // A wrong community cannot be told from a dead agent: a timeout.
  r = probe({"snmp", "--community", "wrong-community", "-t", "1000", target});
  ASSERT_TRUE(r.status.has_value());
  EXPECT_EQ(r.status->code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("timeout"));
}

}  // namespace
}  // namespace nightshift::test
