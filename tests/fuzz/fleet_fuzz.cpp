// libFuzzer target over the fleet's wire format: any bytes, decoded as every
// message kind another agent (or anything on the bus) can send. Decoding
// never crashes; what decodes encodes and decodes again to the same thing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fleet/protocol.h"

using namespace nightshift::fleet;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (auto o = decode_observation(bytes); o.ok()) {
    auto again = decode_observation(encode(*o));
    if (!again.ok() || again->verdicts.size() != o->verdicts.size() || again->version != o->version) std::abort();
  } else if (o.error().message.empty()) {
    std::abort();
  }
  if (auto h = decode_heartbeat(bytes); h.ok()) {
    if (!decode_heartbeat(encode(*h)).ok()) std::abort();
  }
  if (auto r = decode_confirm_request(bytes); r.ok()) {
    if (!decode_confirm_request(encode(*r)).ok()) std::abort();
  }
  if (auto r = decode_confirm_reply(bytes); r.ok()) {
    if (!decode_confirm_reply(encode(*r)).ok()) std::abort();
  }
  if (auto i = decode_incident(bytes); i.ok()) {
    auto again = decode_incident(encode(*i));
    if (!again.ok() || again->id != i->id || again->impacted != i->impacted) std::abort();
  }
  return 0;
}
