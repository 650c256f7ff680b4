// TCP probe against real sockets: listeners on loopback, and test hosts in
// network namespaces this test makes (198.51.100.0/24, no route out).
#include "probes/tcp.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "tests/support/testnet.h"

namespace nightshift {
namespace {

using namespace std::chrono_literals;
using test::PeerHost;

// Network namespaces are per thread: enter ours before gtest starts any.
const std::string kNetnsError = test::enter_private_netns();

#define REQUIRE_NETNS()                                                                    \
  do {                                                                                     \
    if (!kNetnsError.empty()) {                                                            \
      if (test::netns_skip_allowed()) GTEST_SKIP() << kNetnsError;                      \
      FAIL() << "cannot make a private network namespace: " << kNetnsError                \
             << " (run as root, or set NIGHTSHIFT_SKIP_NETNS=1 to skip these tests)";      \
    }                                                                                      \
  } while (0)

// A listening socket on an ephemeral port of `address`.
struct Listener {
  int fd = -1;
  int port = 0;
  explicit Listener(const char* address, int family = AF_INET, int backlog = 4096) {
    fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      ::inet_pton(AF_INET, address, &a->sin_addr);
      len = sizeof(sockaddr_in);
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      ::inet_pton(AF_INET6, address, &a->sin6_addr);
      len = sizeof(sockaddr_in6);
    }
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&ss), len), 0) << std::strerror(errno);
    EXPECT_EQ(::listen(fd, backlog), 0);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                   : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  ~Listener() { ::close(fd); }
};

// A port on `address` that nobody listens on: bound then closed.
int closed_port(const char* address, int family = AF_INET) {
  Listener l(address, family);
  return l.port;
}

// A server thread that accepts one connection and plays `behaviour`.
struct BannerServer {
  enum class Mode { kSend, kSilent, kCloseAtOnce };
  Listener listener{"127.0.0.1"};
  std::thread thread;
  std::atomic<bool> stop{false};
  BannerServer(Mode mode, std::string banner) {
    thread = std::thread([this, mode, banner] {
      const int c = ::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      if (mode == Mode::kSend) {
        [[maybe_unused]] ssize_t n = ::write(c, banner.data(), banner.size());
      }
      if (mode != Mode::kCloseAtOnce) {
        for (int i = 0; i < 300 && !stop; ++i) std::this_thread::sleep_for(10ms);  // bounded: 3 s
      }
      ::close(c);
    });
  }
  ~BannerServer() {
    stop = true;
    ::shutdown(listener.fd, SHUT_RDWR);
    thread.join();
  }
};

struct Harness {
  SystemClock clock;
  Reactor reactor{clock};
  Resolver resolver{reactor};
  EngineContext context{reactor, resolver};
  std::unique_ptr<tcp::TcpEngine> engine = std::make_unique<tcp::TcpEngine>(context);

  static std::shared_ptr<const Target> target(const std::string& name, const std::string& address, int port,
                                              Duration timeout, const std::string& banner = "") {
    auto opts = std::make_shared<tcp::TcpOptions>();
    opts->port = static_cast<std::uint16_t>(port);
    opts->expect_banner = banner;
    auto t = std::make_shared<Target>();
    t->name = name;
    t->address = address;
    ProbeSpec spec;
    spec.kind = "tcp";
    spec.name = "tcp_" + std::to_string(port);
    spec.timeout = timeout;
    spec.interval = timeout * 2;
    spec.options = opts;
    t->probes.push_back(spec);
    return t;
  }

  // Submits and runs the reactor until every result is in (bounded by `limit`).
  std::vector<Sample> run(const std::vector<std::shared_ptr<const Target>>& targets, Duration limit = 10s) {
    std::vector<Sample> out;
    bool inside_submit = false;
    for (const auto& t : targets) {
      ProbeRequest req;
      req.target = t;
      req.spec = &t->probes.front();
      req.done = [&out, &inside_submit](Sample s) {
        EXPECT_FALSE(inside_submit) << "done must never run inside submit()";
        out.push_back(std::move(s));
      };
      inside_submit = true;
      engine->submit(std::move(req));
      inside_submit = false;
    }
    const SteadyTime deadline = clock.now() + limit;
    while (out.size() < targets.size() && clock.now() < deadline) reactor.run_once(20ms);
    return out;
  }

  Sample one(const std::string& address, int port, Duration timeout = 2s, const std::string& banner = "") {
    auto s = run({target("t", address, port, timeout, banner)});
    EXPECT_EQ(s.size(), 1u);
    return s.empty() ? Sample{} : s.front();
  }
};

double value(const Sample& s, const std::string& name) {
  for (const auto& [k, v] : s.values) {
    if (k == name) return v;
  }
  return -1;
}

TEST(TcpProbeTest, OpenPortSucceeds) {
  Listener l("127.0.0.1");
  Harness h;
  Sample s = h.one("127.0.0.1", l.port);
  EXPECT_TRUE(s.ok) << s.detail;
  EXPECT_EQ(s.reason, FailureReason::kNone);
  EXPECT_EQ(s.kind, "tcp");
  EXPECT_EQ(s.target, "t");
  EXPECT_GT(value(s, "connect_seconds"), 0);
  EXPECT_LT(value(s, "connect_seconds"), 1);
  EXPECT_GT(s.duration, 0ns);
}

TEST(TcpProbeTest, ClosedPortIsRefused) {
  Harness h;
  Sample s = h.one("127.0.0.1", closed_port("127.0.0.1"));
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.reason, FailureReason::kRefused);
  EXPECT_NE(s.detail.find("Connection refused"), std::string::npos) << s.detail;
}

TEST(TcpProbeTest, Ipv6LoopbackOpenAndClosed) {
  Listener l("::1", AF_INET6);
  Harness h;
  EXPECT_TRUE(h.one("::1", l.port).ok);
  Sample closed = h.one("::1", closed_port("::1", AF_INET6));
  EXPECT_EQ(closed.reason, FailureReason::kRefused);
  EXPECT_NE(closed.detail.find("[::1]:"), std::string::npos) << closed.detail;
}

TEST(TcpProbeTest, HostnameResolvesOffTheReactor) {
  Listener l("127.0.0.1");
  Harness h;
  EXPECT_TRUE(h.one("localhost", l.port).ok);
}

TEST(TcpProbeTest, UnresolvableHostnameIsADnsFailure) {
  Harness h;
  Sample s = h.one("nonexistent.invalid", 80, 3s);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.reason, FailureReason::kDnsFailure);
  EXPECT_NE(s.detail.find("nonexistent.invalid"), std::string::npos) << s.detail;
}

TEST(TcpProbeTest, ExpectedBannerSucceeds) {
  BannerServer server(BannerServer::Mode::kSend, "SSH-2.0-test\r\n");
  Harness h;
  Sample s = h.one("127.0.0.1", server.listener.port, 2s, "SSH-");
  EXPECT_TRUE(s.ok) << s.detail;
}

TEST(TcpProbeTest, WrongBannerIsAMismatchWithWhatArrived) {
  BannerServer server(BannerServer::Mode::kSend, "HTTP/1.0 400 Bad Request\r\n");
  Harness h;
  Sample s = h.one("127.0.0.1", server.listener.port, 1s, "SSH-");
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.reason, FailureReason::kBannerMismatch);
  EXPECT_NE(s.detail.find("HTTP/1.0 400 Bad Request\\r\\n"), std::string::npos) << s.detail;
}

TEST(TcpProbeTest, SilentServerTimesOutWaitingForTheBanner) {
  BannerServer server(BannerServer::Mode::kSilent, "");
  Harness h;
  Sample s = h.one("127.0.0.1", server.listener.port, 300ms, "SSH-");
  EXPECT_EQ(s.reason, FailureReason::kTimeout);
  EXPECT_NE(s.detail.find("no banner"), std::string::npos) << s.detail;
  EXPECT_GE(value(s, "connect_seconds"), 0) << "it did connect";
}

TEST(TcpProbeTest, ServerClosingAtOnceIsConnectionClosed) {
  BannerServer server(BannerServer::Mode::kCloseAtOnce, "");
  Harness h;
  Sample s = h.one("127.0.0.1", server.listener.port, 2s, "SSH-");
  EXPECT_EQ(s.reason, FailureReason::kConnectionClosed) << s.detail;
}

TEST(TcpProbeTest, TwoThousandInFlightAllMatched) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = std::max<rlim_t>(lim.rlim_cur, std::min<rlim_t>(lim.rlim_max, 8192));
  ::setrlimit(RLIMIT_NOFILE, &lim);
  Listener open("127.0.0.1");
  const int closed = closed_port("127.0.0.1");
  Harness h;
  std::vector<std::shared_ptr<const Target>> targets;
  for (int i = 0; i < 2000; ++i) {
    // Every 127.x address is loopback: spread sources over many addresses too.
    targets.push_back(Harness::target("t" + std::to_string(i), "127.0.0.1", i % 2 == 0 ? open.port : closed, 5s));
  }
  auto results = h.run(targets, 20s);
  ASSERT_EQ(results.size(), 2000u);
  int ok = 0, refused = 0;
  for (const auto& s : results) {
    const int i = std::stoi(s.target.substr(1));
    if (i % 2 == 0) {
      EXPECT_TRUE(s.ok) << s.target << ": " << s.detail;
      ++ok;
    } else {
      EXPECT_EQ(s.reason, FailureReason::kRefused) << s.target;
      ++refused;
    }
  }
  EXPECT_EQ(ok, 1000);
  EXPECT_EQ(refused, 1000);
  EXPECT_EQ(h.engine->in_flight(), 0u);
  EXPECT_EQ(h.reactor.watched_fds(), 0u) << "every socket unwatched and closed";
}

TEST(TcpProbeTest, EngineDestroyedWithProbesInFlightCallsNothingLater) {
  REQUIRE_NETNS();
  PeerHost peer;
  ASSERT_TRUE(peer.ok()) << peer.error();
  Harness h;
  int called = 0;
  auto t = Harness::target("t", PeerHost::kSilent, 80, 5s);
  ProbeRequest req;
  req.target = t;
  req.spec = &t->probes.front();
  req.done = [&called](Sample) { ++called; };
  h.engine->submit(std::move(req));
  for (int i = 0; i < 5; ++i) h.reactor.run_once(10ms);  // connecting now
  EXPECT_EQ(h.engine->in_flight(), 1u);
  h.engine.reset();
  for (int i = 0; i < 5; ++i) h.reactor.run_once(10ms);
  EXPECT_EQ(called, 0);
  EXPECT_EQ(h.reactor.watched_fds(), 0u);
}

TEST(TcpProbeTest, PeerThatNeverAnswersTimesOutOnTime) {
  REQUIRE_NETNS();
  PeerHost peer;
  ASSERT_TRUE(peer.ok()) << peer.error();
  Harness h;
  const SteadyTime start = h.clock.now();
  Sample s = h.one(PeerHost::kSilent, 80, 300ms);
  const Duration took = h.clock.now() - start;
  EXPECT_EQ(s.reason, FailureReason::kTimeout) << s.detail;
  EXPECT_NE(s.detail.find("no answer from 198.51.100.3:80"), std::string::npos) << s.detail;
  EXPECT_GE(s.duration, 300ms);
  EXPECT_LT(took, 800ms) << "timeout plus small slack";
}

TEST(TcpProbeTest, ClosedPortOnANamespacedHostIsRefused) {
  REQUIRE_NETNS();
  PeerHost peer;
  ASSERT_TRUE(peer.ok()) << peer.error();
  Harness h;
  Sample s = h.one(PeerHost::kPeer, 81, 2s);
  EXPECT_EQ(s.reason, FailureReason::kRefused) << s.detail;
}

TEST(TcpProbeTest, NoRouteIsUnreachableAtOnce) {
  REQUIRE_NETNS();
  PeerHost peer;
  ASSERT_TRUE(peer.ok()) << peer.error();
  Harness h;
  Sample s = h.one(PeerHost::kUnreachable, 80, 2s);
  EXPECT_EQ(s.reason, FailureReason::kUnreachable) << s.detail;
  EXPECT_LT(s.duration, 500ms);
}

TEST(TcpProbeTest, LinkDownThenUp) {
  REQUIRE_NETNS();
  PeerHost peer;
  ASSERT_TRUE(peer.ok()) << peer.error();
  Harness h;
  ASSERT_TRUE(peer.set_link(false)) << peer.error();
  Sample down = h.one(PeerHost::kPeer, 81, 300ms);
  EXPECT_FALSE(down.ok);
  EXPECT_TRUE(down.reason == FailureReason::kUnreachable || down.reason == FailureReason::kTimeout)
      << to_string(down.reason) << ": " << down.detail;
  ASSERT_TRUE(peer.set_link(true)) << peer.error();
  // The peer answers again (refused: it is a host with that port closed).
  Sample up;
  for (int i = 0; i < 20 && up.reason != FailureReason::kRefused; ++i) up = h.one(PeerHost::kPeer, 81, 300ms);
  EXPECT_EQ(up.reason, FailureReason::kRefused) << up.detail;
}

TEST(TcpProbeTest, PrintableExcerptEscapesAndTruncates) {
  EXPECT_EQ(tcp::printable_excerpt("SSH-2.0\r\n"), "SSH-2.0\\r\\n");
  EXPECT_EQ(tcp::printable_excerpt(std::string("a\0b\x7f\\", 5)), "a\\x00b\\x7f\\x5c");
  EXPECT_EQ(tcp::printable_excerpt(std::string(100, 'x'), 10), std::string(10, 'x') + "...");
  EXPECT_EQ(tcp::printable_excerpt(""), "");
}

}  // namespace
}  // namespace nightshift
