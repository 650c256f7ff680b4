// libFuzzer target over what an SNMP device sends back: raw messages through
// Net-SNMP's parser and this kind's varbind decoding, then the interface and
// custom-OID interpretation of whatever decoded (as walked columns), and OID
// text from the config. Nothing may crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <string>

#include "probes/snmp/snmp.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace nightshift::snmp;
  const std::vector<Varbind> varbinds = decode_message(data, size);
  SnmpOptions options;
  options.interface_patterns = {"eth*"};
  options.oids.push_back({"rx_power", "1.3.6.1.4.1.9.9.91.1.1.1.1.4", true, false, "sensor", 0.1});
  // The same varbinds as every column and as the scalars: interpret() must
  // cope with anything in any place.
  std::vector<std::vector<Varbind>> columns(12, varbinds);
  (void)interpret(options, varbinds, columns, 100.0);
  (void)parse_oid(std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
