// libFuzzer target over what the operator API reads from the network: request
// bodies as JSON into silences (matchers and their regexes), incident JSON as
// the store and API exchange it, and query strings. Nothing may crash, hang or
// leak; an accepted silence must survive a JSON round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "serve/http.h"
#include "incidents/incident_json.h"
#include "incidents/silences.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace nightshift;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const SystemTime now = SystemTime{} + std::chrono::hours(24 * 365 * 56);

  HttpRequest req;
  req.query = text;
  (void)req.param("status");
  (void)url_decode(text);

  // Regex matchers are the costly part: keep inputs small, as the API's 64 KiB
  // body limit and 1024-character value limit do.
  if (size > 4096) return 0;
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    (void)parse_matcher(text);
    return 0;
  }
  auto silence = silence_from_json(j, now);
  if (silence.ok()) {
    auto again = silence_from_json(to_json(silence.value()), now);
    if (!again.ok() || again->matchers.size() != silence->matchers.size()) std::abort();
    Incident inc;
    inc.id = "NS-1";
    inc.scope = {{"site", "a"}};
    inc.impacted.push_back({"t", "p", "r", Severity::kCritical, "", "", {}, true, ""});
    (void)silence->covers(inc);
  }
  (void)incident_from_json(j);
  return 0;
}
