// Resolver: turns a target's address (IP literal or hostname) into socket
// addresses without ever blocking the reactor. IP literals resolve at once;
// hostnames go to a small worker thread running getaddrinfo, and the answer is
// posted back to the reactor. Answers are cached briefly (positive and negative).
//
// Thread safety: resolve() is reactor-thread only; callbacks run on the reactor.
#pragma once

#include <sys/socket.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "nightshift/reactor.h"
#include "nightshift/result.h"

namespace nightshift {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family() const { return storage.ss_family; }
  std::string to_string() const;  // "127.0.0.1" or "::1" (no port)
};

enum class AddressFamily { kAny, kIPv4, kIPv6 };

class Resolver {
 public:
  using Callback = std::function<void(Result<std::vector<SocketAddress>>)>;

  Resolver(Reactor& reactor, Duration positive_ttl = std::chrono::seconds(60),
           Duration negative_ttl = std::chrono::seconds(5));
  ~Resolver();

  // Calls `cb` exactly once on the reactor thread, never from inside resolve().
  void resolve(const std::string& host, AddressFamily family, Callback cb);

  // Parses an IP literal; nullopt when `host` is not one. Pure, any thread.
  static std::optional<SocketAddress> parse_literal(const std::string& host);

 private:
  struct CacheEntry {
    Result<std::vector<SocketAddress>> answer = Error::internal("unset");
    SteadyTime expires{};
  };
  void worker();
  static Result<std::vector<SocketAddress>> lookup(const std::string& host, AddressFamily family);

  Reactor& reactor_;
  Duration positive_ttl_, negative_ttl_;
  std::unordered_map<std::string, CacheEntry> cache_;                 // reactor thread
  std::unordered_map<std::string, std::vector<Callback>> waiting_;    // reactor thread

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::string, AddressFamily>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

std::string cache_key(const std::string& host, AddressFamily family);

}  // namespace nightshift
