// Receiver: a real HTTP server (civetweb) on 127.0.0.1 for tests of outgoing
// notifications. It records every request and answers as the test says: a
// status code, optionally after a delay (to make the sender time out).
//
// Thread safety: any thread (civetweb serves on its own threads).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct mg_context;
struct mg_connection;

namespace nightshift::test {

struct ReceivedRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  int answered = 0;  // the status we answered with
  std::chrono::steady_clock::time_point at;
};

class Receiver {
 public:
  Receiver();  // listens on 127.0.0.1, an ephemeral port; throws if it cannot
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  int port() const { return port_; }
  std::string url(const std::string& path = "/") const;

  // How to answer from now on.
  void answer(int status, std::chrono::milliseconds delay = std::chrono::milliseconds(0));
  // The body of non-2xx answers from now on, made from the request (e.g. an
  // endpoint that quotes what it was sent); empty function: the default text.
  void error_body(std::function<std::string(const ReceivedRequest&)> make);
  std::vector<ReceivedRequest> requests() const;
  // Only requests answered with a 2xx.
  std::vector<ReceivedRequest> accepted() const;
  // Waits until at least `n` requests were accepted (2xx); false on timeout.
  bool wait_accepted(std::size_t n, std::chrono::milliseconds timeout) const;

 private:
  static int handle(mg_connection* conn, void* self);
  mg_context* ctx_ = nullptr;
  int port_ = 0;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  int status_ = 200;
  std::chrono::milliseconds delay_{0};
  std::function<std::string(const ReceivedRequest&)> error_body_;
  std::vector<ReceivedRequest> requests_;
  bool stopping_ = false;
};

}  // namespace nightshift::test
