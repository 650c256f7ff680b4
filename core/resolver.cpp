#include "nightshift/resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>

namespace nightshift {

std::string SocketAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof buf);
  } else if (storage.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

std::string cache_key(const std::string& host, AddressFamily family) {
  return std::to_string(static_cast<int>(family)) + "/" + host;
}

std::optional<SocketAddress> Resolver::parse_literal(const std::string& host) {
  SocketAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    a.length = sizeof(sockaddr_in);
    return a;
  }
  // Accept "[::1]" as well as "::1".
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (::inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    a.length = sizeof(sockaddr_in6);
    return a;
  }
  return std::nullopt;
}

Resolver::Resolver(Reactor& reactor, Duration positive_ttl, Duration negative_ttl)
    : reactor_(reactor), positive_ttl_(positive_ttl), negative_ttl_(negative_ttl) {
  // Two workers: one slow lookup (a dead DNS server) must not hold up every other.
  for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { worker(); });
}

Resolver::~Resolver() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void Resolver::resolve(const std::string& host, AddressFamily family, Callback cb) {
  if (auto literal = parse_literal(host)) {
    const bool wrong_family = (family == AddressFamily::kIPv4 && literal->family() != AF_INET) ||
                              (family == AddressFamily::kIPv6 && literal->family() != AF_INET6);
    Result<std::vector<SocketAddress>> answer =
        wrong_family ? Result<std::vector<SocketAddress>>(
                           Error::invalid("address " + host + " is not of the requested family"))
                     : Result<std::vector<SocketAddress>>(std::vector<SocketAddress>{*literal});
    reactor_.defer([cb = std::move(cb), answer = std::move(answer)]() mutable { cb(std::move(answer)); });
    return;
  }
  const std::string key = cache_key(host, family);
  if (auto it = cache_.find(key); it != cache_.end() && it->second.expires > reactor_.clock().now()) {
    reactor_.defer([cb = std::move(cb), answer = it->second.answer]() mutable { cb(std::move(answer)); });
    return;
  }
  auto& waiters = waiting_[key];
  waiters.push_back(std::move(cb));
  if (waiters.size() > 1) return;  // a lookup for this name is already under way
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.emplace_back(host, family);
  }
  cv_.notify_one();
}

Result<std::vector<SocketAddress>> Resolver::lookup(const std::string& host, AddressFamily family) {
  addrinfo hints{};
  hints.ai_family = family == AddressFamily::kIPv4 ? AF_INET
                    : family == AddressFamily::kIPv6 ? AF_INET6
                                                     : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;  // one entry per address, not one per socket type
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    return Error::not_found("cannot resolve " + host + ": " + ::gai_strerror(rc));
  }
  std::vector<SocketAddress> out;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    SocketAddress a;
    std::memcpy(&a.storage, ai->ai_addr, ai->ai_addrlen);
    a.length = static_cast<socklen_t>(ai->ai_addrlen);
    out.push_back(a);
  }
  ::freeaddrinfo(res);
  if (out.empty()) return Error::not_found("cannot resolve " + host + ": no IPv4 or IPv6 address");
  return out;
}

void Resolver::worker() {
  for (;;) {
    std::pair<std::string, AddressFamily> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    auto answer = lookup(job.first, job.second);
    reactor_.post([this, key = cache_key(job.first, job.second), answer = std::move(answer)]() mutable {
      const Duration ttl = answer.ok() ? positive_ttl_ : negative_ttl_;
      cache_[key] = CacheEntry{answer, reactor_.clock().now() + ttl};
      auto it = waiting_.find(key);
      if (it == waiting_.end()) return;
      auto callbacks = std::move(it->second);
      waiting_.erase(it);
      for (auto& cb : callbacks) cb(answer);
    });
  }
}

}  // namespace nightshift
