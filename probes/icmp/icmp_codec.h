// ICMP echo codec: pure functions over bytes, no descriptors, no clock.
//
// Encodes the echo requests nightshift sends and decodes whatever a socket hands
// back: echo replies, destination unreachable and time exceeded (with the quoted
// original datagram, so an ICMP error is matched to the probe that caused it),
// for IPv4 with the IP header (raw sockets) or without it (datagram "ping"
// sockets), and for IPv6 (sockets never see the IPv6 header).
//
// Damage is reported, never a crash: every decoder takes any byte span, returns
// nullopt and sets a DecodeError when the bytes are not something it understands.
// Fuzzed by tests/fuzz/icmp_fuzz.cpp.
//
// Our payload starts with a stamp: the magic "nsht", the engine's 64-bit cookie
// and the packet's 64-bit token (both big-endian), then filler. Datagram sockets
// rewrite the ICMP identifier, so the stamp, not the identifier, tells our
// replies from other pingers' on the same host.
//
// Thread safety: pure, any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nightshift::icmp {

enum class Family : std::uint8_t { kIPv4, kIPv6 };

// What a socket delivers in front of the ICMP message: IPv4 raw sockets include
// the IP header; IPv4 datagram sockets and every IPv6 socket do not.
enum class Framing : std::uint8_t { kIcmpOnly, kWithIpHeader };

inline constexpr std::size_t kIcmpHeaderSize = 8;
inline constexpr std::size_t kStampSize = 20;  // magic 4 + cookie 8 + token 8
inline constexpr std::array<std::uint8_t, 4> kMagic = {'n', 's', 'h', 't'};

// ICMP types (RFC 792, RFC 4443).
inline constexpr std::uint8_t kV4EchoReply = 0;
inline constexpr std::uint8_t kV4DestinationUnreachable = 3;
inline constexpr std::uint8_t kV4EchoRequest = 8;
inline constexpr std::uint8_t kV4TimeExceeded = 11;
inline constexpr std::uint8_t kV6DestinationUnreachable = 1;
inline constexpr std::uint8_t kV6TimeExceeded = 3;
inline constexpr std::uint8_t kV6EchoRequest = 128;
inline constexpr std::uint8_t kV6EchoReply = 129;

struct Stamp {
  std::uint64_t cookie = 0;  // one per engine: tells our packets from others'
  std::uint64_t token = 0;   // one per packet: finds the packet's record
  bool operator==(const Stamp&) const = default;
};

struct Address {
  Family family = Family::kIPv4;
  std::array<std::uint8_t, 16> bytes{};  // IPv4 uses the first 4
  bool operator==(const Address&) const = default;
  std::string to_string() const;
};

struct EchoRequest {
  std::uint16_t identifier = 0;
  std::uint16_t sequence = 0;
  Stamp stamp;
  std::size_t payload_size = 56;  // bytes after the ICMP header; at least kStampSize
};

// Writes the echo request into `out` and returns its size, or 0 when `out` is
// too small or payload_size < kStampSize. IPv4 carries its checksum; IPv6
// leaves it 0 because the kernel computes it over the pseudo-header (RFC 4443
// 2.3) for both raw and datagram ICMPv6 sockets.
std::size_t encode_echo_request(Family family, const EchoRequest& request, std::span<std::byte> out);
std::vector<std::byte> encode_echo_request(Family family, const EchoRequest& request);

// RFC 1071 Internet checksum (ones' complement of the ones' complement sum),
// continuing from `partial` (a running 32-bit sum, 0 to start).
std::uint16_t internet_checksum(std::span<const std::byte> data, std::uint32_t partial = 0);
// The ICMPv6 checksum over the IPv6 pseudo-header and `message` (RFC 4443 2.3).
std::uint16_t icmpv6_checksum(const Address& source, const Address& destination, std::span<const std::byte> message);

enum class MessageKind : std::uint8_t {
  kEchoReply,
  kEchoRequest,  // only seen in a datagram socket's error queue
  kDestinationUnreachable,
  kTimeExceeded,
};

struct Echo {
  std::uint16_t identifier = 0;
  std::uint16_t sequence = 0;
  std::optional<Stamp> stamp;    // present when the payload carries our magic
  std::size_t payload_size = 0;  // bytes after the ICMP header that were present
};

struct Message {
  MessageKind kind = MessageKind::kEchoReply;
  std::uint8_t type = 0;
  std::uint8_t code = 0;
  // The echo itself, or for an error the echo request it quotes.
  Echo echo;
  // From the outer IPv4 header (Framing::kWithIpHeader only).
  std::optional<std::uint8_t> ttl;
  std::optional<Address> source;
  // Errors only: where the quoted request was going.
  std::optional<Address> quoted_destination;
};

enum class DecodeError : std::uint8_t {
  kNone,
  kTruncated,       // shorter than the headers it claims
  kBadIpHeader,     // not IPv4, bad header length, not ICMP, a later fragment
  kBadChecksum,     // IPv4 ICMP checksum does not verify
  kUnexpectedType,  // an ICMP type we do not handle (redirect, router advert...)
  kForeignQuote,    // an ICMP error about something other than an echo request
};
std::string_view to_string(DecodeError error);

// Decodes one message as a socket delivered it. On failure returns nullopt and,
// when `error` is not null, sets it. ICMPv6 checksums are not verified here (the
// kernel verifies them before any socket sees the packet; icmpv6_checksum()
// is there for callers that have the addresses).
std::optional<Message> decode(Family family, Framing framing, std::span<const std::byte> bytes, DecodeError* error);

// Reads our stamp from an echo payload (the bytes after the ICMP header).
std::optional<Stamp> read_stamp(std::span<const std::byte> payload);

enum class Ownership : std::uint8_t {
  kOurs,         // our cookie is in the stamp
  kOursByQuote,  // an error quoting only the ICMP header: identifier and sequence are ours
  kForeign,      // another pinger's, or not enough to tell
};
// Whether `message` answers (or reports on) one of our requests. `identifier`
// is the identifier we send, when the kernel does not rewrite it (raw sockets);
// with datagram sockets pass nullopt and rely on the stamp.
Ownership ownership(const Message& message, std::uint64_t cookie, std::optional<std::uint16_t> identifier);

// "destination unreachable (host unreachable)", "time exceeded (ttl exceeded in transit)"...
std::string describe(Family family, std::uint8_t type, std::uint8_t code);

}  // namespace nightshift::icmp
