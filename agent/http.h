// HttpServer: the one embedded HTTP server (civetweb) that serves /metrics,
// /healthz and, later, the status page and operator API on one listen address.
// Handlers run on civetweb's worker threads: they must only read thread-safe
// state (the prometheus registry, atomics, immutable snapshots).
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

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse()>;  // GET (and HEAD) only, for now

  HttpServer();
  ~HttpServer();

  // Register before start(). `path` is matched exactly.
  void route(const std::string& path, Handler handler);

  // Binds "ADDRESS:PORT" (port 0 picks a free one) and starts serving.
  Status start(const std::string& listen);
  void stop();
  // The bound port, after start().
  int port() const;

  const std::map<std::string, Handler>& routes() const { return routes_; }

 private:
  class Dispatcher;
  std::map<std::string, Handler> routes_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<CivetServer> server_;
};

}  // namespace nightshift
