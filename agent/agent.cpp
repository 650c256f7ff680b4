#include "agent/agent.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <random>
#include <set>

#include "rules/default_rules.h"
#include "incidents/incident_json.h"
#include "serve/operator_backend.h"
#include "core/log.h"
#include "notify/sinks.h"

#include <prometheus/gauge.h>

namespace nightshift {

namespace {
sigset_t agent_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

// A tenth of a second's worth of probes may start at once.
double rate_burst(double per_second) { return std::max(1.0, per_second / 10); }

std::int64_t unix_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

fleet::Verdict fleet_verdict(const std::string& target, const std::string& probe, bool ok, std::string reason,
                             std::string detail, const Clock& clock) {
  fleet::Verdict v;
  v.target = target;
  v.probe = probe;
  v.ok = ok;
  if (!ok) {
    v.reason = std::move(reason);
    v.detail = std::move(detail);
  }
  v.since_ms = unix_ms(clock.wall_now());
  return v;
}

// Notifications of these events are not fleet events (recorded with a seq):
// the owner sends them under the fleet id with their own unique suffix.
bool periodic_event(const std::string& event) {
  return event == "renotify" || event == "escalated" || event == "refresh" || event == "update_overdue";
}

// "group=core site=ams": the text of the fleet incident's key (fleet::scope_key).
std::string scope_text(const std::map<std::string, std::string>& scope) {
  std::string out;
  for (const auto& [k, v] : scope) out += (out.empty() ? "" : " ") + k + "=" + v;
  return out;
}

// "a,b" for log fields; ", " in text for people.
std::string joined(const std::vector<std::string>& v, const char* separator = ",") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : separator) + s;
  return out;
}

double unix_now(const Clock& clock) {
  return std::chrono::duration<double>(clock.wall_now().time_since_epoch()).count();
}
}  // namespace

void block_agent_signals() {
  sigset_t set = agent_signals();
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a peer closing mid-write is an error value, not a death
}

Agent::Agent(std::string config_path, Config config, Clock& clock)
    : config_path_(std::move(config_path)),
      config_(std::move(config)),
      clock_(clock),
      reactor_(clock),
      resolver_(reactor_),
      engine_context_{reactor_, resolver_},
      metrics_(config_.agent.name, kind_measures()),
      scheduler_(clock, config_.agent.max_probes_per_second, rate_burst(config_.agent.max_probes_per_second)),
      status_(status_settings()),
      schedule_timer_(reactor_,
                      [this] {
                        schedule_timer_.arm(scheduler_.run_due([this](const ScheduledProbe& p, Duration lag,
                                                                      Duration span) { dispatch(p, lag, span); }));
                      }),
      pipeline_timer_(reactor_, [this] {
        pipeline_->tick();
        schedule_pipeline_tick();
      }) {}

Agent::~Agent() {
  http_.stop();
  if (notifier_) notifier_->stop();
  if (signal_fd_ >= 0) ::close(signal_fd_);
}

HttpResponse Agent::healthz() const {
  const Duration since = clock_.now().time_since_epoch() - Duration(heartbeat_ns_.load());
  HttpResponse r;
  if (since > std::chrono::seconds(10)) {
    r.status = 503;
    r.body = "unhealthy: probe loop has not run for " + format_duration(since) + "\n";
  } else {
    r.body = "ok\n";
  }
  if (fleet_connected_ && fleet_alone_) {
    r.body += "fleet: alone: no NATS with JetStream reached; detecting and paging by itself\n";
  }
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

int Agent::run() {
  log::set_level(config_.agent.log_level);
  std::error_code ec;
  std::filesystem::create_directories(config_.agent.state_dir, ec);
  if (ec || ::access(config_.agent.state_dir.c_str(), W_OK) != 0) {
    log::error("state directory is not writable",
               {{"state_dir", config_.agent.state_dir}, {"error", ec ? ec.message() : std::strerror(errno)}});
    return 1;
  }

  if (!open_store()) return 1;
  // Settings again in apply(), once the HTTP port (for the status link) is known.
  pipeline_ = std::make_unique<Pipeline>(clock_, pipeline_settings(), static_cast<PipelineEffects&>(*this));
  pipeline_->set_id_tag(id_tag_);

  http_.route("/metrics", [this](const HttpRequest& req) { return metrics_endpoint_.serve(req); });
  // Snapshots and an atomic: answered on the event threads, never blocking.
  constexpr auto kInline = HttpServer::Dispatch::kInline;
  http_.route("/healthz", [this](const HttpRequest&) { return healthz(); }, {"GET"}, kInline);
  using Format = StatusPublisher::Format;
  http_.route("/status", [this](const HttpRequest& req) { return status_.serve(req, Format::kHtml); }, {"GET"},
              kInline);
  http_.route("/status.json", [this](const HttpRequest& req) { return status_.serve(req, Format::kJson); }, {"GET"},
              kInline);
  http_.route("/status/feed.atom", [this](const HttpRequest& req) { return status_.serve(req, Format::kAtom); },
              {"GET"}, kInline);
  // blackbox_exporter's and snmp_exporter's endpoints (docs/compatibility.md).
  http_.route("/probe", [this](const HttpRequest& req) { return exporter_view_.probe(req); });
  http_.route("/snmp", [this](const HttpRequest& req) { return exporter_view_.snmp(req); });
  api_ = std::make_unique<Api>(
      reactor_, make_operator_backend(
                    *pipeline_, clock_, [this] { schedule_pipeline_tick(); }, [this] { return targets_json(); },
                    config_.fleet.enabled ? static_cast<FleetIncidentAccess*>(this) : nullptr, config_.agent.name));
  api_->configure({config_.api_token, config_.api_public_read});
  api_->register_routes(http_);
  http_.route("/", [this](const HttpRequest&) {
    HttpResponse r;
    r.content_type = "text/html; charset=utf-8";
    r.body = "<!doctype html><title>nightshift " + log::quote(config_.agent.name) +
             "</title><h1>nightshift</h1><ul><li><a href=\"/metrics\">/metrics</a></li>"
             "<li><a href=\"/healthz\">/healthz</a></li>"
             "<li>/probe?target=…&amp;module=… (blackbox_exporter format), /snmp?target=… (snmp_exporter format)</li>"
             "<li><a href=\"/status\">/status</a></li><li><a href=\"/status.json\">/status.json</a></li>"
             "<li><a href=\"/api/v1/incidents\">/api/v1/incidents</a></li></ul>\n";
    return r;
  }, {"GET"}, kInline);
  heartbeat_ns_ = clock_.now().time_since_epoch().count();
  HttpSettings http_settings;
  http_settings.threads = config_.agent.http_threads;
  http_settings.tls_cert_file = config_.agent.tls_cert_file;
  http_settings.tls_key_file = config_.agent.tls_key_file;
  if (Status s = http_.start(config_.agent.listen, http_settings); !s.ok()) {
    log::error("cannot start HTTP server", {{"listen", config_.agent.listen}, {"error", s.error().message}});
    return 1;
  }
  const std::string host = config_.agent.listen.substr(0, config_.agent.listen.rfind(':'));
  const std::string shown_host = host.empty() || host == "0.0.0.0" || host == "[::]" ? "127.0.0.1" : host;
  log::info("listening", {{"address", shown_host + ":" + std::to_string(http_.port())},
                          {"metrics", http_scheme() + shown_host + ":" + std::to_string(http_.port()) + "/metrics"},
                          {"open_files_limit", raise_open_files_limit()},
                          {"max_connections", http_.max_connections()}});
  if (auto id = http_.tls_identity()) {
    log_tls_identity("serving HTTPS", *id);
    metrics_.tls_certificate(std::chrono::duration<double>(id->not_after.time_since_epoch()).count());
  }

  // Undelivered notifications from before a restart go out first.
  notifier_ = std::make_unique<Notifier>(store_->path(), *metrics_.registry(), config_.agent.name, clock_);
  if (Status s = notifier_->start(config_.sinks, notify_policy()); !s.ok()) {
    log::error("cannot start the notifier", {{"path", store_->path()}, {"error", s.error().message}});
    return 1;
  }
  restore_from_store();
  if (!config_.sinks.empty()) {
    std::string names;
    for (const auto& sink : config_.sinks) names += (names.empty() ? "" : ",") + sink.name;
    log::info("paging", {{"sinks", names}});
  }

  sigset_t set = agent_signals();
  signal_fd_ = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0) {
    log::error("cannot create signalfd", {{"error", std::strerror(errno)}});
    return 1;
  }
  (void)reactor_.watch(signal_fd_, EPOLLIN, [this](std::uint32_t) { on_signal(); });

  // Liveness for /healthz: proves the reactor turns, not just that HTTP answers.
  heartbeat();

  Config initial = config_;
  apply(std::move(initial));
  metrics_.config_reload(true, unix_now(clock_));
  log::info("nightshift started", {{"agent", config_.agent.name},
                                   {"config", config_path_},
                                   {"targets", config_.targets.size()},
                                   {"probes", scheduler_.size()}});
  if (config_.fleet.enabled) start_fleet();
  // After a restart, incidents whose alerts never fire again (the outage ended
  // while the agent was down) are resolved once every probe has had time to
  // run a few times and every sustain to pass.
  reactor_.call_after(pipeline_->reconcile_grace(), [this] {
    pipeline_->reconcile();
    schedule_pipeline_tick();
  });
  schedule_pipeline_tick();
  reactor_.run();
  log::info("shutting down");
  if (fleet_) fleet_->stop();
  http_.stop();
  notifier_->stop();  // transfers in flight stay pending in the outbox: sent again at the next start
  log::info("stopped");
  return exit_code_;
}

bool Agent::open_store() {
  auto opened = Store::open(config_.agent.state_dir);
  if (!opened.ok()) {
    log::error("cannot open the state store", {{"state_dir", config_.agent.state_dir}, {"error", opened.error().message}});
    return false;
  }
  if (!opened->moved_aside.empty()) {
    log::error("state database was damaged: kept it aside and started a fresh one",
               {{"kept_as", opened->moved_aside}, {"path", opened->store->path()}});
  }
  store_ = std::move(opened->store);
  // The id tag lives with the store: a new store (first start, or a damaged
  // one set aside) draws a new one, so no id is ever issued twice.
  if (auto t = store_->get_meta("id_tag"); t.ok() && valid_id_tag(*t)) {
    id_tag_ = *t;
  } else {
    std::random_device rd;
    id_tag_ = new_id_tag((std::uint64_t{rd()} << 32) | rd());
    if (Status s = store_->set_meta("id_tag", id_tag_); !s.ok()) {
      metrics_.store_error();
      log::error("cannot save the incident id tag", {{"error", s.error().message}});
    }
  }
  std::vector<std::string> skipped;
  auto restored = store_->load(24 * 3600, &skipped);
  for (const auto& why : skipped) {
    log::error("skipped an incident the state store cannot read; the others are restored",
               {{"path", store_->path()}, {"error", why}});
  }
  if (!restored.ok()) {
    log::error("cannot read incidents from the state store; starting without them",
               {{"path", store_->path()}, {"error", restored.error().message}});
    return true;
  }
  restored_incidents_ = std::move(restored.value());
  if (auto seq = store_->get_meta("next_sequence"); seq.ok()) restored_sequence_ = std::stoull(*seq);
  skipped.clear();
  auto silences = store_->load_silences(clock_.wall_now(), &skipped);
  for (const auto& why : skipped) {
    log::error("skipped a silence the state store cannot read; the others are restored",
               {{"path", store_->path()}, {"error", why}});
  }
  if (silences.ok()) {
    restored_silences_ = std::move(silences.value());
  } else {
    log::error("cannot read silences from the state store; starting without them",
               {{"path", store_->path()}, {"error", silences.error().message}});
  }
  restore_status_history();
  return true;
}

void Agent::restore_from_store() {
  std::size_t open = 0;
  for (const auto& inc : restored_incidents_) {
    open += inc.open() ? 1 : 0;
    if (inc.open() && config_.fleet.enabled) restored_unlinked_.insert(inc.id);
  }
  pipeline_->restore(std::move(restored_incidents_), restored_sequence_, std::move(restored_silences_));
  restored_incidents_.clear();
  restored_silences_.clear();
  update_open_incidents();
  if (open > 0) log::info("open incidents restored", {{"open", open}, {"path", store_->path()}});
}

PipelineSettings Agent::pipeline_settings() const {
  return {config_.rules, config_.incidents, config_.sinks, notify_policy(), config_.targets};
}

void Agent::schedule_pipeline_tick() {
  if (!pipeline_) return;
  if (auto due = pipeline_->next_deadline()) pipeline_timer_.arm(*due);
}

void Agent::alert_changed(const rules::AlertEvent& event) { metrics_.alert(event); }

void Agent::uncertainty_changed(const std::string& target, const std::string& probe, bool uncertain) {
  scheduler_.set_uncertain(target, probe, uncertain);
  log::debug(uncertain ? "probing more while uncertain" : "certain again: back on schedule",
             {{"target", target}, {"probe", probe}, {"accelerated", scheduler_.accelerated()}});
  metrics_.set_accelerated(scheduler_.accelerated(), scheduler_.uncertain());
  schedule_timer_.arm(clock_.now());  // an accelerated run may now be due before the timer
}

void Agent::incident_changed(const IncidentEvent& event) {
  metrics_.incident(event);
  status_changed();  // also counts the open incidents again, coalesced
}

void Agent::sequence_changed(std::uint64_t next_sequence) {
  if (Status s = store_->set_meta("next_sequence", std::to_string(next_sequence)); !s.ok()) {
    metrics_.store_error();
    log::error("cannot save incident sequence", {{"error", s.error().message}});
  }
}

void Agent::silence_saved(const Silence& silence) {
  if (Status s = store_->save_silence(silence); !s.ok()) {
    metrics_.store_error();
    log::error("cannot save silence; it holds until a restart", {{"id", silence.id}, {"error", s.error().message}});
  }
  status_changed();
}

void Agent::silence_removed(const std::string& id) {
  if (Status s = store_->delete_silence(id); !s.ok()) metrics_.store_error();
  status_changed();
}

void Agent::commit(const Incident* incident, std::vector<OutboxEntry> rows) {
  if (fleet_ && !rows.empty()) rows = route_through_fleet(incident, std::move(rows));
  Status s = incident ? store_->save(*incident, rows) : store_->enqueue(rows);
  if (!s.ok()) {
    metrics_.store_error();
    if (incident) {
      log::error("cannot save incident; it stays in memory", {{"id", incident->id}, {"error", s.error().message}});
      // Without its notifications, the incident itself may still fit.
      if (!rows.empty() && store_->save(*incident).ok()) {
        log::info("incident saved without its notifications", {{"id", incident->id}});
      }
    }
    if (!rows.empty()) {
      log::error("cannot write notifications to the outbox; delivering them from memory",
                 {{"notifications", rows.size()}, {"error", s.error().message}});
      notifier_->deliver_from_memory(std::move(rows));
    }
    return;
  }
  if (!rows.empty()) notifier_->wake();
}

bool Agent::confirm(const std::shared_ptr<const Target>& target, const ProbeSpec& spec) {
  return confirm(target, spec, nullptr);
}

bool Agent::has_confirmation(const ProbeSpec& spec) const {
  auto it = engines_.find(spec.kind);
  return it != engines_.end() && it->second->has_confirmation();
}

bool Agent::confirm(const std::shared_ptr<const Target>& target, const ProbeSpec& spec,
                    std::function<void(const Sample&)> then) {
  auto it = engines_.find(spec.kind);
  if (it == engines_.end()) return false;
  ProbeRequest req;
  req.target = target;
  req.spec = &spec;
  req.done = [this, target, then = std::move(then)](Sample s) {
    metrics_.confirmation_done(s.kind, s.ok);
    log::debug("confirmation", {{"target", s.target}, {"probe", s.probe}, {"detail", s.detail}});
    // Before the pipeline, as in on_sample(): a declaration this sample makes
    // asks the fleet, whose view must hold this vantage's fresh verdict (else
    // it counts this agent as up and takes its own failure for a path problem).
    if (fleet_) {
      fleet_->observe(fleet_verdict(s.target, s.probe, s.ok, std::string(to_string(s.reason)), s.detail, clock_));
    }
    pipeline_->on_sample(target, s);
    schedule_pipeline_tick();
    sample_seen(s);
    if (then) then(s);
  };
  if (!it->second->confirm(std::move(req))) return false;
  metrics_.confirmation_started(spec.kind);
  return true;
}

// ---- [fleet] ---------------------------------------------------------------

std::vector<fleet::Verdict> Agent::watched_verdicts() const {
  std::vector<fleet::Verdict> out;
  for (const auto& t : config_.targets) {
    for (const auto& p : t->probes) {
      bool ok = true;  // not run yet: nothing seen wrong
      std::string reason;
      if (auto ps = probe_states_.find(ProbeKeyView{t->name, p.name}); ps != probe_states_.end()) {
        ok = ps->second.ok;
        reason = to_string(ps->second.reason);
      }
      out.push_back(fleet_verdict(t->name, p.name, ok, reason, "", clock_));
    }
  }
  return out;
}

// A peer saw a target we watch fail and asks "probe it now": each of our
// probes of it runs its confirmation out of schedule (the samples feed our own
// rules too), so a quorum is reached in seconds instead of on our next round.
// A probe that cannot start one (its engine is confirming it already, or has
// it confirmed down; no confirmation for its kind; budget) answers with its
// next sample, whichever path brings it, or with its latest verdict shortly
// before the asker stops waiting. The first probe seen down answers at once:
// it decides this vantage's vote, which any other probe's answer would not
// change. Only samples count as down (a confirmed failure of this vantage);
// nothing here turns an unanswered wait into one.
void Agent::answer_fleet_confirm(const fleet::ConfirmRequest& req,
                                 std::function<void(std::vector<fleet::Verdict>)> done) {
  auto target = std::find_if(config_.targets.begin(), config_.targets.end(),
                             [&](const auto& t) { return t->name == req.target; });
  if (target == config_.targets.end()) {
    done({});
    return;
  }
  struct Gathering {
    std::uint64_t id = 0;
    std::map<std::string, fleet::Verdict> verdicts;  // by probe: fresh ones replace the latest
    std::size_t waiting = 0;
    bool answered = false;
    bool down = false;  // a probe not asked again is down as last seen
    std::function<void(std::vector<fleet::Verdict>)> done;
    Reactor::TimerId timer = 0;
    std::vector<std::pair<std::string, std::string>> waits;  // keys in sample_waiters_
  };
  auto g = std::make_shared<Gathering>();
  g->id = next_fleet_answer_++;
  g->done = std::move(done);
  auto answer = [this, g] {
    if (g->answered) return;
    g->answered = true;
    if (g->timer) reactor_.cancel(g->timer);
    for (const auto& key : g->waits) {
      auto it = sample_waiters_.find(key);
      if (it == sample_waiters_.end()) continue;
      std::erase_if(it->second, [&](const auto& w) { return w.first == g->id; });
      if (it->second.empty()) sample_waiters_.erase(it);
    }
    std::vector<fleet::Verdict> out;
    for (auto& [probe, v] : g->verdicts) out.push_back(std::move(v));
    g->done(std::move(out));
  };
  // A fresh sample of one probe: its verdict replaces the latest.
  auto fresh = [this, g, answer](const Sample& s) {
    if (g->answered) return;
    g->verdicts[s.probe] = fleet_verdict(s.target, s.probe, s.ok, std::string(to_string(s.reason)), s.detail, clock_);
    if (--g->waiting == 0 || !s.ok) answer();
  };
  for (const auto& spec : (*target)->probes) {
    if (!req.probe.empty() && spec.name != req.probe) continue;
    bool ok = true;  // not run yet: nothing seen wrong
    std::string reason;
    if (auto ps = probe_states_.find(ProbeKeyView{req.target, spec.name}); ps != probe_states_.end()) {
      ok = ps->second.ok;
      reason = to_string(ps->second.reason);
    }
    g->verdicts[spec.name] = fleet_verdict(req.target, spec.name, ok, reason, "", clock_);
    if (confirm(*target, spec, fresh)) {
      ++g->waiting;
    } else if (!ok) {
      g->down = true;  // its last sample failed and it is not being asked again: the vote is down
    } else {
      std::pair<std::string, std::string> key{req.target, spec.name};
      sample_waiters_[key].emplace_back(g->id, fresh);
      g->waits.push_back(std::move(key));
      ++g->waiting;
    }
  }
  if (g->waiting == 0 || g->down) {
    answer();
    return;
  }
  const Duration wait = config_.fleet.confirm_timeout > std::chrono::milliseconds(1000)
                            ? config_.fleet.confirm_timeout - std::chrono::milliseconds(500)
                            : config_.fleet.confirm_timeout / 2;
  g->timer = reactor_.call_after(wait, [g, answer] {
    g->timer = 0;
    answer();
  });
}

void Agent::sample_seen(const Sample& s) {
  auto it = sample_waiters_.find({s.target, s.probe});
  if (it == sample_waiters_.end()) return;
  auto waiters = std::move(it->second);
  sample_waiters_.erase(it);
  for (auto& [id, fn] : waiters) fn(s);
}

void Agent::start_fleet() {
  auto& family = prometheus::BuildGauge()
                     .Name("nightshift_fleet_connected")
                     .Help("1 while this agent is connected to its fleet (NATS with JetStream); 0 while it is alone "
                           "and pages by itself")
                     .Register(*metrics_.registry());
  // The agent label is what the shipped Prometheus quorum rule joins on
  // (`unless on (agent)`) to leave fleet agents out: without it the fleet's
  // outage is paged a second time by Prometheus.
  fleet_connected_ = &family.Add({{"agent", config_.agent.name}});
  fleet_alone_ = true;
  fleet::FleetNode::Hooks hooks;
  hooks.confirm = [this](const fleet::ConfirmRequest& req, std::function<void(std::vector<fleet::Verdict>)> done) {
    answer_fleet_confirm(req, std::move(done));
  };
  hooks.alone_changed = [this](bool alone) {
    fleet_alone_ = alone;
    fleet_connected_->Set(alone ? 0 : 1);
    if (alone) {
      log::warn("fleet: alone (no NATS with JetStream reached): detecting and paging by itself",
                {{"fleet", config_.fleet.name}});
    } else {
      log::info("fleet: connected; a critical outage seen by other agents too is paged once, by its owner",
                {{"fleet", config_.fleet.name}});
      reconcile_with_fleet();
    }
  };
  hooks.became_owner = [this](const fleet::FleetIncident& inc, bool takeover) { fleet_became_owner(inc, takeover); };
  hooks.incident_changed = [this](const fleet::FleetIncident& inc) { fleet_incident_changed(inc); };
  log::info("fleet: joining", {{"fleet", fleet::describe(config_.fleet)}});
  fleet_ = std::make_unique<fleet::FleetNode>(reactor_, config_.fleet, config_.agent.name, id_tag_, std::move(hooks));
  fleet_->start();
  fleet_->set_watched(watched_verdicts());
  // The node starts alone and says nothing until it connects: say it once if that takes long.
  reactor_.call_after(config_.fleet.connect_timeout, [this] {
    if (fleet_->alone()) {
      log::warn("fleet: alone (no NATS with JetStream reached yet): detecting and paging by itself",
                {{"fleet", config_.fleet.name}});
    }
  });
}

void Agent::enqueue(std::vector<OutboxEntry> rows) {
  if (rows.empty()) return;
  if (Status s = store_->enqueue(rows); !s.ok()) {
    metrics_.store_error();
    log::error("cannot write notifications to the outbox; delivering them from memory",
               {{"notifications", rows.size()}, {"error", s.error().message}});
    notifier_->deliver_from_memory(std::move(rows));
    return;
  }
  notifier_->wake();
}

std::vector<OutboxEntry> Agent::route_through_fleet(const Incident* incident, std::vector<OutboxEntry> rows) {
  std::vector<OutboxEntry> now;
  std::map<std::string, std::vector<OutboxEntry>> by_incident;
  for (auto& r : rows) by_incident[r.incident].push_back(std::move(r));
  for (auto& [id, group] : by_incident) {
    const Incident* inc = incident && incident->id == id ? incident : pipeline_->incidents().find(id);
    auto link = fleet_links_.find(id);
    const bool starts = std::any_of(group.begin(), group.end(),
                                    [](const auto& r) { return r.event == "declared" || r.event == "reopened"; });
    if (link != fleet_links_.end() && starts && link->second.decided) {
      fleet_links_.erase(link);  // reopened: the fleet decides again
      link = fleet_links_.end();
    }
    if (link == fleet_links_.end()) {
      // The fleet's business: a critical outage (not this agent's own
      // isolation) of a target that other reporting agents watch too.
      bool shared = false;
      if (inc && starts && inc->severity == Severity::kCritical && !inc->vantage && !fleet_->alone()) {
        for (const auto& t : inc->impacted) shared = shared || (t.active && fleet_->assess(t.target).watchers > 1);
      }
      if (!shared) {
        if (inc && starts && inc->severity == Severity::kCritical && !inc->vantage && fleet_->alone()) {
          paged_alone_.insert(id);  // claimed as announced when the fleet is back
        }
        std::move(group.begin(), group.end(), std::back_inserter(now));
        continue;
      }
      FleetLink& l = fleet_links_[id];
      l.incident = *inc;
      l.held = std::move(group);
      decide_fleet(id);
      continue;
    }
    FleetLink& l = link->second;
    if (inc) l.incident = *inc;
    if (!l.decided) {
      std::move(group.begin(), group.end(), std::back_inserter(l.held));
    } else if (!l.fleet) {
      if (l.page) std::move(group.begin(), group.end(), std::back_inserter(now));
      if (!l.page && !l.path_problem.empty()) {
        auto warned = path_problem_rows(l, std::move(group));
        std::move(warned.begin(), warned.end(), std::back_inserter(now));
      }
    } else if (l.page) {
      send_as_owner(id, std::move(group));
    } else {
      for (auto& r : group) {
        if (r.event == "resolved") l.unsent_resolve.push_back(std::move(r));
      }
      log::debug("fleet: recorded, not sent: another agent owns the notifications", {{"id", id}, {"fleet_id", l.fleet_id}});
    }
  }
  return now;
}

void Agent::decide_fleet(const std::string& local_id) {
  const FleetLink& asking = fleet_links_.at(local_id);
  const ImpactedTarget* first = nullptr;
  for (const auto& t : asking.incident.impacted) {
    if (t.active && !first) first = &t;
  }
  // Fresh verdicts from the other watchers first: quorum or this agent's path.
  // The whole target (probe ""): agents may name their probes differently.
  fleet_->confirm(first->target, "", [this, local_id, target = first->target](fleet::Assessment a) {
    auto it = fleet_links_.find(local_id);
    if (it == fleet_links_.end()) return;
    FleetLink& link = it->second;
    if (a.verdict == fleet::Assessment::Verdict::kPathProblem || a.verdict == fleet::Assessment::Verdict::kUp) {
      // Down from a minority of vantages: this agent's path, not an outage.
      log::warn("fleet: target down from this vantage only: a path problem, a warning, not a page",
                {{"id", local_id},
                 {"target", target},
                 {"vantage", config_.agent.name},
                 {"down_from", joined(a.down_vantages)},
                 {"up_from", joined(a.up_vantages)},
                 {"needed", a.needed}});
      link.decided = true;
      link.fleet = false;
      link.page = false;
      status_changed();  // off the public page
      // Visible as a warning when the fleet's view agrees this vantage sees it down.
      if (std::find(a.down_vantages.begin(), a.down_vantages.end(), config_.agent.name) != a.down_vantages.end()) {
        link.path_problem = target + " is down from " + joined(a.down_vantages, ", ") + " only (up from " +
                            (a.up_vantages.empty() ? std::string("the other agents") : joined(a.up_vantages, ", ")) +
                            "): this vantage's path, not an outage";
        pipeline_->add_finding(local_id, "fleet: " + link.path_problem);
        enqueue(path_problem_rows(link, std::move(link.held)));
      }
      link.held.clear();
      return;
    }
    link.quorum_target = target;
    link.down_from = a.down_vantages;
    link.watchers = a.watchers;
    fleet_->claim(fleet_draft(link), [this, local_id](Result<fleet::FleetNode::Claim> claim) {
      auto found = fleet_links_.find(local_id);
      if (found == fleet_links_.end()) return;
      FleetLink& l = found->second;
      l.decided = true;
      std::vector<OutboxEntry> held = std::move(l.held);
      l.held.clear();
      if (!claim.ok()) {
        log::warn("fleet: cannot claim the incident: paging alone", {{"id", local_id}, {"error", claim.error().message}});
        l.fleet = false;
        l.page = true;
        paged_alone_.insert(local_id);
        enqueue(std::move(held));
        return;
      }
      l.fleet = true;
      l.key = claim->incident.key;
      l.fleet_id = claim->incident.id;
      l.page = claim->owner;
      // Once the rows below are placed: what operators did meanwhile, here
      // or through other agents, reaches both sides.
      reactor_.post([this, local_id, stored = claim->incident] {
        const fleet::FleetIncident* latest = fleet_->find_incident(stored.key);
        sync_with_fleet(local_id, latest && latest->id == stored.id ? *latest : stored, /*push=*/true);
      });
      log::info(claim->owner ? "fleet: this agent owns the incident and pages" : "fleet: incident recorded; its owner pages",
                {{"id", local_id}, {"fleet_id", l.fleet_id}, {"created", claim->created ? "yes" : "no"}});
      if (claim->owner && !claim->created && claim->incident.notified == 0) {
        // Another agent created the fleet incident but this one won its lease
        // (the two writes are separate): the creator announces nothing, so the
        // declaration is this agent's to send, under the key the creator's
        // would have had (a receiver dedupes a second one).
        std::vector<OutboxEntry> declared, rest;
        for (auto& r : held) (r.event == "declared" || r.event == "reopened" ? declared : rest).push_back(std::move(r));
        enqueue(fleet_rows(l, std::move(declared), "1"));
        fleet_->mark_notified(l.key, 1);
        if (!rest.empty()) send_as_owner(local_id, std::move(rest));
        return;
      }
      if (!claim->owner || !claim->created) {
        // Joined: its declaration was announced by the agent that created it.
        std::erase_if(held, [](const auto& r) { return r.event == "declared" || r.event == "reopened"; });
        if (!claim->owner) {
          for (auto& r : held) {
            if (r.event == "resolved") l.unsent_resolve.push_back(std::move(r));
          }
          return;
        }
        send_as_owner(local_id, std::move(held));
        return;
      }
      // Created and owner: the declaration is the fleet incident's event seq.
      std::vector<OutboxEntry> declared, rest;
      for (auto& r : held) (r.event == "declared" || r.event == "reopened" ? declared : rest).push_back(std::move(r));
      const std::uint64_t seq = claim->incident.seq;
      enqueue(fleet_rows(l, std::move(declared), std::to_string(seq)));
      fleet_->mark_notified(l.key, seq);
      if (!rest.empty()) send_as_owner(local_id, std::move(rest));
    });
  });
}

fleet::FleetIncident Agent::fleet_draft(const FleetLink& link) const {
  const Incident& incident = link.incident;
  fleet::FleetIncident draft;
  draft.key = fleet::scope_key(scope_text(incident.scope));
  draft.id = incident.id;
  draft.title = incident.title;
  draft.scope = incident.scope;
  draft.severity = incident.severity;
  draft.declared_by = config_.agent.name;
  draft.declared_ms = unix_ms(incident.declared_at);
  draft.flapping = incident.flapping;
  draft.flapping_ms = incident.flapping ? unix_ms(incident.flapping_since) : 0;
  for (const auto& t : incident.impacted) {
    if (!t.active) continue;
    std::vector<std::string> vantages = {config_.agent.name};
    if (t.target == link.quorum_target) {
      for (const auto& v : link.down_from) {
        if (std::find(vantages.begin(), vantages.end(), v) == vantages.end()) vantages.push_back(v);
      }
    }
    draft.impacted.push_back({t.target, t.probe, t.rule, std::move(vantages), true});
  }
  draft.seq = 1;
  draft.last_event = "declared";
  return draft;
}

// Back on the fleet: each open critical outage this agent paged alone is
// claimed as already announced (notified = seq). The fleet adopts its id, and
// this agent owns it; or it joins the fleet incident another agent made for
// the same scope meanwhile, and keeps its own lifecycle (its resolve goes out
// under the id it was paged with). Either way an agent that sees the outage
// later joins it instead of paging it again.
void Agent::reconcile_with_fleet() {
  for (auto it = paged_alone_.begin(); it != paged_alone_.end();) {
    const Incident* inc = pipeline_->incidents().find(*it);
    auto link = fleet_links_.find(*it);
    const bool decided_since = link != fleet_links_.end() && (link->second.fleet || !link->second.page);
    if (!inc || !inc->open() || decided_since) {
      it = paged_alone_.erase(it);
      continue;
    }
    ++it;
    FleetLink alone;  // paged alone: no quorum was asked
    alone.incident = *inc;
    fleet::FleetIncident draft = fleet_draft(alone);
    draft.notified = draft.seq;
    fleet_->claim(std::move(draft), [this, local = *inc](Result<fleet::FleetNode::Claim> claim) {
      if (!claim.ok()) {
        log::warn("fleet: cannot reconcile an incident paged alone; trying again when back",
                  {{"id", local.id}, {"error", claim.error().message}});
        return;
      }
      paged_alone_.erase(local.id);
      FleetLink& l = fleet_links_[local.id];
      l.incident = local;
      l.decided = true;
      l.page = true;
      l.key = claim->incident.key;
      l.fleet_id = claim->incident.id;
      l.fleet = claim->created && claim->owner;
      log::info(l.fleet ? "fleet: an incident paged alone is now the fleet's, under the same id"
                        : "fleet: an incident paged alone joined the fleet's incident; its own resolve still goes out",
                {{"id", local.id}, {"fleet_id", claim->incident.id}});
    });
  }
}

std::vector<OutboxEntry> Agent::fleet_rows(const FleetLink& l, std::vector<OutboxEntry> rows,
                                           const std::string& suffix) {
  Incident shown = l.incident;
  shown.id = l.fleet_id;
  // The on-call reads that it is an outage, not one agent's path: the
  // vantages that saw it down when the fleet decided.
  if (shown.open() && !l.down_from.empty()) {
    const std::string seen = "; down from " + std::to_string(l.down_from.size()) + " of " +
                             std::to_string(std::max(l.watchers, l.down_from.size())) + " agents watching it (" +
                             joined(l.down_from, ", ") + ")";
    for (auto& t : shown.impacted) {
      if (t.active && t.target == l.quorum_target) t.summary += seen;
    }
  }
  const NotifyPolicy policy = notify_policy();
  for (auto& r : rows) {
    // A periodic row keeps its own unique suffix (its time stamp).
    const std::string own = r.key.substr(std::min(r.key.size(), r.incident.size() + r.event.size() + 2));
    r.key = l.fleet_id + ":" + r.event + ":" + (suffix.empty() ? own : suffix);
    auto sink = std::find_if(config_.sinks.begin(), config_.sinks.end(), [&](const auto& s) { return s.name == r.sink; });
    if (sink != config_.sinks.end()) r.body = render_body(*sink, policy, NotificationEvent{r.event, shown}, r.key, clock_.wall_now());
  }
  return rows;
}

std::vector<OutboxEntry> Agent::path_problem_rows(const FleetLink& l, std::vector<OutboxEntry> rows) {
  Incident shown = l.incident;
  shown.severity = Severity::kWarning;
  for (auto& t : shown.impacted) t.severity = std::min(t.severity, Severity::kWarning);
  shown.title = "Path problem: " + l.path_problem;
  const NotifyPolicy policy = notify_policy();
  std::vector<OutboxEntry> out;
  for (auto& r : rows) {
    if (r.event == "renotify" || r.event == "escalated") continue;
    auto sink =
        std::find_if(config_.sinks.begin(), config_.sinks.end(), [&](const auto& s) { return s.name == r.sink; });
    if (sink == config_.sinks.end()) continue;
    const NotificationEvent e{r.event, shown};
    if (!sink_wants(*sink, e, false)) continue;  // a pager that takes only critical hears nothing
    r.body = render_body(*sink, policy, e, r.key, clock_.wall_now());
    out.push_back(std::move(r));
  }
  return out;
}

void Agent::send_as_owner(const std::string& local_id, std::vector<OutboxEntry> rows) {
  FleetLink& l = fleet_links_.at(local_id);
  std::map<std::string, std::vector<OutboxEntry>> by_event;
  for (auto& r : rows) {
    if (periodic_event(r.event)) {
      std::vector<OutboxEntry> one;
      one.push_back(std::move(r));
      enqueue(fleet_rows(l, std::move(one), ""));
    } else {
      by_event[r.event].push_back(std::move(r));
    }
  }
  for (auto& entry : by_event) {
    const std::string event = entry.first;
    std::vector<OutboxEntry> group = std::move(entry.second);
    const SystemTime at = clock_.wall_now();
    const std::string by = l.incident.acknowledged_by;
    // The owner speaks for the fleet incident: its title (targets joined, a
    // flapping mark) and the mark itself follow each event it announces.
    const std::string title = l.incident.title;
    const bool flapping = l.incident.flapping;
    const std::int64_t flapping_ms = flapping ? unix_ms(l.incident.flapping_since) : 0;
    fleet_->record(
        l.key, event,
        [event, at, by, title, flapping, flapping_ms](fleet::FleetIncident& inc) {
          if (!title.empty()) inc.title = title;
          inc.flapping = flapping;
          inc.flapping_ms = flapping_ms;
          if (event == "resolved") {
            inc.open = false;
            inc.resolved_ms = unix_ms(at);
          } else if (event == "acknowledged") {
            inc.acknowledged = true;
            inc.acknowledged_by = by;
            if (inc.acknowledged_ms == 0) inc.acknowledged_ms = unix_ms(at);
          }
        },
        [this, local_id, rows = std::move(group)](Result<fleet::FleetIncident> stored) mutable {
          auto it = fleet_links_.find(local_id);
          if (it == fleet_links_.end()) return;
          if (!stored.ok()) {
            // Nothing is lost: sent under the fleet id with this agent's own suffix.
            log::warn("fleet: cannot record the event; sending it anyway",
                      {{"id", local_id}, {"error", stored.error().message}});
            enqueue(fleet_rows(it->second, std::move(rows), ""));
            return;
          }
          enqueue(fleet_rows(it->second, std::move(rows), std::to_string(stored->seq)));
          fleet_->mark_notified(it->second.key, stored->seq);
        });
  }
}

void Agent::fleet_incident_changed(const fleet::FleetIncident& changed) {
  const fleet::FleetIncident inc = changed;  // the node's copy may change under the pipeline's effects
  relink_restored(inc);
  if (const Incident* local = local_copy_of(inc)) sync_with_fleet(local->id, inc, /*push=*/false);
  status_changed();  // every agent's page shows the fleet's incidents
}

void Agent::sync_with_fleet(const std::string& local_id, const fleet::FleetIncident& inc, bool push) {
  const Incident* local = pipeline_->incidents().find(local_id);
  if (!local) return;
  const std::vector<fleet::OperatorAction> to_push =
      push ? fleet::missing_in_fleet(*local, inc) : std::vector<fleet::OperatorAction>{};
  for (const auto& a : fleet::missing_locally(inc, *local)) {
    // Through the pipeline, as if made here: the owner's copy announces it
    // (keys fleet_id:event:seq), the others record it.
    Result<Incident> done = a.kind == fleet::OperatorAction::Kind::kAcknowledge ? pipeline_->acknowledge(local_id, a.by)
                            : a.kind == fleet::OperatorAction::Kind::kNote
                                ? pipeline_->add_note(local_id, a.text, a.is_public, a.by)
                                : pipeline_->resolve(local_id, a.by);
    log::info("fleet: applied an operator action recorded in the fleet incident",
              {{"id", local_id},
               {"fleet_id", inc.id},
               {"action", fleet::to_string(a.kind)},
               {"by", a.by},
               {"through", a.agent.empty() ? std::string("-") : a.agent},
               {"result", done.ok() ? std::string("applied") : done.error().message}});
  }
  schedule_pipeline_tick();
  for (const auto& a : to_push) {
    fleet_->amend(inc.key, a, [local_id, kind = a.kind](Result<fleet::FleetIncident> stored) {
      if (!stored.ok()) {
        log::warn("fleet: cannot record an operator action in the fleet incident",
                  {{"id", local_id}, {"action", fleet::to_string(kind)}, {"error", stored.error().message}});
      }
    });
  }
}

// After a restart the links to the fleet are gone (memory only), not the
// incidents: an open one restored from the store whose scope has an open
// fleet incident is this agent's copy of it again, so its later events go
// through the fleet under the fleet id (a non-owner's resolve is kept for a
// takeover, not sent under the local id the receivers never heard of).
void Agent::relink_restored(const fleet::FleetIncident& inc) {
  if (!inc.open) return;
  for (auto it = restored_unlinked_.begin(); it != restored_unlinked_.end();) {
    const Incident* local = pipeline_->incidents().find(*it);
    if (!local || !local->open() || fleet_links_.count(*it) || paged_alone_.count(*it)) {
      it = restored_unlinked_.erase(it);
      continue;
    }
    if (local->vantage || fleet::scope_key(scope_text(local->scope)) != inc.key) {
      ++it;
      continue;
    }
    FleetLink& l = fleet_links_[*it];
    l.incident = *local;
    l.decided = true;
    l.fleet = true;
    l.key = inc.key;
    l.fleet_id = inc.id;
    l.page = fleet_->owns(inc.key);
    log::info("fleet: an incident restored from the store is again this agent's copy of the fleet incident",
              {{"id", *it}, {"fleet_id", inc.id}, {"owner", l.page ? "yes" : "no"}});
    it = restored_unlinked_.erase(it);
  }
}

const fleet::FleetIncident* Agent::fleet_copy_of(const Incident& local) const {
  if (!fleet_) return nullptr;
  if (auto l = fleet_links_.find(local.id); l != fleet_links_.end() && l->second.fleet) {
    const fleet::FleetIncident* inc = fleet_->find_incident(l->second.key);
    if (inc && inc->id == l->second.fleet_id) return inc;
  }
  if (!local.open() || local.vantage) return nullptr;
  const fleet::FleetIncident* inc = fleet_->find_incident(fleet::scope_key(scope_text(local.scope)));
  return inc && inc->open ? inc : nullptr;
}

const Incident* Agent::local_copy_of(const fleet::FleetIncident& inc) const {
  if (!fleet_) return nullptr;
  for (const auto& [local_id, l] : fleet_links_) {
    if (l.fleet && l.key == inc.key && l.fleet_id == inc.id) {
      if (const Incident* local = pipeline_->incidents().find(local_id)) return local;
    }
  }
  if (!inc.open) return nullptr;
  for (const auto& local : pipeline_->incidents().incidents()) {
    if (local.open() && !local.vantage && fleet::scope_key(scope_text(local.scope)) == inc.key) {
      return pipeline_->incidents().find(local.id);
    }
  }
  return nullptr;
}

std::vector<const fleet::FleetIncident*> Agent::fleet_incidents() const {
  std::vector<const fleet::FleetIncident*> out;
  if (!fleet_) return out;
  for (const auto& [key, inc] : fleet_->incidents()) out.push_back(&inc);
  return out;
}

bool Agent::notifies(const fleet::FleetIncident& inc) const { return fleet_ && fleet_->owns(inc.key); }

void Agent::amend(const std::string& key, fleet::OperatorAction action,
                  std::function<void(Result<fleet::FleetIncident>)> done) {
  if (!fleet_) {
    done(Error::unavailable("not in a fleet"));
    return;
  }
  fleet_->amend(key, std::move(action), std::move(done));
}

void Agent::fleet_became_owner(const fleet::FleetIncident& inc, bool takeover) {
  for (auto& [local_id, l] : fleet_links_) {
    if (l.key != inc.key || !l.fleet) continue;
    l.page = true;
    log::info(takeover ? "fleet: took over the incident from its silent owner" : "fleet: owns the incident",
              {{"id", local_id}, {"fleet_id", inc.id}});
    // It ended here while the old owner was still to say so: say it now.
    if (inc.open && !l.unsent_resolve.empty()) {
      std::vector<OutboxEntry> rows = std::move(l.unsent_resolve);
      l.unsent_resolve.clear();
      send_as_owner(local_id, std::move(rows));
    }
    return;
  }
}

NotifyPolicy Agent::notify_policy() const {
  NotifyPolicy p = config_.notify;
  if (p.status_url.empty()) {
    const std::string host = config_.agent.listen.substr(0, config_.agent.listen.rfind(':'));
    const bool any = host.empty() || host == "0.0.0.0" || host == "[::]";
    p.status_url = http_scheme() + (any ? std::string("127.0.0.1") : host) + ":" +
                   std::to_string(http_.port()) + "/status";
  }
  return p;
}

void Agent::diagnose(const Incident& incident) {
  for (const auto& impact : incident.impacted) {
    if (!impact.active) continue;
    auto t = std::find_if(config_.targets.begin(), config_.targets.end(),
                          [&](const auto& target) { return target->name == impact.target; });
    if (t == config_.targets.end()) continue;
    for (const auto& spec : (*t)->probes) {
      auto engine = engines_.find(spec.kind);
      if (engine == engines_.end()) continue;
      const std::string id = incident.id;
      const bool started = engine->second->diagnose(*t, spec, [this, id](std::string finding) {
        pipeline_->add_finding(id, finding);
      });
      if (started) return;
    }
  }
}

void Agent::update_open_incidents() {
  std::map<Severity, int> open;
  for (const auto& inc : pipeline_->incidents().incidents()) {
    if (inc.open()) open[inc.severity]++;
  }
  metrics_.set_open_incidents(open);
}

void Agent::heartbeat() {
  heartbeat_ns_ = clock_.now().time_since_epoch().count();
  expire_silences();
  // An open incident's bar grows, and days roll over: render once a minute
  // even without a change (the ETag moves only when the content does).
  if (++heartbeats_ % 60 == 0) status_changed();
  reactor_.call_after(std::chrono::seconds(1), [this] { heartbeat(); });
}

void Agent::apply(Config config) {
  config_ = std::move(config);
  log::set_level(config_.agent.log_level);
  std::set<std::pair<std::string, std::string>> configured;
  for (const auto& t : config_.targets) {
    for (const auto& p : t->probes) configured.insert({t->name, p.name});
  }
  std::erase_if(probe_states_, [&](const auto& entry) { return !configured.count(entry.first); });
  if (api_) api_->configure({config_.api_token, config_.api_public_read});
  status_.configure(status_settings());
  status_changed();
  notifier_->configure(config_.sinks, notify_policy());
  for (const auto& t : config_.targets) {
    for (const auto& p : t->probes) {
      if (engines_.count(p.kind)) continue;
      const ProbeKind* kind = find_probe_kind(p.kind);
      engines_[p.kind] = kind->make_engine(engine_context_);
      log::debug("probe engine started", {{"kind", p.kind}});
    }
  }
  metrics_.sync_targets(config_.targets);
  exporter_view_.sync_targets(config_.targets);
  if (fleet_) fleet_->set_watched(watched_verdicts());
  if (pipeline_->configure(pipeline_settings())) {
    // New rules start from scratch: incidents whose alerts the new rules do
    // not raise again are resolved after the usual grace.
    reactor_.call_after(pipeline_->reconcile_grace(), [this] {
      pipeline_->reconcile();
      schedule_pipeline_tick();
    });
  }
  schedule_pipeline_tick();
  scheduler_.set_rate(config_.agent.max_probes_per_second, rate_burst(config_.agent.max_probes_per_second));
  scheduler_.set_accelerates([this](const ProbeSpec& spec) {
    auto it = engines_.find(spec.kind);
    return it != engines_.end() && it->second->accelerates(spec);
  });
  scheduler_.set_targets(config_.targets);
  metrics_.set_accelerated(scheduler_.accelerated(), scheduler_.uncertain());
  schedule_timer_.arm(clock_.now());
}

void Agent::dispatch(const ScheduledProbe& probe, Duration lag, Duration span) {
  metrics_.scheduler_lag(std::chrono::duration<double>(lag).count());
  auto& engine = engines_.at(probe.spec->kind);
  ProbeRequest req;
  req.target = probe.target;
  req.spec = probe.spec;
  req.span = span;
  if (span > Duration::zero()) {
    // Accelerated: skipped while the last one is still out (its confirmation).
    std::pair<std::string, std::string> key{probe.target->name, probe.spec->name};
    if (!accelerated_in_flight_.insert(key).second) return;
    req.done = [this, target = probe.target, key = std::move(key)](Sample s) {
      accelerated_in_flight_.erase(key);
      on_sample(target, s);
    };
  } else {
    req.done = [this, target = probe.target](Sample s) { on_sample(target, s); };
  }
  engine->submit(std::move(req));
  metrics_.probe_sent(probe.spec->kind);
  metrics_.set_in_flight(probe.spec->kind, static_cast<double>(engine->in_flight()));
}

void Agent::on_sample(const std::shared_ptr<const Target>& target, const Sample& sample) {
  metrics_.record(sample);  // before the view: /probe and /snmp read their results from the records
  exporter_view_.record(sample);
  // Before the pipeline: a declaration it makes now asks the fleet, which must know this verdict.
  if (fleet_) fleet_->observe(fleet_verdict(sample.target, sample.probe, sample.ok, std::string(to_string(sample.reason)),
                                            sample.detail, clock_));
  pipeline_->on_sample(target, sample);
  schedule_pipeline_tick();
  auto found = probe_states_.find(ProbeKeyView{sample.target, sample.probe});
  if (found == probe_states_.end()) found = probe_states_.try_emplace({sample.target, sample.probe}).first;
  ProbeState& state = found->second;
  if (state.ok != sample.ok || state.reason != sample.reason || !status_.page()) status_changed();
  state.ok = sample.ok;
  state.reason = sample.reason;
  sample_seen(sample);
  if (auto it = engines_.find(sample.kind); it != engines_.end()) {
    metrics_.set_in_flight(sample.kind, static_cast<double>(it->second->in_flight()));
  }
  if (!sample.ok) {
    log::debug("probe failed", {{"target", sample.target},
                                {"probe", sample.probe},
                                {"reason", to_string(sample.reason)},
                                {"detail", sample.detail}});
  }
}

std::string Agent::http_scheme() const { return http_.tls() ? "https://" : "http://"; }

void Agent::log_tls_identity(const char* message, const TlsIdentityInfo& id) {
  log::info(message, {{"cert_file", config_.agent.tls_cert_file},
                      {"subject", id.subject},
                      {"serial", id.serial},
                      {"sha256", id.sha256},
                      {"not_after", format_time(id.not_after)}});
  if (id.not_after < clock_.wall_now()) {
    log::warn("the HTTPS certificate has expired: clients that verify it will refuse to connect",
              {{"cert_file", config_.agent.tls_cert_file}, {"not_after", format_time(id.not_after)}});
  }
}

// Renewed certificate files are read at every SIGHUP, whether or not the rest
// of the config changed or loaded; a pair that does not load leaves the one in
// use in place.
void Agent::reload_tls() {
  if (!http_.tls()) return;
  auto changed = http_.reload_tls(config_.agent.tls_cert_file, config_.agent.tls_key_file);
  metrics_.tls_reload(changed.ok());
  if (!changed.ok()) {
    log::error("HTTPS certificate reload failed; the certificate in use stays",
               {{"error", changed.error().message}});
    return;
  }
  if (*changed) {
    if (auto id = http_.tls_identity()) {
      log_tls_identity("HTTPS certificate reloaded", *id);
      metrics_.tls_certificate(std::chrono::duration<double>(id->not_after.time_since_epoch()).count());
    }
  }
}

void Agent::reload() {
  log::info("reloading config", {{"config", config_path_}});
  ConfigResult loaded = load_config(config_path_);
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors) log::error("config error", {{"error", e.to_string()}});
    log::error("config reload rejected; the running config stays in force",
               {{"config", config_path_}, {"errors", loaded.errors.size()}});
    metrics_.config_reload(false, unix_now(clock_));
    reload_tls();
    return;
  }
  Config next = std::move(*loaded.config);
  if (next.agent.listen != config_.agent.listen) {
    log::warn("agent.listen changed: takes effect at restart", {{"running", config_.agent.listen},
                                                                {"configured", next.agent.listen}});
    next.agent.listen = config_.agent.listen;
  }
  if (next.agent.name != config_.agent.name) {
    log::warn("agent.name changed: takes effect at restart", {{"running", config_.agent.name},
                                                              {"configured", next.agent.name}});
    next.agent.name = config_.agent.name;
  }
  // The fleet node holds leases and a NATS connection made with these: a
  // change (servers, credentials, timings) takes effect at restart.
  if (!(next.fleet == config_.fleet)) {
    log::warn("[fleet] changed: takes effect at restart; the agent keeps its running fleet settings",
              {{"running", config_.fleet.enabled ? fleet::describe(config_.fleet) : "off"},
               {"configured", next.fleet.enabled ? fleet::describe(next.fleet) : "off"}});
    next.fleet = config_.fleet;
  }
  // HTTPS on or off needs a restart; until then the running listener decides
  // whether the API's token may be used on it.
  if (next.agent.tls_cert_file.empty() == http_.tls()) {
    log::warn(http_.tls() ? "agent.tls_cert_file removed: HTTPS stays on until restart"
                          : "agent.tls_cert_file added: HTTPS takes effect at restart",
              {{"listen", config_.agent.listen}});
    next.agent.tls_cert_file = config_.agent.tls_cert_file;
    next.agent.tls_key_file = config_.agent.tls_key_file;
  }
  if (const std::string why = plain_api_refusal(next, http_.tls()); !why.empty()) {
    log::error("config error", {{"error", config_path_ + ": agent.listen: " + why}});
    log::error("config reload rejected; the running config stays in force", {{"config", config_path_}, {"errors", 1}});
    metrics_.config_reload(false, unix_now(clock_));
    reload_tls();
    return;
  }
  std::set<std::string> before, after;
  for (const auto& t : config_.targets) before.insert(t->name);
  for (const auto& t : next.targets) after.insert(t->name);
  std::size_t added = 0, removed = 0;
  for (const auto& n : after) added += before.count(n) ? 0 : 1;
  for (const auto& n : before) removed += after.count(n) ? 0 : 1;
  apply(std::move(next));
  metrics_.config_reload(true, unix_now(clock_));
  reload_tls();
  log::info("config reloaded", {{"targets", config_.targets.size()},
                                {"added", added},
                                {"removed", removed},
                                {"probes", scheduler_.size()}});
}

void Agent::on_signal() {
  signalfd_siginfo info{};
  while (::read(signal_fd_, &info, sizeof info) == sizeof info) {
    switch (info.ssi_signo) {
      case SIGHUP:
        reload();
        break;
      case SIGTERM:
      case SIGINT:
        log::info("signal received, stopping", {{"signal", info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT"}});
        reactor_.stop();
        break;
      default:
        break;
    }
  }
}

}  // namespace nightshift

namespace nightshift {

void Agent::status_changed() {
  if (status_render_pending_) return;
  status_render_pending_ = true;
  // Coalesced: a burst of changes (a site going dark) renders once.
  reactor_.call_after(std::chrono::milliseconds(250), [this] {
    status_render_pending_ = false;
    publish_status();
  });
}

void Agent::restore_status_history() {
  const SystemTime now = clock_.wall_now();
  SystemTime since = now;
  if (auto stored = store_->get_meta("status_since"); stored.ok() && !stored->empty()) {
    since = SystemTime(std::chrono::duration_cast<Duration>(std::chrono::seconds(std::stoll(*stored))));
  } else {
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    if (Status s = store_->set_meta("status_since", std::to_string(secs)); !s.ok()) metrics_.store_error();
  }
  auto history = store_->load(StatusPublisher::kHistoryDays * 24 * 3600);
  if (!history.ok()) {
    log::error("cannot read the incident history for the status page",
               {{"path", store_->path()}, {"error", history.error().message}});
    status_.restore({}, since);
    return;
  }
  status_.restore(std::move(history.value()), since);
}

StatusPublisher::Settings Agent::status_settings() const {
  StatusPublisher::Settings s{config_.agent.name, config_.status.title, {}, config_.status_export_dir};
  for (const auto& c : config_.status.components) s.components.push_back({c.name, c.description, c.match});
  return s;
}

void Agent::publish_status() {
  if (!pipeline_) return;
  update_open_incidents();
  StatusPublisher::Now now;
  now.now = clock_.wall_now();
  const std::vector<Incident> current = pipeline_->incidents().incidents();
  now.incidents = &current;
  now.silenced = [this](const Incident& inc) { return pipeline_->silenced(inc); };
  for (const auto& t : config_.targets) {
    TargetHealth h{t->name, t->group, t->site, TargetHealth::State::kUnknown};
    for (const auto& p : t->probes) {
      auto it = probe_states_.find(ProbeKeyView{t->name, p.name});
      if (it == probe_states_.end()) continue;
      if (h.state == TargetHealth::State::kUnknown) h.state = TargetHealth::State::kUp;
      if (!it->second.ok) h.state = TargetHealth::State::kDown;
    }
    // Down from here but up for the fleet: this vantage's path, and the page
    // shows the service as every agent's page does.
    if (h.state == TargetHealth::State::kDown && fleet_ && !fleet_->alone()) {
      const auto verdict = fleet_->assess(t->name).verdict;
      if (verdict == fleet::Assessment::Verdict::kPathProblem || verdict == fleet::Assessment::Verdict::kUp) {
        h.state = TargetHealth::State::kUp;
      }
    }
    now.targets.push_back(std::move(h));
  }
  now.dead_letters = notifier_ ? notifier_->dead_letters() : 0;
  if (fleet_) {
    for (const auto& inc : current) {
      if (const fleet::FleetIncident* shared = fleet_copy_of(inc)) now.fleet_ids[inc.id] = shared->id;
    }
    // Open ones only: a resolved one stays in the history of the agents that had a copy.
    for (const auto& [key, inc] : fleet_->incidents()) {
      if (inc.open && !local_copy_of(inc)) now.fleet_incidents.push_back(fleet::as_incident(inc));
    }
    // Decided as not the fleet's and not paged: down from this vantage only.
    for (const auto& [id, link] : fleet_links_) {
      if (link.decided && !link.fleet && !link.page) now.not_public.insert(id);
    }
  }
  status_.publish(now);
}

void Agent::expire_silences() {
  if (pipeline_) pipeline_->expire_silences();
}

nlohmann::json Agent::targets_json() const {
  std::map<std::string, std::vector<nlohmann::json>> alerts;
  for (const auto& e : pipeline_->firing()) {
    alerts[e.target].push_back({{"rule", e.rule}, {"probe", e.probe}, {"severity", to_string(e.severity)},
                                  {"summary", e.summary}, {"expression", e.expression}});
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& t : config_.targets) {
    nlohmann::json probes = nlohmann::json::array();
    std::string state = "unknown";
    for (const auto& p : t->probes) {
      nlohmann::json pj = {{"name", p.name}, {"kind", p.kind}, {"state", "unknown"}};
      if (auto st = probe_states_.find(ProbeKeyView{t->name, p.name}); st != probe_states_.end()) {
        pj["state"] = st->second.ok ? "up" : "down";
        if (!st->second.ok) pj["reason"] = to_string(st->second.reason);
        if (state != "down") state = st->second.ok ? "up" : "down";
      }
      probes.push_back(std::move(pj));
    }
    out.push_back({{"name", t->name},
                   {"address", t->address},
                   {"group", t->group},
                   {"site", t->site},
                   {"state", state},
                   {"probes", probes},
                   {"firing_alerts", alerts.count(t->name) ? nlohmann::json(alerts[t->name]) : nlohmann::json::array()}});
  }
  return out;
}

}  // namespace nightshift
