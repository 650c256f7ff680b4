#include "incidents/incident_json.h"

#include <cstdio>
#include <ctime>

namespace nightshift {

std::string format_time(SystemTime t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  const int millis = static_cast<int>(ms - static_cast<long long>(secs) * 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

Result<SystemTime> parse_time(const std::string& text) {
  std::tm tm{};
  int millis = 0;
  char z = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &millis, &z) != 8 ||
      z != 'Z') {
    return Error::invalid("expected a time like 2026-11-24T03:12:45.120Z, found \"" + text + "\"");
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::time_t secs = ::timegm(&tm);
  return SystemTime(std::chrono::duration_cast<SystemTime::duration>(std::chrono::seconds(secs) +
                                                                     std::chrono::milliseconds(millis)));
}

namespace {
nlohmann::json time_or_null(SystemTime t) { return t == SystemTime{} ? nlohmann::json(nullptr) : nlohmann::json(format_time(t)); }

Result<SystemTime> time_field(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) return SystemTime{};
  if (!j.at(key).is_string()) return Error::invalid(std::string(key) + ": expected a time string");
  return parse_time(j.at(key).get<std::string>());
}

Result<Severity> severity_field(const nlohmann::json& j, const char* key) {
  const std::string text = j.at(key).get<std::string>();
  if (auto s = parse_severity(text)) return *s;
  return Error::invalid(std::string(key) + ": unknown value \"" + text + "\"");
}
}  // namespace

nlohmann::json to_json(const Incident& inc) {
  nlohmann::json impacted = nlohmann::json::array();
  for (const auto& t : inc.impacted) {
    impacted.push_back({{"target", t.target},
                        {"probe", t.probe},
                        {"rule", t.rule},
                        {"severity", to_string(t.severity)},
                        {"summary", t.summary},
                        {"expression", t.expression},
                        {"via_parent", t.via_parent},
                        {"since", time_or_null(t.since)},
                        {"active", t.active}});
  }
  nlohmann::json timeline = nlohmann::json::array();
  for (const auto& e : inc.timeline) {
    timeline.push_back({{"at", time_or_null(e.at)},
                        {"kind", e.kind},
                        {"text", e.text},
                        {"public", e.is_public},
                        {"author", e.author}});
  }
  return {{"id", inc.id},
          {"title", inc.title},
          {"severity", to_string(inc.severity)},
          {"scope", inc.scope},
          {"status", std::string(to_string(inc.status))},
          {"vantage", inc.vantage},
          {"flapping", inc.flapping},
          {"flapping_since", time_or_null(inc.flapping_since)},
          {"impacted", impacted},
          {"timeline", timeline},
          {"started_at", time_or_null(inc.started_at)},
          {"declared_at", time_or_null(inc.declared_at)},
          {"acknowledged_at", time_or_null(inc.acknowledged_at)},
          {"acknowledged_by", inc.acknowledged_by},
          {"resolved_at", time_or_null(inc.resolved_at)},
          {"next_update_due", time_or_null(inc.next_update_due)}};
}

Result<Incident> incident_from_json(const nlohmann::json& j) {
  try {
    Incident inc;
    inc.id = j.at("id").get<std::string>();
    inc.title = j.at("title").get<std::string>();
    auto severity = severity_field(j, "severity");
    if (!severity.ok()) return severity.error();
    inc.severity = *severity;
    inc.scope = j.at("scope").get<std::map<std::string, std::string>>();
    const std::string status = j.at("status").get<std::string>();
    if (status == "declared") inc.status = IncidentStatus::kDeclared;
    else if (status == "acknowledged") inc.status = IncidentStatus::kAcknowledged;
    else if (status == "resolved") inc.status = IncidentStatus::kResolved;
    else return Error::invalid("status: unknown value \"" + status + "\"");
    inc.vantage = j.value("vantage", false);
    inc.flapping = j.value("flapping", false);  // rows stored before flapping was marked have none
    inc.acknowledged_by = j.value("acknowledged_by", "");
    for (const auto& t : j.at("impacted")) {
      ImpactedTarget it;
      it.target = t.at("target").get<std::string>();
      it.probe = t.at("probe").get<std::string>();
      it.rule = t.at("rule").get<std::string>();
      auto target_severity = severity_field(t, "severity");
      if (!target_severity.ok()) return target_severity.error();
      it.severity = *target_severity;
      it.summary = t.value("summary", "");
      it.expression = t.value("expression", "");
      it.via_parent = t.value("via_parent", "");
      it.active = t.value("active", false);
      auto since = time_field(t, "since");
      if (!since.ok()) return since.error();
      it.since = *since;
      inc.impacted.push_back(std::move(it));
    }
    for (const auto& e : j.at("timeline")) {
      TimelineEntry te;
      auto at = time_field(e, "at");
      if (!at.ok()) return at.error();
      te.at = *at;
      te.kind = e.at("kind").get<std::string>();
      te.text = e.value("text", "");
      te.is_public = e.value("public", false);
      te.author = e.value("author", "");
      inc.timeline.push_back(std::move(te));
    }
    struct Field {
      const char* key;
      SystemTime* out;
    };
    for (Field f : {Field{"started_at", &inc.started_at}, Field{"declared_at", &inc.declared_at},
                    Field{"acknowledged_at", &inc.acknowledged_at}, Field{"resolved_at", &inc.resolved_at},
                    Field{"next_update_due", &inc.next_update_due}, Field{"flapping_since", &inc.flapping_since}}) {
      auto t = time_field(j, f.key);
      if (!t.ok()) return Error::invalid(std::string(f.key) + ": " + t.error().message);
      *f.out = *t;
    }
    return inc;
  } catch (const nlohmann::json::exception& e) {
    return Error::invalid(std::string("incident JSON: ") + e.what());
  }
}

}  // namespace nightshift
