// Passive traffic analysis, pure: packet headers in, counts out. No pcap
// handle, no fd, no clock of its own (times are passed in), so the live
// watcher (probes/pcap.cpp), `nightshift replay` and the unit and fuzz tests
// run exactly the same code.
//
// Only headers are read, never payload: a decoded packet keeps addresses,
// ports, TCP flags and sequence numbers, and lengths. Nothing but counts ever
// leaves the analyzer.
//
//   decode_packet()  link layer (Ethernet + up to two VLAN tags, Linux SLL and
//                    SLL2, raw IPv4/IPv6) -> IPv4/IPv6 (extension headers
//                    walked, non-first fragments carry no L4) -> TCP or
//                    ICMP/ICMPv6 destination unreachable with the quoted original
//   Prefix           an IPv4 or IPv6 CIDR; longest match among those configured
//   Analyzer         cumulative counters per prefix (traffic to OR from it),
//                    TCP handshake tracking (SYN without SYN-ACK within
//                    syn_timeout = failed), retransmission indicator, ICMP
//                    unreachable counts by router; every table bounded
//   Baseline         learned packets/s per (day-of-week, hour) bucket, UTC
//   PrefixReport     what one probe run reports: rates since the previous run
//
// Thread safety: none; one thread per object. Pure functions: any thread.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "nightshift/clock.h"

namespace nightshift::pcap {

// libpcap's DLT_* values for the link types decode_packet() understands
// (pcap_datalink() answers these, also for LINKTYPE_RAW files).
enum LinkType : int {
  kLinkEthernet = 1,     // DLT_EN10MB
  kLinkRaw = 12,         // DLT_RAW (Linux): starts at the IP header
  kLinkRawAlt = 14,      // DLT_RAW on some BSDs
  kLinkLinuxSll = 113,   // DLT_LINUX_SLL ("any" interface)
  kLinkIPv4 = 228,       // DLT_IPV4
  kLinkIPv6 = 229,       // DLT_IPV6
  kLinkLinuxSll2 = 276,  // DLT_LINUX_SLL2
};
bool supported_link_type(int link_type);

struct IpAddress {
  std::uint8_t family = 0;  // 4 or 6; 0: none
  std::array<std::uint8_t, 16> bytes{};  // IPv4 in the first 4
  bool operator==(const IpAddress&) const = default;
  std::string to_string() const;
  static std::optional<IpAddress> parse(std::string_view text);
};
struct IpAddressHash {
  std::size_t operator()(const IpAddress& a) const;
};

struct Prefix {
  IpAddress network;  // host bits cleared
  int length = 0;     // 0..32 or 0..128
  bool contains(const IpAddress& a) const;
  std::string to_string() const;
  bool operator==(const Prefix&) const = default;
  // "198.51.100.0/24", "2001:db8::/32"; a bare address is a /32 or /128.
  // Host bits set ("198.51.100.7/24") are an error: nullopt, `error` says why.
  static std::optional<Prefix> parse(std::string_view text, std::string* error = nullptr);
};

namespace tcp_flag {
constexpr std::uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;
}

struct DecodedPacket {
  IpAddress src, dst;
  std::uint8_t protocol = 0;   // IPPROTO_* of the transport (after IPv6 extension headers)
  std::uint32_t ip_bytes = 0;  // the IP datagram's length per its own header
  bool is_tcp = false;         // TCP header decoded
  std::uint16_t src_port = 0, dst_port = 0;
  std::uint8_t tcp_flags = 0;
  std::uint32_t seq = 0;
  std::uint32_t tcp_payload = 0;  // payload bytes per the IP length (not what was captured)
  bool icmp_unreachable = false;  // ICMP type 3 / ICMPv6 type 1; the router is `src`
  std::uint8_t icmp_code = 0;
  std::optional<IpAddress> quoted_dst;  // the unreachable packet's destination, when quoted
};

enum class DecodeError {
  kNone,
  kTruncated,          // shorter than the headers it announces
  kNotIp,              // a link-layer frame that does not carry IPv4/IPv6 (ARP, LLDP...)
  kUnsupportedLink,    // link type decode_packet() does not know
  kBadIpHeader,        // version or header length field impossible
};
std::string_view to_string(DecodeError e);

// Decodes one captured frame (only the captured bytes; a snaplen-truncated
// frame decodes as far as its headers go). nullopt with `error` set when it is
// not an IP packet or is damaged; never reads outside `frame`.
std::optional<DecodedPacket> decode_packet(int link_type, std::span<const std::uint8_t> frame,
                                           DecodeError* error = nullptr);

struct AnalyzerSettings {
  Duration syn_timeout = std::chrono::seconds(3);  // SYN without SYN-ACK by then: failed
  std::size_t max_handshakes = 65536;              // pending SYNs tracked; oldest evicted beyond
  std::size_t max_flows = 65536;                   // TCP flows tracked for retransmissions
  std::size_t max_routers = 32;                    // routers named per prefix; the rest are "other"
};

// Cumulative counts (they only grow) for one prefix, or for the whole interface.
struct Counters {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;  // on the wire (the capture's original length)
  std::uint64_t syn = 0;    // connection attempts: SYN without ACK, first sighting
  std::uint64_t syn_completed = 0;  // SYN-ACK seen within syn_timeout
  std::uint64_t syn_failed = 0;     // no SYN-ACK within syn_timeout
  std::uint64_t rst = 0;
  std::uint64_t retransmits = 0;  // TCP segments with payload that carry no new sequence space
  std::uint64_t icmp_unreachable = 0;
  // ICMP unreachable by the router that sent it: at most max_routers names,
  // then "other" (first come: a named router never disappears, so the exported
  // counters stay monotonic and the label set bounded).
  std::map<std::string, std::uint64_t> unreachable_by_router;
};

class Analyzer {
 public:
  explicit Analyzer(AnalyzerSettings settings = {});

  // Registers a prefix (idempotent) and returns its index; counting starts now.
  std::size_t add_prefix(const Prefix& p);
  const std::vector<Prefix>& prefixes() const { return prefixes_; }
  const Counters& counters(std::size_t prefix_index) const { return per_prefix_[prefix_index]; }
  const Counters& interface_counters() const { return total_; }
  const AnalyzerSettings& settings() const { return settings_; }

  // One captured frame at `t`; `wire_length` is its length on the wire.
  // Returns false when it was not an IP packet (still counted in decode_errors()).
  bool add_frame(int link_type, std::span<const std::uint8_t> frame, std::uint32_t wire_length, SteadyTime t);
  void add_packet(const DecodedPacket& p, std::uint32_t wire_length, SteadyTime t);
  // Judges handshakes whose SYN is older than syn_timeout at `now` as failed.
  // add_packet() calls it too; a report calls it before reading counters.
  void expire(SteadyTime now);

  std::uint64_t decode_errors() const { return decode_errors_; }
  std::size_t pending_handshakes() const { return handshakes_.size(); }
  std::size_t tracked_flows() const { return flows_.size(); }

  // The index of the longest configured prefix containing `a`, or -1.
  int longest_match(const IpAddress& a) const;

 private:
  struct FlowKey {
    IpAddress a, b;  // client/sender, server/receiver
    std::uint16_t a_port = 0, b_port = 0;
    bool operator==(const FlowKey&) const = default;
  };
  struct FlowKeyHash {
    std::size_t operator()(const FlowKey& k) const;
  };
  struct Handshake {
    SteadyTime syn_at;
    int prefix_a = -1, prefix_b = -1;
  };
  void count_handshake(const Handshake& h, bool completed);

  AnalyzerSettings settings_;
  std::vector<Prefix> prefixes_;
  std::vector<Counters> per_prefix_;
  Counters total_;
  std::unordered_map<FlowKey, Handshake, FlowKeyHash> handshakes_;
  std::deque<std::pair<FlowKey, SteadyTime>> handshake_order_;  // SYN order, for expiry and eviction
  std::unordered_map<FlowKey, std::uint32_t, FlowKeyHash> flows_;  // sender direction -> highest seq end
  std::deque<FlowKey> flow_order_;  // insertion order, for eviction
  std::uint64_t decode_errors_ = 0;
};

struct BaselineSettings {
  double alpha = 0.1;          // EWMA weight of a new sample in its bucket
  int min_samples = 30;        // a bucket (or the fallback) is learned after this many
  double min_pps = 1.0;        // below this baseline, traffic_drop is not computed
  double anomaly_damping = 0.1;// alpha is multiplied by this while traffic has dropped by half or more
};

// packets/s learned per (day of week, hour of day) in UTC: 168 EWMA buckets,
// plus one all-hours EWMA used until the current hour's bucket has learned.
class Baseline {
 public:
  explicit Baseline(BaselineSettings settings = {}) : settings_(settings) {}
  static int bucket_of(SystemTime wall);  // 0..167, Monday 00:00 UTC = 0
  // The learned packets/s for this moment, or nullopt while nothing has learned.
  std::optional<double> expected(SystemTime wall) const;
  // Learns one observation; returns the traffic_drop it represented against
  // the baseline before learning it (nullopt: not learned, or below min_pps).
  std::optional<double> observe(SystemTime wall, double pps);

 private:
  struct Bucket {
    double mean = 0;
    std::uint64_t samples = 0;
  };
  BaselineSettings settings_;
  std::array<Bucket, 168> buckets_{};
  Bucket overall_;
};

// Rates for one prefix over one report interval, computed from two snapshots
// of its cumulative counters.
struct PrefixReport {
  double seconds = 0;
  Counters delta;  // counts within the interval (router map: this interval's counts)
  double packets_per_second = 0, bytes_per_second = 0;
  double rst_per_second = 0, retransmits_per_second = 0, icmp_unreachable_per_second = 0;
  double syn_per_second = 0;
  std::optional<double> syn_failed_ratio;  // failed / (failed + completed), when any were judged
  std::optional<double> baseline_pps;
  std::optional<double> traffic_drop;      // 1 - pps/baseline in [0, 1], once learned
};

// One subscriber's view of a prefix: keeps the previous snapshot and the
// baseline. report() moves the window forward.
class PrefixWatch {
 public:
  PrefixWatch(BaselineSettings baseline, SteadyTime start, Counters start_counters = {})
      : baseline_(baseline), last_at_(start), last_(std::move(start_counters)) {}
  PrefixReport report(const Counters& now_counters, SteadyTime now, SystemTime wall);

 private:
  Baseline baseline_;
  SteadyTime last_at_;
  Counters last_;
};

Counters difference(const Counters& now, const Counters& before);

}  // namespace nightshift::pcap
