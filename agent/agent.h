// Agent: wires config, reactor, scheduler, probe engines, metrics and the HTTP
// server together, and handles signals: SIGTERM/SIGINT stop cleanly, SIGHUP
// reloads the config (a bad new config is rejected, logged, and the running one
// stays). Signals arrive through a signalfd on the reactor, so every state
// change happens on the reactor thread.
//
// The caller must block SIGHUP, SIGTERM and SIGINT in every thread (see
// block_agent_signals()) before constructing an Agent.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <unordered_map>

#include "config/config.h"
#include "core/hash.h"
#include "core/scheduler.h"
#include "fleet/node.h"
#include "nightshift/reactor.h"
#include "nightshift/resolver.h"
#include "notify/notifier.h"
#include "pipeline/pipeline.h"
#include "probes/registry/registry.h"
#include "serve/api.h"
#include "serve/exporter_view.h"
#include "serve/http.h"
#include "serve/metrics.h"
#include "serve/operator_backend.h"
#include "serve/status_publisher.h"
#include "store/store.h"

namespace nightshift {

void block_agent_signals();

class Agent final : private PipelineEffects, private FleetIncidentAccess {
 public:
  Agent(std::string config_path, Config config, Clock& clock);
  ~Agent();

  // Runs until SIGTERM or SIGINT; returns the process exit code.
  int run();

 private:
  void apply(Config config);
  void reload();
  // SIGHUP: re-reads the HTTPS certificate and key (when HTTPS is on).
  void reload_tls();
  void log_tls_identity(const char* message, const TlsIdentityInfo& id);
  // "https://" or "http://", as the listener speaks.
  std::string http_scheme() const;
  void dispatch(const ScheduledProbe& probe, Duration lag, Duration span);
  void on_sample(const std::shared_ptr<const Target>& target, const Sample& sample);
  PipelineSettings pipeline_settings() const;
  void schedule_pipeline_tick();
  void update_open_incidents();
  NotifyPolicy notify_policy() const;
  bool open_store();
  void restore_from_store();

  // PipelineEffects: what the pipeline decided, carried out on the reactor.
  // Writes the incident change and its notifications to the outbox in one
  // transaction and wakes the notifier; delivers from memory if the disk fails.
  void commit(const Incident* incident, std::vector<OutboxEntry> rows) override;
  bool confirm(const std::shared_ptr<const Target>& target, const ProbeSpec& spec) override;
  bool has_confirmation(const ProbeSpec& spec) const override;
  // As above; `then` also sees the confirmation's sample.
  bool confirm(const std::shared_ptr<const Target>& target, const ProbeSpec& spec,
               std::function<void(const Sample&)> then);
  // Asks the first impacted target's engines for a finding (ICMP: a path trace).
  void diagnose(const Incident& incident) override;
  void alert_changed(const rules::AlertEvent& event) override;
  // Runs the probe accelerated while uncertain (Scheduler::set_uncertain).
  void uncertainty_changed(const std::string& target, const std::string& probe, bool uncertain) override;
  void incident_changed(const IncidentEvent& event) override;
  void sequence_changed(std::uint64_t next_sequence) override;
  void silence_saved(const Silence& silence) override;
  void silence_removed(const std::string& id) override;

  // [fleet] (docs/fleet.md): the fleet decides who pages a critical incident.
  // Rows of an incident watched by other agents wait in its FleetLink until
  // the fleet answered: the owner sends them under the fleet incident's id
  // (keys id:event:seq), the others record it and send nothing.
  struct FleetLink {
    std::string key;       // the fleet incident's bucket key
    std::string fleet_id;  // the id every agent's notifications carry
    bool decided = false;  // confirm and claim answered
    bool page = false;     // decided: this agent notifies (owner, or alone)
    bool fleet = false;    // decided: rows go through the fleet (false: alone or path problem: as they are)
    Incident incident;     // the latest local state, to render rows under fleet_id
    std::vector<OutboxEntry> held;      // rows waiting for the decision
    std::vector<OutboxEntry> unsent_resolve;  // a non-owner's resolve, sent if it takes over
    // Decided: down from a minority of vantages. Its rows go out as a
    // warning naming this vantage (never a critical page), to the sinks
    // that take warnings; renotify and escalation are not sent.
    std::string path_problem;  // the text naming the vantage; empty: not one
    // Decided as the fleet's: the agents that saw `quorum_target` down then,
    // of how many watching it; the pages list them.
    std::string quorum_target;
    std::vector<std::string> down_from;
    std::size_t watchers = 0;
  };
  void start_fleet();
  std::vector<OutboxEntry> route_through_fleet(const Incident* incident, std::vector<OutboxEntry> rows);
  void decide_fleet(const std::string& local_id);
  fleet::FleetIncident fleet_draft(const FleetLink& link) const;
  // Claims the incidents in paged_alone_ as already announced (back on NATS).
  void reconcile_with_fleet();
  void relink_restored(const fleet::FleetIncident& inc);
  void send_as_owner(const std::string& local_id, std::vector<OutboxEntry> rows);
  void fleet_became_owner(const fleet::FleetIncident& inc, bool takeover);
  void answer_fleet_confirm(const fleet::ConfirmRequest& req, std::function<void(std::vector<fleet::Verdict>)> done);
  void enqueue(std::vector<OutboxEntry> rows);
  // Rows under the fleet incident's id: key id:event:suffix (empty: the row's own), body rendered again.
  std::vector<OutboxEntry> fleet_rows(const FleetLink& link, std::vector<OutboxEntry> rows, const std::string& suffix);
  std::vector<fleet::Verdict> watched_verdicts() const;
  // A path problem's rows, as a warning naming the vantage.
  std::vector<OutboxEntry> path_problem_rows(const FleetLink& link, std::vector<OutboxEntry> rows);
  // Operator actions fleet-wide (fleet/operations.h): a fleet incident was
  // written; its local copy here takes what it lacks (an ack, notes, the
  // resolve), which the owner's copy announces.
  void fleet_incident_changed(const fleet::FleetIncident& inc);
  // `push`: also records in the fleet what the copy got before it was linked.
  void sync_with_fleet(const std::string& local_id, const fleet::FleetIncident& inc, bool push);

  // FleetIncidentAccess (the operator API's view of the fleet). A local
  // incident is the copy of a fleet incident when linked to it, or, open,
  // when the open fleet incident of its scope exists (one outage per scope).
  const fleet::FleetIncident* fleet_copy_of(const Incident& local) const override;
  const Incident* local_copy_of(const fleet::FleetIncident& inc) const override;
  std::vector<const fleet::FleetIncident*> fleet_incidents() const override;
  bool fleet_alone() const override { return !fleet_ || fleet_->alone(); }
  bool notifies(const fleet::FleetIncident& inc) const override;
  void amend(const std::string& key, fleet::OperatorAction action,
             std::function<void(Result<fleet::FleetIncident>)> done) override;

  void on_signal();
  HttpResponse healthz() const;
  // Status page: published on the reactor at most every 250 ms after a
  // change; the publisher serves its snapshot to any HTTP worker.
  void status_changed();
  void publish_status();
  StatusPublisher::Settings status_settings() const;
  void restore_status_history();
  nlohmann::json targets_json() const;
  void expire_silences();
  void heartbeat();  // every second on the reactor: /healthz checks it is recent

  std::string config_path_;
  Config config_;
  Clock& clock_;
  Reactor reactor_;
  Resolver resolver_;
  EngineContext engine_context_;
  AgentMetrics metrics_;
  ExporterView exporter_view_{metrics_.probe_families()};  // /probe and /snmp: the latest results in the exporters' formats
  Scheduler scheduler_;
  HttpServer http_;
  std::map<std::string, std::unique_ptr<ProbeEngine>> engines_;  // by kind
  std::unique_ptr<Store> store_;
  // Restored from the store at start, handed to the pipeline once it exists.
  std::vector<Incident> restored_incidents_;
  std::vector<Silence> restored_silences_;
  std::uint64_t restored_sequence_ = 1;
  std::string id_tag_;  // this store's part of every incident id (incidents/incidents.h)
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<Api> api_;
  // Last result per (target, probe): health for the status page and the API.
  struct ProbeState {
    bool ok = false;
    FailureReason reason = FailureReason::kNone;
  };
  // By (target, probe): hashed, one lookup per sample, no key built.
  std::unordered_map<std::pair<std::string, std::string>, ProbeState, StringPairHash, StringPairEqual> probe_states_;
  bool status_render_pending_ = false;
  StatusPublisher status_;
  int heartbeats_ = 0;  // the first start with this store: older days show "no data"
  std::unique_ptr<Notifier> notifier_;
  std::unique_ptr<fleet::FleetNode> fleet_;    // set with [fleet] only
  std::map<std::string, FleetLink> fleet_links_;  // by local incident id
  // A peer's confirmation request waiting on a probe that could not start a
  // confirmation of its own (one already running, say): it takes that probe's
  // next sample. By (target, probe); each with the request's number, to drop
  // it once answered.
  std::map<std::pair<std::string, std::string>, std::vector<std::pair<std::uint64_t, std::function<void(const Sample&)>>>>
      sample_waiters_;
  std::uint64_t next_fleet_answer_ = 1;
  void sample_seen(const Sample& s);
  // Critical outages this agent declared and paged by itself while alone (or
  // when its claim failed): the fleet does not know their ids yet.
  std::set<std::string> paged_alone_;
  // Open incidents restored from the store, not yet linked to their fleet incident.
  std::set<std::string> restored_unlinked_;
  std::atomic<bool> fleet_alone_{false};       // for /healthz (event threads)
  prometheus::Gauge* fleet_connected_ = nullptr;  // nightshift_fleet_connected
  // Accelerated runs still in flight, by (target, probe): the next one waits
  // for it (a run never overlaps itself; its confirmation may outlast its span).
  std::set<std::pair<std::string, std::string>> accelerated_in_flight_;
  EarliestTimer schedule_timer_;  // the scheduler's next due probe
  EarliestTimer pipeline_timer_;  // the pipeline's next sustain, batch, promise or renotify deadline
  int signal_fd_ = -1;
  int exit_code_ = 0;
  std::atomic<Duration::rep> heartbeat_ns_{0};  // reactor liveness, read by /healthz
  MetricsEndpoint metrics_endpoint_{metrics_};  // /metrics, any HTTP thread
};

}  // namespace nightshift
