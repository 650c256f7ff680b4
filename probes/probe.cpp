#include "probes/probe.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace nightshift {

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

int run_packets(int count, Duration interval, Duration span) {
  count = std::max(count, 1);
  if (span <= Duration::zero() || interval <= Duration::zero() || span >= interval) return count;
  // ceil(count x span / interval) without overflow: spans and intervals are seconds, counts small.
  const double share = static_cast<double>(count) * static_cast<double>(span.count()) / static_cast<double>(interval.count());
  return std::clamp(static_cast<int>(std::ceil(share - 1e-9)), 1, count);
}

Sample make_sample(const ProbeRequest& req, SteadyTime started) {
  Sample s;
  s.target = req.target->name;
  s.probe = req.spec->name;
  s.kind = req.spec->kind;
  s.started = started;
  return s;
}

void add_gauge(Sample& sample, std::string metric, double value,
               std::vector<std::pair<std::string, std::string>> labels) {
  sample.series.push_back({std::move(metric), std::move(labels), value, LabeledValue::Type::kGauge});
}

void add_address_series(Sample& sample, Duration lookup, const SocketAddress* address) {
  add_gauge(sample, "probe_dns_lookup_time_seconds", std::chrono::duration<double>(lookup).count());
  if (address == nullptr) return;
  add_gauge(sample, "probe_ip_protocol", address->family() == AF_INET6 ? 6 : 4);
  // FNV-1a (32 bits) over the address bytes, 4 for IPv4 and 16 for IPv6, as blackbox hashes them.
  const unsigned char* bytes = nullptr;
  std::size_t size = 0;
  if (address->family() == AF_INET6) {
    bytes = reinterpret_cast<const sockaddr_in6*>(&address->storage)->sin6_addr.s6_addr;
    size = 16;
  } else {
    bytes = reinterpret_cast<const unsigned char*>(&reinterpret_cast<const sockaddr_in*>(&address->storage)->sin_addr);
    size = 4;
  }
  std::uint32_t hash = 2166136261u;
  for (std::size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 16777619u;
  }
  add_gauge(sample, "probe_ip_addr_hash", hash);
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
    case FailureReason::kTlsHandshake: return "tls_handshake";
    case FailureReason::kTlsVerify: return "tls_verify";
    case FailureReason::kResourceLimit: return "resource_limit";
    case FailureReason::kError: return "error";
  }
  return "error";
}

Duration suspect_wait(std::optional<double> srtt_seconds, double rttvar_seconds, Duration floor, Duration cap) {
  if (cap < floor) return cap;
  if (!srtt_seconds) return cap;
  const double rto = *srtt_seconds + 4 * rttvar_seconds;
  const auto wait = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(rto));
  return std::clamp(wait, floor, cap);
}

void RttEstimate::add(double rtt_seconds) {
  if (!srtt) {
    srtt = rtt_seconds;
    rttvar = rtt_seconds / 2;
    return;
  }
  rttvar += (std::fabs(*srtt - rtt_seconds) - rttvar) / 4;
  *srtt += (rtt_seconds - *srtt) / 8;
}

}  // namespace nightshift
