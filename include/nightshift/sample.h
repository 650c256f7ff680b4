// Sample: what one probe run observed. Probes measure, rules judge: a Sample
// carries the outcome and *why* it failed, never a verdict about an outage.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nightshift/clock.h"

namespace nightshift {

// Why a probe failed. The string forms are label values and are stable.
enum class FailureReason {
  kNone,            // success
  kTimeout,         // no answer within the probe's timeout
  kRefused,         // the peer actively refused (TCP RST)
  kUnreachable,     // no route / host or network unreachable (incl. ICMP destination unreachable)
  kTtlExceeded,     // ICMP time exceeded: the TTL ran out on the way (a loop, or a path trace hop)
  kDnsFailure,      // the target's hostname did not resolve
  kBannerMismatch,  // connected, but the expected banner did not arrive
  kConnectionClosed,// the peer closed before the probe finished
  kAuthFailure,     // the device refused our credentials (SNMPv3 report: wrong user, key or security level)
  kTlsHandshake,    // connected, but the TLS handshake failed (no common protocol or cipher, not TLS at all)
  kTlsVerify,       // the TLS peer's certificate did not verify (expired, unknown issuer, wrong name)
  kResourceLimit,   // this host ran out of sockets or descriptors
  kError,           // any other local error; see Sample::detail
};

std::string_view to_string(FailureReason reason);

// A measurement with labels of its own beyond the probe's, e.g. one per SNMP
// interface: {"ifOperStatus", {{"ifIndex", "3"}, {"ifName", "eth0"}}, 1}.
// Exported under exactly `metric`, with the probe's labels plus `labels`.
struct LabeledValue {
  enum class Type { kGauge, kCounter };
  std::string metric;  // full Prometheus name, e.g. "ifHCInOctets"
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
  // kCounter: a cumulative count. A smaller value than last time is a reset
  // (the exported counter restarts); wraps of device counters are the engine's
  // to unfold before this.
  Type type = Type::kGauge;
};

struct Sample {
  std::string target;  // Target::name
  std::string probe;   // ProbeSpec::name, unique within the target
  std::string kind;    // "tcp", "icmp", ...
  SteadyTime started{};
  Duration duration{};  // how long the probe took, success or not
  bool ok = false;
  FailureReason reason = FailureReason::kNone;
  std::string detail;  // human-readable context for the reason (never a secret)
  // Kind-specific measurements, e.g. {"connect_seconds", 0.0003}.
  // Exported as gauges named probe_<kind>_<name>.
  std::vector<std::pair<std::string, double>> values;
  // Kind-specific observations, e.g. one {"rtt_seconds", 0.00012} per echo reply.
  // Exported as histograms named probe_<kind>_<name> (buckets 100us to 5s).
  std::vector<std::pair<std::string, double>> observations;
  // Labeled series. Each sample carries its probe's complete set: series the
  // previous sample had and this one lacks are removed (as snmp_exporter's
  // scrape returns nothing for a device that did not answer).
  std::vector<LabeledValue> series;
};

}  // namespace nightshift
