// The ProbeEngine contract (probes/probe.h), one typed suite every probe kind
// passes, on real sockets in this process's private network namespace:
// loopback peers (a listener, the kernel's echo replies, a real snmpd the test
// starts, libpcap on lo) and, for "never answers", the silent address of a
// namespaced test host (tests/support/testnet.h).
//
//   - a result is delivered exactly once per submit, never inside submit();
//   - an engine destroyed with probes in flight neither crashes nor calls
//     back afterwards (scripts/test-sanitize.sh runs this under ASan);
//   - a probe run is bounded by its timeout;
//   - in_flight() comes back to zero;
//   - ::1 works.
//
// Engines are made through the registry, and the last test fails when a
// registered kind is missing here.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "probes/icmp/icmp.h"
#include "probes/pcap/pcap.h"
#include "probes/registry/registry.h"
#include "probes/snmp/snmp.h"
#include "probes/tcp/tcp.h"
#include "tests/support/process.h"
#include "tests/support/require.h"
#include "tests/support/temp_dir.h"
#include "tests/support/testnet.h"
#include "tests/support/wait.h"

namespace nightshift {
namespace {

using namespace std::chrono_literals;
using test::PeerHost;

// Namespaces are per thread: enter ours before gtest (or an engine) starts any.
const std::string kNetnsError = test::enter_private_netns();

// --- what each kind needs to be exercised ------------------------------------------

// A TCP listener (both families) for the tcp kind; it never accepts: the
// kernel completes handshakes from the backlog.
class TcpPeer {
 public:
  static constexpr const char* kKind = "tcp";
  static constexpr bool kCountsInFlight = true;
  static constexpr bool kCanBeSilent = true;

  std::string start() {
    for (int family : {AF_INET, AF_INET6}) {
      const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_storage ss{};
      socklen_t len;
      if (family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->sin_port = htons(static_cast<std::uint16_t>(port_));
        len = sizeof(sockaddr_in);
      } else {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons(static_cast<std::uint16_t>(port_));
        int one = 1;
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        len = sizeof(sockaddr_in6);
      }
      if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 1024) != 0) {
        ::close(fd);
        return "cannot listen on loopback";
      }
      fds_.push_back(fd);
      port_ = test::bound_port(fd);
    }
    return "";
  }
  ~TcpPeer() {
    for (int fd : fds_) ::close(fd);
  }
  std::shared_ptr<const ProbeOptions> options() const {
    auto o = std::make_shared<tcp::TcpOptions>();
    o->port = static_cast<std::uint16_t>(port_);
    return o;
  }

 private:
  std::vector<int> fds_;
  int port_ = 0;
};

// The kernel answers echo requests on loopback.
class IcmpPeer {
 public:
  static constexpr const char* kKind = "icmp";
  static constexpr bool kCountsInFlight = true;
  static constexpr bool kCanBeSilent = true;
  std::string start() { return ""; }
  std::shared_ptr<const ProbeOptions> options() const {
    auto o = std::make_shared<icmp::IcmpOptions>();
    o->count = 2;
    o->spacing = 10ms;
    return o;
  }
};

// A real snmpd (Debian's) on 127.0.0.1 and ::1, v2c.
class SnmpPeer {
 public:
  static constexpr const char* kKind = "snmp";
  static constexpr bool kCountsInFlight = true;
  static constexpr bool kCanBeSilent = true;
  static constexpr const char* kCommunity = "conformance-c0mm";

  std::string start() {
    if (std::string why = test::missing_program("/usr/sbin/snmpd"); !why.empty()) return why;
    test::write_file(dir_.file("snmpd.conf"), std::string("rocommunity ") + kCommunity + " 127.0.0.1\nrocommunity6 " +
                                                  kCommunity + " ::1\n");
    const std::string port = std::to_string(port_);
    snmpd_ = std::make_unique<test::Process>(std::vector<std::string>{
        "/usr/sbin/snmpd", "-f", "-Lo", "-C", "-c", dir_.file("snmpd.conf"), "-p", dir_.file("snmpd.pid"),
        "--persistentDir=" + dir_.path() + "/persist", "udp:127.0.0.1:" + port + ",udp6:[::1]:" + port});
    const bool up = test::wait_until([&] {
      for (const char* address : {"127.0.0.1", "udp6:[::1]"}) {
        auto r = test::run_process({"snmpget", "-v2c", "-c", kCommunity, "-t", "1", "-r", "0",
                                    std::string(address) + ":" + port, "1.3.6.1.2.1.1.3.0"},
                                   5s);
        if (!r.status || r.status->code != 0) return false;
      }
      return true;
    }, 10s);
    return up ? "" : "snmpd did not answer on 127.0.0.1 and ::1: " + snmpd_->stderr_text() + snmpd_->stdout_text();
  }
  std::shared_ptr<const ProbeOptions> options() const {
    auto o = std::make_shared<snmp::SnmpOptions>();
    o->version = 2;
    o->community = kCommunity;
    o->port = port_;
    o->retries = 0;
    return o;
  }

 private:
  test::TempDir dir_{"nightshift-conformance-snmp-"};
  // A private namespace: any port is free here.
  int port_ = 16100;
  std::unique_ptr<test::Process> snmpd_;
};

// libpcap on lo: a run reports what its prefix saw since the last one and
// answers on the next loop turn. It has no peer that could stay silent.
class PcapPeer {
 public:
  static constexpr const char* kKind = "pcap";
  static constexpr bool kCountsInFlight = false;  // in_flight() is always 0
  static constexpr bool kCanBeSilent = false;
  std::string start() { return ""; }
  std::shared_ptr<const ProbeOptions> options() const {
    auto o = std::make_shared<pcap::PcapOptions>();
    o->interface = "lo";
    return o;
  }
};

// --- the harness ---------------------------------------------------------------

template <typename Peer>
class EngineConformanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
    const std::string why = peer_.start();
    NIGHTSHIFT_REQUIRE(why, "NIGHTSHIFT_SKIP_MISSING_TOOLS", "scripts/install-deps.sh installs it");
    const ProbeKind* kind = find_probe_kind(Peer::kKind);
    ASSERT_NE(kind, nullptr) << Peer::kKind << " is not a registered probe kind";
    engine_ = kind->make_engine(context_);
    ASSERT_NE(engine_, nullptr);
  }

  // A target at `address` (pcap: the prefix) probed with `timeout`.
  std::shared_ptr<const Target> target(const std::string& name, std::string address, Duration timeout) const {
    if (std::string(Peer::kKind) == "pcap") address += address.find(':') == std::string::npos ? "/32" : "/128";
    auto t = std::make_shared<Target>();
    t->name = name;
    t->address = std::move(address);
    ProbeSpec spec;
    spec.kind = Peer::kKind;
    spec.name = std::string(Peer::kKind) + "_conformance";
    spec.timeout = timeout;
    spec.interval = timeout * 2;
    spec.options = peer_.options();
    t->probes.push_back(std::move(spec));
    return t;
  }

  // Submits one probe of `t`; its results land in results_[t->name]. A result
  // delivered inside submit(), or after the engine is gone, fails the test.
  void submit(const std::shared_ptr<const Target>& t) {
    ProbeRequest req;
    req.target = t;
    req.spec = &t->probes.front();
    req.done = [this, name = t->name](Sample s) {
      EXPECT_FALSE(inside_submit_) << name << ": done ran inside submit()";
      EXPECT_FALSE(destroyed_) << name << ": done ran after the engine was destroyed";
      results_[name].push_back(std::move(s));
    };
    inside_submit_ = true;
    engine_->submit(std::move(req));
    inside_submit_ = false;
  }

  std::size_t delivered() const {
    std::size_t n = 0;
    for (const auto& [name, samples] : results_) n += samples.size();
    return n;
  }

  // Runs the reactor until `n` results are in or `limit` passes (bounded turns).
  bool run_until_delivered(std::size_t n, Duration limit) {
    const SteadyTime end = clock_.now() + limit;
    for (int turns = 0; turns < 100'000 && delivered() < n && clock_.now() < end; ++turns) reactor_.run_once(10ms);
    return delivered() >= n;
  }
  // Runs the reactor for about `d` (bounded turns).
  void spin(Duration d) {
    const SteadyTime end = clock_.now() + d;
    for (int turns = 0; turns < 10'000 && clock_.now() < end; ++turns) reactor_.run_once(10ms);
  }

  void destroy_engine() {
    engine_.reset();
    destroyed_ = true;
  }

  // A namespaced host whose address drops everything: "never answers".
  // Fails the test when it cannot be made.
  std::unique_ptr<PeerHost> silent_host() {
    auto host = std::make_unique<PeerHost>();
    if (!host->ok()) ADD_FAILURE() << "test host: " << host->error();
    return host;
  }

  Peer peer_;
  SystemClock clock_;
  Reactor reactor_{clock_};
  Resolver resolver_{reactor_};
  EngineContext context_{reactor_, resolver_};
  std::unique_ptr<ProbeEngine> engine_;
  std::map<std::string, std::vector<Sample>> results_;
  bool inside_submit_ = false;
  bool destroyed_ = false;
};

using Kinds = ::testing::Types<TcpPeer, IcmpPeer, SnmpPeer, PcapPeer>;
class KindNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return T::kKind;
  }
};
TYPED_TEST_SUITE(EngineConformanceTest, Kinds, KindNames);

TYPED_TEST(EngineConformanceTest, EveryResultIsDeliveredExactlyOnce) {
  std::unique_ptr<PeerHost> host;
  if (TypeParam::kCanBeSilent) {
    host = this->silent_host();
    ASSERT_TRUE(host->ok());
  }
  std::size_t submitted = 0;
  for (int i = 0; i < 8; ++i) {
    this->submit(this->target("up-" + std::to_string(i), "127.0.0.1", 400ms));
    ++submitted;
    if (host) {
      this->submit(this->target("silent-" + std::to_string(i), PeerHost::kSilent, 400ms));
      ++submitted;
    }
  }
  if (TypeParam::kCountsInFlight) {
    EXPECT_EQ(this->engine_->in_flight(), submitted);
  }
  ASSERT_TRUE(this->run_until_delivered(submitted, 5s)) << this->delivered() << " of " << submitted;
  this->spin(500ms);  // longer than the timeout: a second delivery would show now
  EXPECT_EQ(this->results_.size(), submitted);
  for (const auto& [name, samples] : this->results_) {
    SCOPED_TRACE(name);
    ASSERT_EQ(samples.size(), 1u) << "exactly one result per submit";
    const Sample& s = samples.front();
    EXPECT_EQ(s.target, name);
    EXPECT_EQ(s.kind, TypeParam::kKind);
    if (name.rfind("up-", 0) == 0) {
      EXPECT_TRUE(s.ok) << to_string(s.reason) << ": " << s.detail;
    } else {
      EXPECT_FALSE(s.ok);
    }
  }
  EXPECT_EQ(this->engine_->in_flight(), 0u);
}

TYPED_TEST(EngineConformanceTest, RunIsBoundedByItsTimeout) {
  std::unique_ptr<PeerHost> host;
  std::string address = "127.0.0.1";
  if (TypeParam::kCanBeSilent) {
    host = this->silent_host();
    ASSERT_TRUE(host->ok());
    address = PeerHost::kSilent;
  }
  const SteadyTime start = this->clock_.now();
  this->submit(this->target("t", address, 300ms));
  ASSERT_TRUE(this->run_until_delivered(1, 5s));
  const Duration took = this->clock_.now() - start;
  const Sample& s = this->results_["t"].front();
  EXPECT_LT(took, 300ms + 400ms) << "the timeout plus a loop turn's slack";
  EXPECT_LE(s.duration, took);
  if (host) {
    EXPECT_FALSE(s.ok);
    EXPECT_EQ(s.reason, FailureReason::kTimeout) << s.detail;
    EXPECT_GE(took, 300ms - 10ms) << "nobody answers: the run lasts its timeout";
  } else {
    EXPECT_TRUE(s.ok) << s.detail;
  }
  EXPECT_EQ(this->engine_->in_flight(), 0u);
}

TYPED_TEST(EngineConformanceTest, InFlightComesBackToZero) {
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    const std::size_t before = this->delivered();
    for (int i = 0; i < 5; ++i) this->submit(this->target("r" + std::to_string(round) + "-" + std::to_string(i), "127.0.0.1", 1s));
    if (TypeParam::kCountsInFlight) {
      EXPECT_EQ(this->engine_->in_flight(), 5u);
    }
    ASSERT_TRUE(this->run_until_delivered(before + 5, 5s));
    EXPECT_EQ(this->engine_->in_flight(), 0u);
  }
}

TYPED_TEST(EngineConformanceTest, Ipv6LoopbackWorks) {
  this->submit(this->target("v6", "::1", 1s));
  ASSERT_TRUE(this->run_until_delivered(1, 5s));
  const Sample& s = this->results_["v6"].front();
  EXPECT_TRUE(s.ok) << to_string(s.reason) << ": " << s.detail;
  EXPECT_EQ(this->engine_->in_flight(), 0u);
}

TYPED_TEST(EngineConformanceTest, DestroyedWithProbesInFlightNeverCallsBack) {
  std::unique_ptr<PeerHost> host;
  if (TypeParam::kCanBeSilent) {
    host = this->silent_host();
    ASSERT_TRUE(host->ok());
  }
  for (int i = 0; i < 5; ++i) {
    this->submit(this->target("up-" + std::to_string(i), "127.0.0.1", 2s));
    this->submit(this->target("up6-" + std::to_string(i), "::1", 2s));
    if (host) this->submit(this->target("silent-" + std::to_string(i), PeerHost::kSilent, 2s));
  }
  this->spin(20ms);  // some answered, some still waiting
  this->destroy_engine();
  this->spin(300ms);  // anything the engine left queued on the reactor runs now
  EXPECT_EQ(this->reactor_.watched_fds(), 0u) << "every socket unwatched";
}

TYPED_TEST(EngineConformanceTest, DestroyedRightAfterSubmitNeverCallsBack) {
  // Before the reactor turns once: results an engine posts from submit() (or
  // resolver answers) arrive after it is gone.
  for (int i = 0; i < 5; ++i) this->submit(this->target("up-" + std::to_string(i), "127.0.0.1", 1s));
  this->destroy_engine();
  this->spin(300ms);
  EXPECT_EQ(this->delivered(), 0u);
}

// A new probe kind joins this suite.
TEST(EngineConformanceCoverageTest, EveryRegisteredKindIsCovered) {
  const std::set<std::string> covered = {TcpPeer::kKind, IcmpPeer::kKind, SnmpPeer::kKind, PcapPeer::kKind};
  for (const ProbeKind& kind : probe_kinds()) {
    EXPECT_TRUE(covered.count(std::string(kind.name))) << kind.name << " has no peer in engine_conformance_test.cpp";
  }
}

}  // namespace
}  // namespace nightshift
