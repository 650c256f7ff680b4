// nightshift: network outage detection agent. Command-line entry point.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <malloc.h>

#include <iostream>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "agent/cli.h"
#include "agent/probe_cli.h"
#include "config/config.h"
#include "core/log.h"
#include "nightshift/version.h"
#include "probes/icmp/icmp.h"
#include "probes/pcap/pcap.h"
#include "serve/tls.h"

namespace {

const char kUsage[] = R"(nightshift - network outage detection agent

Usage:
  nightshift run -c FILE          run the agent on a config file
  nightshift check-config FILE    validate a config file; exit 1 on any error
  nightshift probe icmp [-c N] [-p MS] [-t MS] [-f FILE] ADDRESS...
                                  one-shot ping, fping-style output (probe icmp --help)
  nightshift probe tcp|snmp [--KEY VALUE]... TARGET[:PORT]...
                                  one run of the agent's own probe against each
                                  target; exit 1 if any failed (probe --help)
  nightshift incidents|ack|note|resolve|silence ...
                                  operator commands over the API (nightshift incidents --help)
  nightshift replay [--prefix CIDR]... [--config FILE] [--json] FILE.pcap
                                  pcap watch analysis of a capture (replay --help)
  nightshift --version            print the version
  nightshift --help               print this help
  nightshift COMMAND --help       print a command's help

Signals: SIGHUP reloads the config (a bad one is rejected and the running one
stays); SIGTERM and SIGINT stop the agent.
Docs: nightshift(1), nightshift.toml(5), /usr/share/doc/nightshift/
)";

const char kRunUsage[] = R"(Usage: nightshift run -c FILE [--log-level LEVEL]

Runs the agent on a config file in the foreground; logs go to stderr, one
logfmt line per event.

Options:
  -c, --config FILE      config file (TOML, nightshift.toml(5))
  --log-level LEVEL      debug, info, warn or error (overrides agent.log_level)
  -h, --help             print this help
Signals: SIGHUP reloads the config (a bad one is rejected and the running one
stays); SIGTERM and SIGINT stop the agent.
)";

const char kCheckConfigUsage[] = R"(Usage: nightshift check-config FILE

Validates a config file as the agent would load it, secrets and the HTTPS
certificate and key included: prints every error as FILE:LINE:COL: KEY: message
and exits 1, or prints a summary and exits 0. Warnings (e.g. pages that would link to a loopback status page) are
printed and do not fail the check.
)";

bool is_help(const std::string& arg) { return arg == "--help" || arg == "-h"; }

int usage_error(const std::string& message) {
  std::cerr << "nightshift: " << message << "\n\nRun 'nightshift --help' for usage.\n";
  return 2;
}

void print_errors(const std::vector<nightshift::ConfigError>& errors) {
  for (const auto& e : errors) std::cerr << e.to_string() << "\n";
  std::cerr << errors.size() << (errors.size() == 1 ? " error" : " errors") << "\n";
}

void print_warnings(const std::vector<nightshift::ConfigError>& warnings) {
  for (const auto& w : warnings) std::cerr << w.to_string() << "\n";
}

int check_config(const std::string& path) {
  auto result = nightshift::load_config(path);
  print_warnings(result.warnings);
  if (!result.ok()) {
    print_errors(result.errors);
    return 1;
  }
  // The HTTPS pair is read as the agent would at start: a certificate that
  // does not load fails here, not at the next restart.
  if (const auto& agent = result.config->agent; !agent.tls_cert_file.empty()) {
    auto identity = nightshift::TlsIdentity::load(agent.tls_cert_file, agent.tls_key_file);
    if (!identity.ok()) {
      print_errors({{path, 0, 0, "agent.tls_cert_file, agent.tls_key_file", identity.error().message}});
      return 1;
    }
  }
  std::size_t probes = 0;
  for (const auto& t : result.config->targets) probes += t->probes.size();
  std::cout << path << ": ok (" << result.config->targets.size() << " targets, " << probes << " probes)\n";
  return 0;
}

// Thousands of probes in flight and thousands of status-page readers need
// thousands of sockets: take the hard limit (logged at "listening", exported
// as process_max_fds).
void raise_fd_limit() { (void)nightshift::raise_open_files_limit(); }

int run(const std::vector<std::string>& args) {
  std::string config_path;
  std::string log_level;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-c" || a == "--config") {
      if (i + 1 >= args.size()) return usage_error(a + " needs a file");
      config_path = args[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      config_path = a.substr(9);
    } else if (is_help(a)) {
      std::cout << kRunUsage;
      return 0;
    } else if (a == "--log-level") {
      if (i + 1 >= args.size()) return usage_error("--log-level needs a level");
      log_level = args[++i];
    } else {
      return usage_error("unknown argument for run: " + a);
    }
  }
  if (config_path.empty()) return usage_error("run needs -c FILE");
  auto result = nightshift::load_config(config_path);
  if (!result.ok()) {
    print_errors(result.errors);
    nightshift::log::error("config rejected; not starting", {{"config", config_path}});
    return 1;
  }
  for (const auto& w : result.warnings) {
    nightshift::log::warn("config: " + w.message, {{"config", config_path}, {"key", w.key}});
  }
  nightshift::Config config = std::move(*result.config);
  if (!log_level.empty()) {
    if (log_level == "debug") {
      config.agent.log_level = nightshift::LogLevel::kDebug;
    } else if (log_level == "info") {
      config.agent.log_level = nightshift::LogLevel::kInfo;
    } else if (log_level == "warn") {
      config.agent.log_level = nightshift::LogLevel::kWarn;
    } else if (log_level == "error") {
      config.agent.log_level = nightshift::LogLevel::kError;
    } else {
      return usage_error("--log-level: expected debug, info, warn or error, found " + log_level);
    }
  }
  raise_fd_limit();
  nightshift::block_agent_signals();
  nightshift::SystemClock clock;
  nightshift::Agent agent(config_path, std::move(config), clock);
  return agent.run();
}

}  // namespace

int main(int argc, char** argv) {
  // One malloc arena: glibc's default of one per thread kept every HTTP
  // worker's share of a 25 MB /metrics render (10 000 targets) resident —
  // RSS grew by ~70 MB per scrape until each arena had its own copy.
  mallopt(M_ARENA_MAX, 1);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string cmd = args.front();
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (cmd == "--version" || cmd == "version") {
    std::cout << "nightshift " << nightshift::kVersion << " (" << nightshift::kRevision << ")\n";
    return 0;
  }
  if (cmd == "check-config") {
    if (std::any_of(rest.begin(), rest.end(), is_help)) {
      std::cout << kCheckConfigUsage;
      return 0;
    }
    if (rest.size() != 1) return usage_error("check-config needs exactly one FILE");
    return check_config(rest.front());
  }
  if (cmd == "run") return run(rest);
  if (nightshift::cli::is_command(cmd)) return nightshift::cli::run(cmd, rest);
  if (cmd == "replay") {
    return nightshift::pcap::replay_cli(
        rest, std::cout, std::cerr,
        [](const std::string& path, std::vector<std::shared_ptr<const nightshift::Target>>& targets, std::ostream& err) {
          auto loaded = nightshift::load_config(path);
          if (!loaded.ok()) {
            for (const auto& e : loaded.errors) err << e.to_string() << "\n";
            return false;
          }
          targets = loaded.config->targets;
          return true;
        });
  }
  if (cmd == "probe") {
    if (rest.empty()) return usage_error("probe needs a kind\n\n" + nightshift::probe_usage());
    const std::string kind = rest.front();
    if (is_help(kind)) {
      std::cout << nightshift::probe_usage();
      return 0;
    }
    std::vector<std::string> probe_args(rest.begin() + 1, rest.end());
    raise_fd_limit();
    // ICMP keeps its fping-style command; every other kind goes through the
    // config parser and its engine.
    if (kind == "icmp") return nightshift::icmp::cli(probe_args, std::cout, std::cerr);
    return nightshift::probe_cli(kind, probe_args, std::cout, std::cerr);
  }
  return usage_error("unknown command: " + cmd);
}
