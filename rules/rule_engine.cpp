#include "rules/rule_engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <unordered_set>
#include <sstream>
#include <stdexcept>

namespace nightshift::rules {

const std::vector<Variable>& engine_variables() {
  static const std::vector<Variable> kVariables = {
      {"success", ValueType::kNumber, "1 if the last run succeeded, else 0", ""},
      {"consecutive_failures", ValueType::kNumber, "failed runs in a row", "count"},
      {"failure_ratio", ValueType::kNumber, "failed runs / runs over the rule's window", "ratio"},
      {"loss", ValueType::kNumber,
       "mean loss_ratio over the window's rounds that got through (ICMP: a round with no reply, or a "
       "confirmation, is target_down's evidence, not loss); other kinds: failure_ratio",
       "ratio"},
      {"rtt_avg", ValueType::kNumber, "mean round-trip time over the window (ICMP replies; TCP connect time)",
       "seconds"},
      {"rtt_p50", ValueType::kNumber, "median round-trip time over the window", "seconds"},
      {"rtt_p95", ValueType::kNumber, "95th percentile round-trip time over the window", "seconds"},
      {"rtt_p99", ValueType::kNumber, "99th percentile round-trip time over the window", "seconds"},
      {"rtt_baseline", ValueType::kNumber, "the target's learned normal median RTT (none before 5 minutes of samples)",
       "seconds"},
      {"rtt_ratio", ValueType::kNumber, "rtt_p95 over the learned baseline", ""},
      {"duration", ValueType::kNumber, "seconds the last run took", "seconds"},
      {"samples", ValueType::kNumber, "runs in the window", "count"},
      {"confirmed_down", ValueType::kBool, "the last sample was a confirmation burst that got no answer", ""},
      {"reason", ValueType::kString, "last failure reason, \"ok\" if none", ""},
      {"kind", ValueType::kString, "probe kind", ""},
  };
  return kVariables;
}

std::vector<Variable> variables(std::span<const KindMeasures> kinds) {
  std::vector<Variable> out = engine_variables();
  auto type_of = [](MeasureType t) {
    switch (t) {
      case MeasureType::kBool: return ValueType::kBool;
      case MeasureType::kString: return ValueType::kString;
      case MeasureType::kNumber: break;
    }
    return ValueType::kNumber;
  };
  for (const auto& kind : kinds) {
    for (const auto& m : kind.measures) {
      if (m.exported != Measure::Export::kGauge) continue;
      auto same = std::find_if(out.begin(), out.end(), [&](const Variable& v) { return v.name == m.name; });
      if (same != out.end()) {
        if (same->type != type_of(m.type)) {
          throw std::logic_error("measure " + std::string(m.name) + " of kind " + std::string(kind.kind) +
                                 " is declared with two types");
        }
        same->help += "; " + std::string(kind.kind) + ": " + std::string(m.help);
        continue;
      }
      out.push_back({std::string(m.name), type_of(m.type), std::string(m.help) + " (" + std::string(kind.kind) + ")",
                     std::string(m.unit)});
    }
  }
  return out;
}

namespace {
// Loss ratios are summed as integers (the float's value x 2^40, exact for any
// ratio of whole packets): adding and removing entries leaves no rounding
// behind, and the sum over a window equals a fresh double sum of its floats.
constexpr double kLossScale = 1099511627776.0;  // 2^40
static_assert(kRttsPerEntry < 8, "an entry's RTT count has three bits");
}  // namespace

// The variables over one window, as seen from one rule (its own window length).
// The counts come from the rule's span; RTTs are gathered and sorted on first
// use only (target_down reads none of them).
class RuleEngine::WindowEnv final : public Environment {
 public:
  // `span` is up to date for this evaluation (advance()d to its window's start).
  WindowEnv(const Window& w, const Window::Span& span, SteadyTime now, std::vector<double>& rtts)
      : w_(w), span_(span), now_(now), rtts_(rtts) {}

  std::optional<Value> get(std::string_view name) const override {
    const Window::Last& last = w_.last;
    if (name == "success") return Value(last.ok ? 1.0 : 0.0);
    if (name == "consecutive_failures") return Value(static_cast<double>(w_.consecutive_failures));
    if (name == "samples") return Value(static_cast<double>(counts().runs));
    if (name == "confirmed_down") {
      bool confirmation = false;
      for (const auto& [k, v] : last.values) confirmation |= k == "confirmation" && v == 1.0;
      return Value(confirmation && !last.ok);
    }
    if (name == "reason") return Value(std::string(to_string(last.reason)));
    if (name == "kind") return Value(last.kind);
    if (name == "duration") return Value(std::chrono::duration<double>(last.duration).count());
    if (name == "failure_ratio") {
      const Counts c = counts();
      if (c.runs == 0) return std::nullopt;
      return Value(static_cast<double>(c.failures) / static_cast<double>(c.runs));
    }
    if (name == "loss") {
      const Counts c = counts();
      if (c.loss_runs == 0) return std::nullopt;
      return Value(c.loss_sum / static_cast<double>(c.loss_runs));
    }
    if (name == "rtt_baseline" || name == "rtt_ratio") {
      if (w_.baseline_samples < kBaselineWarmupSamples || now_ - w_.baseline_first < kBaselineWarmup ||
          w_.rtt_baseline <= 0) {
        return std::nullopt;
      }
      if (name == "rtt_baseline") return Value(w_.rtt_baseline);
      auto p95 = get("rtt_p95");
      if (!p95) return std::nullopt;
      return Value(std::get<double>(*p95) / w_.rtt_baseline);
    }
    if (name.substr(0, 4) == "rtt_") {
      std::vector<double>& rtts = gathered_rtts();
      if (rtts.empty()) return std::nullopt;
      if (name == "rtt_avg") {
        // Summed in ascending order, as always: the same last bits.
        if (!sorted_) std::sort(rtts.begin(), rtts.end());
        sorted_ = true;
        double sum = 0;
        for (double r : rtts) sum += r;
        return Value(sum / static_cast<double>(rtts.size()));
      }
      static constexpr std::array<std::pair<std::string_view, double>, 3> kQuantiles = {
          {{"rtt_p50", 0.50}, {"rtt_p95", 0.95}, {"rtt_p99", 0.99}}};
      std::size_t which = 0;
      while (which < kQuantiles.size() && kQuantiles[which].first != name) ++which;
      if (which == kQuantiles.size()) return std::nullopt;
      const double q = kQuantiles[which].second;
      if (quantiles_[which]) return Value(*quantiles_[which]);
      // Nearest rank: the smallest value with at least q of the values at or
      // below it. nth_element finds the value a full sort would put there.
      const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(rtts.size())));
      const auto at = rtts.begin() + static_cast<std::ptrdiff_t>(rank == 0 ? 0 : rank - 1);
      if (!sorted_) std::nth_element(rtts.begin(), at, rtts.end());
      quantiles_[which] = *at;
      return Value(*at);
    }
    for (const auto& [k, v] : last.values) {
      if (k == name) return Value(v);
    }
    return std::nullopt;
  }

 private:
  struct Counts {
    std::size_t runs = 0;
    std::size_t failures = 0;
    std::size_t loss_runs = 0;  // rounds that count for loss (got through, not a confirmation)
    double loss_sum = 0;
  };
  Counts counts() const {
    return {span_.runs, span_.failures, span_.loss_runs, static_cast<double>(span_.loss_fixed) / kLossScale};
  }
  std::vector<double>& gathered_rtts() const {
    if (!rtts_gathered_) {
      rtts_.clear();
      for (std::size_t i = w_.rtts.size() - span_.rtts; i < w_.rtts.size(); ++i) rtts_.push_back(w_.rtts[i]);
      rtts_gathered_ = true;
    }
    return rtts_;
  }

  const Window& w_;
  const Window::Span& span_;
  const SteadyTime now_;
  mutable bool rtts_gathered_ = false;
  mutable bool sorted_ = false;
  std::vector<double>& rtts_;  // the engine's, reused: no allocation per evaluation
  mutable std::array<std::optional<double>, 3> quantiles_;  // p50, p95, p99
};

std::string fingerprint(const std::vector<RuleSpec>& rules) {
  std::ostringstream out;
  for (const auto& r : rules) {
    out << r.name << '\x1f' << r.condition.text() << '\x1f' << r.timing.for_duration.count() << '\x1f'
        << r.timing.clear_for.count() << '\x1f' << r.timing.max_flips << '\x1f' << r.timing.flap_window.count()
        << '\x1f' << to_string(r.severity) << '\x1f' << r.window.count();
    for (const auto& [k, v] : r.selector) out << '\x1f' << k << '=' << v;
    out << '\x1e';
  }
  return out.str();
}

std::string describe_values(const Condition& condition, const Environment& env) {
  std::ostringstream out;
  bool first = true;
  for (const auto& name : condition.variables()) {
    out << (first ? "" : " ") << name << "=";
    first = false;
    auto v = env.get(name);
    if (!v) {
      out << "none";
    } else if (const double* d = std::get_if<double>(&*v)) {
      out << *d;
    } else if (const std::string* s = std::get_if<std::string>(&*v)) {
      out << '"' << *s << '"';
    } else {
      out << (std::get<bool>(*v) ? "true" : "false");
    }
  }
  return out.str();
}

namespace {
// "35 %", "120 ms", "3": a value as the person paged reads it, by its unit.
std::string in_words(const std::string& name, double v) {
  std::string unit;
  for (const auto& var : engine_variables()) {
    if (var.name == name) unit = var.unit;
  }
  char buf[48];
  if (unit == "ratio") {
    std::snprintf(buf, sizeof buf, "%.0f %%", v * 100);
  } else if (unit == "seconds") {
    if (v < 1) std::snprintf(buf, sizeof buf, "%.3g ms", v * 1000);
    else std::snprintf(buf, sizeof buf, "%.3g s", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  }
  return buf;
}

// The failure as the person paged says it, by reason and kind.
std::string failure_cause(const Sample& sample) {
  switch (sample.reason) {
    case FailureReason::kTimeout:
      if (sample.kind == "icmp") return "unreachable";
      if (sample.kind == "snmp") return "not answering SNMP";
      return "not answering";
    case FailureReason::kRefused: return "refusing connections";
    case FailureReason::kUnreachable: return "unreachable";
    case FailureReason::kTtlExceeded: return "unreachable (TTL exceeded on the way)";
    case FailureReason::kDnsFailure: return "name does not resolve";
    case FailureReason::kBannerMismatch: return "answering with an unexpected banner";
    case FailureReason::kConnectionClosed: return "closing connections early";
    case FailureReason::kAuthFailure: return "refusing our credentials";
    case FailureReason::kTlsHandshake: return "failing the TLS handshake";
    case FailureReason::kTlsVerify: return "presenting a certificate that does not verify";
    case FailureReason::kResourceLimit: return "not probed: this agent ran out of sockets";
    case FailureReason::kError:
    case FailureReason::kNone: break;
  }
  return "failing";
}

// The built-in rules in words; any other rule by its name.
std::string rule_cause(const std::string& rule) {
  static const std::pair<const char*, const char*> kWords[] = {
      {"target_down", "down"},
      {"packet_loss", "losing packets"},
      {"latency_anomaly", "slower than its normal"},
      {"interface_down", "has an interface down"},
      {"device_rebooted", "rebooted"},
      {"traffic_drop", "traffic dropped"},
  };
  for (const auto& [name, words] : kWords) {
    if (rule == name) return words;
  }
  std::string words = rule;
  std::replace(words.begin(), words.end(), '_', ' ');
  return words;
}

bool about_failures(const Condition& condition) {
  for (const auto& name : condition.variables()) {
    if (name == "success" || name == "consecutive_failures" || name == "confirmed_down" ||
        name == "failure_ratio" || name == "reason") {
      return true;
    }
  }
  return false;
}
}  // namespace

std::string operator_summary(const RuleSpec& rule, const Target& target, const Sample& sample,
                             const Environment& env) {
  // A host is its name; a service or device probe adds the probe ("api tcp_443").
  const std::string subject = sample.kind == "icmp" ? target.name : target.name + " " + sample.probe;
  if (!sample.ok && about_failures(rule.condition)) {
    std::string evidence = sample.detail.empty() ? std::string(to_string(sample.reason)) : sample.detail;
    bool confirmation = false;
    for (const auto& [name, value] : sample.values) confirmation = confirmation || (name == "confirmation" && value == 1.0);
    if (!confirmation) {
      if (auto n = env.get("consecutive_failures"); n && std::get_if<double>(&*n) && *std::get_if<double>(&*n) >= 2) {
        evidence = in_words("consecutive_failures", *std::get_if<double>(&*n)) + " failed runs in a row; last: " + evidence;
      }
    }
    return subject + " " + failure_cause(sample) + ": " + evidence;
  }
  std::string values;
  for (const auto& name : rule.condition.variables()) {
    auto v = env.get(name);
    if (!v) continue;
    std::string text;
    if (const double* d = std::get_if<double>(&*v)) text = in_words(name, *d);
    else if (const std::string* str = std::get_if<std::string>(&*v)) text = *str;
    else text = std::get<bool>(*v) ? "yes" : "no";
    values += (values.empty() ? "" : ", ") + name + " " + text;
  }
  std::string out = subject + " " + rule_cause(rule.name);
  if (!values.empty()) out += ": " + values;
  if (!sample.ok) out += "; last run failed: " + (sample.detail.empty() ? std::string(to_string(sample.reason)) : sample.detail);
  return out;
}

RuleEngine::RuleEngine(const Clock& clock, std::vector<RuleSpec> rules) : clock_(clock), rules_(std::move(rules)) {
  for (const auto& r : rules_) {
    max_window_ = std::max(max_window_, r.window);
    auto same = std::find(span_windows_.begin(), span_windows_.end(), r.window);
    span_of_.push_back(static_cast<std::size_t>(same - span_windows_.begin()));
    if (same == span_windows_.end()) span_windows_.push_back(r.window);
  }
}

void RuleEngine::push(Window& w, const Window::Entry& entry, const float* rtts) {
  const std::uint64_t seq = w.first_seq + w.entries.size();
  w.entries.push_back(entry);
  for (std::uint8_t i = 0; i < entry.rtt_count(); ++i) w.rtts.push_back(rtts[i]);
  for (Window::Span& s : w.spans) {
    if (s.runs == 0) s.first = seq;  // an empty span starts at the next entry
    ++s.runs;
    if (!entry.ok()) ++s.failures;
    if (entry.counts_loss()) {
      ++s.loss_runs;
      s.loss_fixed += std::llround(static_cast<double>(entry.loss) * kLossScale);
    }
    s.rtts += entry.rtt_count();
  }
}

void RuleEngine::take_out(Window::Span& s, const Window::Entry& e) {
  --s.runs;
  if (!e.ok()) --s.failures;
  if (e.counts_loss()) {
    --s.loss_runs;
    s.loss_fixed -= std::llround(static_cast<double>(e.loss) * kLossScale);
  }
  s.rtts -= e.rtt_count();
  ++s.first;
}

void RuleEngine::drop_oldest(Window& w) {
  const Window::Entry& e = w.entries.front();
  for (Window::Span& s : w.spans) {
    if (s.runs > 0 && s.first == w.first_seq) take_out(s, e);
  }
  w.rtts.pop_front(e.rtt_count());
  w.entries.pop_front();
  ++w.first_seq;
}

std::uint32_t RuleEngine::entry_time(Window& w, SteadyTime now) {
  constexpr std::int64_t kLimit = (std::int64_t{1} << Window::kEntryTimeBits) - 1;
  const auto since = [&](SteadyTime t) { return std::chrono::duration_cast<std::chrono::milliseconds>(now - t).count(); };
  if (w.entries.empty()) w.epoch = now;
  if (since(w.epoch) > kLimit) {
    // Every 37 hours or so. Entries older than that leave the window first:
    // only a rule window longer than that had them.
    while (!w.entries.empty() && since(w.time_of(w.entries.front())) > kLimit) drop_oldest(w);
    if (w.entries.empty()) {
      w.epoch = now;
    } else {
      const std::uint32_t shift = w.entries.front().at_ms();
      for (std::size_t i = 0; i < w.entries.size(); ++i) w.entries[i].packed -= shift << Window::Entry::kFlagBits;
      w.epoch += std::chrono::milliseconds(shift);
    }
  }
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(since(w.epoch), 0, kLimit));
}

void RuleEngine::advance(Window& w, Window::Span& span, SteadyTime since) {
  while (span.runs > 0 && w.time_of(w.entries[span.first - w.first_seq]) < since) {
    take_out(span, w.entries[span.first - w.first_seq]);
  }
}

bool RuleEngine::selects(const RuleSpec& rule, const Target& target, const Sample& sample) {
  for (const auto& [label, want] : rule.selector) {
    std::string have;
    if (label == "target") have = target.name;
    else if (label == "probe") have = sample.probe;
    else if (label == "kind") have = sample.kind;
    else if (label == "group") have = target.group;
    else if (label == "site") have = target.site;
    else if (auto it = target.labels.find(label); it != target.labels.end()) have = it->second;
    else return false;
    if (want != "*" && want != have) return false;
  }
  return true;
}

AlertEvent RuleEngine::event(std::size_t rule, const Key& key, const Window& w, const Tracked& t,
                             const AlertChange& change) const {
  AlertEvent e;
  e.rule = rules_[rule].name;
  e.severity = rules_[rule].severity;
  e.target = key.target;
  e.probe = key.probe;
  e.change = change;
  e.summary = t.summary;
  e.expression = t.expression;
  // The anomaly began at the first true evaluation, or earlier, at the first
  // failure of the run that led to it (a "3 failures in a row" rule is true
  // only at the third).
  e.since = change.at;
  if (change.to != AlertPhase::kInactive) {
    e.since = t.state.active_since();
    if (w.consecutive_failures > 0) e.since = std::min(e.since, w.failing_since);
  }
  return e;
}

void RuleEngine::reindex(const Key& key, std::size_t rule, Tracked& t) {
  const std::optional<SteadyTime> due = t.state.next_deadline();
  if (due == t.indexed_deadline) return;
  if (t.indexed_deadline) deadlines_.erase({*t.indexed_deadline, &key, rule});
  if (due) deadlines_.insert({*due, &key, rule});
  t.indexed_deadline = due;
}

std::vector<AlertEvent> RuleEngine::on_sample(const Target& target, const Sample& sample) {
  const SteadyTime now = clock_.now();
  auto [wit, created] = windows_.try_emplace(Key{target.name, sample.probe});
  const Key& key = wit->first;
  Window& w = wit->second;
  if (created) {
    w.alerts.resize(rules_.size());
    w.spans.resize(span_windows_.size());
  }
  float loss = sample.ok ? 0.0f : 1.0f;
  bool counts_loss = true;
  std::size_t rtt_count = 0;
  std::array<float, kRttsPerEntry> kept{};
  // Reused from sample to sample: the per-sample path does not allocate.
  static thread_local std::vector<double> rtts;
  rtts.clear();
  bool has_loss = false, confirmation = false;
  for (const auto& [name, value] : sample.values) {
    if (name == "loss_ratio") {
      loss = static_cast<float>(value);
      has_loss = true;
    }
    if (name == "confirmation" && value == 1.0) confirmation = true;
    if (name == "connect_seconds" && sample.ok) rtts.push_back(value);
  }
  if (has_loss) counts_loss = sample.ok && !confirmation;
  for (const auto& [name, value] : sample.observations) {
    if (name == "rtt_seconds") rtts.push_back(value);
  }
  if (!rtts.empty()) {
    std::sort(rtts.begin(), rtts.end());
    // Keep all, or evenly spaced quantiles of a larger round (min and max included).
    const std::size_t keep = std::min(rtts.size(), kRttsPerEntry);
    for (std::size_t i = 0; i < keep; ++i) {
      const std::size_t at = keep == 1 ? rtts.size() / 2 : i * (rtts.size() - 1) / (keep - 1);
      kept[i] = static_cast<float>(rtts[at]);
    }
    rtt_count = keep;
    // Learn from this sample's median; a slow average in time, so an anomaly
    // of minutes moves it little at any interval, while a permanent change of
    // path is learned in hours.
    const double median = rtts[rtts.size() / 2];
    if (w.baseline_samples == 0) {
      w.rtt_baseline = median;
      w.baseline_first = now;
    } else {
      const double elapsed = std::chrono::duration<double>(now - w.baseline_updated).count();
      const double weight = 1 - std::exp(-elapsed / std::chrono::duration<double>(kBaselineTau).count());
      w.rtt_baseline += (median - w.rtt_baseline) * weight;
    }
    w.baseline_updated = now;
    ++w.baseline_samples;
  }
  if (w.entries.size() == kMaxWindowEntries) drop_oldest(w);
  push(w, Window::Entry::make(entry_time(w, now), loss, sample.ok, counts_loss, rtt_count), kept.data());
  while (!w.entries.empty() && now - w.time_of(w.entries.front()) > max_window_) drop_oldest(w);
  w.consecutive_failures = sample.ok ? 0 : w.consecutive_failures + 1;
  if (w.consecutive_failures == 1) w.failing_since = now;
  w.last.ok = sample.ok;
  w.last.reason = sample.reason;
  w.last.kind = sample.kind;
  w.last.duration = sample.duration;
  w.last.values = sample.values;  // same size each time: no allocation once warm

  // A round that was answered and then confirmed down: the target went up
  // and down again since the last sample (flapping counts it; AlertState).
  const bool bounced = !sample.ok && confirmation && !rtts.empty();
  std::vector<AlertEvent> events;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const RuleSpec& rule = rules_[i];
    if (!selects(rule, target, sample)) continue;
    Window::Span& span = w.spans[span_of_[i]];
    advance(w, span, now - rule.window);
    const WindowEnv env(w, span, now, rtt_scratch_);
    const bool active = rule.condition.fires(env);
    auto& slot = w.alerts[i];
    if (!slot) {
      // A state that was never active stays inactive whatever it observes:
      // made at the first firing verdict, so 10 000 healthy targets keep none.
      if (!active) continue;
      slot = std::make_unique<Tracked>(Tracked{AlertState(rule.timing), "", "", std::nullopt});
    }
    Tracked& t = *slot;
    if (active) {
      t.summary = operator_summary(rule, target, sample, env);
      t.expression = rule.condition.text() + " (" + describe_values(rule.condition, env) + ")";
      if (!sample.ok) t.expression += "; last failure " + std::string(to_string(sample.reason)) +
                                      (sample.detail.empty() ? "" : ": " + sample.detail);
    }
    if (auto change = t.state.observe(active, now, bounced && about_failures(rule.condition))) {
      events.push_back(event(i, key, w, t, *change));
    }
    reindex(key, i, t);
  }
  return events;
}

std::vector<AlertEvent> RuleEngine::tick() {
  const SteadyTime now = clock_.now();
  std::vector<AlertEvent> events;
  // Take the due entries first: advancing may index a new deadline, which
  // waits for the next tick even if it is already due.
  std::vector<DeadlineEntry> due;
  for (auto it = deadlines_.begin(); it != deadlines_.end() && std::get<0>(*it) <= now; ++it) due.push_back(*it);
  for (const auto& [at, key, rule] : due) {
    Window& w = windows_.at(*key);
    Tracked& t = *w.alerts[rule];
    if (auto change = t.state.advance(now)) events.push_back(event(rule, *key, w, t, *change));
    reindex(*key, rule, t);
  }
  return events;
}

std::optional<SteadyTime> RuleEngine::next_deadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return std::get<0>(*deadlines_.begin());
}

std::vector<AlertEvent> RuleEngine::retain(const std::vector<std::shared_ptr<const Target>>& targets) {
  std::unordered_set<Key, KeyHash> keep;
  for (const auto& t : targets) {
    for (const auto& p : t->probes) keep.insert({t->name, p.name});
  }
  std::vector<AlertEvent> events;
  const SteadyTime now = clock_.now();
  for (auto it = windows_.begin(); it != windows_.end();) {
    if (keep.count(it->first)) {
      ++it;
      continue;
    }
    for (std::size_t rule = 0; rule < it->second.alerts.size(); ++rule) {
      Tracked* t = it->second.alerts[rule].get();
      if (t == nullptr) continue;
      if (t->indexed_deadline) deadlines_.erase({*t->indexed_deadline, &it->first, rule});
      const AlertPhase phase = t->state.phase();
      if (phase == AlertPhase::kInactive) continue;
      // A pending alert goes too, recorded only (it never paged).
      AlertChange c{phase, AlertPhase::kInactive, now};
      c.notify = phase == AlertPhase::kFiring;
      t->summary = "target removed from the config";
      events.push_back(event(rule, it->first, it->second, *t, c));
    }
    it = windows_.erase(it);
  }
  return events;
}

std::vector<AlertEvent> RuleEngine::firing() const {
  std::vector<AlertEvent> out;
  for (const auto& [key, w] : windows_) {
    for (std::size_t rule = 0; rule < w.alerts.size(); ++rule) {
      const Tracked* t = w.alerts[rule].get();
      if (t == nullptr || t->state.phase() != AlertPhase::kFiring) continue;
      AlertChange c{AlertPhase::kFiring, AlertPhase::kFiring, t->state.firing_since()};
      c.flapping = t->state.flapping();
      out.push_back(event(rule, key, w, *t, c));
    }
  }
  return out;
}

}  // namespace nightshift::rules
