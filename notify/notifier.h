// Notifier: delivers the outbox, on its own thread, with libcurl's multi
// interface (many transfers, one thread, no blocking of the probe loop).
//
// - At least once: a row is marked delivered only after a 2xx; every attempt
//   carries the row's idempotency key (Idempotency-Key header, and in the
//   webhook body) so a receiver can drop repeats.
// - Order: per sink one request at a time, oldest first.
// - Retries: exponential backoff from `first_backoff` doubling to `max_backoff`,
//   with jitter (half fixed, half random) so that many agents do not retry in
//   step. 408, 425, 429 and 5xx and transport errors are retried; other 4xx
//   are permanent (the payload will never be accepted) and dead-lettered at
//   once. A row undelivered after `dead_after` is dead-lettered too, so one
//   lost endpoint cannot block a sink forever.
// - When the outbox itself cannot be written (disk full), the agent hands the
//   rows here directly: they are delivered from memory, with the same retries,
//   and are lost only if the agent also dies before the endpoint recovers.
// - Secrets: URLs (a Slack webhook URL is itself a secret) and keys are never
//   logged; logs and metrics name the sink.
//
// Thread safety: configure(), wake(), deliver_from_memory() and stop() from any
// thread; everything else runs on the notifier thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "notify/outbox.h"
#include "notify/sinks.h"
#include "nightshift/clock.h"

namespace nightshift {

class Notifier {
 public:
  Notifier(std::string db_path, prometheus::Registry& registry, std::string agent_name, const Clock& clock);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Opens the outbox and starts the thread.
  Status start(std::vector<SinkSpec> sinks, NotifyPolicy policy);
  // Starts the thread on the given outbox (tests: one that fails on purpose).
  Status start(std::unique_ptr<OutboxQueue> outbox, std::vector<SinkSpec> sinks, NotifyPolicy policy);
  void configure(std::vector<SinkSpec> sinks, NotifyPolicy policy);
  // New rows are in the outbox.
  void wake();
  // Rows that could not be written to the outbox.
  void deliver_from_memory(std::vector<OutboxEntry> rows);
  void stop();
  // Notifications given up on so far (as last counted); any thread.
  long long dead_letters() const { return dead_letters_.load(); }

 private:
  struct Transfer;
  struct SinkSeries {
    prometheus::Gauge* depth = nullptr;
    prometheus::Gauge* dead = nullptr;
    prometheus::Gauge* oldest = nullptr;
    prometheus::Histogram* latency = nullptr;
    std::map<std::string, prometheus::Counter*> results;
  };
  void run();
  void start_due();
  void start_transfer(const SinkSpec& sink, OutboxEntry entry, bool from_memory);
  void finish(Transfer& t, int curl_code, long http_status);
  void refresh_counts();
  SinkSeries& series(const std::string& sink);  // with mu_ held
  void count(const std::string& sink, const std::string& result);
  std::int64_t now_ms() const;

  std::string db_path_;
  std::string agent_;
  const Clock& clock_;

  std::mutex mu_;  // guards sinks_, policy_, memory_, series_
  std::vector<SinkSpec> sinks_;
  NotifyPolicy policy_;
  std::deque<OutboxEntry> memory_;

  std::atomic<bool> stop_{false};
  std::atomic<bool> dirty_{true};
  std::atomic<long long> dead_letters_{0};
  void* multi_ = nullptr;  // CURLM*
  std::thread thread_;
  std::unique_ptr<OutboxQueue> outbox_;
  std::map<std::string, std::unique_ptr<Transfer>> in_flight_;  // by sink: one at a time
  std::int64_t next_due_ms_ = 0;
  std::int64_t next_counts_ms_ = 0;
  std::int64_t next_prune_ms_ = 0;

  prometheus::Family<prometheus::Counter>& results_;
  prometheus::Family<prometheus::Gauge>& depth_;
  prometheus::Family<prometheus::Gauge>& dead_;
  prometheus::Family<prometheus::Gauge>& oldest_;
  prometheus::Family<prometheus::Histogram>& latency_;
  std::map<std::string, SinkSeries> series_;
};

}  // namespace nightshift
