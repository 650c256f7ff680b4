#include "agent/http.h"

#include <CivetServer.h>

#include <cstring>

namespace nightshift {

namespace {
const char* status_text(int status) {
  switch (status) {
    case 200: return "OK";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

void send(mg_connection* conn, const HttpResponse& r, bool with_body) {
  std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + status_text(r.status) + "\r\n" +
                     "Content-Type: " + r.content_type + "\r\n" +
                     "Content-Length: " + std::to_string(r.body.size()) + "\r\n" +
                     "X-Content-Type-Options: nosniff\r\n";
  for (const auto& [k, v] : r.headers) head += k + ": " + v + "\r\n";
  head += "\r\n";
  mg_write(conn, head.data(), head.size());
  if (with_body && !r.body.empty()) mg_write(conn, r.body.data(), r.body.size());
}
}  // namespace

// One civetweb handler at "/" that dispatches on the exact path, so unknown
// paths get a plain 404 and methods other than GET/HEAD a 405.
class HttpServer::Dispatcher final : public CivetHandler {
 public:
  explicit Dispatcher(const std::map<std::string, Handler>& routes) : routes_(routes) {}

  bool handleGet(CivetServer*, mg_connection* conn) override { return serve(conn, true); }
  bool handleHead(CivetServer*, mg_connection* conn) override { return serve(conn, false); }
  bool handlePost(CivetServer*, mg_connection* conn) override { return not_allowed(conn); }
  bool handlePut(CivetServer*, mg_connection* conn) override { return not_allowed(conn); }
  bool handleDelete(CivetServer*, mg_connection* conn) override { return not_allowed(conn); }
  bool handlePatch(CivetServer*, mg_connection* conn) override { return not_allowed(conn); }
  bool handleOptions(CivetServer*, mg_connection* conn) override { return not_allowed(conn); }

 private:
  bool serve(mg_connection* conn, bool with_body) {
    const mg_request_info* info = mg_get_request_info(conn);
    const std::string path = info->local_uri ? info->local_uri : "/";
    auto it = routes_.find(path);
    if (it == routes_.end()) {
      HttpResponse r;
      r.status = 404;
      r.body = "404 not found: " + path + "\nendpoints:";
      for (const auto& [p, h] : routes_) r.body += " " + p;
      r.body += "\n";
      send(conn, r, with_body);
      return true;
    }
    send(conn, it->second(), with_body);
    return true;
  }
  bool not_allowed(mg_connection* conn) {
    HttpResponse r;
    r.status = 405;
    r.body = "405 method not allowed: use GET\n";
    r.headers.emplace_back("Allow", "GET, HEAD");
    send(conn, r, true);
    return true;
  }
  const std::map<std::string, Handler>& routes_;
};

HttpServer::HttpServer() = default;
HttpServer::~HttpServer() { stop(); }

void HttpServer::route(const std::string& path, Handler handler) { routes_[path] = std::move(handler); }

Status HttpServer::start(const std::string& listen) {
  // civetweb reads ":9650" as a bad address; a bare port means every IPv4 address.
  const std::string ports = !listen.empty() && listen.front() == ':' ? listen.substr(1) : listen;
  const std::vector<std::string> options = {
      "listening_ports", ports,
      "num_threads", "4",
      "request_timeout_ms", "10000",
      "enable_keep_alive", "yes",
      "keep_alive_timeout_ms", "5000",
  };
  try {
    server_ = std::make_unique<CivetServer>(options);
  } catch (const std::exception& e) {
    return Error::io("cannot listen on " + listen + ": " + e.what() + " (is the port in use?)");
  }
  dispatcher_ = std::make_unique<Dispatcher>(routes_);
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
