#include "config/config.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <pwd.h>

#include <toml++/toml.h>

#include "core/suggest.h"
#include "rules/default_rules.h"
#include "nightshift/options.h"
#include "nightshift/resolver.h"
#include "probes/registry/registry.h"

namespace nightshift {

std::string ConfigError::to_string() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += warning ? ": warning: " : ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

namespace {

// ---------------------------------------------------------------- helpers

std::string describe(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: {
      std::string s = *node.value<std::string>();
      if (s.size() > 40) s = s.substr(0, 40) + "...";
      return "string \"" + s + "\"";
    }
    case toml::node_type::integer: return "integer " + std::to_string(*node.value<std::int64_t>());
    case toml::node_type::floating_point: {
      std::ostringstream o;
      o << "float " << *node.value<double>();
      return o.str();
    }
    case toml::node_type::boolean: return std::string("boolean ") + (*node.value<bool>() ? "true" : "false");
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

bool valid_label_name(std::string_view s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

bool has_control_chars(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// "198.51.100.0/24", "2001:db8::/32": a pcap watch's prefix (which one a
// kind accepts is its own business; the pcap engine checks the host bits).
bool valid_cidr(const std::string& a) {
  const auto slash = a.find('/');
  if (slash == std::string::npos || slash + 1 >= a.size() || a.size() - slash > 4) return false;
  auto literal = Resolver::parse_literal(a.substr(0, slash));
  if (!literal) return false;
  int length = 0;
  for (char c : a.substr(slash + 1)) {
    if (c < '0' || c > '9') return false;
    length = length * 10 + (c - '0');
  }
  return length <= (a.find(':') == std::string::npos ? 32 : 128);
}

bool valid_hostname(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  std::size_t label_len = 0;
  for (char c : h) {
    if (c == '.') {
      if (label_len == 0) return false;
      label_len = 0;
      continue;
    }
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
    if (++label_len > 63) return false;
  }
  return true;
}

// Collects errors, positioned at toml++ source regions.
class Errors {
 public:
  Errors(std::string file, std::string_view text) : file_(std::move(file)), text_(text) {}
  void at(const toml::source_region& where, std::string key, std::string message) {
    errors_.push_back({file_, where.begin.line, where.begin.column, std::move(key), std::move(message)});
  }
  // Does not make the config invalid: said by check-config and at start.
  void warn_at(const toml::source_region& where, std::string key, std::string message) {
    warnings_.push_back({file_, where.begin.line, where.begin.column, std::move(key), std::move(message), true});
  }
  std::vector<ConfigError>& list() { return errors_; }
  std::vector<ConfigError>& warnings() { return warnings_; }
  const std::string& file() const { return file_; }
  // The source column of character `offset` (1-based) of the string value
  // whose opening quote is at `value`: escapes (\" \\ \uXXXX ...) take more
  // source columns than the one character they stand for.
  std::uint32_t column_in_string(const toml::source_position& value, std::size_t offset) const {
    std::string_view rest = text_;
    for (std::uint32_t line = 1; line < value.line; ++line) {
      const auto nl = rest.find('\n');
      if (nl == std::string_view::npos) return value.column + static_cast<std::uint32_t>(offset);
      rest.remove_prefix(nl + 1);
    }
    rest = rest.substr(0, rest.find('\n'));
    std::size_t i = value.column - 1;  // the opening quote
    if (i >= rest.size() || rest[i] != '"' || rest.substr(i, 3) == "\"\"\"") {
      return value.column + static_cast<std::uint32_t>(offset);  // literal strings have no escapes
    }
    ++i;
    for (std::size_t k = 1; k < offset && i < rest.size(); ++k) {
      if (rest[i] != '\\' || i + 1 >= rest.size()) {
        ++i;
      } else if (rest[i + 1] == 'u') {
        i += 6;
      } else if (rest[i + 1] == 'U') {
        i += 10;
      } else {
        i += 2;
      }
    }
    return static_cast<std::uint32_t>(i + 1);
  }

 private:
  std::string file_;
  std::string_view text_;
  std::vector<ConfigError> errors_;
  std::vector<ConfigError> warnings_;
};

class TableReader;
std::optional<std::string> read_secret(TableReader& r, const std::string& base, bool required, bool plain);

// Reads one TOML table: typed getters that report errors with the key's path and
// position, and a final check that reports every key nobody asked for.
class TableReader final : public OptionReader {
 public:
  TableReader(const toml::table& table, std::string path, Errors& errors)
      : table_(table), path_(std::move(path)), errors_(errors) {}

  std::string key_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  const toml::node* node(std::string_view key) {
    known_.insert(std::string(key));
    return table_.get(key);
  }

  void missing(std::string_view key, std::string_view what) {
    errors_.at(table_.source(), key_path(key), "required key is missing (expected " + std::string(what) + ")");
  }

  void wrong(std::string_view key, const toml::node& n, std::string_view expected) {
    errors_.at(n.source(), key_path(key), "expected " + std::string(expected) + ", found " + describe(n));
  }

  std::optional<std::int64_t> integer(std::string_view key, std::int64_t min, std::int64_t max,
                                      bool required) override {
    const toml::node* n = node(key);
    if (n == nullptr) {
      if (required) missing(key, "an integer");
      return std::nullopt;
    }
    auto v = n->value_exact<std::int64_t>();
    if (!v || !n->is_integer()) {
      wrong(key, *n, "an integer from " + std::to_string(min) + " to " + std::to_string(max));
      return std::nullopt;
    }
    if (*v < min || *v > max) {
      wrong(key, *n, "an integer from " + std::to_string(min) + " to " + std::to_string(max));
      return std::nullopt;
    }
    return v;
  }

  std::optional<double> number(std::string_view key, double min, bool required) {
    const toml::node* n = node(key);
    if (n == nullptr) {
      if (required) missing(key, "a number");
      return std::nullopt;
    }
    if (!n->is_number()) {
      wrong(key, *n, "a number");
      return std::nullopt;
    }
    const double v = n->is_integer() ? static_cast<double>(*n->value<std::int64_t>()) : *n->value<double>();
    if (!(v >= min) || std::isinf(v)) {
      std::ostringstream o;
      o << "a number of at least " << min;
      wrong(key, *n, o.str());
      return std::nullopt;
    }
    return v;
  }

  std::optional<std::string> string(std::string_view key, bool required) override {
    const toml::node* n = node(key);
    if (n == nullptr) {
      if (required) missing(key, "a string");
      return std::nullopt;
    }
    if (!n->is_string()) {
      wrong(key, *n, "a string");
      return std::nullopt;
    }
    std::string s = *n->value<std::string>();
    if (has_control_chars(s)) {
      errors_.at(n->source(), key_path(key), "control characters are not allowed");
      return std::nullopt;
    }
    return s;
  }

  std::optional<bool> boolean(std::string_view key, bool required) override {
    const toml::node* n = node(key);
    if (n == nullptr) {
      if (required) missing(key, "true or false");
      return std::nullopt;
    }
    if (!n->is_boolean()) {
      wrong(key, *n, "true or false");
      return std::nullopt;
    }
    return *n->value<bool>();
  }

  std::optional<double> number(std::string_view key, bool required) override {
    const toml::node* n = node(key);
    if (n == nullptr) {
      if (required) missing(key, "a number");
      return std::nullopt;
    }
    std::optional<double> v;
    if (n->is_floating_point()) v = *n->value<double>();
    if (n->is_integer()) v = static_cast<double>(*n->value<std::int64_t>());
    if (!v || !std::isfinite(*v)) {
      wrong(key, *n, "a finite number like 0.1");
      return std::nullopt;
    }
    return v;
  }

  std::optional<Duration> duration(std::string_view key, bool required) override {
    const toml::node* n = node(key);
    if (n == nullptr) {
      if (required) missing(key, "a duration like \"30s\"");
      return std::nullopt;
    }
    if (!n->is_string()) {
      wrong(key, *n, "a duration like \"30s\"");
      return std::nullopt;
    }
    const std::string text = *n->value<std::string>();
    auto d = parse_duration(text);
    if (!d.ok()) {
      errors_.at(n->source(), key_path(key),
                 "expected a duration like \"500ms\", \"30s\" or \"2m\", found string \"" + text + "\" (" +
                     d.error().message + ")");
      return std::nullopt;
    }
    if (*d <= Duration::zero()) {
      errors_.at(n->source(), key_path(key), "expected a duration greater than zero, found \"" + text + "\"");
      return std::nullopt;
    }
    return *d;
  }

  // A sub-table; reports a type error when the key holds something else.
  const toml::table* table(std::string_view key) {
    const toml::node* n = node(key);
    if (n == nullptr) return nullptr;
    if (!n->is_table()) {
      wrong(key, *n, "a table");
      return nullptr;
    }
    return n->as_table();
  }

  void error(std::string_view key, std::string message) override {
    const toml::node* n = table_.get(key);
    errors_.at(n ? n->source() : table_.source(), key_path(key), std::move(message));
  }

  std::optional<std::vector<std::string>> strings(std::string_view key, bool required) override {
    const toml::node* n = node(key);
    if (n == nullptr) {
      if (required) missing(key, "an array of strings");
      return std::nullopt;
    }
    const toml::array* a = n->as_array();
    if (a == nullptr) {
      wrong(key, *n, "an array of strings");
      return std::nullopt;
    }
    std::vector<std::string> out;
    for (const auto& v : *a) {
      if (!v.is_string()) {
        errors_.at(v.source(), key_path(key), "expected a string, found " + describe(v));
        return std::nullopt;
      }
      out.push_back(*v.value<std::string>());
    }
    return out;
  }

  std::optional<std::vector<std::int64_t>> integers(std::string_view key, std::int64_t min, std::int64_t max,
                                                    bool required) override {
    const toml::node* n = node(key);
    if (n == nullptr) {
      if (required) missing(key, "an array of integers");
      return std::nullopt;
    }
    const toml::array* a = n->as_array();
    if (a == nullptr) {
      wrong(key, *n, "an array of integers");
      return std::nullopt;
    }
    std::vector<std::int64_t> out;
    for (const auto& v : *a) {
      auto i = v.value_exact<std::int64_t>();
      if (!v.is_integer() || !i || *i < min || *i > max) {
        errors_.at(v.source(), key_path(key),
                   "expected an integer from " + std::to_string(min) + " to " + std::to_string(max) + ", found " +
                       describe(v));
        return std::nullopt;
      }
      out.push_back(*i);
    }
    return out;
  }

  std::vector<std::unique_ptr<OptionReader>> tables(std::string_view key) override {
    std::vector<std::unique_ptr<OptionReader>> out;
    const toml::node* n = node(key);
    if (n == nullptr) return out;
    const toml::array* a = n->as_array();
    if (a == nullptr || !(a->is_array_of_tables() || a->empty())) {
      wrong(key, *n, "an array of tables, e.g. [{ name = \"x\", oid = \"1.3.6.1...\" }]");
      return out;
    }
    for (std::size_t i = 0; i < a->size(); ++i) {
      out.push_back(std::make_unique<TableReader>(*a->get(i)->as_table(),
                                                  key_path(key) + "[" + std::to_string(i) + "]", errors_));
    }
    return out;
  }

  void done() override { report_unknown_keys(); }

  std::optional<std::string> secret(std::string_view base, bool required, bool plain_allowed) override {
    return read_secret(*this, std::string(base), required, plain_allowed);
  }
  std::string secret_key(std::string_view base) const override {
    for (const char* suffix : {"_file", "_env", "_credential", ""}) {
      const std::string key = std::string(base) + suffix;
      if (table_.get(key) != nullptr) return key;
    }
    return std::string(base) + "_file";
  }

  // Every key in the table that no getter asked for is an error.
  void report_unknown_keys() {
    for (auto&& [k, v] : table_) {
      const std::string name(k.str());
      if (known_.count(name)) continue;
      std::string message = "unknown key";
      const std::string best = closest_match(name, known_);
      if (!best.empty()) {
        message += "; did you mean \"" + best + "\"?";
      } else {
        std::string all;
        for (const auto& candidate : known_) all += (all.empty() ? "" : ", ") + candidate;
        message += " (known keys: " + all + ")";
      }
      errors_.at(k.source(), key_path(name), message);
    }
  }

  const toml::table& raw() const { return table_; }
  const std::string& path() const { return path_; }

 private:
  const toml::table& table_;
  std::string path_;
  Errors& errors_;
  std::set<std::string> known_;
};

// An array of tables under `key` ([[target]] or an inline array of tables).
const toml::array* table_array(TableReader& parent, std::string_view key, Errors& errors) {
  const toml::node* n = parent.node(key);
  if (n == nullptr) return nullptr;
  if (!n->is_array_of_tables() && !(n->is_array() && n->as_array()->empty())) {
    errors.at(n->source(), parent.key_path(key),
              "expected an array of tables ([[" + parent.key_path(key) + "]]), found " + describe(*n));
    return nullptr;
  }
  return n->as_array();
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "nightshift";
  return buf;
}

// "ADDRESS:PORT" with an IPv4 literal, "[IPv6]:PORT", or ":PORT" (every
// address). The HTTP server (serve/) binds what this accepts.
bool valid_listen(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) return false;
  if (std::stoi(port) > 65535) return false;
  if (host.empty()) return true;
  const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  auto literal = Resolver::parse_literal(host);
  if (!literal.has_value()) return false;
  // An IPv6 address needs its brackets: "::1:9650" could be a port or not.
  return bracketed ? literal->family() == AF_INET6 : literal->family() == AF_INET;
}

// Whether a URL's host (or a listen address) is one only this machine reaches:
// loopback, or the unspecified address the agent's own link turns into
// 127.0.0.1.
bool loopback_host(std::string host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  if (host.empty() || host == "localhost" || host == "0.0.0.0" || host == "::" || host == "::1") return true;
  if (host.size() > 10 && host.compare(host.size() - 10, 10, ".localhost") == 0) return true;
  auto literal = Resolver::parse_literal(host);
  return literal.has_value() && literal->family() == AF_INET && host.rfind("127.", 0) == 0;
}

// The host of an http(s) URL: "https://[::1]:8443/x" -> "[::1]".
std::string url_host(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  std::string rest = url.substr(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (const auto at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
  if (!rest.empty() && rest.front() == '[') return rest.substr(0, rest.find(']') + 1);
  return rest.substr(0, rest.find(':'));
}

void parse_agent(TableReader& root, Config& cfg, Errors& errors) {
  cfg.agent.name = host_name();
  const toml::table* t = root.table("agent");
  if (t == nullptr) return;
  TableReader r(*t, "agent", errors);
  if (auto v = r.string("name", false)) {
    if (v->empty()) {
      r.error("name", "expected a non-empty string");
    } else {
      cfg.agent.name = *v;
    }
  }
  if (auto v = r.string("site", false)) cfg.agent.site = *v;
  if (auto v = r.string("listen", false)) {
    if (!valid_listen(*v)) {
      r.error("listen", "expected \"ADDRESS:PORT\" with an IPv4 address or a bracketed IPv6 one, e.g. "
                        "\"127.0.0.1:9650\", \"[::1]:9650\", \"[::]:9650\" or \":9650\", found \"" +
                            *v + "\"");
    } else {
      cfg.agent.listen = *v;
    }
  }
  if (auto v = r.string("state_dir", false)) {
    if (v->empty()) {
      r.error("state_dir", "expected a directory path, found \"\"");
    } else {
      cfg.agent.state_dir = *v;
    }
  }
  if (auto v = r.number("max_probes_per_second", 1, false)) cfg.agent.max_probes_per_second = *v;
  if (auto v = r.integer("http_threads", 2, 1024, false)) cfg.agent.http_threads = static_cast<int>(*v);
  if (auto v = r.string("log_level", false)) {
    static const std::map<std::string, LogLevel> kLevels = {
        {"debug", LogLevel::kDebug}, {"info", LogLevel::kInfo}, {"warn", LogLevel::kWarn}, {"error", LogLevel::kError}};
    auto it = kLevels.find(*v);
    if (it == kLevels.end()) {
      r.error("log_level", "expected one of \"debug\", \"info\", \"warn\", \"error\", found \"" + *v + "\"");
    } else {
      cfg.agent.log_level = it->second;
    }
  }
  r.report_unknown_keys();
}

void parse_defaults(TableReader& root, Config& cfg, Errors& errors) {
  const toml::table* t = root.table("defaults");
  if (t == nullptr) return;
  TableReader r(*t, "defaults", errors);
  auto interval = r.duration("interval", false);
  auto timeout = r.duration("timeout", false);
  if (interval) cfg.default_interval = *interval;
  if (timeout) {
    cfg.default_timeout = *timeout;
    cfg.default_timeout_set = true;
  }
  if (interval && timeout && *timeout >= *interval) {
    r.error("timeout", "must be shorter than defaults.interval (" + format_duration(*interval) + "), found " +
                           format_duration(*timeout));
  }
  r.report_unknown_keys();
}

void parse_probe(const toml::table& t, const std::string& path, const Config& cfg, Duration target_interval,
                 std::optional<Duration> target_timeout, Target& target, std::map<std::string, const toml::table*>& names,
                 Errors& errors) {
  TableReader r(t, path, errors);
  auto kind_name = r.string("kind", true);
  auto name = r.string("name", false);
  auto interval = r.duration("interval", false);
  auto timeout = r.duration("timeout", false);
  if (!kind_name) return;  // without a kind, no key list to check against
  const ProbeKind* kind = find_probe_kind(*kind_name);
  if (kind == nullptr) {
    std::string known;
    for (const auto& k : probe_kinds()) known += (known.empty() ? "\"" : ", \"") + std::string(k.name) + "\"";
    r.error("kind", "expected one of " + known + ", found \"" + *kind_name + "\"");
    return;
  }
  ProbeSpec spec;
  spec.kind = std::string(kind->name);
  std::string default_name(kind->name);
  const std::size_t errors_before = errors.list().size();
  spec.options = kind->parse_options(r, default_name);
  r.report_unknown_keys();
  spec.interval = interval.value_or(target_interval);
  // An unset timeout fits the interval: 3 s, or half the interval if shorter.
  const std::optional<Duration> set_timeout = timeout ? timeout : target_timeout;
  spec.timeout = set_timeout.value_or(std::min(cfg.default_timeout, spec.interval / 2));
  if (spec.timeout >= spec.interval) {
    r.error(timeout ? "timeout" : "interval",
            "timeout (" + format_duration(spec.timeout) + ") must be shorter than interval (" +
                format_duration(spec.interval) + ") so that a probe never overlaps itself");
  }
  if (spec.interval < std::chrono::milliseconds(100)) {
    r.error("interval", "must be at least 100ms, found " + format_duration(spec.interval));
  }
  spec.name = name.value_or(default_name);
  if (name && name->empty()) r.error("name", "expected a non-empty string");
  if (auto [it, inserted] = names.emplace(spec.name, &t); !inserted) {
    r.error(name ? "name" : "kind",
            "duplicate probe name \"" + spec.name + "\" in this target (first at line " +
                std::to_string(it->second->source().begin.line) + "); give one of them a distinct `name`");
  }
  (void)cfg;
  if (spec.options != nullptr && errors.list().size() == errors_before) target.probes.push_back(std::move(spec));
}

void parse_targets(TableReader& root, Config& cfg, Errors& errors) {
  const toml::array* targets = table_array(root, "target", errors);
  if (targets == nullptr) return;
  std::map<std::string, std::uint32_t> seen;  // name -> line
  std::vector<std::pair<std::size_t, toml::source_region>> parents;  // target index, depends_on position
  static const std::set<std::string> kReservedLabels = {"target", "probe", "group", "site", "agent", "kind",
                                                        "job", "instance", "reason"};
  for (std::size_t i = 0; i < targets->size(); ++i) {
    const toml::table& t = *targets->get(i)->as_table();
    const std::string path = "target[" + std::to_string(i) + "]";
    TableReader r(t, path, errors);
    auto target = std::make_shared<Target>();
    auto name = r.string("name", true);
    auto address = r.string("address", true);
    if (name) {
      if (name->empty()) {
        r.error("name", "expected a non-empty string");
      } else if (auto [it, inserted] = seen.emplace(*name, t.get("name")->source().begin.line); !inserted) {
        r.error("name", "duplicate target name \"" + *name + "\" (first defined at line " +
                            std::to_string(it->second) + ")");
      }
      target->name = *name;
    }
    if (address) {
      if (!Resolver::parse_literal(*address) && !valid_hostname(*address) && !valid_cidr(*address)) {
        r.error("address", address->find('/') == std::string::npos
                               ? "expected an IP address or a hostname, found \"" + *address + "\""
                               : "expected an IP address, a hostname or a prefix like \"198.51.100.0/24\" (pcap "
                                 "watches), found \"" + *address + "\"");
      }
      target->address = *address;
    }
    target->group = r.string("group", false).value_or("");
    target->site = r.string("site", false).value_or(cfg.agent.site);
    if (const toml::table* labels = r.table("labels")) {
      for (auto&& [k, v] : *labels) {
        const std::string key(k.str());
        const std::string key_path = path + ".labels." + key;
        if (!valid_label_name(key)) {
          errors.at(k.source(), key_path, "expected a label name matching [a-zA-Z_][a-zA-Z0-9_]*");
        } else if (kReservedLabels.count(key)) {
          errors.at(k.source(), key_path,
                    "\"" + key + "\" is reserved" +
                        (key == "group" || key == "site" ? "; set it as the target's own `" + key + "` key" : ""));
        } else if (!v.is_string()) {
          errors.at(v.source(), key_path, "expected a string, found " + describe(v));
        } else {
          target->labels[key] = *v.value<std::string>();
        }
      }
    }
    auto interval = r.duration("interval", false);
    auto timeout = r.duration("timeout", false);
    const Duration target_interval = interval.value_or(cfg.default_interval);
    const std::optional<Duration> target_timeout =
        timeout ? timeout : (cfg.default_timeout_set ? std::optional<Duration>(cfg.default_timeout) : std::nullopt);
    const toml::array* probes = table_array(r, "probe", errors);
    if (probes == nullptr || probes->empty()) {
      if (probes != nullptr || !t.contains("probe")) {
        r.error("probe", "a target needs at least one [[target.probe]] (e.g. kind = \"tcp\", port = 22)");
      }
    } else {
      std::map<std::string, const toml::table*> probe_names;
      for (std::size_t j = 0; j < probes->size(); ++j) {
        parse_probe(*probes->get(j)->as_table(), path + ".probe[" + std::to_string(j) + "]", cfg, target_interval,
                    target_timeout, *target, probe_names, errors);
      }
    }
    if (auto parent = r.string("depends_on", false)) {
      target->depends_on = *parent;
      parents.push_back({i, t.get("depends_on")->source()});
    }
    target->canary = r.boolean("canary", false).value_or(false);
    r.report_unknown_keys();
    cfg.targets.push_back(std::move(target));
  }
  // Topology: a parent must exist, and following parents must never loop.
  std::map<std::string, std::string> parent_of;
  for (const auto& t : cfg.targets) {
    if (!t->depends_on.empty()) parent_of[t->name] = t->depends_on;
  }
  for (const auto& [index, where] : parents) {
    const Target& t = *cfg.targets[index];
    const std::string key = "target[" + std::to_string(index) + "].depends_on";
    if (t.depends_on == t.name) {
      errors.at(where, key, "a target cannot depend on itself");
    } else if (!seen.count(t.depends_on)) {
      errors.at(where, key, "no target is named \"" + t.depends_on + "\"");
    } else {
      std::string at = t.depends_on;
      for (std::size_t hops = 0; hops <= parent_of.size(); ++hops) {
        auto p = parent_of.find(at);
        if (p == parent_of.end()) break;
        if (p->second == t.name) {
          errors.at(where, key, "depends_on forms a loop through \"" + t.depends_on + "\"");
          break;
        }
        at = p->second;
      }
    }
  }
}

void parse_incidents(TableReader& root, Config& cfg, Errors& errors) {
  cfg.incidents.agent_name = cfg.agent.name;
  const toml::table* t = root.table("incidents");
  if (t == nullptr) return;
  TableReader r(*t, "incidents", errors);
  if (const toml::node* n = r.node("group_by")) {
    const toml::array* a = n->as_array();
    std::vector<std::string> labels;
    bool ok = a != nullptr;
    if (a != nullptr) {
      for (const auto& v : *a) {
        if (!v.is_string() || !valid_label_name(*v.value<std::string>())) {
          errors.at(v.source(), "incidents.group_by", "expected a label name, found " + describe(v));
          ok = false;
        } else {
          labels.push_back(*v.value<std::string>());
        }
      }
    } else {
      r.wrong("group_by", *n, "an array of label names, e.g. [\"site\", \"group\"]");
    }
    if (ok) cfg.incidents.group_by = labels;
  }
  if (auto d = r.duration("reopen_window", false)) cfg.incidents.reopen_window = *d;
  if (auto d = r.duration("update_every", false)) cfg.incidents.update_every = *d;
  if (auto d = r.duration("batch", false)) cfg.incidents.batch = *d;
  if (auto d = r.duration("vantage_hold", false)) cfg.incidents.vantage_hold = *d;
  if (auto d = r.duration("evidence_hold", false)) cfg.incidents.evidence_hold = *d;
  if (auto d = r.duration("keep_resolved", false)) cfg.incidents.keep_resolved = *d;
  if (auto v = r.number("vantage_ratio", 0, false)) {
    if (*v > 1) {
      r.wrong("vantage_ratio", *t->get("vantage_ratio"), "a ratio from 0 to 1");
    } else {
      cfg.incidents.vantage_ratio = *v;
    }
  }
  if (auto v = r.integer("vantage_min_targets", 1, 1'000'000, false)) {
    cfg.incidents.vantage_min_targets = static_cast<std::size_t>(*v);
  }
  r.report_unknown_keys();
}

// Who the agent runs as, for an error about a file it cannot read: under the
// packaged unit's DynamicUser that is a user no file on disk belongs to.
std::string current_user() {
  const uid_t uid = ::geteuid();
  std::string out = "uid " + std::to_string(uid);
  if (const passwd* pw = ::getpwuid(uid)) out = "user " + std::string(pw->pw_name) + " (" + out + ")";
  return out;
}

// A secret file's content, trailing whitespace dropped; empty and `error` set
// when it cannot be read.
std::optional<std::string> read_secret_file(const std::string& path, std::string& error, int& err) {
  err = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    err = errno;
    error = "cannot read \"" + path + "\": " + std::strerror(err);
    if (err == EACCES) {
      error += " (running as " + current_user() +
               "; a service with DynamicUser= cannot read root-only files: pass the file with "
               "LoadCredential= and name it with a _credential key, see docs/deploy.md)";
    }
    return std::nullopt;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  std::string v = buf.str();
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
  if (v.empty()) {
    error = "\"" + path + "\" is empty";
    return std::nullopt;
  }
  return v;
}

// A secret from `<base>_file` (the file's content, trailing whitespace dropped),
// `<base>_env` (an environment variable) or `<base>_credential` (a systemd
// credential: the file of that name in $CREDENTIALS_DIRECTORY, which
// LoadCredential= fills). Errors name the key and the file or variable, never
// the value. `plain` also allows `<base>` itself (a URL).
std::optional<std::string> read_secret(TableReader& r, const std::string& base, bool required, bool plain) {
  auto file = r.string(base + "_file", false);
  auto env = r.string(base + "_env", false);
  auto credential = r.string(base + "_credential", false);
  std::optional<std::string> inline_value = plain ? r.string(base, false) : std::nullopt;
  const int given = (file ? 1 : 0) + (env ? 1 : 0) + (credential ? 1 : 0) + (inline_value ? 1 : 0);
  if (given > 1) {
    r.error(file ? base + "_file" : env ? base + "_env" : base + "_credential",
            "give only one of " + (plain ? base + ", " : std::string()) + base + "_file, " + base + "_env and " +
                base + "_credential");
    return std::nullopt;
  }
  if (inline_value) return inline_value;
  if (file) {
    std::string error;
    int err = 0;
    auto v = read_secret_file(*file, error, err);
    if (!v) r.error(base + "_file", error);
    return v;
  }
  if (credential) {
    const bool valid_name = !credential->empty() && credential->find('/') == std::string::npos &&
                            *credential != "." && *credential != "..";
    if (!valid_name) {
      r.error(base + "_credential", "expected a credential name (a file name, no \"/\"), found \"" + *credential + "\"");
      return std::nullopt;
    }
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (dir == nullptr || *dir == '\0') {
      r.error(base + "_credential", "$CREDENTIALS_DIRECTORY is not set: run under systemd with LoadCredential=" +
                                        *credential + ":/PATH/TO/FILE in the unit, or use " + base + "_file");
      return std::nullopt;
    }
    std::string error;
    int err = 0;
    auto v = read_secret_file(std::string(dir) + "/" + *credential, error, err);
    if (!v) {
      if (err == ENOENT) error += " (no LoadCredential=" + *credential + ":... in the unit?)";
      r.error(base + "_credential", error);
    }
    return v;
  }
  if (env) {
    const char* v = std::getenv(env->c_str());
    if (v == nullptr || *v == '\0') {
      r.error(base + "_env", "environment variable " + *env + " is not set or empty");
      return std::nullopt;
    }
    return std::string(v);
  }
  if (required) {
    r.error(base + (plain ? "" : "_file"), "required: give " + (plain ? base + ", " : std::string()) + base +
                                             "_file, " + base + "_env or " + base + "_credential");
  }
  return std::nullopt;
}

bool valid_http_url(const std::string& url) {
  return (url.rfind("http://", 0) == 0 && url.size() > 7) || (url.rfind("https://", 0) == 0 && url.size() > 8);
}

void parse_api_and_status(TableReader& root, Config& cfg, Errors& errors) {
  if (const toml::table* t = root.table("api")) {
    TableReader r(*t, "api", errors);
    if (auto v = read_secret(r, "token", false, false)) {
      if (v->size() < 16) {
        r.error(r.secret_key("token"),
                "the token must be at least 16 characters long");
      }
      cfg.api_token = *v;
    }
    if (auto v = r.boolean("public_read", false)) cfg.api_public_read = *v;
    r.report_unknown_keys();
  }
  if (const toml::table* t = root.table("status")) {
    TableReader r(*t, "status", errors);
    if (auto v = r.string("export_dir", false)) {
      if (v->empty()) r.error("export_dir", "expected a directory path, found \"\"");
      cfg.status_export_dir = *v;
    }
    if (auto v = r.string("title", false)) cfg.status.title = *v;
    // [[status.component]]: what customers know as one part of the service.
    if (const toml::array* a = table_array(r, "component", errors)) {
      std::set<std::string> names;
      for (std::size_t i = 0; i < a->size(); ++i) {
        TableReader c(*a->get(i)->as_table(), "status.component[" + std::to_string(i) + "]", errors);
        StatusComponentConfig comp;
        if (auto v = c.string("name", true)) {
          if (v->empty()) c.error("name", "expected a public name, found \"\"");
          if (!names.insert(*v).second) c.error("name", "duplicate component name \"" + *v + "\"");
          comp.name = *v;
        }
        if (auto v = c.string("description", false)) comp.description = *v;
        if (auto v = c.strings("match", true)) {
          if (v->empty()) c.error("match", "expected at least one matcher like \"group=web\" or \"site=ams1 group=web\"");
          for (const auto& text : *v) {
            // "site=ams1 group=web": every pair must hold for a target.
            std::map<std::string, std::string> m;
            std::istringstream words(text);
            std::string word;
            while (words >> word) {
              const std::size_t eq = word.find('=');
              const std::string key = word.substr(0, eq);
              if (eq == std::string::npos || eq + 1 == word.size() || (key != "site" && key != "group" && key != "target")) {
                c.error("match", "expected site=X, group=X or target=X pairs separated by spaces, found \"" + text + "\"");
                m.clear();
                break;
              }
              m[key] = word.substr(eq + 1);
            }
            if (!m.empty()) comp.match.push_back(std::move(m));
          }
        }
        c.report_unknown_keys();
        cfg.status.components.push_back(std::move(comp));
      }
    }
    r.report_unknown_keys();
  }
}

// Every page links to its incident at notify.status_url; without one the agent
// links to its own listen address, and 127.0.0.1 (or ":9650", which becomes
// 127.0.0.1) is a link the person paged on their phone cannot open.
void warn_loopback_status_link(TableReader& root, const Config& cfg, Errors& errors) {
  if (cfg.sinks.empty()) return;
  const toml::node* notify_node = root.raw().get("notify");
  const toml::table* notify = notify_node != nullptr ? notify_node->as_table() : nullptr;
  const toml::node* url_node = notify != nullptr ? notify->get("status_url") : nullptr;
  std::string link = cfg.notify.status_url;
  std::string host;
  if (!link.empty()) {
    host = url_host(link);
  } else {
    const std::string& listen = cfg.agent.listen;
    host = listen.substr(0, listen.rfind(':'));
    link = "http://" + (loopback_host(host) ? std::string("127.0.0.1") : host) + listen.substr(listen.rfind(':')) +
           "/status";
  }
  if (!loopback_host(host)) return;
  const toml::node* where = url_node != nullptr ? url_node : root.raw().get("sink");
  errors.warn_at(where != nullptr ? where->source() : root.raw().source(), "notify.status_url",
                 "pages will link to " + link +
                     ", a loopback address the person paged cannot open; set notify.status_url to a "
                     "URL they can reach (docs/configuration.md)");
}

void parse_notify(TableReader& root, Config& cfg, Errors& errors) {
  cfg.notify.agent_name = cfg.agent.name;
  if (const toml::table* t = root.table("notify")) {
    TableReader r(*t, "notify", errors);
    if (auto v = r.string("status_url", false)) {
      if (!valid_http_url(*v)) r.error("status_url", "expected an http:// or https:// URL, found \"" + *v + "\"");
      cfg.notify.status_url = *v;
    }
    if (auto d = r.duration("first_backoff", false)) cfg.notify.first_backoff = *d;
    if (auto d = r.duration("max_backoff", false)) cfg.notify.max_backoff = *d;
    if (auto d = r.duration("dead_after", false)) cfg.notify.dead_after = *d;
    if (auto d = r.duration("renotify_every", false)) cfg.notify.renotify_every = *d;
    if (auto d = r.duration("escalate_after", false)) cfg.notify.escalate_after = *d;
    if (auto d = r.duration("alertmanager_refresh", false)) cfg.notify.alertmanager_refresh = *d;
    if (cfg.notify.max_backoff < cfg.notify.first_backoff) {
      r.error("max_backoff", "must be at least first_backoff (" + format_duration(cfg.notify.first_backoff) + ")");
    }
    r.report_unknown_keys();
  }
  std::map<std::string, std::uint32_t> names;
  bool any_escalation_sink = false;
  if (const toml::array* list = table_array(root, "sink", errors)) {
    for (std::size_t i = 0; i < list->size(); ++i) {
      const toml::table& t = *list->get(i)->as_table();
      const std::string path = "sink[" + std::to_string(i) + "]";
      TableReader r(t, path, errors);
      SinkSpec sink;
      bool ok = true;
      if (auto name = r.string("name", true)) {
        sink.name = *name;
        if (!valid_label_name(*name)) {
          r.error("name", "expected a name matching [a-zA-Z_][a-zA-Z0-9_]*, found \"" + *name + "\"");
          ok = false;
        } else if (auto [it, inserted] = names.emplace(*name, t.get("name")->source().begin.line); !inserted) {
          r.error("name", "duplicate sink name \"" + *name + "\" (first defined at line " +
                              std::to_string(it->second) + ")");
          ok = false;
        }
      } else {
        ok = false;
      }
      if (auto type = r.string("type", true)) {
        if (auto parsed = sink_type_from(*type)) {
          sink.type = *parsed;
        } else {
          r.error("type", "expected one of \"webhook\", \"alertmanager\", \"pagerduty\", \"slack\", \"notice\", found \"" +
                              *type + "\"");
          ok = false;
        }
      } else {
        ok = false;
      }
      if (auto url = read_secret(r, "url", true, /*plain=*/true)) {
        if (!valid_http_url(*url)) {
          // Shows the scheme only: a URL given by file may be a secret.
          r.error("url", "expected an http:// or https:// URL");
          ok = false;
        }
        sink.url = *url;
        // Alertmanager's API path is fixed: a base URL is enough.
        if (sink.type == SinkType::kAlertmanager && sink.url.find("/api/v2/alerts") == std::string::npos) {
          while (!sink.url.empty() && sink.url.back() == '/') sink.url.pop_back();
          sink.url += "/api/v2/alerts";
        }
      } else {
        ok = false;
      }
      if (auto v = r.string("min_severity", false)) {
        if (auto s = parse_severity(*v)) {
          sink.min_severity = *s;
        } else {
          r.error("min_severity", "expected one of \"info\", \"warning\", \"critical\", found \"" + *v + "\"");
          ok = false;
        }
      }
      if (const toml::table* match = r.table("match")) {
        for (auto&& [k, v] : *match) {
          if (!v.is_string()) {
            errors.at(v.source(), path + ".match." + std::string(k.str()), "expected a string, found " + describe(v));
            ok = false;
          } else {
            sink.match[std::string(k.str())] = *v.value<std::string>();
          }
        }
      }
      sink.escalation_only = r.boolean("escalation_only", false).value_or(false);
      any_escalation_sink = any_escalation_sink || sink.escalation_only;
      if (auto v = r.string("audience", false)) sink.audience = *v;
      if (sink.type == SinkType::kNotice && sink.audience.empty()) {
        r.error("audience", "required for a notice sink: who is told, e.g. \"Business customers in Amsterdam\"");
        ok = false;
      }
      if (auto v = read_secret(r, "secret", false, false)) sink.secret = *v;
      if (auto v = read_secret(r, "token", false, false)) sink.bearer_token = *v;
      if (auto v = read_secret(r, "routing_key", sink.type == SinkType::kPagerDuty, false)) {
        sink.routing_key = *v;
      } else if (sink.type == SinkType::kPagerDuty) {
        ok = false;
      }
      if (auto d = r.duration("timeout", false)) sink.timeout = *d;
      if (auto v = r.boolean("tls_verify", false)) sink.tls_verify = *v;
      r.report_unknown_keys();
      if (ok) cfg.sinks.push_back(std::move(sink));
    }
  }
  if (cfg.notify.escalate_after > Duration::zero() && !any_escalation_sink && root.raw().get("notify")) {
    errors.at(root.raw().get("notify")->source(), "notify.escalate_after",
              "escalate_after is set but no [[sink]] has escalation_only = true: nobody to escalate to");
  }
  warn_loopback_status_link(root, cfg, errors);
}

void parse_rules(TableReader& root, Config& cfg, Errors& errors) {
  bool builtin = true;
  if (const toml::table* t = root.table("rules")) {
    TableReader r(*t, "rules", errors);
    builtin = r.boolean("builtin", false).value_or(true);
    r.report_unknown_keys();
  }
  std::vector<rules::RuleSpec> own;
  std::map<std::string, std::uint32_t> names;
  if (const toml::array* list = table_array(root, "rule", errors)) {
    for (std::size_t i = 0; i < list->size(); ++i) {
      const toml::table& t = *list->get(i)->as_table();
      const std::string path = "rule[" + std::to_string(i) + "]";
      TableReader r(t, path, errors);
      auto name = r.string("name", true);
      auto condition = r.string("condition", true);
      rules::RuleSpec spec{"", {}, {}, Severity::kCritical, {}, std::chrono::minutes(2)};
      if (auto d = r.duration("for", false)) spec.timing.for_duration = *d;
      if (auto d = r.duration("clear_for", false)) spec.timing.clear_for = *d;
      if (auto d = r.duration("window", false)) spec.window = *d;
      if (auto d = r.duration("flap_window", false)) spec.timing.flap_window = *d;
      if (auto v = r.integer("max_flips", 0, 1000, false)) spec.timing.max_flips = static_cast<int>(*v);
      if (auto v = r.string("severity", false)) {
        if (auto s = parse_severity(*v)) {
          spec.severity = *s;
        } else {
          r.error("severity", "expected one of \"critical\", \"warning\", \"info\", found \"" + *v + "\"");
        }
      }
      if (const toml::table* select = r.table("select")) {
        for (auto&& [k, v] : *select) {
          if (!v.is_string()) {
            errors.at(v.source(), path + ".select." + std::string(k.str()), "expected a string, found " + describe(v));
          } else {
            spec.selector[std::string(k.str())] = *v.value<std::string>();
          }
        }
      }
      r.report_unknown_keys();
      bool ok = name.has_value() && condition.has_value();
      if (name) {
        spec.name = *name;
        if (!valid_label_name(*name)) {
          r.error("name", "expected a name matching [a-zA-Z_][a-zA-Z0-9_]*, found \"" + *name + "\"");
          ok = false;
        } else if (auto [it, inserted] = names.emplace(*name, t.get("name")->source().begin.line); !inserted) {
          r.error("name", "duplicate rule name \"" + *name + "\" (first defined at line " + std::to_string(it->second) + ")");
          ok = false;
        }
      }
      if (condition) {
        auto parsed = rules::Condition::parse(*condition, rule_variables());
        if (!parsed.ok()) {
          // Point into the string, at the character the condition's error names.
          toml::source_region where = t.get("condition")->source();
          const std::string& m = parsed.error().message;
          where.begin.column = errors.column_in_string(where.begin, std::max<std::size_t>(parsed.error().column, 1));
          errors.at(where, path + ".condition", m.substr(m.find(':') + 2));
          ok = false;
        } else {
          spec.condition = parsed.value();
        }
      }
      if (ok) own.push_back(std::move(spec));
    }
  }
  if (builtin) {
    for (auto& r : rules::default_rules(rule_variables())) {
      if (!names.count(r.name)) cfg.rules.push_back(std::move(r));
    }
  }
  for (auto& r : own) cfg.rules.push_back(std::move(r));
}

}  // namespace

const std::vector<rules::Variable>& rule_variables() {
  static const std::vector<rules::Variable> kVariables = [] {
    const auto kinds = kind_measures();
    return rules::variables(kinds);
  }();
  return kVariables;
}

std::string rule_variables_markdown() {
  std::string out = "| name | type | unit | meaning |\n|---|---|---|---|\n";
  for (const auto& v : rule_variables()) {
    const char* type = v.type == rules::ValueType::kNumber ? "number"
                       : v.type == rules::ValueType::kBool ? "bool"
                                                           : "string";
    out += "| `" + v.name + "` | " + type + " | " + v.unit + " | " + v.help + " |\n";
  }
  return out;
}

void parse_fleet(TableReader& root, Config& cfg, Errors& errors) {
  const toml::table* t = root.table("fleet");
  if (!t) return;
  TableReader r(*t, "fleet", errors);
  fleet::FleetSettings& f = cfg.fleet;
  f.enabled = true;
  const auto servers = r.strings("servers", true);
  if (servers) f.servers = *servers;
  if (auto v = r.string("name", false)) f.name = *v;
  if (auto v = r.string("credentials_file", false)) f.credentials_file = *v;
  if (auto v = r.string("user", false)) f.user = *v;
  if (auto v = read_secret(r, "password", false, false)) f.password = *v;
  if (auto v = read_secret(r, "token", false, false)) f.token = *v;
  if (auto v = r.string("tls_ca_file", false)) f.tls_ca_file = *v;
  if (auto v = r.string("tls_cert_file", false)) f.tls_cert_file = *v;
  if (auto v = r.string("tls_key_file", false)) f.tls_key_file = *v;
  if (auto v = r.integer("quorum", 0, 1000, false)) f.quorum = static_cast<int>(*v);
  if (auto v = r.integer("replicas", 0, 5, false)) f.replicas = static_cast<int>(*v);
  if (auto d = r.duration("heartbeat", false)) f.heartbeat = *d;
  if (auto d = r.duration("lease", false)) f.lease = *d;
  if (auto d = r.duration("confirm_timeout", false)) f.confirm_timeout = *d;
  // The library's own checks ("key: what"), pointed at the key they name.
  for (const auto& e : fleet::validate(f)) {
    const auto colon = e.find(": ");
    std::string key = colon == std::string::npos ? "" : e.substr(0, colon);
    const auto cut = key.find_first_of("[ ,/");
    if (cut != std::string::npos) key.resize(cut);  // "servers[1]", "user and password": keep the whole text
    if (key == "servers" && !servers) continue;     // already reported as missing
    r.error(key, cut == std::string::npos && colon != std::string::npos ? e.substr(colon + 2) : e);
  }
  r.report_unknown_keys();
}

ConfigResult parse_config(std::string_view text, const std::string& file_name) {
  ConfigResult result;
  Errors errors(file_name, text);
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(file_name));
  } catch (const toml::parse_error& e) {
    errors.at(e.source(), "", "syntax error: " + std::string(e.description()));
    result.errors = std::move(errors.list());
    return result;
  }
  Config cfg;
  TableReader r(root, "", errors);
  parse_agent(r, cfg, errors);
  parse_defaults(r, cfg, errors);
  parse_targets(r, cfg, errors);
  parse_rules(r, cfg, errors);
  parse_incidents(r, cfg, errors);
  parse_notify(r, cfg, errors);
  parse_api_and_status(r, cfg, errors);
  parse_fleet(r, cfg, errors);
  r.report_unknown_keys();
  result.warnings = std::move(errors.warnings());
  if (!errors.list().empty()) {
    result.errors = std::move(errors.list());
    std::stable_sort(result.errors.begin(), result.errors.end(), [](const ConfigError& a, const ConfigError& b) {
      return std::tie(a.line, a.column) < std::tie(b.line, b.column);
    });
    return result;
  }
  result.config = std::move(cfg);
  return result;
}

ConfigResult load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ConfigResult r;
    r.errors.push_back({path, 0, 0, "", std::string("cannot read config file: ") + std::strerror(errno)});
    return r;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return parse_config(buf.str(), path);
}

}  // namespace nightshift
