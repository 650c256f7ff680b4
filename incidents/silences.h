// Silences (maintenance windows): label matchers over a time range. An incident
// a silence covers is still declared, recorded and shown, but pages no one
// (Paging asks silences() before every page).
//
// Matchers: `label=value`, `label!=value`, `label=~regex`, `label!~regex`
// (ECMAScript regex, anchored at both ends as in Prometheus). An incident
// matches when one of its label sets satisfies every matcher: its scope labels
// (site, group, ...) with `severity` and `incident` (its id), plus, for each
// active impacted target, `target`, `probe` and `rule`.
//
// Pure logic; times are wall-clock times people chose. Thread safety: one thread.
#pragma once

#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nightshift/clock.h"
#include "nightshift/incident.h"
#include "nightshift/result.h"

namespace nightshift {

struct Matcher {
  enum class Op { kEqual, kNotEqual, kRegex, kNotRegex };
  std::string label;
  Op op = Op::kEqual;
  std::string value;
  std::shared_ptr<const std::regex> regex;  // for kRegex / kNotRegex

  bool matches(const std::map<std::string, std::string>& labels) const;
  std::string to_string() const;  // "site=ams1"
};

// "site=ams1", "target=~core-.*", ... with a message saying what is wrong.
Result<Matcher> parse_matcher(const std::string& text);

struct Silence {
  std::string id;
  std::vector<Matcher> matchers;
  SystemTime starts_at{};
  SystemTime ends_at{};
  std::string author;
  std::string comment;
  SystemTime created_at{};

  bool active(SystemTime now) const { return starts_at <= now && now < ends_at; }
  bool covers(const Incident& incident) const;
};

nlohmann::json to_json(const Silence& s);
// Validates as the API does; `now` decides the defaults (starts_at = now).
Result<Silence> silence_from_json(const nlohmann::json& j, SystemTime now);

class SilenceSet {
 public:
  // Checks and adds; gives it an id when it has none.
  Result<Silence> add(Silence s, SystemTime now);
  bool remove(const std::string& id);
  // Active and future silences, soonest end first.
  std::vector<Silence> list() const;
  // Drops silences that ended; returns their ids.
  std::vector<std::string> expire(SystemTime now);
  // Whether an active silence covers the incident.
  bool silences(const Incident& incident, SystemTime now) const;
  void restore(std::vector<Silence> silences);

 private:
  std::map<std::string, Silence> silences_;
};

}  // namespace nightshift
