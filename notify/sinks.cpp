#include "notify/sinks.h"
#include "nightshift/json_text.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <ctime>

#include <nlohmann/json.hpp>

#include "incidents/incident_json.h"
#include "nightshift/version.h"

namespace nightshift {

// Slack reads &, < and > as control characters (links, mentions): text from
// incidents (target names, titles, notes) must carry them as entities, or
// `Zürich <core> & co` turns into a broken link. Slack's own escaping, not HTML's.
std::string slack_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {
using nlohmann::json;

bool is_one_of(const std::string& event, std::initializer_list<std::string_view> events) {
  return std::find(events.begin(), events.end(), event) != events.end();
}

std::int64_t unix_seconds(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// "2026-11-24 03:12 UTC": for people.
std::string human_time(SystemTime t) {
  const std::time_t secs = static_cast<std::time_t>(unix_seconds(t));
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

std::string scope_text(const Incident& inc) {
  std::string out;
  for (const auto& [k, v] : inc.scope) {
    if (v.empty()) continue;
    out += (out.empty() ? "" : ", ") + k + " " + v;
  }
  return out.empty() ? "our network" : out;
}

const TimelineEntry* last_public(const Incident& inc) {
  for (auto it = inc.timeline.rbegin(); it != inc.timeline.rend(); ++it) {
    if (it->is_public) return &*it;
  }
  return nullptr;
}

std::string impact_text(const Incident& inc, std::size_t max_lines) {
  std::string out;
  std::size_t shown = 0, active = 0;
  for (const auto& t : inc.impacted) {
    if (!t.active) continue;
    ++active;
    if (shown == max_lines) continue;
    ++shown;
    // The summary names the target, the cause and the evidence; the rule's
    // expression stays in the incident's JSON (webhook, API), not in pages.
    out += (out.empty() ? "" : "\n") + (t.summary.empty() ? t.target + " " + t.rule : t.summary);
    if (!t.via_parent.empty()) out += " (behind " + t.via_parent + ")";
  }
  if (active > shown) out += "\n… and " + std::to_string(active - shown) + " more";
  return out;
}

std::string link_for(const NotifyPolicy& policy, const Incident& inc) {
  return policy.status_url.empty() ? "" : policy.status_url + "#" + inc.id;
}

json webhook_body(const NotifyPolicy& policy, const NotificationEvent& e, const std::string& key, SystemTime now) {
  return {{"version", "1"},
          {"idempotency_key", key},
          {"event", e.event},
          {"agent", policy.agent_name},
          {"status_url", link_for(policy, e.incident)},
          {"created_at", format_time(now)},
          {"incident", to_json(e.incident)}};
}

json alertmanager_body(const NotifyPolicy& policy, const NotificationEvent& e, SystemTime now) {
  const Incident& inc = e.incident;
  json labels = {{"alertname", "NightshiftIncident"},
                 {"incident", inc.id},
                 {"severity", to_string(inc.severity)},
                 {"agent", policy.agent_name}};
  for (const auto& [k, v] : inc.scope) {
    if (!v.empty() && !labels.contains(k)) labels[k] = v;
  }
  if (inc.vantage) labels["vantage"] = "isolated";
  json alert = {{"labels", labels},
                {"annotations",
                 {{"summary", inc.title},
                  {"description", impact_text(inc, 20)},
                  {"impacted", std::to_string(inc.active_impact())},
                  {"status", std::string(to_string(inc.status))}}},
                {"startsAt", format_time(inc.started_at != SystemTime{} ? inc.started_at : inc.declared_at)}};
  const std::string link = link_for(policy, inc);
  if (!link.empty()) alert["generatorURL"] = link;
  // Firing alerts carry no endsAt: Alertmanager keeps them for its
  // resolve_timeout, and the notifier re-posts them well within it.
  if (e.event == "resolved" || e.event == "merged") {
    alert["endsAt"] = format_time(inc.resolved_at != SystemTime{} ? inc.resolved_at : now);
  }
  return json::array({alert});
}

json pagerduty_body(const NotifyPolicy& policy, const NotificationEvent& e) {
  const Incident& inc = e.incident;
  std::string action = "trigger";
  if (e.event == "acknowledged") action = "acknowledge";
  if (e.event == "resolved" || e.event == "merged") action = "resolve";
  json body = {{"event_action", action}, {"dedup_key", inc.id}};
  if (action != "trigger") return body;
  std::string summary = inc.title;
  if (summary.size() > 1000) summary.resize(1000);
  json details = {{"incident", inc.id},
                  {"event", e.event},
                  {"scope", inc.scope},
                  {"impacted", inc.active_impact()},
                  {"impact", impact_text(inc, 20)},
                  {"declared_at", format_time(inc.declared_at)}};
  body["payload"] = {{"summary", summary},
                     {"source", policy.agent_name},
                     {"severity", to_string(inc.severity)},  // PagerDuty has the same three words
                     {"timestamp", format_time(inc.declared_at)},
                     {"class", inc.vantage ? "vantage" : "outage"},
                     {"custom_details", details}};
  if (auto it = inc.scope.find("group"); it != inc.scope.end()) body["payload"]["group"] = it->second;
  if (auto it = inc.scope.find("site"); it != inc.scope.end()) body["payload"]["component"] = it->second;
  const std::string link = link_for(policy, inc);
  if (!link.empty()) body["links"] = json::array({{{"href", link}, {"text", "nightshift status"}}});
  return body;
}

// The attachment's bar: red for critical, amber for warning, blue for info,
// green once resolved, so the channel reads at a glance.
std::string slack_colour(const NotificationEvent& e) {
  if (e.event == "resolved" || e.event == "merged") return "#2eb67d";
  if (e.incident.severity == Severity::kCritical) return "#e01e5a";
  if (e.incident.severity == Severity::kWarning) return "#ecb22e";
  return "#36c5f0";
}

// A section's text may hold at most 3000 characters.
std::string slack_section_text(std::string text) {
  constexpr std::size_t kMax = 3000;
  if (text.size() > kMax) {
    std::size_t cut = kMax - 4;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // whole UTF-8 characters
    // Never cut inside an entity (&amp;): back up to before its '&'.
    const std::size_t amp = text.rfind('&', cut);
    if (amp != std::string::npos && text.find(';', amp) >= cut) cut = amp;
    text.resize(cut);
    text += " …";
  }
  return text;
}

json slack_body(const NotifyPolicy& policy, const NotificationEvent& e) {
  const Incident& inc = e.incident;
  std::string head;
  if (e.event == "declared") head = "DECLARED";
  else if (e.event == "resolved") head = "RESOLVED";
  else if (e.event == "reopened") head = "REOPENED";
  else if (e.event == "acknowledged") head = "ACKNOWLEDGED by " + inc.acknowledged_by;
  else if (e.event == "update_overdue") head = "UPDATE OVERDUE (promised by " + human_time(inc.next_update_due) + ")";
  else if (e.event == "renotify") head = "STILL UNACKNOWLEDGED";
  else if (e.event == "escalated") head = "ESCALATED: unacknowledged";
  else if (e.event == "merged") head = "MERGED";
  else head = "UPDATE";
  const std::string title = "*" + slack_escape(head) + "* [" + std::string(to_string(inc.severity)) + "] " + slack_escape(inc.id) +
                            ": " + slack_escape(inc.title);
  const std::string since = "since " + human_time(inc.started_at != SystemTime{} ? inc.started_at : inc.declared_at) +
                            ", " + std::to_string(inc.active_impact()) + " impacted";
  std::string note;
  if (e.event == "note" && !inc.timeline.empty()) note = "note: " + slack_escape(inc.timeline.back().text);
  const std::string impact = e.event != "resolved" ? slack_escape(impact_text(inc, 5)) : "";
  const std::string link = link_for(policy, inc);

  // `text` is what notifications and clients without blocks show.
  std::string text = title + "\n" + since;
  if (!note.empty()) text += "\n" + note;
  if (!impact.empty()) text += "\n" + impact;
  // In <url|label> a '|' or '>' in the URL would end it early.
  std::string safe_link;
  for (char c : link) {
    if (c == '|') safe_link += "%7C";
    else if (c == '>') safe_link += "%3E";
    else if (c == '<') safe_link += "%3C";
    else safe_link += c;
  }
  if (!link.empty()) text += "\n<" + safe_link + "|status page>";

  json blocks = json::array();
  blocks.push_back({{"type", "section"}, {"text", {{"type", "mrkdwn"}, {"text", slack_section_text(title + "\n" + since)}}}});
  if (!note.empty()) blocks.push_back({{"type", "section"}, {"text", {{"type", "mrkdwn"}, {"text", slack_section_text(note)}}}});
  if (!impact.empty()) {
    blocks.push_back({{"type", "section"}, {"text", {{"type", "mrkdwn"}, {"text", slack_section_text(impact)}}}});
  }
  blocks.push_back({{"type", "context"},
                    {"elements", json::array({{{"type", "mrkdwn"},
                                               {"text", "agent " + slack_escape(policy.agent_name) + " · " +
                                                            slack_escape(scope_text(inc))}}})}});
  if (!link.empty()) {
    blocks.push_back({{"type", "actions"},
                      {"elements", json::array({{{"type", "button"},
                                                 {"text", {{"type", "plain_text"}, {"text", "Status page"}}},
                                                 {"url", link}}})}});
  }
  return {{"text", text},
          {"attachments", json::array({{{"color", slack_colour(e)}, {"fallback", text}, {"blocks", blocks}}})}};
}

json notice_body(const SinkSpec& sink, const NotificationEvent& e, const std::string& key) {
  const Incident& inc = e.incident;
  return {{"version", "1"},
          {"idempotency_key", key},
          {"audience", sink.audience},
          {"event", e.event},
          {"incident", inc.id},
          {"status", inc.open() ? "open" : "resolved"},
          {"message", notice_text(e)},
          {"next_update_due", inc.open() && inc.next_update_due != SystemTime{} ? json(format_time(inc.next_update_due))
                                                                                 : json(nullptr)}};
}
}  // namespace

std::string_view to_string(SinkType type) {
  switch (type) {
    case SinkType::kWebhook: return "webhook";
    case SinkType::kAlertmanager: return "alertmanager";
    case SinkType::kPagerDuty: return "pagerduty";
    case SinkType::kSlack: return "slack";
    case SinkType::kNotice: return "notice";
  }
  return "webhook";
}

std::optional<SinkType> sink_type_from(std::string_view name) {
  for (SinkType t : {SinkType::kWebhook, SinkType::kAlertmanager, SinkType::kPagerDuty, SinkType::kSlack,
                     SinkType::kNotice}) {
    if (to_string(t) == name) return t;
  }
  return std::nullopt;
}

bool sink_wants(const SinkSpec& sink, const NotificationEvent& e, bool escalated) {
  const Incident& inc = e.incident;
  if (inc.severity < sink.min_severity) return false;
  for (const auto& [k, v] : sink.match) {
    auto it = inc.scope.find(k);
    if (it == inc.scope.end() || it->second != v) return false;
  }
  const std::string& ev = e.event;
  if (sink.escalation_only) {
    if (!escalated) return false;
    if (!is_one_of(ev, {"escalated", "renotify", "acknowledged", "resolved", "merged"})) return false;
  } else if (ev == "escalated") {
    return false;  // escalations go to the sinks escalated to
  }
  switch (sink.type) {
    case SinkType::kWebhook:
      return ev != "refresh";
    case SinkType::kAlertmanager:
      return is_one_of(ev, {"declared", "updated", "reopened", "refresh", "resolved", "merged", "escalated"});
    case SinkType::kPagerDuty:
      return is_one_of(ev, {"declared", "reopened", "updated", "acknowledged", "resolved", "merged", "escalated"});
    case SinkType::kSlack:
      return ev != "refresh";
    case SinkType::kNotice: {
      if (inc.vantage) return false;  // the agent's own isolation is not the customers' outage
      if (ev == "note") return !inc.timeline.empty() && inc.timeline.back().is_public;
      return is_one_of(ev, {"declared", "reopened", "resolved"});
    }
  }
  return false;
}

std::string render_body(const SinkSpec& sink, const NotifyPolicy& policy, const NotificationEvent& e,
                        const std::string& idempotency_key, SystemTime now) {
  switch (sink.type) {
    case SinkType::kWebhook: return json_text(webhook_body(policy, e, idempotency_key, now));
    case SinkType::kAlertmanager: return json_text(alertmanager_body(policy, e, now));
    case SinkType::kPagerDuty: return json_text(pagerduty_body(policy, e));
    case SinkType::kSlack: return json_text(slack_body(policy, e));
    case SinkType::kNotice: return json_text(notice_body(sink, e, idempotency_key));
  }
  return "{}";
}

std::string hmac_sha256_hex(const std::string& key, const std::string& message) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
       message.size(), digest, &length);
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

OutgoingRequest prepare_request(const SinkSpec& sink, const std::string& body, const std::string& idempotency_key,
                            SystemTime now) {
  OutgoingRequest r;
  r.url = sink.url;
  r.body = body;
  r.headers.emplace_back("Content-Type", "application/json");
  r.headers.emplace_back("User-Agent", std::string("nightshift/") + kVersion);
  r.headers.emplace_back("Idempotency-Key", idempotency_key);
  if (!sink.bearer_token.empty()) r.headers.emplace_back("Authorization", "Bearer " + sink.bearer_token);
  if (sink.type == SinkType::kWebhook || sink.type == SinkType::kNotice) {
    const std::string ts = std::to_string(unix_seconds(now));
    r.headers.emplace_back("X-Nightshift-Timestamp", ts);
    if (!sink.secret.empty()) {
      r.headers.emplace_back("X-Nightshift-Signature", "sha256=" + hmac_sha256_hex(sink.secret, ts + "." + body));
    }
  }
  if (sink.type == SinkType::kPagerDuty) {
    json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) {
      j["routing_key"] = sink.routing_key;
      r.body = json_text(j);
    }
  }
  return r;
}

std::string notice_text(const NotificationEvent& e) {
  const Incident& inc = e.incident;
  const std::string where = scope_text(inc);
  const std::string since = human_time(inc.started_at != SystemTime{} ? inc.started_at : inc.declared_at);
  const std::string next =
      inc.next_update_due != SystemTime{} ? " We will update you by " + human_time(inc.next_update_due) + "." : "";
  if (e.event == "resolved" || !inc.open()) {
    return "Resolved: the problem affecting " + where + " since " + since + " was fixed at " +
           human_time(inc.resolved_at != SystemTime{} ? inc.resolved_at : inc.declared_at) +
           ". We apologise for the disruption.";
  }
  if (e.event == "reopened") {
    return "The problem affecting " + where + " has come back. Our engineers are working on it." + next;
  }
  if (e.event == "note") {
    const TimelineEntry* p = last_public(inc);
    return "Update on the problem affecting " + where + ": " + (p ? p->text : std::string("we are still working on it.")) +
           next;
  }
  return "We are aware of a problem affecting " + where + " since " + since +
         ". Our engineers are working on it." + next;
}

}  // namespace nightshift
