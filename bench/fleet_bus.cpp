// Fleet bench (issue 18): N fleet nodes in one process on one nats-server.
//   1. steady state: every node watches T targets, all up; after the tables
//      have been exchanged, count what each node sends and receives for S s;
//   2. outages: every node sees one target fail; time from the first node's
//      failure to its quorum assessment (confirmation by all the others) and
//      to the fleet incident's owner being known, and count incidents and
//      owners (one and one, whatever N).
// Usage: fleet_bus NATS_URL AGENTS TARGETS SECONDS OUTAGES
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include <memory>
#include <string>
#include <vector>

#include "core/log.h"
#include "fleet/node.h"
#include "nightshift/reactor.h"

using namespace nightshift;
using namespace nightshift::fleet;
using namespace std::chrono_literals;

namespace {

bool pump_until(Reactor& r, const std::function<bool()>& cond, Duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    r.run_once(5ms);
  }
  return cond();
}

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s NATS_URL AGENTS TARGETS SECONDS OUTAGES\n", argv[0]);
    return 2;
  }
  const std::string url = argv[1];
  const int agents = std::atoi(argv[2]);
  const int targets = std::atoi(argv[3]);
  const int seconds = std::atoi(argv[4]);
  const int outages = std::atoi(argv[5]);
  log::set_level(LogLevel::kWarn);
  SystemClock clock;
  Reactor reactor(clock);
  FleetSettings s;
  s.enabled = true;
  s.servers = {url};
  s.name = "bench" + std::to_string(::getpid());  // a fresh fleet (buckets) per run
  std::vector<bool> down_seen(static_cast<std::size_t>(agents), false);
  std::vector<std::unique_ptr<FleetNode>> nodes;
  std::vector<Verdict> table;
  for (int t = 0; t < targets; ++t) table.push_back({"target-" + std::to_string(t), "icmp", true, "", "", 0});
  std::string outage_target;
  for (int i = 0; i < agents; ++i) {
    FleetNode::Hooks hooks;
    hooks.confirm = [&outage_target](const ConfirmRequest& req, std::function<void(std::vector<Verdict>)> done) {
      done({{req.target, "icmp", req.target != outage_target, req.target == outage_target ? "timeout" : "", "", 0}});
    };
    nodes.push_back(std::make_unique<FleetNode>(reactor, s, "agent-" + std::to_string(i), "tag" + std::to_string(i), hooks));
    nodes.back()->start();
  }
  if (!pump_until(reactor, [&] {
        for (auto& n : nodes) if (n->alone()) return false;
        return true;
      }, 60s)) {
    std::fprintf(stderr, "fleet_bus: nodes never connected\n");
    return 1;
  }
  for (auto& n : nodes) n->set_watched(table);
  if (!pump_until(reactor, [&] {
        for (auto& n : nodes) {
          if (n->view().reporting().size() != static_cast<std::size_t>(agents)) return false;
        }
        return true;
      }, 120s)) {
    std::fprintf(stderr, "fleet_bus: tables never exchanged\n");
    return 1;
  }
  pump_until(reactor, [] { return false; }, 6s);  // settle: the first heartbeats after the tables

  std::vector<FleetStats> before;
  for (auto& n : nodes) before.push_back(n->stats());
  const auto start = std::chrono::steady_clock::now();
  pump_until(reactor, [] { return false; }, std::chrono::seconds(seconds));
  const double elapsed = ms_since(start) / 1000.0;
  double out_msgs = 0, out_bytes = 0, in_msgs = 0, in_bytes = 0;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const FleetStats a = nodes[i]->stats();
    out_msgs += static_cast<double>(a.messages_out - before[i].messages_out);
    out_bytes += static_cast<double>(a.bytes_out - before[i].bytes_out);
    in_msgs += static_cast<double>(a.messages_in - before[i].messages_in);
    in_bytes += static_cast<double>(a.bytes_in - before[i].bytes_in);
  }
  const double per = agents * elapsed;
  std::printf("steady agents=%d targets=%d seconds=%.1f sent_msgs_per_agent_s=%.3f sent_bytes_per_agent_s=%.1f "
              "received_msgs_per_agent_s=%.3f received_bytes_per_agent_s=%.1f\n",
              agents, targets, elapsed, out_msgs / per, out_bytes / per, in_msgs / per, in_bytes / per);

  std::vector<double> to_quorum, to_owner;
  int bad = 0;
  for (int o = 0; o < outages; ++o) {
    outage_target = "target-" + std::to_string(o);
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& n : nodes) n->observe({outage_target, "icmp", false, "timeout", "", 0});
    std::optional<Assessment> assessed;
    nodes[0]->confirm(outage_target, "icmp", [&](Assessment a) { assessed = a; });
    if (!pump_until(reactor, [&] { return assessed.has_value(); }, 10s) ||
        assessed->verdict != Assessment::Verdict::kDown) {
      ++bad;
      continue;
    }
    to_quorum.push_back(ms_since(t0));
    // Every agent that sees it declares at once: one incident, one owner.
    int answered = 0, created = 0, owners = 0;
    for (int i = 0; i < agents; ++i) {
      FleetIncident d;
      d.key = scope_key("target=" + outage_target);
      d.id = "NS-bench-" + std::to_string(i) + "-" + std::to_string(o);
      d.open = true;
      d.seq = 1;
      d.last_event = "declared";
      d.impacted = {{outage_target, "icmp", "target_down", {"agent-" + std::to_string(i)}, true}};
      nodes[static_cast<std::size_t>(i)]->claim(d, [&](Result<FleetNode::Claim> r) {
        ++answered;
        if (r.ok()) {
          created += r->created;
          owners += r->owner;
        }
      });
    }
    if (!pump_until(reactor, [&] { return answered == agents; }, 30s)) {
      ++bad;
      continue;
    }
    to_owner.push_back(ms_since(t0));
    if (created != 1 || owners != 1) {
      std::printf("outage %d: %d incidents created, %d owners\n", o, created, owners);
      ++bad;
    }
    for (auto& n : nodes) n->observe({outage_target, "icmp", true, "", "", 0});
  }
  std::printf("outages=%d agents=%d median_ms_to_quorum=%.1f median_ms_to_owner=%.1f max_ms_to_owner=%.1f "
              "not_one_incident_one_owner=%d\n",
              outages, agents, median(to_quorum), median(to_owner),
              to_owner.empty() ? 0.0 : *std::max_element(to_owner.begin(), to_owner.end()), bad);
  for (auto& n : nodes) n->stop();
  return bad == 0 ? 0 : 1;
}
