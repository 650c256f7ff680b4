// `nightshift replay FILE.pcap`: the pcap watch's analysis over a capture file,
// for tests and post-incident review. The capture's own timestamps are the
// clock: intervals, SYN timeouts and the baseline's hour-of-week buckets are
// those of the moment the traffic was recorded.
#include <pcap/pcap.h>

#include <cstdio>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/duration.h"
#include "probes/pcap/pcap.h"

namespace nightshift::pcap {

namespace {

const char kReplayUsage[] = R"(Usage: nightshift replay [options] FILE.pcap

Runs the pcap watch's analysis over a capture file (pcap or pcapng), using
the capture's timestamps as the clock, and prints per prefix one line per
interval and the totals:
  198.51.100.0/24 +10.000s 10.000s packets=120 bytes=9600 pps=12.000 ...

Options:
  --prefix CIDR           a prefix to watch (repeatable), e.g. 198.51.100.0/24
  --config FILE           also watch every pcap target's prefix of this agent
                          config, with its interval, syn_timeout and baseline
  --interval DURATION     report interval (default 10s, or the config's)
  --syn-timeout DURATION  SYN without SYN-ACK by then is failed (default 3s)
  --baseline-min-samples N  intervals before the baseline counts (default 30)
  --json                  print one JSON document instead of text
Exit status: 0 when the file was read, 1 if it could not be, 2 on usage errors.
)";

struct Watched {
  std::size_t index;
  std::string name;  // the target's name, or the prefix
  std::unique_ptr<PrefixWatch> watch;
  nlohmann::json intervals = nlohmann::json::array();
};

SteadyTime steady_of(const timeval& tv) {
  return SteadyTime(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
}
SystemTime wall_of(SteadyTime t) {
  return SystemTime(std::chrono::duration_cast<SystemTime::duration>(t.time_since_epoch()));
}

nlohmann::json counters_json(const Counters& c) {
  nlohmann::json j{{"packets", c.packets},         {"bytes", c.bytes},
                   {"syn", c.syn},                 {"syn_completed", c.syn_completed},
                   {"syn_failed", c.syn_failed},   {"rst", c.rst},
                   {"retransmits", c.retransmits}, {"icmp_unreachable", c.icmp_unreachable}};
  j["unreachable_by_router"] = nlohmann::json::object();
  for (const auto& [router, n] : c.unreachable_by_router) j["unreachable_by_router"][router] = n;
  return j;
}

nlohmann::json optional_json(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

std::string fixed(double v, int digits = 3) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

std::string counters_text(const Counters& c) {
  std::string s = "packets=" + std::to_string(c.packets) + " bytes=" + std::to_string(c.bytes) +
                  " syn=" + std::to_string(c.syn) + " syn_completed=" + std::to_string(c.syn_completed) +
                  " syn_failed=" + std::to_string(c.syn_failed) + " rst=" + std::to_string(c.rst) +
                  " retransmits=" + std::to_string(c.retransmits) +
                  " icmp_unreachable=" + std::to_string(c.icmp_unreachable);
  return s;
}

}  // namespace

int replay_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
               const TargetLoader& load_targets) {
  std::vector<std::pair<std::string, Prefix>> prefixes;  // name, prefix
  std::string file;
  std::string config_path;
  bool json = false;
  std::optional<Duration> interval;
  std::optional<Duration> syn_timeout;
  BaselineSettings baseline;
  auto usage = [&](const std::string& msg) {
    err << "nightshift replay: " << msg << "\n\n" << kReplayUsage;
    return 2;
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> const std::string* { return i + 1 < args.size() ? &args[++i] : nullptr; };
    if (a == "-h" || a == "--help") {
      out << kReplayUsage;
      return 0;
    } else if (a == "--json") {
      json = true;
    } else if (a == "--prefix") {
      const std::string* v = next();
      if (!v) return usage("--prefix needs a CIDR");
      std::string why;
      auto p = Prefix::parse(*v, &why);
      if (!p) return usage("--prefix: " + why);
      prefixes.emplace_back(p->to_string(), *p);
    } else if (a == "--config") {
      const std::string* v = next();
      if (!v) return usage("--config needs a FILE");
      config_path = *v;
    } else if (a == "--interval" || a == "--syn-timeout") {
      const std::string* v = next();
      auto d = v ? parse_duration(*v) : Result<Duration>(Error::invalid("missing"));
      if (!d || *d <= Duration::zero()) return usage(a + " needs a duration like \"10s\"");
      (a == "--interval" ? interval : syn_timeout) = *d;
    } else if (a == "--baseline-min-samples") {
      const std::string* v = next();
      int n = 0;
      try {
        n = v ? std::stoi(*v) : 0;
      } catch (...) {
      }
      if (n < 1) return usage("--baseline-min-samples needs a count of at least 1");
      baseline.min_samples = n;
    } else if (!a.empty() && a[0] == '-') {
      return usage("unknown option " + a);
    } else if (file.empty()) {
      file = a;
    } else {
      return usage("more than one capture file given");
    }
  }
  if (file.empty()) return usage("no capture file given");

  if (!config_path.empty()) {
    std::vector<std::shared_ptr<const Target>> targets;
    if (!load_targets || !load_targets(config_path, targets, err)) return 1;
    for (const auto& t : targets) {
      for (const auto& spec : t->probes) {
        if (spec.kind != "pcap") continue;
        std::string why;
        auto p = Prefix::parse(t->address, &why);
        if (!p) {
          err << config_path << ": target " << t->name << ": " << why << "\n";
          return 1;
        }
        const auto& o = static_cast<const PcapOptions&>(*spec.options);
        if (!interval) interval = spec.interval;
        if (!syn_timeout) syn_timeout = o.syn_timeout;
        if (baseline.min_samples == BaselineSettings{}.min_samples) baseline = o.baseline;
        prefixes.emplace_back(t->name, *p);
      }
    }
  }
  if (prefixes.empty()) return usage("no prefix to watch: give --prefix CIDR or --config FILE");
  const Duration step = interval.value_or(std::chrono::seconds(10));

  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_t* h = pcap_open_offline_with_tstamp_precision(file.c_str(), PCAP_TSTAMP_PRECISION_MICRO, errbuf);
  if (!h) {
    err << "nightshift replay: cannot read " << file << ": " << errbuf << "\n";
    return 1;
  }
  const int link_type = pcap_datalink(h);
  if (!supported_link_type(link_type)) {
    const char* name = pcap_datalink_val_to_name(link_type);
    err << "nightshift replay: " << file << " has link type " << (name ? name : std::to_string(link_type))
        << ", which the pcap watch does not decode\n";
    pcap_close(h);
    return 1;
  }

  AnalyzerSettings settings;
  settings.syn_timeout = syn_timeout.value_or(settings.syn_timeout);
  Analyzer analyzer(settings);
  std::vector<Watched> watched;
  for (const auto& [name, p] : prefixes) watched.push_back({analyzer.add_prefix(p), name, nullptr, {}});

  std::uint64_t frames = 0;
  std::optional<SteadyTime> first, last;
  SteadyTime interval_start{};
  auto report = [&](SteadyTime at) {
    analyzer.expire(at);
    for (auto& w : watched) {
      const PrefixReport r = w.watch->report(analyzer.counters(w.index), at, wall_of(at));
      nlohmann::json j = counters_json(r.delta);
      j["start"] = std::chrono::duration<double>(at - *first).count() - r.seconds;
      j["seconds"] = r.seconds;
      j["packets_per_second"] = r.packets_per_second;
      j["bytes_per_second"] = r.bytes_per_second;
      j["rst_per_second"] = r.rst_per_second;
      j["retransmits_per_second"] = r.retransmits_per_second;
      j["icmp_unreachable_per_second"] = r.icmp_unreachable_per_second;
      j["syn_failed_ratio"] = optional_json(r.syn_failed_ratio);
      j["baseline_pps"] = optional_json(r.baseline_pps);
      j["traffic_drop"] = optional_json(r.traffic_drop);
      w.intervals.push_back(std::move(j));
    }
  };

  pcap_pkthdr* header = nullptr;
  const u_char* data = nullptr;
  int rc = 0;
  while ((rc = pcap_next_ex(h, &header, &data)) == 1) {
    const SteadyTime t = steady_of(header->ts);
    if (!first) {
      first = t;
      interval_start = t;
      for (auto& w : watched) w.watch = std::make_unique<PrefixWatch>(baseline, t);
    }
    // Timestamps may step back a little in merged captures: never go back in time.
    const SteadyTime now = last && t < *last ? *last : t;
    // Bounded: an empty stretch of a day at 10 s is 8640 intervals; longer gaps are one interval.
    for (int gaps = 0; now >= interval_start + step; ++gaps) {
      if (gaps >= 100000) {
        interval_start = now;
        break;
      }
      interval_start += step;
      report(interval_start);
    }
    analyzer.add_frame(link_type, std::span<const std::uint8_t>(data, header->caplen), header->len, now);
    last = now;
    ++frames;
  }
  std::string read_error;
  if (rc == PCAP_ERROR) read_error = pcap_geterr(h);
  pcap_close(h);
  if (last && *last > interval_start) report(*last);  // the last, partial interval

  if (json) {
    nlohmann::json doc;
    doc["file"] = file;
    doc["link_type"] = link_type;
    doc["frames"] = frames;
    doc["not_ip"] = analyzer.decode_errors();
    doc["seconds"] = first ? std::chrono::duration<double>(*last - *first).count() : 0.0;
    doc["interval_seconds"] = std::chrono::duration<double>(step).count();
    doc["syn_pending"] = analyzer.pending_handshakes();
    doc["interface"] = counters_json(analyzer.interface_counters());
    doc["prefixes"] = nlohmann::json::array();
    for (auto& w : watched) {
      nlohmann::json p;
      p["name"] = w.name;
      p["prefix"] = analyzer.prefixes()[w.index].to_string();
      p["totals"] = counters_json(analyzer.counters(w.index));
      p["intervals"] = std::move(w.intervals);
      doc["prefixes"].push_back(std::move(p));
    }
    if (!read_error.empty()) doc["read_error"] = read_error;
    out << doc.dump(2) << "\n";
  } else {
    out << file << ": " << frames << " frames, " << analyzer.decode_errors() << " not IP, "
        << fixed(first ? std::chrono::duration<double>(*last - *first).count() : 0.0) << " s\n";
    out << "interface " << counters_text(analyzer.interface_counters()) << " syn_pending=" << analyzer.pending_handshakes()
        << "\n";
    for (const auto& w : watched) {
      const std::string label = w.name;
      for (const auto& j : w.intervals) {
        out << label << " +" << fixed(j["start"].get<double>()) << "s " << fixed(j["seconds"].get<double>())
            << "s packets=" << j["packets"].get<std::uint64_t>() << " bytes=" << j["bytes"].get<std::uint64_t>()
            << " pps=" << fixed(j["packets_per_second"].get<double>())
            << " Bps=" << fixed(j["bytes_per_second"].get<double>()) << " syn=" << j["syn"].get<std::uint64_t>()
            << " syn_failed=" << j["syn_failed"].get<std::uint64_t>() << " rst=" << j["rst"].get<std::uint64_t>()
            << " retransmits=" << j["retransmits"].get<std::uint64_t>()
            << " icmp_unreachable=" << j["icmp_unreachable"].get<std::uint64_t>() << " traffic_drop="
            << (j["traffic_drop"].is_null() ? std::string("-") : fixed(j["traffic_drop"].get<double>())) << "\n";
      }
      const Counters& c = analyzer.counters(w.index);
      out << label << " total " << analyzer.prefixes()[w.index].to_string() << " " << counters_text(c) << "\n";
      for (const auto& [router, n] : c.unreachable_by_router) {
        out << label << " unreachable_from " << router << " " << n << "\n";
      }
    }
  }
  if (!read_error.empty()) {
    err << "nightshift replay: " << file << ": read error after " << frames << " frames: " << read_error << "\n";
    return 1;
  }
  return 0;
}

}  // namespace nightshift::pcap
