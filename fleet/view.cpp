#include "fleet/view.h"

#include <algorithm>

namespace nightshift::fleet {

std::string_view to_string(Assessment::Verdict v) {
  switch (v) {
    case Assessment::Verdict::kUnknown: return "unknown";
    case Assessment::Verdict::kUp: return "up";
    case Assessment::Verdict::kDown: return "down";
    case Assessment::Verdict::kPathProblem: return "path_problem";
  }
  return "unknown";
}

FleetView::FleetView(const Clock& clock, std::string self, int quorum, Duration peer_timeout)
    : clock_(clock), self_(std::move(self)), quorum_(quorum), peer_timeout_(peer_timeout) {}

void FleetView::set_local(const std::vector<Verdict>& verdicts) {
  local_.clear();
  for (const auto& v : verdicts) local_[{v.target, v.probe}] = v;
}

bool FleetView::update_local(const Verdict& v) {
  auto& slot = local_[{v.target, v.probe}];
  // A change of ok is news; the evidence text alone is not (it would publish every sample).
  const bool changed = slot.target.empty() || slot.ok != v.ok;
  if (changed) slot = v;
  return changed;
}

bool FleetView::apply(const Observation& o) {
  if (o.agent == self_) return false;
  Peer& p = peers_[o.agent];
  p.last_heard = clock_.now();
  if (o.full) {
    if (o.part == 0) {
      p.table.clear();
      p.have_table = false;
    }
    for (const auto& v : o.verdicts) p.table[{v.target, v.probe}] = v;
    if (o.part + 1 == o.parts) {
      p.version = o.version;
      p.have_table = true;
    }
    return false;
  }
  const bool gap = !p.have_table || o.version != p.version + 1;
  if (o.version > p.version || !p.have_table) {
    for (const auto& v : o.verdicts) p.table[{v.target, v.probe}] = v;
    p.version = std::max(p.version, o.version);
  }
  return gap;
}

bool FleetView::apply(const Heartbeat& h) {
  if (h.agent == self_) return false;
  Peer& p = peers_[h.agent];
  p.last_heard = clock_.now();
  p.interval = std::chrono::milliseconds(h.interval_ms);
  return !p.have_table || h.version != p.version;
}

void FleetView::apply_confirmation(const std::string& agent, const std::vector<Verdict>& verdicts) {
  if (agent == self_) return;
  auto it = peers_.find(agent);
  if (it == peers_.end()) return;  // unknown until it reports its table
  it->second.last_heard = clock_.now();
  for (const auto& v : verdicts) it->second.table[{v.target, v.probe}] = v;
}

void FleetView::forget(const std::string& agent) { peers_.erase(agent); }

bool FleetView::reporting(const Peer& p) const {
  return p.have_table && clock_.now() - p.last_heard <= std::max(peer_timeout_, 3 * p.interval);
}

void FleetView::vote(const std::map<std::pair<std::string, std::string>, Verdict>& table, const std::string& agent,
                     const std::string& target, const std::string& probe, Assessment& a) const {
  bool watches = false;
  bool down = false;
  auto it = table.lower_bound({target, probe});
  for (; it != table.end() && it->first.first == target; ++it) {
    if (!probe.empty() && it->first.second != probe) break;
    watches = true;
    down = down || !it->second.ok;
  }
  if (!watches) return;
  ++a.watchers;
  (down ? a.down_vantages : a.up_vantages).push_back(agent);
}

Assessment FleetView::assess(const std::string& target, const std::string& probe) const {
  Assessment a;
  // Sorted names: every agent lists the vantages in the same order.
  std::vector<std::pair<std::string, const std::map<std::pair<std::string, std::string>, Verdict>*>> tables;
  tables.push_back({self_, &local_});
  for (const auto& [name, p] : peers_) {
    if (reporting(p)) tables.push_back({name, &p.table});
  }
  std::sort(tables.begin(), tables.end());
  for (const auto& [name, table] : tables) vote(*table, name, target, probe, a);
  if (a.watchers == 0) return a;
  const std::size_t majority = a.watchers / 2 + 1;
  a.needed = quorum_ > 0 ? std::min<std::size_t>(static_cast<std::size_t>(quorum_), a.watchers) : majority;
  if (a.down_vantages.size() >= a.needed) a.verdict = Assessment::Verdict::kDown;
  else if (!a.down_vantages.empty()) a.verdict = Assessment::Verdict::kPathProblem;
  else a.verdict = Assessment::Verdict::kUp;
  return a;
}

std::vector<std::string> FleetView::reporting() const {
  std::vector<std::string> out{self_};
  for (const auto& [name, p] : peers_) {
    if (reporting(p)) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> FleetView::watchers_of(const std::string& target) const {
  std::vector<std::string> out;
  for (const auto& [name, p] : peers_) {
    if (!reporting(p)) continue;
    auto it = p.table.lower_bound({target, ""});
    if (it != p.table.end() && it->first.first == target) out.push_back(name);
  }
  return out;
}

}  // namespace nightshift::fleet
