// Paging on a simulated clock: who hears what, renotify, escalation, the
// Alertmanager keep-alive and silences.
#include "notify/paging.h"

#include <gtest/gtest.h>

#include <set>

namespace nightshift {
namespace {

using namespace std::chrono_literals;

SinkSpec make_sink(const std::string& name, SinkType type, bool escalation_only = false) {
  SinkSpec s;
  s.name = name;
  s.type = type;
  s.url = "http://127.0.0.1:9/";
  s.escalation_only = escalation_only;
  return s;
}

class PagingTest : public ::testing::Test {
 protected:
  PagingTest() {
    policy_.renotify_every = 10min;
    policy_.escalate_after = 15min;
    policy_.alertmanager_refresh = 1min;
  }

  IncidentEvent event(IncidentEvent::Kind kind, IncidentStatus status = IncidentStatus::kDeclared) {
    IncidentEvent e{kind, {}, true};
    e.incident.id = "NS-1";
    e.incident.title = "core1: target_down";
    e.incident.severity = Severity::kCritical;
    e.incident.scope = {{"site", "ams1"}, {"group", "core"}};
    e.incident.status = status;
    e.incident.declared_at = declared_;
    e.incident.started_at = declared_;
    timeline_ += 1;
    e.incident.timeline.resize(timeline_);
    return e;
  }

  static std::multiset<std::string> sinks_of(const std::vector<OutboxEntry>& rows, const std::string& event = "") {
    std::multiset<std::string> out;
    for (const auto& r : rows) {
      if (event.empty() || r.event == event) out.insert(r.sink);
    }
    return out;
  }

  ManualClock clock_;
  SystemTime declared_ = clock_.wall_now();
  std::size_t timeline_ = 0;
  NotifyPolicy policy_;
  std::vector<SinkSpec> sinks_ = {make_sink("pager", SinkType::kPagerDuty), make_sink("chat", SinkType::kSlack),
                                  make_sink("am", SinkType::kAlertmanager),
                                  make_sink("boss", SinkType::kWebhook, /*escalation_only=*/true)};
};

TEST_F(PagingTest, DeclarationGoesToEverySinkThatWantsIt) {
  Paging paging(clock_, sinks_, policy_);
  auto rows = paging.on_event(event(IncidentEvent::Kind::kDeclared));
  EXPECT_EQ(sinks_of(rows), (std::multiset<std::string>{"am", "chat", "pager"}));
  for (const auto& r : rows) {
    EXPECT_EQ(r.key, "NS-1:declared:1");
    EXPECT_EQ(r.incident, "NS-1");
    EXPECT_FALSE(r.body.empty());
  }
}

TEST_F(PagingTest, UnacknowledgedCriticalIsRenotifiedAndEscalatedThenAckStopsIt) {
  Paging paging(clock_, sinks_, policy_);
  paging.on_event(event(IncidentEvent::Kind::kDeclared));
  EXPECT_EQ(paging.next_deadline(), clock_.now() + 1min) << "the Alertmanager keep-alive comes first";
  // Keep-alives every minute, to Alertmanager only.
  clock_.advance(1min);
  auto rows = paging.tick();
  EXPECT_EQ(sinks_of(rows), (std::multiset<std::string>{"am"}));
  EXPECT_TRUE(rows[0].coalesce);
  EXPECT_EQ(rows[0].event, "refresh");
  // 10 min: renotify to the on-call sinks (not the escalation sink yet).
  for (int i = 0; i < 9; ++i) {
    clock_.advance(1min);
    rows = paging.tick();
  }
  EXPECT_EQ(sinks_of(rows, "renotify"), (std::multiset<std::string>{"chat"}));
  // 15 min: escalation reaches "boss" alone.
  for (int i = 0; i < 5; ++i) {
    clock_.advance(1min);
    auto more = paging.tick();
    rows.insert(rows.end(), more.begin(), more.end());
  }
  EXPECT_EQ(sinks_of(rows, "escalated"), (std::multiset<std::string>{"boss"}));
  // 20 min: the next renotify also reaches the escalation sink.
  rows.clear();
  for (int i = 0; i < 5; ++i) {
    clock_.advance(1min);
    auto more = paging.tick();
    rows.insert(rows.end(), more.begin(), more.end());
  }
  EXPECT_EQ(sinks_of(rows, "renotify"), (std::multiset<std::string>{"boss", "chat"}));
  // Acknowledged: the pager and the escalation sink hear it; no more renotifies.
  rows = paging.on_event(event(IncidentEvent::Kind::kAcknowledged, IncidentStatus::kAcknowledged));
  EXPECT_EQ(sinks_of(rows), (std::multiset<std::string>{"boss", "chat", "pager"}));
  rows.clear();
  for (int i = 0; i < 30; ++i) {
    clock_.advance(1min);
    auto more = paging.tick();
    rows.insert(rows.end(), more.begin(), more.end());
  }
  EXPECT_EQ(sinks_of(rows, "renotify").size(), 0u);
  EXPECT_EQ(sinks_of(rows, "escalated").size(), 0u);
  EXPECT_EQ(sinks_of(rows, "refresh").size(), 30u) << "Alertmanager still needs the alert alive";
  // Resolved: the tracking ends.
  rows = paging.on_event(event(IncidentEvent::Kind::kResolved, IncidentStatus::kResolved));
  EXPECT_EQ(sinks_of(rows), (std::multiset<std::string>{"am", "boss", "chat", "pager"}));
  EXPECT_FALSE(paging.next_deadline());
}

TEST_F(PagingTest, WarningsAreNeitherRenotifiedNorEscalated) {
  Paging paging(clock_, sinks_, policy_);
  IncidentEvent e = event(IncidentEvent::Kind::kDeclared);
  e.incident.severity = Severity::kWarning;
  paging.on_event(e);
  std::vector<OutboxEntry> rows;
  for (int i = 0; i < 60; ++i) {
    clock_.advance(1min);
    auto more = paging.tick();
    rows.insert(rows.end(), more.begin(), more.end());
  }
  EXPECT_EQ(sinks_of(rows, "renotify").size(), 0u);
  EXPECT_EQ(sinks_of(rows, "escalated").size(), 0u);
}

TEST_F(PagingTest, SilencedIncidentsPageNobodyButClosingNewsReachesWhoWasTold) {
  bool silenced = false;
  Paging paging(clock_, sinks_, policy_, [&](const Incident&) { return silenced; });
  EXPECT_EQ(paging.on_event(event(IncidentEvent::Kind::kDeclared)).size(), 3u);
  silenced = true;  // a maintenance window starts
  EXPECT_EQ(paging.on_event(event(IncidentEvent::Kind::kUpdated)).size(), 0u);
  for (int i = 0; i < 30; ++i) {
    clock_.advance(1min);
    EXPECT_EQ(paging.tick().size(), 0u);
  }
  auto rows = paging.on_event(event(IncidentEvent::Kind::kResolved, IncidentStatus::kResolved));
  EXPECT_EQ(sinks_of(rows), (std::multiset<std::string>{"am", "chat", "pager"}));

  // An incident declared inside the window pages no one, ever.
  Paging quiet(clock_, sinks_, policy_, [](const Incident&) { return true; });
  EXPECT_EQ(quiet.on_event(event(IncidentEvent::Kind::kDeclared)).size(), 0u);
  EXPECT_EQ(quiet.on_event(event(IncidentEvent::Kind::kResolved, IncidentStatus::kResolved)).size(), 0u);
}

TEST_F(PagingTest, KeysAreUniquePerChange) {
  Paging paging(clock_, sinks_, policy_);
  std::set<std::pair<std::string, std::string>> keys;
  std::size_t rows_seen = 0;
  auto add = [&](const std::vector<OutboxEntry>& rows) {
    for (const auto& r : rows) keys.insert({r.sink, r.key});
    rows_seen += rows.size();
  };
  add(paging.on_event(event(IncidentEvent::Kind::kDeclared)));
  add(paging.on_event(event(IncidentEvent::Kind::kUpdated)));
  add(paging.on_event(event(IncidentEvent::Kind::kUpdated)));
  for (int i = 0; i < 25; ++i) {
    clock_.advance(1min);
    add(paging.tick());
  }
  add(paging.on_event(event(IncidentEvent::Kind::kResolved, IncidentStatus::kResolved)));
  EXPECT_EQ(keys.size(), rows_seen);
}

TEST_F(PagingTest, RestoredIncidentsKeepTheirClocks) {
  // Declared 20 minutes before the restart: escalation is overdue at once,
  // the keep-alive is due at once, and nothing is re-declared.
  declared_ = clock_.wall_now() - 20min;
  IncidentEvent e = event(IncidentEvent::Kind::kDeclared);
  Paging paging(clock_, sinks_, policy_);
  paging.restore({e.incident});
  ASSERT_TRUE(paging.next_deadline());
  EXPECT_LE(*paging.next_deadline(), clock_.now());
  auto rows = paging.tick();
  EXPECT_EQ(sinks_of(rows, "escalated"), (std::multiset<std::string>{"boss"}));
  EXPECT_EQ(sinks_of(rows, "refresh"), (std::multiset<std::string>{"am"}));
  EXPECT_EQ(sinks_of(rows, "declared").size(), 0u);
}

}  // namespace
}  // namespace nightshift
