#include "incidents/incidents.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>

namespace nightshift {

std::string_view to_string(IncidentStatus status) {
  switch (status) {
    case IncidentStatus::kDeclared: return "declared";
    case IncidentStatus::kAcknowledged: return "acknowledged";
    case IncidentStatus::kResolved: return "resolved";
  }
  return "declared";
}

std::string_view to_string(IncidentEvent::Kind kind) {
  switch (kind) {
    case IncidentEvent::Kind::kDeclared: return "declared";
    case IncidentEvent::Kind::kUpdated: return "updated";
    case IncidentEvent::Kind::kAcknowledged: return "acknowledged";
    case IncidentEvent::Kind::kNote: return "note";
    case IncidentEvent::Kind::kResolved: return "resolved";
    case IncidentEvent::Kind::kReopened: return "reopened";
    case IncidentEvent::Kind::kMerged: return "merged";
    case IncidentEvent::Kind::kUpdateOverdue: return "update_overdue";
  }
  return "updated";
}

std::size_t Incident::active_impact() const {
  return static_cast<std::size_t>(
      std::count_if(impacted.begin(), impacted.end(), [](const ImpactedTarget& t) { return t.active; }));
}

namespace {
bool same_alert(const ImpactedTarget& t, const rules::AlertEvent& a) {
  return t.target == a.target && t.probe == a.probe && t.rule == a.rule;
}
}  // namespace

IncidentManager::IncidentManager(const Clock& clock, IncidentPolicy policy) : clock_(clock), policy_(std::move(policy)) {}

void IncidentManager::set_targets(const std::vector<std::shared_ptr<const Target>>& targets) {
  targets_.clear();
  behind_.clear();
  roots_ = 0;
  scope_members_.clear();
  for (const auto& t : targets) targets_[t->name] = t;
  for (const auto& [name, t] : targets_) {
    if (t->depends_on.empty()) {
      ++roots_;
      // Targets with no parent, by scope: the scope-mates an evidence hold asks.
      scope_members_[scope_of(name)].push_back(name);
    }
    // Bounded walk up the chain (config rejects loops; the bound is for safety).
    std::string at = t->depends_on;
    for (std::size_t hops = 0; !at.empty() && hops < targets_.size(); ++hops) {
      ++behind_[at];
      auto parent = targets_.find(at);
      if (parent == targets_.end()) break;
      at = parent->second->depends_on;
    }
  }
  // A reload: held alerts do not wait for targets that are gone.
  for (auto& h : held_) {
    std::erase_if(h.awaiting, [&](const std::string& t) { return !targets_.count(t); });
    std::erase_if(h.mates, [&](const std::string& t) { return !targets_.count(t); });
  }
}

SystemTime IncidentManager::wall(SteadyTime t) const {
  return clock_.wall_now() - std::chrono::duration_cast<SystemTime::duration>(clock_.now() - t);
}

std::map<std::string, std::string> IncidentManager::scope_of(const std::string& target) const {
  std::map<std::string, std::string> scope;
  auto it = targets_.find(target);
  for (const auto& label : policy_.group_by) {
    std::string value;
    if (it != targets_.end()) {
      const Target& t = *it->second;
      if (label == "site") value = t.site;
      else if (label == "group") value = t.group;
      else if (label == "target") value = t.name;
      else if (auto l = t.labels.find(label); l != t.labels.end()) value = l->second;
    }
    scope[label] = value;
  }
  return scope;
}

namespace {
constexpr std::string_view kTagAlphabet = "abcdefghjkmnpqrstuvwxyz23456789";  // 31: no i, l, o, 0, 1
constexpr std::size_t kTagLength = 6;
}  // namespace

std::string new_id_tag(std::uint64_t random) {
  std::string tag;
  for (std::size_t i = 0; i < kTagLength; ++i) {
    tag += kTagAlphabet[random % kTagAlphabet.size()];
    random /= kTagAlphabet.size();
  }
  return tag;
}

bool valid_id_tag(std::string_view tag) {
  return tag.size() == kTagLength &&
         std::all_of(tag.begin(), tag.end(), [](char c) { return kTagAlphabet.find(c) != std::string_view::npos; });
}

std::uint64_t id_sequence(std::string_view id, std::string_view tag) {
  // NS-YYYYMMDD-<tag>-<digits>
  const std::size_t head = 3 + 8 + 1;
  if (tag.empty() || id.size() <= head + tag.size() + 1 || id.substr(0, 3) != "NS-" ||
      id.substr(head, tag.size()) != tag || id[head + tag.size()] != '-') {
    return 0;
  }
  std::uint64_t n = 0;
  for (char c : id.substr(head + tag.size() + 1)) {
    if (c < '0' || c > '9' || n > (UINT64_MAX - 9) / 10) return 0;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n;
}

const std::string& IncidentManager::id_tag() const {
  if (id_tag_.empty()) {
    // FNV-1a of the name: the same tag on every run of a store-less tool.
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : policy_.agent_name) h = (h ^ c) * 0x100000001b3ull;
    id_tag_ = new_id_tag(h);
  }
  return id_tag_;
}

std::string IncidentManager::new_id() {
  const std::time_t secs = std::chrono::system_clock::to_time_t(clock_.wall_now());
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "NS-%04d%02d%02d-%s-%04llu", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                id_tag().c_str(), static_cast<unsigned long long>(next_sequence_++));
  return buf;
}

// What failed, in words: "unreachable" for a reachability probe that is down,
// "service tcp_443 down" for a service probe, else the rule's name in words.
std::string IncidentManager::what_failed(const ImpactedTarget& t) const {
  if (t.rule == "target_down") {
    std::string kind;
    if (auto it = targets_.find(t.target); it != targets_.end()) {
      for (const auto& p : it->second->probes) {
        if (p.name == t.probe) kind = p.kind;
      }
    }
    if (kind == "icmp" || kind.empty()) return "unreachable";
    if (kind == "snmp") return "not answering SNMP";
    return "service " + t.probe + " down";
  }
  std::string words = t.rule;
  std::replace(words.begin(), words.end(), '_', ' ');
  return words;
}

void IncidentManager::retitle(Incident& inc) const {
  std::vector<const ImpactedTarget*> active;
  std::set<std::string> targets;
  for (const auto& t : inc.impacted) {
    if (!t.active) continue;
    active.push_back(&t);
    targets.insert(t.target);
  }
  // Resolved: the title keeps naming what it was about.
  if (active.empty()) {
    for (const auto& t : inc.impacted) {
      active.push_back(&t);
      targets.insert(t.target);
    }
  }
  auto plural = [](std::size_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
  };
  if (inc.vantage) {
    inc.title = "Agent " + policy_.agent_name + " cannot reach " + std::to_string(targets.size()) + " of " +
                plural(targets_.size(), "target", "targets") + ": its own vantage point is isolated";
    return;
  }
  if (active.empty()) return;
  // The targets configured behind one (depends_on) are cut off with it: the
  // first page says so before their own confirmations join.
  auto behind_of = [&](const std::string& target, std::size_t joined) {
    auto it = behind_.find(target);
    const std::size_t n = std::max(joined, it == behind_.end() ? std::size_t{0} : it->second);
    return n == 0 ? std::string() : " (" + plural(n, "target", "targets") + " behind it)";
  };
  if (targets.size() == 1) {
    // One target: what failed, once per distinct kind of failure.
    std::set<std::string> whats;
    std::string what;
    for (const auto* t : active) {
      if (whats.insert(what_failed(*t)).second) what += (what.empty() ? "" : ", ") + what_failed(*t);
    }
    inc.title = *targets.begin() + (what.rfind("service ", 0) == 0 || whats.size() > 1 ? ": " : " ") + what +
                behind_of(*targets.begin(), 0);
    return;
  }
  // One failing target with the rest behind it (depends_on): named after it.
  std::set<std::string> roots;
  const ImpactedTarget* root = nullptr;
  for (const auto* t : active) {
    if (t->via_parent.empty()) {
      roots.insert(t->target);
      root = t;
    }
  }
  if (roots.size() == 1) {
    const std::string what = what_failed(*root);
    inc.title = root->target + (what.rfind("service ", 0) == 0 ? ": " : " ") + what +
                behind_of(root->target, targets.size() - 1);
    return;
  }
  // Several failing on their own: where (the scope in words, site first),
  // what, counted as it is (services when only services failed), and the
  // first few names, so the page says which without opening the incident.
  std::string scope;
  auto add_scope = [&](const std::string& key, const std::string& value) {
    if (!value.empty()) scope += (scope.empty() ? "" : ", ") + key + " " + value;
  };
  if (auto it = inc.scope.find("site"); it != inc.scope.end()) add_scope("site", it->second);
  for (const auto& [k, v] : inc.scope) {
    if (k != "site") add_scope(k, v);
  }
  // Named in the order they joined: the first to fail first.
  bool all_unreachable = true, all_services = true;
  std::vector<std::string> services, target_order;
  std::set<std::string> seen_services, seen_targets;
  for (const auto* t : active) {
    const std::string what = what_failed(*t);
    all_unreachable = all_unreachable && what == "unreachable";
    all_services = all_services && what.rfind("service ", 0) == 0;
    if (seen_services.insert(t->target + " " + t->probe).second) services.push_back(t->target + " " + t->probe);
    if (seen_targets.insert(t->target).second) target_order.push_back(t->target);
  }
  const std::vector<std::string>& named = all_services ? services : target_order;
  std::string what = all_services      ? plural(services.size(), "service", "services") + " down"
                     : all_unreachable ? plural(targets.size(), "target", "targets") + " unreachable"
                                       : plural(targets.size(), "target", "targets") + " down";
  constexpr std::size_t kNamed = 3;
  std::string names;
  std::size_t n = 0;
  for (const auto& name : named) {
    if (n == kNamed && named.size() > kNamed + 1) {
      names += " and " + std::to_string(named.size() - kNamed) + " more";
      break;
    }
    names += (n == 0 ? "" : n + 1 == named.size() ? " and " : ", ") + name;
    ++n;
  }
  inc.title = (scope.empty() ? std::string() : scope + ": ") + what + " (" + names + ")";
}

void IncidentManager::touch(State& s, const std::string& kind, const std::string& text) {
  s.incident.timeline.push_back({clock_.wall_now(), kind, text, false, ""});
  s.last_change = clock_.now();
  std::optional<Severity> worst;
  for (const auto& t : s.incident.impacted) {
    if (t.active) worst = std::max(worst.value_or(t.severity), t.severity);
  }
  if (worst) s.incident.severity = *worst;
  retitle(s.incident);
  // Every notification's title says it, the resolve's too.
  if (s.incident.flapping) s.incident.title += " (flapping)";
}

ImpactedTarget IncidentManager::impact_of(const rules::AlertEvent& alert, const std::string& via_parent) const {
  ImpactedTarget t;
  t.target = alert.target;
  t.probe = alert.probe;
  t.rule = alert.rule;
  t.severity = alert.severity;
  t.summary = alert.summary;
  t.expression = alert.expression;
  t.via_parent = via_parent;
  t.since = wall(alert.since == SteadyTime{} ? alert.change.at : alert.since);
  return t;
}

IncidentEvent IncidentManager::declare(std::map<std::string, std::string> scope, std::vector<ImpactedTarget> impact,
                                       bool vantage) {
  // Memory stays bounded over months of uptime: forget long-resolved incidents.
  const Duration keep = std::max(policy_.keep_resolved, policy_.reopen_window);
  std::erase_if(incidents_, [&](const auto& entry) {
    return !entry.second.incident.open() && clock_.now() - entry.second.resolved_steady > keep;
  });
  const std::string id = new_id();
  State& s = incidents_[id];
  Incident& inc = s.incident;
  inc.id = id;
  inc.scope = std::move(scope);
  inc.impacted = std::move(impact);
  inc.vantage = vantage;
  inc.declared_at = clock_.wall_now();
  inc.started_at = inc.declared_at;
  for (const auto& t : inc.impacted) inc.started_at = std::min(inc.started_at, t.since);
  inc.next_update_due = clock_.wall_now() + std::chrono::duration_cast<SystemTime::duration>(policy_.update_every);
  s.next_update_steady = clock_.now() + policy_.update_every;
  touch(s, "declared", "");
  s.incident.timeline.back().text = "declared: " + inc.title;
  return {IncidentEvent::Kind::kDeclared, inc, true};
}

IncidentManager::State* IncidentManager::open_incident_with(const std::string& target) {
  for (auto& [id, s] : incidents_) {
    if (!s.incident.open()) continue;
    for (const auto& t : s.incident.impacted) {
      if (t.active && t.target == target) return &s;
    }
  }
  return nullptr;
}

IncidentManager::State* IncidentManager::open_incident_for_scope(const std::map<std::string, std::string>& scope) {
  for (auto& [id, s] : incidents_) {
    if (s.incident.open() && !s.incident.vantage && s.incident.scope == scope) return &s;
  }
  return nullptr;
}

bool IncidentManager::vantage_plausible() const {
  for (const auto& [name, t] : targets_) {
    if (t->canary && critical_targets_.count(name)) return true;
  }
  return false;
}

std::vector<IncidentEvent> IncidentManager::on_alert(const rules::AlertEvent& alert) {
  const rules::AlertChange& c = alert.change;
  const bool fires = c.notify && c.to == rules::AlertPhase::kFiring && c.from != rules::AlertPhase::kFiring;
  // A change that starts or ends flapping is still the change it is (a fire
  // pages, a resolve resolves); the mark goes on the incident that holds the
  // alert, after a fire placed it, before a resolve closes it.
  std::vector<IncidentEvent> events;
  if (c.flapping_changed && !fires) on_flapping(alert);
  if (fires) {
    events = on_fired(alert);
    if (c.flapping_changed || c.flapping) on_flapping(alert);
    return events;
  }
  if (c.notify && c.from == rules::AlertPhase::kFiring && c.to == rules::AlertPhase::kInactive) {
    return on_resolved(alert);
  }
  return events;
}

void IncidentManager::on_flapping(const rules::AlertEvent& alert) {
  State* s = nullptr;
  for (auto& [id, st] : incidents_) {
    if (!st.incident.open()) continue;
    for (const auto& t : st.incident.impacted) {
      if (t.active && same_alert(t, alert)) s = &st;
    }
  }
  if (s == nullptr) return;  // held, or its incident was resolved by hand: nothing to mark
  const rules::AlertChange& c = alert.change;
  auto seconds = [](Duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + " s";
  };
  const std::string subject = alert.target + (alert.probe == "icmp" ? "" : " " + alert.probe) + " (" + alert.rule + ")";
  if (c.flapping) {
    if (s->incident.flapping && !c.flapping_changed) return;  // marked already
    if (!s->incident.flapping) s->incident.flapping_since = wall(c.at - c.flap_span);
    s->incident.flapping = true;
    touch(*s, "flapping",
          "flapping: " + subject + ": " + std::to_string(c.flap_changes) + " down/up changes in " + seconds(c.flap_span) +
              "; it resolves once it holds up (one incident, no further page)");
  } else if (c.to == rules::AlertPhase::kInactive) {
    touch(*s, "settled", "settled: " + subject + " held up after flapping");
  } else {
    touch(*s, "settled", "settled: " + subject + " down steadily, no longer flapping");
  }
  // The on-call hears of it as an update (chat, the incident's PagerDuty and
  // Alertmanager alert), never as a second page: they were paged for this
  // incident already, and "it flaps" changes what they look for (a bad
  // link, a port, a duplex mismatch), not whether they get up.
  if (!s->update_pending) {
    s->update_pending = true;
    s->update_due = clock_.now() + policy_.batch;
  }
}

std::vector<IncidentEvent> IncidentManager::on_fired(const rules::AlertEvent& alert) {
  if (alert.severity == Severity::kCritical) critical_targets_.insert(alert.target);
  // Every canary down: isolation is likely; ask every other target now, so
  // that the ratio is known in seconds rather than after their next rounds.
  bool canaries = false, all_canaries_down = true;
  for (const auto& [name, t] : targets_) {
    if (!t->canary) continue;
    canaries = true;
    all_canaries_down = all_canaries_down && critical_targets_.count(name) > 0;
  }
  if (canaries && all_canaries_down && alert.severity == Severity::kCritical) {
    for (const auto& [name, t] : targets_) {
      if (!critical_targets_.count(name)) request_evidence(name);
    }
  }
  // Isolation first: the alert that completes it joins the isolation incident
  // instead of declaring one of its own that would be merged at once.
  auto events = check_vantage();
  auto placed = place(alert);
  events.insert(events.end(), placed.begin(), placed.end());
  auto released = release_held(false);
  events.insert(events.end(), released.begin(), released.end());
  return events;
}

std::size_t IncidentManager::depth(const std::string& target) const {
  std::size_t d = 0;
  std::string at = target;
  for (std::size_t hops = 0; hops <= targets_.size(); ++hops) {
    auto it = targets_.find(at);
    if (it == targets_.end() || it->second->depends_on.empty()) break;
    at = it->second->depends_on;
    ++d;
  }
  return d;
}

bool IncidentManager::behind_down_parent(const std::string& target) const {
  auto it = targets_.find(target);
  std::string at = it == targets_.end() ? std::string() : it->second->depends_on;
  for (std::size_t hops = 0; !at.empty() && hops < targets_.size(); ++hops) {
    if (critical_targets_.count(at)) return true;
    auto parent = targets_.find(at);
    if (parent == targets_.end()) break;
    at = parent->second->depends_on;
  }
  return false;
}

std::set<std::string> IncidentManager::evidence_for(const std::string& target) {
  std::set<std::string> out;
  auto answered = [&](const std::string& t) { return within_hold(answered_, t); };
  // Every ancestor not known up and not down in an open incident: a child
  // never declares before its parent's state is known.
  std::string at = target;
  for (std::size_t hops = 0; hops <= targets_.size(); ++hops) {
    auto it = targets_.find(at);
    if (it == targets_.end() || it->second->depends_on.empty()) break;
    at = it->second->depends_on;
    if (!answered(at) && open_incident_with(at) == nullptr) out.insert(at);
  }
  for (const auto& [name, t] : targets_) {
    if (t->canary && name != target && !answered(name) && !critical_targets_.count(name)) out.insert(name);
  }
  return out;
}

bool IncidentManager::within_hold(const std::map<std::string, SteadyTime>& when, const std::string& target) const {
  auto a = when.find(target);
  return a != when.end() && clock_.now() - a->second <= policy_.evidence_hold;
}

std::set<std::string> IncidentManager::mates_for(const std::string& target) {
  std::set<std::string> out;
  auto self = targets_.find(target);
  if (self == targets_.end() || !self->second->depends_on.empty()) return out;
  const auto scope = scope_of(target);
  // The scope's incident is open: the alert joins it, nothing to ask.
  if (open_incident_for_scope(scope) != nullptr) return out;
  auto members = scope_members_.find(scope);
  if (members == scope_members_.end()) return out;
  for (const auto& name : members->second) {
    if (out.size() >= kScopeMatesAsked) break;
    if (name == target || critical_targets_.count(name)) continue;
    if (within_hold(answered_, name) || within_hold(no_evidence_, name)) continue;
    out.insert(name);
  }
  return out;
}

void IncidentManager::request_evidence(const std::string& target) {
  const SteadyTime now = clock_.now();
  auto [it, fresh] = evidence_asked_.try_emplace(target, now);
  if (!fresh && now - it->second < policy_.evidence_hold) return;  // asked already, the answer is coming
  it->second = now;
  evidence_requests_.push_back(target);
}

std::vector<std::string> IncidentManager::take_evidence_requests() {
  std::vector<std::string> out;
  out.swap(evidence_requests_);
  // Bounded memory: forget requests older than a hold.
  const SteadyTime now = clock_.now();
  std::erase_if(evidence_asked_, [&](const auto& e) { return now - e.second > 10 * policy_.evidence_hold; });
  std::erase_if(answered_, [&](const auto& e) { return now - e.second > 10 * policy_.evidence_hold; });
  std::erase_if(no_evidence_, [&](const auto& e) { return now - e.second > 10 * policy_.evidence_hold; });
  return out;
}

std::vector<IncidentEvent> IncidentManager::on_no_evidence(const std::vector<std::string>& targets) {
  for (const auto& t : targets) no_evidence_[t] = clock_.now();
  return release_held(false);
}

std::vector<IncidentEvent> IncidentManager::on_evidence(const std::string& target, bool up) {
  if (!up) return {};
  answered_[target] = clock_.now();
  return release_held(false);
}

std::vector<IncidentEvent> IncidentManager::release_held(bool expired) {
  const SteadyTime now = clock_.now();
  std::vector<IncidentEvent> events;
  auto answered = [&](const std::string& t) { return within_hold(answered_, t); };
  // Whether a target is down in an open incident, once per target per pass:
  // a thousand children wait for the same router.
  std::map<std::string, bool> in_incident;
  auto down_in_incident = [&](const std::string& t) {
    auto [it, fresh] = in_incident.try_emplace(t, false);
    if (fresh) it->second = open_incident_with(t) != nullptr;
    return it->second;
  };
  const std::size_t limit = 2 * held_.size() + 2;
  for (std::size_t guard = 0; guard < limit && !held_.empty(); ++guard) {
    // The ready hold nearest the root of its topology goes first, so a parent
    // declares before its children join it.
    std::optional<std::size_t> best;
    for (std::size_t i = 0; i < held_.size(); ++i) {
      Held& h = held_[i];
      bool ready = expired && h.until <= now;
      if (!h.vantage) {
        std::erase_if(h.awaiting, [&](const std::string& t) { return answered(t) || down_in_incident(t); });
        // A mate that fired is heard from: it is held beside this alert, or placed.
        std::erase_if(h.mates, [&](const std::string& t) {
          return answered(t) || within_hold(no_evidence_, t) || critical_targets_.count(t) || down_in_incident(t);
        });
        ready = ready || (h.awaiting.empty() && h.mates.empty());
      }
      if (ready && (!best || depth(h.alert.target) < depth(held_[*best].alert.target))) best = i;
    }
    if (!best) break;
    Held h = std::move(held_[*best]);
    held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(*best));
    if (!h.vantage && vantage_plausible() && h.alert.severity == Severity::kCritical) {
      // A canary went down while it waited: wait for isolation to show, briefly.
      h.vantage = true;
      h.until = now + policy_.vantage_hold;
      held_.push_back(std::move(h));
      continue;
    }
    auto placed = place(h.alert, false);
    events.insert(events.end(), placed.begin(), placed.end());
    if (h.alert.change.flapping) on_flapping(h.alert);
    in_incident.clear();  // placing it may have opened one
  }
  return events;
}

// An alert that declared (or reopened) its scope's incident takes along
// the held alerts of its scope-mates that wait for nothing but each other:
// the first page is about the site and all that failed with it, announced in
// that one declaration rather than in an update a batch later.
void IncidentManager::declare_with_mates(const rules::AlertEvent& alert, std::vector<IncidentEvent>& placed) {
  auto declared = std::find_if(placed.begin(), placed.end(), [](const IncidentEvent& e) {
    return (e.kind == IncidentEvent::Kind::kDeclared || e.kind == IncidentEvent::Kind::kReopened) &&
           !e.incident.vantage;
  });
  if (declared == placed.end()) return;
  auto state = incidents_.find(declared->incident.id);
  if (state == incidents_.end()) return;
  const auto scope = scope_of(alert.target);
  bool joined = false;
  for (std::size_t guard = 0, limit = held_.size(); guard < limit; ++guard) {
    auto mate = std::find_if(held_.begin(), held_.end(), [&](const Held& h) {
      return !h.vantage && h.awaiting.empty() && scope_of(h.alert.target) == scope;
    });
    if (mate == held_.end()) break;
    rules::AlertEvent a = mate->alert;
    held_.erase(mate);
    auto more = place(a, false);  // joins the incident just declared
    if (a.change.flapping) on_flapping(a);
    placed.insert(placed.end(), more.begin(), more.end());
    joined = true;
    declared = std::find_if(placed.begin(), placed.end(),
                            [&](const IncidentEvent& e) { return e.incident.id == state->first; });
  }
  if (!joined || declared == placed.end()) return;
  // In the order they failed: the title names the first to go first.
  Incident& inc = state->second.incident;
  std::stable_sort(inc.impacted.begin(), inc.impacted.end(),
                   [](const ImpactedTarget& a, const ImpactedTarget& b) {
                     return std::pair(!a.active, a.since) < std::pair(!b.active, b.since);
                   });
  retitle(inc);
  if (inc.flapping) inc.title += " (flapping)";
  if (declared->kind == IncidentEvent::Kind::kDeclared) {
    // It started when the first of them failed, not when the last declared.
    for (const auto& t : inc.impacted) inc.started_at = std::min(inc.started_at, t.since);
    for (auto& entry : inc.timeline) {
      if (entry.kind == "declared") entry.text = "declared: " + inc.title;
    }
  }
  declared->incident = inc;
  state->second.update_pending = false;  // the declaration carries the joins
}

std::vector<IncidentEvent> IncidentManager::place(const rules::AlertEvent& alert, bool may_hold) {
  const SteadyTime now = clock_.now();
  auto joined = [&](State& s, ImpactedTarget impact, const std::string& how) {
    auto it = std::find_if(s.incident.impacted.begin(), s.incident.impacted.end(),
                           [&](const ImpactedTarget& t) { return same_alert(t, alert); });
    if (it != s.incident.impacted.end()) {
      *it = std::move(impact);
    } else {
      s.incident.impacted.push_back(std::move(impact));
    }
    touch(s, "joined", alert.target + " (" + alert.rule + ")" + how);
    if (!s.update_pending) {
      s.update_pending = true;
      s.update_due = now + policy_.batch;
    }
  };

  // Already part of an open incident (it resolved and fired again): re-activate.
  for (auto& [id, s] : incidents_) {
    if (!s.incident.open()) continue;
    for (const auto& t : s.incident.impacted) {
      if (same_alert(t, alert)) {
        joined(s, impact_of(alert, t.via_parent), " again");
        return {};
      }
    }
  }
  // Topology: impact of a parent that is down.
  if (auto t = targets_.find(alert.target); t != targets_.end() && !t->second->depends_on.empty()) {
    if (State* parent = open_incident_with(t->second->depends_on)) {
      joined(*parent, impact_of(alert, t->second->depends_on), " behind " + t->second->depends_on);
      return {};
    }
  }
  // Isolation already declared: everything is its impact.
  for (auto& [id, s] : incidents_) {
    if (s.incident.open() && s.incident.vantage) {
      joined(s, impact_of(alert, ""), "");
      return {};
    }
  }
  if (may_hold && alert.severity == Severity::kCritical) {
    // A failing canary makes isolation plausible: hold briefly to tell.
    if (vantage_plausible()) {
      held_.push_back({alert, now + policy_.vantage_hold, {}, {}, true});
      return {};
    }
    // Ask before paging: the parents and canaries are probed now, and the
    // alert waits for their answer (bounded by evidence_hold).
    if (policy_.evidence_hold > Duration::zero()) {
      std::set<std::string> awaiting = evidence_for(alert.target);
      std::set<std::string> mates = mates_for(alert.target);
      if (!awaiting.empty() || !mates.empty()) {
        for (const auto& t : awaiting) {
          if (!critical_targets_.count(t)) request_evidence(t);
        }
        for (const auto& t : mates) request_evidence(t);
        held_.push_back({alert, now + policy_.evidence_hold, std::move(awaiting), std::move(mates), false});
        return {};
      }
    }
  }
  auto events = place_in_scope(alert);
  declare_with_mates(alert, events);
  return events;
}

std::vector<IncidentEvent> IncidentManager::place_in_scope(const rules::AlertEvent& alert) {
  const SteadyTime now = clock_.now();
  std::vector<IncidentEvent> events;
  const auto scope = scope_of(alert.target);
  if (State* open = open_incident_for_scope(scope)) {
    // Its children that went down first are its impact now: the incident is
    // about the parent (the title says so), not about whichever child failed first.
    for (auto& t : open->incident.impacted) {
      auto tt = targets_.find(t.target);
      if (t.active && t.via_parent.empty() && tt != targets_.end() && tt->second->depends_on == alert.target) {
        t.via_parent = alert.target;
      }
    }
    open->incident.impacted.push_back(impact_of(alert, ""));
    touch(*open, "joined", alert.target + " (" + alert.rule + ")");
    if (!open->update_pending) {
      open->update_pending = true;
      open->update_due = now + policy_.batch;
    }
  } else {
    // Reopen the scope's incident if it resolved recently, rather than page twice for one outage.
    State* recent = nullptr;
    for (auto& [id, s] : incidents_) {
      if (s.incident.open() || s.incident.vantage || s.incident.scope != scope) continue;
      if (now - s.resolved_steady > policy_.reopen_window) continue;
      if (!recent || s.resolved_steady > recent->resolved_steady) recent = &s;
    }
    if (recent != nullptr) {
      Incident& inc = recent->incident;
      inc.status = IncidentStatus::kDeclared;
      inc.resolved_at = {};
      inc.acknowledged_by.clear();
      inc.acknowledged_at = {};
      for (auto& t : inc.impacted) t.active = false;
      inc.flapping = false;  // a new fault: it is marked again if it flaps again
      inc.flapping_since = {};
      inc.impacted.push_back(impact_of(alert, ""));
      touch(*recent, "reopened", alert.target + " (" + alert.rule + ") fired again");
      inc.next_update_due = clock_.wall_now() + std::chrono::duration_cast<SystemTime::duration>(policy_.update_every);
      recent->next_update_steady = now + policy_.update_every;
      recent->overdue_reported = false;
      events.push_back({IncidentEvent::Kind::kReopened, inc, true});
    } else {
      events.push_back(declare(scope, {impact_of(alert, "")}, false));
    }
  }
  // Children that went down before their parent: merge their incidents into the parent's.
  State* parent = open_incident_with(alert.target);
  for (auto& [id, s] : incidents_) {
    if (&s == parent || !s.incident.open() || s.incident.vantage) continue;
    bool all_children = s.incident.active_impact() > 0;
    for (const auto& t : s.incident.impacted) {
      if (!t.active) continue;
      auto tt = targets_.find(t.target);
      if (tt == targets_.end() || tt->second->depends_on != alert.target) all_children = false;
    }
    if (!all_children || parent == nullptr) continue;
    for (auto t : s.incident.impacted) {
      if (!t.active) continue;
      t.via_parent = alert.target;
      parent->incident.impacted.push_back(t);
    }
    touch(*parent, "joined", "impact of " + alert.target + " merged from " + id);
    s.incident.status = IncidentStatus::kResolved;
    s.incident.resolved_at = clock_.wall_now();
    s.resolved_steady = now;
    touch(s, "merged", "merged into " + parent->incident.id + " (" + alert.target + " is down)");
    events.push_back({IncidentEvent::Kind::kMerged, s.incident, false});
    if (!parent->update_pending) {
      parent->update_pending = true;
      parent->update_due = now + policy_.batch;
    }
  }
  return events;
}

std::vector<IncidentEvent> IncidentManager::on_resolved(const rules::AlertEvent& alert) {
  const SteadyTime now = clock_.now();
  std::vector<IncidentEvent> events;
  held_.erase(std::remove_if(held_.begin(), held_.end(),
                             [&](const Held& h) {
                               return h.alert.target == alert.target && h.alert.probe == alert.probe &&
                                      h.alert.rule == alert.rule;
                             }),
              held_.end());
  bool still_critical = false;
  for (auto& [id, s] : incidents_) {
    if (!s.incident.open()) continue;
    bool changed = false;
    for (auto& t : s.incident.impacted) {
      if (t.active && same_alert(t, alert)) {
        t.active = false;
        changed = true;
      }
    }
    for (const auto& t : s.incident.impacted) {
      if (t.active && t.target == alert.target && t.severity == Severity::kCritical) still_critical = true;
    }
    if (!changed) continue;
    if (s.incident.active_impact() == 0) {
      s.incident.status = IncidentStatus::kResolved;
      s.incident.resolved_at = clock_.wall_now();
      s.resolved_steady = now;
      s.update_pending = false;
      touch(s, "resolved", "every alert has cleared");
      events.push_back({IncidentEvent::Kind::kResolved, s.incident, true});
    } else {
      touch(s, "cleared", alert.target + " (" + alert.rule + ") recovered");
      if (!s.update_pending) {
        s.update_pending = true;
        s.update_due = now + policy_.batch;
      }
    }
  }
  // Another critical alert of the target may still wait in a hold.
  for (const auto& h : held_) {
    still_critical = still_critical || (h.alert.target == alert.target && h.alert.severity == Severity::kCritical);
  }
  if (!still_critical) critical_targets_.erase(alert.target);
  return events;
}

std::vector<IncidentEvent> IncidentManager::check_vantage() {
  for (const auto& [id, s] : incidents_) {
    if (s.incident.open() && s.incident.vantage) return {};
  }
  // Only targets whose state says something of their own count: one behind
  // a down parent (depends_on) is explained by it, so a router and everything
  // behind it going dark is one failure, the router's, never isolation.
  // Cheap bound first (every root counts): this runs for every alert of a
  // mass outage.
  if (targets_.size() < policy_.vantage_min_targets) return {};
  if (static_cast<double>(critical_targets_.size()) < policy_.vantage_ratio * static_cast<double>(roots_)) return {};
  std::size_t total = 0;
  std::size_t down = 0;
  bool canaries = false, all_canaries_down = true;
  std::vector<const std::string*> independent;
  for (const auto& [name, t] : targets_) {
    const bool is_down = critical_targets_.count(name) > 0;
    if (t->canary) {
      canaries = true;
      if (!is_down) all_canaries_down = false;
    }
    if (behind_down_parent(name)) continue;
    ++total;
    if (is_down) ++down;
    independent.push_back(&name);
  }
  // Without canaries the independent targets alone are the evidence, so
  // there must be enough of them; a canary is evidence of its own.
  if (total == 0 || (!canaries && total < policy_.vantage_min_targets)) return {};
  if (static_cast<double>(down) < policy_.vantage_ratio * static_cast<double>(total)) return {};
  if (canaries) {
    if (!all_canaries_down) return {};
  } else {
    // Without canaries, a whole site going dark looks like isolation by ratio
    // alone; isolation is when *every* scope has lost targets.
    std::map<std::map<std::string, std::string>, bool> scope_down;
    for (const std::string* name : independent) scope_down[scope_of(*name)] |= critical_targets_.count(*name) > 0;
    if (scope_down.size() < 2) return {};
    for (const auto& [scope, any_down] : scope_down) {
      if (!any_down) return {};
    }
  }

  std::vector<IncidentEvent> events;
  std::vector<ImpactedTarget> impact;
  const SteadyTime now = clock_.now();
  for (auto& [id, s] : incidents_) {
    if (!s.incident.open()) continue;
    for (const auto& t : s.incident.impacted) {
      if (t.active) impact.push_back(t);
    }
  }
  for (const auto& h : held_) impact.push_back(impact_of(h.alert, ""));
  held_.clear();
  IncidentEvent declared = declare({}, std::move(impact), true);
  const std::string vantage_id = declared.incident.id;
  for (auto& [id, s] : incidents_) {
    if (id == vantage_id || !s.incident.open()) continue;
    s.incident.status = IncidentStatus::kResolved;
    s.incident.resolved_at = clock_.wall_now();
    s.resolved_steady = now;
    s.update_pending = false;
    touch(s, "merged", "merged into " + vantage_id + ": the agent itself is isolated");
    events.push_back({IncidentEvent::Kind::kMerged, s.incident, false});
  }
  events.insert(events.begin(), std::move(declared));
  return events;
}

std::vector<IncidentEvent> IncidentManager::tick() {
  const SteadyTime now = clock_.now();
  std::vector<IncidentEvent> events;
  // Held declarations: isolation first, then whatever was not absorbed by it.
  if (std::any_of(held_.begin(), held_.end(), [&](const Held& h) { return h.until <= now; })) {
    auto vantage = check_vantage();
    events.insert(events.end(), vantage.begin(), vantage.end());
    auto released = release_held(true);
    events.insert(events.end(), released.begin(), released.end());
  }
  for (auto& [id, s] : incidents_) {
    if (!s.incident.open()) continue;
    if (s.update_pending && s.update_due <= now) {
      s.update_pending = false;
      s.incident.next_update_due =
          clock_.wall_now() + std::chrono::duration_cast<SystemTime::duration>(policy_.update_every);
      s.next_update_steady = now + policy_.update_every;
      s.overdue_reported = false;
      events.push_back({IncidentEvent::Kind::kUpdated, s.incident, false});
    }
    if (!s.overdue_reported && s.next_update_steady <= now) {
      s.overdue_reported = true;
      touch(s, "update_overdue", "the promised update is due and nobody has given one");
      events.push_back({IncidentEvent::Kind::kUpdateOverdue, s.incident, true});
    }
  }
  return events;
}

std::optional<SteadyTime> IncidentManager::next_deadline() const {
  std::optional<SteadyTime> d;
  auto earliest = [&](SteadyTime t) {
    if (!d || t < *d) d = t;
  };
  for (const auto& h : held_) earliest(h.until);
  for (const auto& [id, s] : incidents_) {
    if (!s.incident.open()) continue;
    if (s.update_pending) earliest(s.update_due);
    if (!s.overdue_reported) earliest(s.next_update_steady);
  }
  return d;
}

Result<IncidentEvent> IncidentManager::acknowledge(const std::string& id, const std::string& who) {
  auto it = incidents_.find(id);
  if (it == incidents_.end()) return Error::not_found("no incident " + id);
  State& s = it->second;
  if (!s.incident.open()) return Error::invalid("incident " + id + " is resolved");
  if (s.incident.status == IncidentStatus::kAcknowledged) return Error::invalid("incident " + id + " is already acknowledged by " + s.incident.acknowledged_by);
  s.incident.status = IncidentStatus::kAcknowledged;
  s.incident.acknowledged_by = who;
  s.incident.acknowledged_at = clock_.wall_now();
  touch(s, "acknowledged", "acknowledged by " + who);
  s.incident.timeline.back().author = who;
  return IncidentEvent{IncidentEvent::Kind::kAcknowledged, s.incident, false};
}

Result<IncidentEvent> IncidentManager::add_note(const std::string& id, const std::string& text, bool is_public,
                                                const std::string& author) {
  auto it = incidents_.find(id);
  if (it == incidents_.end()) return Error::not_found("no incident " + id);
  if (text.empty()) return Error::invalid("a note needs text");
  State& s = it->second;
  touch(s, "note", text);
  s.incident.timeline.back().is_public = is_public;
  s.incident.timeline.back().author = author;
  if (is_public && s.incident.open()) {
    // A public update keeps the promise: the next one is due a full period later.
    s.incident.next_update_due =
        clock_.wall_now() + std::chrono::duration_cast<SystemTime::duration>(policy_.update_every);
    s.next_update_steady = clock_.now() + policy_.update_every;
    s.overdue_reported = false;
  }
  return IncidentEvent{IncidentEvent::Kind::kNote, s.incident, false};
}

Result<IncidentEvent> IncidentManager::resolve(const std::string& id, const std::string& who) {
  auto it = incidents_.find(id);
  if (it == incidents_.end()) return Error::not_found("no incident " + id);
  State& s = it->second;
  if (!s.incident.open()) return Error::invalid("incident " + id + " is already resolved");
  s.incident.status = IncidentStatus::kResolved;
  s.incident.resolved_at = clock_.wall_now();
  s.resolved_steady = clock_.now();
  s.update_pending = false;
  touch(s, "resolved", "resolved by " + who);
  s.incident.timeline.back().author = who;
  return IncidentEvent{IncidentEvent::Kind::kResolved, s.incident, true};
}

std::vector<Incident> IncidentManager::incidents() const {
  std::vector<Incident> out;
  for (const auto& [id, s] : incidents_) out.push_back(s.incident);
  std::sort(out.begin(), out.end(), [](const Incident& a, const Incident& b) {
    if (a.open() != b.open()) return a.open();
    return a.declared_at > b.declared_at;
  });
  return out;
}

const Incident* IncidentManager::find(const std::string& id) const {
  auto it = incidents_.find(id);
  return it == incidents_.end() ? nullptr : &it->second.incident;
}

void IncidentManager::restore(std::vector<Incident> incidents, std::uint64_t next_sequence) {
  const SteadyTime now = clock_.now();
  for (auto& inc : incidents) {
    State s;
    const auto until_due = inc.next_update_due - clock_.wall_now();
    s.next_update_steady = now + std::chrono::duration_cast<Duration>(until_due);
    s.resolved_steady = inc.open() ? SteadyTime{} : now - std::chrono::duration_cast<Duration>(clock_.wall_now() - inc.resolved_at);
    for (const auto& t : inc.impacted) {
      if (inc.open() && t.active && t.severity == Severity::kCritical) critical_targets_.insert(t.target);
    }
    next_sequence = std::max(next_sequence, id_sequence(inc.id, id_tag()) + 1);
    s.incident = std::move(inc);
    incidents_[s.incident.id] = std::move(s);
  }
  next_sequence_ = std::max(next_sequence_, next_sequence);
}

}  // namespace nightshift
