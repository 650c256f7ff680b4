// A small libcurl client for tests: one request, a timeout, the whole answer.
//
// Network safety: only http:// URLs to loopback hosts (127.0.0.0/8, [::1],
// localhost) are requested; anything else fails without sending a byte.
// Proxies from the environment are ignored.
//
// Thread safety: any thread (one easy handle per call).
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace nightshift::test {

struct HttpResult {
  long status = 0;    // 0 when no response arrived
  std::string error;  // transport error (connect refused, timeout, ...), empty on success
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order
  std::string body;

  bool ok() const { return error.empty() && status != 0; }
  // The first header with this (case-insensitive) name; empty if absent.
  std::string header(const std::string& name) const;
};

HttpResult http_request(const std::string& method, const std::string& url, const std::string& body = "",
                        std::chrono::milliseconds timeout = std::chrono::seconds(2));
inline HttpResult http_get(const std::string& url, std::chrono::milliseconds timeout = std::chrono::seconds(2)) {
  return http_request("GET", url, "", timeout);
}

}  // namespace nightshift::test
