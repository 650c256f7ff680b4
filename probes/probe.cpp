#include "probes/probe.h"

#include <array>

#include "probes/icmp/icmp.h"
#include "probes/snmp/snmp.h"
#include "probes/pcap/pcap.h"
#include "probes/tcp/tcp.h"

namespace nightshift {

namespace {
const std::array<ProbeKind, 4> kKinds = {{
    {"tcp", &tcp::parse_options, &tcp::make_engine},
    {"icmp", &icmp::parse_options, &icmp::make_engine},
    {"snmp", &snmp::parse_options, &snmp::make_engine},
    {"pcap", &pcap::parse_options, &pcap::make_engine},
}};
}  // namespace

std::span<const ProbeKind> probe_kinds() { return kKinds; }

const ProbeKind* find_probe_kind(std::string_view name) {
  for (const auto& k : kKinds) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

bool read_ip_family(OptionReader& reader, AddressFamily& family) {
  auto value = reader.string("ip_family", false);
  if (!value) return true;
  if (*value == "ipv4") {
    family = AddressFamily::kIPv4;
  } else if (*value == "ipv6") {
    family = AddressFamily::kIPv6;
  } else if (*value == "any") {
    family = AddressFamily::kAny;
  } else {
    reader.error("ip_family", "expected one of \"any\", \"ipv4\", \"ipv6\", found \"" + *value + "\"");
    return false;
  }
  return true;
}

Sample make_sample(const ProbeRequest& req, SteadyTime started) {
  Sample s;
  s.target = req.target->name;
  s.probe = req.spec->name;
  s.kind = req.spec->kind;
  s.started = started;
  return s;
}

std::string_view to_string(FailureReason reason) {
  switch (reason) {
    case FailureReason::kNone: return "ok";
    case FailureReason::kTimeout: return "timeout";
    case FailureReason::kRefused: return "refused";
    case FailureReason::kUnreachable: return "unreachable";
    case FailureReason::kTtlExceeded: return "ttl_exceeded";
    case FailureReason::kDnsFailure: return "dns_failure";
    case FailureReason::kBannerMismatch: return "banner_mismatch";
    case FailureReason::kConnectionClosed: return "connection_closed";
    case FailureReason::kAuthFailure: return "auth_failure";
    case FailureReason::kResourceLimit: return "resource_limit";
    case FailureReason::kError: return "error";
  }
  return "error";
}

}  // namespace nightshift
