// TCP probe: a nonblocking connect to host:port within a timeout, optionally a
// TLS handshake (OpenSSL, nonblocking on the reactor), optionally reading the
// peer's banner (SSH, SMTP, FTP..., over TLS when on) until an expected string shows.
//
// Outcomes: success; refused (RST); unreachable (no route, host unreachable);
// timeout (no answer, or connected but no handshake or banner in time);
// dns_failure; banner_mismatch (bytes arrived but not the expected ones);
// connection_closed; tls_handshake (no common protocol, not TLS at all);
// tls_verify (expired, unknown issuer, wrong name: the reason names which).
//
// Series in blackbox_exporter's names (Sample::series): probe_dns_lookup_time_seconds,
// probe_ip_protocol, probe_ip_addr_hash, probe_failed_due_to_regex; with TLS
// probe_ssl_earliest_cert_expiry (the peer chain's first notAfter),
// probe_ssl_last_chain_expiry_timestamp_seconds (of the verified chain),
// probe_tls_version_info{version} and probe_ssl_last_chain_info.
//
// A probe run makes `count` connects spread evenly over the interval (3 per
// 10 s: one every 3.3 s), each closed with a reset (as HAProxy's checks do: no
// FIN handshake, no TIME_WAIT on either side), so a stopped service is seen
// within a third of the interval. A failed connect asks for evidence at once:
// quick connects 100 ms apart that stop at the first success. Three refusals
// in a row (a reset is an answer, never random loss), or 20 failures (at 30 %
// packet loss a 1 s connect fails with p = 1 - 0.7^2 = 0.51, all 20 with
// p = 1.4e-6), end the run early as a failed sample with `confirmation` = 1.
// A target confirmed down is not confirmed again until a connect succeeds.
//
// Thread safety: reactor-thread only. Thousands of probes may be in flight: each
// costs one socket, one timer and a small record, never a thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "probes/probe.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace nightshift::tcp {

struct TcpOptions final : ProbeOptions {
  std::uint16_t port = 0;
  int count = 3;  // connects per run, spread over the interval; 1: one per run, confirmed by the agent
  std::string expect_banner;  // empty: connecting is enough
  std::size_t banner_bytes = 256;  // read at most this many bytes looking for it
  AddressFamily family = AddressFamily::kAny;
  bool tls = false;
  std::string server_name;  // SNI and the name the certificate must carry; empty: the target's address
  std::string ca_file;      // PEM certificates to verify against; empty: the system's trust store
  bool insecure_skip_verify = false;  // handshake and report the certificate without verifying it
  // Built at load (a ca_file that does not load is a config error); shared by
  // every attempt, read-only after load (OpenSSL allows that from any thread).
  std::shared_ptr<ssl_ctx_st> tls_context;
};

std::shared_ptr<const ProbeOptions> parse_options(OptionReader& reader, std::string& default_name);
std::unique_ptr<ProbeEngine> make_engine(EngineContext& context);
// What its samples carry (the registry entry's `measures`).
std::span<const Measure> measures();
int port_of(const ProbeOptions& options);
// The TLS client context for these options (verification, ca_file or the
// system's trust store); nullptr with `error` set when it cannot be built.
std::shared_ptr<ssl_ctx_st> make_tls_context(const TcpOptions& options, std::string& error);

class TcpEngine final : public ProbeEngine {
 public:
  explicit TcpEngine(EngineContext& context);
  ~TcpEngine() override;

  // ProbeEngine
  void submit(ProbeRequest req) override;
  std::size_t in_flight() const override { return runs_.size(); }
  bool confirm(ProbeRequest req) override;
  bool has_confirmation() const override { return true; }

  static constexpr int kConfirmAttempts = 20;
  static constexpr int kConfirmRefusals = 3;
  // Between a confirmation's connects (a refusal or "no route" goes on at
  // once): 19 x 50 ms + the wait keeps a link cut's page under 5 s.
  static constexpr Duration kConfirmSpacing = std::chrono::milliseconds(50);
  // The shortest wait before a connect is suspect (a LAN's connect time).
  static constexpr Duration kSuspectFloor = std::chrono::milliseconds(200);

 private:
  struct Attempt;
  struct Run;
  struct Confirmation;
  // One connect; `done` gets its sample. The attempt waits at most `timeout`.
  // Returns its id (for attempt_pending()).
  std::uint64_t start_attempt(ProbeRequest req, Duration timeout);
  // Whether attempt `id` is still in flight without a connection.
  bool attempt_pending(std::uint64_t id) const;
  // The scheduled connect has had no answer within the target's learned
  // connect time: confirm now instead of at its timeout.
  void on_suspect(std::uint64_t run_id);
  void begin_run_confirmation(std::uint64_t run_id);
  void continue_run(std::uint64_t run_id, Sample s);
  // How long a connect may go unanswered before it is suspect, and each
  // confirmation connect's wait: learned from the target's connect times.
  Duration suspect_wait_for(const ProbeRequest& req, Duration cap) const;
  void run_next(std::uint64_t run_id);
  void on_run_attempt(std::uint64_t run_id, Sample s);
  void finish_run(std::uint64_t run_id, Sample s);
  // Quick connects after a failure; `done(down, sample)`.
  // Returns its id (for cancel_confirmation()).
  std::uint64_t start_confirmation(const ProbeRequest& like, Duration timeout,
                                   std::function<void(bool down, Sample last, int tried, int refused)> done);
  // No more connects and no callback; the ones in flight end on their own.
  void cancel_confirmation(std::uint64_t id);
  void confirmation_step(std::uint64_t id);
  void on_resolved(std::uint64_t id, Result<std::vector<SocketAddress>> addresses);
  void on_socket_event(std::uint64_t id, std::uint32_t events);
  void on_connected(Attempt& a);
  void start_tls(Attempt& a);
  void continue_tls(Attempt& a);
  void on_tls_established(Attempt& a);
  void on_readable(Attempt& a);
  void finish(std::uint64_t id, FailureReason reason, std::string detail);

  Reactor& reactor_;
  Resolver& resolver_;
  // Resolver answers reach the engine through the reactor's queue and may come
  // after it is destroyed: they hold a weak reference to this and check it.
  std::shared_ptr<TcpEngine*> self_ = std::make_shared<TcpEngine*>(this);
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, std::unique_ptr<Attempt>> attempts_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Run>> runs_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Confirmation>> confirmations_;
  // Targets confirmed down and not answered since ("target\0probe").
  std::unordered_map<std::string, bool> down_;
  // Connect times of targets that answered ("target\0probe"), bounded by the
  // configured probes (entries of removed probes stay until restart: small).
  std::unordered_map<std::string, RttEstimate> rtt_;
};

// Printable form of bytes received from a peer, for failure details: at most
// `max` characters (escapes are never split), then "..." if there was more;
// CR and LF as \r and \n, other non-printable bytes and '\' as \xNN. Pure.
std::string printable_excerpt(std::string_view bytes, std::size_t max = 64);

}  // namespace nightshift::tcp
