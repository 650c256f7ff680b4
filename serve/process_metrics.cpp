#include "serve/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

namespace nightshift {

namespace {
prometheus::MetricFamily single(const std::string& name, const std::string& help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  prometheus::ClientMetric m;
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(m);
  return f;
}

double open_fds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  double n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;  // the descriptor opendir itself holds
}
}  // namespace

ProcessMetrics::ProcessMetrics() {
  start_time_seconds_ =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::vector<prometheus::MetricFamily> ProcessMetrics::Collect() const {
  std::vector<prometheus::MetricFamily> out;
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const double cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                     static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  out.push_back(single("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                       prometheus::MetricType::Counter, cpu));
  long pages = 0;
  {
    std::ifstream statm("/proc/self/statm");
    long size = 0;
    statm >> size >> pages;
  }
  out.push_back(single("process_resident_memory_bytes", "Resident memory size in bytes.",
                       prometheus::MetricType::Gauge, static_cast<double>(pages) * static_cast<double>(::sysconf(_SC_PAGESIZE))));
  out.push_back(single("process_open_fds", "Number of open file descriptors.", prometheus::MetricType::Gauge,
                       open_fds()));
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  out.push_back(single("process_max_fds", "Maximum number of open file descriptors.",
                       prometheus::MetricType::Gauge, static_cast<double>(lim.rlim_cur)));
  out.push_back(single("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                       prometheus::MetricType::Gauge, start_time_seconds_));
  return out;
}

}  // namespace nightshift
