#include "probes/registry/registry.h"

#include <array>

#include "probes/icmp/icmp.h"
#include "probes/pcap/pcap.h"
#include "probes/snmp/snmp.h"
#include "probes/tcp/tcp.h"

namespace nightshift {

namespace {
const std::array<ProbeKind, 4> kKinds = {{
    {"tcp", &tcp::parse_options, &tcp::make_engine, &tcp::measures, ExporterFormat::kBlackbox, &tcp::port_of},
    {"icmp", &icmp::parse_options, &icmp::make_engine, &icmp::measures, ExporterFormat::kBlackbox, nullptr},
    {"snmp", &snmp::parse_options, &snmp::make_engine, &snmp::measures, ExporterFormat::kSnmp, &snmp::port_of},
    {"pcap", &pcap::parse_options, &pcap::make_engine, &pcap::measures, ExporterFormat::kNone, nullptr},
}};
}  // namespace

std::span<const ProbeKind> probe_kinds() { return kKinds; }

const ProbeKind* find_probe_kind(std::string_view name) {
  for (const auto& k : kKinds) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

std::vector<KindMeasures> kind_measures() {
  std::vector<KindMeasures> out;
  for (const auto& k : kKinds) out.push_back({k.name, k.measures()});
  return out;
}

}  // namespace nightshift
