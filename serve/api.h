// Operator API, version 1, JSON under /api/v1/:
//   GET    /api/v1/incidents                 open and recent incidents (?status=open|resolved)
//   GET    /api/v1/incidents/{id}
//   POST   /api/v1/incidents/{id}/ack        {"by": "alice"}
//   POST   /api/v1/incidents/{id}/notes      {"text": "...", "public": true, "by": "alice"}
//   POST   /api/v1/incidents/{id}/resolve    {"by": "alice"}
//   GET    /api/v1/silences
//   POST   /api/v1/silences                  {"matchers": ["site=ams1"], "duration_seconds": 7200, ...}
//   DELETE /api/v1/silences/{id}
//   GET    /api/v1/targets                   each target's state, failing probes, firing alerts
//
// Mutations need `Authorization: Bearer <token>` (the token from [api]
// token_file, compared in constant time); reads too unless [api] public_read.
// 401 without a token, 403 with a wrong one, 400 for bad JSON (with the byte
// offset) or bad fields, 404 for an unknown id, 413 past 64 KiB, 415 for a
// body that is not application/json, 503 if the agent's loop does not answer
// within 5 s.
//
// Handlers parse and authenticate on the HTTP worker thread, then run the
// change on the reactor thread (Reactor::post) and wait for it: every change
// to incidents happens where the rest of the agent changes them.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/http.h"
#include "nightshift/reactor.h"

namespace nightshift {

struct ApiSettings {
  std::string token;  // empty: the API is read-only (mutations answer 403)
  bool public_read = false;
};

// What the API needs from the agent; every function runs on the reactor thread.
// The incident actions answer through `reply`, at once or later on the
// reactor (a fleet incident's action waits for the fleet to record it); the
// request gets a 503 if no answer came within 5 s.
struct ApiBackend {
  using Reply = std::function<void(Result<nlohmann::json>)>;
  std::function<nlohmann::json(const std::string& status_filter)> list_incidents;
  std::function<Result<nlohmann::json>(const std::string& id)> get_incident;
  std::function<void(const std::string& id, const std::string& by, Reply reply)> acknowledge;
  std::function<void(const std::string& id, const std::string& text, bool is_public, const std::string& by,
                     Reply reply)>
      add_note;
  std::function<void(const std::string& id, const std::string& by, Reply reply)> resolve;
  std::function<nlohmann::json()> list_silences;
  std::function<Result<nlohmann::json>(const nlohmann::json& body)> add_silence;
  std::function<Result<nlohmann::json>(const std::string& id)> remove_silence;
  std::function<nlohmann::json()> list_targets;
};

class Api {
 public:
  Api(Reactor& reactor, ApiBackend backend);
  // Settings may change with a reload; any thread.
  void configure(ApiSettings settings);
  void register_routes(HttpServer& http);

 private:
  HttpResponse incidents(const HttpRequest& req);
  HttpResponse incident_item(const HttpRequest& req);
  HttpResponse silences(const HttpRequest& req);
  HttpResponse silence_item(const HttpRequest& req);
  HttpResponse targets(const HttpRequest& req);
  // An error response when the request may not proceed; nullopt when it may.
  std::optional<HttpResponse> authorize(const HttpRequest& req, bool mutation) const;
  HttpResponse on_reactor(std::function<HttpResponse()> work);
  // `work` runs on the reactor and answers through its argument, once.
  HttpResponse on_reactor_async(std::function<void(std::function<void(HttpResponse)>)> work);

  Reactor& reactor_;
  ApiBackend backend_;
  mutable std::mutex mu_;
  ApiSettings settings_;
};

// Constant-time comparison (the time does not depend on where they differ).
bool same_secret(const std::string& a, const std::string& b);
// {"error": message}
HttpResponse api_error(int status, const std::string& message);

}  // namespace nightshift
