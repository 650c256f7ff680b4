// FleetNode: one agent's membership of the fleet, over NATS with JetStream.
//
// - Observations: the agent's verdicts go out on change (coalesced, one
//   message per reactor turn) plus a heartbeat; every node keeps a FleetView
//   of all agents' verdicts, and asks a peer for its whole table when it sees
//   a gap (a skipped version, a heartbeat ahead of what it has).
// - Confirmation: on a local failure confirm() asks the other watchers of the
//   target to probe it now; the answer is the quorum assessment once they all
//   replied, a quorum of fresh verdicts (this agent's and the replies) says
//   down, or confirm_timeout passed.
// - Incidents: fleet incidents live in the KV bucket NS_<fleet>_incidents, one
//   key per scope. claim() creates one (kvStore_Create: exactly one agent
//   wins) or joins the open one (kvStore_Update on its revision: no lost
//   update). Notifications belong to the holder of the key in
//   NS_<fleet>_leases (TTL = lease): created with kvStore_Create, renewed with
//   kvStore_Update every lease/3. When the owner dies its lease ages out and
//   another node's create succeeds within a lease plus one poll: it becomes
//   the owner and re-announces the events after `notified` under the same
//   keys, so receivers drop what had already arrived.
// - Alone: without a working connection (and JetStream) the node is alone:
//   the agent pages by itself, and says so. On reconnection the node
//   republishes its table, reloads the incidents and tells the agent, which
//   claims what it paged alone with notified = seq (no second page).
//
// Threads: NATS delivers messages and connection events on its own threads;
// they are copied and posted to the reactor. Blocking JetStream calls run on
// the node's worker thread; their results are posted to the reactor. Every
// public method and every hook: reactor thread only.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "fleet/operations.h"
#include "fleet/protocol.h"
#include "fleet/settings.h"
#include "fleet/view.h"
#include "nightshift/reactor.h"
#include "nightshift/result.h"

namespace nightshift::fleet {

struct RelayAccess;

struct FleetStats {
  std::uint64_t messages_out = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t messages_in = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t kv_operations = 0;
  std::uint64_t kv_conflicts = 0;  // create or compare-and-set lost to another agent (normal: races, lease polls)
  std::uint64_t takeovers = 0;
  std::uint64_t decode_errors = 0;
};

class FleetNode {
 public:
  struct Hooks {
    // Another agent asks this one to probe `target` now; call `done` on the
    // reactor with the fresh verdicts. Unset: the current verdicts answer.
    std::function<void(const ConfirmRequest&, std::function<void(std::vector<Verdict>)> done)> confirm;
    // A fleet incident was written (by any agent, this one too).
    std::function<void(const FleetIncident&)> incident_changed;
    // This node now owns the incident's notifications: it created it, or took
    // it over from a silent owner (takeover). Announce the events after
    // `notified`.
    std::function<void(const FleetIncident&, bool takeover)> became_owner;
    std::function<void(const std::string& key)> lost_ownership;
    // Connected and JetStream ready (false), or not (true: alone).
    std::function<void(bool alone)> alone_changed;
  };

  struct Claim {
    FleetIncident incident;  // as stored after the claim
    bool created = false;    // this claim made it (its id is the draft's)
    bool owner = false;      // this node holds the lease
  };

  FleetNode(Reactor& reactor, FleetSettings settings, std::string agent, std::string id_tag, Hooks hooks);
  ~FleetNode();
  FleetNode(const FleetNode&) = delete;
  FleetNode& operator=(const FleetNode&) = delete;

  // Connects in the background (retrying forever); alone until connected.
  void start();
  // Leaves: stops threads and closes the connection. Idempotent.
  void stop();

  // The whole watched set (start and reload): published as a full table.
  void set_watched(const std::vector<Verdict>& verdicts);
  // One local verdict; published when `ok` changed.
  void observe(const Verdict& v);
  // Asks the other watchers of `target` to probe it now. `done` runs with the
  // assessment when every one of them answered, when this agent and those
  // that answered make a quorum saying down, or when confirm_timeout passed
  // (at once when none watches it, or when alone).
  void confirm(const std::string& target, const std::string& probe, std::function<void(Assessment)> done);
  Assessment assess(const std::string& target, const std::string& probe = "") const {
    return view_.assess(target, probe);
  }
  const FleetView& view() const { return view_; }

  // Creates the scope's fleet incident from `draft` (draft.key, draft.id,
  // ...; seq and notified as given: pass notified = seq for an incident
  // already paged while alone), or joins the open one, adding the draft's
  // impact and vantages. Fails (kUnavailable) when alone.
  void claim(FleetIncident draft, std::function<void(Result<Claim>)> done);
  // Owner: records one event: `mutate` changes the incident, seq goes up by
  // one and last_event = event, in one compare-and-set (retried on conflict).
  // `done` gets the stored incident: announce it with key id:event:seq.
  void record(const std::string& key, std::string event, std::function<void(FleetIncident&)> mutate,
              std::function<void(Result<FleetIncident>)> done);
  // Any agent: an operator's action (ack, note, resolve request: see
  // fleet/operations.h) in one compare-and-set, retried on conflict. No event
  // (seq stays): every agent's watcher sees it and the owner announces what
  // follows. `done` gets the stored incident (unchanged when the action was
  // there already); kUnavailable when alone, kNotFound when the key is gone.
  void amend(const std::string& key, OperatorAction action, std::function<void(Result<FleetIncident>)> done);
  // Owner: the notifications up to `seq` are in the durable outbox.
  void mark_notified(const std::string& key, std::uint64_t seq);

  bool owns(const std::string& key) const { return owned_.count(key) > 0; }
  bool alone() const { return !ready_; }
  // Every fleet incident known (from the bucket), by key.
  const std::map<std::string, FleetIncident>& incidents() const { return incidents_; }
  const FleetIncident* find_incident(const std::string& key) const;
  FleetStats stats() const;
  const std::string& agent() const { return agent_; }

 private:
  friend struct RelayAccess;
 public:
  struct Shared;  // state the NATS and worker threads reach (connection, counters); internal
 private:
  struct Pending {
    std::string target;
    std::string probe;
    std::set<std::string> waiting;
    Reactor::TimerId timer = 0;
    std::function<void(Assessment)> done;
  };

  void post(std::function<void(FleetNode&)> task);
  void run_on_worker(std::function<void(Shared&)> job);
  void on_connection(bool up);
  void on_ready(Status s);
  void on_message(const std::string& subject, const std::string& data, const std::string& reply);
  void publish(const std::string& subject, const std::string& data, const std::string& reply = "");
  void publish_table(const std::string& subject);
  void flush_changes();
  void heartbeat();
  void heartbeat_now();
  static Status attach(Shared& s, bool& new_watcher);
  static void retire_watcher(Shared& s);
  static void stop_watcher(Shared& s);
  static void watch_loop(Shared& s, void* watcher);  // a kvWatcher*
  void request_snapshot(const std::string& agent);
  void answer_confirm(const ConfirmRequest& req, const std::string& reply);
  void finish_confirm(std::uint64_t id);
  bool quorum_confirmed(const Pending& p) const;
  void on_incident_entry(const std::string& key, std::optional<FleetIncident> inc);
  void renew_leases();
  void poll_takeovers();
  void set_ready(bool ready);
  std::string subject(const std::string& kind) const;

  Reactor& reactor_;
  FleetSettings settings_;
  std::string agent_;
  std::string agent_token_;
  std::string id_tag_;
  Hooks hooks_;
  FleetView view_;
  std::shared_ptr<Shared> shared_;
  std::shared_ptr<std::atomic<bool>> alive_;
  bool started_ = false;
  bool ready_ = false;
  bool connected_ = false;

  std::uint64_t version_ = 0;
  std::vector<Verdict> changes_;
  bool flush_armed_ = false;
  Reactor::TimerId heartbeat_timer_ = 0;
  Reactor::TimerId lease_timer_ = 0;
  Reactor::TimerId takeover_timer_ = 0;
  std::map<std::string, SteadyTime> snapshot_asked_;
  std::uint64_t next_confirm_id_ = 1;
  std::map<std::uint64_t, Pending> pending_;

  std::map<std::string, FleetIncident> incidents_;
  std::set<std::string> owned_;  // keys whose lease this node holds
  std::set<std::string> takeover_in_flight_;
  std::map<std::string, SteadyTime> first_seen_open_;
  bool renew_in_flight_ = false;
  std::uint64_t takeovers_ = 0;
  std::set<std::string> warned_tags_;
  std::string confirm_inbox_;
  std::string snap_inbox_;
  void* relay_ = nullptr;  // the NATS callbacks' closure (see node.cpp)
};

}  // namespace nightshift::fleet
