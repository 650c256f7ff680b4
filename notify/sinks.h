// Sinks: where notifications go, and what each one receives.
//
// A sink is an HTTP endpoint of one type:
//   webhook       the documented, versioned nightshift JSON (docs/notifications.md),
//                 signed with HMAC-SHA256 over "<timestamp>.<body>" when a secret is set
//   alertmanager  POST /api/v2/alerts: one alert per incident, re-posted while
//                 firing so it never expires, endsAt on resolve
//   pagerduty     Events API v2: trigger / acknowledge / resolve, dedup_key = incident id
//   slack         an incoming webhook's message: a `text` for notifications, and an
//                 attachment coloured by severity (green once resolved) holding
//                 Block Kit sections; incident text escaped for Slack (&, <, >)
//   notice        plain language for customers and stakeholders (an SMS or
//                 e-mail gateway): no internal detail, only public updates
//
// Rendering is split in two. The body is rendered when a notification is
// written to the outbox (a snapshot of the incident at that moment, with no
// secret in it, so the outbox on disk holds none); the request — signature,
// routing key, auth header — is prepared at each delivery attempt.
//
// Pure functions; thread safety: none needed.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "incidents/incidents.h"
#include "nightshift/clock.h"
#include "nightshift/incident.h"

namespace nightshift {

enum class SinkType { kWebhook, kAlertmanager, kPagerDuty, kSlack, kNotice };
std::string_view to_string(SinkType type);
std::optional<SinkType> sink_type_from(std::string_view name);

struct SinkSpec {
  std::string name;  // unique; the `sink` metric label
  SinkType type = SinkType::kWebhook;
  std::string url;
  // Route: which incidents reach this sink.
  Severity min_severity = Severity::kInfo;          // the least severe incident it hears of
  std::map<std::string, std::string> match;         // scope labels that must be equal (site, group...)
  bool escalation_only = false;                     // only escalations of unacknowledged incidents
  std::string audience;                             // notice: who is told, e.g. "Business customers in AMS"
  // Secrets, from *_file / *_env keys: never logged, exported or stored in the outbox.
  std::string secret;       // webhook: HMAC key
  std::string routing_key;  // pagerduty: integration key
  std::string bearer_token; // any type: Authorization: Bearer ...
  Duration timeout = std::chrono::seconds(10);
  bool tls_verify = true;
};

struct NotifyPolicy {
  std::string status_url;  // link to the status page in every payload; empty: the agent's own /status
  std::string agent_name = "nightshift";
  Duration max_backoff = std::chrono::minutes(5);
  Duration first_backoff = std::chrono::seconds(1);
  Duration dead_after = std::chrono::hours(24);  // undelivered this long: dead-lettered
  Duration renotify_every{};                     // zero: never; unacknowledged critical incidents
  Duration escalate_after{};                     // zero: never
  Duration alertmanager_refresh = std::chrono::minutes(1);
};

// The events a notification can be about: the incident manager's, plus the
// notifier's own renotify, escalated and refresh (Alertmanager keep-alive).
struct NotificationEvent {
  std::string event;  // declared, updated, acknowledged, note, resolved, reopened, merged,
                      // update_overdue, renotify, escalated, refresh
  Incident incident;
};

// Does this sink want this event at all (type and route)? `escalated` is true
// for sinks the incident has escalated to.
bool sink_wants(const SinkSpec& sink, const NotificationEvent& e, bool escalated);

// The body written to the outbox. Never contains a secret.
std::string render_body(const SinkSpec& sink, const NotifyPolicy& policy, const NotificationEvent& e,
                        const std::string& idempotency_key, SystemTime now);

struct OutgoingRequest {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// The request for one delivery attempt: adds the timestamp and signature
// (webhook), the routing key (pagerduty) and auth headers. `now` is the attempt time.
OutgoingRequest prepare_request(const SinkSpec& sink, const std::string& body, const std::string& idempotency_key,
                            SystemTime now);

// Lowercase hex HMAC-SHA256 of `message` under `key`.
std::string hmac_sha256_hex(const std::string& key, const std::string& message);

// Slack's escaping of text it would otherwise parse: & < > as &amp; &lt; &gt;. Pure.
std::string slack_escape(std::string_view text);

// The plain-language text of a customer notice. No target names, rules or
// internal notes: only the scope, times and public updates.
std::string notice_text(const NotificationEvent& e);

}  // namespace nightshift
