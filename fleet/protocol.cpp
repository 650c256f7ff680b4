#include "fleet/protocol.h"
#include "nightshift/json_text.h"

#include <cstdio>
#include <nlohmann/json.hpp>

namespace nightshift::fleet {

using nlohmann::json;

namespace {

// Reads fields of one JSON object; the first error wins and names its path.
class Fields {
 public:
  Fields(const json& j, std::string path, std::string* error) : j_(j), path_(std::move(path)), error_(error) {
    if (!j_.is_object()) fail("", "expected an object");
  }

  std::string str(const char* key, bool required = true) {
    const json* v = get(key, required);
    if (!v) return {};
    if (!v->is_string()) return fail(key, "expected a string"), std::string();
    return v->get<std::string>();
  }
  std::uint64_t u64(const char* key, bool required = true) {
    const json* v = get(key, required);
    if (!v) return 0;
    if (!v->is_number_unsigned()) return fail(key, "expected a non-negative integer"), 0;
    return v->get<std::uint64_t>();
  }
  std::int64_t i64(const char* key, bool required = true) {
    const json* v = get(key, required);
    if (!v) return 0;
    if (!v->is_number_integer()) return fail(key, "expected an integer"), 0;
    return v->get<std::int64_t>();
  }
  bool boolean(const char* key, bool required = true, bool fallback = false) {
    const json* v = get(key, required);
    if (!v) return fallback;
    if (!v->is_boolean()) return fail(key, "expected true or false"), fallback;
    return v->get<bool>();
  }
  // Calls `each(element, path)` for every element of an array field.
  template <typename F>
  void array(const char* key, F each) {
    const json* v = get(key, false);
    if (!v) return;
    if (!v->is_array()) return fail(key, "expected an array");
    for (std::size_t i = 0; i < v->size() && error_->empty(); ++i) {
      each((*v)[i], at(key) + "[" + std::to_string(i) + "]");
    }
  }
  std::vector<std::string> strings(const char* key) {
    std::vector<std::string> out;
    array(key, [&](const json& e, const std::string& path) {
      if (!e.is_string()) {
        if (error_->empty()) *error_ = path + ": expected a string";
        return;
      }
      out.push_back(e.get<std::string>());
    });
    return out;
  }
  bool ok() const { return error_->empty(); }
  bool has(const char* key) const { return j_.is_object() && j_.contains(key); }

 private:
  std::string at(const char* key) const { return path_.empty() ? key : path_ + "." + key; }
  const json* get(const char* key, bool required) {
    if (!error_->empty() || !j_.is_object()) return nullptr;
    auto it = j_.find(key);
    if (it == j_.end()) {
      if (required) fail(key, "missing");
      return nullptr;
    }
    return &*it;
  }
  void fail(const char* key, const std::string& what) {
    if (!error_->empty()) return;
    const std::string where = *key ? at(key) : (path_.empty() ? std::string("message") : path_);
    *error_ = where + ": " + what;
  }

  const json& j_;
  std::string path_;
  std::string* error_;
};

Result<json> parse(std::string_view bytes) {
  json j = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error::invalid("not JSON");
  return j;
}

json to_json(const Verdict& v) {
  json j = {{"target", v.target}, {"probe", v.probe}, {"ok", v.ok}, {"since_ms", v.since_ms}};
  if (!v.reason.empty()) j["reason"] = v.reason;
  if (!v.detail.empty()) j["detail"] = v.detail;
  return j;
}

Verdict verdict_from(const json& j, const std::string& path, std::string* error) {
  Fields f(j, path, error);
  Verdict v;
  v.target = f.str("target");
  v.probe = f.str("probe");
  v.ok = f.boolean("ok");
  v.reason = f.str("reason", false);
  v.detail = f.str("detail", false);
  v.since_ms = f.i64("since_ms", false);
  if (f.ok() && v.target.empty()) *error = path + ".target: empty";
  return v;
}

json verdicts_json(const std::vector<Verdict>& vs) {
  json a = json::array();
  for (const auto& v : vs) a.push_back(to_json(v));
  return a;
}

std::vector<Verdict> verdicts_from(Fields& f, std::string* error) {
  std::vector<Verdict> out;
  f.array("verdicts", [&](const json& e, const std::string& path) { out.push_back(verdict_from(e, path, error)); });
  return out;
}

template <typename T>
Result<T> done(T value, const std::string& error) {
  if (!error.empty()) return Error::invalid(error);
  return value;
}

}  // namespace

std::string encode(const Observation& o) {
  json j = {{"agent", o.agent}, {"version", o.version}, {"sent_ms", o.sent_ms}, {"full", o.full},
            {"verdicts", verdicts_json(o.verdicts)}};
  if (o.parts != 1) {
    j["part"] = o.part;
    j["parts"] = o.parts;
  }
  return json_text(j);
}

std::string encode(const Heartbeat& h) {
  return json{{"agent", h.agent},       {"version", h.version},   {"sent_ms", h.sent_ms},
              {"interval_ms", h.interval_ms}, {"watching", h.watching}, {"down", h.down},
              {"id_tag", h.id_tag}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string encode(const ConfirmRequest& r) {
  return json_text(json{{"from", r.from}, {"id", r.id}, {"target", r.target}, {"probe", r.probe}});
}

std::string encode(const ConfirmReply& r) {
  return json_text(json{{"agent", r.agent}, {"id", r.id}, {"verdicts", verdicts_json(r.verdicts)}});
}

std::string encode(const FleetIncident& i) {
  json impacted = json::array();
  for (const auto& t : i.impacted) {
    impacted.push_back({{"target", t.target}, {"probe", t.probe}, {"rule", t.rule}, {"vantages", t.vantages},
                        {"active", t.active}});
  }
  json notes = json::array();
  for (const auto& n : i.notes) {
    notes.push_back(
        {{"at_ms", n.at_ms}, {"author", n.author}, {"text", n.text}, {"public", n.is_public}, {"agent", n.agent}});
  }
  return json{{"key", i.key},
              {"id", i.id},
              {"title", i.title},
              {"severity", to_string(i.severity)},
              {"scope", i.scope},
              {"open", i.open},
              {"acknowledged", i.acknowledged},
              {"acknowledged_by", i.acknowledged_by},
              {"acknowledged_ms", i.acknowledged_ms},
              {"resolved_by", i.resolved_by},
              {"notes", notes},
              {"declared_by", i.declared_by},
              {"declared_ms", i.declared_ms},
              {"resolved_ms", i.resolved_ms},
              {"impacted", impacted},
              {"flapping", i.flapping},
              {"flapping_ms", i.flapping_ms},
              {"seq", i.seq},
              {"last_event", i.last_event},
              {"notified", i.notified}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<Observation> decode_observation(std::string_view bytes) {
  auto j = parse(bytes);
  if (!j.ok()) return j.error();
  std::string error;
  Fields f(*j, "", &error);
  Observation o;
  o.agent = f.str("agent");
  o.version = f.u64("version");
  o.sent_ms = f.i64("sent_ms");
  o.full = f.boolean("full", false);
  o.part = f.u64("part", false);
  o.parts = f.has("parts") ? f.u64("parts") : 1;
  o.verdicts = verdicts_from(f, &error);
  if (error.empty()) error = check_name("agent", o.agent);
  if (error.empty() && (o.parts == 0 || o.part >= o.parts)) error = "part: expected below parts (" + std::to_string(o.parts) + ")";
  return done(std::move(o), error);
}

Result<Heartbeat> decode_heartbeat(std::string_view bytes) {
  auto j = parse(bytes);
  if (!j.ok()) return j.error();
  std::string error;
  Fields f(*j, "", &error);
  Heartbeat h;
  h.agent = f.str("agent");
  h.version = f.u64("version");
  h.sent_ms = f.i64("sent_ms");
  h.interval_ms = f.i64("interval_ms");
  h.watching = f.u64("watching", false);
  h.down = f.u64("down", false);
  h.id_tag = f.str("id_tag", false);
  if (error.empty()) error = check_name("agent", h.agent);
  if (error.empty() && h.interval_ms <= 0) error = "interval_ms: must be positive";
  return done(std::move(h), error);
}

Result<ConfirmRequest> decode_confirm_request(std::string_view bytes) {
  auto j = parse(bytes);
  if (!j.ok()) return j.error();
  std::string error;
  Fields f(*j, "", &error);
  ConfirmRequest r;
  r.from = f.str("from");
  r.id = f.u64("id");
  r.target = f.str("target");
  r.probe = f.str("probe", false);
  if (error.empty()) error = check_name("from", r.from);
  return done(std::move(r), error);
}

Result<ConfirmReply> decode_confirm_reply(std::string_view bytes) {
  auto j = parse(bytes);
  if (!j.ok()) return j.error();
  std::string error;
  Fields f(*j, "", &error);
  ConfirmReply r;
  r.agent = f.str("agent");
  r.id = f.u64("id");
  r.verdicts = verdicts_from(f, &error);
  if (error.empty()) error = check_name("agent", r.agent);
  return done(std::move(r), error);
}

Result<FleetIncident> decode_incident(std::string_view bytes) {
  auto j = parse(bytes);
  if (!j.ok()) return j.error();
  std::string error;
  Fields f(*j, "", &error);
  FleetIncident i;
  i.key = f.str("key");
  i.id = f.str("id");
  i.title = f.str("title", false);
  // Absent in records of agents before the field existed: they were critical.
  if (const std::string severity = f.str("severity", false); !severity.empty()) {
    if (auto s = parse_severity(severity)) {
      i.severity = *s;
    } else if (error.empty()) {
      error = "severity: unknown value \"" + severity + "\"";
    }
  }
  if (const json* scope = j->is_object() && j->contains("scope") ? &(*j)["scope"] : nullptr; scope && error.empty()) {
    if (!scope->is_object()) error = "scope: expected an object";
    for (auto it = scope->begin(); error.empty() && it != scope->end(); ++it) {
      if (!it->is_string()) {
        error = "scope." + it.key() + ": expected a string";
      } else {
        i.scope[it.key()] = it->get<std::string>();
      }
    }
  }
  i.open = f.boolean("open");
  i.acknowledged = f.boolean("acknowledged", false);
  i.acknowledged_by = f.str("acknowledged_by", false);
  i.acknowledged_ms = f.i64("acknowledged_ms", false);
  i.resolved_by = f.str("resolved_by", false);
  f.array("notes", [&](const json& e, const std::string& path) {
    Fields n(e, path, &error);
    FleetNote note;
    note.at_ms = n.i64("at_ms", false);
    note.author = n.str("author", false);
    note.text = n.str("text");
    note.is_public = n.boolean("public", false);
    note.agent = n.str("agent", false);
    i.notes.push_back(std::move(note));
  });
  i.declared_by = f.str("declared_by", false);
  i.declared_ms = f.i64("declared_ms", false);
  i.resolved_ms = f.i64("resolved_ms", false);
  f.array("impacted", [&](const json& e, const std::string& path) {
    Fields t(e, path, &error);
    FleetImpact impact;
    impact.target = t.str("target");
    impact.probe = t.str("probe", false);
    impact.rule = t.str("rule", false);
    impact.vantages = t.strings("vantages");
    impact.active = t.boolean("active", false, true);
    i.impacted.push_back(std::move(impact));
  });
  i.flapping = f.boolean("flapping", false);
  i.flapping_ms = f.i64("flapping_ms", false);
  i.seq = f.u64("seq");
  i.last_event = f.str("last_event", false);
  i.notified = f.u64("notified", false);
  if (error.empty() && i.id.empty()) error = "id: empty";
  if (error.empty() && i.notified > i.seq) error = "notified: ahead of seq";
  return done(std::move(i), error);
}

std::string check_token(std::string_view what, std::string_view value) {
  if (value.empty() || value.size() > 64) {
    return std::string(what) + ": expected 1 to 64 characters, found " + std::to_string(value.size());
  }
  for (char c : value) {
    const bool fine = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!fine) return std::string(what) + ": \"" + std::string(value) + "\" may hold only letters, digits, '_' and '-'";
  }
  return {};
}

std::string check_name(std::string_view what, std::string_view value) {
  if (value.empty() || value.size() > 253) {
    return std::string(what) + ": expected 1 to 253 characters, found " + std::to_string(value.size());
  }
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f) return std::string(what) + ": holds a space or control character";
  }
  return {};
}

std::string subject_token(std::string_view name) {
  std::string out(name.substr(0, 64));
  for (char& c : out) {
    const bool fine = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!fine) c = '_';
  }
  return out.empty() ? "_" : out;
}

std::string scope_key(std::string_view scope_text) {
  // FNV-1a 64: the same key on every agent, whatever its standard library.
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : scope_text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "s-%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace nightshift::fleet
