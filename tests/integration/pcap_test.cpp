// The pcap watch end to end: `nightshift replay` over captures this test
// writes itself with libpcap's dumper (exact answers), and the agent capturing
// live on a veth in a private network namespace while the test sends traffic
// to a namespaced peer and then stops: the drop shows in /metrics.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <algorithm>
#include <functional>
#include <sstream>

#include "probes/pcap/pcap_codec.h"
#include "probes/pcap/pcap_frames.h"
#include "tests/support/http_get.h"
#include "tests/support/process.h"
#include "tests/support/prom_text.h"
#include "tests/support/temp_dir.h"
#include "tests/support/testnet.h"
#include "tests/support/wait.h"

namespace nightshift::pcap {
namespace {

using namespace std::chrono_literals;
using frames::ip;
using test::Process;
using test::run_process;
using test::TempDir;
using ::testing::HasSubstr;

// Before any thread starts: the live test's veth lives in this process's own namespace.
const std::string kNetnsError = test::enter_private_netns();

std::string agent_binary() {
  const char* b = std::getenv("NIGHTSHIFT_BINARY");
  return b ? b : "";
}

// Writes frames to a pcap file (Ethernet, snaplen 128 as the live watch uses)
// at the given offsets in seconds from a fixed start, in time order whatever
// the order of add() calls.
class CaptureWriter {
 public:
  explicit CaptureWriter(std::string path) : path_(std::move(path)) {}
  ~CaptureWriter() { close(); }
  void add(double at_seconds, const std::vector<std::uint8_t>& frame) { frames_.emplace_back(at_seconds, frame); }
  bool close() {
    if (frames_.empty()) return true;
    pcap_t* dead = pcap_open_dead(DLT_EN10MB, 128);
    pcap_dumper_t* dumper = pcap_dump_open(dead, path_.c_str());
    if (!dumper) {
      pcap_close(dead);
      return false;
    }
    std::stable_sort(frames_.begin(), frames_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [at, frame] : frames_) {
      pcap_pkthdr h{};
      const auto us = static_cast<long long>(at * 1e6 + 0.5);
      h.ts.tv_sec = kStart + us / 1000000;
      h.ts.tv_usec = us % 1000000;
      h.len = static_cast<bpf_u_int32>(frame.size());
      h.caplen = std::min<bpf_u_int32>(h.len, 128);
      pcap_dump(reinterpret_cast<u_char*>(dumper), &h, frame.data());
    }
    pcap_dump_close(dumper);
    pcap_close(dead);
    frames_.clear();
    return true;
  }
  static constexpr long long kStart = 1795000000;  // 2026-11-18, a Wednesday

 private:
  std::string path_;
  std::vector<std::pair<double, std::vector<std::uint8_t>>> frames_;
};

nlohmann::json replay_json(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {agent_binary(), "replay", "--json"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_process(argv, 20s);
  EXPECT_TRUE(r.status && r.status->exited && r.status->code == 0) << r.err;
  try {
    return nlohmann::json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "replay printed no JSON: " << e.what() << "\n" << r.out << r.err;
    return {};
  }
}

class PcapReplayTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(agent_binary().empty()) << "NIGHTSHIFT_BINARY is not set (run through ctest)"; }
  TempDir dir_{"nightshift-pcap-"};
};

TEST_F(PcapReplayTest, KnownCountsFromAWrittenCapture) {
  const std::string file = dir_.file("known.pcap");
  {
    CaptureWriter w(file);
    const auto host = ip("198.51.100.2"), peer = ip("203.0.113.80"), router = ip("198.51.100.254");
    // 100 UDP packets out of the prefix, 10 per second, 142 bytes on the wire each.
    for (int i = 0; i < 100; ++i) w.add(i * 0.1, frames::udp(host, peer, 5000, 53, 100));
    // 5 connection attempts at t=1 s; 2 answered at t=1.5 s; 3 never (timeout 3 s).
    for (std::uint16_t p = 1; p <= 5; ++p) w.add(1.0, frames::tcp(host, peer, 40000 + p, 443, tcp_flag::kSyn, 7));
    for (std::uint16_t p = 1; p <= 2; ++p) {
      w.add(1.5, frames::tcp(peer, host, 443, 40000 + p, tcp_flag::kSyn | tcp_flag::kAck, 9));
    }
    // 4 resets.
    for (int i = 0; i < 4; ++i) w.add(2.0 + i * 0.01, frames::tcp(peer, host, 443, 40001, tcp_flag::kRst, 10));
    // One data segment, then the same one twice more: 2 retransmissions.
    for (int i = 0; i < 3; ++i) w.add(3.0 + i * 0.2, frames::tcp(host, peer, 40002, 443, tcp_flag::kAck, 8, 500));
    // ICMP destination unreachable: 3 from .254, 1 from .253.
    for (int i = 0; i < 3; ++i) w.add(4.0, frames::unreachable(router, host, host, ip("192.0.2.1")));
    w.add(4.1, frames::unreachable(ip("198.51.100.253"), host, host, ip("192.0.2.1")));
    // Traffic outside the prefix, and one ARP frame.
    for (int i = 0; i < 7; ++i) w.add(5.0, frames::udp(ip("192.0.2.1"), ip("192.0.2.2"), 1, 2, 0));
    auto arp = frames::udp(host, peer, 1, 2, 0);
    arp[12] = 0x08;
    arp[13] = 0x06;
    w.add(5.5, arp);
  }
  auto doc = replay_json({"--prefix", "198.51.100.0/24", "--interval", "10s", "--syn-timeout", "3s", file});
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc["frames"], 100 + 5 + 2 + 4 + 3 + 4 + 7 + 1);
  EXPECT_EQ(doc["not_ip"], 1);
  EXPECT_EQ(doc["interface"]["packets"], 125);
  ASSERT_EQ(doc["prefixes"].size(), 1u);
  const auto& totals = doc["prefixes"][0]["totals"];
  EXPECT_EQ(doc["prefixes"][0]["prefix"], "198.51.100.0/24");
  EXPECT_EQ(totals["packets"], 118);
  EXPECT_EQ(totals["bytes"], 100 * 142 + 11 * 54 + 3 * 554 + 4 * 70);
  EXPECT_EQ(totals["syn"], 5);
  EXPECT_EQ(totals["syn_completed"], 2);
  EXPECT_EQ(totals["syn_failed"], 3);  // judged at t=4 s, within the capture
  EXPECT_EQ(totals["rst"], 4);
  EXPECT_EQ(totals["retransmits"], 2);
  EXPECT_EQ(totals["icmp_unreachable"], 4);
  EXPECT_EQ(totals["unreachable_by_router"]["198.51.100.254"], 3);
  EXPECT_EQ(totals["unreachable_by_router"]["198.51.100.253"], 1);
  EXPECT_EQ(doc["syn_pending"], 0);
  // One (partial) interval: 0 .. 9.9 s.
  ASSERT_EQ(doc["prefixes"][0]["intervals"].size(), 1u);
  const auto& iv = doc["prefixes"][0]["intervals"][0];
  EXPECT_DOUBLE_EQ(iv["seconds"].get<double>(), 9.9);
  EXPECT_NEAR(iv["syn_failed_ratio"].get<double>(), 0.6, 1e-12);
  EXPECT_TRUE(iv["traffic_drop"].is_null());  // nothing learned yet
}

TEST_F(PcapReplayTest, TrafficStopsAndTheDropShows) {
  const std::string file = dir_.file("drop.pcap");
  {
    CaptureWriter w(file);
    // 60 s at 20 packets/s, then 30 s of silence on the prefix; a packet
    // elsewhere at 90 s moves the capture's clock past the silent intervals.
    for (int i = 0; i < 60 * 20; ++i) {
      w.add(i * 0.05, frames::udp(ip("203.0.113.9"), ip("198.51.100.2"), 1000, 2000, 10));
    }
    w.add(90.0, frames::udp(ip("192.0.2.1"), ip("192.0.2.2"), 1, 2, 0));
  }
  auto doc = replay_json(
      {"--prefix", "198.51.100.0/24", "--interval", "5s", "--baseline-min-samples", "3", file});
  ASSERT_TRUE(doc.is_object());
  const auto& iv = doc["prefixes"][0]["intervals"];
  ASSERT_EQ(iv.size(), 18u);  // 90 s / 5 s
  for (std::size_t i = 0; i < 12; ++i) {
    SCOPED_TRACE(i);
    EXPECT_DOUBLE_EQ(iv[i]["packets_per_second"].get<double>(), 20);
    EXPECT_EQ(iv[i]["traffic_drop"].is_null(), i < 3);
    if (i >= 3) {
      EXPECT_DOUBLE_EQ(iv[i]["traffic_drop"].get<double>(), 0);
    }
  }
  for (std::size_t i = 12; i < 18; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(iv[i]["packets"], 0);
    EXPECT_DOUBLE_EQ(iv[i]["traffic_drop"].get<double>(), 1.0);
    EXPECT_GT(iv[i]["baseline_pps"].get<double>(), 10);  // a drop is learned slowly
  }
}

TEST_F(PcapReplayTest, TextOutputAndConfigPrefixes) {
  const std::string file = dir_.file("text.pcap");
  {
    CaptureWriter w(file);
    for (int i = 0; i < 10; ++i) w.add(i, frames::udp(ip("2001:db8:5e::2"), ip("2001:db8:5e::1"), 1, 2, 0));
  }
  const std::string config = dir_.file("agent.toml");
  test::write_file(config,
                   "[agent]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nstate_dir = \"" + dir_.file("state") +
                       "\"\n\n[[target]]\nname = \"customers-v6\"\naddress = \"2001:db8:5e::/48\"\n"
                       "  [[target.probe]]\n  kind = \"pcap\"\n  interface = \"eth0\"\n  interval = \"5s\"\n"
                       "  timeout = \"1s\"\n\n[[rule]]\nname = \"customers_silent\"\n"
                       "condition = \"traffic_drop > 0.9 or syn_failed_ratio > 50%\"\nfor = \"2m\"\n"
                       "select = { kind = \"pcap\" }\n");
  auto check = run_process({agent_binary(), "check-config", config});
  EXPECT_TRUE(check.status && check.status->code == 0) << check.out << check.err;
  auto r = run_process({agent_binary(), "replay", "--config", config, file});
  ASSERT_TRUE(r.status && r.status->code == 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("customers-v6 +0.000s 5.000s packets=5 bytes=310 pps=1.000"));
  EXPECT_THAT(r.out, HasSubstr("customers-v6 total 2001:db8:5e::/48 packets=10 bytes=620"));
}

TEST_F(PcapReplayTest, BadInputGetsAClearError) {
  struct Case {
    const char* name;
    std::vector<std::string> args;
    int code;
    const char* message;
  };
  const std::string garbage = dir_.file("garbage.pcap");
  test::write_file(garbage, "this is not a capture file");
  const Case cases[] = {
      {"no file", {"--prefix", "198.51.100.0/24"}, 2, "no capture file given"},
      {"no prefix", {dir_.file("x.pcap")}, 2, "no prefix to watch"},
      {"host bits", {"--prefix", "198.51.100.1/24", "x"}, 2, "has host bits set"},
      {"missing file", {"--prefix", "198.51.100.0/24", dir_.file("missing.pcap")}, 1, "cannot read"},
      {"not a capture", {"--prefix", "198.51.100.0/24", garbage}, 1, "cannot read"},
      {"bad interval", {"--interval", "soon", "x"}, 2, "--interval needs a duration"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<std::string> argv = {agent_binary(), "replay"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    auto r = run_process(argv);
    ASSERT_TRUE(r.status && r.status->exited);
    EXPECT_EQ(r.status->code, c.code);
    EXPECT_THAT(r.err, HasSubstr(c.message));
  }
}

TEST_F(PcapReplayTest, ConfigErrorsNamePlace) {
  const std::string config = dir_.file("bad.toml");
  test::write_file(config,
                   "[agent]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nstate_dir = \"" + dir_.file("state") +
                       "\"\n\n[[target]]\nname = \"x\"\naddress = \"198.51.100.0/99\"\n"
                       "  [[target.probe]]\n  kind = \"pcap\"\n  syn_timeout = \"1h\"\n");
  auto r = run_process({agent_binary(), "check-config", config});
  ASSERT_TRUE(r.status && r.status->exited);
  EXPECT_EQ(r.status->code, 1);
  EXPECT_THAT(r.err, HasSubstr("bad.toml:8:11: target[0].address: expected an IP address, a hostname or a prefix like"));
  EXPECT_THAT(r.err, HasSubstr("target[0].probe[0].interface"));
  EXPECT_THAT(r.err, HasSubstr("target[0].probe[0].syn_timeout: must be between 10ms and 5m"));
}

// --- live capture ----------------------------------------------------------

// The name of the veth the PeerHost put in this namespace (the only one:
// PeerHost names its end "nsv<n>").
std::string local_veth() {
  std::string out;
  test::run_command({"ip", "-o", "link", "show"}, &out);
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string index, name;
    words >> index >> name;
    name = name.substr(0, name.find_first_of("@:"));
    if (name.rfind("nsv", 0) == 0) return name;
  }
  return "";
}

TEST(PcapLive, TrafficOnAVethStopsAndTheAgentSeesTheDrop) {
  NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
  ASSERT_FALSE(agent_binary().empty());
  test::PeerHost peer;
  ASSERT_TRUE(peer.ok()) << peer.error();
  const std::string iface = local_veth();
  ASSERT_FALSE(iface.empty()) << "no nsv* veth in this namespace";
  TempDir dir("nightshift-pcap-live-");
  const std::string config = dir.file("agent.toml");
  test::write_file(config, "[agent]\nname = \"live\"\nlisten = \"127.0.0.1:0\"\nstate_dir = \"" +
                               dir.file("state") +
                               "\"\n\n[[target]]\nname = \"customers\"\naddress = \"198.51.100.0/24\"\n"
                               "  [[target.probe]]\n  kind = \"pcap\"\n  interface = \"" +
                               iface +
                               "\"\n  interval = \"1s\"\n  timeout = \"500ms\"\n  baseline_min_samples = 3\n  baseline_samples = 3\n"
                               "  min_baseline_pps = 5\n\n[[rule]]\nname = \"customers_silent\"\n"
                               "condition = \"traffic_drop > 0.9\"\nseverity = \"warning\"\n");
  Process agent(Process::Options{{agent_binary(), "run", "-c", config}, {}, dir.path()});
  const std::string marker = "msg=listening address=127.0.0.1:";
  auto pos = agent.wait_for_stderr(marker, 5s);
  ASSERT_TRUE(pos) << agent.stderr_text();
  const int port = std::atoi(agent.stderr_text().c_str() + *pos + marker.size());
  auto metric = [&](const std::string& name) -> std::optional<double> {
    auto r = test::http_get("http://127.0.0.1:" + std::to_string(port) + "/metrics");
    if (r.status != 200) return std::nullopt;
    return test::parse_prom_text(r.body).value(name, {{"target", "customers"}});
  };

  // UDP to the peer every 10 ms (the peer answers with port unreachable,
  // rate-limited): about 100+ packets/s on the veth, for at most 8 s.
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(9);
  inet_pton(AF_INET, test::PeerHost::kPeer, &to.sin_addr);
  const char payload[32] = {};
  bool learned = false;
  const auto send_until = std::chrono::steady_clock::now() + 8s;
  for (int i = 0; i < 800 && std::chrono::steady_clock::now() < send_until; ++i) {
    ::sendto(fd, payload, sizeof payload, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    ::usleep(10000);
    if (i % 50 == 49) {
      auto drop = metric("probe_pcap_traffic_drop");
      auto baseline = metric("probe_pcap_baseline_pps");
      if (drop && *drop < 0.5 && baseline && *baseline > 50) {
        learned = true;
        break;
      }
    }
  }
  ::close(fd);
  ASSERT_TRUE(learned) << "no baseline learned while traffic flowed; stderr:\n" << agent.stderr_text();

  // Traffic stops: within a few intervals the rate is 0 and the drop is total.
  EXPECT_TRUE(test::wait_until(
      [&] {
        auto pps = metric("probe_pcap_packets_per_second");
        auto drop = metric("probe_pcap_traffic_drop");
        return pps && *pps == 0 && drop && *drop > 0.9;
      },
      6s, 100ms))
      << "pps=" << metric("probe_pcap_packets_per_second").value_or(-1)
      << " drop=" << metric("probe_pcap_traffic_drop").value_or(-1) << "\n"
      << agent.stderr_text();
  EXPECT_EQ(metric("probe_success"), 1.0);
  // The rule engine uses it: a rule on traffic_drop fires.
  EXPECT_TRUE(agent.wait_for_stderr("msg=\"alert firing\" rule=customers_silent", 5s)) << agent.stderr_text();

  // The link goes down under the capture and comes back: the capture
  // survives it (no traffic, no error), and traffic after it counts again.
  const int fd2 = ::socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd2, 0);
  auto send_for = [&](std::chrono::milliseconds how_long, const std::function<bool()>& done) {
    const auto until = std::chrono::steady_clock::now() + how_long;
    for (int i = 0; i < 1000 && std::chrono::steady_clock::now() < until; ++i) {
      ::sendto(fd2, payload, sizeof payload, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);  // may fail: link down
      ::usleep(10000);
      if (i % 20 == 19 && done()) return true;
    }
    return false;
  };
  ASSERT_TRUE(peer.set_link(false)) << peer.error();
  send_for(2500ms, [] { return false; });
  EXPECT_EQ(metric("probe_pcap_packets_per_second"), 0.0);
  EXPECT_EQ(metric("probe_success"), 1.0);
  ASSERT_TRUE(peer.set_link(true)) << peer.error();
  EXPECT_TRUE(send_for(5s, [&] { return metric("probe_pcap_packets_per_second").value_or(0) > 10; }))
      << "no traffic counted after the link came back\n"
      << test::http_get("http://127.0.0.1:" + std::to_string(port) + "/metrics").body << agent.stderr_text();
  ::close(fd2);
  EXPECT_TRUE(agent.running());
}

TEST(PcapLive, MissingInterfaceIsAClearFailureNotACrash) {
  NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
  TempDir dir("nightshift-pcap-missing-");
  const std::string config = dir.file("agent.toml");
  test::write_file(config, "[agent]\nname = \"live\"\nlisten = \"127.0.0.1:0\"\nstate_dir = \"" + dir.file("state") +
                               "\"\n\n[[target]]\nname = \"customers\"\naddress = \"198.51.100.0/24\"\n"
                               "  [[target.probe]]\n  kind = \"pcap\"\n  interface = \"nosuchif0\"\n"
                               "  interval = \"500ms\"\n  timeout = \"200ms\"\n");
  Process agent(Process::Options{{agent_binary(), "run", "-c", config}, {}, dir.path()});
  const std::string marker = "msg=listening address=127.0.0.1:";
  auto pos = agent.wait_for_stderr(marker, 5s);
  ASSERT_TRUE(pos) << agent.stderr_text();
  const int port = std::atoi(agent.stderr_text().c_str() + *pos + marker.size());
  std::string body;
  EXPECT_TRUE(test::wait_until(
      [&] {
        auto r = test::http_get("http://127.0.0.1:" + std::to_string(port) + "/metrics");
        body = r.body;
        auto t = test::parse_prom_text(r.body);
        return t.value("probe_success", {{"target", "customers"}}) == 0.0;
      },
      5s, 100ms))
      << body;
  // The why reaches the alert (and so the incident timeline).
  EXPECT_TRUE(agent.wait_for_stderr("cannot capture on nosuchif0: No such device exists", 5s))
      << agent.stderr_text();
  EXPECT_TRUE(agent.running());
}

}  // namespace
}  // namespace nightshift::pcap
