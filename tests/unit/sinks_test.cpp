// Sinks: payloads per type, routing, and what must never be in a body.
#include "notify/sinks.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "incidents/incident_json.h"

namespace nightshift {
namespace {

using nlohmann::json;

Incident incident(Severity severity = Severity::kCritical) {
  Incident inc;
  inc.id = "NS-20261124-0007";
  inc.title = "core-ams1: target_down";
  inc.severity = severity;
  inc.scope = {{"site", "ams1"}, {"group", "core"}};
  inc.started_at = SystemTime{} + std::chrono::hours(24 * 365 * 56);
  inc.declared_at = inc.started_at + std::chrono::seconds(3);
  inc.next_update_due = inc.declared_at + std::chrono::minutes(30);
  inc.impacted.push_back({"core-ams1", "icmp", "target_down", severity, "3 of 3 probes failed", "", inc.started_at, true, ""});
  inc.timeline.push_back({inc.declared_at, "declared", "declared", false, ""});
  inc.timeline.push_back({inc.declared_at, "note", "path breaks after 198.51.100.1 (internal)", false, "nightshift"});
  return inc;
}

SinkSpec sink(SinkType type) {
  SinkSpec s;
  s.name = "s";
  s.type = type;
  s.url = "http://127.0.0.1:9/hook";
  return s;
}

NotifyPolicy policy() {
  NotifyPolicy p;
  p.agent_name = "edge1";
  p.status_url = "http://status.example.net/status";
  return p;
}

const SystemTime kNow = SystemTime{} + std::chrono::hours(24 * 365 * 56) + std::chrono::minutes(1);

TEST(SinksTest, HmacMatchesRfc4231) {
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(SinksTest, WebhookBodyIsVersionedAndSignedOverTimestampAndBody) {
  SinkSpec s = sink(SinkType::kWebhook);
  s.secret = "s3cret-value";
  const std::string body = render_body(s, policy(), {"declared", incident()}, "NS-20261124-0007:declared:2", kNow);
  const json j = json::parse(body);
  EXPECT_EQ(j["version"], "1");
  EXPECT_EQ(j["event"], "declared");
  EXPECT_EQ(j["idempotency_key"], "NS-20261124-0007:declared:2");
  EXPECT_EQ(j["incident"]["id"], "NS-20261124-0007");
  EXPECT_EQ(j["incident"]["severity"], "critical");
  EXPECT_EQ(j["incident"]["impacted"][0]["target"], "core-ams1");
  EXPECT_EQ(j["status_url"], "http://status.example.net/status#NS-20261124-0007");
  EXPECT_EQ(j["agent"], "edge1");
  EXPECT_EQ(body.find("s3cret"), std::string::npos);

  const OutgoingRequest r = prepare_request(s, body, "k1", kNow);
  std::map<std::string, std::string> h(r.headers.begin(), r.headers.end());
  ASSERT_TRUE(h.count("X-Nightshift-Timestamp"));
  EXPECT_EQ(h["X-Nightshift-Signature"],
            "sha256=" + hmac_sha256_hex("s3cret-value", h["X-Nightshift-Timestamp"] + "." + body));
  EXPECT_EQ(h["Idempotency-Key"], "k1");
  EXPECT_EQ(r.body, body);
}

TEST(SinksTest, PagerDutyMapsEventsAndAddsTheRoutingKeyOnlyWhenSending) {
  SinkSpec s = sink(SinkType::kPagerDuty);
  s.routing_key = "R0UTINGKEY";
  const std::string trigger = render_body(s, policy(), {"declared", incident()}, "k", kNow);
  EXPECT_EQ(trigger.find("R0UTINGKEY"), std::string::npos) << "the outbox never holds the key";
  json j = json::parse(prepare_request(s, trigger, "k", kNow).body);
  EXPECT_EQ(j["event_action"], "trigger");
  EXPECT_EQ(j["dedup_key"], "NS-20261124-0007");
  EXPECT_EQ(j["routing_key"], "R0UTINGKEY");
  EXPECT_EQ(j["payload"]["severity"], "critical");
  EXPECT_EQ(j["payload"]["source"], "edge1");
  Incident acked = incident();
  acked.status = IncidentStatus::kAcknowledged;
  EXPECT_EQ(json::parse(render_body(s, policy(), {"acknowledged", acked}, "k", kNow))["event_action"], "acknowledge");
  EXPECT_EQ(json::parse(render_body(s, policy(), {"resolved", acked}, "k", kNow))["event_action"], "resolve");
}

// Pages carry the alert's summary in words (target, cause, evidence); the
// rule's expression reaches operators in the webhook's incident JSON only.
TEST(SinksTest, PagesCarryTheSummaryNotTheRuleExpression) {
  Incident inc = incident();
  inc.title = "web-1 unreachable";
  inc.impacted.front().target = "web-1";
  inc.impacted.front().summary = "web-1 unreachable: no reply from 198.51.100.2 to 1 echo and 12 of 12 confirmation echoes lost";
  inc.impacted.front().expression = "consecutive_failures >= 3 or confirmed_down (consecutive_failures=1 confirmed_down=true)";
  const NotificationEvent e{"declared", inc};
  const json am = json::parse(render_body(sink(SinkType::kAlertmanager), policy(), e, "k", kNow));
  EXPECT_EQ(am[0]["annotations"]["summary"], "web-1 unreachable");
  EXPECT_EQ(am[0]["annotations"]["description"], inc.impacted.front().summary);
  const json pd = json::parse(render_body(sink(SinkType::kPagerDuty), policy(), e, "k", kNow));
  EXPECT_EQ(pd["payload"]["custom_details"]["impact"], inc.impacted.front().summary);
  for (SinkType type : {SinkType::kAlertmanager, SinkType::kPagerDuty, SinkType::kSlack}) {
    const std::string body = render_body(sink(type), policy(), e, "k", kNow);
    EXPECT_EQ(body.find("consecutive_failures"), std::string::npos) << body;
    EXPECT_NE(body.find("12 of 12 confirmation echoes lost"), std::string::npos) << body;
  }
  const json hook = json::parse(render_body(sink(SinkType::kWebhook), policy(), e, "k", kNow));
  EXPECT_EQ(hook["incident"]["title"], "web-1 unreachable");
  EXPECT_EQ(hook["incident"]["impacted"][0]["summary"], inc.impacted.front().summary);
  EXPECT_EQ(hook["incident"]["impacted"][0]["expression"], inc.impacted.front().expression);
}

TEST(SinksTest, AlertmanagerFiringHasNoEndAndResolvedEnds) {
  SinkSpec s = sink(SinkType::kAlertmanager);
  json firing = json::parse(render_body(s, policy(), {"declared", incident()}, "k", kNow));
  ASSERT_TRUE(firing.is_array());
  EXPECT_EQ(firing[0]["labels"]["alertname"], "NightshiftIncident");
  EXPECT_EQ(firing[0]["labels"]["incident"], "NS-20261124-0007");
  EXPECT_EQ(firing[0]["labels"]["site"], "ams1");
  EXPECT_EQ(firing[0]["labels"]["severity"], "critical");
  EXPECT_EQ(firing[0]["annotations"]["summary"], "core-ams1: target_down");
  EXPECT_EQ(firing[0]["startsAt"], format_time(incident().started_at));
  EXPECT_EQ(firing[0]["generatorURL"], "http://status.example.net/status#NS-20261124-0007");
  EXPECT_FALSE(firing[0].contains("endsAt"));
  Incident done = incident();
  done.status = IncidentStatus::kResolved;
  done.resolved_at = kNow;
  json resolved = json::parse(render_body(s, policy(), {"resolved", done}, "k", kNow));
  EXPECT_EQ(resolved[0]["endsAt"], format_time(kNow));
}

TEST(SinksTest, NoticeIsPlainLanguageWithoutInternalDetail) {
  SinkSpec s = sink(SinkType::kNotice);
  s.audience = "Business customers in Amsterdam";
  const std::string body = render_body(s, policy(), {"declared", incident()}, "k", kNow);
  EXPECT_EQ(body.find("core-ams1"), std::string::npos) << body;
  EXPECT_EQ(body.find("target_down"), std::string::npos) << body;
  EXPECT_EQ(body.find("198.51.100.1"), std::string::npos) << body;
  const json j = json::parse(body);
  EXPECT_EQ(j["audience"], "Business customers in Amsterdam");
  EXPECT_NE(j["message"].get<std::string>().find("We are aware of a problem affecting group core, site ams1"),
            std::string::npos)
      << j["message"];
  EXPECT_NE(j["message"].get<std::string>().find("We will update you by"), std::string::npos);

  Incident with_note = incident();
  with_note.timeline.push_back({kNow, "note", "A fibre cut near Haarlem; repair crew on site.", true, "noc"});
  EXPECT_TRUE(sink_wants(s, {"note", with_note}, false));
  EXPECT_NE(notice_text({"note", with_note}).find("fibre cut near Haarlem"), std::string::npos);
  EXPECT_FALSE(sink_wants(s, {"note", incident()}, false)) << "an internal note is not news for customers";
  EXPECT_FALSE(sink_wants(s, {"updated", incident()}, false));
  Incident vantage = incident();
  vantage.vantage = true;
  EXPECT_FALSE(sink_wants(s, {"declared", vantage}, false)) << "the agent's own isolation is not an outage";
}

TEST(SinksTest, RoutesBySeverityScopeAndEscalation) {
  SinkSpec pager = sink(SinkType::kPagerDuty);
  pager.min_severity = Severity::kCritical;
  pager.match = {{"site", "ams1"}};
  EXPECT_TRUE(sink_wants(pager, {"declared", incident(Severity::kCritical)}, false));
  EXPECT_FALSE(sink_wants(pager, {"declared", incident(Severity::kWarning)}, false));
  Incident elsewhere = incident();
  elsewhere.scope["site"] = "fra2";
  EXPECT_FALSE(sink_wants(pager, {"declared", elsewhere}, false));
  EXPECT_FALSE(sink_wants(pager, {"refresh", incident()}, false));
  EXPECT_FALSE(sink_wants(pager, {"escalated", incident()}, false)) << "only escalation sinks hear escalations";

  SinkSpec second = sink(SinkType::kSlack);
  second.escalation_only = true;
  EXPECT_FALSE(sink_wants(second, {"declared", incident()}, false));
  EXPECT_TRUE(sink_wants(second, {"escalated", incident()}, true));
  EXPECT_TRUE(sink_wants(second, {"resolved", incident()}, true));
  EXPECT_FALSE(sink_wants(second, {"resolved", incident()}, false));

  SinkSpec am = sink(SinkType::kAlertmanager);
  EXPECT_TRUE(sink_wants(am, {"refresh", incident()}, false));
  EXPECT_FALSE(sink_wants(am, {"note", incident()}, false));
}

TEST(SinksTest, SlackTextNamesTheIncidentAndLinksTheStatusPage) {
  const json j = json::parse(render_body(sink(SinkType::kSlack), policy(), {"declared", incident()}, "k", kNow));
  const std::string text = j["text"];
  EXPECT_NE(text.find("*DECLARED* [critical] NS-20261124-0007: core-ams1: target_down"), std::string::npos) << text;
  EXPECT_NE(text.find("<http://status.example.net/status#NS-20261124-0007|status page>"), std::string::npos) << text;
}

// Issue 21: target names like `Zürich <core> & co` are accepted, and Slack
// reads & < > as control characters.
TEST(SinksTest, SlackEscapesAmpersandAndAngleBracketsEverywhereTheIncidentSpeaks) {
  EXPECT_EQ(slack_escape("Zürich <core> & co"), "Zürich &lt;core&gt; &amp; co");
  EXPECT_EQ(slack_escape("a&amp;b"), "a&amp;amp;b") << "already-escaped text is text, escaped again";
  Incident inc = incident();
  inc.title = "Zürich <core> & co: target_down";
  inc.impacted.front().target = "Zürich <core> & co";
  inc.scope = {{"site", "zrh <1>"}};
  inc.timeline.push_back({inc.declared_at, "note", "fibre cut <@here> & more", false, "noc"});
  for (const char* event : {"declared", "note", "resolved", "acknowledged"}) {
    SCOPED_TRACE(event);
    const json j = json::parse(render_body(sink(SinkType::kSlack), policy(), {event, inc}, "k", kNow));
    std::vector<std::string> texts = {j["text"], j["attachments"][0]["fallback"]};
    for (const auto& b : j["attachments"][0]["blocks"]) {
      if (b.contains("text")) texts.push_back(b["text"]["text"]);
      if (b["type"] == "context") texts.push_back(b["elements"][0]["text"]);
    }
    bool named = false;
    for (const auto& t : texts) {
      // The only raw < > left are the status page link's own.
      std::string rest = t;
      const std::string link = "<http://status.example.net/status#NS-20261124-0007|status page>";
      if (auto at = rest.find(link); at != std::string::npos) rest.erase(at, link.size());
      EXPECT_EQ(rest.find('<'), std::string::npos) << t;
      EXPECT_EQ(rest.find('>'), std::string::npos) << t;
      for (std::size_t at = rest.find('&'); at != std::string::npos; at = rest.find('&', at + 1)) {
        const bool entity = rest.compare(at, 5, "&amp;") == 0 || rest.compare(at, 4, "&lt;") == 0 ||
                            rest.compare(at, 4, "&gt;") == 0;
        EXPECT_TRUE(entity) << "a bare & in: " << t;
      }
      named = named || t.find("Zürich &lt;core&gt; &amp; co") != std::string::npos;
    }
    EXPECT_TRUE(named) << "the target's name, escaped, is in the message";
  }
  const json note = json::parse(render_body(sink(SinkType::kSlack), policy(), {"note", inc}, "k", kNow));
  EXPECT_NE(note["text"].get<std::string>().find("fibre cut &lt;@here&gt; &amp; more"), std::string::npos)
      << "a note cannot mention @here";
}

TEST(SinksTest, SlackUsesBlocksInAnAttachmentColouredBySeverityGreenWhenResolved) {
  std::map<std::string, std::string> colours;
  for (Severity level : kSeverities) {
    const std::string severity(to_string(level));
    const json j = json::parse(render_body(sink(SinkType::kSlack), policy(), {"declared", incident(level)}, "k", kNow));
    ASSERT_EQ(j["attachments"].size(), 1u);
    const json& a = j["attachments"][0];
    colours[severity] = a["color"];
    EXPECT_EQ(a["color"].get<std::string>().size(), 7u) << "#rrggbb";
    ASSERT_GE(a["blocks"].size(), 3u);
    EXPECT_EQ(a["blocks"][0]["type"], "section");
    EXPECT_EQ(a["blocks"][0]["text"]["type"], "mrkdwn");
    EXPECT_NE(a["blocks"][0]["text"]["text"].get<std::string>().find("*DECLARED* [" + std::string(severity) + "]"),
              std::string::npos);
    const json& actions = a["blocks"].back();
    EXPECT_EQ(actions["type"], "actions");
    EXPECT_EQ(actions["elements"][0]["url"], "http://status.example.net/status#NS-20261124-0007");
    for (const auto& b : a["blocks"]) {
      if (b.contains("text")) {
        EXPECT_LE(b["text"]["text"].get<std::string>().size(), 3000u);
      }
    }
  }
  EXPECT_EQ(colours.size(), 3u);
  EXPECT_NE(colours["critical"], colours["warning"]);
  EXPECT_NE(colours["warning"], colours["info"]);
  EXPECT_NE(colours["critical"], colours["info"]);
  const json resolved = json::parse(render_body(sink(SinkType::kSlack), policy(), {"resolved", incident()}, "k", kNow));
  EXPECT_EQ(resolved["attachments"][0]["color"], "#2eb67d");
  EXPECT_NE(resolved["attachments"][0]["color"], colours["critical"]);
}

TEST(SinksTest, SlackSectionsStayWithinSlacksLimitWithoutCuttingAnEntity) {
  Incident inc = incident();
  inc.impacted.clear();
  for (int i = 0; i < 5; ++i) {
    inc.impacted.push_back({std::string(700, '&'), "icmp", "target_down", Severity::kCritical, "down", "", inc.started_at, true, ""});
  }
  const json j = json::parse(render_body(sink(SinkType::kSlack), policy(), {"declared", inc}, "k", kNow));
  for (const auto& b : j["attachments"][0]["blocks"]) {
    if (!b.contains("text")) continue;
    const std::string t = b["text"]["text"];
    EXPECT_LE(t.size(), 3000u);
    const std::size_t amp = t.rfind('&');
    if (amp != std::string::npos) {
      EXPECT_NE(t.find(';', amp), std::string::npos) << "cut inside an entity";
    }
  }
}

}  // namespace
}  // namespace nightshift
