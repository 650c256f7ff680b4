// The one small interface every probe kind implements, and the registry entry
// each kind fills in (probes/registry/ lists them). Nothing outside probes/
// branches on a kind's name.
//
// Thread safety: engines are reactor-thread only.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "nightshift/measure.h"
#include "nightshift/options.h"
#include "nightshift/reactor.h"
#include "nightshift/resolver.h"
#include "nightshift/sample.h"
#include "nightshift/target.h"

namespace nightshift {

struct ProbeRequest {
  std::shared_ptr<const Target> target;  // keeps the target alive across a reload
  const ProbeSpec* spec = nullptr;       // points into *target
  // Called exactly once with the result, on the reactor thread, never from
  // inside submit(); never after the engine is destroyed (runs still in
  // flight then are dropped). tests/integration/engine_conformance_test.cpp
  // holds every kind to this.
  std::function<void(Sample)> done;
  // Zero for a run on the schedule. Set on an accelerated run (the agent
  // probes a target it is uncertain about more often, core/scheduler.h): the
  // run spans this instead of spec->interval and ends within it, sending its
  // share of the interval's packets (run_packets()), so a target costs about
  // its normal packet rate however often it runs. Only kinds whose engine
  // says accelerates() get such runs.
  Duration span{};
};

// The packets a run sends: `count` per interval, or its share of them in an
// accelerated run's span (rounded up: at least one). Pure.
int run_packets(int count, Duration interval, Duration span);

class ProbeEngine {
 public:
  virtual ~ProbeEngine() = default;
  // Starts one probe run. Never blocks; the result arrives through req.done.
  virtual void submit(ProbeRequest req) = 0;
  // Probe runs started and not yet completed.
  virtual std::size_t in_flight() const = 0;
  // Whether runs of this probe honour ProbeRequest::span (ICMP spread
  // rounds): only those run accelerated while uncertain. Passive kinds, whose
  // run reports what the interval saw, and runs that would not keep their
  // packet rate or their false-alarm odds with fewer packets, say no.
  virtual bool accelerates(const ProbeSpec& spec) const {
    (void)spec;
    return false;
  }
  // Evidence on demand, after a miss: a quick, bounded extra measurement (ICMP:
  // a burst of 10 echoes 100 ms apart) whose Sample carries the value
  // `confirmation` = 1. False when the kind has none. When true, req.done runs
  // at most once: not at all if a global budget for extra traffic refused it.
  virtual bool confirm(ProbeRequest req) {
    (void)req;
    return false;
  }
  // Whether the kind has a confirmation at all. confirm() may still decline
  // one when the evidence is in or coming already (a confirmation of the
  // target running, or it confirmed down): someone waiting for the target's
  // state then hears from it soon all the same.
  virtual bool has_confirmation() const { return false; }
  // Where does the path break? A one-line, human-readable finding for an
  // incident's timeline (ICMP: a TTL-limited path trace and the last hop that
  // answers). False when the kind has none; when true, `done` runs at most once,
  // on the reactor thread, never from inside diagnose().
  virtual bool diagnose(const std::shared_ptr<const Target>& target, const ProbeSpec& spec,
                        std::function<void(std::string finding)> done) {
    (void)target;
    (void)spec;
    (void)done;
    return false;
  }
};

// What an engine may use. Outlives every engine.
struct EngineContext {
  Reactor& reactor;
  Resolver& resolver;
};

// Which exporter's format /probe and /snmp serve a kind's latest result in
// (serve/exporter_view.h): blackbox_exporter's, snmp_exporter's, or neither.
enum class ExporterFormat { kNone, kBlackbox, kSnmp };

struct ProbeKind {
  std::string_view name;  // the `kind` value in config
  // Reads the kind's own keys; returns nullptr after reporting errors.
  // `default_name` receives the probe's name when the config gives none.
  std::shared_ptr<const ProbeOptions> (*parse_options)(OptionReader& reader, std::string& default_name);
  std::unique_ptr<ProbeEngine> (*make_engine)(EngineContext& context);
  // Every value and observation its samples carry (see nightshift/measure.h).
  std::span<const Measure> (*measures)();
  ExporterFormat exporter;
  // The port a probe of this kind talks to, for exporter-style "host:port"
  // targets; nullptr when the kind has none.
  int (*port)(const ProbeOptions& options);
};

// Reads the optional `ip_family` key ("any", "ipv4", "ipv6") into `family`;
// false after reporting an error. Shared by the kinds that resolve hostnames.
bool read_ip_family(OptionReader& reader, AddressFamily& family);

// Fills the fields every sample has from the request. Shared by all engines.
Sample make_sample(const ProbeRequest& req, SteadyTime started);

// blackbox_exporter's series about the address a probe resolved, added to
// `sample.series` (so /metrics and /probe both carry them):
// probe_dns_lookup_time_seconds, and with an address probe_ip_protocol (4 or 6)
// and probe_ip_addr_hash (FNV-1a of the address bytes, as blackbox computes
// it: a change is a DNS change). Shared by the kinds that resolve.
void add_address_series(Sample& sample, Duration lookup, const SocketAddress* address);

// One label-free gauge in `sample.series` under exactly `metric`.
void add_gauge(Sample& sample, std::string metric, double value,
               std::vector<std::pair<std::string, std::string>> labels = {});

// How long a packet (an echo, a SYN) may stay unanswered before the probe
// suspects the target and asks for a confirmation, from the target's smoothed
// RTT and its variation (RFC 6298: srtt + 4 rttvar), between `floor` and
// `cap`; `cap` while no RTT is known. Pure.
Duration suspect_wait(std::optional<double> srtt_seconds, double rttvar_seconds, Duration floor, Duration cap);

// The smoothed RTT of one target (RFC 6298's gains: 1/8 and 1/4).
struct RttEstimate {
  std::optional<double> srtt;  // seconds; none before the first answer
  double rttvar = 0;
  void add(double rtt_seconds);
};

}  // namespace nightshift
