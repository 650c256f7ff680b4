// libFuzzer target over the config parser: any text. Invariants besides "no
// crash, no sanitizer report": a rejected config always says why, and every
// error names the file; an accepted one has unique target names.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string_view>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  nightshift::ConfigResult r = nightshift::parse_config(text, "fuzz.toml");
  if (!r.ok()) {
    if (r.errors.empty()) std::abort();
    for (const auto& e : r.errors) {
      if (e.to_string().rfind("fuzz.toml", 0) != 0) std::abort();
    }
    return 0;
  }
  std::set<std::string> names;
  for (const auto& t : r.config->targets) {
    if (!names.insert(t->name).second) std::abort();
    if (t->probes.empty()) std::abort();
  }
  return 0;
}
