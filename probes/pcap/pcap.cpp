#include "probes/pcap/pcap.h"

#include <pcap/pcap.h>
#include <sys/epoll.h>

#include "core/log.h"

namespace nightshift::pcap {

namespace {

// IP only, VLAN-tagged IP too; everything else stays in the kernel.
constexpr const char* kFilter = "ip or ip6 or (vlan and (ip or ip6))";
constexpr int kDispatchBatch = 4096;  // packets per pcap_dispatch call before the reactor runs others

struct DispatchContext {
  Analyzer* analyzer;
  int link_type;
  SteadyTime now;
};

void on_packet(u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
  auto* ctx = reinterpret_cast<DispatchContext*>(user);
  ctx->analyzer->add_frame(ctx->link_type, std::span<const std::uint8_t>(bytes, h->caplen), h->len, ctx->now);
}

std::string watch_key(const ProbeRequest& req) { return req.target->name + '\0' + req.spec->name; }

}  // namespace

std::shared_ptr<const ProbeOptions> parse_options(OptionReader& reader, std::string& default_name) {
  auto opts = std::make_shared<PcapOptions>();
  bool ok = true;
  if (auto iface = reader.string("interface", /*required=*/true)) {
    if (iface->empty() || iface->size() >= 64) {
      reader.error("interface", "expected an interface name like \"eth0\", found \"" + *iface + "\"");
      ok = false;
    }
    opts->interface = *iface;
  } else {
    ok = false;
  }
  if (auto t = reader.duration("syn_timeout", false)) {
    if (*t < std::chrono::milliseconds(10) || *t > std::chrono::minutes(5)) {
      reader.error("syn_timeout", "must be between 10ms and 5m");
      ok = false;
    }
    opts->syn_timeout = *t;
  }
  // EWMA over about this many samples of the same hour-of-week bucket.
  if (auto n = reader.integer("baseline_samples", 1, 100000, false)) opts->baseline.alpha = 2.0 / (static_cast<double>(*n) + 1.0);
  if (auto n = reader.integer("baseline_min_samples", 1, 100000, false)) opts->baseline.min_samples = static_cast<int>(*n);
  if (auto n = reader.integer("min_baseline_pps", 0, 1000000000, false)) opts->baseline.min_pps = static_cast<double>(*n);
  if (auto n = reader.integer("snaplen", 64, 256, false)) opts->snaplen = static_cast<int>(*n);
  default_name = "pcap";
  if (!ok) return nullptr;
  return opts;
}

namespace {
const Measure kMeasures[] = {
    {"packets_per_second", MeasureType::kNumber, "per second",
     "traffic to or from the target's prefix since the previous run"},
    {"bytes_per_second", MeasureType::kNumber, "bytes per second",
     "bytes on the wire to or from the target's prefix since the previous run"},
    {"baseline_pps", MeasureType::kNumber, "per second",
     "learned packets/s for this hour of the week (absent until learned)"},
    {"traffic_drop", MeasureType::kNumber, "ratio",
     "1 - packets/s over the baseline, 0 to 1 (absent until learned or below min_baseline_pps)"},
    {"syn_per_second", MeasureType::kNumber, "per second", "connection attempts (SYN without ACK, first sighting)"},
    {"syn_failed_ratio", MeasureType::kNumber, "ratio",
     "handshakes with no SYN-ACK within syn_timeout over all judged (absent when none were judged)"},
    {"rst_per_second", MeasureType::kNumber, "per second", "TCP resets"},
    {"retransmits_per_second", MeasureType::kNumber, "per second",
     "TCP segments with payload that bring no new sequence space"},
    {"icmp_unreachable_per_second", MeasureType::kNumber, "per second", "ICMP / ICMPv6 destination unreachable"},
    {"interface_packets_per_second", MeasureType::kNumber, "per second", "all IP packets on the probe's interface"},
    {"interface_bytes_per_second", MeasureType::kNumber, "bytes per second", "all IP bytes on the probe's interface"},
    {"kernel_dropped_packets", MeasureType::kNumber, "count",
     "packets the kernel dropped because the capture buffer was full, since the capture started"},
};
}  // namespace

std::span<const Measure> measures() { return kMeasures; }

std::unique_ptr<ProbeEngine> make_engine(EngineContext& context) { return std::make_unique<PcapEngine>(context); }

void fill_sample(const PrefixReport& r, Sample& s) {
  s.values.emplace_back("packets_per_second", r.packets_per_second);
  s.values.emplace_back("bytes_per_second", r.bytes_per_second);
  s.values.emplace_back("syn_per_second", r.syn_per_second);
  s.values.emplace_back("rst_per_second", r.rst_per_second);
  s.values.emplace_back("retransmits_per_second", r.retransmits_per_second);
  s.values.emplace_back("icmp_unreachable_per_second", r.icmp_unreachable_per_second);
  if (r.syn_failed_ratio) s.values.emplace_back("syn_failed_ratio", *r.syn_failed_ratio);
  if (r.baseline_pps) s.values.emplace_back("baseline_pps", *r.baseline_pps);
  if (r.traffic_drop) s.values.emplace_back("traffic_drop", *r.traffic_drop);
}

PcapEngine::PcapEngine(EngineContext& context) : reactor_(context.reactor) {}

PcapEngine::~PcapEngine() {
  for (auto& [name, c] : captures_) close(c);
}

void PcapEngine::close(Capture& c) {
  if (c.fd >= 0) reactor_.unwatch(c.fd);
  if (c.handle) pcap_close(c.handle);
  c.handle = nullptr;
  c.fd = -1;
}

std::string PcapEngine::open(const std::string& interface, const PcapOptions& options, Capture& c) {
  if (c.handle) return "";
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_t* h = pcap_create(interface.c_str(), errbuf);
  if (!h) return "pcap_create(" + interface + "): " + errbuf;
  auto fail = [&](const std::string& what) {
    std::string msg = what + " on " + interface + ": " + pcap_geterr(h);
    pcap_close(h);
    return msg;
  };
  pcap_set_snaplen(h, options.snaplen);
  pcap_set_promisc(h, 0);
  pcap_set_immediate_mode(h, 1);
  pcap_set_buffer_size(h, 4 << 20);
  const int rc = pcap_activate(h);
  if (rc < 0) {
    std::string msg = "cannot capture on " + interface + ": " + pcap_statustostr(rc);
    const std::string detail = pcap_geterr(h);
    if (!detail.empty() && detail != pcap_statustostr(rc)) msg += " (" + detail + ")";
    if (rc == PCAP_ERROR_PERM_DENIED) msg += "; capturing needs CAP_NET_RAW";
    pcap_close(h);
    return msg;
  }
  c.link_type = pcap_datalink(h);
  if (!supported_link_type(c.link_type)) {
    const char* name = pcap_datalink_val_to_name(c.link_type);
    pcap_close(h);
    return "interface " + interface + " has link type " + (name ? name : std::to_string(c.link_type)) +
           ", which the pcap watch does not decode";
  }
  bpf_program program{};
  if (pcap_compile(h, &program, kFilter, 1, PCAP_NETMASK_UNKNOWN) != 0) return fail("pcap_compile");
  const int set = pcap_setfilter(h, &program);
  pcap_freecode(&program);
  if (set != 0) return fail("pcap_setfilter");
  if (pcap_setnonblock(h, 1, errbuf) != 0) {
    pcap_close(h);
    return "pcap_setnonblock on " + interface + ": " + errbuf;
  }
  const int fd = pcap_get_selectable_fd(h);
  if (fd < 0) {
    pcap_close(h);
    return "interface " + interface + " has no selectable descriptor";
  }
  c.handle = h;
  c.fd = fd;
  if (!c.analyzer) {
    AnalyzerSettings settings;
    settings.syn_timeout = options.syn_timeout;
    c.analyzer = std::make_unique<Analyzer>(settings);
  }
  auto st = reactor_.watch(fd, EPOLLIN, [this, &c](std::uint32_t) { drain(c); });
  if (!st.ok()) {
    close(c);
    return "cannot watch the capture of " + interface + ": " + st.error().message;
  }
  log::info("pcap capture started", {{"interface", interface}, {"link_type", c.link_type}});
  return "";
}

void PcapEngine::drain(Capture& c) {
  if (!c.handle) return;
  DispatchContext ctx{c.analyzer.get(), c.link_type, reactor_.clock().now()};
  // Bounded: at most a few batches per wake-up, so other sockets get their turn.
  for (int round = 0; round < 8; ++round) {
    const int n = pcap_dispatch(c.handle, kDispatchBatch, &on_packet, reinterpret_cast<u_char*>(&ctx));
    if (n == PCAP_ERROR) {
      // The interface went down or away: stop watching (a dead fd would wake
      // the reactor forever); the next run reopens it or reports why not.
      c.last_error = pcap_geterr(c.handle);
      log::warn("pcap capture stopped", {{"error", c.last_error}});
      close(c);
      return;
    }
    if (n < kDispatchBatch) break;
  }
}

void PcapEngine::forget_stale_watches(SteadyTime now) {
  // Targets a reload removed stop running: drop their state after a day (a
  // watch runs at least every few minutes while it exists).
  if (now - last_sweep_ < std::chrono::minutes(10)) return;
  last_sweep_ = now;
  std::erase_if(watches_, [now](const auto& kv) { return now - kv.second.last_run > std::chrono::hours(24); });
}

void PcapEngine::submit(ProbeRequest req) {
  const SteadyTime now = reactor_.clock().now();
  Sample s = make_sample(req, now);
  const auto& options = static_cast<const PcapOptions&>(*req.spec->options);
  auto finish = [this, &req, &s] {
    // An engine destroyed before the next loop turn calls nobody back.
    reactor_.post([alive = std::weak_ptr<PcapEngine*>(self_), done = std::move(req.done),
                   sample = std::move(s)]() mutable {
      if (!alive.expired()) done(std::move(sample));
    });
  };
  std::string error;
  const auto prefix = Prefix::parse(req.target->address, &error);
  if (!prefix) {
    s.reason = FailureReason::kError;
    s.detail = "target address: " + error;
    return finish();
  }
  Capture& c = captures_[options.interface];
  drain(c);  // before reopening: what arrived before a failure still counts
  if (std::string why = open(options.interface, options, c); !why.empty()) {
    s.reason = FailureReason::kError;
    s.detail = c.last_error.empty() ? why : why + " (capture stopped: " + c.last_error + ")";
    return finish();
  }
  if (!c.last_error.empty()) {
    log::info("pcap capture restarted", {{"interface", options.interface}});
    c.last_error.clear();
  }
  drain(c);
  c.analyzer->expire(now);
  const std::size_t index = c.analyzer->add_prefix(*prefix);
  forget_stale_watches(now);
  Watch& w = watches_[watch_key(req)];
  w.last_run = now;
  if (!w.watch || w.interface != options.interface || w.prefix_index != index) {
    // First run (or the target moved): start counting from here; the first
    // report covers the time since the capture started for this prefix.
    w.interface = options.interface;
    w.prefix_index = index;
    w.watch = std::make_unique<PrefixWatch>(options.baseline, now, c.analyzer->counters(index));
    w.interface_last = c.analyzer->interface_counters();
    w.interface_at = now;
  }
  const PrefixReport r = w.watch->report(c.analyzer->counters(index), now, reactor_.clock().wall_now());
  s.ok = true;
  s.duration = reactor_.clock().now() - now;
  if (r.seconds > 0) fill_sample(r, s);  // the first run only starts the window: no rates yet
  const Counters iface = difference(c.analyzer->interface_counters(), w.interface_last);
  const double secs = std::chrono::duration<double>(now - w.interface_at).count();
  if (secs > 0) {
    s.values.emplace_back("interface_packets_per_second", static_cast<double>(iface.packets) / secs);
    s.values.emplace_back("interface_bytes_per_second", static_cast<double>(iface.bytes) / secs);
  }
  w.interface_last = c.analyzer->interface_counters();
  w.interface_at = now;
  pcap_stat stats{};
  if (pcap_stats(c.handle, &stats) == 0) s.values.emplace_back("kernel_dropped_packets", stats.ps_drop);
  // Cumulative per router (bounded to max_routers + "other").
  for (const auto& [router, n] : c.analyzer->counters(index).unreachable_by_router) {
    LabeledValue v;
    v.metric = "probe_pcap_icmp_unreachable_total";
    v.labels = {{"router", router}};
    v.value = static_cast<double>(n);
    v.type = LabeledValue::Type::kCounter;
    s.series.push_back(std::move(v));
  }
  finish();
}

}  // namespace nightshift::pcap
