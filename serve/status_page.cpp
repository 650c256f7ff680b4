#include "serve/status_page.h"
#include "nightshift/json_text.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <set>

#include <nlohmann/json.hpp>

#include "incidents/incident_json.h"

namespace nightshift {

namespace {
using nlohmann::json;
constexpr auto kDay = std::chrono::hours(24);

std::string utc_text(SystemTime t, const char* format = "%Y-%m-%d %H:%M UTC") {
  if (t == SystemTime{}) return "";
  const std::time_t secs =
      static_cast<std::time_t>(std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count());
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

// A time for people: UTC text in a <time> that the inline script turns into
// the reader's own zone (the UTC text stays as its tooltip).
std::string time_html(SystemTime t) {
  if (t == SystemTime{}) return "";
  return "<time class=\"local\" datetime=\"" + format_time(t) + "\">" + utc_text(t) + "</time>";
}

json time_or_null(SystemTime t) { return t == SystemTime{} ? json(nullptr) : json(format_time(t)); }

// The promised update's time has passed without one.
bool update_overdue(const Incident& inc, SystemTime now) {
  return inc.open() && inc.next_update_due != SystemTime{} && inc.next_update_due < now;
}

SystemTime began(const Incident& inc) { return inc.started_at != SystemTime{} ? inc.started_at : inc.declared_at; }

std::vector<const TimelineEntry*> public_updates(const Incident& inc) {
  std::vector<const TimelineEntry*> out;
  for (const auto& e : inc.timeline) {
    if (e.is_public) out.push_back(&e);
  }
  return out;
}

std::string fnv_hex(const std::string& data) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; ++i, h >>= 4) out += hex[h & 15];
  return out;
}

std::string capitalized(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

const std::string* label_of(const TargetHealth& t, const std::string& key) {
  if (key == "site") return &t.site;
  if (key == "group") return &t.group;
  if (key == "target") return &t.name;
  return nullptr;
}

bool matches(const StatusComponent& c, const TargetHealth& t) {
  for (const auto& m : c.match) {
    bool all = !m.empty();
    for (const auto& [k, v] : m) {
      const std::string* have = label_of(t, k);
      all = all && have != nullptr && *have == v;
    }
    if (all) return true;
  }
  return false;
}

// Which components an incident touches: those covering an impacted target, or
// (an incident without impacted targets) a target inside its scope.
std::vector<std::size_t> touched(const Incident& inc, const std::vector<StatusComponent>& components,
                                 const std::vector<TargetHealth>& targets) {
  std::set<std::string> names;
  for (const auto& i : inc.impacted) names.insert(i.target);
  // Another agent's incident (a fleet's) may name targets this page does not
  // watch: then its scope places it.
  const bool known =
      std::any_of(targets.begin(), targets.end(), [&](const TargetHealth& t) { return names.count(t.name) > 0; });
  std::vector<std::size_t> out;
  for (std::size_t c = 0; c < components.size(); ++c) {
    bool hit = false;
    for (const auto& t : targets) {
      if (!matches(components[c], t)) continue;
      if (names.count(t.name)) {
        hit = true;
      } else if (!known && !inc.scope.empty()) {
        bool in_scope = true;
        for (const auto& [k, v] : inc.scope) {
          const std::string* have = label_of(t, k);
          in_scope = in_scope && (v.empty() || (have != nullptr && *have == v));
        }
        hit = in_scope;
      }
      if (hit) break;
    }
    if (hit) out.push_back(c);
  }
  return out;
}

std::string name_list(const std::vector<std::string>& names) {
  if (names.empty()) return "";
  if (names.size() == 1) return names[0];
  if (names.size() == 2) return names[0] + " and " + names[1];
  if (names.size() == 3) return names[0] + ", " + names[1] + " and " + names[2];
  return names[0] + ", " + names[1] + " and " + std::to_string(names.size() - 2) + " more";
}

// Impact levels, worst last; a component's state and a day's bar use the same.
enum class Level { kNone, kMaintenance, kDegraded, kPartial, kMajor };
const char* level_class(Level l) {
  switch (l) {
    case Level::kNone: return "ok";
    case Level::kMaintenance: return "maint";
    case Level::kDegraded: return "degraded";
    case Level::kPartial: return "partial";
    case Level::kMajor: return "major";
  }
  return "ok";
}
const char* level_text(Level l) {
  switch (l) {
    case Level::kNone: return "Operational";
    case Level::kMaintenance: return "Under maintenance";
    case Level::kDegraded: return "Degraded performance";
    case Level::kPartial: return "Partial outage";
    case Level::kMajor: return "Major outage";
  }
  return "Operational";
}

struct DayBar {
  SystemTime start{};
  bool data = true;
  Duration down{};      // the longest critical incident on it that day
  Duration degraded{};  // warning and info ones
  Level level() const {
    if (down > std::chrono::minutes(30)) return Level::kMajor;
    if (down > Duration{}) return Level::kPartial;
    if (degraded > Duration{}) return Level::kDegraded;
    return Level::kNone;
  }
};

struct ComponentView {
  const StatusComponent* component = nullptr;
  int up = 0, down = 0, unknown = 0;
  Level level = Level::kNone;
  std::vector<DayBar> days;
  double uptime = 1.0;  // over the monitored part of the window
};

std::string percent(double uptime) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.2f%%", uptime * 100);
  return buf;
}

json incident_view(const Incident& inc, bool silenced, const std::string& title,
                   const std::vector<std::string>& component_names, SystemTime now) {
  const auto updates = public_updates(inc);
  json ju = json::array();
  for (const auto* u : updates) ju.push_back({{"at", format_time(u->at)}, {"text", u->text}});
  return {{"id", inc.id},
          {"title", title},
          {"severity", to_string(inc.severity)},
          {"status", std::string(to_string(inc.status))},
          {"components", component_names},
          {"impacted", inc.open() ? inc.active_impact() : inc.impacted.size()},
          {"since", time_or_null(began(inc))},
          {"declared_at", time_or_null(inc.declared_at)},
          {"acknowledged", inc.status == IncidentStatus::kAcknowledged},
          {"resolved_at", time_or_null(inc.resolved_at)},
          {"next_update_due", inc.open() ? time_or_null(inc.next_update_due) : json(nullptr)},
          {"update_overdue", update_overdue(inc, now)},
          {"updates", ju},
          {"latest_update", updates.empty() ? json(nullptr)
                                            : json{{"at", format_time(updates.back()->at)}, {"text", updates.back()->text}}},
          {"maintenance", silenced},
          {"flapping", inc.flapping}};
}

// Text colours meet WCAG AA (4.5:1) on their backgrounds.
const char kStyle[] =
    "body{font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}"
    "header,main,footer{max-width:54rem;margin:0 auto;padding:0 1rem}header{padding-top:1rem}"
    "h1{font-size:1.5rem;margin:.5rem 0}h2{font-size:1.15rem;margin:1.6rem 0 .5rem}h3{font-size:1.05rem;margin:0 0 .3rem}"
    "a{color:#0b5394}.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.3rem}"
    ".banner{padding:.8rem 1rem;border-radius:.4rem;font-weight:600;margin:.5rem 0}"
    ".ok-bg{background:#dff3e4;color:#0d5b24}.bad-bg{background:#fde2e1;color:#8a1c17}.warn-bg{background:#fff1cc;color:#6b4b00}"
    ".card{background:#fff;border:1px solid #d0d7de;border-radius:.4rem;padding:.8rem 1rem;margin:.6rem 0}"
    ".card h3{overflow-wrap:anywhere}.id{white-space:nowrap}.meta{color:#57606a;font-size:.9rem;margin:.2rem 0}"
    ".comp{display:flex;flex-wrap:wrap;justify-content:space-between;gap:.2rem 1rem;align-items:baseline}"
    ".state{font-weight:600}.state.ok{color:#0d5b24}.state.degraded{color:#6b4b00}.state.partial{color:#9a3b00}"
    ".state.major{color:#8a1c17}.state.maint{color:#33608f}"
    ".bars{display:flex;gap:1px;height:2rem;margin:.4rem 0 .1rem}.bars i{flex:1;border-radius:1px;background:#2f9e44}"
    ".bars i.degraded{background:#e6a700}.bars i.partial{background:#e8590c}.bars i.major{background:#c92a2a}"
    ".bars i.nodata{background:#d0d7de}.scale{display:flex;justify-content:space-between;color:#57606a;font-size:.8rem}"
    ".tag{display:inline-block;padding:0 .4rem;border-radius:.3rem;font-size:.8rem;font-weight:600;margin-right:.3rem;"
    "vertical-align:.1em}.critical{background:#8a1c17;color:#fff}.warning{background:#8a5a00;color:#fff}"
    ".info{background:#33608f;color:#fff}.tag.maint{background:#57606a;color:#fff}.tag.flapping{background:#6b4b00;color:#fff}"
    "ol.updates{list-style:none;padding:0;margin:.5rem 0}ol.updates li{border-left:3px solid #d0d7de;padding:.1rem 0 .4rem .7rem}"
    "ol.updates p{margin:.1rem 0}.next{font-weight:600}"
    "footer{color:#57606a;font-size:.85rem;margin:2rem auto}"
    "@media (max-width:30rem){.bars{height:1.6rem}h1{font-size:1.3rem}}";

// Times in the reader's zone; without JavaScript the UTC text stays.
const char kScript[] =
    "document.querySelectorAll('time.local').forEach(function(t){var d=new Date(t.getAttribute('datetime'));"
    "if(isNaN(d))return;t.title=t.textContent;t.textContent=d.toLocaleString(undefined,{year:'numeric',month:'short',"
    "day:'numeric',hour:'2-digit',minute:'2-digit',timeZoneName:'short'})});";

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default:
        // XML 1.0 allows no control characters but tab and newline.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') break;
        out += c;
    }
  }
  return out;
}

// Atom ids are IRIs: keep names to characters that need no escaping.
std::string id_safe(const std::string& text) {
  std::string out;
  for (char c : text) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.') ? c : '-';
  return out.empty() ? "agent" : out;
}
}  // namespace

std::string_view to_string(TargetHealth::State state) {
  switch (state) {
    case TargetHealth::State::kUp: return "up";
    case TargetHealth::State::kDown: return "down";
    case TargetHealth::State::kUnknown: return "unknown";
  }
  return "unknown";
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::vector<StatusComponent> effective_components(const StatusInput& in) {
  if (!in.components.empty()) return in.components;
  std::vector<StatusComponent> out;
  std::set<std::string> groups;
  for (const auto& t : in.targets) groups.insert(t.group);
  if (groups.empty() || (groups.size() == 1 && groups.count(""))) {
    StatusComponent all;
    all.name = "All services";
    all.match.push_back({{"group", ""}});
    out.push_back(std::move(all));
    return out;
  }
  for (const auto& g : groups) {
    StatusComponent c;
    c.name = g.empty() ? "Other services" : capitalized(g);
    c.match.push_back({{"group", g}});
    out.push_back(std::move(c));
  }
  return out;
}

std::string public_title(const Incident& inc, const std::vector<StatusComponent>& components,
                         const std::vector<TargetHealth>& targets) {
  std::vector<std::string> names;
  for (std::size_t c : touched(inc, components, targets)) names.push_back(components[c].name);
  // "Outage affecting …" reads right for any name, singular or plural.
  const std::string what = names.empty() ? "some services" : name_list(names);
  if (inc.severity == Severity::kCritical) return "Outage affecting " + what;
  if (inc.severity == Severity::kWarning) return "Degraded performance affecting " + what;
  return "Issue affecting " + what;
}

StatusPage render_status(const StatusInput& in) {
  const std::set<std::string> silenced(in.silenced.begin(), in.silenced.end());
  const std::vector<StatusComponent> components = effective_components(in);
  const int days = std::max(1, in.history_days);
  const Duration window = kDay * days;
  // Day boundaries in UTC; the last bar is today.
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(in.now.time_since_epoch());
  const SystemTime today{std::chrono::duration_cast<Duration>(now_s - now_s % std::chrono::seconds(86400))};
  const SystemTime first_day = today - kDay * (days - 1);

  struct Shown {
    const Incident* inc;
    std::string title;
    std::vector<std::size_t> components;
  };
  std::vector<Shown> open, resolved;
  for (const auto& inc : in.incidents) {
    if (inc.vantage) continue;  // "this agent is cut off" is about monitoring, not the service
    Shown s{&inc, public_title(inc, components, in.targets), touched(inc, components, in.targets)};
    if (inc.open()) {
      open.push_back(std::move(s));
    } else if (inc.resolved_at != SystemTime{} && in.now - inc.resolved_at <= window) {
      resolved.push_back(std::move(s));
    }
  }
  std::sort(open.begin(), open.end(), [](const Shown& a, const Shown& b) { return began(*a.inc) > began(*b.inc); });
  std::sort(resolved.begin(), resolved.end(),
            [](const Shown& a, const Shown& b) { return a.inc->resolved_at > b.inc->resolved_at; });
  if (resolved.size() > in.max_resolved) resolved.resize(in.max_resolved);

  std::vector<ComponentView> views(components.size());
  for (std::size_t c = 0; c < components.size(); ++c) {
    ComponentView& v = views[c];
    v.component = &components[c];
    for (const auto& t : in.targets) {
      if (!matches(components[c], t)) continue;
      switch (t.state) {
        case TargetHealth::State::kUp: ++v.up; break;
        case TargetHealth::State::kDown: ++v.down; break;
        case TargetHealth::State::kUnknown: ++v.unknown; break;
      }
    }
    v.days.resize(static_cast<std::size_t>(days));
    for (int d = 0; d < days; ++d) {
      DayBar& day = v.days[static_cast<std::size_t>(d)];
      day.start = first_day + kDay * d;
      day.data = in.monitoring_since == SystemTime{} || day.start + kDay > in.monitoring_since;
    }
  }
  // Current state: open incidents on the component, then its targets.
  for (const auto& s : open) {
    const bool maint = silenced.count(s.inc->id) > 0;
    for (std::size_t c : s.components) {
      ComponentView& v = views[c];
      const Level l = maint                              ? Level::kMaintenance
                      : s.inc->severity != Severity::kCritical ? Level::kDegraded
                      : v.up == 0                        ? Level::kMajor
                                                         : Level::kPartial;
      v.level = std::max(v.level, l);
    }
  }
  for (auto& v : views) {
    if (v.level == Level::kNone && v.down > 0) v.level = v.up == 0 ? Level::kMajor : Level::kPartial;
  }
  // History: each incident's time, day by day, on the components it touched
  // (overlapping incidents are not counted twice: per day the longest wins).
  // To the minute, so the content (and its ETag) holds between renders.
  const SystemTime minute = std::chrono::floor<std::chrono::minutes>(in.now);
  std::vector<const Shown*> all;
  for (const auto& s : open) all.push_back(&s);
  for (const auto& s : resolved) all.push_back(&s);
  for (const Shown* s : all) {
    const SystemTime from = began(*s->inc);
    // An ongoing incident marks today's bar from its first minute.
    const SystemTime to = s->inc->open() ? std::max(from + std::chrono::minutes(1), minute) : s->inc->resolved_at;
    if (to <= from) continue;
    const bool critical = s->inc->severity == Severity::kCritical;
    for (std::size_t c : s->components) {
      for (auto& day : views[c].days) {
        const SystemTime a = std::max(from, day.start), b = std::min(to, day.start + kDay);
        if (b <= a) continue;
        Duration& slot = critical ? day.down : day.degraded;
        slot = std::max(slot, Duration(b - a));
      }
    }
  }
  for (auto& v : views) {
    Duration monitored{}, down{};
    for (const auto& day : v.days) {
      if (!day.data) continue;
      monitored += std::clamp<Duration>(minute - day.start, Duration{}, kDay);
      down += day.down;
    }
    const double m = std::chrono::duration<double>(monitored).count();
    v.uptime = m > 0 ? 1.0 - std::min(1.0, std::chrono::duration<double>(down).count() / m) : 1.0;
  }
  Level worst = Level::kNone;
  for (const auto& v : views) worst = std::max(worst, v.level);
  const std::string page_title = in.title.empty() ? "Service status" : in.title;
  const auto names_of = [&](const Shown& s) {
    std::vector<std::string> names;
    for (std::size_t c : s.components) names.push_back(components[c].name);
    return names;
  };

  // JSON first: its content (without the render time) is the ETag.
  json j;
  j["version"] = "2";
  j["agent"] = in.agent;
  j["title"] = page_title;
  j["status"] = open.empty() ? "operational" : "incident";
  j["indicator"] = level_class(worst);
  json jc = json::array(), jo = json::array(), jr = json::array();
  for (const auto& v : views) {
    // Columns, not one object per day: a tenth of the bytes for the crowd.
    json states = json::array(), down = json::array(), degraded = json::array();
    for (const auto& day : v.days) {
      states.push_back(day.data ? level_class(day.level()) : "nodata");
      down.push_back(std::chrono::duration_cast<std::chrono::minutes>(day.down).count());
      degraded.push_back(std::chrono::duration_cast<std::chrono::minutes>(day.degraded).count());
    }
    const json jd = {{"first", utc_text(first_day, "%Y-%m-%d")},
                     {"state", states},
                     {"down_minutes", down},
                     {"degraded_minutes", degraded}};
    jc.push_back({{"name", v.component->name},
                  {"description", v.component->description},
                  {"state", level_class(v.level)},
                  {"state_text", level_text(v.level)},
                  {"uptime_percent", std::round(v.uptime * 10000) / 100},
                  {"days", jd}});
  }
  for (const auto& s : open) {
    jo.push_back(incident_view(*s.inc, silenced.count(s.inc->id) > 0, s.title, names_of(s), in.now));
  }
  for (const auto& s : resolved) jr.push_back(incident_view(*s.inc, false, s.title, names_of(s), in.now));
  j["components"] = jc;
  j["open_incidents"] = jo;
  j["resolved_incidents"] = jr;
  {
    int up = 0, down = 0, unknown = 0;
    for (const auto& t : in.targets) {
      up += t.state == TargetHealth::State::kUp;
      down += t.state == TargetHealth::State::kDown;
      unknown += t.state == TargetHealth::State::kUnknown;
    }
    j["targets"] = {{"up", up}, {"down", down}, {"unknown", unknown}};
  }
  j["undeliverable_notifications"] = in.dead_letters;
  StatusPage page;
  page.etag = "\"" + fnv_hex(json_text(j)) + "\"";
  j["generated_at"] = format_time(in.now);
  page.json = json_text(j) + "\n";

  const auto updates_html = [](const std::vector<const TimelineEntry*>& updates) {
    std::string out;
    for (auto it = updates.rbegin(); it != updates.rend(); ++it) {  // newest first, as readers expect
      out += "<li class=\"update\"><p class=\"meta\">" + time_html((*it)->at) + "</p><p>" +
             html_escape((*it)->text) + "</p></li>";
    }
    return out;
  };
  std::string h;
  h.reserve(8192 + 4096 * views.size() + 2048 * (open.size() + resolved.size()));
  h += "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
       "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
       "<title>" + html_escape(page_title) + "</title>"
       "<link rel=\"alternate\" type=\"application/atom+xml\" title=\"Incidents\" href=\"/status/feed.atom\">"
       "<style>" + kStyle + "</style></head><body><a class=\"skip\" href=\"#main\">Skip to content</a>"
       "<header><h1>" + html_escape(page_title) + "</h1></header><main id=\"main\">";
  if (open.empty()) {
    h += "<p class=\"banner ok-bg\" role=\"status\">All systems operational.</p>";
  } else {
    h += std::string("<p class=\"banner ") + (worst >= Level::kPartial ? "bad-bg" : "warn-bg") +
         "\" role=\"status\">" + std::to_string(open.size()) + (open.size() == 1 ? " open incident" : " open incidents") +
         ". We are working on it.</p>";
    h += "<section aria-labelledby=\"open-h\"><h2 id=\"open-h\">Open incidents</h2>";
    for (const auto& s : open) {
      const Incident& inc = *s.inc;
      const auto updates = public_updates(inc);
      h += "<article class=\"card incident open\" id=\"" + html_escape(inc.id) + "\"><h3><span class=\"tag " +
           std::string(to_string(inc.severity)) + "\">" + std::string(to_string(inc.severity)) + "</span>";
      if (silenced.count(inc.id)) h += "<span class=\"tag maint\">maintenance</span>";
      // Flapping, in words for readers who are not on call.
      if (inc.flapping) h += "<span class=\"tag flapping\">intermittent</span>";
      h += html_escape(s.title) + "</h3>";
      h += "<p class=\"meta\">Since " + time_html(began(inc)) +
           (inc.status == IncidentStatus::kAcknowledged ? " · engineers are on it" : "") + " · <span class=\"id\">" +
           html_escape(inc.id) + "</span></p><ol class=\"updates\">";
      h += updates.empty() ? "<li><p>We are aware of the problem and investigating.</p></li>" : updates_html(updates);
      h += "</ol>";
      if (inc.next_update_due != SystemTime{}) {
        // A promise already broken is said plainly, not shown as a past time.
        h += update_overdue(inc, in.now)
                 ? "<p class=\"next overdue\">Update overdue since " + time_html(inc.next_update_due) + "</p>"
                 : "<p class=\"next\">Next update by " + time_html(inc.next_update_due) + "</p>";
      }
      h += "</article>";
    }
    h += "</section>";
  }
  h += "<section aria-labelledby=\"comp-h\"><h2 id=\"comp-h\">Components</h2>";
  if (in.targets.empty()) h += "<p class=\"meta\">Nothing is monitored yet.</p>";
  for (const auto& v : views) {
    h += "<div class=\"card component\"><div class=\"comp\"><h3>" + html_escape(v.component->name) +
         "</h3><span class=\"state " + level_class(v.level) + "\">" + level_text(v.level) + "</span></div>";
    if (!v.component->description.empty()) h += "<p class=\"meta\">" + html_escape(v.component->description) + "</p>";
    h += "<div class=\"bars\" role=\"img\" aria-label=\"" + html_escape(v.component->name) + ": " + percent(v.uptime) +
         " uptime over the last " + std::to_string(days) + " days\">";
    // Days before the history began: one grey stretch, as wide as they are many.
    std::size_t first_data = 0;
    while (first_data < v.days.size() && !v.days[first_data].data) ++first_data;
    if (first_data > 0) {
      h += "<i class=\"nodata\" style=\"flex-grow:" + std::to_string(first_data) + "\" title=\"" +
           std::to_string(first_data) + " days before monitoring began: no data\"></i>";
    }
    for (std::size_t d = first_data; d < v.days.size(); ++d) {
      const DayBar& day = v.days[d];
      if (day.data && day.level() == Level::kNone) {
        h += "<i></i>";  // the common case, kept small: green, no incident
        continue;
      }
      std::string tip = utc_text(day.start, "%Y-%m-%d") + ": ";
      if (!day.data) {
        tip += "no data";
      } else if (day.down > Duration{}) {
        const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(day.down).count();
        tip += minutes == 0 ? "under a minute of outage" : std::to_string(minutes) + " min outage";
      } else if (day.degraded > Duration{}) {
        const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(day.degraded).count();
        tip += minutes == 0 ? "under a minute degraded" : std::to_string(minutes) + " min degraded";
      }
      h += std::string("<i class=\"") + (day.data ? level_class(day.level()) : "nodata") + "\" title=\"" + tip + "\"></i>";
    }
    h += "</div><div class=\"scale\"><span>" + std::to_string(days) + " days ago</span><span>" + percent(v.uptime) +
         " uptime</span><span>Today</span></div></div>";
  }
  h += "</section><section aria-labelledby=\"past-h\"><h2 id=\"past-h\">Past incidents</h2>";
  if (resolved.empty()) h += "<p class=\"meta\">No incidents in the last " + std::to_string(days) + " days.</p>";
  for (const auto& s : resolved) {
    const Incident& inc = *s.inc;
    const auto updates = public_updates(inc);
    h += "<article class=\"card incident resolved\" id=\"" + html_escape(inc.id) + "\"><h3>" +
         (inc.flapping ? "<span class=\"tag flapping\">intermittent</span>" : "") + html_escape(s.title) +
         "</h3><p class=\"meta\">" + time_html(began(inc)) + " to " + time_html(inc.resolved_at) + " · resolved · <span class=\"id\">" +
         html_escape(inc.id) + "</span></p>";
    if (!updates.empty()) h += "<ol class=\"updates\">" + updates_html(updates) + "</ol>";
    h += "</article>";
  }
  h += "</section></main><footer><p>Updated " + time_html(in.now) +
       " · <a href=\"/status/feed.atom\">Subscribe (Atom)</a> · <a href=\"/status.json\">JSON</a>";
  if (in.dead_letters > 0) {
    h += " · " + std::to_string(in.dead_letters) + " notifications could not be delivered";
  }
  h += "</p></footer><script>" + std::string(kScript) + "</script></body></html>\n";
  page.html = std::move(h);

  // Atom (RFC 4287): one entry per incident, updated with each public update.
  const std::string feed_id = "tag:nightshift,2026:" + id_safe(in.agent);
  SystemTime feed_updated = in.monitoring_since != SystemTime{} ? in.monitoring_since : first_day;
  for (const Shown* s : all) {
    feed_updated = std::max({feed_updated, s->inc->declared_at, s->inc->resolved_at});
    for (const auto* u : public_updates(*s->inc)) feed_updated = std::max(feed_updated, u->at);
  }
  std::string a = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n";
  a += "<title>" + xml_escape(page_title) + ": incidents</title>\n<id>" + feed_id + "</id>\n<updated>" +
       format_time(feed_updated) + "</updated>\n<author><name>" + xml_escape(page_title) + "</name></author>\n"
       "<link rel=\"self\" href=\"/status/feed.atom\"/>\n<link rel=\"alternate\" type=\"text/html\" href=\"/status\"/>\n";
  for (const Shown* s : all) {
    const Incident& inc = *s->inc;
    SystemTime updated = std::max(inc.declared_at, inc.resolved_at);
    const auto updates = public_updates(inc);
    for (const auto* u : updates) updated = std::max(updated, u->at);
    std::string body = "<p>" + html_escape(inc.open() ? "Ongoing since " + utc_text(began(inc))
                                                      : "Resolved " + utc_text(inc.resolved_at) + " (began " +
                                                            utc_text(began(inc)) + ")") + "</p>";
    for (auto it = updates.rbegin(); it != updates.rend(); ++it) {
      body += "<p><strong>" + html_escape(utc_text((*it)->at)) + "</strong>: " + html_escape((*it)->text) + "</p>";
    }
    if (inc.open() && inc.next_update_due != SystemTime{}) {
      body += std::string("<p>") + (update_overdue(inc, in.now) ? "Update overdue since " : "Next update by ") +
              html_escape(utc_text(inc.next_update_due)) + "</p>";
    }
    a += "<entry>\n<title>" + xml_escape((inc.open() ? "" : "Resolved: ") + s->title) + "</title>\n<id>" + feed_id +
         ":" + id_safe(inc.id) + "</id>\n<updated>" + format_time(updated) + "</updated>\n<published>" +
         format_time(inc.declared_at != SystemTime{} ? inc.declared_at : began(inc)) + "</published>\n" +
         "<link rel=\"alternate\" type=\"text/html\" href=\"/status#" + xml_escape(inc.id) + "\"/>\n" +
         "<content type=\"html\">" + xml_escape(body) + "</content>\n</entry>\n";
  }
  a += "</feed>\n";
  page.atom = std::move(a);
  return page;
}

namespace {
Status write_atomically(const std::string& dir, const std::string& name, const std::string& data) {
  const std::string tmp = dir + "/." + name + ".tmp";
  const std::string dest = dir + "/" + name;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Error::io("open " + tmp + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return Error::io("write " + tmp + ": " + why);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Error::io("sync " + tmp + ": " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), dest.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Error::io("rename " + tmp + " to " + dest + ": " + std::strerror(errno));
  }
  return {};
}
}  // namespace

Status export_status(const StatusPage& page, const std::string& dir) {
  if (Status s = write_atomically(dir, "status.html", page.html); !s.ok()) return s;
  if (Status s = write_atomically(dir, "status.json", page.json); !s.ok()) return s;
  return write_atomically(dir, "feed.atom", page.atom);
}

}  // namespace nightshift
