// Process metrics in the names every Prometheus client library uses
// (process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds,
// process_max_fds, process_start_time_seconds), read from /proc at scrape time.
//
// Thread safety: Collect() from any thread; it only reads /proc.
#pragma once

#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace nightshift {

class ProcessMetrics final : public prometheus::Collectable {
 public:
  ProcessMetrics();
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  double start_time_seconds_ = 0;
};

}  // namespace nightshift
