#include "serve/api.h"
#include "nightshift/json_text.h"

#include <openssl/crypto.h>

#include <atomic>
#include <chrono>
#include <future>

namespace nightshift {

namespace {
using nlohmann::json;
constexpr auto kReactorWait = std::chrono::seconds(5);

HttpResponse ok_json(const json& j, int status = 200) {
  HttpResponse r = HttpResponse::json(status, json_text(j, 2) + "\n");
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

HttpResponse from_result(const Result<json>& r, int success_status = 200) {
  if (r.ok()) return ok_json(r.value(), success_status);
  switch (r.error().code) {
    case ErrorCode::kNotFound: return api_error(404, r.error().message);
    case ErrorCode::kInvalidArgument: return api_error(400, r.error().message);
    case ErrorCode::kLimitReached: return api_error(409, r.error().message);
    case ErrorCode::kUnavailable: return api_error(409, r.error().message);  // as before the codes split
    case ErrorCode::kUnsupportedMediaType: return api_error(415, r.error().message);
    default: return api_error(500, r.error().message);
  }
}

// The body as a JSON object, or the 4xx that says why not.
Result<json> parse_body(const HttpRequest& req) {
  const std::string type = req.header("content-type");
  if (!req.body.empty() && type.rfind("application/json", 0) != 0) {
    return Error::unsupported_media_type("send Content-Type: application/json");
  }
  if (req.body.empty()) return json::object();
  try {
    json j = json::parse(req.body);
    if (!j.is_object()) return Error::invalid("expected a JSON object");
    return j;
  } catch (const json::parse_error& e) {
    return Error::invalid("malformed JSON at byte " + std::to_string(e.byte) + ": " +
                          std::string(e.what()).substr(std::string(e.what()).find(':') + 2));
  }
}

Result<std::string> string_field(const json& j, const char* key, bool required, std::size_t max) {
  if (!j.contains(key)) {
    if (required) return Error::invalid(std::string(key) + ": required");
    return std::string();
  }
  if (!j[key].is_string()) return Error::invalid(std::string(key) + ": expected a string");
  std::string v = j[key].get<std::string>();
  if (v.size() > max) return Error::invalid(std::string(key) + ": longer than " + std::to_string(max) + " characters");
  for (unsigned char c : v) {
    if (c < 0x20 && c != '\n' && c != '\t') return Error::invalid(std::string(key) + ": control characters are not allowed");
  }
  return v;
}

Status only_fields(const json& j, std::initializer_list<const char*> allowed) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || it.key() == a;
    if (!ok) return Error::invalid("unknown field \"" + it.key() + "\"");
  }
  return {};
}
}  // namespace

bool same_secret(const std::string& a, const std::string& b) {
  // Compare equal lengths always, so the length check leaks nothing either.
  const std::string& other = a.size() == b.size() ? b : a;
  const bool equal = CRYPTO_memcmp(a.data(), other.data(), a.size()) == 0;
  return equal && a.size() == b.size();
}

HttpResponse api_error(int status, const std::string& message) {
  HttpResponse r = HttpResponse::json(status, json_text(json{{"error", message}}) + "\n");
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

Api::Api(Reactor& reactor, ApiBackend backend) : reactor_(reactor), backend_(std::move(backend)) {}

void Api::configure(ApiSettings settings) {
  std::lock_guard<std::mutex> lock(mu_);
  settings_ = std::move(settings);
}

void Api::register_routes(HttpServer& http) {
  http.route("/api/v1/incidents", [this](const HttpRequest& r) { return incidents(r); }, {"GET"});
  http.route_prefix("/api/v1/incidents/", [this](const HttpRequest& r) { return incident_item(r); }, {"GET", "POST"});
  http.route("/api/v1/silences", [this](const HttpRequest& r) { return silences(r); }, {"GET", "POST"});
  http.route_prefix("/api/v1/silences/", [this](const HttpRequest& r) { return silence_item(r); }, {"GET", "DELETE"});
  http.route("/api/v1/targets", [this](const HttpRequest& r) { return targets(r); }, {"GET"});
}

std::optional<HttpResponse> Api::authorize(const HttpRequest& req, bool mutation) const {
  std::string token;
  bool public_read;
  {
    std::lock_guard<std::mutex> lock(mu_);
    token = settings_.token;
    public_read = settings_.public_read;
  }
  if (!mutation && (public_read || token.empty())) return std::nullopt;
  if (mutation && token.empty()) {
    return api_error(403, "the operator API is read-only here: set [api] token_file to allow changes");
  }
  const std::string auth = req.header("authorization");
  if (auth.empty()) {
    HttpResponse r = api_error(401, "missing bearer token (Authorization: Bearer <token>)");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"nightshift\"");
    return r;
  }
  const std::string prefix = "Bearer ";
  if (auth.size() <= prefix.size() || auth.compare(0, prefix.size(), prefix) != 0 ||
      !same_secret(auth.substr(prefix.size()), token)) {
    return api_error(403, "wrong token");
  }
  return std::nullopt;
}

HttpResponse Api::on_reactor(std::function<HttpResponse()> work) {
  auto promise = std::make_shared<std::promise<HttpResponse>>();
  std::future<HttpResponse> done = promise->get_future();
  reactor_.post([promise, work = std::move(work)] { promise->set_value(work()); });
  if (done.wait_for(kReactorWait) != std::future_status::ready) {
    return api_error(503, "the agent did not answer within 5 s; try again");
  }
  return done.get();
}

HttpResponse Api::on_reactor_async(std::function<void(std::function<void(HttpResponse)>)> work) {
  auto promise = std::make_shared<std::promise<HttpResponse>>();
  auto answered = std::make_shared<std::atomic<bool>>(false);
  std::future<HttpResponse> done = promise->get_future();
  reactor_.post([promise, answered, work = std::move(work)] {
    work([promise, answered](HttpResponse r) {
      if (!answered->exchange(true)) promise->set_value(std::move(r));
    });
  });
  if (done.wait_for(kReactorWait) != std::future_status::ready) {
    return api_error(503, "the agent did not answer within 5 s; try again");
  }
  return done.get();
}

HttpResponse Api::incidents(const HttpRequest& req) {
  if (auto denied = authorize(req, false)) return *denied;
  const std::string status = req.param("status");
  if (!status.empty() && status != "open" && status != "resolved") {
    return api_error(400, "status: expected \"open\" or \"resolved\", found \"" + status + "\"");
  }
  return on_reactor([this, status] { return ok_json(backend_.list_incidents(status)); });
}

HttpResponse Api::incident_item(const HttpRequest& req) {
  // /api/v1/incidents/{id}[/action]
  const std::string rest = req.path.substr(std::string("/api/v1/incidents/").size());
  const std::size_t slash = rest.find('/');
  const std::string id = rest.substr(0, slash);
  const std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (id.empty() || id.size() > 64) return api_error(404, "no such incident");
  if (req.method == "GET") {
    if (!action.empty()) return api_error(404, "no such resource: " + action);
    if (auto denied = authorize(req, false)) return *denied;
    return on_reactor([this, id] { return from_result(backend_.get_incident(id)); });
  }
  if (action != "ack" && action != "notes" && action != "resolve") {
    return api_error(404, "no such action \"" + action + "\": use ack, notes or resolve");
  }
  if (auto denied = authorize(req, true)) return *denied;
  auto body = parse_body(req);
  if (!body.ok()) {
    if (body.error().code == ErrorCode::kUnsupportedMediaType) return api_error(415, body.error().message);
    return api_error(400, body.error().message);
  }
  const json& j = *body;
  if (action == "notes") {
    if (Status s = only_fields(j, {"text", "public", "by"}); !s.ok()) return api_error(400, s.error().message);
    auto text = string_field(j, "text", true, 4000);
    if (!text.ok()) return api_error(400, text.error().message);
    if (text->empty()) return api_error(400, "text: must not be empty");
    if (j.contains("public") && !j["public"].is_boolean()) return api_error(400, "public: expected true or false");
    const bool is_public = j.value("public", false);
    auto by = string_field(j, "by", false, 200);
    if (!by.ok()) return api_error(400, by.error().message);
    return on_reactor_async([this, id, t = *text, is_public, b = *by](std::function<void(HttpResponse)> answer) {
      backend_.add_note(id, t, is_public, b, [answer](Result<json> r) { answer(from_result(r, 201)); });
    });
  }
  if (Status s = only_fields(j, {"by"}); !s.ok()) return api_error(400, s.error().message);
  auto by = string_field(j, "by", false, 200);
  if (!by.ok()) return api_error(400, by.error().message);
  if (action == "ack") {
    return on_reactor_async([this, id, b = *by](std::function<void(HttpResponse)> answer) {
      backend_.acknowledge(id, b, [answer](Result<json> r) { answer(from_result(r)); });
    });
  }
  return on_reactor_async([this, id, b = *by](std::function<void(HttpResponse)> answer) {
    backend_.resolve(id, b, [answer](Result<json> r) { answer(from_result(r)); });
  });
}

HttpResponse Api::silences(const HttpRequest& req) {
  if (req.method == "GET") {
    if (auto denied = authorize(req, false)) return *denied;
    return on_reactor([this] { return ok_json(backend_.list_silences()); });
  }
  if (auto denied = authorize(req, true)) return *denied;
  auto body = parse_body(req);
  if (!body.ok()) {
    if (body.error().code == ErrorCode::kUnsupportedMediaType) return api_error(415, body.error().message);
    return api_error(400, body.error().message);
  }
  return on_reactor([this, j = *body] { return from_result(backend_.add_silence(j), 201); });
}

HttpResponse Api::silence_item(const HttpRequest& req) {
  const std::string id = req.path.substr(std::string("/api/v1/silences/").size());
  if (id.empty() || id.size() > 64 || id.find('/') != std::string::npos) return api_error(404, "no such silence");
  if (req.method == "GET") {
    if (auto denied = authorize(req, false)) return *denied;
    return on_reactor([this, id] {
      json all = backend_.list_silences();
      for (const auto& s : all) {
        if (s.value("id", "") == id) return ok_json(s);
      }
      return api_error(404, "no such silence: " + id);
    });
  }
  if (auto denied = authorize(req, true)) return *denied;
  return on_reactor([this, id] { return from_result(backend_.remove_silence(id)); });
}

HttpResponse Api::targets(const HttpRequest& req) {
  if (auto denied = authorize(req, false)) return *denied;
  return on_reactor([this] { return ok_json(backend_.list_targets()); });
}

}  // namespace nightshift
