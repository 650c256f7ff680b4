#include "probes/icmp/icmp_codec.h"

#include <arpa/inet.h>

#include <cstring>

namespace nightshift::icmp {

namespace {

std::uint8_t u8(std::span<const std::byte> b, std::size_t i) { return static_cast<std::uint8_t>(b[i]); }
std::uint16_t be16(std::span<const std::byte> b, std::size_t i) {
  return static_cast<std::uint16_t>((u8(b, i) << 8) | u8(b, i + 1));
}
std::uint64_t be64(std::span<const std::byte> b, std::size_t i) {
  std::uint64_t v = 0;
  for (std::size_t k = 0; k < 8; ++k) v = (v << 8) | u8(b, i + k);
  return v;
}
void put16(std::span<std::byte> b, std::size_t i, std::uint16_t v) {
  b[i] = static_cast<std::byte>(v >> 8);
  b[i + 1] = static_cast<std::byte>(v & 0xff);
}
void put64(std::span<std::byte> b, std::size_t i, std::uint64_t v) {
  for (std::size_t k = 0; k < 8; ++k) b[i + k] = static_cast<std::byte>(v >> (56 - 8 * k));
}

Address v4_address(std::span<const std::byte> b, std::size_t i) {
  Address a;
  a.family = Family::kIPv4;
  for (std::size_t k = 0; k < 4; ++k) a.bytes[k] = u8(b, i + k);
  return a;
}
Address v6_address(std::span<const std::byte> b, std::size_t i) {
  Address a;
  a.family = Family::kIPv6;
  for (std::size_t k = 0; k < 16; ++k) a.bytes[k] = u8(b, i + k);
  return a;
}

bool fail(DecodeError* error, DecodeError e) {
  if (error != nullptr) *error = e;
  return false;
}

// An IPv4 header at the start of `b`. Returns its length, or 0 (and sets error).
std::size_t ipv4_header(std::span<const std::byte> b, bool quoted, DecodeError* error) {
  if (b.size() < 20) return fail(error, DecodeError::kTruncated), 0;
  if ((u8(b, 0) >> 4) != 4) return fail(error, DecodeError::kBadIpHeader), 0;
  const std::size_t ihl = static_cast<std::size_t>(u8(b, 0) & 0x0f) * 4;
  if (ihl < 20) return fail(error, DecodeError::kBadIpHeader), 0;
  if (b.size() < ihl) return fail(error, DecodeError::kTruncated), 0;
  if (u8(b, 9) != 1) return fail(error, quoted ? DecodeError::kForeignQuote : DecodeError::kBadIpHeader), 0;
  if ((be16(b, 6) & 0x1fff) != 0) {  // a later fragment has no ICMP header
    return fail(error, quoted ? DecodeError::kForeignQuote : DecodeError::kBadIpHeader), 0;
  }
  if (!quoted) {
    const std::size_t total = be16(b, 2);
    if (total < ihl) return fail(error, DecodeError::kBadIpHeader), 0;
    if (total > b.size()) return fail(error, DecodeError::kTruncated), 0;
  }
  return ihl;
}

Echo read_echo(std::span<const std::byte> icmp) {
  Echo e;
  e.identifier = be16(icmp, 4);
  e.sequence = be16(icmp, 6);
  e.payload_size = icmp.size() - kIcmpHeaderSize;
  e.stamp = read_stamp(icmp.subspan(kIcmpHeaderSize));
  return e;
}

// The quoted original datagram of an ICMPv4 error: "Internet Header + 64 bits
// of Original Data Datagram" (RFC 792). Must be one of our echo requests.
bool quoted_v4(std::span<const std::byte> q, Message& m, DecodeError* error) {
  const std::size_t ihl = ipv4_header(q, /*quoted=*/true, error);
  if (ihl == 0) return false;
  m.quoted_destination = v4_address(q, 16);
  auto icmp = q.subspan(ihl);
  if (icmp.size() < kIcmpHeaderSize) return fail(error, DecodeError::kTruncated);
  if (u8(icmp, 0) != kV4EchoRequest) return fail(error, DecodeError::kForeignQuote);
  m.echo = read_echo(icmp);
  return true;
}

// The quoted packet of an ICMPv6 error: "As much of invoking packet as possible
// without the ICMPv6 packet exceeding the minimum IPv6 MTU" (RFC 4443 3.1).
bool quoted_v6(std::span<const std::byte> q, Message& m, DecodeError* error) {
  if (q.size() < 40) return fail(error, DecodeError::kTruncated);
  if ((u8(q, 0) >> 4) != 6) return fail(error, DecodeError::kForeignQuote);
  m.quoted_destination = v6_address(q, 24);
  std::uint8_t next = u8(q, 6);
  std::size_t off = 40;
  // Skip extension headers; bounded so crafted chains cannot loop.
  for (int i = 0; i < 8 && next != 58; ++i) {
    if (next == 0 || next == 43 || next == 60) {  // hop-by-hop, routing, destination options
      if (q.size() < off + 2) return fail(error, DecodeError::kTruncated);
      const std::size_t len = (static_cast<std::size_t>(u8(q, off + 1)) + 1) * 8;
      next = u8(q, off);
      off += len;
    } else if (next == 44) {  // fragment
      if (q.size() < off + 8) return fail(error, DecodeError::kTruncated);
      if ((be16(q, off + 2) & 0xfff8) != 0) return fail(error, DecodeError::kForeignQuote);
      next = u8(q, off);
      off += 8;
    } else {
      return fail(error, DecodeError::kForeignQuote);
    }
  }
  if (next != 58) return fail(error, DecodeError::kForeignQuote);
  if (q.size() < off + kIcmpHeaderSize) return fail(error, DecodeError::kTruncated);
  auto icmp = q.subspan(off);
  if (u8(icmp, 0) != kV6EchoRequest) return fail(error, DecodeError::kForeignQuote);
  m.echo = read_echo(icmp);
  return true;
}

}  // namespace

std::string Address::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family == Family::kIPv4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

std::string_view to_string(DecodeError error) {
  switch (error) {
    case DecodeError::kNone:
      return "none";
    case DecodeError::kTruncated:
      return "truncated";
    case DecodeError::kBadIpHeader:
      return "bad_ip_header";
    case DecodeError::kBadChecksum:
      return "bad_checksum";
    case DecodeError::kUnexpectedType:
      return "unexpected_type";
    case DecodeError::kForeignQuote:
      return "foreign_quote";
  }
  return "unknown";
}

std::uint16_t internet_checksum(std::span<const std::byte> data, std::uint32_t partial) {
  std::uint64_t sum = partial;
  std::size_t i = 0;
  for (; i + 1 < data.size(); i += 2) sum += be16(data, i);
  if (i < data.size()) sum += static_cast<std::uint32_t>(u8(data, i)) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum & 0xffff);
}

std::uint16_t icmpv6_checksum(const Address& source, const Address& destination, std::span<const std::byte> message) {
  std::array<std::byte, 40> pseudo{};
  std::memcpy(pseudo.data(), source.bytes.data(), 16);
  std::memcpy(pseudo.data() + 16, destination.bytes.data(), 16);
  const auto len = static_cast<std::uint32_t>(message.size());
  pseudo[32] = static_cast<std::byte>(len >> 24);
  pseudo[33] = static_cast<std::byte>(len >> 16);
  pseudo[34] = static_cast<std::byte>(len >> 8);
  pseudo[35] = static_cast<std::byte>(len);
  pseudo[39] = static_cast<std::byte>(58);
  // Sum the pseudo-header, then continue over the message (pseudo is even-sized).
  const std::uint16_t head = internet_checksum(pseudo);
  return internet_checksum(message, static_cast<std::uint16_t>(~head));
}

std::size_t encode_echo_request(Family family, const EchoRequest& request, std::span<std::byte> out) {
  if (request.payload_size < kStampSize) return 0;
  const std::size_t size = kIcmpHeaderSize + request.payload_size;
  if (out.size() < size) return 0;
  auto b = out.first(size);
  b[0] = static_cast<std::byte>(family == Family::kIPv4 ? kV4EchoRequest : kV6EchoRequest);
  b[1] = std::byte{0};
  put16(b, 2, 0);
  put16(b, 4, request.identifier);
  put16(b, 6, request.sequence);
  for (std::size_t k = 0; k < kMagic.size(); ++k) b[8 + k] = static_cast<std::byte>(kMagic[k]);
  put64(b, 12, request.stamp.cookie);
  put64(b, 20, request.stamp.token);
  for (std::size_t i = kIcmpHeaderSize + kStampSize; i < size; ++i) b[i] = static_cast<std::byte>(i & 0xff);
  if (family == Family::kIPv4) put16(b, 2, internet_checksum(b));
  return size;
}

std::vector<std::byte> encode_echo_request(Family family, const EchoRequest& request) {
  std::vector<std::byte> out(kIcmpHeaderSize + std::max(request.payload_size, kStampSize));
  out.resize(encode_echo_request(family, request, out));
  return out;
}

std::optional<Stamp> read_stamp(std::span<const std::byte> payload) {
  if (payload.size() < kStampSize) return std::nullopt;
  for (std::size_t k = 0; k < kMagic.size(); ++k) {
    if (u8(payload, k) != kMagic[k]) return std::nullopt;
  }
  return Stamp{be64(payload, 4), be64(payload, 12)};
}

std::optional<Message> decode(Family family, Framing framing, std::span<const std::byte> bytes, DecodeError* error) {
  if (error != nullptr) *error = DecodeError::kNone;
  Message m;
  std::span<const std::byte> icmp = bytes;
  if (family == Family::kIPv4 && framing == Framing::kWithIpHeader) {
    const std::size_t ihl = ipv4_header(bytes, /*quoted=*/false, error);
    if (ihl == 0) return std::nullopt;
    m.ttl = u8(bytes, 8);
    m.source = v4_address(bytes, 12);
    icmp = bytes.subspan(ihl, be16(bytes, 2) - ihl);
  }
  if (icmp.size() < kIcmpHeaderSize) return fail(error, DecodeError::kTruncated), std::nullopt;
  m.type = u8(icmp, 0);
  m.code = u8(icmp, 1);
  if (family == Family::kIPv4) {
    // "The checksum is the 16-bit ones's complement of the one's complement sum
    // of the ICMP message starting with the ICMP Type." (RFC 792)
    if (internet_checksum(icmp) != 0) return fail(error, DecodeError::kBadChecksum), std::nullopt;
    switch (m.type) {
      case kV4EchoReply:
      case kV4EchoRequest:
        m.kind = m.type == kV4EchoReply ? MessageKind::kEchoReply : MessageKind::kEchoRequest;
        m.echo = read_echo(icmp);
        return m;
      case kV4DestinationUnreachable:
      case kV4TimeExceeded:
        m.kind = m.type == kV4TimeExceeded ? MessageKind::kTimeExceeded : MessageKind::kDestinationUnreachable;
        if (!quoted_v4(icmp.subspan(kIcmpHeaderSize), m, error)) return std::nullopt;
        return m;
      default:
        return fail(error, DecodeError::kUnexpectedType), std::nullopt;
    }
  }
  switch (m.type) {
    case kV6EchoReply:
    case kV6EchoRequest:
      m.kind = m.type == kV6EchoReply ? MessageKind::kEchoReply : MessageKind::kEchoRequest;
      m.echo = read_echo(icmp);
      return m;
    case kV6DestinationUnreachable:
    case kV6TimeExceeded:
      m.kind = m.type == kV6TimeExceeded ? MessageKind::kTimeExceeded : MessageKind::kDestinationUnreachable;
      if (!quoted_v6(icmp.subspan(kIcmpHeaderSize), m, error)) return std::nullopt;
      return m;
    default:
      return fail(error, DecodeError::kUnexpectedType), std::nullopt;
  }
}

Ownership ownership(const Message& message, std::uint64_t cookie, std::optional<std::uint16_t> identifier) {
  if (identifier && message.echo.identifier != *identifier) return Ownership::kForeign;
  if (message.echo.stamp) return message.echo.stamp->cookie == cookie ? Ownership::kOurs : Ownership::kForeign;
  // Without a stamp only an error quoting just the header can still be ours,
  // and only when the identifier is known to be ours.
  if (identifier && message.kind != MessageKind::kEchoReply && message.kind != MessageKind::kEchoRequest) {
    return Ownership::kOursByQuote;
  }
  return Ownership::kForeign;
}

std::string describe(Family family, std::uint8_t type, std::uint8_t code) {
  if (family == Family::kIPv4) {
    if (type == kV4DestinationUnreachable) {
      static const char* const kCodes[] = {"network unreachable",
                                           "host unreachable",
                                           "protocol unreachable",
                                           "port unreachable",
                                           "fragmentation needed",
                                           "source route failed",
                                           "destination network unknown",
                                           "destination host unknown",
                                           "source host isolated",
                                           "network administratively prohibited",
                                           "host administratively prohibited",
                                           "network unreachable for TOS",
                                           "host unreachable for TOS",
                                           "communication administratively prohibited",
                                           "host precedence violation",
                                           "precedence cutoff in effect"};
      std::string d = "destination unreachable (";
      d += code < 16 ? kCodes[code] : "code " + std::to_string(code);
      return d + ")";
    }
    if (type == kV4TimeExceeded) {
      return code == 0 ? "time exceeded (ttl exceeded in transit)" : "time exceeded (fragment reassembly)";
    }
    if (type == kV4EchoReply) return "echo reply";
    if (type == kV4EchoRequest) return "echo request";
  } else {
    if (type == kV6DestinationUnreachable) {
      static const char* const kCodes[] = {"no route to destination",
                                           "communication administratively prohibited",
                                           "beyond scope of source address",
                                           "address unreachable",
                                           "port unreachable",
                                           "source address failed ingress/egress policy",
                                           "reject route to destination"};
      std::string d = "destination unreachable (";
      d += code < 7 ? kCodes[code] : "code " + std::to_string(code);
      return d + ")";
    }
    if (type == kV6TimeExceeded) {
      return code == 0 ? "time exceeded (hop limit exceeded in transit)" : "time exceeded (fragment reassembly)";
    }
    if (type == kV6EchoReply) return "echo reply";
    if (type == kV6EchoRequest) return "echo request";
  }
  return "icmp type " + std::to_string(type) + " code " + std::to_string(code);
}

}  // namespace nightshift::icmp
