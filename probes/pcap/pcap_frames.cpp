#include "probes/pcap/pcap_frames.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace nightshift::pcap::frames {

namespace {

void put16(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v);
}
void put32(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v) {
  put16(b, at, v >> 16);
  put16(b, at + 2, v & 0xffff);
}

// An IP header for `l4_size` bytes of `protocol`, appended to `b`.
void ip_header(std::vector<std::uint8_t>& b, const IpAddress& src, const IpAddress& dst, std::uint8_t protocol,
               std::size_t l4_size) {
  const std::size_t at = b.size();
  if (src.family == 4) {
    b.resize(at + 20);
    b[at] = 0x45;
    put16(b, at + 2, static_cast<std::uint32_t>(20 + l4_size));
    b[at + 8] = 64;
    b[at + 9] = protocol;
    std::copy_n(src.bytes.begin(), 4, b.begin() + static_cast<std::ptrdiff_t>(at + 12));
    std::copy_n(dst.bytes.begin(), 4, b.begin() + static_cast<std::ptrdiff_t>(at + 16));
  } else {
    b.resize(at + 40);
    b[at] = 0x60;
    put16(b, at + 4, static_cast<std::uint32_t>(l4_size));
    b[at + 6] = protocol == 1 ? 58 : protocol;
    b[at + 7] = 64;
    std::copy_n(src.bytes.begin(), 16, b.begin() + static_cast<std::ptrdiff_t>(at + 8));
    std::copy_n(dst.bytes.begin(), 16, b.begin() + static_cast<std::ptrdiff_t>(at + 24));
  }
}

std::vector<std::uint8_t> ethernet(const IpAddress& src) {
  std::vector<std::uint8_t> b = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00};
  if (src.family == 6) put16(b, 12, 0x86dd);
  return b;
}

}  // namespace

std::vector<std::uint8_t> tcp(const IpAddress& src, const IpAddress& dst, std::uint16_t src_port,
                              std::uint16_t dst_port, std::uint8_t flags, std::uint32_t seq, std::uint32_t payload) {
  auto b = ethernet(src);
  ip_header(b, src, dst, 6, 20 + payload);
  const std::size_t at = b.size();
  b.resize(at + 20 + payload);
  put16(b, at, src_port);
  put16(b, at + 2, dst_port);
  put32(b, at + 4, seq);
  b[at + 12] = 5 << 4;
  b[at + 13] = flags;
  put16(b, at + 14, 65535);
  return b;
}

std::vector<std::uint8_t> udp(const IpAddress& src, const IpAddress& dst, std::uint16_t src_port,
                              std::uint16_t dst_port, std::uint32_t payload) {
  auto b = ethernet(src);
  ip_header(b, src, dst, 17, 8 + payload);
  const std::size_t at = b.size();
  b.resize(at + 8 + payload);
  put16(b, at, src_port);
  put16(b, at + 2, dst_port);
  put16(b, at + 4, 8 + payload);
  return b;
}

std::vector<std::uint8_t> unreachable(const IpAddress& router, const IpAddress& to, const IpAddress& quoted_src,
                                      const IpAddress& quoted_dst, std::uint8_t code) {
  // The quoted original: its IP header and the first 8 bytes of its UDP header.
  std::vector<std::uint8_t> quoted;
  ip_header(quoted, quoted_src, quoted_dst, 17, 8 + 32);
  quoted.resize(quoted.size() + 8);
  auto b = ethernet(router);
  ip_header(b, router, to, 1, 8 + quoted.size());
  const std::size_t at = b.size();
  b.resize(at + 8);
  b[at] = router.family == 4 ? 3 : 1;
  b[at + 1] = code;
  b.insert(b.end(), quoted.begin(), quoted.end());
  return b;
}

IpAddress ip(const char* text) {
  auto a = IpAddress::parse(text);
  if (!a) throw std::invalid_argument(std::string("not an IP address: ") + text);
  return *a;
}

}  // namespace nightshift::pcap::frames
