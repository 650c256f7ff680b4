#include "serve/http.h"

#include <CivetServer.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>

namespace nightshift {

namespace {
const char* status_text(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

// civetweb gives each open connection a worker thread for as long as the
// client keeps it alive. When most workers are held that way, responses ask
// the client to close (and reconnect), so connections take turns and a new
// client is not starved by a few busy keep-alive ones.
std::atomic<int> g_open_connections{0};
std::atomic<int> g_threads{32};

int on_connection_open(const mg_connection*, void**) {
  ++g_open_connections;
  return 0;
}
void on_connection_closed(const mg_connection*) { --g_open_connections; }

void send(mg_connection* conn, const HttpResponse& r, bool with_body) {
  const std::string& body = r.shared_body ? *r.shared_body : r.body;
  const bool no_body = r.status == 304 || r.status == 204;
  std::string out;
  const bool small = body.size() <= 64 * 1024;
  out.reserve(256 + (small ? body.size() : 0));
  out += "HTTP/1.1 " + std::to_string(r.status) + " " + status_text(r.status) + "\r\n";
  if (!no_body) {
    out += "Content-Type: " + r.content_type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  out += "X-Content-Type-Options: nosniff\r\n";
  if (g_open_connections.load() * 4 >= g_threads.load() * 3) out += "Connection: close\r\n";
  for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  out += "\r\n";
  const bool send_body = with_body && !no_body && !body.empty();
  // Small bodies go out with the head in one write: one syscall, one packet.
  if (send_body && small) out += body;
  mg_write(conn, out.data(), out.size());
  if (send_body && !small) mg_write(conn, body.data(), body.size());
}

// HTTP workers run at a lower priority than the probe loop: a crowd on the
// status page must not delay probing (nice 10: about a tenth of the CPU
// weight of the reactor when both want it).
void* lower_priority(const mg_context*, int) {
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 10);
  return nullptr;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string url_decode(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      const int hi = hex_value(text[i + 1]);
      const int lo = hex_value(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

std::string HttpRequest::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

std::string HttpRequest::param(const std::string& name) const {
  std::size_t pos = 0;
  while (pos <= query.size()) {
    const std::size_t end = std::min(query.find('&', pos), query.size());
    const std::string pair = query.substr(pos, end - pos);
    const std::size_t eq = pair.find('=');
    if (url_decode(pair.substr(0, eq)) == name) return eq == std::string::npos ? "" : url_decode(pair.substr(eq + 1));
    pos = end + 1;
  }
  return "";
}

HttpResponse HttpResponse::text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

// One civetweb handler at "/" that dispatches on the path and method.
class HttpServer::Dispatcher final : public CivetHandler {
 public:
  Dispatcher(const std::map<std::string, Route>& routes, const std::map<std::string, Route>& prefixes,
             std::size_t max_body)
      : routes_(routes), prefixes_(prefixes), max_body_(max_body) {}

  bool handleGet(CivetServer*, mg_connection* conn) override { return serve(conn, "GET", true); }
  bool handleHead(CivetServer*, mg_connection* conn) override { return serve(conn, "GET", false); }
  bool handlePost(CivetServer*, mg_connection* conn) override { return serve(conn, "POST", true); }
  bool handlePut(CivetServer*, mg_connection* conn) override { return serve(conn, "PUT", true); }
  bool handleDelete(CivetServer*, mg_connection* conn) override { return serve(conn, "DELETE", true); }
  bool handlePatch(CivetServer*, mg_connection* conn) override { return serve(conn, "PATCH", true); }
  bool handleOptions(CivetServer*, mg_connection* conn) override { return serve(conn, "OPTIONS", true); }

 private:
  const Route* find(const std::string& path) const {
    if (auto it = routes_.find(path); it != routes_.end()) return &it->second;
    const Route* best = nullptr;
    std::size_t best_len = 0;
    for (const auto& [prefix, route] : prefixes_) {
      if (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 && prefix.size() > best_len) {
        best = &route;
        best_len = prefix.size();
      }
    }
    return best;
  }

  bool serve(mg_connection* conn, const std::string& method, bool with_body) {
    const mg_request_info* info = mg_get_request_info(conn);
    HttpRequest req;
    req.method = method;
    req.path = info->local_uri ? info->local_uri : "/";
    req.query = info->query_string ? info->query_string : "";
    req.remote = info->remote_addr;
    const Route* route = find(req.path);
    if (route == nullptr) {
      std::string body = "404 not found: " + req.path + "\nendpoints:";
      for (const auto& entry : routes_) body += " " + entry.first;
      HttpResponse r = HttpResponse::text(404, body + "\n");
      send(conn, r, with_body);
      return true;
    }
    if (std::find(route->methods.begin(), route->methods.end(), method) == route->methods.end()) {
      std::string allow;
      for (const auto& m : route->methods) allow += (allow.empty() ? "" : ", ") + m + (m == "GET" ? ", HEAD" : "");
      HttpResponse r = HttpResponse::text(405, "405 method not allowed: use " + allow + "\n");
      r.headers.emplace_back("Allow", allow);
      send(conn, r, true);
      return true;
    }
    for (int i = 0; i < info->num_headers; ++i) {
      std::string name = info->http_headers[i].name;
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      req.headers[name] = info->http_headers[i].value;
    }
    if (method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE") {
      if (info->content_length > static_cast<long long>(max_body_)) {
        HttpResponse r = HttpResponse::text(413, "413 request body larger than " + std::to_string(max_body_) + " bytes\n");
        r.headers.emplace_back("Connection", "close");
        send(conn, r, true);
        return true;
      }
      char buf[8192];
      while (req.body.size() <= max_body_) {
        const int n = mg_read(conn, buf, sizeof buf);
        if (n <= 0) break;
        req.body.append(buf, static_cast<std::size_t>(n));
      }
      if (req.body.size() > max_body_) {
        HttpResponse r = HttpResponse::text(413, "413 request body larger than " + std::to_string(max_body_) + " bytes\n");
        r.headers.emplace_back("Connection", "close");
        send(conn, r, true);
        return true;
      }
    }
    send(conn, route->handler(req), with_body);
    return true;
  }

  const std::map<std::string, Route>& routes_;
  const std::map<std::string, Route>& prefixes_;
  std::size_t max_body_;
};

HttpServer::HttpServer() = default;
HttpServer::~HttpServer() { stop(); }

void HttpServer::route(const std::string& path, Handler handler, std::vector<std::string> methods) {
  routes_[path] = Route{std::move(handler), std::move(methods)};
}

void HttpServer::route_prefix(const std::string& prefix, Handler handler, std::vector<std::string> methods) {
  prefixes_[prefix] = Route{std::move(handler), std::move(methods)};
}

Status HttpServer::start(const std::string& listen, HttpSettings settings) {
  settings_ = settings;
  // civetweb reads ":9650" as a bad address; a bare port means every IPv4 address.
  const std::string ports = !listen.empty() && listen.front() == ':' ? listen.substr(1) : listen;
  const std::vector<std::string> options = {
      "listening_ports", ports,
      "num_threads", std::to_string(settings.threads),
      "request_timeout_ms", std::to_string(settings.request_timeout_ms),
      "enable_keep_alive", "yes",
      "keep_alive_timeout_ms", std::to_string(settings.keep_alive_ms),
      "listen_backlog", "1024",
      "connection_queue", "1024",
      "tcp_nodelay", "1",
  };
  try {
    CivetCallbacks callbacks;
    callbacks.init_thread = &lower_priority;
    callbacks.init_connection = &on_connection_open;
    callbacks.connection_closed = &on_connection_closed;
    g_threads = settings.threads;
    server_ = std::make_unique<CivetServer>(options, &callbacks);
  } catch (const std::exception& e) {
    return Error::io("cannot listen on " + listen + ": " + e.what() + " (is the port in use?)");
  }
  dispatcher_ = std::make_unique<Dispatcher>(routes_, prefixes_, settings.max_body);
  server_->addHandler("/", dispatcher_.get());
  return {};
}

void HttpServer::stop() {
  if (server_) {
    server_->removeHandler("/");
    server_.reset();
  }
  dispatcher_.reset();
}

int HttpServer::port() const {
  if (!server_) return 0;
  auto ports = server_->getListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

}  // namespace nightshift
