// HttpServer: the one embedded HTTP server (libmicrohttpd) for /metrics,
// /healthz, the status page and the operator API, on one listen address.
//
// Event-driven, so a crowd of readers costs memory, not threads: one acceptor
// thread hands each connection to one of a few event threads (epoll; one per
// core, up to 4), which parse requests and answer the routes marked `inline`
// (pre-rendered snapshots: the status page, /healthz) on the spot. Every other
// route may block (the API waits up to 5 s for the reactor, /metrics renders):
// its connection is suspended, the handler runs on a small worker pool, and
// the connection resumes with the answer, so a slow handler never holds up
// the event threads. A body too large to hold whole (a /metrics scrape) is
// streamed: the worker that ran the handler goes on to produce it into a
// small buffer that the event thread sends from (chunked), so its memory is
// a few pieces whatever its size. Keep-alive and slow (trickling) clients only hold a
// connection slot; past `max_connections` new ones are closed at once.
//
// Routes are exact paths or path prefixes ("/api/v1/incidents/"), each with the
// methods it accepts (GET implies HEAD): an unknown path is 404, a known path
// with another method 405 with an Allow header. Request bodies are read up to
// `max_body` bytes (larger: 413, never buffered). Handlers run on the event or
// worker threads: they must only touch thread-safe state (the prometheus
// registry, atomics, immutable snapshots) or post work to the reactor; an
// inline handler must not block at all.
//
// HTTPS (settings.tls_cert_file/tls_key_file): libmicrohttpd's GnuTLS, with
// the certificate chosen per handshake by a callback, so reload_tls() changes
// what new connections see while the listener and open connections carry on.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "nightshift/result.h"
#include "serve/tls.h"

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

// Thrown by HttpResponse::stream's emit when the body can no longer be sent.
struct HttpStreamClosed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // A body shared by many responses (a pre-rendered page): used when set,
  // without a copy per request.
  std::shared_ptr<const std::string> shared_body;
  // A body produced while it is sent (chunked): used when set, on the worker
  // thread that ran the handler once the headers are queued. It hands its
  // pieces to `emit`, which blocks while the reader is more than a few
  // pieces behind and throws HttpStreamClosed when the reader has gone (a
  // socket that takes nothing for the idle timeout is closed), the buffer
  // has not moved for a minute (6 idle timeouts if longer) or the server
  // stops; the producer unwinds.
  using Emit = std::function<void(std::string_view piece)>;
  std::function<void(const Emit& emit)> stream;
  std::vector<std::pair<std::string, std::string>> headers;

  static HttpResponse text(int status, std::string body);
  static HttpResponse json(int status, std::string body);
};

struct HttpSettings {
  int threads = 16;                 // workers for handlers that may block (the API, /metrics)
  int event_threads = 0;            // 0: one per core, at most 4
  int idle_timeout_ms = 10000;      // a connection with no traffic for this long is closed
  std::size_t max_connections = 20000;  // further capped at half the open-files limit
  std::size_t max_body = 64 * 1024;
  // HTTPS when both are set: PEM files, the certificate (chain, the server's
  // own first) and its unencrypted private key. reload_tls() swaps in a new
  // pair without closing the listener.
  std::string tls_cert_file;
  std::string tls_key_file;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  HttpServer();
  ~HttpServer();

  // How a route's handler runs: kInline on the event thread (it must not
  // block: snapshots, counters), kWorker on the worker pool (it may block).
  enum class Dispatch { kWorker, kInline };

  // Register before start(). Exact paths win over prefixes; the longest prefix wins.
  void route(const std::string& path, Handler handler, std::vector<std::string> methods = {"GET"},
             Dispatch dispatch = Dispatch::kWorker);
  void route_prefix(const std::string& prefix, Handler handler, std::vector<std::string> methods = {"GET"},
                    Dispatch dispatch = Dispatch::kWorker);

  // Binds "ADDRESS:PORT" (port 0 picks a free one) and starts serving; with
  // TLS files in `settings`, loads and checks them first (the error names the
  // file at fault and what is wrong with it).
  Status start(const std::string& listen, HttpSettings settings = {});
  void stop();
  // Whether the server speaks HTTPS (after start()).
  bool tls() const;
  // Reads the pair again (renewed files, or other paths) and presents it to
  // every handshake from now on; connections open stay as they are. On error
  // the pair in use stays. True when the files changed, false when they hold
  // the bytes already in use. Any thread.
  Result<bool> reload_tls(const std::string& cert_file, const std::string& key_file);
  // The certificate presented now; nullopt without TLS.
  std::optional<TlsIdentityInfo> tls_identity() const;
  // The bound port, after start().
  int port() const;
  // Connections open now, and the most that may be (after start()).
  std::size_t connections() const;
  std::size_t max_connections() const;

  struct Route {
    Handler handler;
    std::vector<std::string> methods;
    Dispatch dispatch = Dispatch::kWorker;
  };
  const std::map<std::string, Route>& routes() const { return routes_; }

 private:
  struct Impl;
  friend struct Impl;
  const Route* find(const std::string& path) const;

  std::map<std::string, Route> routes_;
  std::map<std::string, Route> prefixes_;
  HttpSettings settings_;
  std::unique_ptr<Impl> impl_;
};

// Raises the soft open-files limit to the hard one; returns the limit in force.
std::size_t raise_open_files_limit();

// Percent-decoding of a URL component ('+' stays '+'). Pure.
std::string url_decode(const std::string& text);

}  // namespace nightshift
