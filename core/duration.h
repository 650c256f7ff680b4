// Durations as people write them in config and read them in messages. Pure.
#pragma once

#include <string>
#include <string_view>

#include "nightshift/clock.h"
#include "nightshift/result.h"

namespace nightshift {

// "500ms", "5s", "2m", "1h", "1m30s", "1.5s".
Result<Duration> parse_duration(std::string_view text);
// "1m30s" style, for messages and logs.
std::string format_duration(Duration d);

}  // namespace nightshift
