#include "agent/cli.h"

#include <curl/curl.h>

#include <cctype>
#include <cstdlib>
#include <optional>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "config/config.h"

namespace nightshift::cli {

const char kUsage[] = R"(Operator commands (talk to a running agent's API):
  nightshift incidents [--all] [--json]         open incidents (--all: recent resolved too)
  nightshift ack ID [--by NAME]                 acknowledge: stops renotify and escalation
  nightshift note ID TEXT [--public] [--by NAME]
                                                add a timeline note; --public shows it on
                                                the status page and tells the customers
  nightshift resolve ID [--by NAME]             resolve by hand
  nightshift silence add MATCHER... (--for DURATION | --until TIME) [--comment TEXT] [--by NAME]
                                                e.g. silence add site=ams1 'target=~core-.*' --for 2h
  nightshift silence list
  nightshift silence rm ID
Common options: --url URL (default $NIGHTSHIFT_URL or http://127.0.0.1:9650),
  --token-file FILE (default $NIGHTSHIFT_TOKEN_FILE; or the token in $NIGHTSHIFT_TOKEN),
  --cacert FILE (default $NIGHTSHIFT_CACERT): the CA that signed an https:// agent's
  certificate, instead of the system's CAs
)";

namespace {
using nlohmann::json;

struct Options {
  std::string url;
  std::string token;
  std::string cacert;  // "": the system's CAs
  std::string by;
  bool all = false;
  bool as_json = false;
  bool is_public = false;
  std::string for_duration;
  std::string until;
  std::string comment;
  std::vector<std::string> positional;
};

int usage(const std::string& message) {
  std::cerr << "nightshift: " << message << "\n\n" << kUsage;
  return 2;
}

size_t append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

struct Reply {
  long status = 0;
  std::string body;
  std::string error;
};

Reply call(const Options& o, const std::string& method, const std::string& path, const std::string& body = "") {
  Reply r;
  CURL* c = curl_easy_init();
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Accept: application/json");
  if (!body.empty()) headers = curl_slist_append(headers, "Content-Type: application/json");
  const std::string auth = "Authorization: Bearer " + o.token;
  if (!o.token.empty()) headers = curl_slist_append(headers, auth.c_str());
  const std::string url = o.url + path;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 15L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!o.cacert.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, o.cacert.c_str());
  if (!body.empty()) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) r.error = curl_easy_strerror(rc);
  if (rc == CURLE_PEER_FAILED_VERIFICATION) {
    r.error += " (is the agent's certificate signed by a CA this machine trusts? give it with --cacert FILE)";
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  return r;
}

// 0 when it succeeded; else prints why and returns 1.
int check(const Options& o, const Reply& r) {
  if (!r.error.empty()) {
    std::cerr << "nightshift: cannot reach the agent at " << o.url << ": " << r.error << "\n";
    return 1;
  }
  if (r.status >= 200 && r.status < 300) return 0;
  auto j = json::parse(r.body, nullptr, false);
  std::cerr << "nightshift: the agent answered " << r.status << ": "
            << (j.is_object() && j.contains("error") ? j["error"].get<std::string>() : r.body) << "\n";
  if (r.status == 401) std::cerr << "  (give the token with --token-file or $NIGHTSHIFT_TOKEN_FILE)\n";
  return 1;
}

std::string str(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

int incidents(const Options& o) {
  Reply r = call(o, "GET", o.all ? "/api/v1/incidents" : "/api/v1/incidents?status=open");
  if (int rc = check(o, r)) return rc;
  auto list = json::parse(r.body, nullptr, false);
  if (o.as_json) {
    std::cout << list.dump(2) << "\n";
    return 0;
  }
  if (!list.is_array() || list.empty()) {
    std::cout << (o.all ? "no incidents\n" : "no open incidents\n");
    return 0;
  }
  std::cout << std::left << std::setw(18) << "ID" << std::setw(14) << "STATUS" << std::setw(10) << "SEVERITY"
            << std::setw(26) << "DECLARED" << std::setw(8) << "IMPACT" << "TITLE\n";
  for (const auto& inc : list) {
    std::size_t active = 0;
    for (const auto& t : inc["impacted"]) active += t.value("active", false) ? 1 : 0;
    std::string status = str(inc, "status");
    if (inc.value("silenced", false)) status += "*";
    std::cout << std::left << std::setw(18) << str(inc, "id") << std::setw(14) << status << std::setw(10)
              << str(inc, "severity") << std::setw(26) << str(inc, "declared_at") << std::setw(8) << active
              << str(inc, "title") << "\n";
  }
  return 0;
}

int silence(const Options& o) {
  if (o.positional.empty()) return usage("silence: add, list or rm?");
  const std::string sub = o.positional[0];
  if (sub == "list") {
    Reply r = call(o, "GET", "/api/v1/silences");
    if (int rc = check(o, r)) return rc;
    auto list = json::parse(r.body, nullptr, false);
    if (o.as_json) {
      std::cout << list.dump(2) << "\n";
      return 0;
    }
    if (!list.is_array() || list.empty()) {
      std::cout << "no silences\n";
      return 0;
    }
    for (const auto& s : list) {
      std::string matchers;
      for (const auto& m : s["matchers"]) matchers += (matchers.empty() ? "" : " ") + m.get<std::string>();
      std::cout << str(s, "id") << "  " << (s.value("active", false) ? "active " : "pending") << "  until "
                << str(s, "ends_at") << "  " << matchers << "  by " << str(s, "author") << ": " << str(s, "comment")
                << "\n";
    }
    return 0;
  }
  if (sub == "rm") {
    if (o.positional.size() != 2) return usage("silence rm ID");
    Reply r = call(o, "DELETE", "/api/v1/silences/" + o.positional[1]);
    if (int rc = check(o, r)) return rc;
    std::cout << "removed " << o.positional[1] << "\n";
    return 0;
  }
  if (sub == "add") {
    if (o.positional.size() < 2) return usage("silence add needs at least one matcher, e.g. site=ams1");
    json body;
    body["matchers"] = json::array();
    for (std::size_t i = 1; i < o.positional.size(); ++i) body["matchers"].push_back(o.positional[i]);
    if (!o.for_duration.empty()) {
      auto d = parse_duration(o.for_duration);
      if (!d.ok()) return usage("--for: " + d.error().message);
      body["duration_seconds"] = std::chrono::duration<double>(*d).count();
    } else if (!o.until.empty()) {
      body["ends_at"] = o.until;
    } else {
      return usage("silence add needs --for DURATION or --until TIME");
    }
    body["author"] = o.by;
    if (!o.comment.empty()) body["comment"] = o.comment;
    Reply r = call(o, "POST", "/api/v1/silences", body.dump());
    if (int rc = check(o, r)) return rc;
    auto s = json::parse(r.body, nullptr, false);
    std::cout << "added " << str(s, "id") << " until " << str(s, "ends_at") << "\n";
    return 0;
  }
  return usage("silence: unknown subcommand \"" + sub + "\"");
}

int incident_action(const std::string& command, const Options& o) {
  if (o.positional.empty()) return usage(command + " needs an incident ID");
  const std::string id = o.positional[0];
  json body = {{"by", o.by}};
  std::string action = command == "ack" ? "ack" : command;
  if (command == "note") {
    if (o.positional.size() < 2) return usage("note ID TEXT");
    std::string text;
    for (std::size_t i = 1; i < o.positional.size(); ++i) text += (i > 1 ? " " : "") + o.positional[i];
    body["text"] = text;
    body["public"] = o.is_public;
    action = "notes";
  }
  Reply r = call(o, "POST", "/api/v1/incidents/" + id + "/" + action, body.dump());
  if (int rc = check(o, r)) return rc;
  auto inc = json::parse(r.body, nullptr, false);
  std::cout << str(inc, "id") << " " << str(inc, "status") << ": " << str(inc, "title") << "\n";
  return 0;
}
}  // namespace

bool is_command(const std::string& name) {
  return name == "incidents" || name == "ack" || name == "note" || name == "resolve" || name == "silence";
}

int run(const std::string& command, const std::vector<std::string>& args) {
  Options o;
  const char* url = std::getenv("NIGHTSHIFT_URL");
  o.url = url && *url ? url : "http://127.0.0.1:9650";
  std::string token_file;
  if (const char* f = std::getenv("NIGHTSHIFT_TOKEN_FILE")) token_file = f;
  if (const char* t = std::getenv("NIGHTSHIFT_TOKEN")) o.token = t;
  if (const char* ca = std::getenv("NIGHTSHIFT_CACERT")) o.cacert = ca;
  if (const char* u = std::getenv("USER")) o.by = u;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const char* name) -> std::optional<std::string> {
      if (i + 1 >= args.size()) return std::nullopt;
      (void)name;
      return args[++i];
    };
    std::optional<std::string> v;
    if (a == "--url") {
      if (!(v = value("--url"))) return usage("--url needs a value");
      o.url = *v;
    } else if (a == "--token-file") {
      if (!(v = value("--token-file"))) return usage("--token-file needs a value");
      token_file = *v;
    } else if (a == "--cacert") {
      if (!(v = value("--cacert"))) return usage("--cacert needs a file");
      o.cacert = *v;
    } else if (a == "--by") {
      if (!(v = value("--by"))) return usage("--by needs a value");
      o.by = *v;
    } else if (a == "--for") {
      if (!(v = value("--for"))) return usage("--for needs a duration, e.g. 2h");
      o.for_duration = *v;
    } else if (a == "--until") {
      if (!(v = value("--until"))) return usage("--until needs a time like 2026-11-24T06:00:00.000Z");
      o.until = *v;
    } else if (a == "--comment") {
      if (!(v = value("--comment"))) return usage("--comment needs a value");
      o.comment = *v;
    } else if (a == "--all") {
      o.all = true;
    } else if (a == "--json") {
      o.as_json = true;
    } else if (a == "--public") {
      o.is_public = true;
    } else if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (a.size() > 2 && a.rfind("--", 0) == 0) {
      return usage("unknown option " + a);
    } else {
      o.positional.push_back(a);
    }
  }
  while (!o.url.empty() && o.url.back() == '/') o.url.pop_back();
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in) {
      std::cerr << "nightshift: cannot read the token file " << token_file << "\n";
      return 2;
    }
    std::ostringstream s;
    s << in.rdbuf();
    o.token = s.str();
    while (!o.token.empty() && std::isspace(static_cast<unsigned char>(o.token.back()))) o.token.pop_back();
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (command == "incidents") return incidents(o);
  if (command == "silence") return silence(o);
  return incident_action(command, o);
}

}  // namespace nightshift::cli
