// /metrics render cost (Google Benchmark): N ICMP targets with a round's worth
// of series each (success, duration, result counter, loss, TTL, jitter, the
// RTT histogram, target info), rendered as text, OpenMetrics and gzip; and the
// per-sample cost of AgentMetrics::record.
//   build/bench/metrics_render_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include "serve/metrics.h"

namespace nightshift {
namespace {

std::vector<std::shared_ptr<const Target>> make_targets(int n) {
  std::vector<std::shared_ptr<const Target>> out;
  for (int i = 0; i < n; ++i) {
    auto t = std::make_shared<Target>();
    t->name = "t" + std::to_string(i);
    t->address = "127.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
    ProbeSpec p;
    p.kind = "icmp";
    p.name = "icmp";
    t->probes.push_back(p);
    out.push_back(t);
  }
  return out;
}

Sample sample_for(const Target& t, int round) {
  Sample s;
  s.target = t.name;
  s.probe = "icmp";
  s.kind = "icmp";
  s.ok = true;
  s.duration = std::chrono::microseconds(120 + round % 50);
  s.values = {{"loss_ratio", 0}, {"jitter_seconds", 0.00001 * (round % 7)}, {"reply_ttl", 64}};
  s.observations = {{"rtt_seconds", 0.0001 + 0.00001 * (round % 13)}, {"rtt_seconds", 0.0002}, {"rtt_seconds", 0.003}};
  return s;
}

struct Loaded {
  explicit Loaded(int n) : metrics("bench"), targets(make_targets(n)) {
    metrics.sync_targets(targets);
    for (int round = 0; round < 3; ++round) {
      for (const auto& t : targets) metrics.record(sample_for(*t, round));
    }
  }
  AgentMetrics metrics;
  std::vector<std::shared_ptr<const Target>> targets;
};

void render(benchmark::State& state, MetricsFormat format, bool gzip) {
  Loaded loaded(static_cast<int>(state.range(0)));
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string body = gzip ? gzip_compress(loaded.metrics.render(format)) : loaded.metrics.render(format);
    bytes = body.size();
    benchmark::DoNotOptimize(body);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}

void BM_RenderText(benchmark::State& state) { render(state, MetricsFormat::kText, false); }
void BM_RenderOpenMetrics(benchmark::State& state) { render(state, MetricsFormat::kOpenMetrics, false); }
void BM_RenderTextGzip(benchmark::State& state) { render(state, MetricsFormat::kText, true); }

void BM_Record(benchmark::State& state) {
  Loaded loaded(static_cast<int>(state.range(0)));
  std::vector<Sample> samples;
  for (const auto& t : loaded.targets) samples.push_back(sample_for(*t, 5));
  std::size_t i = 0;
  for (auto _ : state) {
    loaded.metrics.record(samples[i]);
    i = (i + 1) % samples.size();
  }
}

BENCHMARK(BM_RenderText)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RenderOpenMetrics)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RenderTextGzip)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Record)->Arg(10000)->Arg(100000);

}  // namespace
}  // namespace nightshift

BENCHMARK_MAIN();
