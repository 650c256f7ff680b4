// Builds Ethernet frames (IPv4 or IPv6, by the addresses' family) with TCP,
// UDP or ICMP destination-unreachable inside: for tests, the fuzz corpus and
// the replay benchmark's capture generator. Payload bytes are zeros.
// Checksums are left zero: the analyzer never reads them.
//
// Thread safety: pure functions, any thread.
#pragma once

#include <cstdint>
#include <vector>

#include "probes/pcap/pcap_codec.h"

namespace nightshift::pcap::frames {

std::vector<std::uint8_t> tcp(const IpAddress& src, const IpAddress& dst, std::uint16_t src_port,
                              std::uint16_t dst_port, std::uint8_t flags, std::uint32_t seq,
                              std::uint32_t payload = 0);
std::vector<std::uint8_t> udp(const IpAddress& src, const IpAddress& dst, std::uint16_t src_port,
                              std::uint16_t dst_port, std::uint32_t payload = 0);
// `router` tells `to` that its packet quoted_src -> quoted_dst (UDP) could not
// be delivered: ICMP type 3 (IPv4) or ICMPv6 type 1, with `code`.
std::vector<std::uint8_t> unreachable(const IpAddress& router, const IpAddress& to, const IpAddress& quoted_src,
                                      const IpAddress& quoted_dst, std::uint8_t code = 1);
// An IPv4 address or dies trying (for tests).
IpAddress ip(const char* text);

}  // namespace nightshift::pcap::frames
