// ICMP engine on real sockets. The whole test process first moves into a
// private network namespace (loopback only), so it can set its own
// net.ipv4.ping_group_range and never sends a packet outside. Peer hosts live
// in namespaces held by child processes this file starts and kills:
//
//   us (198.51.100.2, 2001:db8:1::2) -- router (198.51.100.1 | 203.0.113.1,
//   2001:db8:1::1 | 2001:db8:2::1, forwarding) -- far (203.0.113.2, .3 dropped;
//   2001:db8:2::2; .4 whose replies the router duplicates)
//
// The router also has an `unreachable` route for 203.0.113.128/25.
#include "probes/icmp/icmp.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "serve/metrics.h"
#include "tests/support/testnet.h"

namespace nightshift::icmp {
namespace {

using namespace std::chrono_literals;

// --- namespaces ------------------------------------------------------------

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  return static_cast<bool>(f.flush());
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

int sh(const std::string& cmd) {
  const int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// A child process sitting in a fresh network namespace until killed.
struct NetnsHolder {
  pid_t pid = -1;
  NetnsHolder() {
    int fds[2];
    if (::pipe(fds) != 0) return;
    pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      const char ok = ::unshare(CLONE_NEWNET) == 0 ? '1' : '0';
      [[maybe_unused]] auto n = ::write(fds[1], &ok, 1);
      ::close(fds[1]);
      for (int i = 0; i < 600; ++i) ::sleep(1);  // bounded: killed by the destructor long before
      ::_exit(0);
    }
    ::close(fds[1]);
    char ok = '0';
    if (::read(fds[0], &ok, 1) != 1 || ok != '1') {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      pid = -1;
    }
    ::close(fds[0]);
  }
  ~NetnsHolder() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);  // the namespace and its veth ends go with the last process
      ::waitpid(pid, nullptr, 0);
    }
  }
  std::string in() const { return "nsenter -t " + std::to_string(pid) + " -n "; }
};

class Network {
 public:
  static Network& get() {
    static Network n;
    return n;
  }
  bool private_ok = false;  // we are in our own namespace with lo up
  bool peers_ok = false;    // router and far host are up
  // Why not, for NIGHTSHIFT_REQUIRE_TESTNET: "" when ok.
  std::string private_error = "not set up";
  std::string peers_error = "not set up";
  std::unique_ptr<NetnsHolder> router, far;

 private:
  Network() {
    if (::unshare(CLONE_NEWNET) != 0) {
      private_error = peers_error = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) + " (needs root)";
      return;
    }
    private_ok = sh("ip link set lo up") == 0;
    if (!private_ok) {
      private_error = peers_error = "ip link set lo up failed (install iproute2)";
      return;
    }
    private_error.clear();
    router = std::make_unique<NetnsHolder>();
    far = std::make_unique<NetnsHolder>();
    if (router->pid < 0 || far->pid < 0) {
      peers_error = "cannot start the processes holding the peer namespaces";
      return;
    }
    const std::string r = router->in(), f = far->in();
    const std::string rp = std::to_string(router->pid), fp = std::to_string(far->pid);
    const char* const nodad = " nodad";
    const std::vector<std::string> cmds = {
        // No duplicate address detection on the links about to be made: the
        // link-local addresses are usable at once (IPv6 answers ~1 s sooner).
        "sysctl -w net.ipv6.conf.default.accept_dad=0",
        r + "sysctl -w net.ipv6.conf.default.accept_dad=0",
        f + "sysctl -w net.ipv6.conf.default.accept_dad=0",
        "ip link add ns0 type veth peer name r0 netns " + rp,
        "ip addr add 198.51.100.2/24 dev ns0",
        std::string("ip addr add 2001:db8:1::2/64 dev ns0") + nodad,
        "ip link set ns0 up",
        "ip route add 203.0.113.0/24 via 198.51.100.1",
        "ip -6 route add 2001:db8:2::/64 via 2001:db8:1::1",
        r + "ip link set lo up",
        r + "ip addr add 198.51.100.1/24 dev r0",
        r + "ip addr add 2001:db8:1::1/64 dev r0" + nodad,
        r + "ip link set r0 up",
        r + "ip link add r1 type veth peer name f0 netns " + fp,
        r + "ip addr add 203.0.113.1/24 dev r1",
        r + "ip addr add 2001:db8:2::1/64 dev r1" + nodad,
        r + "ip link set r1 up",
        r + "ip route add unreachable 203.0.113.128/25",
        r + "sysctl -w net.ipv4.ip_forward=1",
        r + "sysctl -w net.ipv6.conf.all.forwarding=1",
        r + "sysctl -w net.ipv4.icmp_ratelimit=0",
        r + "sysctl -w net.ipv6.icmp.ratelimit=0",
        f + "ip link set lo up",
        f + "ip addr add 203.0.113.2/24 dev f0",
        f + "ip addr add 203.0.113.3/24 dev f0",
        f + "ip addr add 2001:db8:2::2/64 dev f0" + nodad,
        f + "ip link set f0 up",
        f + "ip route add default via 203.0.113.1",
        f + "ip -6 route add default via 2001:db8:2::1",
        // The host that never answers: everything to .3 is dropped on arrival.
        f + "iptables -A INPUT -d 203.0.113.3 -j DROP",
        // The host whose every reply arrives twice: the router clones .4's
        // echo replies straight to us (TEE) besides forwarding them.
        f + "ip addr add 203.0.113.4/24 dev f0",
        r + "iptables -t mangle -A FORWARD -s 203.0.113.4 -p icmp --icmp-type echo-reply -j TEE --gateway 198.51.100.2",
    };
    for (const auto& c : cmds) {
      if (sh(c) != 0) {
        std::fprintf(stderr, "icmp_test: setup failed: %s\n", c.c_str());
        peers_error = "peer setup failed: " + c;
        return;
      }
    }
    // Wait (bounded) until the far host answers through the router.
    // Short waits: the first IPv6 attempt usually fails while neighbour
    // discovery runs, and every test process pays for this setup.
    for (int i = 0; i < 50 && !peers_ok; ++i) {
      peers_ok = sh("ping -c 1 -W 0.2 -n 203.0.113.2") == 0 && sh("ping -6 -c 1 -W 0.2 -n 2001:db8:2::2") == 0;
      if (!peers_ok) std::this_thread::sleep_for(100ms);
    }
    peers_error = peers_ok ? "" : "the far host does not answer through the router (203.0.113.2, 2001:db8:2::2)";
  }
};

// --- engine harness ------------------------------------------------------------

SocketAddress addr(const std::string& s) {
  auto a = Resolver::parse_literal(s);
  EXPECT_TRUE(a) << s;
  return a.value_or(SocketAddress{});
}

struct Harness {
  SystemClock clock;
  Reactor reactor{clock};
  Resolver resolver{reactor};
  EngineContext context{reactor, resolver};
  // Runs the reactor until `done()` or `limit` passes.
  template <typename F>
  bool run_until(F done, Duration limit = 10s) {
    const SteadyTime end = clock.now() + limit;
    while (!done() && clock.now() < end) reactor.run_once(20ms);
    return done();
  }
};

class IcmpSocketTest : public ::testing::TestWithParam<SocketKind> {
 protected:
  void SetUp() override {
    Network& n = Network::get();
    NIGHTSHIFT_REQUIRE_TESTNET(n.private_error);
    saved_range_ = read_file("/proc/sys/net/ipv4/ping_group_range");
    // Per network namespace: changing it here touches nothing outside.
    write_file("/proc/sys/net/ipv4/ping_group_range", GetParam() == SocketKind::kDatagram ? "0 2147483647" : "1 0");
    settings_.socket_kind = GetParam();
  }
  void TearDown() override {
    if (!saved_range_.empty()) write_file("/proc/sys/net/ipv4/ping_group_range", saved_range_);
  }
  EngineSettings settings_;
  std::string saved_range_;
};

std::string kind_name(const ::testing::TestParamInfo<SocketKind>& info) {
  return info.param == SocketKind::kRaw ? "Raw" : "Datagram";
}

INSTANTIATE_TEST_SUITE_P(Sockets, IcmpSocketTest, ::testing::Values(SocketKind::kRaw, SocketKind::kDatagram),
                         kind_name);

TEST_P(IcmpSocketTest, ManyLoopbackTargetsInOneRoundAllMatched) {
  Harness h;
  IcmpEngine engine(h.context, settings_);
  constexpr int kTargets = 3000;
  RoundSpec spec;
  spec.count = 2;
  spec.spacing = 50ms;
  spec.timeout = 2s;
  std::vector<std::optional<RoundResult>> results(kTargets);
  int pending = kTargets;
  for (int i = 0; i < kTargets; ++i) {
    const std::string a = "127.1." + std::to_string(i / 250) + "." + std::to_string(1 + i % 250);
    engine.ping(addr(a), spec, [&, i](RoundResult r) {
      results[static_cast<std::size_t>(i)] = std::move(r);
      --pending;
    });
  }
  EXPECT_EQ(pending, kTargets) << "never called back from inside ping()";
  ASSERT_TRUE(h.run_until([&] { return pending == 0; }, 20s));
  EXPECT_EQ(engine.socket_kind(Family::kIPv4), GetParam());
  for (int i = 0; i < kTargets; ++i) {
    const auto& r = *results[static_cast<std::size_t>(i)];
    ASSERT_EQ(r.sent, 2) << i;
    ASSERT_EQ(r.received, 2) << i << ": " << r.detail;
    ASSERT_EQ(r.reason, FailureReason::kNone);
    ASSERT_EQ(r.reply_ttl(), 64);
    for (const auto& p : r.packets) {
      ASSERT_EQ(p.from->to_string(), "127.1." + std::to_string(i / 250) + "." + std::to_string(1 + i % 250));
    }
  }
  EXPECT_EQ(engine.stats().sent, 2u * kTargets);
  EXPECT_EQ(engine.stats().replies, 2u * kTargets);
  EXPECT_EQ(engine.stats().duplicates, 0u);
  EXPECT_EQ(engine.stats().malformed, 0u);
}

TEST_P(IcmpSocketTest, Ipv6Loopback) {
  Harness h;
  IcmpEngine engine(h.context, settings_);
  std::optional<RoundResult> result;
  RoundSpec spec;
  spec.count = 3;
  spec.spacing = 10ms;
  engine.ping(addr("::1"), spec, [&](RoundResult r) { result = std::move(r); });
  ASSERT_TRUE(h.run_until([&] { return result.has_value(); }));
  EXPECT_EQ(engine.socket_kind(Family::kIPv6), GetParam());
  EXPECT_EQ(result->received, 3) << result->detail;
  EXPECT_EQ(result->reply_ttl(), 64) << "hop limit from IPV6_RECVHOPLIMIT";
}

TEST_P(IcmpSocketTest, RttHasMicrosecondResolutionOnLoopback) {
  Harness h;
  IcmpEngine engine(h.context, settings_);
  std::optional<RoundResult> result;
  RoundSpec spec;
  spec.count = 20;
  spec.spacing = 5ms;
  engine.ping(addr("127.0.0.1"), spec, [&](RoundResult r) { result = std::move(r); });
  ASSERT_TRUE(h.run_until([&] { return result.has_value(); }));
  ASSERT_EQ(result->received, 20);
  double min = 1;
  bool sub_10us_digits = false;
  for (const auto& p : result->packets) {
    EXPECT_GT(p.rtt_seconds, 0);
    min = std::min(min, p.rtt_seconds);
    // A 10 us grid would make every value a multiple of 1e-5.
    const double in_10us = p.rtt_seconds / 1e-5;
    if (std::fabs(in_10us - std::round(in_10us)) > 0.01) sub_10us_digits = true;
  }
  EXPECT_LT(min, 0.001) << "loopback round trips take microseconds, not milliseconds";
  EXPECT_TRUE(sub_10us_digits);
}

TEST_P(IcmpSocketTest, NeverAnsweringHostTimesOut) {
  NIGHTSHIFT_REQUIRE_TESTNET(Network::get().peers_error);
  Harness h;
  IcmpEngine engine(h.context, settings_);
  std::optional<RoundResult> result;
  RoundSpec spec;
  spec.count = 2;
  spec.spacing = 50ms;
  spec.timeout = 300ms;
  const SteadyTime start = h.clock.now();
  engine.ping(addr("203.0.113.3"), spec, [&](RoundResult r) { result = std::move(r); });
  ASSERT_TRUE(h.run_until([&] { return result.has_value(); }));
  const Duration took = h.clock.now() - start;
  EXPECT_FALSE(result->ok());
  EXPECT_EQ(result->reason, FailureReason::kTimeout);
  EXPECT_EQ(result->sent, 2);
  EXPECT_EQ(result->loss_ratio(), 1.0);
  EXPECT_NE(result->detail.find("203.0.113.3"), std::string::npos) << result->detail;
  EXPECT_GE(took, 340ms);
  EXPECT_LT(took, 1s);
}

TEST_P(IcmpSocketTest, RouterUnreachableIsTheReason) {
  NIGHTSHIFT_REQUIRE_TESTNET(Network::get().peers_error);
  Harness h;
  IcmpEngine engine(h.context, settings_);
  std::optional<RoundResult> result;
  RoundSpec spec;
  spec.count = 2;
  spec.spacing = 20ms;
  spec.timeout = 1s;
  engine.ping(addr("203.0.113.200"), spec, [&](RoundResult r) { result = std::move(r); });
  ASSERT_TRUE(h.run_until([&] { return result.has_value(); }));
  EXPECT_EQ(result->reason, FailureReason::kUnreachable) << result->detail;
  EXPECT_NE(result->detail.find("destination unreachable"), std::string::npos) << result->detail;
  EXPECT_NE(result->detail.find("198.51.100.1"), std::string::npos) << "names the router: " << result->detail;
  EXPECT_GE(engine.stats().icmp_errors, 1u);
}

TEST_P(IcmpSocketTest, ThroughTheRouterTtlIsOneLess) {
  NIGHTSHIFT_REQUIRE_TESTNET(Network::get().peers_error);
  Harness h;
  IcmpEngine engine(h.context, settings_);
  std::optional<RoundResult> v4, v6;
  RoundSpec spec;
  spec.count = 2;
  spec.spacing = 10ms;
  engine.ping(addr("203.0.113.2"), spec, [&](RoundResult r) { v4 = std::move(r); });
  engine.ping(addr("2001:db8:2::2"), spec, [&](RoundResult r) { v6 = std::move(r); });
  ASSERT_TRUE(h.run_until([&] { return v4 && v6; }));
  EXPECT_EQ(v4->received, 2) << v4->detail;
  EXPECT_EQ(v4->reply_ttl(), 63) << "a reroute shows as a changed hop count";
  EXPECT_EQ(v6->received, 2) << v6->detail;
  EXPECT_EQ(v6->reply_ttl(), 63);
}

TEST_P(IcmpSocketTest, DuplicateRepliesAreCountedOnce) {
  NIGHTSHIFT_REQUIRE_TESTNET(Network::get().peers_error);
  Harness h;
  IcmpEngine engine(h.context, settings_);
  std::optional<RoundResult> result;
  RoundSpec spec;
  spec.count = 3;
  spec.spacing = 30ms;
  spec.timeout = 500ms;
  engine.ping(addr("203.0.113.4"), spec, [&](RoundResult r) { result = std::move(r); });
  ASSERT_TRUE(h.run_until([&] { return result.has_value(); }));
  // The last packet's second copy may arrive after the round reported: give it time.
  h.run_until([&] { return engine.stats().duplicates >= 3; }, 300ms);
  EXPECT_EQ(result->sent, 3);
  EXPECT_EQ(result->received, 3) << "a copy is not a second answer";
  EXPECT_EQ(result->loss_ratio(), 0.0);
  EXPECT_GE(result->duplicates, 2) << "seen while the round ran";
  EXPECT_EQ(engine.stats().replies, 3u);
  EXPECT_EQ(engine.stats().duplicates, 3u);
  for (const auto& p : result->packets) {
    EXPECT_EQ(p.outcome, PacketResult::Outcome::kReply);
    EXPECT_GT(p.rtt_seconds, 0);
    EXPECT_LT(p.rtt_seconds, 0.1);
  }
}

TEST_P(IcmpSocketTest, ForeignPingersDoNotDisturbResults) {
  Harness h;
  IcmpEngine engine(h.context, settings_);
  IcmpEngine other(h.context, settings_);  // a second pinger in-process: another cookie
  ASSERT_NE(engine.cookie(), other.cookie());
  // And an outside one, if iputils ping is installed: it floods the same target.
  pid_t ping_pid = -1;
  if (::access("/usr/bin/ping", X_OK) == 0) {
    ping_pid = ::fork();
    if (ping_pid == 0) {
      ::execl("/usr/bin/ping", "ping", "-q", "-n", "-i", "0.002", "-c", "400", "-w", "5", "127.0.0.1",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  RoundSpec spec;
  spec.count = 50;
  spec.spacing = 5ms;
  spec.timeout = 1s;
  std::optional<RoundResult> mine, theirs;
  engine.ping(addr("127.0.0.1"), spec, [&](RoundResult r) { mine = std::move(r); });
  other.ping(addr("127.0.0.1"), spec, [&](RoundResult r) { theirs = std::move(r); });
  ASSERT_TRUE(h.run_until([&] { return mine && theirs; }));
  if (ping_pid > 0) {
    ::kill(ping_pid, SIGTERM);
    ::waitpid(ping_pid, nullptr, 0);
  }
  EXPECT_EQ(mine->received, 50);
  EXPECT_EQ(mine->duplicates, 0);
  EXPECT_EQ(theirs->received, 50);
  EXPECT_EQ(engine.stats().replies, 50u);
  EXPECT_EQ(other.stats().replies, 50u);
  if (GetParam() == SocketKind::kRaw) {
    EXPECT_GE(engine.stats().foreign, 50u) << "a raw socket sees the other pinger's replies and drops them";
  }
}

TEST_P(IcmpSocketTest, ConfirmationBurstAndBudget) {
  NIGHTSHIFT_REQUIRE_TESTNET(Network::get().peers_error);
  Harness h;
  settings_.extra_packets_per_second = 1;
  settings_.extra_packets_burst = 20;
  IcmpEngine engine(h.context, settings_);
  BurstSpec spec;
  spec.count = 10;
  spec.spacing = 20ms;
  spec.timeout = 300ms;
  std::optional<BurstReport> up, down;
  ASSERT_TRUE(engine.confirm(addr("127.0.0.1"), spec, [&](BurstReport r) { up = std::move(r); }).ok());
  ASSERT_TRUE(engine.confirm(addr("203.0.113.3"), spec, [&](BurstReport r) { down = std::move(r); }).ok());
  const Status refused = engine.confirm(addr("127.0.0.1"), spec, [](BurstReport) { ADD_FAILURE(); });
  ASSERT_FALSE(refused.ok()) << "a third burst exceeds the budget of 20";
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(refused.error().message.find("budget"), std::string::npos);
  const SteadyTime start = h.clock.now();
  ASSERT_TRUE(h.run_until([&] { return up && down; }));
  EXPECT_LT(h.clock.now() - start, 1s) << "10 packets 20 ms apart confirm in well under a second";
  EXPECT_EQ(up->result.received, 10);
  EXPECT_EQ(up->longest_miss_run, 0);
  EXPECT_EQ(down->result.received, 0);
  EXPECT_EQ(down->longest_miss_run, 10);
  EXPECT_EQ(down->result.reason, FailureReason::kTimeout);
  EXPECT_LT(engine.budget_available(), 2.0);
}

TEST_P(IcmpSocketTest, PathTraceShowsRouterAndLastHop) {
  NIGHTSHIFT_REQUIRE_TESTNET(Network::get().peers_error);
  Harness h;
  IcmpEngine engine(h.context, settings_);
  TraceSpec spec;
  spec.max_hops = 4;
  spec.spacing = 10ms;
  spec.timeout = 400ms;
  std::optional<TraceReport> reached, broken, reached6;
  ASSERT_TRUE(engine.trace(addr("203.0.113.2"), spec, [&](TraceReport r) { reached = std::move(r); }).ok());
  ASSERT_TRUE(engine.trace(addr("203.0.113.3"), spec, [&](TraceReport r) { broken = std::move(r); }).ok());
  ASSERT_TRUE(engine.trace(addr("2001:db8:2::2"), spec, [&](TraceReport r) { reached6 = std::move(r); }).ok());
  ASSERT_TRUE(h.run_until([&] { return reached && broken && reached6; }));

  ASSERT_EQ(reached->hops.size(), 2u);
  EXPECT_TRUE(reached->reached);
  EXPECT_EQ(reached->hops[0].answer, Hop::Answer::kTimeExceeded) << reached->hops[0].detail;
  EXPECT_EQ(reached->hops[0].from->to_string(), "198.51.100.1");
  EXPECT_EQ(reached->hops[1].answer, Hop::Answer::kReply);
  EXPECT_EQ(reached->hops[1].from->to_string(), "203.0.113.2");
  EXPECT_EQ(reached->last_answering, 2);

  EXPECT_FALSE(broken->reached);
  ASSERT_EQ(broken->hops.size(), 4u);
  EXPECT_EQ(broken->last_answering, 1) << "the path breaks after the router";
  ASSERT_NE(broken->last_hop(), nullptr);
  EXPECT_EQ(broken->last_hop()->from->to_string(), "198.51.100.1");
  EXPECT_EQ(broken->hops[1].answer, Hop::Answer::kNone);

  ASSERT_EQ(reached6->hops.size(), 2u);
  EXPECT_TRUE(reached6->reached);
  EXPECT_EQ(reached6->hops[0].from->to_string(), "2001:db8:1::1");
  EXPECT_EQ(reached6->hops[1].from->to_string(), "2001:db8:2::2");
}

// --- the ProbeEngine contract and metrics ------------------------------------

TEST(IcmpEngineTest, SubmitProducesASampleWithMetrics) {
  NIGHTSHIFT_REQUIRE_TESTNET(Network::get().private_error);
  Harness h;
  auto engine = make_engine(h.context);
  auto target = std::make_shared<Target>();
  target->name = "lo";
  target->address = "127.0.0.1";
  ProbeSpec spec;
  spec.kind = "icmp";
  spec.name = "icmp";
  spec.interval = 10s;
  spec.timeout = 1s;
  auto opts = std::make_shared<IcmpOptions>();
  opts->count = 3;
  opts->spacing = 10ms;
  spec.options = opts;
  target->probes.push_back(spec);
  std::optional<Sample> sample;
  ProbeRequest req;
  req.target = target;
  req.spec = &target->probes.front();
  req.done = [&](Sample s) { sample = std::move(s); };
  engine->submit(std::move(req));
  EXPECT_EQ(engine->in_flight(), 1u);
  ASSERT_TRUE(h.run_until([&] { return sample.has_value(); }));
  EXPECT_EQ(engine->in_flight(), 0u);
  EXPECT_TRUE(sample->ok) << sample->detail;
  EXPECT_EQ(sample->kind, "icmp");
  EXPECT_EQ(sample->observations.size(), 3u);

  AgentMetrics metrics("test");
  metrics.sync_targets({target});
  metrics.record(*sample);
  const std::string text = metrics.render();
  for (const char* want :
       {"probe_icmp_rtt_seconds_bucket{", "le=\"0.0001\"", "probe_icmp_rtt_seconds_count{", "probe_icmp_loss_ratio{",
        "probe_icmp_jitter_seconds{", "probe_icmp_reply_ttl{", "probe_success{"}) {
    EXPECT_NE(text.find(want), std::string::npos) << want;
  }
}

// A scheduled probe's timeout bounds its whole round, not each request: with
// count 3 and spacing 400 ms a 300 ms probe would otherwise run 1.1 s, past a
// 1 s interval, and overlap itself.
TEST(IcmpEngineTest, SubmittedRoundEndsAtTheProbeTimeout) {
  NIGHTSHIFT_REQUIRE_TESTNET(Network::get().private_error);
  Harness h;
  auto engine = make_engine(h.context);
  auto opts = std::make_shared<IcmpOptions>();
  opts->count = 3;
  opts->spacing = 400ms;  // would not fit: shrinks to 75 ms
  std::vector<std::string> addresses = {"127.0.0.1"};
  if (Network::get().peers_ok) addresses.push_back("203.0.113.3");  // never answers
  std::vector<std::shared_ptr<Target>> targets;
  std::vector<std::optional<Sample>> samples(addresses.size());
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    auto target = std::make_shared<Target>();
    target->name = addresses[i];
    target->address = addresses[i];
    ProbeSpec spec;
    spec.kind = "icmp";
    spec.name = "icmp";
    spec.interval = 1s;
    spec.timeout = 300ms;
    spec.options = opts;
    target->probes.push_back(spec);
    targets.push_back(target);
    engine->submit({target, &target->probes.front(), [&samples, i](Sample s) { samples[i] = std::move(s); }});
  }
  ASSERT_TRUE(h.run_until([&] {
    for (const auto& s : samples) {
      if (!s) return false;
    }
    return true;
  }));
  EXPECT_TRUE(samples[0]->ok) << samples[0]->detail;
  EXPECT_EQ(samples[0]->observations.size(), 3u) << "all three requests left and were answered";
  EXPECT_LT(samples[0]->duration, 300ms);
  if (samples.size() > 1) {
    const Sample& down = *samples[1];
    EXPECT_FALSE(down.ok);
    EXPECT_EQ(down.reason, FailureReason::kTimeout);
    EXPECT_GE(down.duration, 290ms);
    EXPECT_LT(down.duration, 450ms) << "ends at the timeout, not 2 x spacing + timeout";
    ASSERT_FALSE(down.values.empty());
    EXPECT_EQ(down.values.front().first, "loss_ratio");
    EXPECT_EQ(down.values.front().second, 1.0) << "all three were sent and lost";
    EXPECT_NE(down.detail.find("3 echo requests within 300ms"), std::string::npos) << down.detail;
  }
}

// --- spread rounds and their own confirmation -----------------------------

std::shared_ptr<Target> icmp_target(const std::string& name, const std::string& address, Duration interval,
                                    Duration timeout) {
  auto target = std::make_shared<Target>();
  target->name = name;
  target->address = address;
  ProbeSpec spec;
  spec.kind = "icmp";
  spec.name = "icmp";
  spec.interval = interval;
  spec.timeout = timeout;
  spec.options = std::make_shared<IcmpOptions>();  // defaults: 3 echoes spread over the interval
  target->probes.push_back(spec);
  return target;
}

std::optional<double> value_of(const Sample& s, const std::string& name) {
  for (const auto& [k, v] : s.values) {
    if (k == name) return v;
  }
  return std::nullopt;
}

// The default round sends one echo every third of the interval: a healthy
// target's round ends with the third reply, two thirds into it.
TEST(IcmpEngineTest, SpreadRoundSendsOneEchoPerThirdOfTheInterval) {
  if (!Network::get().private_ok) GTEST_SKIP() << "cannot create a network namespace (needs root)";
  Harness h;
  IcmpEngine engine(h.context);
  auto target = icmp_target("lo", "127.0.0.1", 900ms, 450ms);
  std::optional<Sample> sample;
  const SteadyTime start = h.clock.now();
  Duration took{};
  engine.submit({target, &target->probes.front(), [&](Sample s) {
                   sample = std::move(s);
                   took = h.clock.now() - start;
                 }});
  ASSERT_TRUE(h.run_until([&] { return sample.has_value(); }));
  EXPECT_TRUE(sample->ok) << sample->detail;
  EXPECT_EQ(sample->observations.size(), 3u);
  // The round, not the sample's duration (blackbox's: one echo's round trip).
  EXPECT_GE(took, 590ms) << "echoes at 0, 300 and 600 ms";
  EXPECT_LT(took, 900ms);
  EXPECT_EQ(engine.stats().sent, 3u) << "a healthy round sends nothing extra";
  EXPECT_EQ(value_of(*sample, "confirmation"), std::nullopt);
}

// A missed echo starts the confirmation at once; 12 of 12 lost ends the round
// early, failed, with `confirmation` = 1 for the rules. Known to answer in
// microseconds, the target is judged within 0.2 s (miss) + 11 x 80 ms + 0.25 s.
TEST(IcmpEngineTest, SpreadRoundConfirmsAMissAndEndsEarly) {
  if (!Network::get().peers_ok) GTEST_SKIP() << "peer namespaces unavailable";
  Harness h;
  IcmpEngine engine(h.context);
  // First a healthy round at the live address, so the engine learns the RTT.
  auto live = icmp_target("far", "203.0.113.2", 900ms, 450ms);
  std::optional<Sample> first;
  engine.submit({live, &live->probes.front(), [&](Sample s) { first = std::move(s); }});
  ASSERT_TRUE(h.run_until([&] { return first.has_value(); }));
  ASSERT_TRUE(first->ok) << first->detail;
  // The same target, now silent, at the shipped defaults (10 s interval, 3 s timeout).
  auto dead = icmp_target("far", "203.0.113.3", 10s, 3s);
  std::optional<Sample> down;
  const SteadyTime start = h.clock.now();
  engine.submit({dead, &dead->probes.front(), [&](Sample s) { down = std::move(s); }});
  ASSERT_TRUE(h.run_until([&] { return down.has_value(); }, 5s));
  const Duration took = h.clock.now() - start;
  EXPECT_FALSE(down->ok);
  EXPECT_EQ(down->reason, FailureReason::kTimeout);
  EXPECT_EQ(value_of(*down, "confirmation"), 1.0);
  EXPECT_NE(down->detail.find("12 of 12 confirmation echoes lost"), std::string::npos) << down->detail;
  EXPECT_LT(took, 1600ms) << "not the 3.3 s to the next echo, nor the 3 s timeout";
  EXPECT_EQ(engine.stats().sent, 3u + 1u + 12u);
  // Confirmed down: asked again, the engine has its evidence already.
  ProbeRequest again{dead, &dead->probes.front(), [](Sample) { ADD_FAILURE() << "no second confirmation"; }};
  EXPECT_FALSE(engine.confirm(std::move(again)));
  EXPECT_GE(engine.budget_available(), 11999.0 - 12.0);
}

// Asked out of schedule (a fleet peer's "probe it now"), the burst's last echo
// waits what the round's own confirmation waits: the learned RTT's 250 ms
// floor here, not the 1 s cap (11 x 80 ms + 1 s = 1.88 s), since the asker's
// decision waits on this answer.
TEST(IcmpEngineTest, OnDemandConfirmationWaitsTheLearnedRttLikeARoundsOwn) {
  if (!Network::get().peers_ok) GTEST_SKIP() << "peer namespaces unavailable";
  Harness h;
  IcmpEngine engine(h.context);
  auto live = icmp_target("far", "203.0.113.2", 900ms, 450ms);
  std::optional<Sample> first;
  engine.submit({live, &live->probes.front(), [&](Sample s) { first = std::move(s); }});
  ASSERT_TRUE(h.run_until([&] { return first.has_value(); }));
  ASSERT_TRUE(first->ok) << first->detail;
  auto dead = icmp_target("far", "203.0.113.3", 10s, 3s);
  std::optional<Sample> down;
  const SteadyTime start = h.clock.now();
  ASSERT_TRUE(engine.confirm({dead, &dead->probes.front(), [&](Sample s) { down = std::move(s); }}));
  ASSERT_TRUE(h.run_until([&] { return down.has_value(); }, 5s));
  const Duration took = h.clock.now() - start;
  EXPECT_FALSE(down->ok);
  EXPECT_EQ(value_of(*down, "confirmation"), 1.0);
  EXPECT_NE(down->detail.find("12 of 12 echoes lost"), std::string::npos) << down->detail;
  EXPECT_GE(took, 11 * 80ms + 250ms);
  EXPECT_LT(took, 1600ms) << "the last echo waited the 1 s cap, not the learned RTT";
}

// A link cut in the middle of a round, after its first echo was answered: the
// next echo's miss is confirmed and ends the round failed, within 3.3 s (to the
// next echo) + 0.2 s + 11 x 80 ms + 0.25 s. The reply before the cut says
// nothing about now; it once vetoed the confirmation and the round ended
// "up" at 9.7 s, so a cut went unseen for up to a whole round more.
TEST(IcmpEngineTest, CutAfterAnAnsweredEchoIsConfirmedWithinTheRound) {
  if (!Network::get().peers_ok) GTEST_SKIP() << "peer namespaces unavailable";
  const std::string far = Network::get().far->in();
  ASSERT_EQ(sh(far + "ip addr add 203.0.113.5/24 dev f0"), 0);
  struct Restore {
    std::string far;
    ~Restore() {
      sh(far + "iptables -D INPUT -d 203.0.113.5 -j DROP");
      sh(far + "ip addr del 203.0.113.5/24 dev f0");
    }
  } restore{far};
  Harness h;
  IcmpEngine engine(h.context);
  // A healthy round first: the engine learns the target's RTT.
  auto quick = icmp_target("mid", "203.0.113.5", 900ms, 450ms);
  std::optional<Sample> first;
  engine.submit({quick, &quick->probes.front(), [&](Sample s) { first = std::move(s); }});
  ASSERT_TRUE(h.run_until([&] { return first.has_value(); }));
  ASSERT_TRUE(first->ok) << first->detail;
  // The shipped defaults: echoes at 0, 3.3 and 6.7 s.
  auto target = icmp_target("mid", "203.0.113.5", 10s, 3s);
  std::optional<Sample> sample;
  const SteadyTime start = h.clock.now();
  engine.submit({target, &target->probes.front(), [&](Sample s) { sample = std::move(s); }});
  EXPECT_FALSE(h.run_until([&] { return sample.has_value(); }, 1s)) << "the round is still running";
  ASSERT_EQ(sh(far + "iptables -I INPUT -d 203.0.113.5 -j DROP"), 0);  // the cut
  ASSERT_TRUE(h.run_until([&] { return sample.has_value(); }, 9s));
  const Duration took = h.clock.now() - start;
  EXPECT_FALSE(sample->ok) << sample->detail;
  EXPECT_EQ(value_of(*sample, "confirmation"), 1.0) << sample->detail;
  EXPECT_NE(sample->detail.find("to 1 echo and 12 of 12 confirmation echoes lost"), std::string::npos)
      << sample->detail;
  EXPECT_EQ(sample->observations.size(), 1u) << "the answered echo's RTT is still a measurement";
  EXPECT_LT(took, 5s) << "confirmed at the second echo, not at the round's end (9.7 s)";
  EXPECT_GE(took, 3300ms) << "the second echo leaves a third of the interval in";
}

// --- accelerated rounds (the agent probes an uncertain target more often) --

// While uncertain the agent runs the probe every 2 s instead of every 10 s,
// telling the round its span: it sends its share of the 3 echoes, one, and
// ends within the span.
TEST(IcmpEngineTest, AcceleratedRoundSendsItsShareOfTheEchoesWithinItsSpan) {
  if (!Network::get().private_ok) GTEST_SKIP() << "cannot create a network namespace (needs root)";
  Harness h;
  IcmpEngine engine(h.context);
  auto target = icmp_target("lo", "127.0.0.1", 10s, 3s);
  EXPECT_TRUE(engine.accelerates(target->probes.front()));
  std::optional<Sample> sample;
  const SteadyTime start = h.clock.now();
  ProbeRequest req{target, &target->probes.front(), [&](Sample s) { sample = std::move(s); }};
  req.span = 2s;
  engine.submit(std::move(req));
  ASSERT_TRUE(h.run_until([&] { return sample.has_value(); }, 3s));
  EXPECT_LT(h.clock.now() - start, 2s);
  EXPECT_TRUE(sample->ok) << sample->detail;
  EXPECT_EQ(engine.stats().sent, 1u) << "one echo per 2 s: the 10 s interval's rate";
  EXPECT_EQ(sample->observations.size(), 1u);
  EXPECT_EQ(value_of(*sample, "loss_ratio"), 0.0);
}

// A silent target in an accelerated round: the lost echo is confirmed as in a
// scheduled round (12 of 12 lost: down), and once confirmed down the next
// accelerated round's lost echo is a failure without a second confirmation.
TEST(IcmpEngineTest, AcceleratedRoundOfASilentTargetIsConfirmedDownOnce) {
  if (!Network::get().peers_ok) GTEST_SKIP() << "peer namespaces unavailable";
  Harness h;
  IcmpEngine engine(h.context);
  auto dead = icmp_target("far", "203.0.113.3", 10s, 3s);
  std::vector<Sample> samples;
  for (int i = 0; i < 2; ++i) {
    ProbeRequest req{dead, &dead->probes.front(), [&](Sample s) { samples.push_back(std::move(s)); }};
    req.span = 2s;
    engine.submit(std::move(req));
    ASSERT_TRUE(h.run_until([&] { return samples.size() == static_cast<std::size_t>(i + 1); }, 4s));
  }
  EXPECT_FALSE(samples[0].ok);
  EXPECT_EQ(value_of(samples[0], "confirmation"), 1.0) << samples[0].detail;
  EXPECT_FALSE(samples[1].ok);
  EXPECT_EQ(value_of(samples[1], "confirmation"), std::nullopt) << "down already: no second burst";
  EXPECT_EQ(engine.stats().sent, 1u + 12u + 1u);
}

// An accelerated round has one echo: were its loss a failed round, 30 % loss
// would fail a third of them (three in a row: 2.7 %, a false page). Its miss is
// judged by the confirmation instead: answered, the round succeeds, with its
// loss counted (loss_ratio 1 of the one echo).
TEST(IcmpEngineTest, AcceleratedRoundWhoseLostEchoTheConfirmationAnswersIsAlive) {
  if (!Network::get().peers_ok) GTEST_SKIP() << "peer namespaces unavailable";
  const std::string far = Network::get().far->in();
  ASSERT_EQ(sh(far + "ip addr add 203.0.113.6/24 dev f0"), 0);
  struct Restore {
    std::string far;
    ~Restore() {
      sh(far + "iptables -D INPUT -d 203.0.113.6 -j DROP");
      sh(far + "ip addr del 203.0.113.6/24 dev f0");
    }
  } restore{far};
  Harness h;
  IcmpEngine engine(h.context);
  auto target = icmp_target("mid", "203.0.113.6", 10s, 3s);
  // A healthy round first: the engine learns the RTT (the miss is suspected after 200 ms).
  std::optional<Sample> first;
  ProbeRequest learn{target, &target->probes.front(), [&](Sample s) { first = std::move(s); }};
  learn.span = 2s;
  engine.submit(std::move(learn));
  ASSERT_TRUE(h.run_until([&] { return first.has_value(); }, 3s));
  ASSERT_TRUE(first->ok) << first->detail;
  // The echo is dropped; the drop goes away while the confirmation runs.
  ASSERT_EQ(sh(far + "iptables -I INPUT -d 203.0.113.6 -j DROP"), 0);
  std::optional<Sample> sample;
  ProbeRequest req{target, &target->probes.front(), [&](Sample s) { sample = std::move(s); }};
  req.span = 2s;
  engine.submit(std::move(req));
  EXPECT_FALSE(h.run_until([&] { return sample.has_value(); }, 450ms));
  ASSERT_EQ(sh(far + "iptables -D INPUT -d 203.0.113.6 -j DROP"), 0);
  ASSERT_TRUE(h.run_until([&] { return sample.has_value(); }, 3s));
  EXPECT_TRUE(sample->ok) << sample->detail;
  EXPECT_EQ(value_of(*sample, "confirmation"), std::nullopt);
  EXPECT_EQ(value_of(*sample, "loss_ratio"), 1.0) << "the one echo was lost: loss to count";
  EXPECT_GT(engine.stats().sent, 3u) << "the echo and confirmation echoes up to the first answered one";
}

// A route that fails outright (the router answers "unreachable", or this host
// has no route after a link cut) is a miss at once, not at the round's end
// 6.7 s later: the confirmation runs on it and the round ends confirmed.
TEST(IcmpEngineTest, UnreachableEchoIsConfirmedAtOnce) {
  if (!Network::get().peers_ok) GTEST_SKIP() << "peer namespaces unavailable";
  Harness h;
  IcmpEngine engine(h.context);
  auto target = icmp_target("gone", "203.0.113.130", 10s, 3s);  // the router's unreachable route
  std::optional<Sample> down;
  const SteadyTime start = h.clock.now();
  engine.submit({target, &target->probes.front(), [&](Sample s) { down = std::move(s); }});
  ASSERT_TRUE(h.run_until([&] { return down.has_value(); }, 8s));
  EXPECT_LT(h.clock.now() - start, 2s);
  EXPECT_FALSE(down->ok);
  EXPECT_EQ(down->reason, FailureReason::kUnreachable) << down->detail;
  EXPECT_EQ(value_of(*down, "confirmation"), 1.0) << down->detail;
}

// Without a known RTT the round waits the capped 1 s before it suspects; the
// confirmation of a live target stops at its first reply and gives the rest of
// its packets back to the budget.
TEST(IcmpEngineTest, ConfirmationStopsAtTheFirstReply) {
  if (!Network::get().private_ok) GTEST_SKIP() << "cannot create a network namespace (needs root)";
  Harness h;
  IcmpEngine engine(h.context);
  const double before = engine.budget_available();
  BurstSpec spec;
  spec.count = 12;
  spec.spacing = 80ms;
  spec.timeout = 300ms;
  spec.stop_on_reply = true;
  std::optional<BurstReport> report;
  ASSERT_TRUE(engine.confirm(addr("127.0.0.1"), spec, [&](BurstReport r) { report = std::move(r); }).ok());
  ASSERT_TRUE(h.run_until([&] { return report.has_value(); }));
  EXPECT_EQ(report->result.received, 1);
  EXPECT_EQ(report->result.sent, 1) << "the first reply came before the second echo was due";
  EXPECT_EQ(engine.stats().sent, 1u);
  // At most the one echo it sent is spent (the budget refills at 1000/s meanwhile).
  EXPECT_GE(engine.budget_available(), before - 1.5);
}

TEST(IcmpEngineTest, UnresolvableHostIsDnsFailure) {
  NIGHTSHIFT_REQUIRE_TESTNET(Network::get().private_error);
  Harness h;
  IcmpEngine engine(h.context);
  auto target = std::make_shared<Target>();
  target->name = "nowhere";
  target->address = "name.invalid";
  ProbeSpec spec;
  spec.kind = "icmp";
  spec.name = "icmp";
  spec.timeout = 1s;
  spec.options = std::make_shared<IcmpOptions>();
  target->probes.push_back(spec);
  std::optional<Sample> sample;
  engine.submit({target, &target->probes.front(), [&](Sample s) { sample = std::move(s); }});
  ASSERT_TRUE(h.run_until([&] { return sample.has_value(); }, 15s));
  EXPECT_FALSE(sample->ok);
  EXPECT_EQ(sample->reason, FailureReason::kDnsFailure);
}

TEST(IcmpEngineTest, NoSocketAllowedIsAnErrorValue) {
  NIGHTSHIFT_REQUIRE_TESTNET(Network::get().private_error);
  const std::string saved = read_file("/proc/sys/net/ipv4/ping_group_range");
  write_file("/proc/sys/net/ipv4/ping_group_range", "1 0");
  Harness h;
  EngineSettings s;
  s.socket_kind = SocketKind::kDatagram;  // refused by the sysctl above, and no raw fallback
  IcmpEngine engine(h.context, s);
  std::optional<RoundResult> result;
  engine.ping(addr("127.0.0.1"), RoundSpec{}, [&](RoundResult r) { result = std::move(r); });
  EXPECT_FALSE(result) << "never called back from inside ping()";
  ASSERT_TRUE(h.run_until([&] { return result.has_value(); }));
  write_file("/proc/sys/net/ipv4/ping_group_range", saved);
  EXPECT_EQ(result->reason, FailureReason::kError);
  EXPECT_NE(result->detail.find("ping_group_range"), std::string::npos) << result->detail;
}

TEST(IcmpCliTest, PrintsFpingStyleLinesAndExitStatus) {
  NIGHTSHIFT_REQUIRE_TESTNET(Network::get().private_error);
  std::ostringstream out, err;
  EXPECT_EQ(cli({"-c", "2", "-p", "10", "127.0.0.1", "::1"}, out, err), 0) << err.str();
  EXPECT_NE(out.str().find("127.0.0.1 : xmt/rcv/%loss = 2/2/0%, min/avg/max = "), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("::1 : xmt/rcv/%loss = 2/2/0%"), std::string::npos) << out.str();
  if (Network::get().peers_ok) {
    std::ostringstream out2, err2;
    EXPECT_EQ(cli({"-c", "1", "-t", "200", "127.0.0.1", "203.0.113.3"}, out2, err2), 1);
    EXPECT_NE(out2.str().find("203.0.113.3 : xmt/rcv/%loss = 1/0/100% (timeout"), std::string::npos) << out2.str();
  }
  std::ostringstream out3, err3;
  EXPECT_EQ(cli({"-c", "0", "127.0.0.1"}, out3, err3), 2);
  EXPECT_EQ(cli({}, out3, err3), 2);
}

}  // namespace
}  // namespace nightshift::icmp
