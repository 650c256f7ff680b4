#include "tests/support/receiver.h"

#include <civetweb.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace nightshift::test {

Receiver::Receiver() {
  const char* options[] = {"listening_ports", "127.0.0.1:0", "num_threads", "8", "request_timeout_ms", "30000",
                           nullptr};
  mg_callbacks callbacks{};
  ctx_ = mg_start(&callbacks, this, options);
  if (ctx_ == nullptr) throw std::runtime_error("receiver: cannot start civetweb on 127.0.0.1");
  mg_set_request_handler(ctx_, "/", &Receiver::handle, this);
  mg_server_port ports[4] = {};
  const int n = mg_get_server_ports(ctx_, 4, ports);
  if (n < 1) throw std::runtime_error("receiver: no listening port");
  port_ = ports[0].port;
}

Receiver::~Receiver() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  mg_stop(ctx_);
}

std::string Receiver::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void Receiver::answer(int status, std::chrono::milliseconds delay) {
  std::lock_guard<std::mutex> lock(mu_);
  status_ = status;
  delay_ = delay;
}

void Receiver::error_body(std::function<std::string(const ReceivedRequest&)> make) {
  std::lock_guard<std::mutex> lock(mu_);
  error_body_ = std::move(make);
}

std::vector<ReceivedRequest> Receiver::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

std::vector<ReceivedRequest> Receiver::accepted() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ReceivedRequest> out;
  for (const auto& r : requests_) {
    if (r.answered >= 200 && r.answered < 300) out.push_back(r);
  }
  return out;
}

bool Receiver::wait_accepted(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    return static_cast<std::size_t>(std::count_if(requests_.begin(), requests_.end(), [](const ReceivedRequest& r) {
             return r.answered >= 200 && r.answered < 300;
           })) >= n;
  });
}

int Receiver::handle(mg_connection* conn, void* user) {
  auto* self = static_cast<Receiver*>(user);
  const mg_request_info* info = mg_get_request_info(conn);
  ReceivedRequest r;
  r.method = info->request_method ? info->request_method : "";
  r.path = info->local_uri ? info->local_uri : "";
  for (int i = 0; i < info->num_headers; ++i) {
    std::string name = info->http_headers[i].name;
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    r.headers[name] = info->http_headers[i].value;
  }
  char buf[8192];
  for (int i = 0; i < 1024; ++i) {  // at most 8 MiB
    const int got = mg_read(conn, buf, sizeof buf);
    if (got <= 0) break;
    r.body.append(buf, static_cast<std::size_t>(got));
  }
  int status;
  std::chrono::milliseconds delay;
  std::function<std::string(const ReceivedRequest&)> error_body;
  {
    std::unique_lock<std::mutex> lock(self->mu_);
    status = self->status_;
    delay = self->delay_;
    error_body = self->error_body_;
    if (delay.count() > 0) self->cv_.wait_for(lock, delay, [self] { return self->stopping_; });
  }
  r.answered = status;
  r.at = std::chrono::steady_clock::now();
  std::string reply = status < 300 ? "{\"status\":\"success\"}" : "{\"error\":\"test receiver says no\"}";
  if (status >= 300 && error_body) reply = error_body(r);
  mg_printf(conn,
            "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
            status, reply.size(), reply.c_str());
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    self->requests_.push_back(std::move(r));
  }
  self->cv_.notify_all();
  return status;
}

}  // namespace nightshift::test
