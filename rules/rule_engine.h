// RuleEngine: turns Samples into alert changes. Probes measure; rules judge.
//
// For each (rule, target, probe) the rule selects, the engine keeps a window of
// recent samples, computes the variables a condition can read, evaluates the
// condition and feeds the result to an AlertState (sustain, hysteresis, flap
// damping). Time comes from the Clock passed in, so tests run hours of
// simulated time without sleeping.
//
// Variables: the engine's own (engine_variables(): success, consecutive
// failures, loss and RTT over the window, the learned baseline, ...) and the
// last value of every measure a probe kind declares (nightshift/measure.h).
// docs/rules.md's table is checked against both.
//
// Thread safety: one thread (the reactor).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <tuple>
#include <unordered_map>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "rules/alert_state.h"
#include "core/hash.h"
#include "core/ring.h"
#include "rules/rule_expr.h"
#include "nightshift/clock.h"
#include "nightshift/measure.h"
#include "nightshift/sample.h"
#include "nightshift/severity.h"
#include "nightshift/target.h"

namespace nightshift::rules {

// Which (target, probe) pairs a rule applies to: every given label must match
// exactly ("*" matches any value). Labels: target, probe, kind, group, site and
// the target's extra labels.
using Selector = std::map<std::string, std::string>;

struct RuleSpec {
  std::string name;
  Condition condition;
  AlertTiming timing;
  Severity severity = Severity::kCritical;
  Selector selector;
  Duration window = std::chrono::minutes(2);  // for ratios and percentiles
};

// The variables the engine computes over a window, for every kind.
const std::vector<Variable>& engine_variables();
// The variables conditions may use (for Condition::parse): the engine's own
// and every kind's declared gauges, each name once. Throws std::logic_error
// when two declarations of one name disagree on its type (a programming error
// a unit test catches).
std::vector<Variable> variables(std::span<const KindMeasures> kinds);

struct AlertEvent {
  std::string rule;
  Severity severity = Severity::kCritical;
  std::string target;
  std::string probe;
  AlertChange change;
  SteadyTime since{};   // start of the anomaly (first true evaluation)
  // For the person paged: the target, the cause and the evidence, e.g.
  // "web-1 unreachable: no reply from 198.51.100.2 to 1 echo and 12 of 12
  // confirmation echoes lost". Never the rule's expression.
  std::string summary;
  // For operators (the API, the webhook's details, logs): the condition and the
  // values it read, e.g. "consecutive_failures >= 3 or confirmed_down
  // (consecutive_failures=1 confirmed_down=true)".
  std::string expression;
};

// A window keeps the samples of its rules' longest `window`, but at most this
// many (2 minutes of 1 s probes; 21 minutes of 10 s probes).
inline constexpr std::size_t kMaxWindowEntries = 128;
// RTTs kept per sample: all of a default 3-packet ICMP round; quantiles of more.
inline constexpr std::size_t kRttsPerEntry = 4;
// The RTT baseline is a moving average in time, not in samples, so a 1 s and a
// 10 s interval learn alike: each sample weighs 1 - exp(-elapsed / kBaselineTau).
// It is trusted after kBaselineWarmup of samples (and at least
// kBaselineWarmupSamples of them).
inline constexpr Duration kBaselineTau = std::chrono::hours(1);
inline constexpr Duration kBaselineWarmup = std::chrono::minutes(5);
inline constexpr int kBaselineWarmupSamples = 5;

class RuleEngine {
 public:
  RuleEngine(const Clock& clock, std::vector<RuleSpec> rules);

  // Feeds one sample; returns the alert changes it caused (possibly none).
  std::vector<AlertEvent> on_sample(const Target& target, const Sample& sample);
  // Completes time-based changes (sustain, hysteresis, flap settle) due now.
  std::vector<AlertEvent> tick();
  // When tick() next has work, if ever.
  std::optional<SteadyTime> next_deadline() const;

  // Drops state of (target, probe) pairs not in `targets` (after a reload).
  // Alerts of dropped pairs that were firing are resolved in the returned events.
  std::vector<AlertEvent> retain(const std::vector<std::shared_ptr<const Target>>& targets);

  // Firing alerts, for status and restart recovery.
  std::vector<AlertEvent> firing() const;

  const std::vector<RuleSpec>& rules() const { return rules_; }

 private:
  struct Tracked {
    AlertState state;
    std::string summary;
    std::string expression;
    std::optional<SteadyTime> indexed_deadline;  // its entry in deadlines_, if any
  };
  struct Window {
    // Compact on purpose (8 bytes): 10 000 targets probed every second keep a
    // window each, of up to kMaxWindowEntries entries.
    struct Entry {
      float loss;  // loss_ratio if the sample had one, else 0/1 by ok
      // Milliseconds since the window's epoch (kEntryTimeBits of them, about
      // 37 hours: entry_time() moves the epoch on), then the flags.
      std::uint32_t packed;

      static constexpr int kFlagBits = 5;
      static Entry make(std::uint32_t at_ms, float loss, bool ok, bool counts_loss, std::size_t rtt_count) {
        return {loss, (at_ms << kFlagBits) | static_cast<std::uint32_t>(rtt_count << 2) |
                          (counts_loss ? 2u : 0u) | (ok ? 1u : 0u)};
      }
      std::uint32_t at_ms() const { return packed >> kFlagBits; }
      bool ok() const { return (packed & 1u) != 0; }
      // Feeds `loss`: every sample without a loss_ratio; with one, only rounds
      // that got through and are not confirmations. An outage's own rounds
      // (100 % lost) are target_down's evidence, not loss to warn about after
      // it is over.
      bool counts_loss() const { return (packed & 2u) != 0; }
      std::uint8_t rtt_count() const { return static_cast<std::uint8_t>((packed >> 2) & 7u); }  // its RTTs are the next ones in `rtts`
    };
    static constexpr int kEntryTimeBits = 32 - Entry::kFlagBits;
    static_assert(sizeof(Entry) == 8);
    // Sums over the entries of one rule window (a suffix of `entries`), kept
    // as entries come and go: a condition reads counts without a pass over
    // the window. One span per distinct rule window (RuleEngine::span_of_).
    struct Span {
      std::uint64_t first = 0;  // sequence number of its oldest entry
      std::uint32_t runs = 0;
      std::uint32_t failures = 0;
      std::uint32_t loss_runs = 0;
      std::uint32_t rtts = 0;        // the last this many of `rtts` are its RTTs
      std::int64_t loss_fixed = 0;   // sum of loss x kLossScale: exact, so no drift
    };
    Ring<Entry> entries;    // at most kMaxWindowEntries, newest last
    Ring<float> rtts;       // the entries' RTTs in order: a sample's, or quantiles of them if it had more
    std::uint64_t first_seq = 0;  // sequence number of entries.front()
    SteadyTime epoch{};           // entries' times count from here, in whole milliseconds
    SteadyTime time_of(const Entry& e) const { return epoch + std::chrono::milliseconds(e.at_ms()); }
    std::vector<Span> spans;
    std::vector<std::unique_ptr<Tracked>> alerts;  // by rule index; null until its condition first holds
    int consecutive_failures = 0;
    SteadyTime failing_since{};  // first failure of the current run of failures
    // What conditions read of the last sample: not its series, observations
    // or text, which a window per target would otherwise hold a copy of.
    struct Last {
      bool ok = false;
      FailureReason reason = FailureReason::kNone;
      std::string kind;
      Duration duration{};
      std::vector<std::pair<std::string, double>> values;
    } last;
    // The target's own normal latency: a slow moving average in time of each
    // sample's median RTT (kBaselineTau), known after kBaselineWarmup.
    double rtt_baseline = 0;
    int baseline_samples = 0;
    SteadyTime baseline_first{};
    SteadyTime baseline_updated{};
  };
  struct Key {
    std::string target, probe;
    bool operator==(const Key& o) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept { return StringPairHash{}(ProbeKeyView{k.target, k.probe}); }
  };
  class WindowEnv;
  // (deadline, window key, rule index): the alerts that tick() must advance, soonest first.
  using DeadlineEntry = std::tuple<SteadyTime, const Key*, std::size_t>;

  static bool selects(const RuleSpec& rule, const Target& target, const Sample& sample);
  // The window's entries and its spans' sums change only through these.
  static void push(Window& w, const Window::Entry& entry, const float* rtts);
  static void drop_oldest(Window& w);
  static void take_out(Window::Span& span, const Window::Entry& entry);
  // Moves the span's start past entries older than `since`.
  static void advance(Window& w, Window::Span& span, SteadyTime since);
  // The entry time of a sample at `now`, rebasing the window's epoch when
  // `now` is further from it than an entry can say.
  static std::uint32_t entry_time(Window& w, SteadyTime now);
  AlertEvent event(std::size_t rule, const Key& key, const Window& w, const Tracked& t,
                   const AlertChange& change) const;
  void reindex(const Key& key, std::size_t rule, Tracked& t);

  const Clock& clock_;
  std::vector<RuleSpec> rules_;
  Duration max_window_{};
  // Per rule: its window's span in Window::spans (rules with equal windows share one).
  std::vector<std::size_t> span_of_;
  std::vector<Duration> span_windows_;  // by span
  std::vector<double> rtt_scratch_;     // a condition's RTTs, reused from evaluation to evaluation
  // Element addresses stay valid across rehashing: deadlines_ points at keys.
  std::unordered_map<Key, Window, KeyHash> windows_;
  std::set<DeadlineEntry> deadlines_;
};

// A stable text form of a rule set: equal fingerprints, equal behaviour.
std::string fingerprint(const std::vector<RuleSpec>& rules);

// What a firing rule means for the person paged: "<target> <cause>: <evidence>"
// ("api tcp_443 refusing connections: ...", "web-1 losing packets: loss 35 %").
// A failed last run of a rule about failures names the failure reason and the
// engine's own evidence (its detail); other rules their name in words and the
// values they read. Exposed for tests.
std::string operator_summary(const RuleSpec& rule, const Target& target, const Sample& sample,
                             const Environment& env);

// Human-readable summary of the variables a condition read, e.g.
// "loss=0.35 samples=12". Exposed for tests.
std::string describe_values(const Condition& condition, const Environment& env);

}  // namespace nightshift::rules
