#include "probes/probe.h"

#include <array>

#include "probes/icmp.h"
#include "probes/tcp.h"

namespace nightshift {

namespace {
const std::array<ProbeKind, 2> kKinds = {{
    {"tcp", &tcp::parse_options, &tcp::make_engine},
    {"icmp", &icmp::parse_options, &icmp::make_engine},
}};
}  // namespace

std::span<const ProbeKind> probe_kinds() { return kKinds; }

const ProbeKind* find_probe_kind(std::string_view name) {
  for (const auto& k : kKinds) {
    if (k.name == name) return &k;
  }
  return nullptr;
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
    case FailureReason::kResourceLimit: return "resource_limit";
    case FailureReason::kError: return "error";
  }
  return "error";
}

}  // namespace nightshift
