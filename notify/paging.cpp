#include "notify/paging.h"

#include <algorithm>

namespace nightshift {

namespace {
std::int64_t unix_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

bool is_page(IncidentEvent::Kind k) {
  return k == IncidentEvent::Kind::kDeclared || k == IncidentEvent::Kind::kReopened;
}
}  // namespace

Paging::Paging(const Clock& clock, std::vector<SinkSpec> sinks, NotifyPolicy policy, SilenceCheck silenced)
    : clock_(clock), sinks_(std::move(sinks)), policy_(std::move(policy)), silenced_(std::move(silenced)) {}

void Paging::configure(std::vector<SinkSpec> sinks, NotifyPolicy policy) {
  sinks_ = std::move(sinks);
  policy_ = std::move(policy);
}

bool Paging::needs_attention(const Tracked& t) const {
  return t.incident.severity == Severity::kCritical && t.incident.status == IncidentStatus::kDeclared;
}

std::vector<OutboxEntry> Paging::rows_for(const std::string& event, Tracked& t, const std::string& key_suffix,
                                          bool coalesce) {
  std::vector<OutboxEntry> out;
  const NotificationEvent e{event, t.incident};
  const SystemTime now = clock_.wall_now();
  // Silenced: no new page; closing news still reaches whoever was paged.
  const bool closing = event == "acknowledged" || event == "resolved" || event == "merged";
  const bool quiet = silenced(t.incident);
  for (const auto& sink : sinks_) {
    if (!sink_wants(sink, e, t.escalated)) continue;
    if (quiet && !(closing && t.told.count(sink.name))) continue;
    OutboxEntry row;
    row.sink = sink.name;
    row.key = t.incident.id + ":" + event + ":" + key_suffix;
    row.incident = t.incident.id;
    row.event = event;
    row.body = render_body(sink, policy_, e, row.key, now);
    row.created_ms = unix_ms(now);
    row.coalesce = coalesce;
    t.told.insert(sink.name);
    out.push_back(std::move(row));
  }
  return out;
}

std::vector<OutboxEntry> Paging::on_event(const IncidentEvent& event) {
  const Incident& inc = event.incident;
  const SteadyTime now = clock_.now();
  auto it = open_.find(inc.id);
  if (it == open_.end()) {
    Tracked t;
    t.declared = now - std::max<Duration>(Duration::zero(), clock_.wall_now() - inc.declared_at);
    t.last_notified = now;
    t.last_refresh = now;
    it = open_.emplace(inc.id, std::move(t)).first;
  }
  Tracked& t = it->second;
  t.incident = inc;
  if (is_page(event.kind)) {
    t.last_notified = now;
    t.last_refresh = now;
  }
  if (event.kind == IncidentEvent::Kind::kReopened) t.escalated = false;
  // Timeline length makes the key unique per change and the same on every retry.
  std::string suffix = std::to_string(inc.timeline.size());
  if (event.kind == IncidentEvent::Kind::kUpdateOverdue) suffix += "-" + std::to_string(unix_ms(inc.next_update_due));
  std::vector<OutboxEntry> rows = rows_for(std::string(to_string(event.kind)), t, suffix);
  if (!inc.open()) open_.erase(inc.id);
  return rows;
}

std::vector<OutboxEntry> Paging::tick() {
  std::vector<OutboxEntry> out;
  const SteadyTime now = clock_.now();
  const std::string stamp = std::to_string(unix_ms(clock_.wall_now()));
  for (auto& [id, t] : open_) {
    if (!t.incident.open() || silenced(t.incident)) continue;
    if (needs_attention(t) && policy_.escalate_after > Duration::zero() && !t.escalated &&
        now - t.declared >= policy_.escalate_after) {
      t.escalated = true;
      auto rows = rows_for("escalated", t, stamp);
      out.insert(out.end(), rows.begin(), rows.end());
    }
    if (needs_attention(t) && policy_.renotify_every > Duration::zero() &&
        now - t.last_notified >= policy_.renotify_every) {
      t.last_notified = now;
      auto rows = rows_for("renotify", t, stamp);
      out.insert(out.end(), rows.begin(), rows.end());
    }
    if (now - t.last_refresh >= policy_.alertmanager_refresh) {
      t.last_refresh = now;
      auto rows = rows_for("refresh", t, stamp, /*coalesce=*/true);
      out.insert(out.end(), rows.begin(), rows.end());
    }
  }
  return out;
}

std::optional<SteadyTime> Paging::next_deadline() const {
  std::optional<SteadyTime> next;
  auto consider = [&](SteadyTime t) {
    if (!next || t < *next) next = t;
  };
  const bool any_alertmanager = std::any_of(sinks_.begin(), sinks_.end(),
                                            [](const SinkSpec& s) { return s.type == SinkType::kAlertmanager; });
  for (const auto& [id, t] : open_) {
    if (!t.incident.open()) continue;
    if (any_alertmanager) consider(t.last_refresh + policy_.alertmanager_refresh);
    if (!needs_attention(t)) continue;
    if (policy_.escalate_after > Duration::zero() && !t.escalated) consider(t.declared + policy_.escalate_after);
    if (policy_.renotify_every > Duration::zero()) consider(t.last_notified + policy_.renotify_every);
  }
  return next;
}

void Paging::restore(const std::vector<Incident>& incidents) {
  const SteadyTime now = clock_.now();
  for (const auto& inc : incidents) {
    if (!inc.open()) continue;
    Tracked t;
    t.incident = inc;
    t.declared = now - std::max<Duration>(Duration::zero(), clock_.wall_now() - inc.declared_at);
    t.last_notified = now;
    t.last_refresh = now - policy_.alertmanager_refresh;  // re-post to Alertmanager soon after a restart
    // Not escalated: if escalate_after has passed, the next tick escalates
    // (again, perhaps; at least once).
    for (const auto& s : sinks_) t.told.insert(s.name);
    open_[inc.id] = std::move(t);
  }
}

}  // namespace nightshift
