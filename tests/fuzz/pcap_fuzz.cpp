// libFuzzer target over the pcap watch's packet path: header decoding for
// every link type and the analyzer's tables fed with whatever decodes.
// Built only with clang (-DNIGHTSHIFT_FUZZ=ON); run by scripts/fuzz.sh.
//
// Input: the first byte picks the link type, the rest is the captured frame.
// Invariants checked besides "no crash, no sanitizer report": a failure always
// says why, a success never does; decoded lengths are consistent; the
// analyzer's tables stay within their bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "probes/pcap/pcap_codec.h"

using namespace nightshift;
using namespace nightshift::pcap;

namespace {

constexpr int kLinks[] = {kLinkEthernet, kLinkRaw, kLinkLinuxSll, kLinkLinuxSll2, kLinkIPv4, kLinkIPv6, 147};

Analyzer& analyzer() {
  static Analyzer* a = [] {
    AnalyzerSettings s;
    s.max_handshakes = 16;
    s.max_flows = 16;
    s.max_routers = 4;
    s.syn_timeout = std::chrono::milliseconds(5);
    auto* an = new Analyzer(s);
    an->add_prefix(*Prefix::parse("198.51.100.0/24"));
    an->add_prefix(*Prefix::parse("198.51.100.128/25"));
    an->add_prefix(*Prefix::parse("2001:db8::/32"));
    an->add_prefix(*Prefix::parse("0.0.0.0/0"));
    return an;
  }();
  return *a;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const int link = kLinks[data[0] % (sizeof kLinks / sizeof kLinks[0])];
  const std::span<const std::uint8_t> frame(data + 1, size - 1);
  DecodeError error = DecodeError::kNone;
  auto p = decode_packet(link, frame, &error);
  if (!p) {
    if (error == DecodeError::kNone) std::abort();
    (void)to_string(error);
  } else {
    if (error != DecodeError::kNone) std::abort();
    if (p->src.family != 4 && p->src.family != 6) std::abort();
    if (p->is_tcp && p->tcp_payload > p->ip_bytes) std::abort();
    if (p->quoted_dst && p->quoted_dst->family != 4 && p->quoted_dst->family != 6) std::abort();
    (void)p->src.to_string();
  }
  static std::int64_t ticks = 0;
  Analyzer& a = analyzer();
  a.add_frame(link, frame, static_cast<std::uint32_t>(size), SteadyTime(std::chrono::milliseconds(++ticks)));
  if (a.pending_handshakes() > 16 || a.tracked_flows() > 16) std::abort();
  for (std::size_t i = 0; i < a.prefixes().size(); ++i) {
    if (a.counters(i).unreachable_by_router.size() > 5) std::abort();
  }
  return 0;
}
