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
#include <unordered_map>
#include <unordered_set>
#include <memory>
#include <string>

#include "serve/api.h"
#include "config/config.h"
#include "core/hash.h"
#include "serve/http.h"
#include "incidents/incidents.h"
#include "store/store.h"
#include "serve/metrics.h"
#include "notify/notifier.h"
#include "notify/paging.h"
#include "rules/rule_engine.h"
#include "core/scheduler.h"
#include "incidents/silences.h"
#include "serve/status_page.h"
#include "nightshift/reactor.h"
#include "nightshift/resolver.h"
#include "probes/probe.h"

namespace nightshift {

void block_agent_signals();

class Agent {
 public:
  Agent(std::string config_path, Config config, Clock& clock);
  ~Agent();

  // Runs until SIGTERM or SIGINT; returns the process exit code.
  int run();

 private:
  void apply(Config config);
  void reload();
  void dispatch(const ScheduledProbe& probe, Duration lag);
  void on_sample(const std::shared_ptr<const Target>& target, const ProbeSpec* spec, const Sample& sample);
  void on_confirmation(const Target& target, const Sample& sample);
  void on_alerts(const std::vector<rules::AlertEvent>& events);
  void schedule_rule_tick();
  void on_incidents(const std::vector<IncidentEvent>& events);
  void diagnose(const Incident& incident);
  void schedule_incident_tick();
  void update_open_incidents();
  // Writes notifications to the outbox (with `incident`, in one transaction,
  // when given) and wakes the notifier; delivers from memory if the disk fails.
  void queue_notifications(std::vector<OutboxEntry> rows, const Incident* incident);
  void on_paging_tick();
  void schedule_paging_tick();
  NotifyPolicy notify_policy() const;
  bool open_store();
  void reconcile_restored_incidents();
  Duration reconcile_grace() const;
  void on_signal();
  HttpResponse healthz() const;
  // Status page: re-rendered on the reactor at most every 250 ms after a
  // change, served from the snapshot by any HTTP worker.
  void status_changed();
  void render_status_page();
  HttpResponse serve_status(const HttpRequest& req, bool json);
  ApiBackend api_backend();
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
  Scheduler scheduler_;
  HttpServer http_;
  std::map<std::string, std::unique_ptr<ProbeEngine>> engines_;  // by kind
  std::unique_ptr<rules::RuleEngine> rules_;
  // (target, probe) now in the config, and those whose last run failed.
  std::unordered_set<std::pair<std::string, std::string>, StringPairHash> configured_probes_;
  std::unordered_set<std::pair<std::string, std::string>, StringPairHash> failing_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<IncidentManager> incidents_;
  std::unique_ptr<Paging> paging_;
  SilenceSet silences_;
  std::unique_ptr<Api> api_;
  // Last result per (target, probe): health for the status page and the API.
  struct ProbeState {
    bool ok = false;
    std::string reason;
  };
  // By target: hashed, as every sample looks its own up.
  std::unordered_map<std::string, std::map<std::string, ProbeState>> probe_states_;
  bool status_render_pending_ = false;
  std::mutex status_mu_;  // guards status_page_
  std::shared_ptr<const StatusPage> status_page_;
  std::unique_ptr<Notifier> notifier_;
  EarliestTimer schedule_timer_;  // the scheduler's next due probe
  EarliestTimer rule_timer_;      // the rule engine's next sustain/hysteresis deadline
  EarliestTimer incident_timer_;  // the incident manager's next batch/promise deadline
  EarliestTimer paging_timer_;    // the next renotify, escalation or Alertmanager keep-alive
  int signal_fd_ = -1;
  int exit_code_ = 0;
  std::atomic<Duration::rep> heartbeat_ns_{0};  // reactor liveness, read by /healthz
  MetricsEndpoint metrics_endpoint_{metrics_};  // /metrics, any HTTP thread
};

}  // namespace nightshift
