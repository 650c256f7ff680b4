// The fleet's wire format: what agents say to each other over NATS and what
// they keep in the JetStream KV bucket of fleet incidents. JSON, one object
// per message; pure functions over bytes (no sockets), fuzzed
// (tests/fuzz/fleet_fuzz.cpp): another agent's message is outside input.
//
// Subjects (<fleet> is [fleet] name):
//   ns.<fleet>.obs.<agent>   Observation: verdicts that changed (full=true: the whole watched set)
//   ns.<fleet>.hb.<agent>    Heartbeat: "still here, my verdict table is at version N"
//   ns.<fleet>.snap.<agent>  request/reply: the agent's whole verdict table (an Observation, full)
//   ns.<fleet>.confirm       request/reply: "probe this target now"; every watcher answers
// Buckets: NS_<fleet>_incidents (FleetIncident by key), NS_<fleet>_leases (owner's
// agent name by the same key, TTL = the lease).
//
// Thread safety: pure functions, any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "nightshift/result.h"
#include "nightshift/severity.h"

namespace nightshift::fleet {

// One agent's verdict on one (target, probe).
struct Verdict {
  std::string target;
  std::string probe;
  bool ok = true;
  std::string reason;  // failure reason (timeout, refused, ...), empty when ok
  std::string detail;  // evidence for people: "no reply to 5 echoes in 2.0 s"
  std::int64_t since_ms = 0;  // wall time (unix ms) this verdict has held since
  bool operator==(const Verdict&) const = default;
};

struct Observation {
  std::string agent;
  std::uint64_t version = 0;  // of the sender's verdict table; +1 per change
  std::int64_t sent_ms = 0;
  bool full = false;  // true: `verdicts` is the whole watched set, replacing what was known,
                     // sent in `parts` messages (part 0 first) when large
  std::uint64_t part = 0;
  std::uint64_t parts = 1;
  std::vector<Verdict> verdicts;
};

struct Heartbeat {
  std::string agent;
  std::uint64_t version = 0;
  std::int64_t sent_ms = 0;
  std::int64_t interval_ms = 0;  // when to expect the next one
  std::uint64_t watching = 0;    // (target, probe) pairs in its table
  std::uint64_t down = 0;
  std::string id_tag;            // its incident id tag: two agents sharing one is logged
};

struct ConfirmRequest {
  std::string from;
  std::uint64_t id = 0;
  std::string target;
  std::string probe;  // empty: every probe of the target
};

struct ConfirmReply {
  std::string agent;
  std::uint64_t id = 0;
  std::vector<Verdict> verdicts;
};

// A target of a fleet incident and the vantages (agents) that see it fail.
struct FleetImpact {
  std::string target;
  std::string probe;
  std::string rule;
  std::vector<std::string> vantages;
  bool active = true;
  bool operator==(const FleetImpact&) const = default;
};

// An operator's note on a fleet incident, made through any agent's API or CLI.
struct FleetNote {
  std::int64_t at_ms = 0;
  std::string author;
  std::string text;
  bool is_public = false;  // a public update: every agent's status page shows it
  std::string agent;       // the agent it was made through
  bool operator==(const FleetNote&) const = default;
};

// The value under a key of the incidents bucket. One per fleet outage; its id
// is the incident id every agent shows and every sink's dedup key derives from.
struct FleetIncident {
  std::string key;  // the bucket key (one per scope): "s-<hash>"
  std::string id;   // NS-YYYYMMDD-<tag>-NNNN, chosen by the agent that created it
  std::string title;
  Severity severity = Severity::kCritical;
  std::map<std::string, std::string> scope;  // the group_by labels (site, group): for status pages
  bool open = true;
  // Operator actions, fleet-wide (fleet/operations.h): any agent records
  // them; every agent applies them to its own copy, and the owner's copy
  // announces what follows (the ack, the note, the resolve) once.
  bool acknowledged = false;
  std::string acknowledged_by;
  std::int64_t acknowledged_ms = 0;
  std::string resolved_by;  // set: an operator resolved it; the owner resolves and announces it
  std::vector<FleetNote> notes;
  std::string declared_by;
  std::int64_t declared_ms = 0;
  std::int64_t resolved_ms = 0;
  std::vector<FleetImpact> impacted;
  // The owner's incident flaps (rules/alert_state.h): every agent's status
  // page and API show it as the owner's do. Absent in older records: false.
  bool flapping = false;
  std::int64_t flapping_ms = 0;
  // Events announced for this incident: the owner bumps `seq` in the same
  // write that records the event, and `notified` once the notifications are
  // in its durable outbox. A new owner re-announces events after `notified`
  // with the same keys (id:event:seq), so receivers drop what already came.
  std::uint64_t seq = 0;
  std::string last_event;  // declared, updated, acknowledged, resolved
  std::uint64_t notified = 0;
};

std::string encode(const Observation& o);
std::string encode(const Heartbeat& h);
std::string encode(const ConfirmRequest& r);
std::string encode(const ConfirmReply& r);
std::string encode(const FleetIncident& i);

// Errors name the field: `verdicts[2].target: expected a string`.
Result<Observation> decode_observation(std::string_view bytes);
Result<Heartbeat> decode_heartbeat(std::string_view bytes);
Result<ConfirmRequest> decode_confirm_request(std::string_view bytes);
Result<ConfirmReply> decode_confirm_reply(std::string_view bytes);
Result<FleetIncident> decode_incident(std::string_view bytes);

// The fleet name goes into subjects and bucket names: letters, digits, '_' and
// '-', 1 to 64 characters. Empty when valid, else why not.
std::string check_token(std::string_view what, std::string_view value);
// An agent name: 1 to 253 printable characters, no spaces.
std::string check_name(std::string_view what, std::string_view value);
// An agent name as one subject token: what check_token refuses becomes '_'.
std::string subject_token(std::string_view name);
// The KV key of a scope ("site=ams group=core"): "s-" and 16 hex digits of its hash.
std::string scope_key(std::string_view scope_text);

}  // namespace nightshift::fleet
