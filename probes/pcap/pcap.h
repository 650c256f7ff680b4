// Passive watch (kind "pcap"): counts the live traffic to and from a target's
// prefix on an interface, through libpcap, and reports rates, a learned
// baseline and TCP/ICMP health each time the scheduler runs the probe.
//
//   [[target]]  name = "customers-a"  address = "198.51.100.0/24"
//   [[target.probe]]  kind = "pcap"  interface = "eth0"  interval = "10s"
//
// One pcap handle per interface, shared by every prefix watched on it:
// nonblocking, immediate mode, snaplen 128 (headers only; payload is never
// kept), a kernel BPF filter for IP, its selectable fd in the reactor. A probe
// run returns the counts its prefix gathered since that probe's previous run
// (values probe_pcap_*; see docs/metrics.md). The sample fails only when the
// capture itself fails (interface missing, no CAP_NET_RAW): reason error, with
// libpcap's message; the engine tries to open it again on the next run.
//
// Thread safety: reactor-thread only, like every engine.
#pragma once

#include <functional>
#include <iosfwd>

#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "probes/pcap/pcap_codec.h"
#include "probes/probe.h"

struct pcap;  // libpcap's pcap_t

namespace nightshift::pcap {

struct PcapOptions final : ProbeOptions {
  std::string interface;
  Duration syn_timeout = std::chrono::seconds(3);
  BaselineSettings baseline;
  int snaplen = 128;  // bytes per packet kept by the kernel: headers only
};

std::shared_ptr<const ProbeOptions> parse_options(OptionReader& reader, std::string& default_name);
std::unique_ptr<ProbeEngine> make_engine(EngineContext& context);
// What its samples carry (the registry entry's `measures`).
std::span<const Measure> measures();

// The sample a watch reports from one PrefixReport (pure; shared with replay).
void fill_sample(const PrefixReport& r, Sample& s);

class PcapEngine final : public ProbeEngine {
 public:
  explicit PcapEngine(EngineContext& context);
  ~PcapEngine() override;

  // ProbeEngine
  void submit(ProbeRequest req) override;
  std::size_t in_flight() const override { return 0; }  // a run answers at once (on the next loop turn)

 private:
  struct Capture {
    ::pcap* handle = nullptr;
    int fd = -1;
    int link_type = 0;
    std::unique_ptr<Analyzer> analyzer;
    std::string last_error;  // why the capture stopped, until it restarts
  };
  struct Watch {
    std::string interface;
    std::size_t prefix_index = 0;
    std::unique_ptr<PrefixWatch> watch;
    Counters interface_last;
    SteadyTime interface_at{};
    SteadyTime last_run{};
  };
  // Opens the interface's capture if needed; "" or libpcap's error.
  std::string open(const std::string& interface, const PcapOptions& options, Capture& c);
  void close(Capture& c);
  void drain(Capture& c);
  void forget_stale_watches(SteadyTime now);

  Reactor& reactor_;
  // Results go out through the reactor's queue on the next turn, possibly
  // after this engine is gone: they hold a weak reference and check it.
  std::shared_ptr<PcapEngine*> self_ = std::make_shared<PcapEngine*>(this);
  std::map<std::string, Capture> captures_;  // by interface
  std::map<std::string, Watch> watches_;     // by target + '\0' + probe
  SteadyTime last_sweep_{};
};

// `nightshift replay FILE.pcap [...]`: the same analysis over a capture file,
// with the capture's timestamps as the clock. Returns the exit status.
// `--config FILE` reads its pcap watches through `load_targets` (config parsing
// is the daemon's, not the probe's): false after writing the errors to `err`.
using TargetLoader = std::function<bool(const std::string& path, std::vector<std::shared_ptr<const Target>>& targets,
                                        std::ostream& err)>;
int replay_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
               const TargetLoader& load_targets);

}  // namespace nightshift::pcap
