#include "probes/tcp/tcp.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nightshift::tcp {

std::shared_ptr<const ProbeOptions> parse_options(OptionReader& reader, std::string& default_name) {
  auto opts = std::make_shared<TcpOptions>();
  bool ok = true;
  if (auto port = reader.integer("port", 1, 65535, /*required=*/true)) {
    opts->port = static_cast<std::uint16_t>(*port);
  } else {
    ok = false;
  }
  if (auto banner = reader.string("expect_banner", false)) {
    if (banner->empty()) {
      reader.error("expect_banner", "expected a non-empty string, found \"\" (omit the key to only connect)");
      ok = false;
    }
    opts->expect_banner = *banner;
  }
  if (auto bytes = reader.integer("banner_bytes", 1, 65536, false)) opts->banner_bytes = static_cast<std::size_t>(*bytes);
  if (!opts->expect_banner.empty() && opts->expect_banner.size() > opts->banner_bytes) {
    reader.error("banner_bytes", "must be at least the length of expect_banner (" +
                                     std::to_string(opts->expect_banner.size()) + ")");
    ok = false;
  }
  if (!read_ip_family(reader, opts->family)) ok = false;
  default_name = "tcp_" + std::to_string(opts->port);
  if (!ok) return nullptr;
  return opts;
}

std::unique_ptr<ProbeEngine> make_engine(EngineContext& context) {
  return std::make_unique<TcpEngine>(context);
}

std::string printable_excerpt(std::string_view bytes, std::size_t max) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  std::string piece;
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      piece.assign(1, static_cast<char>(c));
    } else if (c == '\r') {
      piece = "\\r";
    } else if (c == '\n') {
      piece = "\\n";
    } else {
      piece = {'\\', 'x', hex[c >> 4], hex[c & 15]};
    }
    // Whole escapes only, and never past `max`.
    if (out.size() + piece.size() > max) {
      out += "...";
      break;
    }
    out += piece;
  }
  return out;
}

struct TcpEngine::Attempt {
  std::uint64_t id = 0;
  ProbeRequest req;
  const TcpOptions* opts = nullptr;
  SteadyTime started{};
  SteadyTime connected_at{};
  bool connected = false;
  int fd = -1;
  Reactor::TimerId deadline_timer = 0;
  std::string peer;      // "address:port", for details
  std::string received;  // banner bytes so far
};

TcpEngine::TcpEngine(EngineContext& context) : reactor_(context.reactor), resolver_(context.resolver) {}

TcpEngine::~TcpEngine() {
  for (auto& [id, a] : attempts_) {
    if (a->fd >= 0) {
      reactor_.unwatch(a->fd);
      ::close(a->fd);
    }
    reactor_.cancel(a->deadline_timer);
  }
}

void TcpEngine::submit(ProbeRequest req) {
  const std::uint64_t id = next_id_++;
  auto a = std::make_unique<Attempt>();
  a->id = id;
  a->opts = static_cast<const TcpOptions*>(req.spec->options.get());
  a->started = reactor_.clock().now();
  const Duration timeout = req.spec->timeout;
  const std::string host = req.target->address;
  const AddressFamily family = a->opts->family;
  a->req = std::move(req);
  a->deadline_timer = reactor_.call_at(a->started + timeout, [this, id] {
    auto it = attempts_.find(id);
    if (it == attempts_.end()) return;
    Attempt& at = *it->second;
    it->second->deadline_timer = 0;
    std::string detail;
    if (at.peer.empty()) {
      detail = "hostname " + at.req.target->address + " did not resolve in time";
      finish(id, FailureReason::kDnsFailure, std::move(detail));
      return;
    }
    if (!at.connected) {
      detail = "no answer from " + at.peer + " to the connection attempt";
    } else if (at.received.empty()) {
      detail = "connected to " + at.peer + " but no banner arrived";
    } else {
      detail = "connected to " + at.peer + "; banner \"" + printable_excerpt(at.received) +
               "\" lacks \"" + printable_excerpt(at.opts->expect_banner) + "\"";
      finish(id, FailureReason::kBannerMismatch, std::move(detail));
      return;
    }
    finish(id, FailureReason::kTimeout, std::move(detail));
  });
  attempts_.emplace(id, std::move(a));
  resolver_.resolve(host, family,
                    [self = std::weak_ptr<TcpEngine*>(self_), id](Result<std::vector<SocketAddress>> addresses) {
                      if (auto engine = self.lock()) (*engine)->on_resolved(id, std::move(addresses));
                    });
}

static FailureReason classify_errno(int err) {
  switch (err) {
    case ECONNREFUSED: return FailureReason::kRefused;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENETDOWN: return FailureReason::kUnreachable;
    case ETIMEDOUT: return FailureReason::kTimeout;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
    case EADDRNOTAVAIL: return FailureReason::kResourceLimit;
    case ECONNRESET:
    case EPIPE: return FailureReason::kConnectionClosed;
    default: return FailureReason::kError;
  }
}

void TcpEngine::on_resolved(std::uint64_t id, Result<std::vector<SocketAddress>> addresses) {
  auto it = attempts_.find(id);
  if (it == attempts_.end()) return;  // already timed out
  Attempt& a = *it->second;
  if (!addresses.ok()) {
    finish(id, FailureReason::kDnsFailure, addresses.error().message);
    return;
  }
  SocketAddress addr = addresses.value().front();
  if (addr.family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&addr.storage)->sin_port = htons(a.opts->port);
    a.peer = addr.to_string() + ":" + std::to_string(a.opts->port);
  } else {
    reinterpret_cast<sockaddr_in6*>(&addr.storage)->sin6_port = htons(a.opts->port);
    a.peer = "[" + addr.to_string() + "]:" + std::to_string(a.opts->port);
  }
  a.fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (a.fd < 0) {
    const int err = errno;
    finish(id, classify_errno(err), std::string("socket: ") + std::strerror(err));
    return;
  }
  if (::connect(a.fd, reinterpret_cast<const sockaddr*>(&addr.storage), addr.length) != 0 &&
      errno != EINPROGRESS) {
    const int err = errno;
    finish(id, classify_errno(err), "connect to " + a.peer + ": " + std::strerror(err));
    return;
  }
  // Whether connect finished at once or is in progress, writability reports it.
  Status watched = reactor_.watch(a.fd, EPOLLOUT, [this, id](std::uint32_t events) { on_socket_event(id, events); });
  if (!watched.ok()) finish(id, FailureReason::kResourceLimit, watched.error().message);
}

void TcpEngine::on_socket_event(std::uint64_t id, std::uint32_t events) {
  auto it = attempts_.find(id);
  if (it == attempts_.end()) return;
  Attempt& a = *it->second;
  if (!a.connected) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(a.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      finish(id, classify_errno(err), "connect to " + a.peer + ": " + std::strerror(err));
      return;
    }
    if ((events & EPOLLOUT) == 0) return;
    on_connected(a);
    return;
  }
  on_readable(a);
}

void TcpEngine::on_connected(Attempt& a) {
  a.connected = true;
  a.connected_at = reactor_.clock().now();
  if (a.opts->expect_banner.empty()) {
    finish(a.id, FailureReason::kNone, "");
    return;
  }
  Status watched = reactor_.modify(a.fd, EPOLLIN | EPOLLRDHUP);
  if (!watched.ok()) finish(a.id, FailureReason::kError, watched.error().message);
}

void TcpEngine::on_readable(Attempt& a) {
  const std::uint64_t id = a.id;
  char buf[4096];
  const std::size_t room = a.opts->banner_bytes - a.received.size();
  const ssize_t n = ::recv(a.fd, buf, room < sizeof buf ? room : sizeof buf, 0);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    const int err = errno;
    finish(id, classify_errno(err), "reading banner from " + a.peer + ": " + std::strerror(err));
    return;
  }
  if (n == 0) {
    finish(id, a.received.empty() ? FailureReason::kConnectionClosed : FailureReason::kBannerMismatch,
           a.peer + " closed the connection" +
               (a.received.empty() ? std::string(" before sending a banner")
                                   : "; banner \"" + printable_excerpt(a.received) + "\" lacks \"" +
                                         printable_excerpt(a.opts->expect_banner) + "\""));
    return;
  }
  a.received.append(buf, static_cast<std::size_t>(n));
  if (a.received.find(a.opts->expect_banner) != std::string::npos) {
    finish(id, FailureReason::kNone, "");
    return;
  }
  if (a.received.size() >= a.opts->banner_bytes) {
    finish(id, FailureReason::kBannerMismatch,
           "banner from " + a.peer + " \"" + printable_excerpt(a.received) + "\" lacks \"" +
               printable_excerpt(a.opts->expect_banner) + "\" within " +
               std::to_string(a.opts->banner_bytes) + " bytes");
  }
}

void TcpEngine::finish(std::uint64_t id, FailureReason reason, std::string detail) {
  auto it = attempts_.find(id);
  if (it == attempts_.end()) return;
  std::unique_ptr<Attempt> a = std::move(it->second);
  attempts_.erase(it);
  if (a->deadline_timer != 0) reactor_.cancel(a->deadline_timer);
  if (a->fd >= 0) {
    reactor_.unwatch(a->fd);
    ::close(a->fd);
  }
  const SteadyTime now = reactor_.clock().now();
  Sample s = make_sample(a->req, a->started);
  s.duration = now - a->started;
  s.ok = reason == FailureReason::kNone;
  s.reason = reason;
  s.detail = std::move(detail);
  if (a->connected) {
    s.values.emplace_back("connect_seconds",
                          std::chrono::duration<double>(a->connected_at - a->started).count());
  }
  a->req.done(std::move(s));
}

}  // namespace nightshift::tcp
