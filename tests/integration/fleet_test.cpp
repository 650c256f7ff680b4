// The fleet library against a real nats-server (JetStream) started by the
// test, in the test's own network namespace: three nodes agree on one
// incident and one owner, a silent owner is replaced within seconds, an agent
// without NATS says it is alone and reconciles when NATS is back, and a
// three-server cluster loses one server without losing anything.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <memory>

#include "core/log.h"
#include "fleet/node.h"
#include "nightshift/reactor.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/testnet.h"

namespace nightshift::fleet {
namespace {

using namespace std::chrono_literals;
using test::Process;
using test::TempDir;

const std::string kNetnsError = test::enter_private_netns();

// One nats-server with JetStream; in a cluster when `routes` is given.
class NatsServer {
 public:
  NatsServer(std::string dir, int port, int cluster_port = 0, std::vector<int> route_ports = {})
      : dir_(std::move(dir)), port_(port), cluster_port_(cluster_port), route_ports_(std::move(route_ports)) {
    start();
  }
  void start() {
    std::vector<std::string> argv = {"nats-server", "-js", "-a", "127.0.0.1", "-p", std::to_string(port_),
                                     "-sd", dir_, "-n", "n" + std::to_string(port_)};
    if (cluster_port_) {
      std::string routes;
      for (int p : route_ports_) routes += (routes.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(p);
      argv.insert(argv.end(), {"--cluster_name", "ns", "--cluster", "nats://127.0.0.1:" + std::to_string(cluster_port_),
                               "--routes", routes});
    }
    proc_ = std::make_unique<Process>(argv);
    ready_ = proc_->wait_for_stderr("Server is ready", 10s).has_value();
  }
  void kill() { proc_->kill_and_wait(); }
  bool ready() const { return ready_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return proc_->stderr_text(); }

 private:
  std::string dir_;
  int port_;
  int cluster_port_;
  std::vector<int> route_ports_;
  std::unique_ptr<Process> proc_;
  bool ready_ = false;
};

// Runs the reactor until `cond` holds, at most `timeout`.
bool pump_until(Reactor& r, const std::function<bool()>& cond, Duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    r.run_once(10ms);
  }
  return cond();
}

void pump_for(Reactor& r, Duration d) {
  pump_until(r, [] { return false; }, d);
}

Verdict verdict(const std::string& target, bool ok) {
  Verdict v;
  v.target = target;
  v.probe = "tcp";
  v.ok = ok;
  if (!ok) v.reason = "refused";
  return v;
}

FleetSettings settings(const std::vector<std::string>& servers) {
  FleetSettings s;
  s.enabled = true;
  s.servers = servers;
  s.name = "test";
  s.heartbeat = 500ms;
  s.lease = 2s;
  s.confirm_timeout = 2s;
  s.connect_timeout = 1s;
  return s;
}

// One agent's fleet membership plus what its hooks saw.
struct Member {
  std::string name;
  bool target_down = false;  // what this agent's probe sees when asked to confirm
  Duration answer_after{};   // how long its probe takes to answer a confirmation
  bool answers = true;       // false: it never answers one
  bool alone = true;
  int alone_changes = 0;
  std::vector<std::pair<FleetIncident, bool>> became_owner;
  std::unique_ptr<FleetNode> node;

  Member(Reactor& r, const std::string& n, const FleetSettings& s) : name(n) {
    FleetNode::Hooks hooks;
    hooks.confirm = [this, &r](const ConfirmRequest& req, std::function<void(std::vector<Verdict>)> done) {
      if (!answers) return;
      if (answer_after == Duration::zero()) {
        done({verdict(req.target, !target_down)});
        return;
      }
      r.call_after(answer_after, [this, target = req.target, done] { done({verdict(target, !target_down)}); });
    };
    hooks.alone_changed = [this](bool a) {
      alone = a;
      ++alone_changes;
    };
    hooks.became_owner = [this](const FleetIncident& inc, bool takeover) { became_owner.push_back({inc, takeover}); };
    node = std::make_unique<FleetNode>(r, s, n, "tag-" + n, hooks);
    node->start();
    node->set_watched({verdict("svc", true)});
  }
};

FleetIncident draft(const std::string& id, const std::string& vantage) {
  FleetIncident d;
  d.key = scope_key("group=core site=ams");
  d.id = id;
  d.title = "svc: target_down";
  d.severity = Severity::kCritical;
  d.declared_by = vantage;
  d.impacted = {{"svc", "tcp", "target_down", {vantage}, true}};
  d.seq = 1;
  d.last_event = "declared";
  return d;
}

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override { NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError); }
  SystemClock clock_;
  Reactor reactor_{clock_};
  TempDir dir_;
};

TEST_F(FleetTest, ConfirmationReachesQuorumInSecondsAndOneAgentOwnsTheIncident) {
  NatsServer nats(dir_.file("js"), 19410);
  ASSERT_TRUE(nats.ready()) << nats.log();
  const FleetSettings s = settings({nats.url()});
  std::vector<std::unique_ptr<Member>> m;
  for (const char* n : {"edge-a", "edge-b", "edge-c"}) m.push_back(std::make_unique<Member>(reactor_, n, s));
  ASSERT_TRUE(pump_until(reactor_, [&] {
    for (auto& x : m) {
      if (x->alone || x->node->view().reporting().size() != 3) return false;
    }
    return true;
  }, 10s)) << "the three agents never saw each other";

  // The service goes down: b and c see it when asked, a asks them at once.
  for (auto& x : m) x->target_down = true;
  m[0]->node->observe(verdict("svc", false));
  std::optional<Assessment> got;
  const auto asked = std::chrono::steady_clock::now();
  m[0]->node->confirm("svc", "tcp", [&](Assessment a) { got = a; });
  ASSERT_TRUE(pump_until(reactor_, [&] { return got.has_value(); }, 5s));
  const auto took = std::chrono::steady_clock::now() - asked;
  EXPECT_LT(took, 1s) << "a quorum answered: no need to wait for the timeout";
  EXPECT_EQ(got->verdict, Assessment::Verdict::kDown);
  // Decided at the first reply that made a quorum with a's own verdict.
  ASSERT_GE(got->down_vantages.size(), 2u);
  EXPECT_EQ(got->down_vantages[0], "edge-a");
  // The late reply still counts, and the confirmations became observations: the others see it too.
  ASSERT_TRUE(pump_until(reactor_, [&] {
    return m[0]->node->assess("svc").down_vantages.size() == 3 &&
           m[2]->node->assess("svc").verdict == Assessment::Verdict::kDown;
  }, 3s));

  // All three declare at once, each with its own id: one incident, one owner.
  std::vector<Result<FleetNode::Claim>> claims;
  for (std::size_t i = 0; i < m.size(); ++i) {
    m[i]->node->claim(draft("NS-20261201-tag" + std::to_string(i) + "-0001", m[i]->name),
                      [&](Result<FleetNode::Claim> r) { claims.push_back(std::move(r)); });
  }
  ASSERT_TRUE(pump_until(reactor_, [&] { return claims.size() == 3; }, 10s));
  int created = 0, owners = 0;
  std::set<std::string> ids;
  for (auto& c : claims) {
    ASSERT_TRUE(c.ok()) << c.error().message;
    created += c->created;
    owners += c->owner;
    ids.insert(c->incident.id);
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(owners, 1);
  EXPECT_EQ(ids.size(), 1u) << "every agent names the same incident";
  const std::string key = draft("", "").key;
  ASSERT_TRUE(pump_until(reactor_, [&] {
    for (auto& x : m) {
      const FleetIncident* inc = x->node->find_incident(key);
      if (!inc || inc->impacted.empty() || inc->impacted[0].vantages.size() != 3) return false;
    }
    return true;
  }, 5s)) << "every agent sees the incident with the three vantages";
  int owning = 0;
  for (auto& x : m) owning += x->node->owns(key);
  EXPECT_EQ(owning, 1);
  for (auto& x : m) EXPECT_TRUE(x->became_owner.empty()) << "no takeover while the owner lives";
}

TEST_F(FleetTest, PathProblemOfOneVantageIsNotAnOutage) {
  NatsServer nats(dir_.file("js"), 19411);
  ASSERT_TRUE(nats.ready()) << nats.log();
  const FleetSettings s = settings({nats.url()});
  std::vector<std::unique_ptr<Member>> m;
  for (const char* n : {"edge-a", "edge-b", "edge-c"}) m.push_back(std::make_unique<Member>(reactor_, n, s));
  ASSERT_TRUE(pump_until(reactor_, [&] { return m[0]->node->view().reporting().size() == 3; }, 10s));
  m[0]->target_down = true;  // only a's path to the service is cut
  m[0]->node->observe(verdict("svc", false));
  std::optional<Assessment> got;
  m[0]->node->confirm("svc", "tcp", [&](Assessment a) { got = a; });
  ASSERT_TRUE(pump_until(reactor_, [&] { return got.has_value(); }, 5s));
  EXPECT_EQ(got->verdict, Assessment::Verdict::kPathProblem);
  EXPECT_EQ(got->down_vantages, (std::vector<std::string>{"edge-a"}));
  // b, which did not ask, tells a's path apart too.
  ASSERT_TRUE(pump_until(reactor_, [&] {
    return m[1]->node->assess("svc").verdict == Assessment::Verdict::kPathProblem;
  }, 3s));
}

// The decision waits for fresh verdicts only as long as they can change it:
// a quorum of them saying down decides at once; an older observation of a
// watcher that has not answered yet never makes up that quorum.
TEST_F(FleetTest, AQuorumOfFreshAnswersDecidesWithoutWaitingForTheSlowestWatcher) {
  NatsServer nats(dir_.file("js"), 19417);
  ASSERT_TRUE(nats.ready()) << nats.log();
  const FleetSettings s = settings({nats.url()});  // confirm_timeout 2 s
  std::vector<std::unique_ptr<Member>> m;
  for (const char* n : {"edge-a", "edge-b", "edge-c"}) m.push_back(std::make_unique<Member>(reactor_, n, s));
  ASSERT_TRUE(pump_until(reactor_, [&] {
    for (auto& x : m) {
      if (x->alone || x->node->view().reporting().size() != 3) return false;
    }
    return true;
  }, 10s)) << "the three agents never saw each other";

  // b confirms down at once; c never answers (a probe stuck, a slow link).
  m[0]->target_down = m[1]->target_down = true;
  m[2]->answers = false;
  m[0]->node->observe(verdict("svc", false));
  std::optional<Assessment> got;
  auto asked = std::chrono::steady_clock::now();
  m[0]->node->confirm("svc", "tcp", [&](Assessment a) { got = a; });
  ASSERT_TRUE(pump_until(reactor_, [&] { return got.has_value(); }, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - asked, 1s) << "a and b are a quorum: c cannot change it";
  EXPECT_EQ(got->verdict, Assessment::Verdict::kDown);
  EXPECT_EQ(got->down_vantages, (std::vector<std::string>{"edge-a", "edge-b"}));

  // Now b sees it up, and c's last observation says down but its fresh
  // answer (up) comes 600 ms later: a quorum by the older observations (a
  // and c) must not decide; c's answer does, and it is a's path.
  m[1]->target_down = false;
  m[1]->node->observe(verdict("svc", true));
  m[2]->node->observe(verdict("svc", false));
  ASSERT_TRUE(pump_until(reactor_, [&] {
    const Assessment a = m[0]->node->assess("svc");
    return a.down_vantages == std::vector<std::string>{"edge-a", "edge-c"};
  }, 3s)) << "a hears c's observation";
  m[2]->answers = true;
  m[2]->target_down = false;
  m[2]->answer_after = 600ms;
  got.reset();
  asked = std::chrono::steady_clock::now();
  m[0]->node->confirm("svc", "tcp", [&](Assessment a) { got = a; });
  ASSERT_TRUE(pump_until(reactor_, [&] { return got.has_value(); }, 5s));
  EXPECT_GE(std::chrono::steady_clock::now() - asked, 550ms) << "decided on c's older observation";
  EXPECT_EQ(got->verdict, Assessment::Verdict::kPathProblem);
  EXPECT_EQ(got->down_vantages, (std::vector<std::string>{"edge-a"}));
}

// Agents whose rounds share a phase declare an outage in the same
// millisecond: each claim must still join the one incident (not give up on
// the compare-and-set race and page alone, as 25 of 50 real agents did).
TEST_F(FleetTest, ManyAgentsClaimingAtOnceMakeOneIncidentAndOneOwner) {
  NatsServer nats(dir_.file("js"), 19418);
  ASSERT_TRUE(nats.ready()) << nats.log();
  const FleetSettings s = settings({nats.url()});
  constexpr std::size_t kAgents = 24;
  std::vector<std::unique_ptr<Member>> m;
  for (std::size_t i = 0; i < kAgents; ++i) {
    m.push_back(std::make_unique<Member>(reactor_, "edge-" + std::to_string(i), s));
  }
  ASSERT_TRUE(pump_until(reactor_, [&] {
    for (auto& x : m) {
      if (x->alone) return false;
    }
    return true;
  }, 20s)) << "not every agent connected";
  std::vector<Result<FleetNode::Claim>> claims;
  for (std::size_t i = 0; i < m.size(); ++i) {
    m[i]->node->claim(draft("NS-20261201-tag" + std::to_string(i) + "-0001", m[i]->name),
                      [&](Result<FleetNode::Claim> r) { claims.push_back(std::move(r)); });
  }
  ASSERT_TRUE(pump_until(reactor_, [&] { return claims.size() == kAgents; }, 30s));
  int created = 0, owners = 0;
  std::set<std::string> ids;
  for (auto& c : claims) {
    ASSERT_TRUE(c.ok()) << c.error().message;
    created += c->created;
    owners += c->owner;
    ids.insert(c->incident.id);
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(owners, 1);
  EXPECT_EQ(ids.size(), 1u);
}

TEST_F(FleetTest, SilentOwnerIsReplacedWithinSecondsAndTheResolveGoesOutOnce) {
  NatsServer nats(dir_.file("js"), 19412);
  ASSERT_TRUE(nats.ready()) << nats.log();
  const FleetSettings s = settings({nats.url()});
  auto a = std::make_unique<Member>(reactor_, "edge-a", s);
  auto b = std::make_unique<Member>(reactor_, "edge-b", s);
  ASSERT_TRUE(pump_until(reactor_, [&] { return !a->alone && !b->alone; }, 10s));
  std::optional<Result<FleetNode::Claim>> ca, cb;
  a->node->claim(draft("NS-20261201-taga-0001", "edge-a"), [&](Result<FleetNode::Claim> r) { ca = std::move(r); });
  ASSERT_TRUE(pump_until(reactor_, [&] { return ca.has_value(); }, 5s));
  ASSERT_TRUE(ca->ok() && (*ca)->owner) << (ca->ok() ? "not owner" : ca->error().message);
  b->node->claim(draft("NS-20261201-tagb-0001", "edge-b"), [&](Result<FleetNode::Claim> r) { cb = std::move(r); });
  ASSERT_TRUE(pump_until(reactor_, [&] { return cb.has_value(); }, 5s));
  ASSERT_TRUE(cb->ok());
  EXPECT_FALSE((*cb)->owner);
  const std::string key = (*ca)->incident.key;
  // a announced "declared" (seq 1) and put it in its outbox.
  a->node->mark_notified(key, 1);
  ASSERT_TRUE(pump_until(reactor_, [&] {
    const FleetIncident* inc = b->node->find_incident(key);
    return inc && inc->notified == 1;
  }, 5s));
  // The owner dies: it stops renewing and never says goodbye.
  pump_for(reactor_, 2500ms);  // a few renewals first: the lease is not just its first write
  ASSERT_TRUE(a->node->owns(key));
  const auto died = std::chrono::steady_clock::now();
  a.reset();
  ASSERT_TRUE(pump_until(reactor_, [&] { return !b->became_owner.empty(); }, 10s)) << "nobody took over";
  const auto takeover = std::chrono::steady_clock::now() - died;
  EXPECT_LT(takeover, s.lease + 2s) << "within a lease and a poll";
  EXPECT_TRUE(b->became_owner[0].second);
  EXPECT_EQ(b->became_owner[0].first.id, "NS-20261201-taga-0001") << "the incident keeps its id";
  EXPECT_EQ(b->became_owner[0].first.notified, b->became_owner[0].first.seq) << "nothing left to re-announce";
  EXPECT_TRUE(b->node->owns(key));
  // The new owner resolves: one event, seq 2, announced once.
  std::optional<Result<FleetIncident>> resolved;
  b->node->record(key, "resolved", [](FleetIncident& i) { i.open = false; },
                  [&](Result<FleetIncident> r) { resolved = std::move(r); });
  ASSERT_TRUE(pump_until(reactor_, [&] { return resolved.has_value(); }, 5s));
  ASSERT_TRUE(resolved->ok()) << resolved->error().message;
  EXPECT_EQ((*resolved)->seq, 2u);
  EXPECT_EQ((*resolved)->last_event, "resolved");
  EXPECT_FALSE((*resolved)->open);
  pump_for(reactor_, 1s);
  EXPECT_EQ(b->became_owner.size(), 1u);
  EXPECT_EQ(b->node->stats().takeovers, 1u);
}

TEST_F(FleetTest, WithoutNatsAnAgentIsAloneAndReconcilesWithoutASecondPage) {
  auto nats = std::make_unique<NatsServer>(dir_.file("js"), 19413);
  ASSERT_TRUE(nats->ready()) << nats->log();
  const FleetSettings s = settings({nats->url()});
  Member a(reactor_, "edge-a", s);
  Member b(reactor_, "edge-b", s);
  ASSERT_TRUE(pump_until(reactor_, [&] { return !a.alone && !b.alone; }, 10s));
  nats->kill();
  ASSERT_TRUE(pump_until(reactor_, [&] { return a.alone && b.alone; }, 10s)) << "nobody noticed NATS was gone";
  EXPECT_TRUE(a.node->alone());
  std::optional<Result<FleetNode::Claim>> refused;
  a.node->claim(draft("NS-20261201-taga-0001", "edge-a"), [&](Result<FleetNode::Claim> r) { refused = std::move(r); });
  ASSERT_TRUE(refused.has_value()) << "alone: answered at once";
  EXPECT_FALSE(refused->ok());
  EXPECT_EQ(refused->error().code, ErrorCode::kUnavailable);
  // a pages alone (its own id), then NATS comes back with its storage.
  nats->start();
  ASSERT_TRUE(nats->ready()) << nats->log();
  ASSERT_TRUE(pump_until(reactor_, [&] { return !a.alone && !b.alone; }, 15s)) << "never reconnected";
  EXPECT_EQ(a.alone_changes, 3) << "connected, alone, connected";
  FleetIncident paged_alone = draft("NS-20261201-taga-0001", "edge-a");
  paged_alone.notified = paged_alone.seq;  // already in a's outbox
  std::optional<Result<FleetNode::Claim>> adopted;
  a.node->claim(paged_alone, [&](Result<FleetNode::Claim> r) { adopted = std::move(r); });
  ASSERT_TRUE(pump_until(reactor_, [&] { return adopted.has_value(); }, 10s));
  ASSERT_TRUE(adopted->ok()) << adopted->error().message;
  EXPECT_TRUE((*adopted)->created);
  EXPECT_TRUE((*adopted)->owner);
  EXPECT_EQ((*adopted)->incident.id, "NS-20261201-taga-0001") << "the fleet adopts the id already paged";
  EXPECT_EQ((*adopted)->incident.notified, (*adopted)->incident.seq) << "nothing to announce again";
  // b's watcher, kept across the outage, resumes and delivers a's write.
  const std::string key = (*adopted)->incident.key;
  EXPECT_TRUE(pump_until(reactor_, [&] { return b.node->find_incident(key) != nullptr; }, 15s));
  // b, which paged the same outage alone too, joins it: no second incident.
  std::optional<Result<FleetNode::Claim>> joined;
  FleetIncident b_alone = draft("NS-20261201-tagb-0001", "edge-b");
  b_alone.notified = 1;
  b.node->claim(b_alone, [&](Result<FleetNode::Claim> r) { joined = std::move(r); });
  ASSERT_TRUE(pump_until(reactor_, [&] { return joined.has_value(); }, 10s));
  ASSERT_TRUE(joined->ok()) << joined->error().message;
  EXPECT_FALSE((*joined)->created);
  EXPECT_FALSE((*joined)->owner);
  EXPECT_EQ((*joined)->incident.id, "NS-20261201-taga-0001");
  ASSERT_EQ((*joined)->incident.impacted.size(), 1u);
  EXPECT_EQ((*joined)->incident.impacted[0].vantages, (std::vector<std::string>{"edge-a", "edge-b"}));
}

TEST_F(FleetTest, AServerBackWithoutItsStorageGetsItsBucketsAgain) {
  auto nats = std::make_unique<NatsServer>(dir_.file("js"), 19414);
  ASSERT_TRUE(nats->ready()) << nats->log();
  const FleetSettings s = settings({nats->url()});
  Member a(reactor_, "edge-a", s);
  Member b(reactor_, "edge-b", s);
  ASSERT_TRUE(pump_until(reactor_, [&] { return !a.alone && !b.alone; }, 10s));
  auto claim = [&](const std::string& id) {
    std::optional<Result<FleetNode::Claim>> out;
    a.node->claim(draft(id, "edge-a"), [&](Result<FleetNode::Claim> r) { out = std::move(r); });
    EXPECT_TRUE(pump_until(reactor_, [&] { return out.has_value(); }, 10s));
    return out;
  };
  auto b_sees = [&](const std::string& key, const std::string& id) {
    return pump_until(reactor_, [&] {
      const FleetIncident* inc = b.node->find_incident(key);
      return inc && inc->id == id;
    }, 10s);
  };
  // Revisions the old bucket's watchers have seen; the new bucket starts at 1 again.
  auto before = claim("NS-20261201-taga-0001");
  ASSERT_TRUE(before && before->ok());
  const std::string key = (*before)->incident.key;
  ASSERT_TRUE(b_sees(key, "NS-20261201-taga-0001"));
  nats->kill();
  ASSERT_TRUE(pump_until(reactor_, [&] { return a.alone && b.alone; }, 10s));
  std::filesystem::remove_all(dir_.file("js"));  // a container restarted without its volume
  nats->start();
  ASSERT_TRUE(nats->ready()) << nats->log();
  ASSERT_TRUE(pump_until(reactor_, [&] { return !a.alone && !b.alone; }, 15s)) << "never reconnected";
  auto after = claim("NS-20261201-taga-0002");
  ASSERT_TRUE(after && after->ok()) << (after ? after->error().message : "no answer");
  EXPECT_TRUE((*after)->created) << "the bucket is empty again";
  EXPECT_TRUE((*after)->owner);
  EXPECT_TRUE(b_sees(key, "NS-20261201-taga-0002")) << "b watches the new bucket";
}

TEST_F(FleetTest, OneServerOfAThreeNodeClusterDiesAndNothingIsLost) {
  const std::vector<int> client = {19420, 19421, 19422};
  const std::vector<int> cluster = {19425, 19426, 19427};
  std::vector<std::unique_ptr<NatsServer>> servers;
  std::vector<std::string> urls;
  for (int i = 0; i < 3; ++i) {
    std::vector<int> routes;
    for (int j = 0; j < 3; ++j) {
      if (j != i) routes.push_back(cluster[j]);
    }
    servers.push_back(std::make_unique<NatsServer>(dir_.file("js" + std::to_string(i)), client[i], cluster[i], routes));
    urls.push_back(servers.back()->url());
  }
  for (auto& srv : servers) ASSERT_TRUE(srv->ready()) << srv->log();
  FleetSettings s = settings(urls);
  s.replicas = 3;
  // Longer than the default 6 s: a stream leader election after a server
  // dies takes 2-5 s, and on a loaded machine a renewal that failed during it
  // let the lease lapse (the test is about nothing being lost).
  s.lease = 10s;
  // JetStream needs its meta leader elected before the buckets can be made.
  Member a(reactor_, "edge-a", s);
  Member b(reactor_, "edge-b", s);
  ASSERT_TRUE(pump_until(reactor_, [&] { return !a.alone && !b.alone; }, 30s)) << servers[0]->log();
  std::optional<Result<FleetNode::Claim>> ca;
  a.node->claim(draft("NS-20261201-taga-0001", "edge-a"), [&](Result<FleetNode::Claim> r) { ca = std::move(r); });
  ASSERT_TRUE(pump_until(reactor_, [&] { return ca.has_value(); }, 10s));
  ASSERT_TRUE(ca->ok()) << ca->error().message;
  ASSERT_TRUE((*ca)->owner);
  const std::string key = (*ca)->incident.key;
  ASSERT_TRUE(pump_until(reactor_, [&] { return b.node->find_incident(key) != nullptr; }, 5s));

  servers[0]->kill();
  // Whoever was connected to it reconnects to another; the lease survives (renewed through the others).
  pump_for(reactor_, s.lease + 2s);
  ASSERT_TRUE(pump_until(reactor_, [&] { return !a.alone; }, 15s));
  EXPECT_TRUE(a.node->owns(key)) << "the lease outlived the server";
  EXPECT_TRUE(b.became_owner.empty()) << "no takeover: the owner never went silent";
  std::optional<Result<FleetIncident>> updated;
  a.node->record(key, "resolved", [](FleetIncident& i) { i.open = false; },
                 [&](Result<FleetIncident> r) { updated = std::move(r); });
  // The write waits for the bucket's new stream leader; on a loaded machine
  // (the sanitizer run, two tests at once) that election took over 10 s.
  ASSERT_TRUE(pump_until(reactor_, [&] { return updated.has_value(); }, 30s));
  ASSERT_TRUE(updated->ok()) << updated->error().message;
  EXPECT_EQ((*updated)->seq, 2u);
  ASSERT_TRUE(pump_until(reactor_, [&] {
    const FleetIncident* inc = b.node->find_incident(key);
    return inc && !inc->open && inc->id == "NS-20261201-taga-0001";
    // A watcher whose consumer lived on the dead server resets on libnats'
    // missed-heartbeat cycle (10 s); its first resets can time out while the
    // cluster settles.
  }, 60s)) << "b saw the resolve written after the server died";
}

}  // namespace
}  // namespace nightshift::fleet
