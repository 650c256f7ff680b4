#include "agent/agent.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "agent/default_rules.h"
#include "agent/log.h"

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
      scheduler_(clock, config_.agent.max_probes_per_second, rate_burst(config_.agent.max_probes_per_second)) {}

Agent::~Agent() {
  http_.stop();
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

  http_.route("/metrics", [this] {
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_.render();
    return r;
  });
  http_.route("/healthz", [this] { return healthz(); });
  http_.route("/", [this] {
    HttpResponse r;
    r.content_type = "text/html; charset=utf-8";
    r.body = "<!doctype html><title>nightshift " + log::quote(config_.agent.name) +
             "</title><h1>nightshift</h1><ul><li><a href=\"/metrics\">/metrics</a></li>"
             "<li><a href=\"/healthz\">/healthz</a></li></ul>\n";
    return r;
  });
  heartbeat_ns_ = clock_.now().time_since_epoch().count();
  if (Status s = http_.start(config_.agent.listen); !s.ok()) {
    log::error("cannot start HTTP server", {{"listen", config_.agent.listen}, {"error", s.error().message}});
    return 1;
  }
  const std::string host = config_.agent.listen.substr(0, config_.agent.listen.rfind(':'));
  const std::string shown_host = host.empty() || host == "0.0.0.0" ? "127.0.0.1" : host;
  log::info("listening", {{"address", shown_host + ":" + std::to_string(http_.port())},
                          {"metrics", "http://" + shown_host + ":" + std::to_string(http_.port()) + "/metrics"}});

  sigset_t set = agent_signals();
  signal_fd_ = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0) {
    log::error("cannot create signalfd", {{"error", std::strerror(errno)}});
    return 1;
  }
  (void)reactor_.watch(signal_fd_, EPOLLIN, [this](std::uint32_t) { on_signal(); });

  // Liveness for /healthz: proves the reactor turns, not just that HTTP answers.
  std::function<void()> beat = [this, &beat] {
    heartbeat_ns_ = clock_.now().time_since_epoch().count();
    reactor_.call_after(std::chrono::seconds(1), beat);
  };
  beat();

  Config initial = config_;
  apply(std::move(initial));
  metrics_.config_reload(true, unix_now(clock_));
  log::info("nightshift started", {{"agent", config_.agent.name},
                                   {"config", config_path_},
                                   {"targets", config_.targets.size()},
                                   {"probes", scheduler_.size()}});
  reactor_.run();
  log::info("shutting down");
  http_.stop();
  log::info("stopped");
  return exit_code_;
}

void Agent::apply(Config config) {
  config_ = std::move(config);
  log::set_level(config_.agent.log_level);
  for (const auto& t : config_.targets) {
    for (const auto& p : t->probes) {
      if (engines_.count(p.kind)) continue;
      const ProbeKind* kind = find_probe_kind(p.kind);
      engines_[p.kind] = kind->make_engine(engine_context_);
      log::debug("probe engine started", {{"kind", p.kind}});
    }
  }
  metrics_.sync_targets(config_.targets);
  if (!rules_) {
    rules_ = std::make_unique<rules::RuleEngine>(clock_, rules::default_rules());
  } else {
    on_alerts(rules_->retain(config_.targets));
  }
  scheduler_.set_rate(config_.agent.max_probes_per_second, rate_burst(config_.agent.max_probes_per_second));
  scheduler_.set_targets(config_.targets);
  schedule_tick(clock_.now());
}

void Agent::schedule_tick(SteadyTime when) {
  if (tick_timer_ != 0) {
    if (tick_at_ <= when) return;  // an earlier tick is already set
    reactor_.cancel(tick_timer_);
  }
  tick_at_ = when;
  tick_timer_ = reactor_.call_at(when, [this] {
    tick_timer_ = 0;
    const SteadyTime next =
        scheduler_.run_due([this](const ScheduledProbe& p, Duration lag) { dispatch(p, lag); });
    schedule_tick(next);
  });
}

void Agent::dispatch(const ScheduledProbe& probe, Duration lag) {
  metrics_.scheduler_lag(std::chrono::duration<double>(lag).count());
  auto& engine = engines_.at(probe.spec->kind);
  ProbeRequest req;
  req.target = probe.target;
  req.spec = probe.spec;
  req.done = [this, target = probe.target](Sample s) { on_sample(*target, s); };
  engine->submit(std::move(req));
  metrics_.probe_sent(probe.spec->kind);
  metrics_.set_in_flight(probe.spec->kind, static_cast<double>(engine->in_flight()));
}

void Agent::on_sample(const Target& target, const Sample& sample) {
  metrics_.record(sample);
  on_alerts(rules_->on_sample(target, sample));
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
  }
  schedule_rule_tick();
}

// Sustain and hysteresis can complete between samples: wake at the rule
// engine's next deadline.
void Agent::schedule_rule_tick() {
  auto due = rules_->next_deadline();
  if (!due) return;
  if (rule_timer_ != 0) {
    if (rule_timer_at_ <= *due) return;
    reactor_.cancel(rule_timer_);
  }
  rule_timer_at_ = *due;
  rule_timer_ = reactor_.call_at(*due, [this] {
    rule_timer_ = 0;
    on_alerts(rules_->tick());
  });
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
