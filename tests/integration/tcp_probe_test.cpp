// TCP probe against real sockets: listeners on loopback, and test hosts in
// network namespaces this test makes (198.51.100.0/24, 2001:db8::/32, no route
// out). The engine runs in a real Reactor on the SystemClock, driven by
// run_once() in loops bounded in count and time.
#include "probes/tcp/tcp.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>

#include "tests/support/testnet.h"

namespace nightshift {
namespace {

using namespace std::chrono_literals;
using test::PeerHost;

// Network namespaces are per thread: enter ours before gtest starts any. Every
// test in this binary runs in it, the loopback ones too.
const std::string kNetnsError = test::enter_private_netns();

double ms(Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// A listening socket on an ephemeral port of `address` (in this namespace), or
// an already listening fd to own (e.g. one made in a peer namespace).
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
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&ss), len), 0) << address << ": " << std::strerror(errno);
    EXPECT_EQ(::listen(fd, backlog), 0) << std::strerror(errno);
    port = test::bound_port(fd);
  }
  explicit Listener(int listening_fd) : fd(listening_fd), port(test::bound_port(listening_fd)) {}
  ~Listener() {
    if (fd >= 0) ::close(fd);
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Accepts (and closes) every connection already queued, waiting up to
  // `limit` for `expected` of them. Returns how many there were.
  int drain_accept_queue(int expected, Duration limit) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    int n = 0;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (int spins = 0; spins < 100'000; ++spins) {
      const int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        ::close(c);
        ++n;
        continue;
      }
      if (n >= expected || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(5ms);
    }
    return n;
  }
};

// A port on `address` that nobody listens on: bound then closed.
int closed_port(const char* address, int family = AF_INET) {
  Listener l(address, family);
  return l.port;
}

// Descriptors this process has open.
int open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (::readdir(dir) != nullptr) ++n;
  ::closedir(dir);
  return n;
}

// A server thread that accepts one connection and plays `mode`; it holds the
// connection open for at most 3 s (or until destroyed).
struct BannerServer {
  enum class Mode { kSend, kSendInTwoParts, kSilent, kCloseAtOnce };
  Listener listener{"127.0.0.1"};
  std::thread thread;
  std::atomic<bool> stop{false};
  BannerServer(Mode mode, std::string banner) {
    thread = std::thread([this, mode, banner] {
      const int c = ::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      if (mode == Mode::kSend) {
        [[maybe_unused]] ssize_t n = ::write(c, banner.data(), banner.size());
      } else if (mode == Mode::kSendInTwoParts) {
        const std::size_t half = banner.size() / 2;
        [[maybe_unused]] ssize_t n = ::write(c, banner.data(), half);
        std::this_thread::sleep_for(50ms);
        n = ::write(c, banner.data() + half, banner.size() - half);
      }
      if (mode != Mode::kCloseAtOnce) {
        for (int i = 0; i < 300 && !stop; ++i) std::this_thread::sleep_for(10ms);  // bounded: 3 s
      }
      ::close(c);
    });
  }
  ~BannerServer() {
    stop = true;
    ::shutdown(listener.fd, SHUT_RDWR);  // wakes accept() if nobody came
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
                                              Duration timeout, const std::string& banner = "",
                                              std::size_t banner_bytes = 256) {
    auto opts = std::make_shared<tcp::TcpOptions>();
    opts->port = static_cast<std::uint16_t>(port);
    opts->count = 1;  // one connect per run: these cases are about a single connect
    opts->expect_banner = banner;
    opts->banner_bytes = banner_bytes;
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

  // Submits every target and runs the reactor until every result is in
  // (bounded by `limit`). Fails the test if `done` runs inside submit().
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
    for (int turns = 0; turns < 100'000 && out.size() < targets.size() && clock.now() < deadline; ++turns) {
      reactor.run_once(20ms);
    }
    return out;
  }

  Sample one(const std::string& address, int port, Duration timeout = 2s, const std::string& banner = "",
             std::size_t banner_bytes = 256) {
    auto s = run({target("t", address, port, timeout, banner, banner_bytes)});
    EXPECT_EQ(s.size(), 1u) << "one sample for one probe, within the time limit";
    return s.empty() ? Sample{} : s.front();
  }

  // Runs the reactor for about `d` (bounded turns).
  void spin(Duration d) {
    const SteadyTime until = clock.now() + d;
    for (int turns = 0; turns < 1000 && clock.now() < until; ++turns) reactor.run_once(10ms);
  }
};

double value(const Sample& s, const std::string& name) {
  for (const auto& [k, v] : s.values) {
    if (k == name) return v;
  }
  return -1;
}

// --- the test process's own namespace -------------------------------------

TEST(TcpProbeTest, PrivateNamespaceIsInheritedByThreads) {
  NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
  const std::string mine = test::netns_id();
  ASSERT_FALSE(mine.empty());
  EXPECT_NE(mine, test::original_netns_id()) << "moved out of the namespace the process started in";
  std::string in_thread;
  std::thread([&in_thread] { in_thread = test::netns_id(); }).join();
  EXPECT_EQ(in_thread, mine) << "threads started later live in the private namespace too";
  // Nothing but loopback: no route to anything real.
  struct if_nameindex* names = ::if_nameindex();
  ASSERT_NE(names, nullptr);
  std::vector<std::string> interfaces;
  for (struct if_nameindex* i = names; i->if_index != 0; ++i) interfaces.emplace_back(i->if_name);
  ::if_freenameindex(names);
  EXPECT_EQ(interfaces, std::vector<std::string>{"lo"});
}

// --- loopback ---------------------------------------------------------------

TEST(TcpProbeTest, OpenPortSucceeds) {
  Listener l("127.0.0.1");
  Harness h;
  Sample s = h.one("127.0.0.1", l.port);
  EXPECT_TRUE(s.ok) << s.detail;
  EXPECT_EQ(s.reason, FailureReason::kNone);
  EXPECT_EQ(s.kind, "tcp");
  EXPECT_EQ(s.target, "t");
  EXPECT_EQ(s.probe, "tcp_" + std::to_string(l.port));
  EXPECT_GT(value(s, "connect_seconds"), 0);
  EXPECT_LT(value(s, "connect_seconds"), 1);
  EXPECT_GT(s.duration, 0ns);
  EXPECT_EQ(h.engine->in_flight(), 0u);
  EXPECT_EQ(h.reactor.watched_fds(), 0u);
}

TEST(TcpProbeTest, ClosedPortIsRefused) {
  Harness h;
  const int port = closed_port("127.0.0.1");
  Sample s = h.one("127.0.0.1", port);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.reason, FailureReason::kRefused);
  EXPECT_NE(s.detail.find("127.0.0.1:" + std::to_string(port) + ": Connection refused"), std::string::npos)
      << s.detail;
  EXPECT_EQ(value(s, "connect_seconds"), -1) << "never connected";
}

TEST(TcpProbeTest, Ipv6LoopbackOpenAndClosed) {
  Listener l("::1", AF_INET6);
  Harness h;
  Sample open = h.one("::1", l.port);
  EXPECT_TRUE(open.ok) << open.detail;
  EXPECT_GT(value(open, "connect_seconds"), 0);
  Sample closed = h.one("::1", closed_port("::1", AF_INET6));
  EXPECT_EQ(closed.reason, FailureReason::kRefused) << closed.detail;
  EXPECT_NE(closed.detail.find("[::1]:"), std::string::npos) << closed.detail;
}

TEST(TcpProbeTest, HostnameResolvesOffTheReactor) {
  Listener l("127.0.0.1");
  Harness h;
  Sample s = h.one("localhost", l.port);
  EXPECT_TRUE(s.ok) << s.detail;
  // The second time from the resolver's cache: still never inside submit().
  EXPECT_TRUE(h.one("localhost", l.port).ok);
}

TEST(TcpProbeTest, UnresolvableHostnameIsADnsFailure) {
  Harness h;
  Sample s = h.one("nonexistent.invalid", 80, 3s);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.reason, FailureReason::kDnsFailure);
  EXPECT_NE(s.detail.find("nonexistent.invalid"), std::string::npos) << s.detail;
  EXPECT_EQ(h.engine->in_flight(), 0u);
}

// --- banners ----------------------------------------------------------------

TEST(TcpProbeTest, ExpectedBannerSucceeds) {
  BannerServer server(BannerServer::Mode::kSend, "SSH-2.0-test\r\n");
  Harness h;
  Sample s = h.one("127.0.0.1", server.listener.port, 2s, "SSH-");
  EXPECT_TRUE(s.ok) << s.detail;
  EXPECT_GT(value(s, "connect_seconds"), 0);
}

TEST(TcpProbeTest, BannerArrivingInPiecesIsAssembled) {
  BannerServer server(BannerServer::Mode::kSendInTwoParts, "SSH-2.0-test\r\n");
  Harness h;
  Sample s = h.one("127.0.0.1", server.listener.port, 2s, "SSH-2.0-test");
  EXPECT_TRUE(s.ok) << s.detail;
}

TEST(TcpProbeTest, WrongBannerIsAMismatchWithWhatArrived) {
  BannerServer server(BannerServer::Mode::kSend, "HTTP/1.0 400 Bad Request\r\n");
  Harness h;
  // The peer keeps the connection open, so more might still come: the verdict
  // waits for the timeout.
  Sample s = h.one("127.0.0.1", server.listener.port, 500ms, "SSH-");
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.reason, FailureReason::kBannerMismatch);
  EXPECT_NE(s.detail.find("\"HTTP/1.0 400 Bad Request\\r\\n\" lacks \"SSH-\""), std::string::npos) << s.detail;
}

TEST(TcpProbeTest, WrongBannerFillingTheReadLimitIsAMismatchAtOnce) {
  BannerServer server(BannerServer::Mode::kSend, "HTTP/1.0 400 Bad Request\r\n");
  Harness h;
  Sample s = h.one("127.0.0.1", server.listener.port, 5s, "SSH-", /*banner_bytes=*/8);
  EXPECT_EQ(s.reason, FailureReason::kBannerMismatch) << s.detail;
  EXPECT_NE(s.detail.find("\"HTTP/1.0\" lacks \"SSH-\" within 8 bytes"), std::string::npos) << s.detail;
  EXPECT_LT(s.duration, 1s) << "no need to wait for the timeout";
}

TEST(TcpProbeTest, SilentServerTimesOutWaitingForTheBanner) {
  BannerServer server(BannerServer::Mode::kSilent, "");
  Harness h;
  Sample s = h.one("127.0.0.1", server.listener.port, 300ms, "SSH-");
  EXPECT_EQ(s.reason, FailureReason::kTimeout);
  EXPECT_NE(s.detail.find("no banner"), std::string::npos) << s.detail;
  EXPECT_GT(value(s, "connect_seconds"), 0) << "it did connect";
  EXPECT_GE(s.duration, 300ms);
  EXPECT_LT(s.duration, 800ms);
}

TEST(TcpProbeTest, ServerClosingAtOnceIsConnectionClosed) {
  BannerServer server(BannerServer::Mode::kCloseAtOnce, "");
  Harness h;
  Sample s = h.one("127.0.0.1", server.listener.port, 2s, "SSH-");
  EXPECT_EQ(s.reason, FailureReason::kConnectionClosed) << s.detail;
  EXPECT_NE(s.detail.find("before sending a banner"), std::string::npos) << s.detail;
  EXPECT_LT(s.duration, 1s);
}

// --- many at once -------------------------------------------------------------

TEST(TcpProbeTest, TwoThousandInFlightAllMatched) {
  // Every probe's socket is opened in the same reactor turn: 2000 descriptors.
  rlimit saved{};
  ::getrlimit(RLIMIT_NOFILE, &saved);
  rlimit raised = saved;
  raised.rlim_cur = std::max<rlim_t>(saved.rlim_cur, std::min<rlim_t>(saved.rlim_max, 8192));
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &raised), 0);
  ASSERT_GE(raised.rlim_cur, 2100u) << "hard descriptor limit too low for 2000 probes";

  // Targets take turns over two open ports and two closed ones, so a result
  // delivered to the wrong target shows.
  Listener open_a("127.0.0.1"), open_b("127.0.0.1");
  const int ports[4] = {open_a.port, closed_port("127.0.0.1"), open_b.port, closed_port("127.0.0.1")};
  Harness h;
  std::vector<std::shared_ptr<const Target>> targets;
  for (int i = 0; i < 2000; ++i) {
    targets.push_back(Harness::target("t" + std::to_string(i), "127.0.0.1", ports[i % 4], 5s));
  }
  const SteadyTime start = h.clock.now();
  auto results = h.run(targets, 20s);
  const Duration took = h.clock.now() - start;
  std::printf("2000 probes in flight: all answered in %.1f ms\n", ms(took));
  ASSERT_EQ(results.size(), 2000u);
  std::set<std::string> seen;
  int ok = 0, refused = 0;
  for (const auto& s : results) {
    SCOPED_TRACE(s.target);
    EXPECT_TRUE(seen.insert(s.target).second) << "one result per target";
    const int i = std::stoi(s.target.substr(1));
    if (i % 2 == 0) {
      EXPECT_TRUE(s.ok) << s.detail;
      EXPECT_GT(value(s, "connect_seconds"), 0);
      ok += s.ok ? 1 : 0;
    } else {
      EXPECT_EQ(s.reason, FailureReason::kRefused);
      EXPECT_NE(s.detail.find("127.0.0.1:" + std::to_string(ports[i % 4]) + ":"), std::string::npos) << s.detail;
      refused += s.reason == FailureReason::kRefused ? 1 : 0;
    }
  }
  EXPECT_EQ(seen.size(), 2000u);
  EXPECT_EQ(ok, 1000);
  EXPECT_EQ(refused, 1000);
  // Each open port got exactly its share of connections.
  EXPECT_EQ(open_a.drain_accept_queue(500, 2s), 500);
  EXPECT_EQ(open_b.drain_accept_queue(500, 2s), 500);
  EXPECT_EQ(h.engine->in_flight(), 0u);
  EXPECT_EQ(h.reactor.watched_fds(), 0u) << "every socket unwatched and closed";
  ::setrlimit(RLIMIT_NOFILE, &saved);
}

// --- engine lifetime ----------------------------------------------------------

TEST(TcpProbeTest, EngineDestroyedWhileConnectingClosesItsSockets) {
  NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
  PeerHost peer;
  NIGHTSHIFT_REQUIRE_TESTNET(peer.error());
  Harness h;
  const int fds_before = open_fds();
  int called = 0;
  auto t = Harness::target("t", PeerHost::kSilent, 80, 5s);
  for (int i = 0; i < 10; ++i) {
    ProbeRequest req;
    req.target = t;
    req.spec = &t->probes.front();
    req.done = [&called](Sample) { ++called; };
    h.engine->submit(std::move(req));
  }
  h.spin(50ms);  // addresses in, SYNs out, nobody answers
  EXPECT_EQ(h.engine->in_flight(), 10u);
  EXPECT_EQ(h.reactor.watched_fds(), 10u);
  EXPECT_EQ(open_fds(), fds_before + 10);
  h.engine.reset();
  EXPECT_EQ(open_fds(), fds_before) << "every socket closed by the destructor";
  EXPECT_EQ(h.reactor.watched_fds(), 0u);
  EXPECT_EQ(h.reactor.pending_timers(), 0u) << "deadlines cancelled";
  h.spin(100ms);
  EXPECT_EQ(called, 0);
}

TEST(TcpProbeTest, EngineDestroyedBeforeAddressesArriveIgnoresThem) {
  // The resolver answers through the reactor, for IP literals (posted) and
  // hostnames (from its worker) alike, so answers can come after the engine is
  // gone. ASan reports a use after free if the engine is still reached.
  Listener l("127.0.0.1");
  Harness h;
  int called = 0;
  std::vector<std::shared_ptr<const Target>> targets = {
      Harness::target("literal", "127.0.0.1", l.port, 2s),
      Harness::target("hostname", "localhost", l.port, 2s),
      Harness::target("unresolvable", "nonexistent.invalid", l.port, 2s),
  };
  for (const auto& t : targets) {
    ProbeRequest req;
    req.target = t;
    req.spec = &t->probes.front();
    req.done = [&called](Sample) { ++called; };
    h.engine->submit(std::move(req));
  }
  h.engine.reset();
  h.spin(500ms);  // the answers arrive now
  EXPECT_EQ(called, 0);
  EXPECT_EQ(h.reactor.watched_fds(), 0u);
}

// --- test hosts in a peer namespace ---------------------------------------------

TEST(TcpProbeTest, OpenPortAcrossTheVethSucceeds) {
  NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
  PeerHost peer;
  NIGHTSHIFT_REQUIRE_TESTNET(peer.error());
  Listener l(peer.listen_tcp(PeerHost::kPeer));
  ASSERT_GE(l.fd, 0) << peer.error();
  Listener l6(peer.listen_tcp(PeerHost::kPeer6));
  ASSERT_GE(l6.fd, 0) << peer.error();
  Harness h;
  Sample s = h.one(PeerHost::kPeer, l.port);
  EXPECT_TRUE(s.ok) << s.detail;
  EXPECT_GT(value(s, "connect_seconds"), 0);
  Sample s6 = h.one(PeerHost::kPeer6, l6.port);
  EXPECT_TRUE(s6.ok) << s6.detail;
  // Only the peer listens there: the same port here is closed.
  EXPECT_EQ(h.one(PeerHost::kLocal, l.port).reason, FailureReason::kRefused);
}

TEST(TcpProbeTest, PeerThatNeverAnswersTimesOutOnTime) {
  NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
  PeerHost peer;
  NIGHTSHIFT_REQUIRE_TESTNET(peer.error());
  Harness h;
  const SteadyTime start = h.clock.now();
  Sample s = h.one(PeerHost::kSilent, 80, 300ms);
  const Duration took = h.clock.now() - start;
  std::printf("silent peer (%s), timeout 300 ms: sample after %.1f ms\n", peer.firewall().c_str(), ms(took));
  EXPECT_EQ(s.reason, FailureReason::kTimeout) << s.detail;
  EXPECT_NE(s.detail.find("no answer from 198.51.100.3:80"), std::string::npos) << s.detail;
  EXPECT_GE(s.duration, 300ms);
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 800ms) << "timeout plus small slack";
  EXPECT_EQ(value(s, "connect_seconds"), -1);
}

// --- spread runs and their confirmation -----------------------------------------

std::shared_ptr<Target> spread_target(const std::string& address, int port, Duration interval, Duration timeout) {
  auto t = std::const_pointer_cast<Target>(Harness::target("svc", address, port, timeout));
  auto opts = std::make_shared<tcp::TcpOptions>(*static_cast<const tcp::TcpOptions*>(t->probes[0].options.get()));
  opts->count = 3;  // the default
  t->probes[0].options = opts;
  t->probes[0].interval = interval;
  return t;
}

// Three connects a run, one every third of the interval, each closed with a
// reset; one sample for the run.
TEST(TcpProbeTest, SpreadRunConnectsThreeTimes) {
  Listener l("127.0.0.1");
  Harness h;
  const SteadyTime start = h.clock.now();
  auto s = h.run({spread_target("127.0.0.1", l.port, 900ms, 450ms)});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_TRUE(s[0].ok) << s[0].detail;
  EXPECT_GE(h.clock.now() - start, 590ms) << "connects at 0, 300 and 600 ms";
  EXPECT_EQ(l.drain_accept_queue(3, 1s), 3);
  EXPECT_EQ(h.engine->in_flight(), 0u);
  EXPECT_EQ(h.reactor.watched_fds(), 0u);
}

// A stopped service refuses: three refusals in a row are the evidence (a reset
// is an answer, never random loss), and the run ends at once, confirmed.
TEST(TcpProbeTest, StoppedServiceIsConfirmedWithinMilliseconds) {
  Harness h;
  const int port = closed_port("127.0.0.1");
  const SteadyTime start = h.clock.now();
  auto s = h.run({spread_target("127.0.0.1", port, 10s, 3s)});
  const Duration took = h.clock.now() - start;
  ASSERT_EQ(s.size(), 1u);
  EXPECT_FALSE(s[0].ok);
  EXPECT_EQ(s[0].reason, FailureReason::kRefused);
  EXPECT_EQ(value(s[0], "confirmation"), 1.0);
  EXPECT_NE(s[0].detail.find("3 of 3 confirmation connects refused"), std::string::npos) << s[0].detail;
  EXPECT_LT(took, 500ms) << "not the 3.3 s to the next connect, nor three runs";
  // Confirmed down: the agent's own confirmation request has nothing to add.
  auto t = spread_target("127.0.0.1", port, 10s, 3s);
  EXPECT_FALSE(h.engine->confirm({t, &t->probes.front(), [](Sample) { ADD_FAILURE(); }}));
}

// A host that went silent (never seen answering): the run's connect is suspect
// after 3/4 of its timeout, then 20 quick connects 100 ms apart (each waiting
// the timeout, no connect time being known) all fail: at 30 % loss that
// happens with p = 0.51^20 = 1.4e-6.
TEST(TcpProbeTest, SilentPeerIsConfirmedByTwentyConnects) {
  NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
  PeerHost peer;
  NIGHTSHIFT_REQUIRE_TESTNET(peer.error());
  Harness h;
  const SteadyTime start = h.clock.now();
  auto s = h.run({spread_target(PeerHost::kSilent, 80, 3s, 1s)}, 8s);
  const Duration took = h.clock.now() - start;
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].reason, FailureReason::kTimeout) << s[0].detail;
  EXPECT_EQ(value(s[0], "confirmation"), 1.0);
  EXPECT_NE(s[0].detail.find("20 of 20 confirmation connects failed"), std::string::npos) << s[0].detail;
  EXPECT_LT(took, 4000ms) << "0.675 s to suspect + 19 x 100 ms + 0.9 s";
  EXPECT_EQ(h.engine->in_flight(), 0u);
  h.spin(200ms);
  EXPECT_EQ(h.reactor.watched_fds(), 0u);
}

// A link cut (the far end's carrier lost): the kernel flushes the neighbour
// and queues the SYN behind ARP, which gives up only after 3 s. A connect that
// stays unanswered past the target's learned connect time (200 ms here)
// starts the confirmation at once, and its connects wait as long (not 1 s):
// confirmed in 0.2 + 19 x 100 ms + 0.2 s, at the default interval and timeout.
TEST(TcpProbeTest, LinkCutIsConfirmedBeforeArpGivesUp) {
  NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
  PeerHost peer;
  NIGHTSHIFT_REQUIRE_TESTNET(peer.error());
  Listener l(peer.listen_tcp(PeerHost::kPeer));
  ASSERT_GE(l.fd, 0) << peer.error();
  Harness h;
  // A quick run first teaches the engine this service's connect time.
  auto learn = h.run({spread_target(PeerHost::kPeer, l.port, 600ms, 150ms)});
  ASSERT_EQ(learn.size(), 1u);
  ASSERT_TRUE(learn[0].ok) << learn[0].detail;
  ASSERT_TRUE(peer.set_peer_link(false)) << peer.error();
  const SteadyTime start = h.clock.now();
  auto s = h.run({spread_target(PeerHost::kPeer, l.port, 10s, 3s)}, 8s);
  const Duration took = h.clock.now() - start;
  ASSERT_EQ(s.size(), 1u);
  EXPECT_FALSE(s[0].ok);
  EXPECT_EQ(value(s[0], "confirmation"), 1.0);
  EXPECT_NE(s[0].detail.find("20 of 20 confirmation connects failed"), std::string::npos) << s[0].detail;
  EXPECT_LT(took, 2900ms) << "not ARP's 3 s plus 20 connects of 1 s";
  EXPECT_EQ(h.engine->in_flight(), 0u);
  h.spin(400ms);
  EXPECT_EQ(h.reactor.watched_fds(), 0u) << "the run's own connect is closed with it";
}

TEST(TcpProbeTest, PeerSilencedByIptablesTimesOutToo) {
  // The fallback for kernels where nftables is unusable.
  NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
  PeerHost peer;
  NIGHTSHIFT_REQUIRE_TESTNET(peer.error());
  ASSERT_TRUE(peer.add_peer_address("198.51.100.4/32")) << peer.error();
  if (!peer.drop_inbound("198.51.100.4", PeerHost::Firewall::kIptables)) {
    NIGHTSHIFT_REQUIRE_TESTNET(peer.error());
  }
  Harness h;
  Sample s = h.one("198.51.100.4", 80, 300ms);
  EXPECT_EQ(s.reason, FailureReason::kTimeout) << s.detail;
  EXPECT_GE(s.duration, 300ms);
  EXPECT_LT(s.duration, 800ms);
}

TEST(TcpProbeTest, ClosedPortOnANamespacedHostIsRefused) {
  NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
  PeerHost peer;
  NIGHTSHIFT_REQUIRE_TESTNET(peer.error());
  Harness h;
  Sample s = h.one(PeerHost::kPeer, 81, 2s);
  EXPECT_EQ(s.reason, FailureReason::kRefused) << s.detail;
  EXPECT_NE(s.detail.find("198.51.100.2:81"), std::string::npos) << s.detail;
  Sample s6 = h.one(PeerHost::kPeer6, 81, 2s);
  EXPECT_EQ(s6.reason, FailureReason::kRefused) << s6.detail;
  EXPECT_NE(s6.detail.find("[2001:db8:5e::2]:81"), std::string::npos) << s6.detail;
}

TEST(TcpProbeTest, NoRouteIsUnreachableAtOnce) {
  NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
  PeerHost peer;
  NIGHTSHIFT_REQUIRE_TESTNET(peer.error());
  Harness h;
  for (const char* address : {PeerHost::kUnreachable, PeerHost::kUnreachable6}) {
    SCOPED_TRACE(address);
    Sample s = h.one(address, 80, 2s);
    EXPECT_EQ(s.reason, FailureReason::kUnreachable) << s.detail;
    EXPECT_NE(s.detail.find("No route to host"), std::string::npos) << s.detail;
    EXPECT_LT(s.duration, 200ms) << "no route fails at once, not at the timeout";
  }
}

TEST(TcpProbeTest, LocalLinkDownIsUnreachableThenUpAnswersAgain) {
  NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
  PeerHost peer;
  NIGHTSHIFT_REQUIRE_TESTNET(peer.error());
  Listener l(peer.listen_tcp(PeerHost::kPeer));
  ASSERT_GE(l.fd, 0) << peer.error();
  Harness h;
  ASSERT_TRUE(h.one(PeerHost::kPeer, l.port, 1s).ok);
  ASSERT_TRUE(peer.set_link(false)) << peer.error();
  // The interface is down, so its route is gone: no route to the peer.
  Sample down = h.one(PeerHost::kPeer, l.port, 300ms);
  EXPECT_EQ(down.reason, FailureReason::kUnreachable) << to_string(down.reason) << ": " << down.detail;
  EXPECT_LT(down.duration, 200ms);
  ASSERT_TRUE(peer.set_link(true)) << peer.error();
  Sample up;
  for (int i = 0; i < 20 && !up.ok; ++i) up = h.one(PeerHost::kPeer, l.port, 300ms);
  EXPECT_TRUE(up.ok) << to_string(up.reason) << ": " << up.detail;
}

TEST(TcpProbeTest, PeerLinkDownIsATimeout) {
  // The far end goes away (carrier lost): the route stays, packets vanish.
  NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
  PeerHost peer;
  NIGHTSHIFT_REQUIRE_TESTNET(peer.error());
  Listener l(peer.listen_tcp(PeerHost::kPeer));
  ASSERT_GE(l.fd, 0) << peer.error();
  Harness h;
  {
    Sample before = h.one(PeerHost::kPeer, l.port, 1s);
    ASSERT_TRUE(before.ok) << to_string(before.reason) << ": " << before.detail;
  }
  ASSERT_TRUE(peer.set_peer_link(false)) << peer.error();
  Sample down = h.one(PeerHost::kPeer, l.port, 300ms);
  EXPECT_EQ(down.reason, FailureReason::kTimeout) << to_string(down.reason) << ": " << down.detail;
  EXPECT_GE(down.duration, 300ms);
  EXPECT_LT(down.duration, 800ms);
}

}  // namespace
}  // namespace nightshift
