// ICMP codec: pure functions over bytes. Spec lines quoted above each group.
#include "probes/icmp/icmp_codec.h"

#include <gtest/gtest.h>

#include <initializer_list>

namespace nightshift::icmp {
namespace {

using Bytes = std::vector<std::byte>;

constexpr std::uint64_t kCookie = 0x0123456789abcdefULL;

Bytes bytes(std::initializer_list<int> v) {
  Bytes b;
  for (int x : v) b.push_back(static_cast<std::byte>(x));
  return b;
}

Bytes request(Family f, std::uint16_t id = 0x1234, std::uint16_t seq = 7, std::uint64_t token = 42,
              std::uint64_t cookie = kCookie, std::size_t payload = 56) {
  EchoRequest r;
  r.identifier = id;
  r.sequence = seq;
  r.stamp = Stamp{cookie, token};
  r.payload_size = payload;
  return encode_echo_request(f, r);
}

void set_checksum_v4(Bytes& icmp) {
  icmp[2] = icmp[3] = std::byte{0};
  const std::uint16_t c = internet_checksum(icmp);
  icmp[2] = static_cast<std::byte>(c >> 8);
  icmp[3] = static_cast<std::byte>(c & 0xff);
}

// An echo reply as the kernel answers `request`: same identifier, sequence, data.
Bytes reply_v4(Bytes req) {
  req[0] = std::byte{0};
  set_checksum_v4(req);
  return req;
}

Bytes ipv4_header(std::size_t payload, std::uint8_t ttl, std::array<int, 4> src, std::array<int, 4> dst,
                  std::uint8_t proto = 1) {
  Bytes h(20);
  h[0] = std::byte{0x45};
  const std::size_t total = 20 + payload;
  h[2] = static_cast<std::byte>(total >> 8);
  h[3] = static_cast<std::byte>(total & 0xff);
  h[8] = static_cast<std::byte>(ttl);
  h[9] = static_cast<std::byte>(proto);
  for (int i = 0; i < 4; ++i) {
    h[12 + i] = static_cast<std::byte>(src[i]);
    h[16 + i] = static_cast<std::byte>(dst[i]);
  }
  return h;
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// An ICMPv4 error of `type`/`code` quoting `quoted` (IP header + data).
Bytes error_v4(std::uint8_t type, std::uint8_t code, const Bytes& quoted) {
  Bytes e = concat({bytes({type, code, 0, 0, 0, 0, 0, 0}), quoted});
  set_checksum_v4(e);
  return e;
}

Bytes ipv6_header(std::size_t payload, std::uint8_t next, std::uint8_t last_dst_byte) {
  Bytes h(40);
  h[0] = std::byte{0x60};
  h[4] = static_cast<std::byte>(payload >> 8);
  h[5] = static_cast<std::byte>(payload & 0xff);
  h[6] = static_cast<std::byte>(next);
  h[7] = std::byte{64};
  h[8] = std::byte{0x20};  // 2001:db8::1 -> 2001:db8::<last>
  h[9] = std::byte{0x01};
  h[10] = std::byte{0x0d};
  h[11] = std::byte{0xb8};
  h[23] = std::byte{1};
  h[24] = std::byte{0x20};
  h[25] = std::byte{0x01};
  h[26] = std::byte{0x0d};
  h[27] = std::byte{0xb8};
  h[39] = static_cast<std::byte>(last_dst_byte);
  return h;
}

std::optional<Message> decode4(const Bytes& b, DecodeError* e, Framing f = Framing::kIcmpOnly) {
  return decode(Family::kIPv4, f, b, e);
}

// RFC 1071: "Adjacent octets to be checksummed are paired to form 16-bit
// integers, and the 1's complement sum of these 16-bit integers is formed."
// Example from RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2.
TEST(IcmpChecksumTest, Rfc1071Example) {
  EXPECT_EQ(internet_checksum(bytes({0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7})), 0xffff - 0xddf2);
}

TEST(IcmpChecksumTest, OddLengthPadsWithZero) {
  EXPECT_EQ(internet_checksum(bytes({0x12, 0x34, 0x56})), internet_checksum(bytes({0x12, 0x34, 0x56, 0x00})));
}

TEST(IcmpChecksumTest, EmptyAndAllOnes) {
  EXPECT_EQ(internet_checksum({}), 0xffff);
  EXPECT_EQ(internet_checksum(bytes({0xff, 0xff})), 0x0000);
}

// RFC 4443 2.3: "The checksum is the 16-bit one's complement of the one's
// complement sum of the entire ICMPv6 message, starting with the ICMPv6 message
// type field, and prepended with a 'pseudo-header' of IPv6 header fields".
TEST(IcmpChecksumTest, Icmpv6ChecksumVerifiesToZeroWhenFilledIn) {
  Bytes m = request(Family::kIPv6);
  Address src{Family::kIPv6, {}}, dst{Family::kIPv6, {}};
  src.bytes[15] = 1;
  dst.bytes[15] = 1;
  const std::uint16_t c = icmpv6_checksum(src, dst, m);
  m[2] = static_cast<std::byte>(c >> 8);
  m[3] = static_cast<std::byte>(c & 0xff);
  EXPECT_EQ(icmpv6_checksum(src, dst, m), 0);
  dst.bytes[15] = 2;  // a different pseudo-header no longer verifies
  EXPECT_NE(icmpv6_checksum(src, dst, m), 0);
}

// RFC 792, Echo or Echo Reply Message:
// "Type 8 for echo message; 0 for echo reply message." "The data received in
// the echo message must be returned in the echo reply message."
// "If code = 0, an identifier to aid in matching echos and replies, may be zero."
TEST(IcmpEncodeTest, Ipv4EchoRequestLayout) {
  const Bytes b = request(Family::kIPv4, 0xbeef, 0x0102, 0x1122334455667788ULL);
  ASSERT_EQ(b.size(), 64u);
  EXPECT_EQ(b[0], std::byte{8});
  EXPECT_EQ(b[1], std::byte{0});
  EXPECT_EQ(b[4], std::byte{0xbe});
  EXPECT_EQ(b[5], std::byte{0xef});
  EXPECT_EQ(b[6], std::byte{0x01});
  EXPECT_EQ(b[7], std::byte{0x02});
  EXPECT_EQ(internet_checksum(b), 0) << "the checksum field makes the message sum to zero";
  auto stamp = read_stamp(std::span<const std::byte>(b).subspan(8));
  ASSERT_TRUE(stamp);
  EXPECT_EQ(stamp->cookie, kCookie);
  EXPECT_EQ(stamp->token, 0x1122334455667788ULL);
}

// RFC 4443 4.1: "Type 128", "Identifier", "Sequence Number", "Data".
TEST(IcmpEncodeTest, Ipv6EchoRequestLeavesChecksumToTheKernel) {
  const Bytes b = request(Family::kIPv6, 1, 2, 3, kCookie, 20);
  ASSERT_EQ(b.size(), 28u);
  EXPECT_EQ(b[0], std::byte{128});
  EXPECT_EQ(b[2], std::byte{0});
  EXPECT_EQ(b[3], std::byte{0});
}

TEST(IcmpEncodeTest, RefusesPayloadTooSmallForTheStampOrBufferTooSmall) {
  EchoRequest r;
  r.payload_size = kStampSize - 1;
  std::array<std::byte, 100> buf{};
  EXPECT_EQ(encode_echo_request(Family::kIPv4, r, buf), 0u);
  r.payload_size = 200;
  EXPECT_EQ(encode_echo_request(Family::kIPv4, r, buf), 0u);
  r.payload_size = 92;
  EXPECT_EQ(encode_echo_request(Family::kIPv4, r, buf), 100u);
}

TEST(IcmpDecodeTest, Ipv4EchoReplyWithoutIpHeader) {
  DecodeError e;
  auto m = decode4(reply_v4(request(Family::kIPv4, 0x1234, 9, 77)), &e);
  ASSERT_TRUE(m) << to_string(e);
  EXPECT_EQ(m->kind, MessageKind::kEchoReply);
  EXPECT_EQ(m->echo.identifier, 0x1234);
  EXPECT_EQ(m->echo.sequence, 9);
  ASSERT_TRUE(m->echo.stamp);
  EXPECT_EQ(m->echo.stamp->token, 77u);
  EXPECT_EQ(m->echo.payload_size, 56u);
  EXPECT_FALSE(m->ttl);
  EXPECT_EQ(ownership(*m, kCookie, std::nullopt), Ownership::kOurs);
  EXPECT_EQ(ownership(*m, kCookie, 0x1234), Ownership::kOurs);
}

// RFC 791: "Internet Header Length is the length of the internet header in 32
// bit words"; "Time to Live"; "Protocol" (1 = ICMP).
TEST(IcmpDecodeTest, Ipv4EchoReplyWithIpHeaderGivesTtlAndSource) {
  const Bytes icmp = reply_v4(request(Family::kIPv4));
  const Bytes pkt = concat({ipv4_header(icmp.size(), 57, {127, 0, 0, 9}, {127, 0, 0, 1}), icmp});
  DecodeError e;
  auto m = decode4(pkt, &e, Framing::kWithIpHeader);
  ASSERT_TRUE(m) << to_string(e);
  EXPECT_EQ(m->ttl, 57);
  ASSERT_TRUE(m->source);
  EXPECT_EQ(m->source->to_string(), "127.0.0.9");
}

TEST(IcmpDecodeTest, Ipv4HeaderWithOptionsIsSkipped) {
  const Bytes icmp = reply_v4(request(Family::kIPv4));
  Bytes h = ipv4_header(icmp.size() + 4, 3, {10, 0, 0, 1}, {10, 0, 0, 2});
  h[0] = std::byte{0x46};  // IHL 6: one word of options
  h.insert(h.end(), {std::byte{1}, std::byte{1}, std::byte{1}, std::byte{0}});
  DecodeError e;
  auto m = decode4(concat({h, icmp}), &e, Framing::kWithIpHeader);
  ASSERT_TRUE(m) << to_string(e);
  EXPECT_EQ(m->echo.stamp->cookie, kCookie);
}

struct BadCase {
  const char* name;
  Bytes input;
  Framing framing;
  DecodeError expected;
};

TEST(IcmpDecodeTest, DamagedInputIsReportedNeverTrusted) {
  const Bytes good = reply_v4(request(Family::kIPv4));
  Bytes bad_sum = good;
  bad_sum[20] ^= std::byte{0x01};
  Bytes wrong_version = concat({ipv4_header(good.size(), 64, {1, 2, 3, 4}, {5, 6, 7, 8}), good});
  wrong_version[0] = std::byte{0x65};
  Bytes short_ihl = concat({ipv4_header(good.size(), 64, {1, 2, 3, 4}, {5, 6, 7, 8}), good});
  short_ihl[0] = std::byte{0x44};
  Bytes not_icmp = concat({ipv4_header(good.size(), 64, {1, 2, 3, 4}, {5, 6, 7, 8}, 17), good});
  Bytes long_total = concat({ipv4_header(good.size() + 10, 64, {1, 2, 3, 4}, {5, 6, 7, 8}), good});
  Bytes fragment = concat({ipv4_header(good.size(), 64, {1, 2, 3, 4}, {5, 6, 7, 8}), good});
  fragment[7] = std::byte{0x10};
  Bytes redirect = good;
  redirect[0] = std::byte{5};
  set_checksum_v4(redirect);
  const std::vector<BadCase> cases = {
      {"empty", {}, Framing::kIcmpOnly, DecodeError::kTruncated},
      {"shorter than the ICMP header", Bytes(good.begin(), good.begin() + 7), Framing::kIcmpOnly,
       DecodeError::kTruncated},
      {"shorter than the IP header", Bytes(19), Framing::kWithIpHeader, DecodeError::kTruncated},
      {"bad checksum", bad_sum, Framing::kIcmpOnly, DecodeError::kBadChecksum},
      {"IP version 6 in an IPv4 frame", wrong_version, Framing::kWithIpHeader, DecodeError::kBadIpHeader},
      {"IHL below 5", short_ihl, Framing::kWithIpHeader, DecodeError::kBadIpHeader},
      {"not ICMP", not_icmp, Framing::kWithIpHeader, DecodeError::kBadIpHeader},
      {"total length beyond the bytes", long_total, Framing::kWithIpHeader, DecodeError::kTruncated},
      {"a later fragment", fragment, Framing::kWithIpHeader, DecodeError::kBadIpHeader},
      {"redirect (type 5) is not handled", redirect, Framing::kIcmpOnly, DecodeError::kUnexpectedType},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    DecodeError e = DecodeError::kNone;
    EXPECT_FALSE(decode(Family::kIPv4, c.framing, c.input, &e));
    EXPECT_EQ(e, c.expected) << to_string(e);
    EXPECT_FALSE(decode(Family::kIPv4, c.framing, c.input, nullptr)) << "a null error pointer is fine";
  }
}

TEST(IcmpDecodeTest, ForeignRepliesAreNotOurs) {
  DecodeError e;
  // Another process's ping: iputils puts a timeval and a pattern in the data.
  Bytes ping = bytes({0, 0, 0, 0, 0x44, 0x44, 0, 1});
  for (int i = 0; i < 56; ++i) ping.push_back(static_cast<std::byte>(i));
  set_checksum_v4(ping);
  auto m = decode4(ping, &e);
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->echo.stamp);
  EXPECT_EQ(ownership(*m, kCookie, 0x4444), Ownership::kForeign) << "a reply never matches without our stamp";

  auto other_cookie = decode4(reply_v4(request(Family::kIPv4, 0x1234, 1, 1, kCookie ^ 1)), &e);
  ASSERT_TRUE(other_cookie);
  EXPECT_EQ(ownership(*other_cookie, kCookie, std::nullopt), Ownership::kForeign);

  auto other_id = decode4(reply_v4(request(Family::kIPv4, 0x9999)), &e);
  ASSERT_TRUE(other_id);
  EXPECT_EQ(ownership(*other_id, kCookie, 0x1234), Ownership::kForeign) << "raw socket: identifier must match";
  EXPECT_EQ(ownership(*other_id, kCookie, std::nullopt), Ownership::kOurs) << "datagram: kernel rewrote it";

  auto truncated_payload = decode4(reply_v4(request(Family::kIPv4)), &e);
  ASSERT_TRUE(truncated_payload);
  Bytes cut = reply_v4(request(Family::kIPv4));
  cut.resize(8 + kStampSize - 1);
  set_checksum_v4(cut);
  auto short_reply = decode4(cut, &e);
  ASSERT_TRUE(short_reply);
  EXPECT_FALSE(short_reply->echo.stamp) << "a stamp cut short is no stamp";
}

// RFC 792, Destination Unreachable Message: "Type 3", "Code 0 = net
// unreachable; 1 = host unreachable; ...", "Internet Header + 64 bits of
// Original Data Datagram ... used by the host to match the message to the
// appropriate process."
// Time Exceeded Message: "Type 11", "0 = time to live exceeded in transit".
TEST(IcmpDecodeTest, Ipv4ErrorsQuotingOurRequestMatchIt) {
  const Bytes req = request(Family::kIPv4, 0x1234, 5, 99);
  const Bytes quoted = concat({ipv4_header(req.size(), 1, {198, 51, 100, 2}, {203, 0, 113, 2}), req});
  for (std::uint8_t type : {kV4DestinationUnreachable, kV4TimeExceeded}) {
    SCOPED_TRACE(int(type));
    const Bytes err = error_v4(type, 1, quoted);
    const Bytes pkt = concat({ipv4_header(err.size(), 63, {198, 51, 100, 1}, {198, 51, 100, 2}), err});
    DecodeError e;
    auto m = decode4(pkt, &e, Framing::kWithIpHeader);
    ASSERT_TRUE(m) << to_string(e);
    EXPECT_EQ(m->kind, type == kV4TimeExceeded ? MessageKind::kTimeExceeded : MessageKind::kDestinationUnreachable);
    EXPECT_EQ(m->code, 1);
    EXPECT_EQ(m->source->to_string(), "198.51.100.1") << "who reported it";
    EXPECT_EQ(m->quoted_destination->to_string(), "203.0.113.2") << "where our request was going";
    EXPECT_EQ(m->echo.sequence, 5);
    ASSERT_TRUE(m->echo.stamp);
    EXPECT_EQ(m->echo.stamp->token, 99u);
    EXPECT_EQ(ownership(*m, kCookie, 0x1234), Ownership::kOurs);
  }
}

TEST(IcmpDecodeTest, Ipv4ErrorQuotingOnly64BitsMatchesByIdentifier) {
  const Bytes req = request(Family::kIPv4, 0x1234, 5, 99);
  const Bytes quoted =
      concat({ipv4_header(req.size(), 1, {198, 51, 100, 2}, {203, 0, 113, 2}), Bytes(req.begin(), req.begin() + 8)});
  DecodeError e;
  auto m = decode4(error_v4(kV4DestinationUnreachable, 1, quoted), &e);
  ASSERT_TRUE(m) << to_string(e);
  EXPECT_FALSE(m->echo.stamp);
  EXPECT_EQ(ownership(*m, kCookie, 0x1234), Ownership::kOursByQuote);
  EXPECT_EQ(ownership(*m, kCookie, 0x4321), Ownership::kForeign);
  EXPECT_EQ(ownership(*m, kCookie, std::nullopt), Ownership::kForeign) << "datagram sockets need the stamp";
}

TEST(IcmpDecodeTest, Ipv4ErrorsAboutOtherTrafficAreForeignOrDamaged) {
  const Bytes req = request(Family::kIPv4);
  Bytes udp(8);
  const Bytes quoted_udp = concat({ipv4_header(8, 1, {1, 1, 1, 1}, {2, 2, 2, 2}, 17), udp});
  Bytes reply_quoted = reply_v4(req);  // an error about an echo *reply* is not about our request
  const Bytes quoted_reply = concat({ipv4_header(req.size(), 1, {1, 1, 1, 1}, {2, 2, 2, 2}), reply_quoted});
  const Bytes quoted_short =
      concat({ipv4_header(req.size(), 1, {1, 1, 1, 1}, {2, 2, 2, 2}), Bytes(req.begin(), req.begin() + 4)});
  const std::vector<BadCase> cases = {
      {"quotes UDP", error_v4(3, 3, quoted_udp), Framing::kIcmpOnly, DecodeError::kForeignQuote},
      {"quotes an echo reply", error_v4(11, 0, quoted_reply), Framing::kIcmpOnly, DecodeError::kForeignQuote},
      {"quote shorter than 64 bits", error_v4(3, 1, quoted_short), Framing::kIcmpOnly, DecodeError::kTruncated},
      {"no quote at all", error_v4(3, 1, {}), Framing::kIcmpOnly, DecodeError::kTruncated},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    DecodeError e = DecodeError::kNone;
    EXPECT_FALSE(decode(Family::kIPv4, c.framing, c.input, &e));
    EXPECT_EQ(e, c.expected) << to_string(e);
  }
}

// RFC 4443 4.2, Echo Reply Message: "Type 129", "The data from the invoking
// Echo Request message."
TEST(IcmpDecodeTest, Ipv6EchoReply) {
  Bytes b = request(Family::kIPv6, 0x5555, 3, 1234);
  b[0] = std::byte{129};
  DecodeError e;
  auto m = decode(Family::kIPv6, Framing::kIcmpOnly, b, &e);
  ASSERT_TRUE(m) << to_string(e);
  EXPECT_EQ(m->kind, MessageKind::kEchoReply);
  EXPECT_EQ(m->echo.stamp->token, 1234u);
  EXPECT_EQ(ownership(*m, kCookie, std::nullopt), Ownership::kOurs);
}

// RFC 4443 3.1 / 3.3: Destination Unreachable "Type 1", Time Exceeded "Type 3";
// "As much of invoking packet as possible without the ICMPv6 packet exceeding
// the minimum IPv6 MTU".
TEST(IcmpDecodeTest, Ipv6ErrorsQuotingOurRequest) {
  const Bytes req = request(Family::kIPv6, 0x5555, 3, 1234);
  const Bytes plain = concat({ipv6_header(req.size(), 58, 2), req});
  // Same packet behind a hop-by-hop options header (8 bytes, next = 58).
  const Bytes hbh = concat({ipv6_header(req.size() + 8, 0, 2), bytes({58, 0, 1, 4, 0, 0, 0, 0}), req});
  for (const Bytes* quoted : {&plain, &hbh}) {
    for (std::uint8_t type : {kV6DestinationUnreachable, kV6TimeExceeded}) {
      const Bytes pkt = concat({bytes({type, 3, 0, 0, 0, 0, 0, 0}), *quoted});
      DecodeError e;
      auto m = decode(Family::kIPv6, Framing::kIcmpOnly, pkt, &e);
      ASSERT_TRUE(m) << to_string(e);
      EXPECT_EQ(m->kind, type == kV6TimeExceeded ? MessageKind::kTimeExceeded : MessageKind::kDestinationUnreachable);
      EXPECT_EQ(m->quoted_destination->to_string(), "2001:db8::2");
      EXPECT_EQ(m->echo.stamp->token, 1234u);
    }
  }
}

TEST(IcmpDecodeTest, Ipv6DamagedAndForeign) {
  const Bytes req = request(Family::kIPv6);
  Bytes tcp(20);
  Bytes echo_reply = req;
  echo_reply[0] = std::byte{129};
  Bytes looping_ext;  // nine hop-by-hop headers: more than we walk
  for (int i = 0; i < 9; ++i)
    looping_ext.insert(looping_ext.end(), {std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0},
                                           std::byte{0}, std::byte{0}, std::byte{0}});
  auto err = [](std::uint8_t type, const Bytes& q) { return concat({bytes({type, 0, 0, 0, 0, 0, 0, 0}), q}); };
  const std::vector<BadCase> cases = {
      {"truncated header", Bytes(5), Framing::kIcmpOnly, DecodeError::kTruncated},
      {"router advertisement", bytes({134, 0, 0, 0, 0, 0, 0, 0}), Framing::kIcmpOnly, DecodeError::kUnexpectedType},
      {"quote shorter than an IPv6 header", err(1, Bytes(39)), Framing::kIcmpOnly, DecodeError::kTruncated},
      {"quote is IPv4", err(1, concat({ipv4_header(req.size(), 1, {1, 1, 1, 1}, {2, 2, 2, 2}), req, Bytes(20)})),
       Framing::kIcmpOnly, DecodeError::kForeignQuote},
      {"quotes TCP", err(3, concat({ipv6_header(20, 6, 2), tcp})), Framing::kIcmpOnly, DecodeError::kForeignQuote},
      {"quotes an echo reply", err(3, concat({ipv6_header(req.size(), 58, 2), echo_reply})), Framing::kIcmpOnly,
       DecodeError::kForeignQuote},
      {"quoted ICMPv6 header cut", err(1, concat({ipv6_header(8, 58, 2), Bytes(req.begin(), req.begin() + 6)})),
       Framing::kIcmpOnly, DecodeError::kTruncated},
      {"extension header chain too long", err(1, concat({ipv6_header(72, 0, 2), looping_ext})), Framing::kIcmpOnly,
       DecodeError::kForeignQuote},
      {"extension header past the end", err(1, concat({ipv6_header(8, 0, 2), bytes({0})})), Framing::kIcmpOnly,
       DecodeError::kTruncated},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    DecodeError e = DecodeError::kNone;
    EXPECT_FALSE(decode(Family::kIPv6, c.framing, c.input, &e));
    EXPECT_EQ(e, c.expected) << to_string(e);
  }
}

TEST(IcmpDecodeTest, EchoRequestFromTheErrorQueueDecodes) {
  DecodeError e;
  auto m = decode4(request(Family::kIPv4, 1, 2, 3), &e);
  ASSERT_TRUE(m) << to_string(e);
  EXPECT_EQ(m->kind, MessageKind::kEchoRequest);
  EXPECT_EQ(m->echo.stamp->token, 3u);
}

TEST(IcmpDescribeTest, NamesCodes) {
  EXPECT_EQ(describe(Family::kIPv4, 3, 1), "destination unreachable (host unreachable)");
  EXPECT_EQ(describe(Family::kIPv4, 3, 13), "destination unreachable (communication administratively prohibited)");
  EXPECT_EQ(describe(Family::kIPv4, 3, 99), "destination unreachable (code 99)");
  EXPECT_EQ(describe(Family::kIPv4, 11, 0), "time exceeded (ttl exceeded in transit)");
  EXPECT_EQ(describe(Family::kIPv6, 1, 3), "destination unreachable (address unreachable)");
  EXPECT_EQ(describe(Family::kIPv6, 3, 0), "time exceeded (hop limit exceeded in transit)");
  EXPECT_EQ(describe(Family::kIPv4, 42, 7), "icmp type 42 code 7");
}

}  // namespace
}  // namespace nightshift::icmp
