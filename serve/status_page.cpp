#include "serve/status_page.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <set>

#include <nlohmann/json.hpp>

#include "incidents/incident_json.h"

namespace nightshift {

namespace {
using nlohmann::json;

std::string human_time(SystemTime t) {
  if (t == SystemTime{}) return "";
  const std::time_t secs =
      static_cast<std::time_t>(std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count());
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

json time_or_null(SystemTime t) { return t == SystemTime{} ? json(nullptr) : json(format_time(t)); }

const TimelineEntry* last_public(const Incident& inc) {
  for (auto it = inc.timeline.rbegin(); it != inc.timeline.rend(); ++it) {
    if (it->is_public) return &*it;
  }
  return nullptr;
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

struct Health {
  int up = 0, down = 0, unknown = 0;
  std::string state() const { return down > 0 ? (up > 0 ? "degraded" : "down") : (up > 0 ? "up" : "unknown"); }
};

std::string scope_text(const Incident& inc) {
  std::string out;
  for (const auto& [k, v] : inc.scope) {
    if (!v.empty()) out += (out.empty() ? "" : ", ") + k + " " + v;
  }
  return out.empty() ? "all" : out;
}

json incident_view(const Incident& inc, bool silenced) {
  const TimelineEntry* update = last_public(inc);
  return {{"id", inc.id},
          {"title", inc.title},
          {"severity", inc.severity},
          {"status", std::string(to_string(inc.status))},
          {"scope", inc.scope},
          {"impacted", inc.open() ? inc.active_impact() : inc.impacted.size()},
          {"since", time_or_null(inc.started_at != SystemTime{} ? inc.started_at : inc.declared_at)},
          {"declared_at", time_or_null(inc.declared_at)},
          {"acknowledged", inc.status == IncidentStatus::kAcknowledged},
          {"resolved_at", time_or_null(inc.resolved_at)},
          {"next_update_due", inc.open() ? time_or_null(inc.next_update_due) : json(nullptr)},
          {"latest_update", update ? json{{"at", format_time(update->at)}, {"text", update->text}} : json(nullptr)},
          {"maintenance", silenced}};
}

const char kStyle[] =
    "body{font:16px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}"
    "main{max-width:52rem;margin:0 auto;padding:1rem}"
    "h1{font-size:1.4rem;margin:.5rem 0}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}"
    ".banner{padding:.8rem 1rem;border-radius:.4rem;font-weight:600}"
    ".ok{background:#dff3e4;color:#0d5b24}.bad{background:#fde2e1;color:#8a1c17}.warn{background:#fff1cc;color:#6b4b00}"
    ".card{background:#fff;border:1px solid #dde1e6;border-radius:.4rem;padding:.8rem 1rem;margin:.6rem 0}"
    ".card h3{margin:0 0 .3rem;font-size:1.05rem;overflow-wrap:anywhere}"
    ".meta{color:#57606a;font-size:.9rem}.tag{display:inline-block;padding:0 .4rem;border-radius:.3rem;"
    "font-size:.8rem;font-weight:600;margin-right:.3rem}"
    ".critical{background:#8a1c17;color:#fff}.warning{background:#b37400;color:#fff}.info{background:#33608f;color:#fff}"
    ".maint{background:#57606a;color:#fff}"
    "table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:.4rem .6rem;"
    "border-bottom:1px solid #eaecef}td.n{text-align:right}"
    ".up{color:#0d5b24}.down{color:#8a1c17;font-weight:600}.degraded{color:#6b4b00;font-weight:600}"
    ".unknown{color:#57606a}footer{color:#57606a;font-size:.8rem;margin:2rem 0}";
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

StatusPage render_status(const StatusInput& in) {
  const std::set<std::string> silenced(in.silenced.begin(), in.silenced.end());
  std::vector<const Incident*> open, resolved;
  for (const auto& inc : in.incidents) {
    if (inc.open()) {
      open.push_back(&inc);
    } else if (inc.resolved_at != SystemTime{} && in.now - inc.resolved_at <= in.resolved_window &&
               resolved.size() < in.max_resolved) {
      resolved.push_back(&inc);
    }
  }
  std::map<std::pair<std::string, std::string>, Health> health;  // (site, group)
  Health total;
  for (const auto& t : in.targets) {
    Health& h = health[{t.site, t.group}];
    switch (t.state) {
      case TargetHealth::State::kUp: ++h.up; ++total.up; break;
      case TargetHealth::State::kDown: ++h.down; ++total.down; break;
      case TargetHealth::State::kUnknown: ++h.unknown; ++total.unknown; break;
    }
  }

  // JSON first: its content (without the render time) is the ETag.
  json j;
  j["version"] = "1";
  j["agent"] = in.agent;
  j["status"] = open.empty() ? "operational" : "incident";
  json jo = json::array(), jr = json::array(), jh = json::array();
  for (const auto* inc : open) jo.push_back(incident_view(*inc, silenced.count(inc->id) > 0));
  for (const auto* inc : resolved) jr.push_back(incident_view(*inc, false));
  for (const auto& [key, h] : health) {
    jh.push_back({{"site", key.first}, {"group", key.second}, {"state", h.state()}, {"up", h.up}, {"down", h.down},
                  {"unknown", h.unknown}});
  }
  j["open_incidents"] = jo;
  j["resolved_incidents"] = jr;
  j["health"] = jh;
  j["targets"] = {{"up", total.up}, {"down", total.down}, {"unknown", total.unknown}};
  j["undeliverable_notifications"] = in.dead_letters;
  StatusPage page;
  page.etag = "\"" + fnv_hex(j.dump()) + "\"";
  j["generated_at"] = format_time(in.now);
  page.json = j.dump(2);

  std::string h;
  h.reserve(4096 + 1024 * (open.size() + resolved.size() + health.size()));
  h += "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
       "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
       "<title>Status: " + html_escape(in.agent) + "</title><style>" + kStyle + "</style></head><body><main>";
  h += "<h1>Network status</h1>";
  if (open.empty()) {
    h += "<p class=\"banner ok\">All monitored services are operating normally.</p>";
  } else {
    h += "<p class=\"banner bad\">" + std::to_string(open.size()) +
         (open.size() == 1 ? " open incident" : " open incidents") + ". We are working on it.</p>";
  }
  if (!open.empty()) h += "<h2>Open incidents</h2>";
  for (const auto* inc : open) {
    const TimelineEntry* update = last_public(*inc);
    h += "<section class=\"card\" id=\"" + html_escape(inc->id) + "\"><h3><span class=\"tag " +
         html_escape(inc->severity) + "\">" + html_escape(inc->severity) + "</span>";
    if (silenced.count(inc->id)) h += "<span class=\"tag maint\">maintenance</span>";
    h += html_escape(inc->title) + "</h3>";
    h += "<div class=\"meta\">" + html_escape(inc->id) + " · since " +
         html_escape(human_time(inc->started_at != SystemTime{} ? inc->started_at : inc->declared_at)) + " · " +
         html_escape(scope_text(*inc)) + " · " + std::to_string(inc->active_impact()) + " affected" +
         (inc->status == IncidentStatus::kAcknowledged ? " · engineers on it" : "") + "</div>";
    if (update) {
      h += "<p><strong>Update " + html_escape(human_time(update->at)) + ":</strong> " + html_escape(update->text) + "</p>";
    } else {
      h += "<p>We are aware of the problem and investigating.</p>";
    }
    if (inc->next_update_due != SystemTime{}) {
      h += "<p class=\"meta\">Next update by " + html_escape(human_time(inc->next_update_due)) + "</p>";
    }
    h += "</section>";
  }
  h += "<h2>Health by site and group</h2>";
  if (health.empty()) {
    h += "<p class=\"meta\">Nothing is monitored yet.</p>";
  } else {
    h += "<table><thead><tr><th>Site</th><th>Group</th><th>State</th><th class=\"n\">Up</th><th class=\"n\">Down</th>"
         "</tr></thead><tbody>";
    for (const auto& [key, hh] : health) {
      const std::string state = hh.state();
      h += "<tr><td>" + html_escape(key.first.empty() ? "-" : key.first) + "</td><td>" +
           html_escape(key.second.empty() ? "-" : key.second) + "</td><td class=\"" + state + "\">" + state +
           "</td><td class=\"n\">" + std::to_string(hh.up) + "</td><td class=\"n\">" + std::to_string(hh.down) +
           "</td></tr>";
    }
    h += "</tbody></table>";
  }
  if (!resolved.empty()) {
    h += "<h2>Recently resolved</h2>";
    for (const auto* inc : resolved) {
      const TimelineEntry* update = last_public(*inc);
      h += "<section class=\"card\" id=\"" + html_escape(inc->id) + "\"><h3>" + html_escape(inc->title) + "</h3>";
      h += "<div class=\"meta\">" + html_escape(inc->id) + " · " +
           html_escape(human_time(inc->started_at != SystemTime{} ? inc->started_at : inc->declared_at)) + " to " +
           html_escape(human_time(inc->resolved_at)) + " · " + html_escape(scope_text(*inc)) + "</div>";
      if (update) h += "<p>" + html_escape(update->text) + "</p>";
      h += "</section>";
    }
  }
  h += "<footer>Updated " + html_escape(human_time(in.now)) + " by " + html_escape(in.agent) +
       " · <a href=\"/status.json\">JSON</a>";
  if (in.dead_letters > 0) {
    h += " · " + std::to_string(in.dead_letters) + " notifications could not be delivered";
  }
  h += "</footer></main></body></html>\n";
  page.html = std::move(h);
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
  return write_atomically(dir, "status.json", page.json);
}

}  // namespace nightshift
