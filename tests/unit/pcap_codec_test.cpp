// Pcap watch analysis: header decoding, prefixes, handshakes, retransmissions,
// ICMP unreachable by router, the baseline. Pure; time from ManualClock.
#include "probes/pcap/pcap_codec.h"

#include <gtest/gtest.h>

#include "probes/pcap/pcap_frames.h"

namespace nightshift::pcap {
namespace {

using frames::ip;
using namespace std::chrono_literals;

std::span<const std::uint8_t> span(const std::vector<std::uint8_t>& v) { return {v.data(), v.size()}; }

TEST(PcapPrefix, ParsesIPv4AndIPv6AndRejectsHostBits) {
  struct Case {
    const char* name;
    const char* text;
    const char* canonical;  // nullptr: rejected
    const char* error_part;
  };
  const Case cases[] = {
      {"v4 /24", "198.51.100.0/24", "198.51.100.0/24", ""},
      {"v4 bare", "198.51.100.7", "198.51.100.7/32", ""},
      {"v4 /0", "0.0.0.0/0", "0.0.0.0/0", ""},
      {"v6 /32", "2001:db8::/32", "2001:db8::/32", ""},
      {"host bits", "198.51.100.7/24", nullptr, "did you mean \"198.51.100.0/24\""},
      {"too long", "198.51.100.0/33", nullptr, "longer than 32"},
      {"v6 too long", "2001:db8::/129", nullptr, "longer than 128"},
      {"no length", "198.51.100.0/", nullptr, "prefix length"},
      {"hostname", "example.com/24", nullptr, "expected an IPv4 or IPv6 prefix"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::string error;
    auto p = Prefix::parse(c.text, &error);
    if (c.canonical) {
      ASSERT_TRUE(p) << error;
      EXPECT_EQ(p->to_string(), c.canonical);
    } else {
      EXPECT_FALSE(p);
      EXPECT_NE(error.find(c.error_part), std::string::npos) << error;
    }
  }
}

TEST(PcapPrefix, ContainsAndLongestMatch) {
  Analyzer a;
  const auto wide = a.add_prefix(*Prefix::parse("198.51.100.0/24"));
  const auto narrow = a.add_prefix(*Prefix::parse("198.51.100.128/25"));
  const auto v6 = a.add_prefix(*Prefix::parse("2001:db8:5e::/48"));
  EXPECT_EQ(a.add_prefix(*Prefix::parse("198.51.100.0/24")), wide);  // idempotent
  EXPECT_EQ(a.longest_match(ip("198.51.100.7")), static_cast<int>(wide));
  EXPECT_EQ(a.longest_match(ip("198.51.100.200")), static_cast<int>(narrow));
  EXPECT_EQ(a.longest_match(ip("2001:db8:5e::2")), static_cast<int>(v6));
  EXPECT_EQ(a.longest_match(ip("203.0.113.1")), -1);
  EXPECT_EQ(a.longest_match(ip("2001:db8:5f::1")), -1);
}

// IEEE 802.3: dst MAC, src MAC, EtherType 0x0800; 802.1Q inserts 0x8100 + TCI.
TEST(PcapDecode, EthernetIPv4Tcp) {
  auto f = frames::tcp(ip("198.51.100.2"), ip("203.0.113.9"), 40000, 443, tcp_flag::kSyn, 1000, 10);
  DecodeError e;
  auto p = decode_packet(kLinkEthernet, span(f), &e);
  ASSERT_TRUE(p) << to_string(e);
  EXPECT_EQ(p->src.to_string(), "198.51.100.2");
  EXPECT_EQ(p->dst.to_string(), "203.0.113.9");
  EXPECT_TRUE(p->is_tcp);
  EXPECT_EQ(p->src_port, 40000);
  EXPECT_EQ(p->dst_port, 443);
  EXPECT_EQ(p->tcp_flags, tcp_flag::kSyn);
  EXPECT_EQ(p->seq, 1000u);
  EXPECT_EQ(p->tcp_payload, 10u);
  EXPECT_EQ(p->ip_bytes, 50u);
}

TEST(PcapDecode, PayloadLengthComesFromTheIpHeaderNotTheSnaplen) {
  auto f = frames::tcp(ip("198.51.100.2"), ip("203.0.113.9"), 1, 2, tcp_flag::kAck, 5, 1400);
  f.resize(128);  // as captured with snaplen 128
  auto p = decode_packet(kLinkEthernet, span(f));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->tcp_payload, 1400u);
}

TEST(PcapDecode, VlanTagsSllSll2AndRawLinkTypes) {
  auto eth = frames::tcp(ip("198.51.100.2"), ip("198.51.100.3"), 1, 2, tcp_flag::kRst, 0);
  const std::vector<std::uint8_t> ip_only(eth.begin() + 14, eth.end());
  // Two VLAN tags (802.1ad outer, 802.1Q inner).
  std::vector<std::uint8_t> qinq(eth.begin(), eth.begin() + 12);
  for (int x : {0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00}) qinq.push_back(static_cast<std::uint8_t>(x));
  qinq.insert(qinq.end(), ip_only.begin(), ip_only.end());
  // Linux cooked v1: 16 bytes, protocol at 14.
  std::vector<std::uint8_t> sll(16, 0);
  sll[14] = 0x08;
  sll.insert(sll.end(), ip_only.begin(), ip_only.end());
  // Linux cooked v2: 20 bytes, protocol at 0.
  std::vector<std::uint8_t> sll2(20, 0);
  sll2[0] = 0x08;
  sll2.insert(sll2.end(), ip_only.begin(), ip_only.end());
  const std::pair<int, std::vector<std::uint8_t>> cases[] = {
      {kLinkEthernet, qinq}, {kLinkLinuxSll, sll}, {kLinkLinuxSll2, sll2}, {kLinkRaw, ip_only}, {kLinkIPv4, ip_only}};
  for (const auto& [link, frame] : cases) {
    SCOPED_TRACE(link);
    DecodeError e;
    auto p = decode_packet(link, span(frame), &e);
    ASSERT_TRUE(p) << to_string(e);
    EXPECT_EQ(p->src.to_string(), "198.51.100.2");
    EXPECT_EQ(p->tcp_flags, tcp_flag::kRst);
  }
}

TEST(PcapDecode, IPv6TcpThroughExtensionHeaders) {
  auto f = frames::tcp(ip("2001:db8:5e::2"), ip("2001:db8:5e::1"), 22, 50000, tcp_flag::kSyn | tcp_flag::kAck, 7);
  // RFC 8200 4.3: insert a hop-by-hop header (8 bytes) before TCP.
  std::vector<std::uint8_t> g(f.begin(), f.begin() + 14 + 40);
  g[14 + 6] = 0;  // next header: hop-by-hop
  g[14 + 5] = static_cast<std::uint8_t>(g[14 + 5] + 8);
  const std::uint8_t hbh[8] = {6, 0, 1, 4, 0, 0, 0, 0};  // next: TCP, length 0 (8 bytes), PadN
  g.insert(g.end(), hbh, hbh + 8);
  g.insert(g.end(), f.begin() + 14 + 40, f.end());
  auto p = decode_packet(kLinkEthernet, span(g));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->protocol, 6);
  EXPECT_TRUE(p->is_tcp);
  EXPECT_EQ(p->src_port, 22);
  EXPECT_EQ(p->tcp_flags, tcp_flag::kSyn | tcp_flag::kAck);
}

// RFC 792: destination unreachable, type 3; the internet header + 64 bits of
// the original datagram follow. RFC 4443 3.1: ICMPv6 type 1, likewise.
TEST(PcapDecode, IcmpUnreachableNamesRouterAndQuotedDestination) {
  for (const auto& [router, to, dst] : {std::tuple{"198.51.100.254", "198.51.100.2", "203.0.113.5"},
                                        std::tuple{"2001:db8:5e::fe", "2001:db8:5e::2", "2001:db8:dead::1"}}) {
    SCOPED_TRACE(router);
    auto f = frames::unreachable(ip(router), ip(to), ip(to), ip(dst), 3);
    auto p = decode_packet(kLinkEthernet, span(f));
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->icmp_unreachable);
    EXPECT_EQ(p->icmp_code, 3);
    EXPECT_EQ(p->src.to_string(), router);
    ASSERT_TRUE(p->quoted_dst);
    EXPECT_EQ(p->quoted_dst->to_string(), dst);
  }
}

TEST(PcapDecode, DamagedAndForeignFramesSayWhy) {
  auto f = frames::tcp(ip("198.51.100.2"), ip("198.51.100.3"), 1, 2, 0, 0);
  std::vector<std::uint8_t> arp(f.begin(), f.begin() + 14);
  arp[12] = 0x08;
  arp[13] = 0x06;
  std::vector<std::uint8_t> short_ip(f.begin(), f.begin() + 14 + 10);
  std::vector<std::uint8_t> bad_version = f;
  bad_version[14] = 0x55;
  std::vector<std::uint8_t> bad_ihl = f;
  bad_ihl[14] = 0x41;
  struct Case {
    const char* name;
    int link;
    std::vector<std::uint8_t> frame;
    DecodeError expected;
  };
  const Case cases[] = {
      {"empty", kLinkEthernet, {}, DecodeError::kTruncated},
      {"arp", kLinkEthernet, arp, DecodeError::kNotIp},
      {"short ip", kLinkEthernet, short_ip, DecodeError::kTruncated},
      {"version 5", kLinkEthernet, bad_version, DecodeError::kBadIpHeader},
      {"ihl 4", kLinkEthernet, bad_ihl, DecodeError::kBadIpHeader},
      {"unknown link", 147, f, DecodeError::kUnsupportedLink},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    DecodeError e = DecodeError::kNone;
    EXPECT_FALSE(decode_packet(c.link, span(c.frame), &e));
    EXPECT_EQ(e, c.expected) << to_string(e);
  }
}

TEST(PcapDecode, LaterFragmentCountsAddressesButNoTcpHeader) {
  auto f = frames::tcp(ip("198.51.100.2"), ip("198.51.100.3"), 1, 2, tcp_flag::kSyn, 0);
  f[14 + 7] = 10;  // fragment offset 80 bytes
  auto p = decode_packet(kLinkEthernet, span(f));
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->is_tcp);
  EXPECT_EQ(p->protocol, 6);
}

class PcapAnalyzerTest : public ::testing::Test {
 protected:
  void add(const std::vector<std::uint8_t>& f) {
    ASSERT_TRUE(analyzer.add_frame(kLinkEthernet, span(f), static_cast<std::uint32_t>(f.size()), clock.now()));
  }
  ManualClock clock;
  Analyzer analyzer{[] {
    AnalyzerSettings s;
    s.syn_timeout = 3s;
    s.max_routers = 2;
    return s;
  }()};
  std::size_t customers = analyzer.add_prefix(*Prefix::parse("198.51.100.0/24"));
  std::size_t other = analyzer.add_prefix(*Prefix::parse("203.0.113.0/24"));
};

TEST_F(PcapAnalyzerTest, CountsTrafficToOrFromEachPrefixOnce) {
  add(frames::udp(ip("198.51.100.2"), ip("192.0.2.1"), 1, 2, 100));   // from customers: 142 bytes
  add(frames::udp(ip("192.0.2.1"), ip("198.51.100.2"), 2, 1, 0));     // to customers: 42
  add(frames::udp(ip("198.51.100.2"), ip("198.51.100.3"), 1, 2, 0));  // inside: once, 42
  add(frames::udp(ip("198.51.100.2"), ip("203.0.113.4"), 1, 2, 0));   // both prefixes, 42
  add(frames::udp(ip("192.0.2.1"), ip("192.0.2.2"), 1, 2, 0));        // neither, 42
  EXPECT_EQ(analyzer.counters(customers).packets, 4u);
  EXPECT_EQ(analyzer.counters(customers).bytes, 142u + 3 * 42u);
  EXPECT_EQ(analyzer.counters(other).packets, 1u);
  EXPECT_EQ(analyzer.interface_counters().packets, 5u);
  EXPECT_EQ(analyzer.interface_counters().bytes, 142u + 4 * 42u);
}

TEST_F(PcapAnalyzerTest, SynWithoutSynAckWithinTimeoutFails) {
  const auto c = ip("198.51.100.2"), s = ip("192.0.2.80");
  add(frames::tcp(c, s, 40001, 80, tcp_flag::kSyn, 100));
  add(frames::tcp(c, s, 40002, 80, tcp_flag::kSyn, 200));
  add(frames::tcp(c, s, 40003, 80, tcp_flag::kSyn, 300));
  clock.advance(1s);
  add(frames::tcp(c, s, 40001, 80, tcp_flag::kSyn, 100));  // the same attempt again: not a new one
  add(frames::tcp(s, c, 80, 40001, tcp_flag::kSyn | tcp_flag::kAck, 9000));
  EXPECT_EQ(analyzer.counters(customers).syn, 3u);
  EXPECT_EQ(analyzer.counters(customers).syn_completed, 1u);
  EXPECT_EQ(analyzer.counters(customers).syn_failed, 0u);
  clock.advance(1999ms);
  analyzer.expire(clock.now());
  EXPECT_EQ(analyzer.counters(customers).syn_failed, 0u);  // 2.999 s: not yet
  clock.advance(1ms);
  analyzer.expire(clock.now());
  EXPECT_EQ(analyzer.counters(customers).syn_failed, 2u);
  EXPECT_EQ(analyzer.pending_handshakes(), 0u);
  // A SYN-ACK after the timeout changes nothing.
  add(frames::tcp(s, c, 80, 40002, tcp_flag::kSyn | tcp_flag::kAck, 9000));
  EXPECT_EQ(analyzer.counters(customers).syn_completed, 1u);
}

TEST_F(PcapAnalyzerTest, RstAndRetransmissions) {
  const auto c = ip("198.51.100.2"), s = ip("192.0.2.80");
  add(frames::tcp(c, s, 40001, 80, tcp_flag::kAck, 1000, 100));   // 1000..1100
  add(frames::tcp(c, s, 40001, 80, tcp_flag::kAck, 1100, 100));   // new
  add(frames::tcp(c, s, 40001, 80, tcp_flag::kAck, 1100, 100));   // repeated
  add(frames::tcp(c, s, 40001, 80, tcp_flag::kAck, 1000, 100));   // older: repeated
  add(frames::tcp(c, s, 40001, 80, tcp_flag::kAck, 1200, 0));     // pure ACK: never a retransmission
  add(frames::tcp(s, c, 80, 40001, tcp_flag::kAck, 1000, 100));   // the other direction: its own flow
  add(frames::tcp(s, c, 80, 40001, tcp_flag::kRst, 1100));
  EXPECT_EQ(analyzer.counters(customers).retransmits, 2u);
  EXPECT_EQ(analyzer.counters(customers).rst, 1u);
}

TEST_F(PcapAnalyzerTest, RetransmissionAcrossSequenceWrap) {
  const auto c = ip("198.51.100.2"), s = ip("192.0.2.80");
  add(frames::tcp(c, s, 1, 2, tcp_flag::kAck, 0xffffff00u, 0x80));
  add(frames::tcp(c, s, 1, 2, tcp_flag::kAck, 0xffffff80u, 0x100));  // wraps past 0: new data
  add(frames::tcp(c, s, 1, 2, tcp_flag::kAck, 0xffffff80u, 0x100));  // same again
  EXPECT_EQ(analyzer.counters(customers).retransmits, 1u);
}

TEST_F(PcapAnalyzerTest, UnreachableByRouterBoundedWithOther) {
  const auto host = ip("198.51.100.2"), far = ip("192.0.2.9");
  for (const char* r : {"198.51.100.254", "198.51.100.254", "198.51.100.253", "198.51.100.252", "198.51.100.251"}) {
    add(frames::unreachable(ip(r), host, host, far));
  }
  const auto& m = analyzer.counters(customers).unreachable_by_router;
  EXPECT_EQ(analyzer.counters(customers).icmp_unreachable, 5u);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m.at("198.51.100.254"), 2u);
  EXPECT_EQ(m.at("198.51.100.253"), 1u);
  EXPECT_EQ(m.at("other"), 2u);
}

TEST(PcapAnalyzerBounds, HandshakeAndFlowTablesStayBounded) {
  AnalyzerSettings s;
  s.max_handshakes = 100;
  s.max_flows = 50;
  Analyzer a(s);
  a.add_prefix(*Prefix::parse("198.51.100.0/24"));
  ManualClock clock;
  for (std::uint16_t port = 1; port <= 1000; ++port) {
    auto syn = frames::tcp(ip("198.51.100.2"), ip("192.0.2.1"), port, 80, tcp_flag::kSyn, 0);
    auto data = frames::tcp(ip("198.51.100.2"), ip("192.0.2.1"), port, 81, tcp_flag::kAck, 0, 10);
    a.add_frame(kLinkEthernet, span(syn), 54, clock.now());
    a.add_frame(kLinkEthernet, span(data), 64, clock.now());
    EXPECT_LE(a.pending_handshakes(), 100u);
    EXPECT_LE(a.tracked_flows(), 50u);
  }
  EXPECT_EQ(a.counters(0).syn, 1000u);
}

TEST(PcapBaseline, BucketIsHourOfWeekFromMondayUtc) {
  // 1970-01-05 was a Monday.
  const SystemTime monday = SystemTime{} + std::chrono::hours(24 * 4);
  EXPECT_EQ(Baseline::bucket_of(monday), 0);
  EXPECT_EQ(Baseline::bucket_of(monday + 90min), 1);
  EXPECT_EQ(Baseline::bucket_of(monday - 1s), 167);  // Sunday 23:59:59
  EXPECT_EQ(Baseline::bucket_of(monday + std::chrono::hours(24 * 2 + 13)), 2 * 24 + 13);
}

TEST(PcapBaseline, LearnsThenReportsADrop) {
  BaselineSettings s;
  s.min_samples = 3;
  s.min_pps = 5;
  Baseline b(s);
  const SystemTime t = SystemTime{} + std::chrono::hours(24 * 4 + 10);
  EXPECT_FALSE(b.observe(t, 100));
  EXPECT_FALSE(b.observe(t, 100));
  EXPECT_FALSE(b.expected(t));
  EXPECT_FALSE(b.observe(t, 100));
  ASSERT_TRUE(b.expected(t));
  EXPECT_DOUBLE_EQ(*b.expected(t), 100);
  EXPECT_DOUBLE_EQ(*b.observe(t, 100), 0.0);
  EXPECT_DOUBLE_EQ(*b.observe(t, 150), 0.0);  // more traffic than usual: no drop
  auto drop = b.observe(t, 0);
  ASSERT_TRUE(drop);
  EXPECT_NEAR(*drop, 1.0, 1e-9);
  // Another hour of the week has not learned: the all-hours mean stands in.
  ASSERT_TRUE(b.expected(t + 5h));
}

TEST(PcapBaseline, QuietPrefixNeverReportsADrop) {
  BaselineSettings s;
  s.min_samples = 2;
  s.min_pps = 1;
  Baseline b(s);
  const SystemTime t{};
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(b.observe(t, 0.2));
  EXPECT_FALSE(b.observe(t, 0));
}

TEST(PcapBaseline, AnOutageIsLearnedSlowly) {
  BaselineSettings s;
  s.min_samples = 1;
  s.alpha = 0.5;
  s.anomaly_damping = 0.1;
  Baseline b(s);
  const SystemTime t{};
  b.observe(t, 100);
  b.observe(t, 0);  // dropped by 100 %: learned at alpha 0.05
  EXPECT_NEAR(*b.expected(t), 95, 1e-9);
}

TEST(PcapPrefixWatch, RatesOverTheIntervalSincePreviousReport) {
  ManualClock clock;
  Analyzer a;
  const auto idx = a.add_prefix(*Prefix::parse("198.51.100.0/24"));
  BaselineSettings bs;
  bs.min_samples = 2;
  PrefixWatch w(bs, clock.now());
  auto pkt = frames::udp(ip("198.51.100.2"), ip("192.0.2.1"), 1, 2, 58);  // 100 bytes
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 50; ++i) a.add_frame(kLinkEthernet, span(pkt), 100, clock.now());
    clock.advance(10s);
    auto r = w.report(a.counters(idx), clock.now(), clock.wall_now());
    SCOPED_TRACE(round);
    EXPECT_DOUBLE_EQ(r.seconds, 10);
    EXPECT_DOUBLE_EQ(r.packets_per_second, 5);
    EXPECT_DOUBLE_EQ(r.bytes_per_second, 500);
    EXPECT_EQ(r.traffic_drop.has_value(), round == 2);
    EXPECT_FALSE(r.syn_failed_ratio);
  }
  clock.advance(10s);  // silence
  auto r = w.report(a.counters(idx), clock.now(), clock.wall_now());
  EXPECT_DOUBLE_EQ(r.packets_per_second, 0);
  ASSERT_TRUE(r.baseline_pps);
  EXPECT_DOUBLE_EQ(*r.baseline_pps, 5);
  ASSERT_TRUE(r.traffic_drop);
  EXPECT_DOUBLE_EQ(*r.traffic_drop, 1.0);
}

TEST(PcapPrefixWatch, AnEmptyWindowTeachesTheBaselineNothing) {
  ManualClock clock;
  Analyzer a;
  const auto idx = a.add_prefix(*Prefix::parse("198.51.100.0/24"));
  BaselineSettings bs;
  bs.min_samples = 1;
  PrefixWatch w(bs, clock.now());
  auto first = w.report(a.counters(idx), clock.now(), clock.wall_now());  // 0 s: the first run
  EXPECT_DOUBLE_EQ(first.seconds, 0);
  EXPECT_FALSE(first.baseline_pps);
  auto pkt = frames::udp(ip("198.51.100.2"), ip("192.0.2.1"), 1, 2, 0);
  for (int i = 0; i < 100; ++i) a.add_frame(kLinkEthernet, span(pkt), 42, clock.now());
  clock.advance(10s);
  w.report(a.counters(idx), clock.now(), clock.wall_now());
  clock.advance(10s);
  auto r = w.report(a.counters(idx), clock.now(), clock.wall_now());
  ASSERT_TRUE(r.baseline_pps);
  EXPECT_DOUBLE_EQ(*r.baseline_pps, 10);  // learned from the 10 s window only, no zero from the empty one
  EXPECT_DOUBLE_EQ(*r.traffic_drop, 1.0);
}

TEST(PcapPrefixWatch, SynFailedRatio) {
  ManualClock clock;
  AnalyzerSettings as;
  as.syn_timeout = 1s;
  Analyzer a(as);
  const auto idx = a.add_prefix(*Prefix::parse("198.51.100.0/24"));
  PrefixWatch w({}, clock.now());
  const auto c = ip("198.51.100.2"), s = ip("192.0.2.80");
  for (std::uint16_t p = 1; p <= 4; ++p) a.add_frame(kLinkEthernet, span(frames::tcp(c, s, p, 80, tcp_flag::kSyn, 0)), 54, clock.now());
  a.add_frame(kLinkEthernet, span(frames::tcp(s, c, 80, 1, tcp_flag::kSyn | tcp_flag::kAck, 0)), 54, clock.now());
  clock.advance(2s);
  a.expire(clock.now());
  auto r = w.report(a.counters(idx), clock.now(), clock.wall_now());
  ASSERT_TRUE(r.syn_failed_ratio);
  EXPECT_DOUBLE_EQ(*r.syn_failed_ratio, 0.75);
}

}  // namespace
}  // namespace nightshift::pcap
