// TCP probe: a nonblocking connect to host:port within a timeout, optionally
// reading the peer's banner (SSH, SMTP, FTP...) until an expected string shows.
//
// Outcomes: success; refused (RST); unreachable (no route, host unreachable);
// timeout (no answer, or connected but no banner in time); dns_failure;
// banner_mismatch (bytes arrived but not the expected ones); connection_closed.
//
// Thread safety: reactor-thread only. Thousands of probes may be in flight: each
// costs one socket, one timer and a small record, never a thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "probes/probe.h"

namespace nightshift::tcp {

struct TcpOptions final : ProbeOptions {
  std::uint16_t port = 0;
  std::string expect_banner;  // empty: connecting is enough
  std::size_t banner_bytes = 256;  // read at most this many bytes looking for it
  AddressFamily family = AddressFamily::kAny;
};

std::shared_ptr<const ProbeOptions> parse_options(OptionReader& reader, std::string& default_name);
std::unique_ptr<ProbeEngine> make_engine(EngineContext& context);

class TcpEngine final : public ProbeEngine {
 public:
  explicit TcpEngine(EngineContext& context);
  ~TcpEngine() override;

  // ProbeEngine
  void submit(ProbeRequest req) override;
  std::size_t in_flight() const override { return attempts_.size(); }

 private:
  struct Attempt;
  void on_resolved(std::uint64_t id, Result<std::vector<SocketAddress>> addresses);
  void on_socket_event(std::uint64_t id, std::uint32_t events);
  void on_connected(Attempt& a);
  void on_readable(Attempt& a);
  void finish(std::uint64_t id, FailureReason reason, std::string detail);

  Reactor& reactor_;
  Resolver& resolver_;
  // Resolver answers reach the engine through the reactor's queue and may come
  // after it is destroyed: they hold a weak reference to this and check it.
  std::shared_ptr<TcpEngine*> self_ = std::make_shared<TcpEngine*>(this);
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, std::unique_ptr<Attempt>> attempts_;
};

// Printable form of bytes received from a peer, for failure details: at most
// `max` characters (escapes are never split), then "..." if there was more;
// CR and LF as \r and \n, other non-printable bytes and '\' as \xNN. Pure.
std::string printable_excerpt(std::string_view bytes, std::size_t max = 64);

}  // namespace nightshift::tcp
