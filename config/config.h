// Config: the TOML file, parsed (toml++) and validated into typed settings.
//
// Every error names file:line:col, the key path, what was expected and what was
// found, compiler-style, and validation collects them all instead of stopping
// at the first. Unknown keys are errors: a typo must never silently disable
// monitoring. toml++ exceptions stop here; callers see values.
//
// Thread safety: pure functions, any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "incidents/incidents.h"
#include "rules/rule_engine.h"
#include "core/duration.h"
#include "core/log.h"
#include "fleet/settings.h"
#include "notify/sinks.h"
#include "nightshift/clock.h"
#include "nightshift/result.h"
#include "nightshift/target.h"

namespace nightshift {

struct AgentSettings {
  std::string name;             // the `agent` label; defaults to the host name
  std::string site;             // default site for targets that set none
  std::string listen = "127.0.0.1:9650";  // HTTP: /metrics, /healthz
  std::string state_dir = "/var/lib/nightshift";
  double max_probes_per_second = 2000;  // global cap on probe starts
  int http_threads = 16;                // HTTP workers for handlers that may block (API, /metrics)
  // HTTPS on `listen` when both are set (PEM files, read at start and on every
  // SIGHUP); the key file's contents are never logged.
  std::string tls_cert_file;
  std::string tls_key_file;
  LogLevel log_level = LogLevel::kInfo;
};

// [status] title and [[status.component]]: the public face of the service.
struct StatusComponentConfig {
  std::string name;  // public
  std::string description;
  std::vector<std::map<std::string, std::string>> match;  // any one: all its pairs (site, group, target) hold
};
struct StatusConfig {
  std::string title;  // empty: "Service status"
  std::vector<StatusComponentConfig> components;
};

struct Config {
  AgentSettings agent;
  Duration default_interval = std::chrono::seconds(10);
  // A probe's timeout when none is set anywhere: this, or half the probe's
  // interval if that is shorter (so `interval = "1s"` alone is valid).
  Duration default_timeout = std::chrono::seconds(3);
  bool default_timeout_set = false;  // [defaults] timeout given: it applies as is
  std::vector<std::shared_ptr<const Target>> targets;
  // Rules: the built-in ones (unless [rules] builtin = false; a [[rule]] of the
  // same name replaces one) and those from [[rule]].
  std::vector<rules::RuleSpec> rules;
  IncidentPolicy incidents;  // from [incidents]; agent_name is filled in from [agent]
  // Paging: [[sink]] endpoints and the [notify] policy. Secrets are read from
  // their *_file / *_env keys at load time and never logged.
  std::vector<SinkSpec> sinks;
  NotifyPolicy notify;
  // [api]: the bearer token for the operator API (empty: read-only), and
  // whether reads need it too.
  std::string api_token;
  bool api_public_read = false;
  // [api] allow_plain_http: the operator (its token) may be served over plain
  // HTTP on an address other machines reach.
  bool api_allow_plain_http = false;
  // [status]: where to export status.html, status.json and feed.atom on every change.
  std::string status_export_dir;
  // [fleet]: NATS servers, credentials (secrets from *_file / *_env) and the
  // quorum; enabled when the section is present.
  fleet::FleetSettings fleet;
  StatusConfig status;
};

struct ConfigError {
  std::string file;
  std::uint32_t line = 0;    // 0: no position (e.g. the file could not be read)
  std::uint32_t column = 0;
  std::string key;           // e.g. "target[2].probe[0].port"; may be empty
  std::string message;
  bool warning = false;      // a warning does not reject the config
  // "agent.toml:14:11: target[2].interval: expected a duration like \"30s\", found integer 30"
  // (a warning: "agent.toml:3:1: warning: notify.status_url: ...")
  std::string to_string() const;
};

struct ConfigResult {
  std::optional<Config> config;  // set only when errors is empty
  std::vector<ConfigError> errors;
  std::vector<ConfigError> warnings;  // set whether or not the config is valid
  bool ok() const { return config.has_value(); }
};

// What rule conditions may read: the rule engine's own variables and every
// registered probe kind's declared measures.
const std::vector<rules::Variable>& rule_variables();
// Those variables as the Markdown table docs/rules.md shows (a test keeps the
// two equal).
std::string rule_variables_markdown();

// Why `cfg` may not serve the operator API as it says: its bearer token would
// travel in clear (a token is set, `listen` is not a loopback address, the
// listener is plain HTTP, and [api] allow_plain_http is not set). "" when it
// may. `https`: whether the listener speaks TLS (at start: whether the config
// gives a certificate; at a reload: what the running listener does).
std::string plain_api_refusal(const Config& cfg, bool https);
// Whether a listen address ("127.0.0.1:9650", "[::1]:0") binds loopback only:
// 127.0.0.0/8 or ::1 (":9650", "0.0.0.0", "[::]" bind every address).
bool loopback_listen(const std::string& listen);

ConfigResult parse_config(std::string_view text, const std::string& file_name);
ConfigResult load_config(const std::string& path);

}  // namespace nightshift
