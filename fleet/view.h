// FleetView: what every agent of the fleet currently says about every target,
// and the quorum decision on it. Pure logic over a Clock (tests run it on the
// ManualClock): the node feeds it messages, it answers "down from a quorum",
// "down only from these vantages (their path)" or "up".
//
// An agent counts while it is reporting: a heartbeat or observation within
// `peer_timeout`. The quorum is `quorum` agents when set (capped at the number
// of reporting watchers, so a fleet that lost members still pages), else a
// majority of the reporting agents that watch the target.
//
// Thread safety: one thread (the reactor).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fleet/protocol.h"
#include "nightshift/clock.h"

namespace nightshift::fleet {

struct Assessment {
  enum class Verdict { kUnknown, kUp, kDown, kPathProblem };
  Verdict verdict = Verdict::kUnknown;
  std::size_t watchers = 0;  // reporting agents that watch it, this one included
  std::size_t needed = 0;    // how many must see it down
  std::vector<std::string> down_vantages;
  std::vector<std::string> up_vantages;
};
std::string_view to_string(Assessment::Verdict v);

class FleetView {
 public:
  FleetView(const Clock& clock, std::string self, int quorum, Duration peer_timeout);

  // This agent's own table (its verdicts are never stale).
  void set_local(const std::vector<Verdict>& verdicts);
  // True when it changed what this agent says (then publish it).
  bool update_local(const Verdict& v);
  const std::map<std::pair<std::string, std::string>, Verdict>& local() const { return local_; }

  // A peer's message. Returns true when the peer's table is known to have
  // gaps (a version skipped, or a heartbeat ahead of what we have): ask it for
  // a snapshot.
  bool apply(const Observation& o);
  bool apply(const Heartbeat& h);
  // Confirmation replies carry fresh verdicts without a table version.
  void apply_confirmation(const std::string& agent, const std::vector<Verdict>& verdicts);
  // Forgets an agent (it said goodbye).
  void forget(const std::string& agent);

  // probe empty: a vantage is down when any probe it runs on the target is down.
  Assessment assess(const std::string& target, const std::string& probe = "") const;
  // Reporting agents, this one included; sorted.
  std::vector<std::string> reporting() const;
  // Reporting peers that watch `target` (for confirmation requests).
  std::vector<std::string> watchers_of(const std::string& target) const;
  bool knows(const std::string& agent) const { return peers_.count(agent) > 0; }

 private:
  struct Peer {
    std::uint64_t version = 0;
    bool have_table = false;
    SteadyTime last_heard{};
    Duration interval{};
    std::map<std::pair<std::string, std::string>, Verdict> table;
  };
  bool reporting(const Peer& p) const;
  void vote(const std::map<std::pair<std::string, std::string>, Verdict>& table, const std::string& agent,
            const std::string& target, const std::string& probe, Assessment& a) const;

  const Clock& clock_;
  std::string self_;
  int quorum_;
  Duration peer_timeout_;
  std::map<std::pair<std::string, std::string>, Verdict> local_;
  std::map<std::string, Peer> peers_;
};

}  // namespace nightshift::fleet
