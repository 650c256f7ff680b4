#include "agent/agent.h"

#include <malloc.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "rules/default_rules.h"
#include "incidents/incident_json.h"
#include "core/log.h"

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
      metrics_(config_.agent.name),
      scheduler_(clock, config_.agent.max_probes_per_second, rate_burst(config_.agent.max_probes_per_second)),
      schedule_timer_(reactor_,
                      [this] {
                        schedule_timer_.arm(scheduler_.run_due(
                            [this](const ScheduledProbe& p, Duration lag) { dispatch(p, lag); }));
                      }),
      rule_timer_(reactor_, [this] { on_alerts(rules_->tick()); }),
      incident_timer_(reactor_, [this] { on_incidents(incidents_->tick()); }),
      paging_timer_(reactor_, [this] { on_paging_tick(); }) {}

Agent::~Agent() {
  http_.stop();
  if (notifier_) notifier_->stop();
  if (signal_fd_ >= 0) ::close(signal_fd_);
}

// One render at a time: scrapers that arrive while one runs share its result
// instead of each rendering every series again (at 10 000 targets a render is
// megabytes; N concurrent renders were N times that).
std::shared_ptr<const std::string> Agent::render_metrics() {
  std::unique_lock<std::mutex> lock(metrics_mu_);
  if (metrics_rendering_) {
    const std::uint64_t generation = metrics_generation_;
    metrics_cv_.wait(lock, [&] { return metrics_generation_ != generation; });
    return metrics_body_;
  }
  metrics_rendering_ = true;
  lock.unlock();
  auto body = std::make_shared<const std::string>(metrics_.render());
  ::malloc_trim(0);  // the render's temporaries are gone: give their pages back
  lock.lock();
  metrics_body_ = body;
  ++metrics_generation_;
  metrics_rendering_ = false;
  metrics_cv_.notify_all();
  return body;
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

  http_.route("/metrics", [this](const HttpRequest&) {
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.shared_body = render_metrics();  // shared by concurrent scrapers, never copied
    return r;
  });
  http_.route("/healthz", [this](const HttpRequest&) { return healthz(); });
  http_.route("/status", [this](const HttpRequest& req) { return serve_status(req, false); });
  http_.route("/status.json", [this](const HttpRequest& req) { return serve_status(req, true); });
  api_ = std::make_unique<Api>(reactor_, api_backend());
  api_->configure({config_.api_token, config_.api_public_read});
  api_->register_routes(http_);
  http_.route("/", [this](const HttpRequest&) {
    HttpResponse r;
    r.content_type = "text/html; charset=utf-8";
    r.body = "<!doctype html><title>nightshift " + log::quote(config_.agent.name) +
             "</title><h1>nightshift</h1><ul><li><a href=\"/metrics\">/metrics</a></li>"
             "<li><a href=\"/healthz\">/healthz</a></li>"
             "<li><a href=\"/status\">/status</a></li><li><a href=\"/status.json\">/status.json</a></li>"
             "<li><a href=\"/api/v1/incidents\">/api/v1/incidents</a></li></ul>\n";
    return r;
  });
  heartbeat_ns_ = clock_.now().time_since_epoch().count();
  HttpSettings http_settings;
  http_settings.threads = config_.agent.http_threads;
  if (Status s = http_.start(config_.agent.listen, http_settings); !s.ok()) {
    log::error("cannot start HTTP server", {{"listen", config_.agent.listen}, {"error", s.error().message}});
    return 1;
  }
  const std::string host = config_.agent.listen.substr(0, config_.agent.listen.rfind(':'));
  const std::string shown_host = host.empty() || host == "0.0.0.0" ? "127.0.0.1" : host;
  log::info("listening", {{"address", shown_host + ":" + std::to_string(http_.port())},
                          {"metrics", "http://" + shown_host + ":" + std::to_string(http_.port()) + "/metrics"}});

  // Paging: undelivered notifications from before a restart go out first.
  paging_ = std::make_unique<Paging>(clock_, config_.sinks, notify_policy(),
                                     [this](const Incident& inc) { return silences_.silences(inc, clock_.wall_now()); });
  paging_->restore(incidents_->incidents());
  notifier_ = std::make_unique<Notifier>(store_->path(), *metrics_.registry(), config_.agent.name, clock_);
  if (Status s = notifier_->start(config_.sinks, notify_policy()); !s.ok()) {
    log::error("cannot start the notifier", {{"path", store_->path()}, {"error", s.error().message}});
    return 1;
  }
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
  // After a restart, incidents whose alerts never fire again (the outage ended
  // while the agent was down) are resolved once every probe has had time to
  // run a few times and every sustain to pass.
  reactor_.call_after(reconcile_grace(), [this] { reconcile_restored_incidents(); });
  schedule_paging_tick();
  reactor_.run();
  log::info("shutting down");
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
  incidents_ = std::make_unique<IncidentManager>(clock_, config_.incidents);
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
  std::uint64_t next_sequence = 1;
  if (auto seq = store_->get_meta("next_sequence"); seq.ok()) next_sequence = std::stoull(*seq);
  std::size_t open = 0;
  for (const auto& inc : *restored) open += inc.open() ? 1 : 0;
  incidents_->restore(std::move(restored.value()), next_sequence);
  update_open_incidents();
  if (auto silences = store_->load_silences(clock_.wall_now()); silences.ok()) {
    silences_.restore(std::move(silences.value()));
  } else {
    log::error("cannot read silences from the state store; starting without them",
               {{"path", store_->path()}, {"error", silences.error().message}});
  }
  if (open > 0) log::info("open incidents restored", {{"open", open}, {"path", store_->path()}});
  return true;
}

Duration Agent::reconcile_grace() const {
  Duration max_interval = std::chrono::seconds(10);
  for (const auto& t : config_.targets) {
    for (const auto& p : t->probes) max_interval = std::max(max_interval, p.interval);
  }
  Duration max_for{};
  for (const auto& r : config_.rules) max_for = std::max(max_for, r.timing.for_duration);
  return std::max<Duration>(std::chrono::minutes(3), 5 * max_interval + max_for);
}

void Agent::reconcile_restored_incidents() {
  std::set<std::tuple<std::string, std::string, std::string>> firing;
  for (const auto& e : rules_->firing()) firing.insert({e.rule, e.target, e.probe});
  std::vector<IncidentEvent> events;
  for (const auto& inc : incidents_->incidents()) {
    if (!inc.open()) continue;
    for (const auto& t : inc.impacted) {
      if (!t.active || firing.count({t.rule, t.target, t.probe})) continue;
      rules::AlertEvent cleared;
      cleared.rule = t.rule;
      cleared.severity = t.severity;
      cleared.target = t.target;
      cleared.probe = t.probe;
      cleared.change = {rules::AlertPhase::kFiring, rules::AlertPhase::kInactive, clock_.now()};
      cleared.summary = "not firing since the agent restarted";
      auto out = incidents_->on_alert(cleared);
      events.insert(events.end(), out.begin(), out.end());
    }
  }
  on_incidents(events);
}

void Agent::on_incidents(const std::vector<IncidentEvent>& events) {
  for (const auto& e : events) {
    const Incident& inc = e.incident;
    const std::string kind(to_string(e.kind));
    const LogLevel level = e.page ? LogLevel::kWarn : LogLevel::kInfo;
    log::write(level, "incident " + kind, {{"id", inc.id},
                                          {"title", inc.title},
                                          {"severity", inc.severity},
                                          {"status", std::string(to_string(inc.status))},
                                          {"impacted", inc.active_impact()},
                                          {"page", e.page ? "yes" : "no"}});
    metrics_.incident(e);
    if ((e.kind == IncidentEvent::Kind::kDeclared || e.kind == IncidentEvent::Kind::kReopened) && !inc.vantage) {
      diagnose(inc);
    }
    queue_notifications(paging_->on_event(e), &inc);
  }
  if (!events.empty()) {
    if (Status s = store_->set_meta("next_sequence", std::to_string(incidents_->next_sequence())); !s.ok()) {
      metrics_.store_error();
      log::error("cannot save incident sequence", {{"error", s.error().message}});
    }
    update_open_incidents();
  }
  schedule_incident_tick();
  schedule_paging_tick();
  if (!events.empty()) status_changed();
}

void Agent::queue_notifications(std::vector<OutboxEntry> rows, const Incident* incident) {
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

void Agent::on_paging_tick() {
  queue_notifications(paging_->tick(), nullptr);
  schedule_paging_tick();
}

void Agent::schedule_paging_tick() {
  if (paging_) {
    if (auto due = paging_->next_deadline()) paging_timer_.arm(*due);
  }
}

NotifyPolicy Agent::notify_policy() const {
  NotifyPolicy p = config_.notify;
  if (p.status_url.empty()) {
    const std::string host = config_.agent.listen.substr(0, config_.agent.listen.rfind(':'));
    p.status_url = "http://" + (host.empty() || host == "0.0.0.0" ? std::string("127.0.0.1") : host) + ":" +
                   std::to_string(http_.port()) + "/status";
  }
  return p;
}

// Where does the path break? Asks the first impacted target's engines for a
// finding (ICMP: a path trace) and adds it to the incident's timeline.
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
        auto noted = incidents_->add_note(id, finding, /*is_public=*/false, "nightshift");
        if (!noted.ok()) return;  // resolved and gone meanwhile
        log::info("incident diagnosis", {{"id", id}, {"finding", finding}});
        if (Status s = store_->save(noted->incident); !s.ok()) {
          metrics_.store_error();
          log::error("cannot save incident; it stays in memory", {{"id", id}, {"error", s.error().message}});
        }
      });
      if (started) return;
    }
  }
}

void Agent::update_open_incidents() {
  std::map<std::string, int> open;
  for (const auto& inc : incidents_->incidents()) {
    if (inc.open()) open[inc.severity]++;
  }
  metrics_.set_open_incidents(open);
}

void Agent::schedule_incident_tick() {
  if (auto due = incidents_->next_deadline()) incident_timer_.arm(*due);
}

void Agent::heartbeat() {
  heartbeat_ns_ = clock_.now().time_since_epoch().count();
  expire_silences();
  reactor_.call_after(std::chrono::seconds(1), [this] { heartbeat(); });
}

void Agent::apply(Config config) {
  config_ = std::move(config);
  log::set_level(config_.agent.log_level);
  configured_probes_.clear();
  for (const auto& t : config_.targets) {
    for (const auto& p : t->probes) configured_probes_.insert({t->name, p.name});
  }
  std::erase_if(failing_, [this](const auto& key) { return !configured_probes_.count(key); });
  for (auto it = probe_states_.begin(); it != probe_states_.end();) {
    std::erase_if(it->second, [&](const auto& p) { return !configured_probes_.count({it->first, p.first}); });
    it = it->second.empty() ? probe_states_.erase(it) : std::next(it);
  }
  if (api_) api_->configure({config_.api_token, config_.api_public_read});
  status_changed();
  incidents_->set_policy(config_.incidents);
  incidents_->set_targets(config_.targets);
  if (paging_) {
    paging_->configure(config_.sinks, notify_policy());
    notifier_->configure(config_.sinks, notify_policy());
  }
  for (const auto& t : config_.targets) {
    for (const auto& p : t->probes) {
      if (engines_.count(p.kind)) continue;
      const ProbeKind* kind = find_probe_kind(p.kind);
      engines_[p.kind] = kind->make_engine(engine_context_);
      log::debug("probe engine started", {{"kind", p.kind}});
    }
  }
  metrics_.sync_targets(config_.targets);
  if (!rules_ || rules::fingerprint(rules_->rules()) != rules::fingerprint(config_.rules)) {
    const bool replaced = rules_ != nullptr;
    rules_ = std::make_unique<rules::RuleEngine>(clock_, config_.rules);
    if (replaced) {
      // New rules start from scratch: incidents whose alerts the new rules do
      // not raise again are resolved after the usual grace.
      log::info("rules changed: alert states start afresh", {{"rules", config_.rules.size()}});
      reactor_.call_after(reconcile_grace(), [this] { reconcile_restored_incidents(); });
    }
  } else {
    on_alerts(rules_->retain(config_.targets));
  }
  scheduler_.set_rate(config_.agent.max_probes_per_second, rate_burst(config_.agent.max_probes_per_second));
  scheduler_.set_targets(config_.targets);
  schedule_timer_.arm(clock_.now());
}

void Agent::dispatch(const ScheduledProbe& probe, Duration lag) {
  metrics_.scheduler_lag(std::chrono::duration<double>(lag).count());
  auto& engine = engines_.at(probe.spec->kind);
  ProbeRequest req;
  req.target = probe.target;
  req.spec = probe.spec;
  req.done = [this, target = probe.target, spec = probe.spec](Sample s) { on_sample(target, spec, s); };
  engine->submit(std::move(req));
  metrics_.probe_sent(probe.spec->kind);
  metrics_.set_in_flight(probe.spec->kind, static_cast<double>(engine->in_flight()));
}

void Agent::on_sample(const std::shared_ptr<const Target>& target, const ProbeSpec* spec, const Sample& sample) {
  metrics_.record(sample);
  const std::pair<std::string, std::string> key{sample.target, sample.probe};
  // A probe still in flight when a reload removed it must not bring back rule state.
  if (!configured_probes_.count(key)) return;
  on_alerts(rules_->on_sample(*target, sample));
  ProbeState& state = probe_states_[sample.target][sample.probe];
  const std::string reason(to_string(sample.reason));
  if (state.ok != sample.ok || state.reason != reason || !status_page_) status_changed();
  state.ok = sample.ok;
  state.reason = reason;
  // The first miss asks the engine for evidence at once (an ICMP burst) rather
  // than waiting for two more intervals.
  if (sample.ok) {
    failing_.erase(key);
  } else if (failing_.insert(key).second) {
    if (auto it = engines_.find(sample.kind); it != engines_.end()) {
      ProbeRequest req;
      req.target = target;
      req.spec = spec;
      req.done = [this, target](Sample s) { on_confirmation(*target, s); };
      if (it->second->confirm(std::move(req))) metrics_.confirmation_started(sample.kind);
    }
  }
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

void Agent::on_confirmation(const Target& target, const Sample& sample) {
  metrics_.confirmation_done(sample.kind, sample.ok);
  log::debug("confirmation", {{"target", sample.target}, {"probe", sample.probe}, {"detail", sample.detail}});
  if (!configured_probes_.count({sample.target, sample.probe})) return;
  on_alerts(rules_->on_sample(target, sample));
}

void Agent::on_alerts(const std::vector<rules::AlertEvent>& events) {
  for (const auto& e : events) {
    metrics_.alert(e);
    const std::string state(rules::to_string(e.change.to));
    std::string msg = e.change.flapping_changed ? (e.change.flapping ? "alert flapping" : "alert settled")
                                                : "alert " + std::string(e.change.to == rules::AlertPhase::kInactive
                                                                             ? "resolved"
                                                                             : state);
    const LogLevel level = !e.change.notify ? LogLevel::kDebug
                           : e.change.to == rules::AlertPhase::kFiring ? LogLevel::kWarn
                                                                      : LogLevel::kInfo;
    log::write(level, msg, {{"rule", e.rule},
                            {"severity", e.severity},
                            {"target", e.target},
                            {"probe", e.probe},
                            {"state", state},
                            {"summary", e.summary}});
    on_incidents(incidents_->on_alert(e));
  }
  schedule_rule_tick();
}

// Sustain and hysteresis can complete between samples: wake at the rule
// engine's next deadline.
void Agent::schedule_rule_tick() {
  if (auto due = rules_->next_deadline()) rule_timer_.arm(*due);
}

void Agent::reload() {
  log::info("reloading config", {{"config", config_path_}});
  ConfigResult loaded = load_config(config_path_);
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors) log::error("config error", {{"error", e.to_string()}});
    log::error("config reload rejected; the running config stays in force",
               {{"config", config_path_}, {"errors", loaded.errors.size()}});
    metrics_.config_reload(false, unix_now(clock_));
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
  std::set<std::string> before, after;
  for (const auto& t : config_.targets) before.insert(t->name);
  for (const auto& t : next.targets) after.insert(t->name);
  std::size_t added = 0, removed = 0;
  for (const auto& n : after) added += before.count(n) ? 0 : 1;
  for (const auto& n : before) removed += after.count(n) ? 0 : 1;
  apply(std::move(next));
  metrics_.config_reload(true, unix_now(clock_));
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
    render_status_page();
  });
}

void Agent::render_status_page() {
  if (!incidents_) return;
  StatusInput in;
  in.agent = config_.agent.name;
  in.now = clock_.wall_now();
  in.incidents = incidents_->incidents();
  for (const auto& inc : in.incidents) {
    if (inc.open() && silences_.silences(inc, in.now)) in.silenced.push_back(inc.id);
  }
  for (const auto& t : config_.targets) {
    TargetHealth h{t->name, t->group, t->site, TargetHealth::State::kUnknown};
    if (auto it = probe_states_.find(t->name); it != probe_states_.end() && !it->second.empty()) {
      h.state = TargetHealth::State::kUp;
      for (const auto& [probe, st] : it->second) {
        if (!st.ok) h.state = TargetHealth::State::kDown;
      }
    }
    in.targets.push_back(std::move(h));
  }
  in.dead_letters = notifier_ ? notifier_->dead_letters() : 0;
  auto page = std::make_shared<const StatusPage>(render_status(in));
  {
    std::lock_guard<std::mutex> lock(status_mu_);
    if (status_page_ && status_page_->etag == page->etag) return;  // same content
    status_page_ = page;
  }
  if (!config_.status_export_dir.empty()) {
    if (Status s = export_status(*page, config_.status_export_dir); !s.ok()) {
      log::error("cannot export the status page", {{"dir", config_.status_export_dir}, {"error", s.error().message}});
    }
  }
}

HttpResponse Agent::serve_status(const HttpRequest& req, bool json) {
  std::shared_ptr<const StatusPage> page;
  {
    std::lock_guard<std::mutex> lock(status_mu_);
    page = status_page_;
  }
  if (!page) return HttpResponse::text(503, "the status page is being prepared; try again in a second\n");
  HttpResponse r;
  r.headers.emplace_back("ETag", page->etag);
  // Short public caching: a CDN or browser may hold it for 5 s, then revalidate.
  r.headers.emplace_back("Cache-Control", "public, max-age=5");
  if (req.header("if-none-match") == page->etag) {
    r.status = 304;
    return r;
  }
  r.content_type = json ? "application/json" : "text/html; charset=utf-8";
  // The snapshot's bytes, shared by every response: no copy per request.
  r.shared_body = std::shared_ptr<const std::string>(page, json ? &page->json : &page->html);
  return r;
}

void Agent::expire_silences() {
  const auto gone = silences_.expire(clock_.wall_now());
  for (const auto& id : gone) {
    log::info("silence expired", {{"id", id}});
    if (Status s = store_->delete_silence(id); !s.ok()) metrics_.store_error();
  }
  if (!gone.empty()) status_changed();
}

nlohmann::json Agent::targets_json() const {
  std::map<std::string, std::vector<nlohmann::json>> alerts;
  for (const auto& e : rules_->firing()) {
    alerts[e.target].push_back({{"rule", e.rule}, {"probe", e.probe}, {"severity", e.severity}, {"summary", e.summary}});
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& t : config_.targets) {
    nlohmann::json probes = nlohmann::json::array();
    std::string state = "unknown";
    auto states = probe_states_.find(t->name);
    for (const auto& p : t->probes) {
      nlohmann::json pj = {{"name", p.name}, {"kind", p.kind}, {"state", "unknown"}};
      if (states != probe_states_.end()) {
        if (auto st = states->second.find(p.name); st != states->second.end()) {
          pj["state"] = st->second.ok ? "up" : "down";
          if (!st->second.ok) pj["reason"] = st->second.reason;
          if (state != "down") state = st->second.ok ? "up" : "down";
        }
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

ApiBackend Agent::api_backend() {
  ApiBackend b;
  b.list_incidents = [this](const std::string& filter) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& inc : incidents_->incidents()) {
      if (filter == "open" && !inc.open()) continue;
      if (filter == "resolved" && inc.open()) continue;
      nlohmann::json j = to_json(inc);
      j["silenced"] = inc.open() && silences_.silences(inc, clock_.wall_now());
      out.push_back(std::move(j));
    }
    return out;
  };
  b.get_incident = [this](const std::string& id) -> Result<nlohmann::json> {
    const Incident* inc = incidents_->find(id);
    if (inc == nullptr) return Error::not_found("no such incident: " + id);
    nlohmann::json j = to_json(*inc);
    j["silenced"] = inc->open() && silences_.silences(*inc, clock_.wall_now());
    return j;
  };
  auto apply_event = [this](Result<IncidentEvent> e) -> Result<nlohmann::json> {
    if (!e.ok()) return e.error();
    on_incidents({e.value()});
    return to_json(e.value().incident);
  };
  b.acknowledge = [this, apply_event](const std::string& id, const std::string& by) {
    if (!incidents_->find(id)) return Result<nlohmann::json>(Error::not_found("no such incident: " + id));
    log::info("incident acknowledged by hand", {{"id", id}, {"by", by}});
    return apply_event(incidents_->acknowledge(id, by.empty() ? "operator" : by));
  };
  b.add_note = [this, apply_event](const std::string& id, const std::string& text, bool is_public,
                                   const std::string& by) {
    if (!incidents_->find(id)) return Result<nlohmann::json>(Error::not_found("no such incident: " + id));
    return apply_event(incidents_->add_note(id, text, is_public, by.empty() ? "operator" : by));
  };
  b.resolve = [this, apply_event](const std::string& id, const std::string& by) {
    if (!incidents_->find(id)) return Result<nlohmann::json>(Error::not_found("no such incident: " + id));
    log::info("incident resolved by hand", {{"id", id}, {"by", by}});
    return apply_event(incidents_->resolve(id, by.empty() ? "operator" : by));
  };
  b.list_silences = [this] {
    nlohmann::json out = nlohmann::json::array();
    const SystemTime now = clock_.wall_now();
    for (const auto& s : silences_.list()) {
      nlohmann::json j = to_json(s);
      j["active"] = s.active(now);
      out.push_back(std::move(j));
    }
    return out;
  };
  b.add_silence = [this](const nlohmann::json& body) -> Result<nlohmann::json> {
    const SystemTime now = clock_.wall_now();
    auto parsed = silence_from_json(body, now);
    if (!parsed.ok()) return parsed.error();
    auto added = silences_.add(std::move(parsed.value()), now);
    if (!added.ok()) return added.error();
    if (Status s = store_->save_silence(*added); !s.ok()) {
      metrics_.store_error();
      log::error("cannot save silence; it holds until a restart", {{"id", added->id}, {"error", s.error().message}});
    }
    std::string matchers;
    for (const auto& m : added->matchers) matchers += (matchers.empty() ? "" : ",") + m.to_string();
    log::info("silence added", {{"id", added->id}, {"matchers", matchers}, {"author", added->author},
                                {"ends_at", format_time(added->ends_at)}});
    status_changed();
    return to_json(*added);
  };
  b.remove_silence = [this](const std::string& id) -> Result<nlohmann::json> {
    if (!silences_.remove(id)) return Error::not_found("no such silence: " + id);
    if (Status s = store_->delete_silence(id); !s.ok()) metrics_.store_error();
    log::info("silence removed", {{"id", id}});
    status_changed();
    return nlohmann::json{{"id", id}, {"removed", true}};
  };
  b.list_targets = [this] { return targets_json(); };
  return b;
}

}  // namespace nightshift
