#include "probes/pcap/pcap_codec.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <ctime>

namespace nightshift::pcap {

namespace {

constexpr std::uint16_t kEtherIPv4 = 0x0800;
constexpr std::uint16_t kEtherIPv6 = 0x86dd;
constexpr std::uint16_t kEtherVlan = 0x8100;
constexpr std::uint16_t kEtherQinQ = 0x88a8;
constexpr std::uint8_t kProtoIcmp = 1;
constexpr std::uint8_t kProtoTcp = 6;
constexpr std::uint8_t kProtoIcmp6 = 58;

std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }
std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

bool fail(DecodeError* error, DecodeError e) {
  if (error) *error = e;
  return false;
}

IpAddress v4(const std::uint8_t* p) {
  IpAddress a;
  a.family = 4;
  std::memcpy(a.bytes.data(), p, 4);
  return a;
}
IpAddress v6(const std::uint8_t* p) {
  IpAddress a;
  a.family = 6;
  std::memcpy(a.bytes.data(), p, 16);
  return a;
}

// Reads the destination of a quoted original datagram (inside an ICMP error).
std::optional<IpAddress> quoted_destination(std::span<const std::uint8_t> q) {
  if (q.empty()) return std::nullopt;
  const int version = q[0] >> 4;
  if (version == 4 && q.size() >= 20) return v4(q.data() + 16);
  if (version == 6 && q.size() >= 40) return v6(q.data() + 24);
  return std::nullopt;
}

void decode_tcp(std::span<const std::uint8_t> l4, std::uint32_t l4_length, DecodedPacket& p) {
  // RFC 9293 3.1: ports, sequence number, data offset, flags in the first 14 bytes.
  if (l4.size() < 14) return;
  p.is_tcp = true;
  p.src_port = be16(l4.data());
  p.dst_port = be16(l4.data() + 2);
  p.seq = be32(l4.data() + 4);
  const std::uint32_t header = (l4[12] >> 4) * 4u;
  p.tcp_flags = l4[13];
  p.tcp_payload = l4_length > header ? l4_length - header : 0;
}

void decode_icmp(std::span<const std::uint8_t> l4, bool v6_family, DecodedPacket& p) {
  // RFC 792 / RFC 4443: type, code, checksum, 4 unused bytes, then the quoted datagram.
  if (l4.size() < 2) return;
  const std::uint8_t type = l4[0];
  if ((!v6_family && type == 3) || (v6_family && type == 1)) {
    p.icmp_unreachable = true;
    p.icmp_code = l4[1];
    if (l4.size() > 8) p.quoted_dst = quoted_destination(l4.subspan(8));
  }
}

bool decode_ip(std::span<const std::uint8_t> ip, DecodedPacket& p, DecodeError* error) {
  if (ip.empty()) return fail(error, DecodeError::kTruncated);
  const int version = ip[0] >> 4;
  if (version == 4) {
    if (ip.size() < 20) return fail(error, DecodeError::kTruncated);
    const std::size_t ihl = (ip[0] & 0x0f) * 4u;
    if (ihl < 20) return fail(error, DecodeError::kBadIpHeader);
    p.src = v4(ip.data() + 12);
    p.dst = v4(ip.data() + 16);
    p.protocol = ip[9];
    p.ip_bytes = be16(ip.data() + 2);
    if (p.ip_bytes < ihl) return fail(error, DecodeError::kBadIpHeader);
    const bool later_fragment = (be16(ip.data() + 6) & 0x1fff) != 0;
    if (later_fragment || ip.size() < ihl) return true;  // addresses count; no L4 header here
    const auto l4 = ip.subspan(ihl);
    const std::uint32_t l4_length = p.ip_bytes - static_cast<std::uint32_t>(ihl);
    if (p.protocol == kProtoTcp) decode_tcp(l4, l4_length, p);
    if (p.protocol == kProtoIcmp) decode_icmp(l4, false, p);
    return true;
  }
  if (version == 6) {
    if (ip.size() < 40) return fail(error, DecodeError::kTruncated);
    p.src = v6(ip.data() + 8);
    p.dst = v6(ip.data() + 24);
    const std::uint32_t payload_length = be16(ip.data() + 4);
    p.ip_bytes = 40 + payload_length;
    std::uint8_t next = ip[6];
    std::size_t offset = 40;
    // RFC 8200 4: walk extension headers, a bounded number of them.
    for (int hops = 0; hops < 8; ++hops) {
      if (next == 0 || next == 43 || next == 60) {  // hop-by-hop, routing, destination options
        if (ip.size() < offset + 8) {
          p.protocol = next;
          return true;
        }
        next = ip[offset];
        offset += (ip[offset + 1] + 1u) * 8u;
      } else if (next == 44) {  // fragment
        if (ip.size() < offset + 8) {
          p.protocol = next;
          return true;
        }
        const bool later_fragment = (be16(ip.data() + offset + 2) & 0xfff8) != 0;
        next = ip[offset];
        offset += 8;
        if (later_fragment) {
          p.protocol = next;
          return true;
        }
      } else if (next == 51) {  // authentication header: length in 4-byte units, minus 2
        if (ip.size() < offset + 8) {
          p.protocol = next;
          return true;
        }
        next = ip[offset];
        offset += (ip[offset + 1] + 2u) * 4u;
      } else {
        break;
      }
    }
    p.protocol = next;
    if (offset > ip.size() || offset > p.ip_bytes) return true;
    const auto l4 = ip.subspan(offset);
    const std::uint32_t l4_length = p.ip_bytes - static_cast<std::uint32_t>(offset);
    if (next == kProtoTcp) decode_tcp(l4, l4_length, p);
    if (next == kProtoIcmp6) decode_icmp(l4, true, p);
    return true;
  }
  return fail(error, DecodeError::kBadIpHeader);
}

bool ethertype_ip(std::uint16_t type) { return type == kEtherIPv4 || type == kEtherIPv6; }

}  // namespace

bool supported_link_type(int link_type) {
  switch (link_type) {
    case kLinkEthernet:
    case kLinkRaw:
    case kLinkRawAlt:
    case kLinkLinuxSll:
    case kLinkIPv4:
    case kLinkIPv6:
    case kLinkLinuxSll2:
      return true;
    default:
      return false;
  }
}

std::string_view to_string(DecodeError e) {
  switch (e) {
    case DecodeError::kNone: return "none";
    case DecodeError::kTruncated: return "truncated";
    case DecodeError::kNotIp: return "not IP";
    case DecodeError::kUnsupportedLink: return "unsupported link type";
    case DecodeError::kBadIpHeader: return "bad IP header";
  }
  return "unknown";
}

std::optional<DecodedPacket> decode_packet(int link_type, std::span<const std::uint8_t> frame, DecodeError* error) {
  if (error) *error = DecodeError::kNone;
  std::size_t offset = 0;
  switch (link_type) {
    case kLinkEthernet: {
      if (frame.size() < 14) return fail(error, DecodeError::kTruncated), std::nullopt;
      std::uint16_t type = be16(frame.data() + 12);
      offset = 14;
      for (int tags = 0; tags < 2 && (type == kEtherVlan || type == kEtherQinQ); ++tags) {
        if (frame.size() < offset + 4) return fail(error, DecodeError::kTruncated), std::nullopt;
        type = be16(frame.data() + offset + 2);
        offset += 4;
      }
      if (!ethertype_ip(type)) return fail(error, DecodeError::kNotIp), std::nullopt;
      break;
    }
    case kLinkLinuxSll: {  // 16 bytes; protocol at 14
      if (frame.size() < 16) return fail(error, DecodeError::kTruncated), std::nullopt;
      if (!ethertype_ip(be16(frame.data() + 14))) return fail(error, DecodeError::kNotIp), std::nullopt;
      offset = 16;
      break;
    }
    case kLinkLinuxSll2: {  // 20 bytes; protocol at 0
      if (frame.size() < 20) return fail(error, DecodeError::kTruncated), std::nullopt;
      if (!ethertype_ip(be16(frame.data()))) return fail(error, DecodeError::kNotIp), std::nullopt;
      offset = 20;
      break;
    }
    case kLinkRaw:
    case kLinkRawAlt:
    case kLinkIPv4:
    case kLinkIPv6:
      break;
    default:
      return fail(error, DecodeError::kUnsupportedLink), std::nullopt;
  }
  DecodedPacket p;
  if (!decode_ip(frame.subspan(offset), p, error)) return std::nullopt;
  return p;
}

// --- addresses and prefixes ---------------------------------------------

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == 4) {
    inet_ntop(AF_INET, bytes.data(), buf, sizeof buf);
  } else if (family == 6) {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  }
  return buf;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  const std::string s(text);
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.family = 4;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.family = 6;
    return a;
  }
  return std::nullopt;
}

std::size_t IpAddressHash::operator()(const IpAddress& a) const {
  std::uint64_t h = 1469598103934665603ULL ^ a.family;
  const std::size_t n = a.family == 4 ? 4 : 16;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ a.bytes[i]) * 1099511628211ULL;
  return static_cast<std::size_t>(h);
}

bool Prefix::contains(const IpAddress& a) const {
  if (a.family != network.family) return false;
  const int full = length / 8;
  if (std::memcmp(a.bytes.data(), network.bytes.data(), static_cast<std::size_t>(full)) != 0) return false;
  const int rest = length % 8;
  if (rest == 0) return true;
  const std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a.bytes[static_cast<std::size_t>(full)] & mask) == network.bytes[static_cast<std::size_t>(full)];
}

std::string Prefix::to_string() const { return network.to_string() + "/" + std::to_string(length); }

std::optional<Prefix> Prefix::parse(std::string_view text, std::string* error) {
  auto err = [&](std::string m) -> std::optional<Prefix> {
    if (error) *error = std::move(m);
    return std::nullopt;
  };
  const auto slash = text.find('/');
  auto address = IpAddress::parse(text.substr(0, slash));
  if (!address) return err("expected an IPv4 or IPv6 prefix like \"198.51.100.0/24\", found \"" + std::string(text) + "\"");
  const int max = address->family == 4 ? 32 : 128;
  int length = max;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return err("expected a prefix length after '/' in \"" + std::string(text) + "\"");
    }
    length = std::stoi(std::string(digits));
    if (length > max) {
      return err("prefix length " + std::to_string(length) + " is longer than " + std::to_string(max) + " in \"" +
                 std::string(text) + "\"");
    }
  }
  Prefix p;
  p.network = *address;
  p.length = length;
  for (int bit = length; bit < max; ++bit) {
    p.network.bytes[static_cast<std::size_t>(bit / 8)] &= static_cast<std::uint8_t>(~(0x80 >> (bit % 8)));
  }
  if (!(p.network == *address)) {
    return err("\"" + std::string(text) + "\" has host bits set; did you mean \"" + p.to_string() + "\"?");
  }
  return p;
}

// --- analyzer -----------------------------------------------------------

std::size_t Analyzer::FlowKeyHash::operator()(const FlowKey& k) const {
  IpAddressHash h;
  return h(k.a) * 31 + h(k.b) * 17 + (std::size_t{k.a_port} << 16 | k.b_port);
}

Analyzer::Analyzer(AnalyzerSettings settings) : settings_(settings) {}

std::size_t Analyzer::add_prefix(const Prefix& p) {
  for (std::size_t i = 0; i < prefixes_.size(); ++i) {
    if (prefixes_[i] == p) return i;
  }
  prefixes_.push_back(p);
  per_prefix_.emplace_back();
  return prefixes_.size() - 1;
}

int Analyzer::longest_match(const IpAddress& a) const {
  int best = -1;
  for (std::size_t i = 0; i < prefixes_.size(); ++i) {
    if (prefixes_[i].contains(a) && (best < 0 || prefixes_[i].length > prefixes_[static_cast<std::size_t>(best)].length)) {
      best = static_cast<int>(i);
    }
  }
  return best;
}

bool Analyzer::add_frame(int link_type, std::span<const std::uint8_t> frame, std::uint32_t wire_length, SteadyTime t) {
  auto p = decode_packet(link_type, frame);
  if (!p) {
    ++decode_errors_;
    expire(t);
    return false;
  }
  add_packet(*p, wire_length, t);
  return true;
}

void Analyzer::count_handshake(const Handshake& h, bool completed) {
  auto bump = [completed](Counters& c) { ++(completed ? c.syn_completed : c.syn_failed); };
  bump(total_);
  if (h.prefix_a >= 0) bump(per_prefix_[static_cast<std::size_t>(h.prefix_a)]);
  if (h.prefix_b >= 0 && h.prefix_b != h.prefix_a) bump(per_prefix_[static_cast<std::size_t>(h.prefix_b)]);
}

void Analyzer::expire(SteadyTime now) {
  while (!handshake_order_.empty() && now - handshake_order_.front().second >= settings_.syn_timeout) {
    const auto& [key, at] = handshake_order_.front();
    auto it = handshakes_.find(key);
    if (it != handshakes_.end() && it->second.syn_at == at) {
      count_handshake(it->second, false);
      handshakes_.erase(it);
    }
    handshake_order_.pop_front();
  }
}

void Analyzer::add_packet(const DecodedPacket& p, std::uint32_t wire_length, SteadyTime t) {
  expire(t);
  const int pa = longest_match(p.src);
  const int pb = longest_match(p.dst);
  // Every counter below goes to the interface and to each distinct matched prefix.
  auto each = [&](auto&& f) {
    f(total_);
    if (pa >= 0) f(per_prefix_[static_cast<std::size_t>(pa)]);
    if (pb >= 0 && pb != pa) f(per_prefix_[static_cast<std::size_t>(pb)]);
  };
  each([&](Counters& c) {
    ++c.packets;
    c.bytes += wire_length;
  });

  if (p.icmp_unreachable) {
    const std::string router = p.src.to_string();
    each([&](Counters& c) {
      ++c.icmp_unreachable;
      auto it = c.unreachable_by_router.find(router);
      if (it == c.unreachable_by_router.end()) {
        const bool room = c.unreachable_by_router.size() < settings_.max_routers + (c.unreachable_by_router.count("other") ? 1 : 0);
        it = c.unreachable_by_router.emplace(room ? router : "other", 0).first;
      }
      ++it->second;
    });
  }

  if (!p.is_tcp) return;
  const std::uint8_t f = p.tcp_flags;
  if (f & tcp_flag::kRst) each([](Counters& c) { ++c.rst; });

  // Handshakes (RFC 9293 3.5): a SYN opens, the peer's SYN-ACK completes.
  if ((f & tcp_flag::kSyn) && !(f & tcp_flag::kAck)) {
    const FlowKey key{p.src, p.dst, p.src_port, p.dst_port};
    if (!handshakes_.count(key)) {  // a repeated SYN is the same attempt
      if (handshakes_.size() >= settings_.max_handshakes) {
        // Full: forget the oldest attempt unjudged rather than grow.
        while (!handshake_order_.empty()) {
          auto it = handshakes_.find(handshake_order_.front().first);
          const bool live = it != handshakes_.end() && it->second.syn_at == handshake_order_.front().second;
          handshake_order_.pop_front();
          if (live) {
            handshakes_.erase(it);
            break;
          }
        }
      }
      handshakes_.emplace(key, Handshake{t, pa, pb});
      handshake_order_.emplace_back(key, t);
      each([](Counters& c) { ++c.syn; });
    }
  } else if ((f & tcp_flag::kSyn) && (f & tcp_flag::kAck)) {
    auto it = handshakes_.find(FlowKey{p.dst, p.src, p.dst_port, p.src_port});
    if (it != handshakes_.end()) {
      count_handshake(it->second, true);
      handshakes_.erase(it);
    }
  }

  // Retransmissions: a segment with payload whose end is not past the highest
  // sequence end already seen in that direction carries nothing new.
  const FlowKey flow{p.src, p.dst, p.src_port, p.dst_port};
  if (f & (tcp_flag::kRst | tcp_flag::kFin)) {
    flows_.erase(flow);
    return;
  }
  if (p.tcp_payload == 0) return;
  const std::uint32_t end = p.seq + p.tcp_payload;
  auto it = flows_.find(flow);
  if (it == flows_.end()) {
    if (flows_.size() >= settings_.max_flows) {
      while (!flow_order_.empty()) {
        const bool erased = flows_.erase(flow_order_.front()) > 0;
        flow_order_.pop_front();
        if (erased) break;
      }
    }
    flows_.emplace(flow, end);
    flow_order_.push_back(flow);
    if (flow_order_.size() > 2 * settings_.max_flows) {  // drop stale keys of flows already erased
      std::deque<FlowKey> live;
      for (const auto& k : flow_order_) {
        if (flows_.count(k)) live.push_back(k);
      }
      flow_order_.swap(live);
    }
    return;
  }
  if (static_cast<std::int32_t>(end - it->second) <= 0) {
    each([](Counters& c) { ++c.retransmits; });
  } else {
    it->second = end;
  }
}

// --- baseline -----------------------------------------------------------

int Baseline::bucket_of(SystemTime wall) {
  const std::time_t t = std::chrono::system_clock::to_time_t(wall);
  std::tm tm{};
  gmtime_r(&t, &tm);
  const int monday_first = (tm.tm_wday + 6) % 7;  // tm_wday: Sunday = 0
  return monday_first * 24 + tm.tm_hour;
}

std::optional<double> Baseline::expected(SystemTime wall) const {
  const Bucket& b = buckets_[static_cast<std::size_t>(bucket_of(wall))];
  const auto needed = static_cast<std::uint64_t>(std::max(1, settings_.min_samples));
  if (b.samples >= needed) return b.mean;
  if (overall_.samples >= needed) return overall_.mean;
  return std::nullopt;
}

std::optional<double> Baseline::observe(SystemTime wall, double pps) {
  const std::optional<double> before = expected(wall);
  std::optional<double> drop;
  if (before && *before >= settings_.min_pps && *before > 0) drop = std::clamp(1.0 - pps / *before, 0.0, 1.0);
  // A drop is not taught as the new normal at full speed: a long outage
  // would otherwise become its own baseline within minutes.
  const double alpha = settings_.alpha * (drop && *drop >= 0.5 ? settings_.anomaly_damping : 1.0);
  auto learn = [&](Bucket& b) {
    b.mean = b.samples == 0 ? pps : b.mean + alpha * (pps - b.mean);
    ++b.samples;
  };
  learn(buckets_[static_cast<std::size_t>(bucket_of(wall))]);
  learn(overall_);
  return drop;
}

// --- reports ------------------------------------------------------------

Counters difference(const Counters& now, const Counters& before) {
  Counters d;
  d.packets = now.packets - before.packets;
  d.bytes = now.bytes - before.bytes;
  d.syn = now.syn - before.syn;
  d.syn_completed = now.syn_completed - before.syn_completed;
  d.syn_failed = now.syn_failed - before.syn_failed;
  d.rst = now.rst - before.rst;
  d.retransmits = now.retransmits - before.retransmits;
  d.icmp_unreachable = now.icmp_unreachable - before.icmp_unreachable;
  for (const auto& [router, n] : now.unreachable_by_router) {
    auto it = before.unreachable_by_router.find(router);
    const std::uint64_t prev = it == before.unreachable_by_router.end() ? 0 : it->second;
    if (n > prev) d.unreachable_by_router[router] = n - prev;
  }
  return d;
}

PrefixReport PrefixWatch::report(const Counters& now_counters, SteadyTime now, SystemTime wall) {
  PrefixReport r;
  r.seconds = std::chrono::duration<double>(now - last_at_).count();
  r.delta = difference(now_counters, last_);
  const double s = r.seconds > 0 ? r.seconds : 1.0;
  r.packets_per_second = static_cast<double>(r.delta.packets) / s;
  r.bytes_per_second = static_cast<double>(r.delta.bytes) / s;
  r.rst_per_second = static_cast<double>(r.delta.rst) / s;
  r.retransmits_per_second = static_cast<double>(r.delta.retransmits) / s;
  r.icmp_unreachable_per_second = static_cast<double>(r.delta.icmp_unreachable) / s;
  r.syn_per_second = static_cast<double>(r.delta.syn) / s;
  const std::uint64_t judged = r.delta.syn_failed + r.delta.syn_completed;
  if (judged > 0) r.syn_failed_ratio = static_cast<double>(r.delta.syn_failed) / static_cast<double>(judged);
  r.baseline_pps = baseline_.expected(wall);
  // An empty window (the first run, or two runs at one instant) measures no
  // rate: teaching the baseline a zero from it would be wrong.
  if (r.seconds > 0) r.traffic_drop = baseline_.observe(wall, r.packets_per_second);
  last_ = now_counters;
  last_at_ = now;
  return r;
}

}  // namespace nightshift::pcap
