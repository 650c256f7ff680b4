#include "incidents/silences.h"

#include <algorithm>
#include <cctype>
#include <random>
#include <set>

#include "incidents/incident_json.h"

namespace nightshift {

namespace {
bool valid_label(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

std::string new_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string id = "sil-";
  std::uint64_t v = rng();
  for (int i = 0; i < 12; ++i, v >>= 4) id += hex[v & 15];
  return id;
}

std::vector<std::map<std::string, std::string>> label_sets(const Incident& inc) {
  std::map<std::string, std::string> base = inc.scope;
  base["severity"] = std::string(to_string(inc.severity));
  base["incident"] = inc.id;
  std::vector<std::map<std::string, std::string>> out;
  for (const auto& t : inc.impacted) {
    if (!t.active) continue;
    auto labels = base;
    labels["target"] = t.target;
    labels["probe"] = t.probe;
    labels["rule"] = t.rule;
    out.push_back(std::move(labels));
  }
  if (out.empty()) out.push_back(base);
  return out;
}
}  // namespace

bool Matcher::matches(const std::map<std::string, std::string>& labels) const {
  auto it = labels.find(label);
  const std::string v = it == labels.end() ? "" : it->second;
  switch (op) {
    case Op::kEqual: return v == value;
    case Op::kNotEqual: return v != value;
    case Op::kRegex: return std::regex_match(v, *regex);
    case Op::kNotRegex: return !std::regex_match(v, *regex);
  }
  return false;
}

std::string Matcher::to_string() const {
  static const char* ops[] = {"=", "!=", "=~", "!~"};
  return label + ops[static_cast<int>(op)] + value;
}

Result<Matcher> parse_matcher(const std::string& text) {
  const std::size_t pos = text.find_first_of("=!");
  if (pos == std::string::npos || pos == 0) {
    return Error::invalid("matcher \"" + text + "\": expected label=value, label!=value, label=~regex or label!~regex");
  }
  Matcher m;
  m.label = text.substr(0, pos);
  std::string rest = text.substr(pos);
  if (rest.rfind("=~", 0) == 0) {
    m.op = Matcher::Op::kRegex;
    m.value = rest.substr(2);
  } else if (rest.rfind("!~", 0) == 0) {
    m.op = Matcher::Op::kNotRegex;
    m.value = rest.substr(2);
  } else if (rest.rfind("!=", 0) == 0) {
    m.op = Matcher::Op::kNotEqual;
    m.value = rest.substr(2);
  } else if (rest[0] == '=') {
    m.value = rest.substr(1);
  } else {
    return Error::invalid("matcher \"" + text + "\": expected =, !=, =~ or !~ after the label");
  }
  if (!valid_label(m.label)) {
    return Error::invalid("matcher \"" + text + "\": \"" + m.label + "\" is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)");
  }
  if (m.value.size() > 1024) return Error::invalid("matcher \"" + m.label + "\": value longer than 1024 characters");
  if (m.op == Matcher::Op::kRegex || m.op == Matcher::Op::kNotRegex) {
    try {
      m.regex = std::make_shared<const std::regex>(m.value, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return Error::invalid("matcher \"" + text + "\": bad regular expression: " + e.what());
    }
  }
  return m;
}

bool Silence::covers(const Incident& incident) const {
  for (const auto& labels : label_sets(incident)) {
    bool all = true;
    for (const auto& m : matchers) {
      if (!m.matches(labels)) {
        all = false;
        break;
      }
    }
    if (all) return true;
  }
  return false;
}

nlohmann::json to_json(const Silence& s) {
  nlohmann::json matchers = nlohmann::json::array();
  for (const auto& m : s.matchers) matchers.push_back(m.to_string());
  return {{"id", s.id},
          {"matchers", matchers},
          {"starts_at", format_time(s.starts_at)},
          {"ends_at", format_time(s.ends_at)},
          {"author", s.author},
          {"comment", s.comment},
          {"created_at", format_time(s.created_at)}};
}

Result<Silence> silence_from_json(const nlohmann::json& j, SystemTime now) {
  if (!j.is_object()) return Error::invalid("expected a JSON object");
  static const std::set<std::string> known = {"id", "matchers", "starts_at", "ends_at", "duration_seconds",
                                              "author", "comment", "created_at"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!known.count(it.key())) return Error::invalid("unknown field \"" + it.key() + "\"");
  }
  Silence s;
  s.created_at = now;
  if (!j.contains("matchers") || !j["matchers"].is_array() || j["matchers"].empty()) {
    return Error::invalid("matchers: expected a non-empty array of strings like \"site=ams1\"");
  }
  if (j["matchers"].size() > 32) return Error::invalid("matchers: at most 32");
  for (const auto& m : j["matchers"]) {
    if (!m.is_string()) return Error::invalid("matchers: expected strings like \"site=ams1\"");
    auto parsed = parse_matcher(m.get<std::string>());
    if (!parsed.ok()) return parsed.error();
    s.matchers.push_back(std::move(parsed.value()));
  }
  auto string_field = [&](const char* key, std::string& out, std::size_t max) -> Status {
    if (!j.contains(key)) return {};
    if (!j[key].is_string()) return Error::invalid(std::string(key) + ": expected a string");
    out = j[key].get<std::string>();
    if (out.size() > max) return Error::invalid(std::string(key) + ": longer than " + std::to_string(max) + " characters");
    return {};
  };
  if (Status st = string_field("id", s.id, 64); !st.ok()) return st.error();
  if (Status st = string_field("author", s.author, 200); !st.ok()) return st.error();
  if (Status st = string_field("comment", s.comment, 2000); !st.ok()) return st.error();
  auto time_field = [&](const char* key, SystemTime& out) -> Status {
    if (!j.contains(key)) return {};
    if (!j[key].is_string()) return Error::invalid(std::string(key) + ": expected a time like 2026-11-24T03:00:00.000Z");
    auto t = parse_time(j[key].get<std::string>());
    if (!t.ok()) return Error::invalid(std::string(key) + ": " + t.error().message);
    out = *t;
    return {};
  };
  s.starts_at = now;
  if (Status st = time_field("starts_at", s.starts_at); !st.ok()) return st.error();
  if (Status st = time_field("created_at", s.created_at); !st.ok()) return st.error();
  if (j.contains("ends_at")) {
    if (Status st = time_field("ends_at", s.ends_at); !st.ok()) return st.error();
  } else if (j.contains("duration_seconds")) {
    if (!j["duration_seconds"].is_number() || j["duration_seconds"].get<double>() <= 0 ||
        j["duration_seconds"].get<double>() > 366.0 * 86400) {
      return Error::invalid("duration_seconds: expected a number of seconds from 1 to one year");
    }
    s.ends_at = s.starts_at + std::chrono::duration_cast<SystemTime::duration>(
                                  std::chrono::duration<double>(j["duration_seconds"].get<double>()));
  } else {
    return Error::invalid("give ends_at or duration_seconds");
  }
  if (s.ends_at <= s.starts_at) return Error::invalid("ends_at must be after starts_at");
  return s;
}

Result<Silence> SilenceSet::add(Silence s, SystemTime now) {
  if (s.matchers.empty()) return Error::invalid("a silence needs at least one matcher");
  if (s.ends_at <= now) return Error::invalid("ends_at is in the past");
  if (s.ends_at <= s.starts_at) return Error::invalid("ends_at must be after starts_at");
  if (silences_.size() >= 10000) return Error::limit_reached("too many silences (10000)");
  if (s.id.empty()) s.id = new_id();
  silences_[s.id] = s;
  return s;
}

bool SilenceSet::remove(const std::string& id) { return silences_.erase(id) > 0; }

std::vector<Silence> SilenceSet::list() const {
  std::vector<Silence> out;
  for (const auto& [id, s] : silences_) out.push_back(s);
  std::sort(out.begin(), out.end(), [](const Silence& a, const Silence& b) { return a.ends_at < b.ends_at; });
  return out;
}

std::vector<std::string> SilenceSet::expire(SystemTime now) {
  std::vector<std::string> gone;
  for (auto it = silences_.begin(); it != silences_.end();) {
    if (it->second.ends_at <= now) {
      gone.push_back(it->first);
      it = silences_.erase(it);
    } else {
      ++it;
    }
  }
  return gone;
}

bool SilenceSet::silences(const Incident& incident, SystemTime now) const {
  for (const auto& [id, s] : silences_) {
    if (s.active(now) && s.covers(incident)) return true;
  }
  return false;
}

void SilenceSet::restore(std::vector<Silence> silences) {
  for (auto& s : silences) silences_[s.id] = std::move(s);
}

}  // namespace nightshift
