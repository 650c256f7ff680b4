// HttpServer: the one embedded HTTP server (civetweb) for /metrics, /healthz,
// the status page and the operator API, on one listen address.
//
// Routes are exact paths or path prefixes ("/api/v1/incidents/"), each with the
// methods it accepts (GET implies HEAD): an unknown path is 404, a known path
// with another method 405 with an Allow header. Request bodies are read up to
// `max_body` bytes (larger: 413, never buffered). Handlers run on civetweb's
// worker threads: they must only touch thread-safe state (the prometheus
// registry, atomics, immutable snapshots) or post work to the reactor.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nightshift/result.h"

class CivetServer;
class CivetHandler;

namespace nightshift {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...; HEAD arrives as "GET"
  std::string path;    // decoded, without the query
  std::string query;   // raw, without '?'
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  std::string remote;  // peer address

  // "" when absent. `name` lowercase.
  std::string header(const std::string& name) const;
  // A query parameter's (decoded) value, or "".
  std::string param(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // A body shared by many responses (a pre-rendered page): used when set,
  // without a copy per request.
  std::shared_ptr<const std::string> shared_body;
  std::vector<std::pair<std::string, std::string>> headers;

  static HttpResponse text(int status, std::string body);
  static HttpResponse json(int status, std::string body);
};

struct HttpSettings {
  int threads = 128;                // civetweb holds one thread per open (keep-alive) connection
  int keep_alive_ms = 2000;         // idle keep-alive connections give their thread back after this
  int request_timeout_ms = 10000;
  std::size_t max_body = 64 * 1024;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  HttpServer();
  ~HttpServer();

  // Register before start(). Exact paths win over prefixes; the longest prefix wins.
  void route(const std::string& path, Handler handler, std::vector<std::string> methods = {"GET"});
  void route_prefix(const std::string& prefix, Handler handler, std::vector<std::string> methods = {"GET"});

  // Binds "ADDRESS:PORT" (port 0 picks a free one) and starts serving.
  Status start(const std::string& listen, HttpSettings settings = {});
  void stop();
  // The bound port, after start().
  int port() const;

  struct Route {
    Handler handler;
    std::vector<std::string> methods;
  };
  const std::map<std::string, Route>& routes() const { return routes_; }

 private:
  class Dispatcher;
  std::map<std::string, Route> routes_;
  std::map<std::string, Route> prefixes_;
  HttpSettings settings_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<CivetServer> server_;
};

// Percent-decoding of a URL component ('+' stays '+'). Pure.
std::string url_decode(const std::string& text);

}  // namespace nightshift
