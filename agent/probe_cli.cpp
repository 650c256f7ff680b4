#include "agent/probe_cli.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "nightshift/clock.h"
#include "nightshift/reactor.h"
#include "nightshift/resolver.h"
#include "probes/registry/registry.h"

namespace nightshift {

namespace {

// TARGET[:PORT]: "192.0.2.1:22", "[2001:db8::1]:22", "host.example:161", or an
// address without a port (a bare IPv6 literal has several colons: no port).
struct TargetArg {
  std::string text;  // as given: the target's name in the output
  std::string address;
  std::string port;  // empty: the kind's default or --port
};

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

TargetArg split_target(const std::string& text) {
  TargetArg t{text, text, ""};
  if (text.size() > 2 && text.front() == '[') {
    const auto close = text.find(']');
    if (close != std::string::npos) {
      t.address = text.substr(1, close - 1);
      if (close + 1 < text.size() && text[close + 1] == ':') t.port = text.substr(close + 2);
    }
    return t;
  }
  const auto colon = text.rfind(':');
  if (colon != std::string::npos && text.find(':') == colon && all_digits(text.substr(colon + 1))) {
    t.address = text.substr(0, colon);
    t.port = text.substr(colon + 1);
  }
  return t;
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// A command-line value as TOML: integers and booleans as such, arrays and
// inline tables as written (`--interfaces '["Gi0/*"]'`), anything else a string.
std::string toml_value(const std::string& v) {
  const bool integer = all_digits(v) || (v.size() > 1 && v[0] == '-' && all_digits(v.substr(1)));
  if (integer || v == "true" || v == "false") return v;
  if (!v.empty() && (v.front() == '[' || v.front() == '{')) return v;
  return toml_string(v);
}

std::string format_seconds(double s) {
  char buf[32];
  if (s < 1) {
    std::snprintf(buf, sizeof buf, "%.3f ms", s * 1000);
  } else {
    std::snprintf(buf, sizeof buf, "%.3f s", s);
  }
  return buf;
}

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

std::string probe_usage() {
  std::string kinds;
  for (const auto& k : probe_kinds()) kinds += (kinds.empty() ? "" : "|") + std::string(k.name);
  return "Usage: nightshift probe " + kinds +
         R"( [--KEY VALUE]... [-p PORT] [-t MS] [--json] TARGET[:PORT]...

Runs one probe of the given kind against every target at once, through the
agent's own engines, and prints one line per target (or, with --json, a JSON
array of the samples). Every key of the kind's [[target.probe]] table
(nightshift.toml(5)) is an option, dashes for underscores:
  nightshift probe tcp --expect-banner SSH- 192.0.2.1:22 [2001:db8::1]:22
  nightshift probe snmp --community public --interfaces '["eth*"]' 192.0.2.1
  nightshift probe snmp --version 3 --username noc --auth-password-env PW 192.0.2.1
`nightshift probe icmp` has fping-style options of its own (probe icmp --help).

Options:
  -p, --port PORT   port for targets given without one
  -t MS             timeout in milliseconds (default 3000); or --timeout 2s
  --json            print the samples as JSON
  -h, --help        print this help
Exit status: 0 if every target answered, 1 if any did not, 2 on usage errors.
)";
}

int probe_cli(const std::string& kind, const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto usage = [&](const std::string& message) {
    err << "nightshift probe " << kind << ": " << message << "\n\n" << probe_usage();
    return 2;
  };
  if (find_probe_kind(kind) == nullptr) return usage("unknown kind \"" + kind + "\"");
  std::vector<std::pair<std::string, std::string>> keys;  // option keys, in order
  std::vector<TargetArg> targets;
  std::string timeout = "3s";
  bool as_json = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string* { return i + 1 < args.size() ? &args[++i] : nullptr; };
    if (a == "-h" || a == "--help") {
      out << probe_usage();
      return 0;
    } else if (a == "--json") {
      as_json = true;
    } else if (a == "-t") {
      const std::string* v = value();
      if (v == nullptr || !all_digits(*v) || v->size() > 6) return usage("-t needs milliseconds, e.g. -t 2000");
      timeout = *v + "ms";
    } else if (a == "-p") {
      const std::string* v = value();
      if (v == nullptr) return usage("-p needs a port");
      keys.emplace_back("port", *v);
    } else if (a.size() > 2 && a.rfind("--", 0) == 0) {
      std::string key = a.substr(2);
      std::string v;
      if (const auto eq = key.find('='); eq != std::string::npos) {
        v = key.substr(eq + 1);
        key.resize(eq);
      } else if (const std::string* next = value()) {
        v = *next;
      } else {
        return usage(a + " needs a value");
      }
      std::replace(key.begin(), key.end(), '-', '_');
      if (key.empty() || !std::all_of(key.begin(), key.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; })) {
        return usage("not an option name: " + a);
      }
      if (key == "timeout") {
        timeout = v;
      } else if (key == "kind" || key == "name" || key == "interval") {
        return usage(a + " is set by the command itself");
      } else {
        keys.emplace_back(key, v);
      }
    } else if (a.size() > 1 && a[0] == '-') {
      return usage("unknown option " + a);
    } else {
      targets.push_back(split_target(a));
    }
  }
  if (targets.empty()) return usage("give at least one TARGET");

  // The targets as a config, parsed and validated as the agent would.
  std::ostringstream toml;
  std::set<std::string> seen;
  for (const auto& t : targets) {
    if (!seen.insert(t.text).second) return usage("target " + t.text + " given twice");
    toml << "[[target]]\nname = " << toml_string(t.text) << "\naddress = " << toml_string(t.address)
         << "\n[[target.probe]]\nkind = " << toml_string(kind) << "\ntimeout = " << toml_string(timeout)
         << "\ninterval = \"1h\"\n";
    for (const auto& [k, v] : keys) {
      if (k == "port" && !t.port.empty()) continue;  // TARGET:PORT wins over --port
      toml << k << " = " << toml_value(v) << "\n";
    }
    if (!t.port.empty()) toml << "port = " << t.port << "\n";
  }
  ConfigResult parsed = parse_config(toml.str(), "command line");
  if (!parsed.ok()) {
    // Errors name config keys; say them as the options they came from.
    std::set<std::string> said;
    for (const auto& e : parsed.errors) {
      std::string key = e.key;
      std::string target;
      if (key.rfind("target[", 0) == 0) {
        const std::size_t index = std::strtoul(key.c_str() + 7, nullptr, 10);
        if (index < targets.size()) target = targets[index].text + ": ";
      }
      if (const auto dot = key.find("].probe[0]."); dot != std::string::npos) {
        key = "--" + key.substr(dot + 11);
        std::replace(key.begin(), key.end(), '_', '-');
        target.clear();  // the same option for every target: say it once
      } else if (!target.empty()) {
        key = key.substr(key.find('.') == std::string::npos ? key.size() : key.find('.') + 1);
      }
      const std::string line =
          "nightshift probe " + kind + ": " + target + (key.empty() ? "" : key + ": ") + e.message;
      if (said.insert(line).second) err << line << "\n";
    }
    return 2;
  }
  const Config& config = *parsed.config;

  SystemClock clock;
  Reactor reactor(clock);
  Resolver resolver(reactor);
  EngineContext context{reactor, resolver};
  std::unique_ptr<ProbeEngine> engine = find_probe_kind(kind)->make_engine(context);
  std::vector<std::optional<Sample>> results(config.targets.size());
  std::size_t pending = config.targets.size();
  Duration longest{};
  for (std::size_t i = 0; i < config.targets.size(); ++i) {
    const auto& target = config.targets[i];
    longest = std::max(longest, target->probes.front().timeout);
    ProbeRequest req;
    req.target = target;
    req.spec = &target->probes.front();
    req.done = [&results, &pending, i](Sample s) {
      results[i] = std::move(s);
      --pending;
    };
    engine->submit(std::move(req));
  }
  // Every engine answers by its timeout; the margin covers name resolution.
  const SteadyTime deadline = clock.now() + longest + std::chrono::seconds(5);
  while (pending > 0 && clock.now() < deadline) reactor.run_once(std::chrono::milliseconds(100));

  bool all_ok = pending == 0;
  nlohmann::json list = nlohmann::json::array();
  for (std::size_t i = 0; i < results.size(); ++i) {
    const std::string& name = config.targets[i]->name;
    if (!results[i]) {
      all_ok = false;
      if (as_json) {
        list.push_back({{"target", name}, {"kind", kind}, {"ok", false}, {"reason", "no_answer"}});
      } else {
        out << name << ": no result from the engine in time\n";
      }
      continue;
    }
    const Sample& s = *results[i];
    all_ok &= s.ok;
    const double seconds = std::chrono::duration<double>(s.duration).count();
    if (as_json) {
      nlohmann::json values = nlohmann::json::object();
      for (const auto& [k, v] : s.values) values[k] = v;
      nlohmann::json series = nlohmann::json::array();
      for (const auto& lv : s.series) {
        nlohmann::json labels = nlohmann::json::object();
        for (const auto& [k, v] : lv.labels) labels[k] = v;
        series.push_back({{"metric", lv.metric}, {"labels", labels}, {"value", lv.value}});
      }
      list.push_back({{"target", name},
                      {"probe", s.probe},
                      {"kind", s.kind},
                      {"ok", s.ok},
                      {"reason", std::string(to_string(s.reason))},
                      {"detail", s.detail},
                      {"duration_seconds", seconds},
                      {"values", values},
                      {"series", series}});
      continue;
    }
    out << name << " " << s.probe << ": ";
    if (s.ok) {
      out << "ok in " << format_seconds(seconds);
    } else {
      out << to_string(s.reason) << " after " << format_seconds(seconds);
      if (!s.detail.empty()) out << " (" << s.detail << ")";
    }
    for (const auto& [k, v] : s.values) out << " " << k << "=" << format_number(v);
    if (!s.series.empty()) out << " series=" << s.series.size();
    out << "\n";
  }
  if (as_json) out << list.dump(2) << "\n";
  return all_ok ? 0 : 1;
}

}  // namespace nightshift
