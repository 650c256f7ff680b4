// Operator actions on fleet incidents (fleet/operations.h): what the fleet
// records, what each agent's copy takes from it, and the fleet incident as an
// Incident for agents without a copy. Pure functions, no clock.
#include <gtest/gtest.h>

#include "fleet/operations.h"
#include "fleet/protocol.h"

namespace nightshift::fleet {
namespace {

using Kind = OperatorAction::Kind;

FleetIncident shared() {
  FleetIncident inc;
  inc.key = scope_key("group=edge site=lab");
  inc.id = "NS-20261201-k3f9qa-0001";
  inc.title = "svc down";
  inc.scope = {{"group", "edge"}, {"site", "lab"}};
  inc.declared_by = "edge-a";
  inc.declared_ms = 1764590000000;
  inc.impacted = {{"svc", "tcp", "target_down", {"edge-a", "edge-b"}, true}};
  inc.seq = 1;
  return inc;
}

Incident copy() {
  Incident local;
  local.id = "NS-20261201-m2m4ab-0007";
  local.status = IncidentStatus::kDeclared;
  local.timeline.push_back({SystemTime{}, "declared", "declared", false, ""});
  return local;
}

OperatorAction action(Kind kind, std::string by, std::string text = "", bool is_public = false) {
  OperatorAction a;
  a.kind = kind;
  a.by = std::move(by);
  a.text = std::move(text);
  a.is_public = is_public;
  a.at_ms = 1764590060000;
  a.agent = "edge-b";
  return a;
}

TEST(FleetOperations, EachActionIsRecordedOnceWhoeverRecordsItFirst) {
  FleetIncident inc = shared();
  auto acked = apply(inc, action(Kind::kAcknowledge, "alice"));
  ASSERT_TRUE(acked.ok());
  EXPECT_TRUE(*acked);
  EXPECT_TRUE(inc.acknowledged);
  EXPECT_EQ(inc.acknowledged_by, "alice");
  EXPECT_EQ(inc.acknowledged_ms, 1764590060000);
  auto again = apply(inc, action(Kind::kAcknowledge, "bob"));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again) << "a second ack (another agent's copy pushing it) changes nothing";
  EXPECT_EQ(inc.acknowledged_by, "alice");

  ASSERT_TRUE(*apply(inc, action(Kind::kResolve, "carol")));
  EXPECT_EQ(inc.resolved_by, "carol");
  EXPECT_TRUE(inc.open) << "a resolve is a request: the owner closes it when it announces the resolve";
  EXPECT_FALSE(*apply(inc, action(Kind::kResolve, "dave")));
  EXPECT_EQ(inc.seq, 1u) << "operator actions are not announced events";

  inc.open = false;
  auto late = apply(inc, action(Kind::kAcknowledge, "erin"));
  EXPECT_FALSE(late.ok() && *late);
  FleetIncident closed = shared();
  closed.open = false;
  auto ack_closed = apply(closed, action(Kind::kAcknowledge, "erin"));
  ASSERT_FALSE(ack_closed.ok());
  EXPECT_EQ(ack_closed.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(ack_closed.error().message.find("resolved"), std::string::npos);
  EXPECT_TRUE(*apply(closed, action(Kind::kNote, "erin", "post-mortem on Friday"))) << "notes after the end are kept";
}

TEST(FleetOperations, NotesAreBoundedSoTheIncidentFitsOneMessage) {
  FleetIncident inc = shared();
  for (std::size_t i = 0; i < kMaxFleetNotes; ++i) ASSERT_TRUE(apply(inc, action(Kind::kNote, "a", "n")).ok());
  auto full = apply(inc, action(Kind::kNote, "a", "one more"));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code, ErrorCode::kLimitReached);
  EXPECT_NE(full.error().message.find(inc.id), std::string::npos) << full.error().message;

  FleetIncident big = shared();
  const std::string text(4000, 'x');
  Status last;
  for (int i = 0; i < 100 && last.ok(); ++i) {
    auto r = apply(big, action(Kind::kNote, "a", text));
    if (!r.ok()) last = r.error();
  }
  EXPECT_FALSE(last.ok());
  EXPECT_LT(encode(big).size(), std::size_t{300 * 1024});
  EXPECT_FALSE(apply(big, action(Kind::kNote, "a", "")).ok()) << "a note needs text";
}

TEST(FleetOperations, ACopyTakesWhatItLacksInOrderAndNothingTwice) {
  FleetIncident inc = shared();
  ASSERT_TRUE(*apply(inc, action(Kind::kNote, "alice", "looking", false)));
  ASSERT_TRUE(*apply(inc, action(Kind::kAcknowledge, "alice")));
  ASSERT_TRUE(*apply(inc, action(Kind::kNote, "alice", "fibre cut at the ams POP", true)));
  ASSERT_TRUE(*apply(inc, action(Kind::kNote, "alice", "looking", false)));  // said twice: applied twice
  ASSERT_TRUE(*apply(inc, action(Kind::kResolve, "bob")));

  Incident local = copy();
  auto todo = missing_locally(inc, local);
  ASSERT_EQ(todo.size(), 5u);
  EXPECT_EQ(todo[0].kind, Kind::kAcknowledge);
  EXPECT_EQ(todo[0].by, "alice");
  EXPECT_EQ(todo[1].text, "looking");
  EXPECT_EQ(todo[2].text, "fibre cut at the ams POP");
  EXPECT_TRUE(todo[2].is_public);
  EXPECT_EQ(todo[2].agent, "edge-b");
  EXPECT_EQ(todo[3].text, "looking");
  EXPECT_EQ(todo[4].kind, Kind::kResolve);
  EXPECT_EQ(todo[4].by, "bob");

  // The copy applied the ack and two notes (one made here first): only the rest is left.
  local.status = IncidentStatus::kAcknowledged;
  local.timeline.push_back({SystemTime{}, "note", "looking", false, "alice"});
  local.timeline.push_back({SystemTime{}, "note", "fibre cut at the ams POP", true, "alice"});
  local.timeline.push_back({SystemTime{}, "note", "fibre cut at the ams POP", false, "alice"});  // not the public one
  todo = missing_locally(inc, local);
  ASSERT_EQ(todo.size(), 2u);
  EXPECT_EQ(todo[0].text, "looking");
  EXPECT_EQ(todo[1].kind, Kind::kResolve);

  local.status = IncidentStatus::kResolved;
  EXPECT_TRUE(missing_locally(inc, local).empty()) << "a closed copy takes nothing";
}

TEST(FleetOperations, WhatACopyDidBeforeItWasLinkedGoesToTheFleet) {
  FleetIncident inc = shared();
  Incident local = copy();
  local.status = IncidentStatus::kAcknowledged;
  local.acknowledged_by = "alice";
  local.timeline.push_back({SystemTime{}, "note", "traceroute dies at hop 3", false, "nightshift"});
  local.timeline.push_back({SystemTime{}, "note", "calling the carrier", true, "alice"});
  auto todo = missing_in_fleet(local, inc);
  ASSERT_EQ(todo.size(), 2u) << "the agent's own findings stay local";
  EXPECT_EQ(todo[0].kind, Kind::kAcknowledge);
  EXPECT_EQ(todo[1].text, "calling the carrier");
  for (const auto& a : todo) ASSERT_TRUE(apply(inc, a).ok());
  EXPECT_TRUE(missing_in_fleet(local, inc).empty());
  EXPECT_TRUE(missing_locally(inc, local).empty()) << "and nothing comes back";
}

TEST(FleetOperations, AsAnIncidentUnderTheFleetId) {
  FleetIncident inc = shared();
  ASSERT_TRUE(*apply(inc, action(Kind::kAcknowledge, "alice")));
  ASSERT_TRUE(*apply(inc, action(Kind::kNote, "alice", "internal: carrier ticket 4711", false)));
  ASSERT_TRUE(*apply(inc, action(Kind::kNote, "alice", "We are working with our provider", true)));
  Incident shown = as_incident(inc);
  EXPECT_EQ(shown.id, inc.id);
  EXPECT_EQ(shown.status, IncidentStatus::kAcknowledged);
  EXPECT_EQ(shown.acknowledged_by, "alice");
  EXPECT_EQ(shown.scope, inc.scope);
  ASSERT_EQ(shown.impacted.size(), 1u);
  EXPECT_EQ(shown.impacted[0].target, "svc");
  std::size_t public_entries = 0;
  for (const auto& e : shown.timeline) public_entries += e.is_public ? 1 : 0;
  EXPECT_EQ(public_entries, 1u) << "only the public update is public";
  EXPECT_EQ(shown.timeline.front().kind, "declared");

  EXPECT_FALSE(shown.flapping);
  inc.flapping = true;
  inc.flapping_ms = inc.declared_ms + 60000;
  shown = as_incident(inc);
  EXPECT_TRUE(shown.flapping) << "every agent's page shows the owner's flapping mark";
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(shown.flapping_since.time_since_epoch()).count(),
            inc.flapping_ms);

  inc.open = false;
  inc.resolved_ms = inc.declared_ms + 600000;
  shown = as_incident(inc);
  EXPECT_EQ(shown.status, IncidentStatus::kResolved);
  EXPECT_FALSE(shown.open());
  EXPECT_EQ(shown.timeline.back().kind, "resolved");
}

TEST(FleetOperations, OperatorFieldsRoundTripAndOldRecordsStillRead) {
  FleetIncident inc = shared();
  ASSERT_TRUE(*apply(inc, action(Kind::kAcknowledge, "alice")));
  ASSERT_TRUE(*apply(inc, action(Kind::kNote, "alice", "fibre cut", true)));
  ASSERT_TRUE(*apply(inc, action(Kind::kResolve, "bob")));
  auto back = decode_incident(encode(inc));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->scope, inc.scope);
  EXPECT_EQ(back->acknowledged_ms, inc.acknowledged_ms);
  EXPECT_EQ(back->resolved_by, "bob");
  EXPECT_EQ(back->notes, inc.notes);
  inc.flapping = true;
  inc.flapping_ms = 1796169600000;
  auto flapping = decode_incident(encode(inc));
  ASSERT_TRUE(flapping.ok()) << flapping.error().message;
  EXPECT_TRUE(flapping->flapping);
  EXPECT_EQ(flapping->flapping_ms, inc.flapping_ms);

  auto old = decode_incident(R"({"key":"s-1","id":"NS-20261201-0001","open":true,"seq":1})");
  ASSERT_TRUE(old.ok()) << old.error().message;
  EXPECT_TRUE(old->notes.empty());
  EXPECT_TRUE(old->resolved_by.empty());
  EXPECT_FALSE(old->flapping);

  auto bad = decode_incident(R"({"key":"s-1","id":"x","open":true,"seq":1,"notes":[{"text":3}]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("notes[0].text"), std::string::npos) << bad.error().message;
  auto bad_scope = decode_incident(R"({"key":"s-1","id":"x","open":true,"seq":1,"scope":{"site":1}})");
  ASSERT_FALSE(bad_scope.ok());
  EXPECT_NE(bad_scope.error().message.find("scope.site"), std::string::npos) << bad_scope.error().message;
}

}  // namespace
}  // namespace nightshift::fleet
