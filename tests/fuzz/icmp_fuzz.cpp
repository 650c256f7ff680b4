// libFuzzer target over the ICMP decoders: any bytes, every family and framing.
// Built only with clang (-DNIGHTSHIFT_FUZZ=ON); run by scripts/fuzz.sh.
//
// Invariants checked besides "no crash, no sanitizer report": a decoded
// message's echo payload fits in the input, an echo reply re-encodes into a
// request that decodes to the same fields, and ownership() is total.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "probes/icmp/icmp_codec.h"

using namespace nightshift::icmp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  for (Family family : {Family::kIPv4, Family::kIPv6}) {
    for (Framing framing : {Framing::kIcmpOnly, Framing::kWithIpHeader}) {
      DecodeError error = DecodeError::kNone;
      auto m = decode(family, framing, bytes, &error);
      if (!m) {
        if (error == DecodeError::kNone) std::abort();  // a failure always says why
        (void)to_string(error);
        continue;
      }
      if (error != DecodeError::kNone) std::abort();
      if (m->echo.payload_size > size) std::abort();
      (void)ownership(*m, 0x0123456789abcdefULL, std::nullopt);
      (void)ownership(*m, 0x0123456789abcdefULL, std::uint16_t{0x1234});
      (void)describe(family, m->type, m->code);
      if (m->echo.stamp && (m->kind == MessageKind::kEchoReply || m->kind == MessageKind::kEchoRequest)) {
        EchoRequest req;
        req.identifier = m->echo.identifier;
        req.sequence = m->echo.sequence;
        req.stamp = *m->echo.stamp;
        req.payload_size = m->echo.payload_size;
        auto encoded = encode_echo_request(family, req);
        DecodeError e2;
        auto again = decode(family, Framing::kIcmpOnly, encoded, &e2);
        if (!again || again->echo.identifier != req.identifier || again->echo.sequence != req.sequence ||
            !again->echo.stamp || !(*again->echo.stamp == req.stamp)) {
          std::abort();
        }
      }
    }
  }
  (void)internet_checksum(bytes);
  return 0;
}
