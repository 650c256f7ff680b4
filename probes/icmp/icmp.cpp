#include "probes/icmp/icmp.h"

#include <linux/errqueue.h>
#include <linux/icmp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>
#include <random>

#include "core/log.h"

namespace nightshift::icmp {

namespace {

constexpr std::size_t kMaxPayload = 1472;  // 1500-byte MTU minus IPv4 and ICMP headers
constexpr std::size_t kSlot = kIcmpHeaderSize + kMaxPayload;
constexpr std::size_t kRecvSlot = 2048;  // an IPv4 header, ICMP error and quote fit
constexpr std::size_t kRecvControl = 256;
constexpr std::size_t kRecvBatch = 64;
constexpr std::size_t kRecvRounds = 16;  // batches per readiness event; epoll calls again

std::int64_t realtime_ns() {
  // Kernel receive stamps are CLOCK_REALTIME: the send stamp must come from the
  // same clock. (The Clock interface is for scheduling; this is a measurement.)
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

Family family_of(int af) { return af == AF_INET6 ? Family::kIPv6 : Family::kIPv4; }
int af_of(Family f) { return f == Family::kIPv6 ? AF_INET6 : AF_INET; }
std::string_view family_name(Family f) { return f == Family::kIPv6 ? "ipv6" : "ipv4"; }

Address address_of(const sockaddr_storage& ss) {
  Address a;
  if (ss.ss_family == AF_INET6) {
    a.family = Family::kIPv6;
    std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, 16);
  } else {
    a.family = Family::kIPv4;
    std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, 4);
  }
  return a;
}

Address address_of(const sockaddr* sa) {
  sockaddr_storage ss{};
  std::memcpy(&ss, sa, sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
  return address_of(ss);
}

FailureReason classify_errno(int err) {
  switch (err) {
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENETDOWN:
      return FailureReason::kUnreachable;
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EADDRNOTAVAIL:
      return FailureReason::kResourceLimit;
    default:
      return FailureReason::kError;
  }
}

std::string format_seconds(Duration d) {
  const double s = std::chrono::duration<double>(d).count();
  char buf[32];
  if (s < 1) {
    std::snprintf(buf, sizeof buf, "%gms", s * 1000);
  } else {
    std::snprintf(buf, sizeof buf, "%gs", s);
  }
  return buf;
}

}  // namespace

std::string_view to_string(SocketKind kind) {
  switch (kind) {
    case SocketKind::kAuto:
      return "auto";
    case SocketKind::kDatagram:
      return "datagram";
    case SocketKind::kRaw:
      return "raw";
  }
  return "auto";
}

// ---------------------------------------------------------------------------
// Options

std::shared_ptr<const ProbeOptions> parse_options(OptionReader& reader, std::string& default_name) {
  auto opts = std::make_shared<IcmpOptions>();
  bool ok = true;
  if (auto count = reader.integer("count", 1, 100, false)) opts->count = static_cast<int>(*count);
  if (auto spacing = reader.duration("spacing", false)) {
    if (*spacing < std::chrono::milliseconds(1) || *spacing > std::chrono::seconds(10)) {
      reader.error("spacing", "expected a duration from 1ms to 10s, found " + format_seconds(*spacing));
      ok = false;
    } else {
      opts->spacing = *spacing;
    }
  }
  if (auto size = reader.integer("payload_size", static_cast<std::int64_t>(kStampSize),
                                 static_cast<std::int64_t>(kMaxPayload), false)) {
    opts->payload_size = static_cast<std::size_t>(*size);
  }
  if (!read_ip_family(reader, opts->family)) ok = false;
  default_name = "icmp";
  if (!ok) return nullptr;
  return opts;
}

namespace {
const Measure kMeasures[] = {
    {"rtt_seconds", MeasureType::kNumber, "seconds",
     "one observation per echo reply (kernel receive timestamp), buckets 100 us to 5 s", Measure::Export::kHistogram},
    {"loss_ratio", MeasureType::kNumber, "ratio", "share of the round's echo requests that got no reply (0 to 1)"},
    {"jitter_seconds", MeasureType::kNumber, "seconds",
     "mean absolute difference of consecutive RTTs in the round (only with 2+ replies)"},
    {"reply_ttl", MeasureType::kNumber, "", "TTL / hop limit of the last reply; a change of hop count shows a reroute"},
    {"confirmation", MeasureType::kNumber, "", "1 on the sample of a confirmation burst (evidence after a miss)"},
};
}  // namespace

std::span<const Measure> measures() { return kMeasures; }

std::unique_ptr<ProbeEngine> make_engine(EngineContext& context) { return std::make_unique<IcmpEngine>(context); }

// ---------------------------------------------------------------------------
// Results

double RoundResult::jitter_seconds() const {
  double sum = 0;
  int n = 0;
  const PacketResult* prev = nullptr;
  for (const auto& p : packets) {
    if (p.outcome != PacketResult::Outcome::kReply) continue;
    if (prev != nullptr) {
      sum += std::fabs(p.rtt_seconds - prev->rtt_seconds);
      ++n;
    }
    prev = &p;
  }
  return n == 0 ? 0 : sum / n;
}

int RoundResult::reply_ttl() const {
  for (auto it = packets.rbegin(); it != packets.rend(); ++it) {
    if (it->outcome == PacketResult::Outcome::kReply) return it->ttl;
  }
  return -1;
}

// ---------------------------------------------------------------------------
// Engine state

struct IcmpEngine::Socket {
  int fd = -1;
  Family family = Family::kIPv4;
  SocketKind kind = SocketKind::kRaw;
  Framing framing() const {
    return family == Family::kIPv4 && kind == SocketKind::kRaw ? Framing::kWithIpHeader : Framing::kIcmpOnly;
  }
};

struct IcmpEngine::Packet {
  std::uint64_t round = 0;
  std::int64_t sent_real_ns = 0;
  SteadyTime sent_steady{};
  std::uint16_t index = 0;
  std::uint8_t ttl = 0;  // 0: the socket's default
  bool sent = false;
  bool done = false;
};

struct IcmpEngine::Round {
  union {
    sockaddr_in v4;
    sockaddr_in6 v6;
  } addr{};
  socklen_t addr_len = 0;
  Family family = Family::kIPv4;
  Address address;
  int count = 1;
  int queued = 0;
  int completed = 0;
  int first_ttl = 0;
  int ttl_step = 0;
  Duration spacing{};
  Duration timeout{};
  std::size_t payload_size = 56;
  SteadyTime started{};
  SteadyTime end = SteadyTime::max();  // bounded rounds: no packet waits past this
  RoundResult result;
  std::function<void(RoundResult)> done;
  std::vector<std::uint64_t> tokens;  // by index, once queued
  // Scheduled rounds watch their echoes: one unanswered after suspect_wait
  // starts a confirmation (on_suspect) for target_key.
  Duration suspect_wait{};
  std::string target_key;
  TargetState* state = nullptr;  // targets_[target_key]: held by its run's count while the round lasts
  Duration confirm_wait{};
  // Accelerated rounds: an answered confirmation makes the round a success.
  bool alive_on_confirmation = false;
  // Confirmation sequences stop sending at the first reply.
  bool stop_on_reply = false;
  bool stopped = false;
  // A confirmation for this round is in flight: its result decides how the
  // round ends, so finishing waits for it.
  bool hold_finish = false;
  bool finish_pending = false;
};

IcmpEngine::IcmpEngine(EngineContext& context, EngineSettings settings)
    : reactor_(context.reactor),
      resolver_(context.resolver),
      settings_(settings),
      budget_tokens_(settings.extra_packets_burst) {
  std::random_device rd;
  std::uint64_t c = 0;
  while (c == 0) c = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  cookie_ = c;
  identifier_ = static_cast<std::uint16_t>(rd());
  budget_updated_ = reactor_.clock().now();
  if (settings_.send_batch == 0) settings_.send_batch = 1;
  send_buffer_.resize(settings_.send_batch * kSlot);
  recv_buffer_.resize(kRecvBatch * (kRecvSlot + kRecvControl));
}

IcmpEngine::~IcmpEngine() {
  for (auto& s : sockets_) {
    if (s && s->fd >= 0) {
      reactor_.unwatch(s->fd);
      ::close(s->fd);
    }
  }
  if (due_timer_ != 0) reactor_.cancel(due_timer_);
  if (pump_timer_ != 0) reactor_.cancel(pump_timer_);
}

SocketKind IcmpEngine::socket_kind(Family family) const {
  const auto& s = sockets_[family == Family::kIPv6 ? 1 : 0];
  return s ? s->kind : SocketKind::kAuto;
}

IcmpEngine::Socket* IcmpEngine::socket_for(Family family, std::string* why_not) {
  const int slot = family == Family::kIPv6 ? 1 : 0;
  if (sockets_[slot]) return sockets_[slot].get();
  if (!socket_errors_[slot].empty()) {  // tried before and failed: do not spam the log
    if (why_not) *why_not = socket_errors_[slot];
    return nullptr;
  }
  const int af = af_of(family);
  const int proto = family == Family::kIPv6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
  std::string why;
  int fd = -1;
  SocketKind kind = SocketKind::kAuto;
  if (settings_.socket_kind != SocketKind::kRaw) {
    fd = ::socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
    if (fd >= 0) {
      kind = SocketKind::kDatagram;
      why = "unprivileged ICMP datagram socket allowed (net.ipv4.ping_group_range includes our group)";
    } else {
      why = std::string("datagram socket refused (") + std::strerror(errno) +
            "; net.ipv4.ping_group_range excludes our group)";
    }
  }
  if (fd < 0 && settings_.socket_kind != SocketKind::kDatagram) {
    fd = ::socket(af, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
    if (fd >= 0) {
      kind = SocketKind::kRaw;
      why = settings_.socket_kind == SocketKind::kRaw ? "raw socket requested" : why + ", using a raw socket";
    } else {
      why +=
          std::string(why.empty() ? "" : "; ") + "raw socket refused (" + std::strerror(errno) + "; needs CAP_NET_RAW)";
    }
  }
  if (fd < 0) {
    socket_errors_[slot] = "cannot open an ICMP " + std::string(family_name(family)) + " socket: " + why;
    log::error("icmp socket unavailable", {{"family", family_name(family)}, {"why", why}});
    if (why_not) *why_not = socket_errors_[slot];
    return nullptr;
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
  const int rcvbuf = settings_.receive_buffer_bytes;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  if (family == Family::kIPv4) {
    // Don't Fragment without path-MTU bookkeeping: a probe never wants to be
    // fragmented (a too-small MTU on the path comes back as "fragmentation
    // needed"), and the kernel then skips choosing an IP ID for each packet.
    const int probe = IP_PMTUDISC_PROBE;
    ::setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof probe);
    if (kind == SocketKind::kDatagram) {
      ::setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof one);
      ::setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one);
    } else {
      // Only replies and the errors we parse: not every echo request the host sees.
      icmp_filter filter{};
      filter.data = ~((1u << kV4EchoReply) | (1u << kV4DestinationUnreachable) | (1u << kV4TimeExceeded));
      ::setsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, sizeof filter);
    }
  } else {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one);
    if (kind == SocketKind::kDatagram) {
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one);
    } else {
      icmp6_filter filter{};
      ICMP6_FILTER_SETBLOCKALL(&filter);
      ICMP6_FILTER_SETPASS(kV6EchoReply, &filter);
      ICMP6_FILTER_SETPASS(kV6DestinationUnreachable, &filter);
      ICMP6_FILTER_SETPASS(kV6TimeExceeded, &filter);
      ::setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter);
    }
  }
  auto s = std::make_unique<Socket>();
  s->fd = fd;
  s->family = family;
  s->kind = kind;
  Status watched = reactor_.watch(fd, EPOLLIN, [this, family](std::uint32_t events) { on_readable(family, events); });
  if (!watched.ok()) {
    ::close(fd);
    socket_errors_[slot] = "cannot watch the ICMP socket: " + watched.error().message;
    if (why_not) *why_not = socket_errors_[slot];
    return nullptr;
  }
  log::info("icmp socket opened", {{"family", family_name(family)}, {"kind", to_string(kind)}, {"why", why}});
  sockets_[slot] = std::move(s);
  return sockets_[slot].get();
}

// ---------------------------------------------------------------------------
// Starting probes

std::string describe_trace(const TraceReport& report) {
  std::string out = "path to " + report.address + ":";
  char rtt[32];
  for (const auto& hop : report.hops) {
    out += " " + std::to_string(hop.ttl) + " ";
    if (hop.from) {
      std::snprintf(rtt, sizeof rtt, " %.2fms", hop.rtt_seconds * 1e3);
      out += hop.from->to_string() + rtt;
    } else {
      out += "*";
    }
    out += ",";
  }
  if (!report.hops.empty()) out.pop_back();
  const Hop* last = report.last_hop();
  if (report.reached) {
    out += "; destination reached";
  } else if (last != nullptr) {
    out += "; last answering hop: TTL " + std::to_string(last->ttl) + " (" +
           (last->from ? last->from->to_string() : std::string("?")) + "); destination not reached";
  } else {
    // Silence names no culprit: a dead LAN host, a filter that drops our
    // probes, or a cut anywhere on the path all look alike from here.
    const std::size_t n = report.hops.size();
    out += "; no hop answered within " + std::to_string(n) + (n == 1 ? " hop" : " hops");
  }
  return out;
}

bool IcmpEngine::diagnose(const std::shared_ptr<const Target>& target, const ProbeSpec& spec,
                          std::function<void(std::string finding)> done) {
  const auto* opts = static_cast<const IcmpOptions*>(spec.options.get());
  resolver_.resolve(target->address, opts->family,
                    [this, alive = std::weak_ptr<IcmpEngine*>(self_), target,
                     done = std::move(done)](Result<std::vector<SocketAddress>> addresses) {
                      if (alive.expired() || !addresses.ok()) return;
                      Status s = trace(addresses.value().front(), TraceSpec{},
                                       [done](TraceReport report) { done(describe_trace(report)); });
                      if (!s.ok()) {
                        log::debug("path trace refused", {{"target", target->name}, {"error", s.error().message}});
                      }
                    });
  return true;
}

bool IcmpEngine::confirm(ProbeRequest req) {
  const auto* opts = static_cast<const IcmpOptions*>(req.spec->options.get());
  // A spread round confirms its own misses; asked again for a target already
  // confirmed down (or being confirmed), the evidence is there or coming.
  const std::string key = req.target->name + '\0' + req.spec->name;
  {
    const TargetState& ts = target_state(key);
    if (ts.down || ts.confirming) return false;
  }
  const SteadyTime started = reactor_.clock().now();
  auto shared = std::make_shared<ProbeRequest>(std::move(req));
  resolver_.resolve(shared->target->address, opts->family,
                    [this, alive = std::weak_ptr<IcmpEngine*>(self_), shared, started, opts,
                     key](Result<std::vector<SocketAddress>> addresses) {
                      if (alive.expired() || !addresses.ok()) return;  // the scheduled probe reports DNS failures
                      const TargetState& ts = target_state(key);
                      BurstSpec spec;
                      spec.count = settings_.confirm_count;
                      spec.spacing = settings_.confirm_spacing;
                      // The last echo waits what a scheduled round's confirmation waits
                      // (the RTT learned from this target, 250 ms to 1 s), not the
                      // whole cap: asked by a peer, the answer is what the fleet waits on.
                      spec.timeout = suspect_wait(ts.srtt, ts.rttvar, std::chrono::milliseconds(250),
                                                  std::min<Duration>(shared->spec->timeout, std::chrono::seconds(1)));
                      spec.payload_size = opts->payload_size;
                      spec.stop_on_reply = true;
                      Status s = confirm(addresses.value().front(), spec, [this, shared, started](BurstReport b) {
                        const RoundResult& r = b.result;
                        Sample sample = make_sample(*shared, started);
                        sample.duration = reactor_.clock().now() - started;
                        sample.ok = r.ok();
                        sample.reason = r.reason;
                        sample.detail = r.ok() ? "confirmation: a reply after " + std::to_string(r.sent) +
                                                     (r.sent == 1 ? " echo" : " echoes")
                                               : "confirmation: " + std::to_string(r.sent) + " of " +
                                                     std::to_string(r.sent) + " echoes lost" +
                                                     (r.detail.empty() ? "" : "; " + r.detail);
                        sample.values.emplace_back("confirmation", 1.0);
                        sample.values.emplace_back("loss_ratio", r.loss_ratio());
                        for (const auto& p : r.packets) {
                          if (p.outcome == PacketResult::Outcome::kReply) {
                            sample.observations.emplace_back("rtt_seconds", p.rtt_seconds);
                          }
                        }
                        shared->done(std::move(sample));
                      });
                      if (!s.ok()) log::debug("confirmation burst refused", {{"target", shared->target->name},
                                                                           {"error", s.error().message}});
                    });
  return true;
}

IcmpEngine::TargetState& IcmpEngine::target_state(const std::string& key) {
  TargetState& ts = targets_[key];
  ts.used = reactor_.clock().now();
  return ts;
}

void IcmpEngine::on_suspect(std::uint64_t round_id, std::size_t index) {
  auto rit = rounds_.find(round_id);
  if (rit == rounds_.end()) return;
  Round& r = *rit->second;
  if (r.target_key.empty() || r.hold_finish) return;
  // A later echo answered already: the target is alive, the miss was loss.
  for (std::size_t j = index + 1; j < r.result.packets.size(); ++j) {
    if (r.result.packets[j].outcome == PacketResult::Outcome::kReply) return;
  }
  TargetState& ts = *r.state;
  ts.used = reactor_.clock().now();
  if (ts.confirming || ts.down) return;
  sockaddr_storage ss{};
  std::memcpy(&ss, &r.addr, r.addr_len);
  SocketAddress address;
  address.storage = ss;
  address.length = r.addr_len;
  BurstSpec spec;
  spec.count = settings_.confirm_count;
  spec.spacing = settings_.confirm_spacing;
  spec.timeout = r.confirm_wait;
  spec.payload_size = r.payload_size;
  spec.stop_on_reply = true;
  const std::string key = r.target_key;
  Status s = confirm(address, spec, [this, key, round_id, index](BurstReport b) {
    TargetState& state = target_state(key);
    state.confirming = false;
    const RoundResult& c = b.result;
    // Every packet lost or refused; not a socket this engine could not open.
    bool all_lost = c.received == 0 && !(c.sent == 0 && c.reason == FailureReason::kError);
    for (const auto& p : c.packets) all_lost = all_lost && p.outcome != PacketResult::Outcome::kNotSent;
    if (all_lost) state.down = true;
    auto it = rounds_.find(round_id);
    if (it == rounds_.end()) return;
    Round& round = *it->second;
    round.hold_finish = false;
    // The missed echo or a later one of the round answered meanwhile (slow,
    // not lost): alive. Replies to echoes before the miss say nothing about
    // now: a link cut in the middle of a round follows answered echoes.
    bool answered_since = false;
    for (std::size_t j = index; j < round.result.packets.size(); ++j) {
      answered_since = answered_since || round.result.packets[j].outcome == PacketResult::Outcome::kReply;
    }
    if (all_lost && answered_since) {
      all_lost = false;
      state.down = false;
    }
    if (round.alive_on_confirmation && c.received > 0) round.result.confirmed_alive = true;
    // One line per miss: when a cut was noticed and what the evidence said.
    log::debug("icmp confirmation done", {{"target", key.substr(0, key.find('\0'))},
                                         {"sent", std::to_string(c.sent)},
                                         {"received", std::to_string(c.received)},
                                         {"verdict", all_lost ? "down" : "alive"}});
    if (all_lost) {
      round.result.confirmed_down = true;
      round.result.confirmation_sent = 0;
      for (const auto& p : c.packets) round.result.confirmation_sent += p.outcome != PacketResult::Outcome::kNotSent ? 1 : 0;
      if (c.reason != FailureReason::kTimeout && c.reason != FailureReason::kNone) {
        round.result.reason = c.reason;
        round.result.detail = c.detail;
      }
      abort_round(round_id);
    } else if (round.finish_pending) {
      finish_round(round_id);
    }
  });
  if (!s.ok()) {
    log::debug("confirmation refused", {{"target", key.substr(0, key.find('\0'))}, {"error", s.error().message}});
    return;
  }
  ts.confirming = true;
  r.hold_finish = true;
  if (r.result.suspected < 0) r.result.suspected = static_cast<int>(index);
}

void IcmpEngine::submit(ProbeRequest req) {
  const auto* opts = static_cast<const IcmpOptions*>(req.spec->options.get());
  const SteadyTime started = reactor_.clock().now();
  ++probes_in_flight_;
  const std::string host = req.target->address;
  const AddressFamily family = opts->family;
  std::string key = req.target->name + '\0' + req.spec->name;
  // Looked up once per run: the erase below never takes an entry with a run
  // in flight, so the node outlives the run.
  TargetState* const state = &target_state(key);
  ++state->runs;
  // Forget targets a reload removed: nothing has probed them for an hour.
  if (++submits_ % 4096 == 0) {
    const SteadyTime now = reactor_.clock().now();
    std::erase_if(targets_,
                  [&](const auto& e) { return e.second.runs == 0 && now - e.second.used > std::chrono::hours(1); });
  }
  auto shared = std::make_shared<ProbeRequest>(std::move(req));
  // What blackbox_exporter reports of one ping, next to the round's own figures.
  struct Resolved {
    Duration lookup{};
    std::optional<SocketAddress> address;
  };
  auto resolved = std::make_shared<Resolved>();
  auto finish = [this, shared, started, resolved, state](RoundResult r) {
    Sample s = make_sample(*shared, started);
    s.ok = r.ok();
    s.reason = r.reason;
    s.detail = std::move(r.detail);
    // One probe is one echo, as blackbox times it: the lookup and the first
    // answered request's round trip; the round's spacing is not the target's
    // slowness. A round with no answer took as long as it waited.
    const PacketResult* first = nullptr;
    for (const auto& p : r.packets) {
      if (p.outcome == PacketResult::Outcome::kReply) {
        first = &p;
        break;
      }
    }
    const Duration rtt = first ? std::chrono::duration_cast<Duration>(std::chrono::duration<double>(first->rtt_seconds))
                               : Duration{};
    const SteadyTime now = reactor_.clock().now();
    s.duration = first ? resolved->lookup + rtt : now - started;
    TargetState& ts = *state;
    ts.used = now;
    --ts.runs;
    if (r.ok()) ts.down = false;
    for (std::size_t i = 0; i < r.packets.size() && r.learn_rtt; ++i) {
      const PacketResult& p = r.packets[i];
      if (p.outcome != PacketResult::Outcome::kReply) continue;
      if (r.suspected >= 0 && static_cast<int>(i) >= r.suspected) break;
      // RFC 6298's smoothing (alpha 1/8, beta 1/4).
      if (!ts.srtt) {
        ts.srtt = p.rtt_seconds;
        ts.rttvar = p.rtt_seconds / 2;
      } else {
        ts.rttvar += (std::fabs(*ts.srtt - p.rtt_seconds) - ts.rttvar) / 4;
        *ts.srtt += (p.rtt_seconds - *ts.srtt) / 8;
      }
    }
    if (r.confirmed_down) {
      int lost = 0;
      for (const auto& p : r.packets) lost += p.outcome == PacketResult::Outcome::kLost ? 1 : 0;
      lost = std::max(lost, 1);  // the miss may have been an ICMP error rather than a loss
      s.detail = "no reply from " + shared->target->address + " to " + std::to_string(lost) +
                 (lost == 1 ? " echo" : " echoes") + " and " + std::to_string(r.confirmation_sent) + " of " +
                 std::to_string(r.confirmation_sent) + " confirmation echoes lost" +
                 (r.reason == FailureReason::kTimeout || s.detail.empty() ? "" : "; " + s.detail);
      s.values.emplace_back("confirmation", 1.0);
    }
    // Sized once: a sample is built 10 000 times a second at 10 000 targets.
    s.values.reserve(4);
    s.observations.reserve(r.packets.size());
    s.series.reserve(8);
    if (r.sent > 0) {
      s.values.emplace_back("loss_ratio", r.loss_ratio());
      if (r.received >= 2) s.values.emplace_back("jitter_seconds", r.jitter_seconds());
      if (r.reply_ttl() >= 0) s.values.emplace_back("reply_ttl", r.reply_ttl());
      for (const auto& p : r.packets) {
        if (p.outcome == PacketResult::Outcome::kReply) s.observations.emplace_back("rtt_seconds", p.rtt_seconds);
      }
    }
    add_address_series(s, resolved->lookup, resolved->address ? &*resolved->address : nullptr);
    // blackbox's phases: resolve, setup (nightshift keeps one socket per
    // family open: no per-probe setup) and rtt (0 without an answer, as blackbox).
    add_gauge(s, "probe_icmp_duration_seconds", std::chrono::duration<double>(resolved->lookup).count(),
              {{"phase", "resolve"}});
    add_gauge(s, "probe_icmp_duration_seconds", 0, {{"phase", "setup"}});
    add_gauge(s, "probe_icmp_duration_seconds", first ? first->rtt_seconds : 0, {{"phase", "rtt"}});
    if (first && first->ttl >= 0) add_gauge(s, "probe_icmp_reply_hop_limit", first->ttl);
    --probes_in_flight_;
    shared->done(std::move(s));
  };
  resolver_.resolve(host, family, [this, alive = std::weak_ptr<IcmpEngine*>(self_), shared, finish, resolved,
                                   started, opts, key, state](Result<std::vector<SocketAddress>> addresses) {
    if (alive.expired()) return;  // the engine went away with a reload or shutdown
    resolved->lookup = reactor_.clock().now() - started;
    if (!addresses.ok()) {
      RoundResult r;
      r.reason = FailureReason::kDnsFailure;
      r.detail = addresses.error().message;
      finish(std::move(r));
      return;
    }
    resolved->address = addresses.value().front();
    const SocketAddress& address = *resolved->address;
    // An accelerated round spans less and sends its share of the echoes.
    const bool accelerated = shared->span > Duration::zero();
    const Duration interval = accelerated ? shared->span : shared->spec->interval;
    const int count = std::clamp(run_packets(opts->count, shared->spec->interval, shared->span), 1, 65535);
    const Duration timeout = accelerated ? std::min(shared->spec->timeout, interval * 9 / 10) : shared->spec->timeout;
    const TargetState& ts = *state;
    const Duration cap = std::min<Duration>(timeout, std::chrono::seconds(1));
    if (opts->spacing == Duration::zero()) {
      const SpreadPlan plan = spread_plan(count, interval, timeout);
      // Each echo may wait the whole timeout, overlapping the next one's send;
      // the round ends within its interval (the last echo waits plan.wait).
      const std::uint64_t id = start_round(address, count, plan.spacing, timeout,
                                           std::clamp(opts->payload_size, kStampSize, kMaxPayload), 0, 0, true, finish);
      if (auto it = rounds_.find(id); it != rounds_.end()) it->second->end = it->second->started + plan.spacing * (count - 1) + plan.wait;
      if (auto it = rounds_.find(id); it != rounds_.end() && settings_.confirm_count > 0) {
        Round& r = *it->second;
        r.target_key = key;
        r.state = state;
        r.alive_on_confirmation = accelerated;
        r.result.learn_rtt = !ts.down;
        // Before the echo's own deadline, so that a miss is noticed while it can still start the evidence.
        r.suspect_wait = suspect_wait(ts.srtt, ts.rttvar, std::chrono::milliseconds(200), std::min(cap, plan.wait * 3 / 4));
        r.confirm_wait = suspect_wait(ts.srtt, ts.rttvar, std::chrono::milliseconds(250), cap);
      }
      return;
    }
    RoundSpec spec;
    spec.count = count;
    spec.spacing = opts->spacing;
    spec.timeout = timeout;
    spec.payload_size = opts->payload_size;
    spec.fit_in_timeout = true;  // the probe's timeout bounds the whole round
    ping(address, spec, finish);
  });
}

bool IcmpEngine::accelerates(const ProbeSpec& spec) const {
  const auto* opts = static_cast<const IcmpOptions*>(spec.options.get());
  return opts != nullptr && opts->spacing == Duration::zero() && settings_.confirm_count > 0;
}

SpreadPlan spread_plan(int count, Duration interval, Duration timeout) {
  SpreadPlan plan;
  count = std::max(count, 1);
  plan.spacing = interval / count;
  plan.wait = std::min(timeout, plan.spacing);
  if (plan.wait <= Duration::zero()) plan.wait = timeout;
  return plan;
}

Duration fitted_spacing(int count, Duration spacing, Duration timeout) {
  if (count <= 1 || timeout <= Duration::zero()) return spacing;
  return std::min(spacing, timeout / 2 / (count - 1));
}

void IcmpEngine::ping(const SocketAddress& address, const RoundSpec& spec, std::function<void(RoundResult)> done) {
  const int count = std::clamp(spec.count, 1, 65535);
  const Duration spacing = spec.fit_in_timeout ? fitted_spacing(count, spec.spacing, spec.timeout) : spec.spacing;
  start_round(address, count, spacing, spec.timeout, std::clamp(spec.payload_size, kStampSize, kMaxPayload), 0, 0,
              spec.fit_in_timeout, std::move(done));
}

std::uint64_t IcmpEngine::start_round(const SocketAddress& address, int count, Duration spacing, Duration timeout,
                                      std::size_t payload_size, int first_ttl, int ttl_step, bool bounded,
                                      std::function<void(RoundResult)> done) {
  const std::uint64_t id = next_round_++;
  auto r = std::make_unique<Round>();
  r->family = family_of(address.family());
  if (r->family == Family::kIPv6) {
    std::memcpy(&r->addr.v6, &address.storage, sizeof(sockaddr_in6));
    r->addr_len = sizeof(sockaddr_in6);
  } else {
    std::memcpy(&r->addr.v4, &address.storage, sizeof(sockaddr_in));
    r->addr_len = sizeof(sockaddr_in);
  }
  r->address = address_of(address.storage);
  r->count = count;
  r->spacing = spacing;
  r->timeout = timeout;
  r->payload_size = payload_size;
  r->first_ttl = first_ttl;
  r->ttl_step = ttl_step;
  r->started = reactor_.clock().now();
  if (bounded) r->end = r->started + timeout;
  r->result.packets.resize(static_cast<std::size_t>(count));
  r->done = std::move(done);
  std::string why_not;
  if (socket_for(r->family, &why_not) == nullptr) {
    // Never call back from inside the starting call.
    r->result.reason = FailureReason::kError;
    r->result.detail = why_not;
    // Posted: the engine may be gone by then, and then nobody is called.
    reactor_.post([alive = std::weak_ptr<IcmpEngine*>(self_), cb = std::move(r->done),
                   result = std::move(r->result)]() mutable {
      if (!alive.expired()) cb(std::move(result));
    });
    return id;
  }
  rounds_.emplace(id, std::move(r));
  queue_packet(id);
  return id;
}

void IcmpEngine::queue_packet(std::uint64_t round_id) {
  auto it = rounds_.find(round_id);
  if (it == rounds_.end()) return;
  Round& r = *it->second;
  if (r.stopped || r.queued >= r.count) return;
  const int index = r.queued++;
  const std::uint64_t token = next_token_++;
  r.tokens.push_back(token);
  Packet& p = packets_[token];
  p.round = round_id;
  p.index = static_cast<std::uint16_t>(index);
  if (r.ttl_step != 0 || r.first_ttl != 0)
    p.ttl = static_cast<std::uint8_t>(std::clamp(r.first_ttl + index * r.ttl_step, 1, 255));
  send_queue_.push_back(token);
  arm_pump();
  if (r.queued < r.count) {
    due_.push(Due{r.started + r.spacing * r.queued, round_id, DueKind::kNextSend});
    arm_due();
  }
}

// ---------------------------------------------------------------------------
// Sending: batches of up to send_batch packets per reactor turn, so that
// reading replies interleaves with a large round's sends.

void IcmpEngine::arm_pump() {
  if (pump_timer_ != 0 || send_queue_.empty()) return;
  pump_timer_ = reactor_.call_at(reactor_.clock().now(), [this] {
    pump_timer_ = 0;
    pump();
  });
}

void IcmpEngine::pump() {
  // Taken for this call and given back at every return: a nested pump()
  // (none today) would find them empty and size its own.
  PumpBuffers buffers = std::move(pump_buffers_);
  struct GiveBack {
    PumpBuffers& from;
    PumpBuffers& to;
    ~GiveBack() { to = std::move(from); }
  } give_back{buffers, pump_buffers_};
  constexpr std::size_t kControl = CMSG_SPACE(sizeof(int));
  std::vector<mmsghdr>& msgs = buffers.msgs;
  std::vector<iovec>& iovs = buffers.iovs;
  std::vector<std::byte>& control = buffers.control;
  std::vector<std::uint64_t>& tokens = buffers.tokens;
  msgs.resize(settings_.send_batch);
  iovs.resize(settings_.send_batch);
  control.resize(settings_.send_batch * kControl);
  tokens.clear();
  tokens.reserve(settings_.send_batch);
  std::size_t budget_rounds = 4;  // batches per turn
  while (!send_queue_.empty() && budget_rounds-- > 0) {
    tokens.clear();
    Family family = Family::kIPv4;
    std::size_t n = 0;
    while (!send_queue_.empty() && n < settings_.send_batch) {
      const std::uint64_t token = send_queue_.front();
      auto pit = packets_.find(token);
      if (pit == packets_.end()) {
        send_queue_.pop_front();
        continue;
      }
      Round& r = *rounds_.at(pit->second.round);
      if (n == 0) family = r.family;
      if (r.family != family) break;  // one socket per call
      const Socket& s = *sockets_[family == Family::kIPv6 ? 1 : 0];
      EchoRequest req;
      req.identifier = s.kind == SocketKind::kRaw ? identifier_ : 0;  // datagram: kernel sets it
      req.sequence = static_cast<std::uint16_t>(token & 0xffff);
      req.stamp = Stamp{cookie_, token};
      req.payload_size = r.payload_size;
      std::span<std::byte> slot(send_buffer_.data() + n * kSlot, kSlot);
      iovs[n].iov_base = slot.data();
      iovs[n].iov_len = encode_echo_request(family, req, slot);
      msghdr& h = msgs[n].msg_hdr;
      h = msghdr{};
      h.msg_name = &r.addr;
      h.msg_namelen = r.addr_len;
      h.msg_iov = &iovs[n];
      h.msg_iovlen = 1;
      if (pit->second.ttl != 0) {
        h.msg_control = control.data() + n * kControl;
        h.msg_controllen = kControl;
        cmsghdr* c = CMSG_FIRSTHDR(&h);
        c->cmsg_level = family == Family::kIPv6 ? IPPROTO_IPV6 : IPPROTO_IP;
        c->cmsg_type = family == Family::kIPv6 ? IPV6_HOPLIMIT : IP_TTL;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        const int ttl = pit->second.ttl;
        std::memcpy(CMSG_DATA(c), &ttl, sizeof ttl);
      }
      tokens.push_back(token);
      send_queue_.pop_front();
      ++n;
    }
    if (n == 0) continue;
    const Socket& s = *sockets_[family == Family::kIPv6 ? 1 : 0];
    const std::int64_t real0 = realtime_ns();
    const SteadyTime steady0 = reactor_.clock().now();
    const int sent = ::sendmmsg(s.fd, msgs.data(), static_cast<unsigned>(n), 0);
    const int err = errno;
    const std::int64_t real1 = realtime_ns();
    const SteadyTime steady1 = reactor_.clock().now();
    const std::size_t ok = sent > 0 ? static_cast<std::size_t>(sent) : 0;
    for (std::size_t i = 0; i < ok; ++i) {
      Packet& p = packets_.at(tokens[i]);
      // Packet i left about i/n of the way through the call; never later than that.
      p.sent_real_ns = real0 + (real1 - real0) * static_cast<std::int64_t>(i) / static_cast<std::int64_t>(n);
      p.sent_steady = steady0 + (steady1 - steady0) * static_cast<std::int64_t>(i) / static_cast<std::int64_t>(n);
      p.sent = true;
      const Round& r = *rounds_.at(p.round);
      due_.push(Due{std::min(p.sent_steady + r.timeout, r.end), tokens[i], DueKind::kDeadline});
      if (r.suspect_wait > Duration::zero()) {
        due_.push(Due{p.sent_steady + r.suspect_wait, tokens[i], DueKind::kSuspect});
      }
      ++stats_.sent;
    }
    // The rest go back to the front, in order; the first of them may have failed.
    for (std::size_t i = n; i-- > ok;) send_queue_.push_front(tokens[i]);
    if (ok < n) {
      if (sent < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == EINTR)) {
        // The socket is full: retry shortly instead of spinning.
        if (pump_timer_ == 0) {
          pump_timer_ = reactor_.call_after(std::chrono::milliseconds(1), [this] {
            pump_timer_ = 0;
            pump();
          });
        }
        arm_due();
        return;
      }
      if (sent < 0) {
        const std::uint64_t token = send_queue_.front();
        send_queue_.pop_front();
        ++stats_.send_errors;
        PacketResult pr;
        pr.outcome = PacketResult::Outcome::kError;
        pr.reason = classify_errno(err);
        pr.detail = "sending echo request to " + rounds_.at(packets_.at(token).round)->address.to_string() + ": " +
                    std::strerror(err);
        complete_packet(token, std::move(pr));
      }
    }
  }
  arm_due();
  arm_pump();
}

// ---------------------------------------------------------------------------
// Timers: one reactor timer for the earliest of all deadlines and next sends.

void IcmpEngine::arm_due() {
  if (due_.empty()) return;
  const SteadyTime when = due_.top().when;
  if (due_timer_ != 0) {
    if (due_armed_at_ <= when) return;
    reactor_.cancel(due_timer_);
  }
  due_armed_at_ = when;
  due_timer_ = reactor_.call_at(when, [this] {
    due_timer_ = 0;
    run_due();
  });
}

void IcmpEngine::run_due() {
  const SteadyTime now = reactor_.clock().now();
  // Replies already in the socket answered in time (their kernel timestamps
  // say so) even when the loop was late to read them: read them all before
  // any deadline expires a packet, or a stall of the loop (a busy machine)
  // would turn into false timeouts for thousands of targets at once.
  if (!due_.empty() && due_.top().when <= now) {
    for (Family f : {Family::kIPv4, Family::kIPv6}) {
      for (int i = 0; i < 8 && !on_readable(f, EPOLLIN); ++i) {
      }
    }
  }
  while (!due_.empty() && due_.top().when <= now) {
    const Due d = due_.top();
    due_.pop();
    if (d.kind == DueKind::kNextSend) {
      queue_packet(d.key);
      continue;
    }
    auto it = packets_.find(d.key);
    if (it == packets_.end()) continue;
    if (d.kind == DueKind::kSuspect) {
      if (!it->second.done) on_suspect(it->second.round, it->second.index);
      continue;
    }
    if (!it->second.done) {
      PacketResult pr;
      pr.outcome = PacketResult::Outcome::kLost;
      pr.reason = FailureReason::kTimeout;
      complete_packet(d.key, std::move(pr));
    }
    packets_.erase(d.key);  // an answered packet stayed until now to catch duplicates
  }
  arm_due();
}

// ---------------------------------------------------------------------------
// Receiving

bool IcmpEngine::on_readable(Family family, std::uint32_t events) {
  Socket* sp = sockets_[family == Family::kIPv6 ? 1 : 0].get();
  if (sp == nullptr) return true;
  Socket& s = *sp;
  if (events & EPOLLERR) read_errqueue(s);
  if ((events & EPOLLIN) == 0) return true;
  mmsghdr msgs[kRecvBatch];
  iovec iovs[kRecvBatch];
  sockaddr_storage from[kRecvBatch];
  for (std::size_t round = 0; round < kRecvRounds; ++round) {
    for (std::size_t i = 0; i < kRecvBatch; ++i) {
      std::byte* base = recv_buffer_.data() + i * (kRecvSlot + kRecvControl);
      iovs[i].iov_base = base;
      iovs[i].iov_len = kRecvSlot;
      msghdr& h = msgs[i].msg_hdr;
      h = msghdr{};
      h.msg_name = &from[i];
      h.msg_namelen = sizeof from[i];
      h.msg_iov = &iovs[i];
      h.msg_iovlen = 1;
      h.msg_control = base + kRecvSlot;
      h.msg_controllen = kRecvControl;
    }
    const int n = ::recvmmsg(s.fd, msgs, kRecvBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) {
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) read_errqueue(s);
      return true;
    }
    for (int i = 0; i < n; ++i) {
      msghdr& h = msgs[i].msg_hdr;
      std::int64_t rx_ns = 0;
      int ttl = -1;
      for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          timespec ts{};
          std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
          rx_ns = static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
        } else if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
                   (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)) {
          std::memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
        }
      }
      if (rx_ns == 0) rx_ns = realtime_ns();
      const std::size_t len = std::min<std::size_t>(msgs[i].msg_len, kRecvSlot);
      on_message(s, std::span<const std::byte>(static_cast<const std::byte*>(iovs[i].iov_base), len), from[i], rx_ns,
                 ttl);
    }
    if (static_cast<std::size_t>(n) < kRecvBatch) return true;
  }
  return false;  // more may be waiting: epoll reports it again
}

// Datagram sockets get ICMP errors about their packets through the error
// queue (IP_RECVERR): the original request as data, the error in a cmsg.
void IcmpEngine::read_errqueue(Socket& s) {
  for (int round = 0; round < 256; ++round) {
    std::byte data[kRecvSlot];
    alignas(cmsghdr) std::byte control[512];
    sockaddr_storage from{};
    iovec iov{data, sizeof data};
    msghdr h{};
    h.msg_name = &from;
    h.msg_namelen = sizeof from;
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    h.msg_control = control;
    h.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(s.fd, &h, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (n < 0) return;
    std::int64_t rx_ns = 0;
    const sock_extended_err* ee = nullptr;
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        timespec ts{};
        std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
        rx_ns = static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
      } else if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ||
                 (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR)) {
        ee = reinterpret_cast<const sock_extended_err*>(CMSG_DATA(c));
      }
    }
    if (ee == nullptr) continue;
    if (rx_ns == 0) rx_ns = realtime_ns();
    DecodeError derr;
    auto m = decode(s.family, Framing::kIcmpOnly, std::span<const std::byte>(data, static_cast<std::size_t>(n)), &derr);
    if (!m || !m->echo.stamp || m->echo.stamp->cookie != cookie_) {
      ++stats_.foreign;
      continue;
    }
    auto it = packets_.find(m->echo.stamp->token);
    if (it == packets_.end()) {
      ++stats_.late;
      continue;
    }
    if (ee->ee_origin == SO_EE_ORIGIN_ICMP || ee->ee_origin == SO_EE_ORIGIN_ICMP6) {
      const Address offender = address_of(SO_EE_OFFENDER(ee));
      on_icmp_error(it->first, s.family, ee->ee_type, ee->ee_code, offender, rx_ns);
    } else if (!it->second.done) {
      ++stats_.send_errors;
      PacketResult pr;
      pr.outcome = PacketResult::Outcome::kError;
      pr.reason = classify_errno(static_cast<int>(ee->ee_errno));
      pr.detail = std::string("echo request failed: ") + std::strerror(static_cast<int>(ee->ee_errno));
      complete_packet(it->first, std::move(pr));
    }
  }
}

std::uint64_t IcmpEngine::find_packet(const Message& m, Ownership own) {
  if (own == Ownership::kOurs) {
    auto it = packets_.find(m.echo.stamp->token);
    if (it == packets_.end()) return 0;
    if (static_cast<std::uint16_t>(it->first & 0xffff) != m.echo.sequence) return 0;
    return it->first;
  }
  // Only the ICMP header was quoted: the sequence is the token's low 16 bits.
  // Try the few newest tokens that share them, checking where each went.
  std::uint64_t cand = ((next_token_ - 1) & ~std::uint64_t{0xffff}) | m.echo.sequence;
  if (cand >= next_token_) cand -= 0x10000;
  for (int k = 0; k < 4 && cand > 0 && cand < next_token_; ++k, cand -= 0x10000) {
    auto it = packets_.find(cand);
    if (it == packets_.end() || it->second.done) continue;
    auto rit = rounds_.find(it->second.round);
    if (rit == rounds_.end()) continue;
    if (m.quoted_destination && *m.quoted_destination == rit->second->address) return cand;
    if (cand < 0x10000) break;
  }
  return 0;
}

void IcmpEngine::on_message(Socket& s, std::span<const std::byte> bytes, const sockaddr_storage& from,
                            std::int64_t rx_ns, int ttl) {
  DecodeError err;
  auto m = decode(s.family, s.framing(), bytes, &err);
  if (!m) {
    // On a raw socket, errors about other programs' packets are not damage.
    if (err == DecodeError::kForeignQuote) {
      ++stats_.foreign;
    } else {
      ++stats_.malformed;
    }
    return;
  }
  if (m->kind == MessageKind::kEchoRequest) return;
  const Ownership own =
      ownership(*m, cookie_, s.kind == SocketKind::kRaw ? std::optional<std::uint16_t>(identifier_) : std::nullopt);
  if (own == Ownership::kForeign) {
    ++stats_.foreign;
    return;
  }
  const std::uint64_t token = find_packet(*m, own);
  if (token == 0) {
    if (own == Ownership::kOurs && m->echo.stamp->token < next_token_) {
      ++stats_.late;
    } else {
      ++stats_.foreign;
    }
    return;
  }
  Packet* p = &packets_.at(token);
  auto rit = rounds_.find(p->round);
  const Address source = address_of(from);
  if (m->kind != MessageKind::kEchoReply) {
    if (rit != rounds_.end() && m->quoted_destination && !(*m->quoted_destination == rit->second->address)) {
      ++stats_.foreign;
      return;
    }
    on_icmp_error(token, s.family, m->type, m->code, source, rx_ns);
    return;
  }
  if (rit != rounds_.end() && !(source == rit->second->address)) {
    ++stats_.foreign;  // our stamp from the wrong host: a copy, not an answer
    return;
  }
  if (p->done) {
    ++stats_.duplicates;
    if (rit != rounds_.end()) ++rit->second->result.duplicates;
    return;
  }
  if (!p->sent) return;  // cannot happen: answered before sent
  const SteadyTime now = reactor_.clock().now();
  const std::int64_t steady_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - p->sent_steady).count();
  std::int64_t rtt_ns = rx_ns - p->sent_real_ns;
  if (rtt_ns < 0 || rtt_ns > steady_ns + 1'000'000) rtt_ns = steady_ns;  // the wall clock stepped
  PacketResult pr;
  pr.outcome = PacketResult::Outcome::kReply;
  pr.rtt_seconds = static_cast<double>(rtt_ns) / 1e9;
  pr.ttl = m->ttl ? *m->ttl : ttl;
  pr.reason = FailureReason::kNone;
  pr.from = source;
  ++stats_.replies;
  complete_packet(token, std::move(pr));
}

void IcmpEngine::on_icmp_error(std::uint64_t token, Family family, std::uint8_t type, std::uint8_t code,
                               const Address& from, std::int64_t rx_ns) {
  auto it = packets_.find(token);
  if (it == packets_.end() || it->second.done) return;
  const Packet& p = it->second;
  ++stats_.icmp_errors;
  const bool exceeded = family == Family::kIPv6 ? type == kV6TimeExceeded : type == kV4TimeExceeded;
  PacketResult pr;
  pr.outcome = PacketResult::Outcome::kError;
  pr.reason = exceeded ? FailureReason::kTtlExceeded : FailureReason::kUnreachable;
  pr.detail = "ICMP " + describe(family, type, code) + " from " + from.to_string();
  pr.from = from;
  if (p.sent) {
    const std::int64_t rtt = rx_ns - p.sent_real_ns;
    const std::int64_t steady =
        std::chrono::duration_cast<std::chrono::nanoseconds>(reactor_.clock().now() - p.sent_steady).count();
    pr.rtt_seconds = static_cast<double>(rtt < 0 || rtt > steady + 1'000'000 ? steady : rtt) / 1e9;
  }
  complete_packet(token, std::move(pr));
}

void IcmpEngine::complete_packet(std::uint64_t token, PacketResult result) {
  auto it = packets_.find(token);
  if (it == packets_.end() || it->second.done) return;
  Packet& p = it->second;
  p.done = true;
  const std::uint64_t round_id = p.round;
  const std::size_t index = p.index;
  if (!p.sent) packets_.erase(it);  // no deadline will come for it
  auto rit = rounds_.find(round_id);
  if (rit == rounds_.end()) return;
  Round& r = *rit->second;
  if (result.outcome != PacketResult::Outcome::kNotSent &&
      (result.outcome != PacketResult::Outcome::kError || result.from.has_value())) {
    ++r.result.sent;
  }
  const bool reply = result.outcome == PacketResult::Outcome::kReply;
  const bool failed = !reply && result.outcome != PacketResult::Outcome::kNotSent;
  if (reply) ++r.result.received;
  // The target answers again: the next miss needs new evidence, now, not after this round.
  if (reply && r.state != nullptr) r.state->down = false;
  r.result.packets[index] = std::move(result);
  ++r.completed;
  // A scheduled echo that failed outright (no route, an ICMP error, its
  // deadline) is a miss too: ask for the evidence now, not at the round's end.
  if (failed && !r.target_key.empty() && !r.stop_on_reply) on_suspect(round_id, index);
  if (reply && r.stop_on_reply) {
    // The answer is in: what is still in flight no longer matters.
    stop_sending(round_id);  // may finish the round
    if (rounds_.find(round_id) == rounds_.end()) return;
    for (std::uint64_t t : std::vector<std::uint64_t>(r.tokens)) {
      auto pit = packets_.find(t);
      if (pit == packets_.end() || pit->second.done) continue;
      PacketResult lost;
      lost.outcome = PacketResult::Outcome::kLost;
      lost.reason = FailureReason::kTimeout;
      complete_packet(t, std::move(lost));
      if (rounds_.find(round_id) == rounds_.end()) return;
    }
    return;
  }
  if (r.completed == r.count) finish_round(round_id);
}

void IcmpEngine::stop_sending(std::uint64_t round_id) {
  auto rit = rounds_.find(round_id);
  if (rit == rounds_.end()) return;
  Round& r = *rit->second;
  r.stopped = true;
  while (r.queued < r.count) {
    PacketResult pr;
    pr.outcome = PacketResult::Outcome::kNotSent;
    pr.reason = FailureReason::kNone;
    r.result.packets[static_cast<std::size_t>(r.queued++)] = std::move(pr);
    ++r.completed;
  }
  // Queued but not yet handed to the kernel: not sent either.
  for (std::uint64_t token : r.tokens) {
    auto pit = packets_.find(token);
    if (pit == packets_.end() || pit->second.sent || pit->second.done) continue;
    PacketResult pr;
    pr.outcome = PacketResult::Outcome::kNotSent;
    pr.reason = FailureReason::kNone;
    complete_packet(token, std::move(pr));
    if (rounds_.find(round_id) == rounds_.end()) return;  // that finished it
  }
  if (r.completed == r.count) finish_round(round_id);
}

void IcmpEngine::abort_round(std::uint64_t round_id) {
  stop_sending(round_id);
  auto rit = rounds_.find(round_id);
  if (rit == rounds_.end()) return;
  const std::vector<std::uint64_t> tokens = rit->second->tokens;
  for (std::uint64_t token : tokens) {
    auto pit = packets_.find(token);
    if (pit == packets_.end() || pit->second.done) continue;
    PacketResult pr;
    pr.outcome = PacketResult::Outcome::kLost;
    pr.reason = FailureReason::kTimeout;
    complete_packet(token, std::move(pr));
    if (rounds_.find(round_id) == rounds_.end()) return;
  }
}

void IcmpEngine::finish_round(std::uint64_t round_id) {
  auto rit = rounds_.find(round_id);
  if (rit == rounds_.end()) return;
  if (rit->second->hold_finish) {
    rit->second->finish_pending = true;
    return;
  }
  std::unique_ptr<Round> r = std::move(rit->second);
  rounds_.erase(rit);
  RoundResult& res = r->result;
  if (res.ok()) {
    res.reason = FailureReason::kNone;
  } else {
    const PacketResult* last_error = nullptr;
    for (const auto& p : res.packets) {
      if (p.outcome == PacketResult::Outcome::kError) last_error = &p;
    }
    if (last_error != nullptr) {
      res.reason = last_error->reason;
      res.detail = last_error->detail;
    } else {
      res.reason = FailureReason::kTimeout;
      res.detail = "no reply from " + r->address.to_string() + " to " + std::to_string(r->count) +
                   (r->count == 1 ? " echo request" : " echo requests") + " within " + format_seconds(r->timeout) +
                   (r->end == SteadyTime::max() ? " each" : "");
    }
  }
  r->done(std::move(res));
}

// ---------------------------------------------------------------------------
// On demand: confirmation bursts and path traces

bool IcmpEngine::take_budget(int packets) {
  const SteadyTime now = reactor_.clock().now();
  budget_tokens_ = std::min(settings_.extra_packets_burst,
                            budget_tokens_ + std::chrono::duration<double>(now - budget_updated_).count() *
                                                 settings_.extra_packets_per_second);
  budget_updated_ = now;
  if (budget_tokens_ + 1e-9 < packets) return false;
  budget_tokens_ -= packets;
  return true;
}

void IcmpEngine::refund_budget(int packets) {
  budget_tokens_ = std::min(settings_.extra_packets_burst, budget_tokens_ + packets);
}

double IcmpEngine::budget_available() {
  take_budget(0);
  return budget_tokens_;
}

Status IcmpEngine::confirm(const SocketAddress& address, const BurstSpec& spec, std::function<void(BurstReport)> done) {
  if (spec.count < 1 || spec.count > 100) return Error::invalid("burst count must be 1..100");
  if (!take_budget(spec.count)) {
    return Error::unavailable("confirmation burst of " + std::to_string(spec.count) + " packets to " +
                              address.to_string() + " exceeds the extra-traffic budget");
  }
  const std::string shown = address.to_string();
  // A stopping confirmation judges all its packets together, when the last
  // one's wait ends: an early packet whose reply is merely slow (a sudden RTT
  // jump) still counts, rather than being lost at its own short deadline.
  const Duration wait = spec.stop_on_reply ? spec.spacing * (spec.count - 1) + spec.timeout : spec.timeout;
  const std::uint64_t id = start_round(
      address, spec.count, spec.spacing, wait, std::clamp(spec.payload_size, kStampSize, kMaxPayload), 0, 0,
      spec.stop_on_reply, [this, shown, done = std::move(done)](RoundResult r) {
                int unsent = 0;
                for (const auto& p : r.packets) unsent += p.outcome == PacketResult::Outcome::kNotSent ? 1 : 0;
                refund_budget(unsent);
                BurstReport report;
                report.address = shown;
                int run = 0;
                for (const auto& p : r.packets) {
                  run = p.outcome == PacketResult::Outcome::kReply ? 0 : run + 1;
                  report.longest_miss_run = std::max(report.longest_miss_run, run);
                }
                report.result = std::move(r);
                done(std::move(report));
              });
  if (auto it = rounds_.find(id); it != rounds_.end()) it->second->stop_on_reply = spec.stop_on_reply;
  return {};
}

Status IcmpEngine::trace(const SocketAddress& address, const TraceSpec& spec, std::function<void(TraceReport)> done) {
  if (spec.max_hops < 1 || spec.max_hops > 64) return Error::invalid("max_hops must be 1..64");
  if (!take_budget(spec.max_hops)) {
    return Error::unavailable("path trace of " + std::to_string(spec.max_hops) + " hops to " + address.to_string() +
                              " exceeds the extra-traffic budget");
  }
  const std::string shown = address.to_string();
  start_round(address, spec.max_hops, spec.spacing, spec.timeout, 56, 1, 1, false,
              [shown, done = std::move(done)](RoundResult r) {
                TraceReport report;
                report.address = shown;
                int last = 0;
                for (std::size_t i = 0; i < r.packets.size(); ++i) {
                  const PacketResult& p = r.packets[i];
                  Hop hop;
                  hop.ttl = static_cast<int>(i) + 1;
                  hop.from = p.from;
                  hop.rtt_seconds = p.rtt_seconds;
                  hop.detail = p.detail;
                  if (p.outcome == PacketResult::Outcome::kReply) {
                    hop.answer = Hop::Answer::kReply;
                  } else if (p.outcome == PacketResult::Outcome::kError && p.reason == FailureReason::kTtlExceeded) {
                    hop.answer = Hop::Answer::kTimeExceeded;
                  } else if (p.outcome == PacketResult::Outcome::kError && p.from) {
                    hop.answer = Hop::Answer::kUnreachable;
                  }
                  if (hop.answer != Hop::Answer::kNone) last = hop.ttl;
                  report.hops.push_back(std::move(hop));
                  if (report.hops.back().answer == Hop::Answer::kReply) {
                    report.reached = true;
                    break;
                  }
                  if (report.hops.back().answer == Hop::Answer::kUnreachable) break;
                }
                report.last_answering = last;
                done(std::move(report));
              });
  return {};
}

}  // namespace nightshift::icmp
