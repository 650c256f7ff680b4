// libFuzzer target over the /metrics negotiation headers (Accept,
// Accept-Encoding: scraper input): any bytes give a format and a yes/no, and
// the same header always the same answer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "serve/metrics.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view header(reinterpret_cast<const char*>(data), size);
  using nightshift::MetricsEndpoint;
  const auto format = MetricsEndpoint::format_for(header);
  if (format != nightshift::MetricsFormat::kText && format != nightshift::MetricsFormat::kOpenMetrics) std::abort();
  if (MetricsEndpoint::format_for(header) != format) std::abort();
  if (MetricsEndpoint::wants_gzip(header) != MetricsEndpoint::wants_gzip(header)) std::abort();
  return 0;
}
