#include "serve/metrics.h"

#include <malloc.h>
#include <isa-l/igzip_lib.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>

#include "nightshift/version.h"

namespace nightshift {

namespace {
const char kHelpSuccess[] = "Whether the probe's last run succeeded (1) or failed (0).";
const char kHelpDuration[] = "How long the probe's last run took, in seconds.";
const char kHelpFailureReason[] =
    "Present (value 1) while the probe's last run failed; the reason label says why "
    "(timeout, refused, unreachable, ttl_exceeded, dns_failure, banner_mismatch, connection_closed, resource_limit, error).";
const char kHelpResults[] = "Probe runs completed, by result (ok or the failure reason).";
const char kHelpTargetInfo[] = "Configured targets with their address and extra labels (value 1).";
const char kHelpLabeled[] = "see docs/metrics.md";

// 100us to 5s, roughly x2.5 per step: loopback to satellite round trips.
constexpr std::array<double, 15> kLatencyBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};
constexpr std::size_t kBucketCount = kLatencyBuckets.size() + 1;  // and +Inf
constexpr std::size_t kReasonCount = static_cast<std::size_t>(FailureReason::kError) + 1;

// Numbers as prometheus-cpp's text serializer writes them (printf "%.16g"),
// without a stream.
void append_number(std::string& out, double v, MetricsFormat format) {
  if (std::isnan(v)) {
    out += format == MetricsFormat::kOpenMetrics ? "NaN" : "Nan";
  } else if (std::isinf(v)) {
    out += v < 0 ? "-Inf" : "+Inf";
  } else {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 16);
    out.append(buf, ec == std::errc() ? end : buf);
  }
}

void append_count(std::string& out, std::uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, ec == std::errc() ? end : buf);
}

void append_escaped(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      default:
        out += c;
    }
  }
}

void append_help(std::string& out, std::string_view help, MetricsFormat format) {
  for (char c : help) {
    if (c == '\n') out += "\\n";
    else if (c == '\\') out += "\\\\";
    else if (c == '"' && format == MetricsFormat::kOpenMetrics) out += "\\\"";
    else out += c;
  }
}

std::string render_labels(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!out.empty()) out += ',';
    out += k;
    out += "=\"";
    append_escaped(out, v);
    out += '"';
  }
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The buckets' le="..." labels, bounds written as the text serializer writes them.
const std::array<std::string, kBucketCount>& bucket_labels() {
  static const std::array<std::string, kBucketCount> kLabels = [] {
    std::array<std::string, kBucketCount> out;
    for (std::size_t i = 0; i < kBucketCount; ++i) {
      out[i] = "le=\"";
      if (i < kLatencyBuckets.size()) append_number(out[i], kLatencyBuckets[i], MetricsFormat::kText);
      else out[i] += "+Inf";
      out[i] += '"';
    }
    return out;
  }();
  return kLabels;
}

// Buffers rendered text and hands it to the sink in pieces of about 64 KiB.
class Writer {
 public:
  Writer(MetricsFormat format, const MetricsSink& sink) : format_(format), sink_(sink) { buf_.reserve(kFlushAt + 4096); }
  ~Writer() = default;
  std::string& buf() { return buf_; }
  MetricsFormat format() const { return format_; }
  void maybe_flush() {
    if (buf_.size() >= kFlushAt) flush();
  }
  void flush() {
    if (!buf_.empty()) sink_(buf_);
    buf_.clear();
  }

  // # HELP / # TYPE (/ # UNIT) lines of a family about to get its first series.
  // Counters' samples keep their full name (OpenMetrics: with _total).
  void header(std::string_view name, std::string_view help, prometheus::MetricType type) {
    std::string_view family = name;
    const char* type_name = "gauge";
    switch (type) {
      case prometheus::MetricType::Counter:
        type_name = "counter";
        if (format_ == MetricsFormat::kOpenMetrics) {
          // OpenMetrics counters carry _total on their samples only; one
          // without it (snmp_exporter names such as ifHCInOctets) would have to
          // change its name, so it goes out untyped and keeps it.
          if (ends_with(name, "_total")) family = name.substr(0, name.size() - 6);
          else type_name = "unknown";
        }
        break;
      case prometheus::MetricType::Histogram:
        type_name = "histogram";
        break;
      case prometheus::MetricType::Summary:
        type_name = "summary";
        break;
      case prometheus::MetricType::Untyped:
        type_name = format_ == MetricsFormat::kOpenMetrics ? "unknown" : "untyped";
        break;
      default:
        break;
    }
    if (!help.empty()) {
      buf_ += "# HELP ";
      buf_ += family;
      buf_ += ' ';
      append_help(buf_, help, format_);
      buf_ += '\n';
    }
    buf_ += "# TYPE ";
    buf_ += family;
    buf_ += ' ';
    buf_ += type_name;
    buf_ += '\n';
    if (format_ == MetricsFormat::kOpenMetrics) {
      for (std::string_view unit : {"seconds", "bytes", "ratio"}) {
        if (family.size() > unit.size() && ends_with(family, unit) && family[family.size() - unit.size() - 1] == '_') {
          buf_ += "# UNIT ";
          buf_ += family;
          buf_ += ' ';
          buf_ += unit;
          buf_ += '\n';
          break;
        }
      }
    }
  }

  // name{labels[,extra]} value-prefix: the caller appends the value and '\n'.
  void head(std::string_view name, std::string_view suffix, std::string_view labels, std::string_view extra = {}) {
    buf_ += name;
    buf_ += suffix;
    if (!labels.empty() || !extra.empty()) {
      buf_ += '{';
      buf_ += labels;
      if (!extra.empty()) {
        if (!labels.empty()) buf_ += ',';
        buf_ += extra;
      }
      buf_ += '}';
    }
    buf_ += ' ';
  }
  // As head(), with one more label sorted in at `split` of `labels`.
  void head_with(std::string_view name, std::string_view labels, std::size_t split, std::string_view label,
                 std::string_view value) {
    buf_ += name;
    buf_ += '{';
    buf_ += labels.substr(0, split);
    buf_ += ',';
    buf_ += label;
    buf_ += "=\"";
    append_escaped(buf_, value);
    buf_ += '"';
    buf_ += labels.substr(split);
    buf_ += "} ";
  }
  void number(double v) {
    append_number(buf_, v, format_);
    buf_ += '\n';
  }
  void count(std::uint64_t v) {
    append_count(buf_, v);
    buf_ += '\n';
  }

 private:
  static constexpr std::size_t kFlushAt = 64 * 1024;
  MetricsFormat format_;
  const MetricsSink& sink_;
  std::string buf_;
};

std::string labels_text(const std::vector<prometheus::ClientMetric::Label>& labels) {
  std::string out;
  for (const auto& l : labels) {
    if (!out.empty()) out += ',';
    out += l.name;
    out += "=\"";
    append_escaped(out, l.value);
    out += '"';
  }
  return out;
}
}  // namespace

void write_families(const std::vector<prometheus::MetricFamily>& families, MetricsFormat format,
                    const MetricsSink& sink) {
  Writer w(format, sink);
  for (const auto& f : families) {
    if (f.metric.empty()) continue;
    w.header(f.name, f.help, f.type);
    const std::string_view name = f.name;
    for (const auto& m : f.metric) {
      const std::string labels = labels_text(m.label);
      switch (f.type) {
        case prometheus::MetricType::Counter:
          w.head(name, "", labels);
          w.number(m.counter.value);
          break;
        case prometheus::MetricType::Gauge:
          w.head(name, "", labels);
          w.number(m.gauge.value);
          break;
        case prometheus::MetricType::Untyped:
          w.head(name, "", labels);
          w.number(m.untyped.value);
          break;
        case prometheus::MetricType::Histogram: {
          const auto& h = m.histogram;
          w.head(name, "_count", labels);
          w.count(h.sample_count);
          w.head(name, "_sum", labels);
          w.number(h.sample_sum);
          bool inf = false;
          for (const auto& b : h.bucket) {
            std::string le = "le=\"";
            append_number(le, b.upper_bound, MetricsFormat::kText);
            le += '"';
            inf = std::isinf(b.upper_bound);
            w.head(name, "_bucket", labels, le);
            w.count(b.cumulative_count);
          }
          if (!inf) {
            w.head(name, "_bucket", labels, "le=\"+Inf\"");
            w.count(h.sample_count);
          }
          break;
        }
        case prometheus::MetricType::Summary: {
          const auto& s = m.summary;
          w.head(name, "_count", labels);
          w.count(s.sample_count);
          w.head(name, "_sum", labels);
          w.number(s.sample_sum);
          for (const auto& q : s.quantile) {
            std::string ql = "quantile=\"";
            append_number(ql, q.quantile, MetricsFormat::kText);
            ql += '"';
            w.head(name, "", labels, ql);
            w.number(q.value);
          }
          break;
        }
        default:
          break;
      }
      w.maybe_flush();
    }
  }
  w.flush();
}

// ---------------------------------------------------------------------------
// Compact per-probe state

namespace {
struct Histogram {
  std::array<std::uint64_t, kBucketCount> counts{};  // per bucket, not cumulative
  double sum = 0;
  std::uint64_t count = 0;
};

// A labeled series' name and own labels, interned in the table: a probe's
// record keeps its number (10 000 ICMP probes carry 7 such series each).
struct SeriesName {
  std::string metric;
  std::vector<std::pair<std::string, std::string>> own;  // as the sample gave them
  // The own labels in name order (a later duplicate wins), each rendered as
  // name="value": merged into the probe's labels when written.
  std::vector<std::pair<std::string, std::string>> pieces;
};

struct Labeled {
  std::uint32_t series = 0;  // into Table::series
  LabeledValue::Type type = LabeledValue::Type::kGauge;
  double value = 0;
};

// The probe's rendered labels with a series' own merged in, in name order
// (an own label replaces the probe's of the same name): the text
// render_labels() gives for the merged map.
void merge_labels(std::string& out, std::string_view probe, const SeriesName& name) {
  out.clear();
  auto own = name.pieces.begin();
  auto emit = [&out](std::string_view piece) {
    if (!out.empty()) out += ',';
    out += piece;
  };
  std::size_t i = 0;
  while (i < probe.size()) {
    const std::size_t eq = probe.find('=', i);
    if (eq == std::string_view::npos) break;
    std::size_t j = eq + 2;  // past ="
    while (j < probe.size() && probe[j] != '"') j += probe[j] == '\\' ? 2 : 1;
    const std::size_t end = std::min(j + 1, probe.size());
    const std::string_view label = probe.substr(i, eq - i);
    while (own != name.pieces.end() && own->first < label) emit((own++)->second);
    if (own != name.pieces.end() && own->first == label) emit((own++)->second);
    else emit(probe.substr(i, end - i));
    i = end + 1;  // past the comma
  }
  while (own != name.pieces.end()) emit((own++)->second);
}

// What a kind's samples carry, by first sight: slot numbers index the records.
struct KindSchema {
  std::string kind;
  std::vector<std::string> values;        // probe_<kind>_<name> gauges
  std::vector<std::string> observations;  // probe_<kind>_<name> histograms

  static std::size_t slot(std::vector<std::string>& names, std::string_view name) {
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (names[i] == name) return i;
    }
    names.emplace_back(name);
    return names.size() - 1;
  }
};

// What the samples change; the reactor writes it under the lock.
struct ProbeState {
  bool seen = false;  // series exist from the first result on
  bool ok = false;
  FailureReason reason = FailureReason::kNone;
  double duration = 0;
  std::array<std::uint64_t, kReasonCount> results{};
  std::vector<std::optional<double>> values;  // by value slot
  std::vector<Histogram> observations;        // by observation slot; count 0 = none yet
  std::vector<Labeled> labeled;
};

struct ProbeRecord {
  // Fixed from sync_targets on: read without the lock.
  std::shared_ptr<const Target> target;
  const ProbeSpec* spec = nullptr;  // into *target
  std::size_t kind = 0;             // into the kind schemas
  std::string labels;               // agent="..",group="..",kind="..",probe="..",site="..",target=".."
  std::size_t split = 0;            // just after probe="..": where result= and reason= sort in
  ProbeState state;
};

struct TargetRecord {
  std::shared_ptr<const Target> target;
  std::string labels;
};

std::map<std::string, std::string> probe_labels(const Target& t, const ProbeSpec& p, const std::string& agent) {
  return {{"target", t.name}, {"probe", p.name}, {"kind", p.kind}, {"group", t.group}, {"site", t.site}, {"agent", agent}};
}

std::map<std::string, std::string> info_labels(const Target& t, const std::string& agent) {
  std::map<std::string, std::string> info{
      {"target", t.name}, {"address", t.address}, {"group", t.group}, {"site", t.site}, {"agent", agent}};
  for (const auto& [k, v] : t.labels) info[k] = v;
  return info;
}
}  // namespace

struct ProbeFamilies::Table {
  std::vector<ProbeRecord> probes;  // sorted by labels
  // Labeled series names by first sight; grows only (appended under the lock).
  // Shared and immutable: a render takes their addresses under the lock and
  // reads them without it, while record() may append.
  std::vector<std::shared_ptr<const SeriesName>> series;
  std::unordered_map<std::string, std::uint32_t> series_index;  // metric, then own labels, \0-separated
  std::unordered_map<std::pair<std::string, std::string>, std::size_t, StringPairHash, StringPairEqual> index;  // (target, probe)
  std::vector<TargetRecord> targets;
  std::vector<KindSchema> kinds;
};

ProbeFamilies::ProbeFamilies(std::string agent_name, std::vector<KindMeasures> measures)
    : agent_(std::move(agent_name)), measures_(std::move(measures)), table_(std::make_shared<Table>()) {}

ProbeFamilies::~ProbeFamilies() = default;

void ProbeFamilies::sync_targets(const std::vector<std::shared_ptr<const Target>>& targets) {
  // record() runs on this (the reactor) thread too: *table_ cannot change
  // meanwhile, and renders only read it.
  auto next = std::make_shared<Table>();
  const std::shared_ptr<const Table> prev = table_;
  next->kinds = prev->kinds;
  next->series = prev->series;  // surviving records keep their series numbers
  next->series_index = prev->series_index;
  // Sized once: growing by doubling would hold up to twice the records (and
  // briefly both copies) at 100 000 probes.
  std::size_t probe_count = 0;
  for (const auto& t : targets) probe_count += t->probes.size();
  next->probes.reserve(probe_count);
  next->targets.reserve(targets.size());
  next->index.reserve(probe_count);
  for (const auto& t : targets) {
    next->targets.push_back({t, render_labels(info_labels(*t, agent_))});
    for (const auto& p : t->probes) {
      ProbeRecord r;
      r.target = t;
      r.spec = &p;
      r.kind = next->kinds.size();
      for (std::size_t k = 0; k < next->kinds.size(); ++k) {
        if (next->kinds[k].kind == p.kind) r.kind = k;
      }
      if (r.kind == next->kinds.size()) next->kinds.push_back({p.kind, {}, {}});
      auto labels = probe_labels(*t, p, agent_);
      r.labels = render_labels(labels);
      const std::size_t at = r.labels.find("probe=\"");
      r.split = r.labels.find('"', at + 7);
      while (r.split != std::string::npos && r.labels[r.split - 1] == '\\') r.split = r.labels.find('"', r.split + 1);
      r.split = r.split == std::string::npos ? r.labels.size() : r.split + 1;
      next->probes.push_back(std::move(r));
    }
  }
  std::sort(next->probes.begin(), next->probes.end(),
            [](const ProbeRecord& a, const ProbeRecord& b) { return a.labels < b.labels; });
  // A surviving probe keeps its series (and counters); one whose labels
  // changed starts afresh, as do new ones: series appear at a probe's first
  // result, so a fresh start shows no made-up value.
  for (std::size_t i = 0; i < next->probes.size(); ++i) {
    ProbeRecord& r = next->probes[i];
    const std::pair<std::string, std::string> key{r.target->name, r.spec->name};
    next->index.emplace(key, i);
    auto old = prev->index.find(key);
    if (old == prev->index.end()) continue;
    const ProbeRecord& o = prev->probes[old->second];
    if (o.labels != r.labels) continue;
    r.state = o.state;
  }
  // A render still going on keeps the previous table, unchanged from here on.
  std::lock_guard<std::mutex> lock(mu_);
  table_ = std::move(next);
}

void ProbeFamilies::record(const Sample& sample) {
  std::lock_guard<std::mutex> lock(mu_);
  Table& t = *table_;
  auto it = t.index.find(ProbeKeyView{sample.target, sample.probe});  // no key built
  if (it == t.index.end()) return;  // removed by a reload while in flight
  ProbeRecord& rec = t.probes[it->second];
  ProbeState& r = rec.state;
  KindSchema& schema = t.kinds[rec.kind];
  r.seen = true;
  r.ok = sample.ok;
  r.reason = sample.ok ? FailureReason::kNone : sample.reason;
  r.duration = std::chrono::duration<double>(sample.duration).count();
  const auto reason = static_cast<std::size_t>(sample.reason);
  if (reason < kReasonCount) ++r.results[reason];
  for (const auto& [name, value] : sample.values) {
    const std::size_t slot = KindSchema::slot(schema.values, name);
    if (slot >= r.values.size()) r.values.resize(slot + 1);
    r.values[slot] = value;
  }
  for (const auto& observation : sample.observations) {
    // Not a structured binding: clang 14 (the fuzz build) cannot capture one.
    const std::string& name = observation.first;
    const double value = observation.second;
    const std::size_t slot = KindSchema::slot(schema.observations, name);
    if (slot >= r.observations.size()) r.observations.resize(slot + 1);
    Histogram& h = r.observations[slot];
    // The first bucket whose bound is at or above the value (le), as prometheus-cpp.
    const auto b = static_cast<std::size_t>(
        std::find_if(kLatencyBuckets.begin(), kLatencyBuckets.end(), [&](double bound) { return bound >= value; }) -
        kLatencyBuckets.begin());
    ++h.counts[b];
    h.sum += value;
    ++h.count;
  }
  // Usually a probe's series are the ones it sent last time (the address
  // series of every run, an SNMP device's interfaces): new values in place,
  // no label map built per sample.
  const bool same_series =
      sample.series.size() == r.labeled.size() &&
      std::equal(sample.series.begin(), sample.series.end(), r.labeled.begin(), [&t](const LabeledValue& v, const Labeled& l) {
        const SeriesName& n = *t.series[l.series];
        return v.metric == n.metric && v.labels == n.own;
      });
  if (same_series) {
    for (std::size_t i = 0; i < sample.series.size(); ++i) {
      r.labeled[i].type = sample.series[i].type;
      r.labeled[i].value = sample.series[i].value;
    }
  } else if (!sample.series.empty() || !r.labeled.empty()) {
    // Each sample carries its probe's complete set (SNMP interfaces): rebuilt.
    std::vector<Labeled> next;
    next.reserve(sample.series.size());
    for (const auto& v : sample.series) {
      const std::uint32_t id = intern(t, v);
      // Equal merged labels are one series: the last value wins.
      auto same = std::find_if(next.begin(), next.end(), [&](const Labeled& o) {
        const SeriesName& a = *t.series[o.series];
        const SeriesName& b = *t.series[id];
        return a.metric == b.metric && a.pieces == b.pieces;
      });
      if (same != next.end()) {
        same->type = v.type;
        same->value = v.value;
        continue;
      }
      next.push_back({id, v.type, v.value});
    }
    r.labeled = std::move(next);
  }
}

namespace {
std::uint64_t total_runs(const ProbeState& s) {
  std::uint64_t n = 0;
  for (std::uint64_t c : s.results) n += c;
  return n;
}
}  // namespace

std::optional<ProbeResult> ProbeFamilies::last_result(std::string_view target, std::string_view probe) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Table& t = *table_;
  auto it = t.index.find(ProbeKeyView{target, probe});
  if (it == t.index.end()) return std::nullopt;
  const ProbeState& r = t.probes[it->second].state;
  if (!r.seen) return std::nullopt;
  ProbeResult out;
  out.ok = r.ok;
  out.reason = r.reason;
  out.duration_seconds = r.duration;
  out.runs = total_runs(r);
  out.series.reserve(r.labeled.size());
  for (const Labeled& l : r.labeled) {
    const SeriesName& n = *t.series[l.series];
    out.series.push_back({n.metric, n.own, l.value, l.type});
  }
  return out;
}

std::uint64_t ProbeFamilies::runs(std::string_view target, std::string_view probe) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = table_->index.find(ProbeKeyView{target, probe});
  return it == table_->index.end() ? 0 : total_runs(table_->probes[it->second].state);
}

std::uint32_t ProbeFamilies::intern(Table& t, const LabeledValue& v) {
  std::string key = v.metric;
  for (const auto& [k, value] : v.labels) {
    key += '\0';
    key += k;
    key += '\0';
    key += value;
  }
  auto [it, added] = t.series_index.try_emplace(std::move(key), static_cast<std::uint32_t>(t.series.size()));
  if (!added) return it->second;
  SeriesName n;
  n.metric = v.metric;
  n.own = v.labels;
  std::map<std::string, std::string> sorted;
  for (const auto& [k, value] : v.labels) sorted[k] = value;
  for (const auto& [k, value] : sorted) {
    std::string piece = k + "=\"";
    append_escaped(piece, value);
    piece += '"';
    n.pieces.emplace_back(k, std::move(piece));
  }
  t.series.push_back(std::make_shared<const SeriesName>(std::move(n)));
  return it->second;
}

namespace {
// The per-probe families in render order; each names how to write one probe's
// series. Built at render start from the kind schemas then.
struct FamilySpec {
  enum class What { kSuccess, kDuration, kFailureReason, kResults, kValue, kObservation, kLabeled };
  What what;
  std::string name;
  std::string help;
  prometheus::MetricType type;
  std::size_t kind = 0;
  std::size_t slot = 0;
  LabeledValue::Type labeled_type = LabeledValue::Type::kGauge;
};

// The declared help of kind's measure `name`, with its unit; `fallback` if undeclared.
std::string measure_help(const std::vector<KindMeasures>& measures, const std::string& kind, const std::string& name,
                         const std::string& fallback) {
  for (const auto& k : measures) {
    if (k.kind != kind) continue;
    for (const auto& m : k.measures) {
      if (m.name != name) continue;
      std::string help(m.help);
      if (!help.empty()) help[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(help[0])));
      if (!m.unit.empty()) help += " (" + std::string(m.unit) + ")";
      return help + ".";
    }
  }
  return fallback;
}

std::vector<FamilySpec> family_specs(const std::vector<KindSchema>& kinds,
                                     const std::vector<std::pair<std::string, LabeledValue::Type>>& labeled,
                                     const std::vector<KindMeasures>& measures) {
  using T = prometheus::MetricType;
  using W = FamilySpec::What;
  std::vector<FamilySpec> out = {
      {W::kSuccess, "probe_success", kHelpSuccess, T::Gauge},
      {W::kDuration, "probe_duration_seconds", kHelpDuration, T::Gauge},
      {W::kFailureReason, "nightshift_probe_failure_reason", kHelpFailureReason, T::Gauge},
      {W::kResults, "nightshift_probe_results_total", kHelpResults, T::Counter},
  };
  for (std::size_t k = 0; k < kinds.size(); ++k) {
    for (std::size_t s = 0; s < kinds[k].values.size(); ++s) {
      const std::string& v = kinds[k].values[s];
      out.push_back({W::kValue, "probe_" + kinds[k].kind + "_" + v,
                     measure_help(measures, kinds[k].kind, v,
                                  "Last measured " + v + " of the " + kinds[k].kind + " probe (see docs/metrics.md)."),
                     T::Gauge, k, s});
    }
    for (std::size_t s = 0; s < kinds[k].observations.size(); ++s) {
      const std::string& v = kinds[k].observations[s];
      out.push_back({W::kObservation, "probe_" + kinds[k].kind + "_" + v,
                     measure_help(measures, kinds[k].kind, v,
                                  "Distribution of the " + kinds[k].kind + " probe's " + v + " (see docs/metrics.md)."),
                     T::Histogram, k, s});
    }
  }
  for (const auto& [metric, type] : labeled) {
    out.push_back({W::kLabeled, metric, kHelpLabeled,
                   type == LabeledValue::Type::kCounter ? T::Counter : T::Gauge, 0, 0, type});
  }
  return out;
}

// Writes one probe's series of family `f`; false when it has none.
bool write_probe(Writer& w, const FamilySpec& f, const ProbeRecord& r, const ProbeState& s,
                 const std::vector<const SeriesName*>& series, std::string& scratch, bool& header_done) {
  using W = FamilySpec::What;
  if (!s.seen) return false;
  auto header = [&] {
    if (!header_done) w.header(f.name, f.help, f.type);
    header_done = true;
  };
  switch (f.what) {
    case W::kSuccess:
      header();
      w.head(f.name, "", r.labels);
      w.number(s.ok ? 1 : 0);
      return true;
    case W::kDuration:
      header();
      w.head(f.name, "", r.labels);
      w.number(s.duration);
      return true;
    case W::kFailureReason:
      if (s.ok) return false;
      header();
      w.head_with(f.name, r.labels, r.split, "reason", to_string(s.reason));
      w.number(1);
      return true;
    case W::kResults: {
      bool any = false;
      // In label order, as a sorted family would list them.
      static const std::vector<std::pair<std::string, std::size_t>> kByName = [] {
        std::vector<std::pair<std::string, std::size_t>> v;
        for (std::size_t i = 0; i < kReasonCount; ++i) v.emplace_back(std::string(to_string(static_cast<FailureReason>(i))), i);
        std::sort(v.begin(), v.end());
        return v;
      }();
      for (const auto& [name, i] : kByName) {
        if (s.results[i] == 0) continue;
        header();
        w.head_with(f.name, r.labels, r.split, "result", name);
        w.count(s.results[i]);
        any = true;
      }
      return any;
    }
    case W::kValue:
      if (r.kind != f.kind || f.slot >= s.values.size() || !s.values[f.slot]) return false;
      header();
      w.head(f.name, "", r.labels);
      w.number(*s.values[f.slot]);
      return true;
    case W::kObservation: {
      if (r.kind != f.kind || f.slot >= s.observations.size() || s.observations[f.slot].count == 0) return false;
      const Histogram& h = s.observations[f.slot];
      header();
      w.head(f.name, "_count", r.labels);
      w.count(h.count);
      w.head(f.name, "_sum", r.labels);
      w.number(h.sum);
      std::uint64_t cumulative = 0;
      const auto& les = bucket_labels();
      for (std::size_t b = 0; b < kBucketCount; ++b) {
        cumulative += h.counts[b];
        w.head(f.name, "_bucket", r.labels, les[b]);
        w.count(cumulative);
      }
      return true;
    }
    case W::kLabeled: {
      bool any = false;
      for (const auto& l : s.labeled) {
        // Interned after this render began: next time.
        if (l.series >= series.size() || l.type != f.labeled_type) continue;
        const SeriesName& name = *series[l.series];
        if (name.metric != f.name) continue;
        header();
        if (name.pieces.empty()) {
          w.head(f.name, "", r.labels);
        } else {
          merge_labels(scratch, r.labels, name);
          w.head(f.name, "", scratch);
        }
        w.number(l.value);
        any = true;
      }
      return any;
    }
  }
  return false;
}
}  // namespace

// Copies what family `f` reads of a probe's state, reusing `to`'s buffers.
void snapshot(const ProbeState& from, const FamilySpec& f, ProbeState& to) {
  using W = FamilySpec::What;
  to.seen = from.seen;
  to.ok = from.ok;
  to.reason = from.reason;
  to.duration = from.duration;
  switch (f.what) {
    case W::kResults:
      to.results = from.results;
      break;
    case W::kValue:
      to.values = from.values;
      break;
    case W::kObservation:
      to.observations = from.observations;
      break;
    case W::kLabeled:
      to.labeled = from.labeled;
      break;
    default:
      break;
  }
}

void ProbeFamilies::render(MetricsFormat format, const MetricsSink& sink) const {
  std::shared_ptr<const Table> table;
  std::vector<KindSchema> kinds;
  std::vector<const SeriesName*> series;  // owned by *table
  std::vector<std::pair<std::string, LabeledValue::Type>> labeled;
  {
    std::lock_guard<std::mutex> lock(mu_);
    table = table_;
    kinds = table_->kinds;
    series.reserve(table_->series.size());
    for (const auto& name : table_->series) series.push_back(name.get());
    for (const auto& r : table_->probes) {
      for (const auto& l : r.state.labeled) {
        const std::pair<std::string, LabeledValue::Type> key{series[l.series]->metric, l.type};
        if (std::find(labeled.begin(), labeled.end(), key) == labeled.end()) labeled.push_back(key);
      }
    }
  }
  Writer w(format, sink);
  // A few hundred probes at a time: their state is copied under the lock and
  // written out without it, so the reactor's record() never waits for text
  // (nor for a render thread the machine preempted while holding the lock).
  constexpr std::size_t kChunk = 256;
  std::vector<ProbeState> copies(kChunk);
  std::string scratch;
  for (const FamilySpec& f : family_specs(kinds, labeled, measures_)) {
    bool header_done = false;
    for (std::size_t begin = 0; begin < table->probes.size(); begin += kChunk) {
      const std::size_t end = std::min(table->probes.size(), begin + kChunk);
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (std::size_t i = begin; i < end; ++i) snapshot(table->probes[i].state, f, copies[i - begin]);
      }
      for (std::size_t i = begin; i < end; ++i) {
        if (write_probe(w, f, table->probes[i], copies[i - begin], series, scratch, header_done)) w.maybe_flush();
      }
    }
  }
  // Target info: fixed per config, no lock needed beyond holding the table.
  if (!table->targets.empty()) {
    w.header("nightshift_target_info", kHelpTargetInfo, prometheus::MetricType::Gauge);
    for (const auto& t : table->targets) {
      w.head("nightshift_target_info", "", t.labels);
      w.number(1);
      w.maybe_flush();
    }
  }
  w.flush();
}

std::vector<prometheus::MetricFamily> ProbeFamilies::Collect() const {
  std::lock_guard<std::mutex> lock(mu_);
  const Table& table = *table_;
  std::vector<std::pair<std::string, LabeledValue::Type>> labeled;
  for (const auto& r : table.probes) {
    for (const auto& l : r.state.labeled) {
      const std::pair<std::string, LabeledValue::Type> key{table.series[l.series]->metric, l.type};
      if (std::find(labeled.begin(), labeled.end(), key) == labeled.end()) labeled.push_back(key);
    }
  }
  auto to_client = [](const std::map<std::string, std::string>& labels) {
    prometheus::ClientMetric m;
    for (const auto& [k, v] : labels) m.label.push_back({k, v});
    return m;
  };
  using W = FamilySpec::What;
  std::vector<prometheus::MetricFamily> out;
  for (const FamilySpec& f : family_specs(table.kinds, labeled, measures_)) {
    prometheus::MetricFamily fam;
    fam.name = f.name;
    fam.help = f.help;
    fam.type = f.type;
    for (const auto& rec : table.probes) {
      const ProbeState& r = rec.state;
      if (!r.seen) continue;
      const auto labels = probe_labels(*rec.target, *rec.spec, agent_);
      switch (f.what) {
        case W::kSuccess:
        case W::kDuration: {
          auto m = to_client(labels);
          m.gauge.value = f.what == W::kSuccess ? (r.ok ? 1 : 0) : r.duration;
          fam.metric.push_back(std::move(m));
          break;
        }
        case W::kFailureReason:
          if (!r.ok) {
            auto l = labels;
            l["reason"] = std::string(to_string(r.reason));
            auto m = to_client(l);
            m.gauge.value = 1;
            fam.metric.push_back(std::move(m));
          }
          break;
        case W::kResults:
          for (std::size_t i = 0; i < kReasonCount; ++i) {
            if (r.results[i] == 0) continue;
            auto l = labels;
            l["result"] = std::string(to_string(static_cast<FailureReason>(i)));
            auto m = to_client(l);
            m.counter.value = static_cast<double>(r.results[i]);
            fam.metric.push_back(std::move(m));
          }
          break;
        case W::kValue:
          if (rec.kind == f.kind && f.slot < r.values.size() && r.values[f.slot]) {
            auto m = to_client(labels);
            m.gauge.value = *r.values[f.slot];
            fam.metric.push_back(std::move(m));
          }
          break;
        case W::kObservation:
          if (rec.kind == f.kind && f.slot < r.observations.size() && r.observations[f.slot].count > 0) {
            const Histogram& h = r.observations[f.slot];
            auto m = to_client(labels);
            m.histogram.sample_count = h.count;
            m.histogram.sample_sum = h.sum;
            std::uint64_t cumulative = 0;
            for (std::size_t b = 0; b < kBucketCount; ++b) {
              cumulative += h.counts[b];
              m.histogram.bucket.push_back(
                  {cumulative, b < kLatencyBuckets.size() ? kLatencyBuckets[b] : std::numeric_limits<double>::infinity()});
            }
            fam.metric.push_back(std::move(m));
          }
          break;
        case W::kLabeled:
          for (const auto& l : r.labeled) {
            const SeriesName& name = *table.series[l.series];
            if (name.metric != f.name || l.type != f.labeled_type) continue;
            std::map<std::string, std::string> merged = labels;
            for (const auto& [k, v] : name.own) merged[k] = v;
            auto m = to_client(merged);
            if (l.type == LabeledValue::Type::kCounter) m.counter.value = l.value;
            else m.gauge.value = l.value;
            fam.metric.push_back(std::move(m));
          }
          break;
      }
    }
    if (!fam.metric.empty()) out.push_back(std::move(fam));
  }
  if (!table.targets.empty()) {
    prometheus::MetricFamily fam;
    fam.name = "nightshift_target_info";
    fam.help = kHelpTargetInfo;
    fam.type = prometheus::MetricType::Gauge;
    for (const auto& t : table.targets) {
      auto m = to_client(info_labels(*t.target, agent_));
      m.gauge.value = 1;
      fam.metric.push_back(std::move(m));
    }
    out.push_back(std::move(fam));
  }
  return out;
}

// ---------------------------------------------------------------------------
// AgentMetrics

AgentMetrics::AgentMetrics(std::string agent_name, std::vector<KindMeasures> measures)
    : agent_(std::move(agent_name)),
      registry_(std::make_shared<prometheus::Registry>()),
      probes_(agent_, std::move(measures)),
      probes_sent_(prometheus::BuildCounter()
                       .Name("nightshift_probes_sent_total")
                       .Help("Probe runs started, by probe kind.")
                       .Register(*registry_)),
      in_flight_(prometheus::BuildGauge()
                     .Name("nightshift_probes_in_flight")
                     .Help("Probe runs started and not yet completed, by probe kind.")
                     .Register(*registry_)),
      reloads_(prometheus::BuildCounter()
                   .Name("nightshift_config_reloads_total")
                   .Help("Configuration reloads (SIGHUP), by result.")
                   .Register(*registry_)),
      alerts_(prometheus::BuildGauge()
                  .Name("nightshift_alerts")
                  .Help("Alerts now pending or firing (value 1), by rule, target, probe and state.")
                  .Register(*registry_)),
      alert_changes_(prometheus::BuildCounter()
                         .Name("nightshift_alert_changes_total")
                         .Help("Alert state changes, by rule and the state entered.")
                         .Register(*registry_)),
      incident_events_(prometheus::BuildCounter()
                           .Name("nightshift_incident_events_total")
                           .Help("Incident lifecycle events (declared, updated, resolved, reopened, ...), by severity.")
                           .Register(*registry_)),
      open_incidents_(prometheus::BuildGauge()
                          .Name("nightshift_incidents_open")
                          .Help("Open incidents, by severity.")
                          .Register(*registry_)),
      confirmations_(prometheus::BuildCounter()
                         .Name("nightshift_confirmations_total")
                         .Help("Confirmation bursts after a miss, by kind and result (started, answered, unanswered).")
                         .Register(*registry_)) {
  const prometheus::Labels agent_label{{"agent", agent_}};
  scheduler_lag_ = &prometheus::BuildHistogram()
                        .Name("nightshift_scheduler_lag_seconds")
                        .Help("How late probes started against their scheduled time.")
                        .Register(*registry_)
                        .Add(agent_label, prometheus::Histogram::BucketBoundaries{
                                              0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                              0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  auto& reload_ok = prometheus::BuildGauge()
                        .Name("nightshift_config_last_reload_successful")
                        .Help("Whether the last configuration load succeeded (1) or was rejected (0).")
                        .Register(*registry_);
  reload_ok_ = &reload_ok.Add(agent_label);
  reload_ok_->Set(1);
  reload_time_ = &prometheus::BuildGauge()
                      .Name("nightshift_config_last_reload_success_timestamp_seconds")
                      .Help("When the configuration was last loaded successfully, as a Unix time.")
                      .Register(*registry_)
                      .Add(agent_label);
  targets_count_ = &prometheus::BuildGauge()
                        .Name("nightshift_targets")
                        .Help("Configured targets.")
                        .Register(*registry_)
                        .Add(agent_label);
  accelerated_ = &prometheus::BuildGauge()
                     .Name("nightshift_probes_accelerated")
                     .Help("Probes running more often while uncertain (an alert that may page, or a failed last run).")
                     .Register(*registry_)
                     .Add(agent_label);
  uncertain_ = &prometheus::BuildGauge()
                   .Name("nightshift_probes_uncertain")
                   .Help("Probes the agent is uncertain about: accelerated, or waiting for a place (at most 64 accelerate).")
                   .Register(*registry_)
                   .Add(agent_label);
  probes_count_ = &prometheus::BuildGauge()
                       .Name("nightshift_probes_configured")
                       .Help("Configured probes across all targets.")
                       .Register(*registry_)
                       .Add(agent_label);
  time_to_declare_ = &prometheus::BuildHistogram()
                          .Name("nightshift_incident_time_to_declare_seconds")
                          .Help("From an incident's first anomaly to its declaration.")
                          .Register(*registry_)
                          .Add(agent_label, prometheus::Histogram::BucketBoundaries{
                                                0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800});
  store_errors_ = &prometheus::BuildCounter()
                       .Name("nightshift_store_errors_total")
                       .Help("Failed writes to the state store (disk full, I/O errors); probing and alerting go on.")
                       .Register(*registry_)
                       .Add(agent_label);
  for (Severity severity : kSeverities) {
    open_incidents_.Add({{"severity", std::string(to_string(severity))}, {"agent", agent_}}).Set(0);
  }
  prometheus::BuildGauge()
      .Name("nightshift_build_info")
      .Help("Build information (value 1).")
      .Register(*registry_)
      .Add({{"agent", agent_}, {"version", kVersion}, {"revision", kRevision}, {"compiler", kCompiler}})
      .Set(1);
}

void AgentMetrics::render(MetricsFormat format, const MetricsSink& sink) const {
  probes_.render(format, sink);
  auto families = registry_->Collect();
  auto process = process_.Collect();
  families.insert(families.end(), std::make_move_iterator(process.begin()), std::make_move_iterator(process.end()));
  write_families(families, format, sink);
  if (format == MetricsFormat::kOpenMetrics) sink("# EOF\n");
}

std::string AgentMetrics::render(MetricsFormat format) const {
  std::string out;
  render(format, [&out](std::string_view piece) { out += piece; });
  return out;
}

void AgentMetrics::sync_targets(const std::vector<std::shared_ptr<const Target>>& targets) {
  probes_.sync_targets(targets);
  std::size_t probe_count = 0;
  for (const auto& t : targets) probe_count += t->probes.size();
  targets_count_->Set(static_cast<double>(targets.size()));
  probes_count_->Set(static_cast<double>(probe_count));
}

AgentMetrics::KindSeries& AgentMetrics::kind_series(const std::string& kind) {
  if (last_kind_.first != nullptr && *last_kind_.first == kind) return *last_kind_.second;
  auto [it, created] = by_kind_.try_emplace(kind);
  if (created) {
    it->second.sent = &probes_sent_.Add({{"kind", kind}, {"agent", agent_}});
  }
  last_kind_ = {&it->first, &it->second};
  return it->second;
}

void AgentMetrics::probe_sent(const std::string& kind) { kind_series(kind).sent->Increment(); }

void AgentMetrics::set_in_flight(const std::string& kind, double n) {
  KindSeries& k = kind_series(kind);
  if (k.in_flight == nullptr) k.in_flight = &in_flight_.Add({{"kind", kind}, {"agent", agent_}});
  k.in_flight->Set(n);
}

void AgentMetrics::alert(const rules::AlertEvent& event) {
  const auto key = std::make_tuple(event.rule, event.target, event.probe);
  if (auto it = alert_series_.find(key); it != alert_series_.end()) {
    alerts_.Remove(it->second);
    alert_series_.erase(it);
  }
  const std::string state(rules::to_string(event.change.to));
  if (event.change.to != rules::AlertPhase::kInactive) {
    auto& g = alerts_.Add({{"rule", event.rule},
                           {"severity", std::string(to_string(event.severity))},
                           {"target", event.target},
                           {"probe", event.probe},
                           {"state", state},
                           {"agent", agent_}});
    g.Set(1);
    alert_series_[key] = &g;
  }
  if (event.change.from != event.change.to) {
    alert_changes_.Add({{"rule", event.rule}, {"to", state}, {"agent", agent_}}).Increment();
  }
}

void AgentMetrics::incident(const IncidentEvent& event) {
  incident_events_.Add({{"event", std::string(to_string(event.kind))}, {"severity", std::string(to_string(event.incident.severity))}, {"agent", agent_}})
      .Increment();
  if (event.kind == IncidentEvent::Kind::kDeclared) {
    time_to_declare_->Observe(
        std::chrono::duration<double>(event.incident.declared_at - event.incident.started_at).count());
  }
}

void AgentMetrics::set_open_incidents(const std::map<Severity, int>& by_severity) {
  for (Severity severity : kSeverities) {
    auto it = by_severity.find(severity);
    open_incidents_.Add({{"severity", std::string(to_string(severity))}, {"agent", agent_}})
        .Set(it == by_severity.end() ? 0 : it->second);
  }
}

void AgentMetrics::confirmation_started(const std::string& kind) {
  confirmations_.Add({{"kind", kind}, {"result", "started"}, {"agent", agent_}}).Increment();
}

void AgentMetrics::confirmation_done(const std::string& kind, bool answered) {
  confirmations_.Add({{"kind", kind}, {"result", answered ? "answered" : "unanswered"}, {"agent", agent_}})
      .Increment();
}

void AgentMetrics::config_reload(bool success, double unix_time) {
  reloads_.Add({{"result", success ? "success" : "failure"}, {"agent", agent_}}).Increment();
  reload_ok_->Set(success ? 1 : 0);
  if (success) reload_time_->Set(unix_time);
}

void AgentMetrics::tls_certificate(double not_after_unix) {
  std::lock_guard<std::mutex> lock(tls_mu_);
  if (tls_expiry_ == nullptr) {
    tls_expiry_ = &prometheus::BuildGauge()
                       .Name("nightshift_http_tls_certificate_expiry_timestamp_seconds")
                       .Help("When the certificate the HTTPS listener presents expires (notAfter), as a Unix time.")
                       .Register(*registry_)
                       .Add({{"agent", agent_}});
    tls_reload_ok_ = &prometheus::BuildGauge()
                          .Name("nightshift_http_tls_last_reload_successful")
                          .Help("Whether the last re-read of the HTTPS certificate and key (SIGHUP) succeeded (1) or "
                                "failed and the previous pair is still presented (0).")
                          .Register(*registry_)
                          .Add({{"agent", agent_}});
    tls_reload_ok_->Set(1);
  }
  tls_expiry_->Set(not_after_unix);
}

void AgentMetrics::tls_reload(bool success) {
  std::lock_guard<std::mutex> lock(tls_mu_);
  if (tls_reload_ok_ != nullptr) tls_reload_ok_->Set(success ? 1 : 0);
}

// ---------------------------------------------------------------------------
// The /metrics endpoint

namespace {
// A media range or coding with its q value, from an Accept-style header.
struct Weighted {
  std::string_view value;
  double q = 1;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<Weighted> parse_weighted(std::string_view header) {
  std::vector<Weighted> out;
  while (!header.empty()) {
    const std::size_t comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    Weighted w;
    const std::size_t semi = item.find(';');
    w.value = trim(item.substr(0, semi));
    std::string_view params = semi == std::string_view::npos ? std::string_view{} : item.substr(semi + 1);
    while (!params.empty()) {
      const std::size_t next = params.find(';');
      std::string_view p = trim(params.substr(0, next));
      params = next == std::string_view::npos ? std::string_view{} : params.substr(next + 1);
      if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
        double q = 0;
        const auto [end, ec] = std::from_chars(p.data() + 2, p.data() + p.size(), q);
        w.q = ec == std::errc() ? std::clamp(q, 0.0, 1.0) : 0;
      }
    }
    if (!w.value.empty()) out.push_back(w);
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// Compresses into a string as the pieces arrive: Intel's ISA-L deflate
// (igzip) at level 1, a gzip stream any inflater reads. About three times
// zlib's level 1 speed on exposition text, and a little smaller: a gzip scrape
// of 10 000 targets spends most of its time compressing.
class GzipSink {
 public:
  explicit GzipSink(std::string& out) : out_(out), level_buf_(ISAL_DEF_LVL1_DEFAULT) {
    isal_deflate_init(&z_);
    z_.level = 1;
    z_.level_buf = level_buf_.data();
    z_.level_buf_size = static_cast<std::uint32_t>(level_buf_.size());
    z_.gzip_flag = IGZIP_GZIP;
    z_.flush = NO_FLUSH;
  }
  GzipSink(const GzipSink&) = delete;
  GzipSink& operator=(const GzipSink&) = delete;

  void write(std::string_view piece) { run(piece, false); }
  void finish() { run({}, true); }

 private:
  void run(std::string_view in, bool last) {
    z_.next_in = reinterpret_cast<std::uint8_t*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<std::uint32_t>(in.size());
    z_.end_of_stream = last ? 1 : 0;
    for (;;) {
      const std::size_t before = out_.size();
      const std::size_t room = std::max<std::size_t>(in.size() / 4, 16 * 1024);
      out_.resize(before + room);
      z_.next_out = reinterpret_cast<std::uint8_t*>(out_.data() + before);
      z_.avail_out = static_cast<std::uint32_t>(room);
      const int rc = isal_deflate(&z_);
      out_.resize(before + (room - z_.avail_out));
      if (rc != COMP_OK) throw std::runtime_error("isa-l: deflate failed (" + std::to_string(rc) + ")");
      if (last ? z_.internal_state.state == ZSTATE_END : (z_.avail_in == 0 && z_.avail_out != 0)) return;
    }
  }

  isal_zstream z_{};
  std::string& out_;
  std::vector<std::uint8_t> level_buf_;
};
}  // namespace

std::string gzip_compress(std::string_view text) {
  std::string out;
  GzipSink z(out);
  z.write(text);
  z.finish();
  return out;
}

MetricsFormat MetricsEndpoint::format_for(std::string_view accept) {
  double openmetrics = 0, text = 0;
  for (const Weighted& w : parse_weighted(accept)) {
    if (iequals(w.value, "application/openmetrics-text")) {
      openmetrics = std::max(openmetrics, w.q);
    } else if (iequals(w.value, "text/plain") || iequals(w.value, "text/*") || w.value == "*/*") {
      text = std::max(text, w.q);
    }
  }
  return openmetrics > 0 && openmetrics >= text ? MetricsFormat::kOpenMetrics : MetricsFormat::kText;
}

bool MetricsEndpoint::wants_gzip(std::string_view accept_encoding) {
  double gzip = -1, any = -1;
  for (const Weighted& w : parse_weighted(accept_encoding)) {
    if (iequals(w.value, "gzip") || iequals(w.value, "x-gzip")) gzip = std::max(gzip, w.q);
    else if (w.value == "*") any = std::max(any, w.q);
  }
  return gzip >= 0 ? gzip > 0 : any > 0;
}

void MetricsEndpoint::produce(MetricsFormat format, bool gzip, const HttpResponse::Emit& emit) const {
  // Pieces of about the render's own 64 KiB: few enough calls, little held.
  constexpr std::size_t kPiece = 64 * 1024;
  if (gzip) {
    std::string out;
    out.reserve(kPiece + 32 * 1024);
    GzipSink z(out);
    metrics_.render(format, [&](std::string_view piece) {
      z.write(piece);
      if (out.size() >= kPiece) {
        emit(out);
        out.clear();
      }
    });
    z.finish();
    emit(out);
  } else {
    metrics_.render(format, [&emit](std::string_view piece) { emit(piece); });
  }
  ::malloc_trim(0);  // the render's temporaries are gone: give their pages back
}

HttpResponse MetricsEndpoint::serve(const HttpRequest& req) {
  const MetricsFormat format = format_for(req.header("accept"));
  const bool gzip = wants_gzip(req.header("accept-encoding"));
  HttpResponse r;
  r.content_type = format == MetricsFormat::kOpenMetrics
                       ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                       : "text/plain; version=0.0.4; charset=utf-8";
  r.headers.emplace_back("Vary", "Accept, Accept-Encoding");
  if (gzip) r.headers.emplace_back("Content-Encoding", "gzip");
  // Written while it is sent: never whole in memory, whatever the target count.
  r.stream = [this, format, gzip](const HttpResponse::Emit& emit) { produce(format, gzip, emit); };
  return r;
}

}  // namespace nightshift
