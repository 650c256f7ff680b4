// ICMP echo probe: fping-class throughput from one socket per address family.
//
// Every ICMP target in a reactor shares one socket per address family: no
// thread and no socket per target. The engine prefers the unprivileged datagram
// ("ping") socket, which the kernel allows when the process's group is inside
// net.ipv4.ping_group_range, and falls back to a raw socket (CAP_NET_RAW); it
// logs which one it got and why. Replies are matched by the stamp in the
// payload (engine cookie + packet token), checked against the sequence and the
// address the request went to, so replies to other pingers are never ours and
// datagram sockets' rewritten identifiers do not matter.
//
// A probe round sends `count` echo requests spread evenly over the probe's
// interval (3 per 10 s: one every 3.3 s), so that a cut is seen within a third
// of the interval rather than a whole one, with no more packets. With an
// explicit `spacing` the requests leave `spacing` apart at the start instead and
// the round ends at the probe's timeout (see RoundSpec::fit_in_timeout). The
// round succeeds when at least ONE reply arrives: loss is reported as
// probe_icmp_loss_ratio, and judging it is the rule engine's job.
//
// Evidence at once: a scheduled echo still unanswered after a short wait
// learned from the target's own RTT (RFC 6298 style, 200 ms to 1 s) makes the
// round send a confirmation sequence of up to 12 echoes 80 ms apart that stops
// at the first reply. All 12 lost ends the round early as a failed sample with
// `confirmation` = 1: random loss of 30 % explains that with p = 0.3^13 = 1.6e-7
// per echo, a cut link explains it always. A healthy target at 30 % loss costs
// about 1.4 extra echoes per lost one; a target already confirmed down is not
// confirmed again until it answers.
// A failed round's reason is the last ICMP error seen (unreachable,
// ttl_exceeded), a local send error, or else timeout.
//
// Accelerated rounds (ProbeRequest::span, while the agent is uncertain about a
// target): the round's share of `count` over the span, at least one echo
// (3 per 10 s: one echo per 2 s round), spread the same way; a miss is
// confirmed as above, and an answered confirmation makes the round a success
// (with its loss counted) instead of a failure.
//
// RTT: the kernel's receive timestamp (SO_TIMESTAMPNS, CLOCK_REALTIME) minus
// the send time read from the same clock just before the send call. If the
// wall clock steps in between (RTT negative or longer than the monotonic time
// elapsed), the monotonic measurement is used instead.
//
// On demand, outside the scheduled rounds (for the rule engine):
// - confirm(): a short, bounded burst (e.g. 10 packets 100 ms apart);
// - trace(): TTL-limited echoes (IP_TTL / IPV6_HOPLIMIT per packet) listing the
//   hops toward a target and the last hop that still answers.
// Both draw from one global budget of extra packets per second; a request the
// budget cannot cover in full is refused, never trimmed.
//
// Thread safety: reactor-thread only, like every engine.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "probes/icmp/icmp_codec.h"
#include "probes/probe.h"

namespace nightshift::icmp {

struct IcmpOptions final : ProbeOptions {
  int count = 3;        // echo requests per round
  Duration spacing{};   // between requests of one round; zero: spread over the interval
  std::size_t payload_size = 56;                      // bytes after the ICMP header, as ping -s
  AddressFamily family = AddressFamily::kAny;
};

std::shared_ptr<const ProbeOptions> parse_options(OptionReader& reader, std::string& default_name);
std::unique_ptr<ProbeEngine> make_engine(EngineContext& context);
// What its samples carry (the registry entry's `measures`).
std::span<const Measure> measures();

enum class SocketKind : std::uint8_t { kAuto, kDatagram, kRaw };
std::string_view to_string(SocketKind kind);

struct EngineSettings {
  SocketKind socket_kind = SocketKind::kAuto;  // kAuto: datagram if allowed, else raw
  // Budget for confirm() and trace() packets, shared by both. The burst covers
  // a site of 1 000 targets going dark at once (12 each) as fast as one; the
  // rate bounds what sustained doubt can cost. Packets a confirmation did not
  // need (it stops at the first reply) go back to the budget.
  double extra_packets_per_second = 1000;
  double extra_packets_burst = 12000;
  // The confirmation sequence a scheduled round sends after a missed echo.
  int confirm_count = 12;
  Duration confirm_spacing = std::chrono::milliseconds(80);
  std::size_t send_batch = 64;         // packets per send call before the loop reads again
  int receive_buffer_bytes = 4 << 20;  // asked for; the kernel may cap it
};

// The outcome of one echo request.
struct PacketResult {
  enum class Outcome : std::uint8_t { kReply, kLost, kError, kNotSent };
  Outcome outcome = Outcome::kLost;
  double rtt_seconds = 0;                          // kReply
  int ttl = -1;                                    // kReply: the reply's TTL / hop limit, when known
  FailureReason reason = FailureReason::kTimeout;  // kLost, kError, kNotSent
  std::string detail;                              // kError: the ICMP error or errno, and who sent it
  std::optional<Address> from;                     // who answered (reply or ICMP error)
};

struct RoundSpec {
  int count = 3;
  Duration spacing = std::chrono::milliseconds(100);
  Duration timeout = std::chrono::seconds(1);  // per packet, or the whole round (below)
  std::size_t payload_size = 56;
  // Spread rounds: requests `spacing` apart over the interval, each waiting at
  // most `timeout`; the round ends when the last one is answered or lost.
  // false: every request waits up to `timeout` (fping's -t); the round takes up
  // to (count - 1) x spacing + timeout.
  // true: the whole round ends `timeout` after it starts, as every probe kind's
  // timeout bounds its run (config keeps timeout < interval, so a round never
  // overlaps the next). The spacing shrinks when needed so that every request
  // leaves within the first half of the timeout, and each waits until the end.
  bool fit_in_timeout = false;
};

// The spacing a round bounded by `timeout` uses: `spacing`, or less so that the
// last of `count` requests leaves by timeout / 2. Pure.
Duration fitted_spacing(int count, Duration spacing, Duration timeout);

// A spread round: `count` requests interval / count apart, each waiting at most
// min(timeout, interval / count), so the round ends within its interval. Pure.
struct SpreadPlan {
  Duration spacing{};
  Duration wait{};
};
SpreadPlan spread_plan(int count, Duration interval, Duration timeout);

// How long an echo may stay unanswered before the round asks for a
// confirmation (probes/probe.h, shared with TCP's connects).
using ::nightshift::suspect_wait;

struct RoundResult {
  std::vector<PacketResult> packets;  // in send order
  int sent = 0;
  int received = 0;
  int duplicates = 0;
  FailureReason reason = FailureReason::kNone;  // kNone when received > 0
  std::string detail;
  // Set when a confirmation sequence after a missed echo got no answer at all:
  // the round ended early on that evidence.
  bool confirmed_down = false;
  int confirmation_sent = 0;
  // RTT learning (Karn's rule, as TCP's for retransmitted segments): replies
  // to echoes from the first one a confirmation was started for
  // (`suspected`, -1: none), and every reply of a round started while the
  // target was confirmed down, say little about the path's RTT: a link that
  // lost carrier queues them behind ARP and they are answered seconds later,
  // when it returns. Learned, they would stretch the waits to their caps, and
  // a confirmation would outlast a short down spell.
  int suspected = -1;
  bool learn_rtt = true;
  // Set on an accelerated round (ProbeRequest::span) whose echoes were lost
  // but whose confirmation was answered: the target is alive, the loss was
  // loss. A one-echo round is judged by its evidence, as a three-echo round
  // is by its other echoes; else 30 % loss would fail a third of them.
  bool confirmed_alive = false;
  // A round confirmed down failed even if echoes before the miss were answered
  // (a cut in the middle of the round).
  bool ok() const { return (received > 0 || confirmed_alive) && !confirmed_down; }
  double loss_ratio() const { return sent == 0 ? 1.0 : 1.0 - static_cast<double>(received) / sent; }
  // Mean absolute difference of consecutive RTTs (RFC 3550 style, not smoothed);
  // 0 with fewer than two replies.
  double jitter_seconds() const;
  // TTL of the last reply, or -1.
  int reply_ttl() const;
};

struct BurstSpec {
  int count = 10;
  Duration spacing = std::chrono::milliseconds(100);
  Duration timeout = std::chrono::seconds(1);
  std::size_t payload_size = 56;
  // Stop sending at the first reply: a live target costs one or two packets,
  // the unsent rest go back to the budget.
  bool stop_on_reply = false;
};

struct BurstReport {
  std::string address;
  RoundResult result;
  int longest_miss_run = 0;  // most consecutive packets without a reply
};

struct TraceSpec {
  int max_hops = 16;
  Duration spacing = std::chrono::milliseconds(20);  // between TTL steps
  Duration timeout = std::chrono::seconds(1);        // per packet
};

struct Hop {
  int ttl = 0;
  enum class Answer : std::uint8_t { kNone, kTimeExceeded, kReply, kUnreachable };
  Answer answer = Answer::kNone;
  std::optional<Address> from;
  double rtt_seconds = 0;
  std::string detail;
};

// "path to 198.51.100.2: 1 198.51.100.1 0.12ms, 2 *, 3 *; last answering hop: TTL 1 (198.51.100.1); destination not reached"
struct TraceReport;
std::string describe_trace(const TraceReport& report);

struct TraceReport {
  std::string address;
  std::vector<Hop> hops;   // TTL 1 up to the destination's reply, or max_hops
  bool reached = false;    // the destination replied
  int last_answering = 0;  // the highest TTL in `hops` that got any answer; 0: none
  const Hop* last_hop() const { return last_answering == 0 ? nullptr : &hops[last_answering - 1]; }
};

struct EngineStats {
  std::uint64_t sent = 0;
  std::uint64_t replies = 0;      // matched to a waiting packet
  std::uint64_t duplicates = 0;   // a second reply to an answered packet
  std::uint64_t late = 0;         // ours, but the packet had already timed out
  std::uint64_t foreign = 0;      // another pinger's traffic on a raw socket
  std::uint64_t malformed = 0;    // failed to decode
  std::uint64_t icmp_errors = 0;  // unreachable / time exceeded matched to our packet
  std::uint64_t send_errors = 0;
};

class IcmpEngine final : public ProbeEngine {
 public:
  explicit IcmpEngine(EngineContext& context, EngineSettings settings = {});
  ~IcmpEngine() override;
  IcmpEngine(const IcmpEngine&) = delete;
  IcmpEngine& operator=(const IcmpEngine&) = delete;

  // ProbeEngine
  void submit(ProbeRequest req) override;
  std::size_t in_flight() const override { return probes_in_flight_; }
  bool confirm(ProbeRequest req) override;
  bool has_confirmation() const override { return true; }
  // Spread rounds only: they confirm a miss, which one echo per round needs
  // to keep 30 % loss from failing rounds; rounds with an explicit spacing do not.
  bool accelerates(const ProbeSpec& spec) const override;
  bool diagnose(const std::shared_ptr<const Target>& target, const ProbeSpec& spec,
                std::function<void(std::string finding)> done) override;

  // One round to an address, without a Target (the CLI, benchmarks). `done` runs
  // once on the reactor thread, never from inside ping().
  void ping(const SocketAddress& address, const RoundSpec& spec, std::function<void(RoundResult)> done);

  // Confirmation burst. Error (unavailable) when the budget cannot cover every
  // packet; otherwise `done` runs once when the last packet is answered or lost.
  Status confirm(const SocketAddress& address, const BurstSpec& spec, std::function<void(BurstReport)> done);

  // Path trace with TTL 1..max_hops. Same budget and contract as confirm().
  Status trace(const SocketAddress& address, const TraceSpec& spec, std::function<void(TraceReport)> done);

  // Which socket kind each family got (kAuto until first used or on failure).
  SocketKind socket_kind(Family family) const;
  const EngineStats& stats() const { return stats_; }
  std::uint64_t cookie() const { return cookie_; }
  // Budget tokens left now (for tests and self-metrics).
  double budget_available();

 private:
  struct Packet;
  struct Round;
  struct Socket;
  enum class DueKind : std::uint8_t { kDeadline, kNextSend, kSuspect };
  // Per (target, probe): what the engine learned between rounds.
  struct TargetState {
    std::optional<double> srtt;  // seconds
    double rttvar = 0;
    bool confirming = false;  // a confirmation sequence is in flight
    bool down = false;        // confirmed down and not answered since
    int runs = 0;             // submitted runs not finished yet: their callbacks hold this entry
    SteadyTime used{};
  };
  struct Due {
    SteadyTime when;
    std::uint64_t key;  // token (deadline) or round id (next send)
    DueKind kind;
    bool operator>(const Due& o) const { return when > o.when; }
  };

  Socket* socket_for(Family family, std::string* why_not);
  std::uint64_t start_round(const SocketAddress& address, int count, Duration spacing, Duration timeout,
                            std::size_t payload_size, int first_ttl, int ttl_step, bool bounded,
                            std::function<void(RoundResult)> done);
  void queue_packet(std::uint64_t round_id);
  void pump();
  void arm_pump();
  void arm_due();
  void run_due();
  // Reads what the socket holds (bounded); true when it is empty now.
  bool on_readable(Family family, std::uint32_t events);
  void read_errqueue(Socket& s);
  void on_message(Socket& s, std::span<const std::byte> bytes, const sockaddr_storage& from, std::int64_t rx_ns,
                  int ttl);
  void on_icmp_error(std::uint64_t token, Family family, std::uint8_t type, std::uint8_t code, const Address& from,
                     std::int64_t rx_ns);
  // The token of the waiting packet `m` answers or reports on; 0 when none.
  std::uint64_t find_packet(const Message& m, Ownership own);
  void complete_packet(std::uint64_t token, PacketResult result);
  void finish_round(std::uint64_t round_id);
  // Sends nothing more for the round: unsent requests complete as not sent.
  void stop_sending(std::uint64_t round_id);
  // Ends the round now: what is unanswered is lost.
  void abort_round(std::uint64_t round_id);
  void on_suspect(std::uint64_t round_id, std::size_t index);
  TargetState& target_state(const std::string& key);
  bool take_budget(int packets);
  void refund_budget(int packets);

  Reactor& reactor_;
  Resolver& resolver_;
  // Resolver answers arrive through the reactor's queue, possibly after this
  // engine is gone: their callbacks hold a weak reference and check it first.
  std::shared_ptr<IcmpEngine*> self_ = std::make_shared<IcmpEngine*>(this);
  EngineSettings settings_;
  std::uint64_t cookie_;
  std::uint16_t identifier_;
  std::unique_ptr<Socket> sockets_[2];
  std::string socket_errors_[2];

  std::uint64_t next_token_ = 1;
  std::uint64_t next_round_ = 1;
  std::unordered_map<std::uint64_t, Packet> packets_;                 // token -> waiting packet
  std::unordered_map<std::uint64_t, std::unique_ptr<Round>> rounds_;  // id -> round
  std::deque<std::uint64_t> send_queue_;                              // tokens to send
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due_;
  Reactor::TimerId due_timer_ = 0;
  SteadyTime due_armed_at_{};
  Reactor::TimerId pump_timer_ = 0;
  std::size_t probes_in_flight_ = 0;
  std::unordered_map<std::string, TargetState> targets_;  // "target\0probe"
  std::uint64_t submits_ = 0;

  double budget_tokens_;
  SteadyTime budget_updated_{};
  EngineStats stats_;
  std::vector<std::byte> send_buffer_;
  // pump()'s sendmmsg arrays, kept from call to call (a spread round's
  // packets go a few per turn, thousands of turns a second).
  struct PumpBuffers {
    std::vector<mmsghdr> msgs;
    std::vector<iovec> iovs;
    std::vector<std::byte> control;
    std::vector<std::uint64_t> tokens;
  };
  PumpBuffers pump_buffers_;
  std::vector<std::byte> recv_buffer_;
};

// `nightshift probe icmp [options] ADDRESS...` (see its --help). Runs its own
// reactor on the calling thread; returns the exit status (0 all reachable,
// 1 some not, 2 usage).
int cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace nightshift::icmp
