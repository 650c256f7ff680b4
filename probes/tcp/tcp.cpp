#include "probes/tcp/tcp.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>

namespace nightshift::tcp {

namespace {

// OpenSSL's most recent error as text, and the queue cleared.
std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "";
  if (const char* reason = ERR_reason_error_string(e)) return reason;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

double unix_time(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<double>(::timegm(&tm));
}

// The earliest notAfter of a chain of certificates.
std::optional<double> earliest_expiry(STACK_OF(X509) * chain) {
  std::optional<double> earliest;
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    const double t = unix_time(X509_get0_notAfter(sk_X509_value(chain, i)));
    if (!earliest || t < *earliest) earliest = t;
  }
  return earliest;
}

// "TLSv1.3" -> "TLS 1.3", as blackbox_exporter labels probe_tls_version_info.
std::string tls_version_label(const SSL* ssl) {
  switch (SSL_version(ssl)) {
    case TLS1_VERSION: return "TLS 1.0";
    case TLS1_1_VERSION: return "TLS 1.1";
    case TLS1_2_VERSION: return "TLS 1.2";
    case TLS1_3_VERSION: return "TLS 1.3";
    default: return SSL_get_version(ssl);
  }
}

// "CN=localhost,O=Example": RFC 2253, as Go prints a certificate's names.
std::string name_text(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "";
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n > 0 ? n : 0));
  BIO_free(bio);
  return out;
}

// probe_ssl_last_chain_info's labels for the peer's certificate.
std::vector<std::pair<std::string, std::string>> certificate_labels(X509* cert) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  X509_digest(cert, EVP_sha256(), digest, &length);
  static const char* hex = "0123456789abcdef";
  std::string fingerprint;
  for (unsigned int i = 0; i < length; ++i) {
    fingerprint += hex[digest[i] >> 4];
    fingerprint += hex[digest[i] & 15];
  }
  std::string dns_names;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != GEN_DNS) continue;
    const auto* s = n->d.dNSName;
    dns_names += (dns_names.empty() ? "" : ",") +
                 std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<std::size_t>(ASN1_STRING_length(s)));
  }
  if (names != nullptr) GENERAL_NAMES_free(names);
  return {{"fingerprint_sha256", fingerprint},
          {"issuer", name_text(X509_get_issuer_name(cert))},
          {"subject", name_text(X509_get_subject_name(cert))},
          {"subjectalternative", dns_names}};
}

}  // namespace

std::shared_ptr<ssl_ctx_st> make_tls_context(const TcpOptions& opts, std::string& error) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) {
    error = "cannot set up TLS: " + openssl_error();
    return nullptr;
  }
  SSL_CTX_set_verify(ctx.get(), opts.insecure_skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nullptr);
  if (!opts.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), opts.ca_file.c_str(), nullptr) != 1) {
      error = "cannot load certificates from \"" + opts.ca_file + "\": " + openssl_error() +
              " (a PEM file readable by the agent's user)";
      return nullptr;
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    error = "cannot load the system's trust store: " + openssl_error();
    return nullptr;
  }
  return ctx;
}

int port_of(const ProbeOptions& options) { return static_cast<const TcpOptions&>(options).port; }

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
  if (auto count = reader.integer("count", 1, 10, false)) opts->count = static_cast<int>(*count);
  if (!opts->expect_banner.empty() && opts->expect_banner.size() > opts->banner_bytes) {
    reader.error("banner_bytes", "must be at least the length of expect_banner (" +
                                     std::to_string(opts->expect_banner.size()) + ")");
    ok = false;
  }
  if (!read_ip_family(reader, opts->family)) ok = false;
  if (auto v = reader.boolean("tls", false)) opts->tls = *v;
  if (auto v = reader.string("server_name", false)) opts->server_name = *v;
  if (auto v = reader.string("ca_file", false)) opts->ca_file = *v;
  if (auto v = reader.boolean("insecure_skip_verify", false)) opts->insecure_skip_verify = *v;
  if (!opts->tls) {
    for (const char* key : {"server_name", "ca_file", "insecure_skip_verify"}) {
      const bool set = std::string_view(key) == "server_name"  ? !opts->server_name.empty()
                       : std::string_view(key) == "ca_file"    ? !opts->ca_file.empty()
                                                               : opts->insecure_skip_verify;
      if (set) {
        reader.error(key, std::string(key) + " applies to TLS only: add tls = true");
        ok = false;
      }
    }
  } else {
    std::string error;
    opts->tls_context = make_tls_context(*opts, error);
    if (!opts->tls_context) {
      reader.error(opts->ca_file.empty() ? "tls" : "ca_file", error);
      ok = false;
    }
  }
  default_name = std::string(opts->tls ? "tls_" : "tcp_") + std::to_string(opts->port);
  if (!ok) return nullptr;
  return opts;
}

namespace {
const Measure kMeasures[] = {
    {"connect_seconds", MeasureType::kNumber, "seconds",
     "time to an established connection (including name resolution)"},
};
}  // namespace

std::span<const Measure> measures() { return kMeasures; }

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
  Duration lookup{};
  std::optional<SocketAddress> address;
  SSL* ssl = nullptr;     // with tls = true, after connecting
  bool tls_established = false;
  std::vector<LabeledValue> tls_series;  // what the handshake showed
};

// A scheduled run: `count` connects spread over the interval.
struct TcpEngine::Run {
  ProbeRequest req;
  SteadyTime started{};
  Duration spacing{};
  Duration timeout{};  // per connect
  int count = 1;
  int next = 0;  // connects started
  Reactor::TimerId timer = 0;
  // The scheduled connect in flight (0: none), and its suspicion timer.
  std::uint64_t attempt = 0;
  Reactor::TimerId suspect_timer = 0;
  // A confirmation of this run in flight (0: none); what the connect that
  // started it ended with meanwhile; whether it found the target alive while
  // the connect was still waiting.
  std::uint64_t confirmation = 0;
  std::optional<Sample> failed;
  std::optional<Sample> alive;
};

// Quick connects after a failure or a suspect silence, kConfirmSpacing apart,
// until one succeeds, three are refused in a row, or kConfirmAttempts have
// failed.
struct TcpEngine::Confirmation {
  ProbeRequest like;
  Duration timeout{};
  std::function<void(bool, Sample, int, int)> done;
  int started = 0;
  int finished = 0;
  int refused_run = 0;
  bool over = false;
  Reactor::TimerId timer = 0;
  Sample last;
};

TcpEngine::TcpEngine(EngineContext& context) : reactor_(context.reactor), resolver_(context.resolver) {}

TcpEngine::~TcpEngine() {
  for (auto& [id, a] : attempts_) {
    if (a->ssl != nullptr) SSL_free(a->ssl);
    if (a->fd >= 0) {
      reactor_.unwatch(a->fd);
      ::close(a->fd);
    }
    reactor_.cancel(a->deadline_timer);
  }
  for (auto& [id, r] : runs_) {
    reactor_.cancel(r->timer);
    reactor_.cancel(r->suspect_timer);
  }
  for (auto& [id, c] : confirmations_) reactor_.cancel(c->timer);
}

namespace {
std::string state_key(const ProbeRequest& req) { return req.target->name + '\0' + req.spec->name; }
}  // namespace

void TcpEngine::submit(ProbeRequest req) {
  const auto* opts = static_cast<const TcpOptions*>(req.spec->options.get());
  const std::uint64_t id = next_id_++;
  auto run = std::make_unique<Run>();
  run->started = reactor_.clock().now();
  run->count = std::max(opts->count, 1);
  run->spacing = req.spec->interval / run->count;
  // Each connect ends before the next one starts.
  run->timeout = run->count == 1 ? req.spec->timeout : std::min(req.spec->timeout, run->spacing * 9 / 10);
  run->req = std::move(req);
  runs_.emplace(id, std::move(run));
  run_next(id);
}

void TcpEngine::run_next(std::uint64_t run_id) {
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return;
  Run& r = *it->second;
  r.timer = 0;
  ++r.next;
  ProbeRequest one;
  one.target = r.req.target;
  one.spec = r.req.spec;
  one.done = [this, run_id](Sample s) { on_run_attempt(run_id, std::move(s)); };
  r.attempt = start_attempt(std::move(one), r.timeout);
  // Spread runs confirm a silent connect after the target's learned connect
  // time (a link cut: the SYN waits for ARP, 3 s, or is lost), not at its
  // timeout; one connect per run leaves the confirmation to the agent.
  // A connect whose own timeout is that short already ends soon: no suspicion.
  const Duration cap = std::min<Duration>(std::chrono::seconds(1), r.timeout * 3 / 4);
  if (r.count > 1 && !down_.count(state_key(r.req)) && cap >= kSuspectFloor) {
    const Duration wait = suspect_wait_for(r.req, cap);
    r.suspect_timer = reactor_.call_after(wait, [this, run_id] { on_suspect(run_id); });
  }
}

Duration TcpEngine::suspect_wait_for(const ProbeRequest& req, Duration cap) const {
  auto it = rtt_.find(state_key(req));
  if (it == rtt_.end()) return suspect_wait(std::nullopt, 0, kSuspectFloor, cap);
  return suspect_wait(it->second.srtt, it->second.rttvar, kSuspectFloor, cap);
}

bool TcpEngine::attempt_pending(std::uint64_t id) const {
  auto it = attempts_.find(id);
  return it != attempts_.end() && !it->second->connected;
}

void TcpEngine::on_suspect(std::uint64_t run_id) {
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return;
  Run& r = *it->second;
  r.suspect_timer = 0;
  if (r.confirmation != 0 || !attempt_pending(r.attempt) || down_.count(state_key(r.req))) return;
  begin_run_confirmation(run_id);
}

void TcpEngine::begin_run_confirmation(std::uint64_t run_id) {
  Run& r = *runs_.at(run_id);
  const std::string key = state_key(r.req);
  const Duration timeout = suspect_wait_for(r.req, std::min<Duration>(r.timeout, std::chrono::seconds(1)));
  r.confirmation = start_confirmation(r.req, timeout, [this, run_id, key](bool down, Sample last, int tried,
                                                                          int refused) {
    auto rit = runs_.find(run_id);
    if (rit == runs_.end()) return;
    Run& run = *rit->second;
    run.confirmation = 0;
    if (down) {
      down_[key] = true;
      // The scheduled connect's own failure when it came, else the last
      // confirmation connect's (the scheduled one is still waiting).
      const std::string answer = last.reason == FailureReason::kUnreachable ? " unreachable" : " refused";
      const bool waiting = !run.failed;
      Sample out = run.failed ? std::move(*run.failed) : std::move(last);
      if (waiting) out.started = run.started + run.spacing * (run.next - 1);
      out.duration = reactor_.clock().now() - out.started;
      out.detail += "; " + (refused == tried ? std::to_string(refused) + " of " + std::to_string(tried) +
                                                   " confirmation connects" + answer
                                             : std::to_string(tried) + " of " + std::to_string(tried) +
                                                   " confirmation connects failed (" + std::to_string(refused) +
                                                   " refused)");
      out.values.emplace_back("confirmation", 1.0);
      finish_run(run_id, std::move(out));
      return;
    }
    // Alive after all: one connect was lost or refused by chance.
    if (run.attempt != 0) {
      run.alive = std::move(last);  // the scheduled connect is still waiting: its end continues the run
      return;
    }
    run.failed.reset();
    continue_run(run_id, std::move(last));
  });
}

void TcpEngine::continue_run(std::uint64_t run_id, Sample s) {
  Run& run = *runs_.at(run_id);
  if (run.next >= run.count || run.started + run.spacing * run.next <= reactor_.clock().now()) {
    finish_run(run_id, std::move(s));
    return;
  }
  run.timer = reactor_.call_at(run.started + run.spacing * run.next, [this, run_id] { run_next(run_id); });
}

void TcpEngine::on_run_attempt(std::uint64_t run_id, Sample s) {
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return;
  Run& r = *it->second;
  r.attempt = 0;
  if (r.suspect_timer != 0) reactor_.cancel(r.suspect_timer);
  r.suspect_timer = 0;
  const std::string key = state_key(r.req);
  if (s.ok) {
    down_.erase(key);
    // The connect answered while its confirmation ran: the target is alive.
    if (r.confirmation != 0) cancel_confirmation(r.confirmation);
    r.confirmation = 0;
    r.alive.reset();
    if (r.next >= r.count) {
      finish_run(run_id, std::move(s));
      return;
    }
    r.timer = reactor_.call_at(r.started + r.spacing * r.next, [this, run_id] { run_next(run_id); });
    return;
  }
  // One connect per run: the agent asks for the confirmation (confirm()).
  // Already confirmed down: the failure is the run's result.
  if (r.count == 1 || down_.count(key)) {
    finish_run(run_id, std::move(s));
    return;
  }
  if (r.confirmation != 0) {
    r.failed = std::move(s);  // its confirmation decides
    return;
  }
  if (r.alive) {
    // Its confirmation already found the target alive: this one was lost.
    Sample alive = std::move(*r.alive);
    r.alive.reset();
    continue_run(run_id, std::move(alive));
    return;
  }
  r.failed = std::move(s);
  begin_run_confirmation(run_id);
}

void TcpEngine::finish_run(std::uint64_t run_id, Sample s) {
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return;
  std::unique_ptr<Run> r = std::move(it->second);
  runs_.erase(it);
  if (r->timer != 0) reactor_.cancel(r->timer);
  if (r->suspect_timer != 0) reactor_.cancel(r->suspect_timer);
  if (r->confirmation != 0) cancel_confirmation(r->confirmation);
  if (auto a = attempts_.find(r->attempt); r->attempt != 0 && a != attempts_.end()) {
    // Confirmed down while its own connect still waits: close that socket now.
    a->second->req.done = [](Sample) {};
    finish(r->attempt, FailureReason::kTimeout, "");
  }
  r->req.done(std::move(s));
}

bool TcpEngine::confirm(ProbeRequest req) {
  if (down_.count(state_key(req))) return false;  // the evidence is in already
  auto shared = std::make_shared<ProbeRequest>(std::move(req));
  const SteadyTime started = reactor_.clock().now();
  const Duration timeout = suspect_wait_for(*shared, std::min<Duration>(shared->spec->timeout, std::chrono::seconds(1)));
  start_confirmation(*shared, timeout, [this, shared, started](bool down, Sample last, int tried, int refused) {
    if (down) down_[state_key(*shared)] = true;
    Sample out = std::move(last);
    out.started = started;
    out.duration = reactor_.clock().now() - started;
    out.detail = down ? "confirmation: " + std::to_string(tried) + " of " + std::to_string(tried) +
                            " connects failed (" + std::to_string(refused) + " refused)" +
                            (out.detail.empty() ? "" : "; " + out.detail)
                      : "confirmation: connected after " + std::to_string(tried) + " attempts";
    out.values.emplace_back("confirmation", 1.0);
    shared->done(std::move(out));
  });
  return true;
}

std::uint64_t TcpEngine::start_confirmation(const ProbeRequest& like, Duration timeout,
                                            std::function<void(bool, Sample, int, int)> done) {
  const std::uint64_t id = next_id_++;
  auto c = std::make_unique<Confirmation>();
  c->like.target = like.target;
  c->like.spec = like.spec;
  c->timeout = timeout;
  c->done = std::move(done);
  confirmations_.emplace(id, std::move(c));
  confirmation_step(id);
  return id;
}

void TcpEngine::cancel_confirmation(std::uint64_t id) {
  auto it = confirmations_.find(id);
  if (it == confirmations_.end()) return;
  Confirmation& c = *it->second;
  c.over = true;
  c.done = nullptr;
  if (c.timer != 0) reactor_.cancel(c.timer);
  c.timer = 0;
  if (c.finished == c.started) confirmations_.erase(it);
}

void TcpEngine::confirmation_step(std::uint64_t id) {
  auto it = confirmations_.find(id);
  if (it == confirmations_.end()) return;
  Confirmation& c = *it->second;
  c.timer = 0;
  if (c.over || c.started >= kConfirmAttempts) return;
  ++c.started;
  ProbeRequest one;
  one.target = c.like.target;
  one.spec = c.like.spec;
  one.done = [this, id](Sample s) {
    auto cit = confirmations_.find(id);
    if (cit == confirmations_.end()) return;
    Confirmation& conf = *cit->second;
    ++conf.finished;
    if (conf.over) {
      if (conf.finished == conf.started) confirmations_.erase(cit);
      return;
    }
    // A reset or "no route" is an answer from the network, never random loss.
    const bool answered_no = s.reason == FailureReason::kRefused || s.reason == FailureReason::kUnreachable;
    conf.refused_run = answered_no ? conf.refused_run + 1 : 0;
    const bool alive = s.ok;
    const bool down = !alive && (conf.refused_run >= kConfirmRefusals ||
                                 (conf.started >= kConfirmAttempts && conf.finished == conf.started));
    conf.last = std::move(s);
    if (!alive && !down) {
      // Refused at once: the next try need not wait for the spacing.
      if ((conf.last.reason == FailureReason::kRefused || conf.last.reason == FailureReason::kUnreachable) &&
          conf.timer != 0 && conf.started < kConfirmAttempts) {
        reactor_.cancel(conf.timer);
        conf.timer = reactor_.call_after(std::chrono::milliseconds(20), [this, id] { confirmation_step(id); });
      }
      return;
    }
    conf.over = true;
    if (conf.timer != 0) reactor_.cancel(conf.timer);
    conf.timer = 0;
    auto done = std::move(conf.done);
    Sample last = std::move(conf.last);
    const int tried = conf.finished;
    const int refusals = conf.refused_run;
    if (conf.finished == conf.started) confirmations_.erase(cit);
    done(down, std::move(last), tried, refusals);
  };
  start_attempt(std::move(one), c.timeout);
  // start_attempt never calls back from inside: `c` is still valid here.
  if (c.started < kConfirmAttempts && !c.over) {
    c.timer = reactor_.call_after(kConfirmSpacing, [this, id] { confirmation_step(id); });
  }
}

std::uint64_t TcpEngine::start_attempt(ProbeRequest req, Duration timeout) {
  const std::uint64_t id = next_id_++;
  auto a = std::make_unique<Attempt>();
  a->id = id;
  a->opts = static_cast<const TcpOptions*>(req.spec->options.get());
  a->started = reactor_.clock().now();
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
    } else if (at.opts->tls && !at.tls_established) {
      detail = "connected to " + at.peer + " but the TLS handshake did not finish";
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
  return id;
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
  a.lookup = reactor_.clock().now() - a.started;
  if (!addresses.ok()) {
    finish(id, FailureReason::kDnsFailure, addresses.error().message);
    return;
  }
  SocketAddress addr = addresses.value().front();
  a.address = addr;
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
  if (a.opts->tls && !a.tls_established) {
    continue_tls(a);
    return;
  }
  on_readable(a);
}

void TcpEngine::on_connected(Attempt& a) {
  a.connected = true;
  a.connected_at = reactor_.clock().now();
  // The handshake alone (name resolution excluded) teaches the suspicion wait.
  rtt_[state_key(a.req)].add(std::chrono::duration<double>(a.connected_at - a.started - a.lookup).count());
  if (a.opts->tls) {
    start_tls(a);
    return;
  }
  if (a.opts->expect_banner.empty()) {
    finish(a.id, FailureReason::kNone, "");
    return;
  }
  Status watched = reactor_.modify(a.fd, EPOLLIN | EPOLLRDHUP);
  if (!watched.ok()) finish(a.id, FailureReason::kError, watched.error().message);
}

void TcpEngine::start_tls(Attempt& a) {
  a.ssl = SSL_new(a.opts->tls_context.get());
  if (a.ssl == nullptr || SSL_set_fd(a.ssl, a.fd) != 1) {
    finish(a.id, FailureReason::kResourceLimit, "TLS: cannot start a session: " + openssl_error());
    return;
  }
  const std::string& name = a.opts->server_name.empty() ? a.req.target->address : a.opts->server_name;
  const bool ip_literal = Resolver::parse_literal(name).has_value();
  if (!ip_literal) SSL_set_tlsext_host_name(a.ssl, name.c_str());  // SNI carries names, never addresses
  if (!a.opts->insecure_skip_verify) {
    if (ip_literal) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(a.ssl), name.c_str());
    } else {
      SSL_set1_host(a.ssl, name.c_str());
    }
  }
  continue_tls(a);
}

// One step of the handshake; the reactor calls again when the socket is ready.
void TcpEngine::continue_tls(Attempt& a) {
  ERR_clear_error();
  const int r = SSL_connect(a.ssl);
  if (r == 1) {
    on_tls_established(a);
    return;
  }
  const int err = SSL_get_error(a.ssl, r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    Status watched = reactor_.modify(a.fd, err == SSL_ERROR_WANT_READ ? (EPOLLIN | EPOLLRDHUP) : EPOLLOUT);
    if (!watched.ok()) finish(a.id, FailureReason::kError, watched.error().message);
    return;
  }
  const long verify = SSL_get_verify_result(a.ssl);
  if (!a.opts->insecure_skip_verify && verify != X509_V_OK) {
    const std::string& name = a.opts->server_name.empty() ? a.req.target->address : a.opts->server_name;
    finish(a.id, FailureReason::kTlsVerify,
           "TLS: the certificate of " + a.peer + " does not verify for \"" + name + "\": " +
               X509_verify_cert_error_string(verify));
    return;
  }
  std::string why = openssl_error();
  if (why.empty()) why = err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN ? "the peer closed the connection" : "failed";
  finish(a.id, FailureReason::kTlsHandshake, "TLS handshake with " + a.peer + ": " + why);
}

void TcpEngine::on_tls_established(Attempt& a) {
  a.tls_established = true;
  a.tls_series.push_back({"probe_tls_version_info", {{"version", tls_version_label(a.ssl)}}, 1, LabeledValue::Type::kGauge});
  if (auto t = earliest_expiry(SSL_get_peer_cert_chain(a.ssl))) {
    a.tls_series.push_back({"probe_ssl_earliest_cert_expiry", {}, *t, LabeledValue::Type::kGauge});
  }
  // The chain the certificate verified through (none without verification).
  if (!a.opts->insecure_skip_verify) {
    if (auto t = earliest_expiry(SSL_get0_verified_chain(a.ssl))) {
      a.tls_series.push_back({"probe_ssl_last_chain_expiry_timestamp_seconds", {}, *t, LabeledValue::Type::kGauge});
    }
  }
  if (X509* cert = SSL_get1_peer_certificate(a.ssl)) {
    a.tls_series.push_back({"probe_ssl_last_chain_info", certificate_labels(cert), 1, LabeledValue::Type::kGauge});
    X509_free(cert);
  }
  if (a.opts->expect_banner.empty()) {
    finish(a.id, FailureReason::kNone, "");
    return;
  }
  Status watched = reactor_.modify(a.fd, EPOLLIN | EPOLLRDHUP);
  if (!watched.ok()) {
    finish(a.id, FailureReason::kError, watched.error().message);
    return;
  }
  on_readable(a);  // the banner may have come with the handshake's last flight, already read by OpenSSL
}

void TcpEngine::on_readable(Attempt& a) {
  const std::uint64_t id = a.id;
  char buf[4096];
  const std::size_t room = a.opts->banner_bytes - a.received.size();
  const std::size_t want = room < sizeof buf ? room : sizeof buf;
  ssize_t n = 0;
  if (a.ssl != nullptr) {
    ERR_clear_error();
    const int r = SSL_read(a.ssl, buf, static_cast<int>(want));
    if (r <= 0) {
      const int err = SSL_get_error(a.ssl, r);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
      if (err != SSL_ERROR_ZERO_RETURN && !(err == SSL_ERROR_SYSCALL && errno == 0)) {
        const std::string why = openssl_error();
        finish(id, FailureReason::kConnectionClosed,
               "reading banner over TLS from " + a.peer + ": " + (why.empty() ? std::string(std::strerror(errno)) : why));
        return;
      }
      n = 0;  // closed
    } else {
      n = r;
    }
  } else {
    n = ::recv(a.fd, buf, want, 0);
  }
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
    return;
  }
  // OpenSSL may hold more decrypted bytes than this read took: epoll will not say so.
  if (a.ssl != nullptr && SSL_pending(a.ssl) > 0) on_readable(a);
}

void TcpEngine::finish(std::uint64_t id, FailureReason reason, std::string detail) {
  auto it = attempts_.find(id);
  if (it == attempts_.end()) return;
  std::unique_ptr<Attempt> a = std::move(it->second);
  attempts_.erase(it);
  if (a->deadline_timer != 0) reactor_.cancel(a->deadline_timer);
  if (a->ssl != nullptr) {
    if (a->tls_established) SSL_shutdown(a->ssl);  // one close_notify, not waiting for the peer's
    SSL_free(a->ssl);
  }
  if (a->fd >= 0) {
    reactor_.unwatch(a->fd);
    if (a->connected) {
      // Close with a reset: no FIN exchange, no TIME_WAIT, as health checkers do.
      const linger reset{1, 0};
      ::setsockopt(a->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }
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
  if (!a->peer.empty() || reason == FailureReason::kDnsFailure) {
    add_address_series(s, a->lookup, a->address ? &*a->address : nullptr);
  }
  add_gauge(s, "probe_failed_due_to_regex", reason == FailureReason::kBannerMismatch ? 1 : 0);
  for (auto& v : a->tls_series) s.series.push_back(std::move(v));
  a->req.done(std::move(s));
}

}  // namespace nightshift::tcp
