// Paging: decides who hears about what, and when, on the reactor thread.
//
// For every incident event it renders one outbox row per sink that wants it
// (type, severity, scope match; see sink_wants). It also keeps its own clock
// over open incidents:
// - renotify: an unacknowledged critical incident is announced again every
//   `renotify_every`;
// - escalation: after `escalate_after` unacknowledged, the escalation-only
//   sinks (a second pager, a manager) are told, and from then on hear its
//   renotifies, acknowledgement and resolution too;
// - Alertmanager keep-alive: firing alerts are re-posted every
//   `alertmanager_refresh`, well inside Alertmanager's resolve_timeout.
// Silenced incidents (maintenance) are still declared and recorded, but page
// no one; an acknowledgement or resolution still reaches the sinks that were
// told about the incident before the silence began.
//
// Pure logic over a Clock. Thread safety: one thread.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "incidents/incidents.h"
#include "notify/outbox.h"
#include "notify/sinks.h"
#include "nightshift/clock.h"

namespace nightshift {

class Paging {
 public:
  using SilenceCheck = std::function<bool(const Incident&)>;
  Paging(const Clock& clock, std::vector<SinkSpec> sinks, NotifyPolicy policy, SilenceCheck silenced = {});

  void configure(std::vector<SinkSpec> sinks, NotifyPolicy policy);
  void set_silence_check(SilenceCheck silenced) { silenced_ = std::move(silenced); }
  const std::vector<SinkSpec>& sinks() const { return sinks_; }
  const NotifyPolicy& policy() const { return policy_; }

  // The outbox rows for one incident event.
  std::vector<OutboxEntry> on_event(const IncidentEvent& event);
  // Renotifies, escalations and keep-alives due now.
  std::vector<OutboxEntry> tick();
  std::optional<SteadyTime> next_deadline() const;
  // After a restart: follow the open incidents restored from the store, as if
  // their declaration had just been announced (nothing is sent for them now).
  void restore(const std::vector<Incident>& incidents);

 private:
  struct Tracked {
    Incident incident;
    SteadyTime declared{};        // steady-clock equivalent of declared_at
    SteadyTime last_notified{};   // the last page (declared, reopened, renotify)
    SteadyTime last_refresh{};    // the last Alertmanager post
    bool escalated = false;
    std::set<std::string> told;   // sinks that heard of it
  };
  std::vector<OutboxEntry> rows_for(const std::string& event, Tracked& t, const std::string& key_suffix,
                                    bool coalesce = false);
  bool silenced(const Incident& inc) const { return silenced_ && silenced_(inc); }
  bool needs_attention(const Tracked& t) const;

  const Clock& clock_;
  std::vector<SinkSpec> sinks_;
  NotifyPolicy policy_;
  SilenceCheck silenced_;
  std::map<std::string, Tracked> open_;  // by incident id
};

}  // namespace nightshift
