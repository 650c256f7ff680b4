#include "fleet/node.h"

#include <nats/nats.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

#include "core/log.h"

namespace nightshift::fleet {

namespace {

constexpr std::size_t kVerdictsPerMessage = 500;  // keeps a message far below NATS' 1 MB max_payload
constexpr int kCasAttempts = 30;

// Between compare-and-set attempts that lost: a random pause growing with the
// attempt (up to 2, 4, 8 ... 100 ms), so that many agents writing one key at
// once (a fleet whose rounds share a phase declares in the same millisecond)
// spread out instead of colliding again in step. 50 agents claiming at once
// ran out of 8 immediate retries and paged alone, 26 of them.
void cas_backoff(int attempt) {
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> pause(0, std::min(100, 2 << std::min(attempt, 6)));
  std::this_thread::sleep_for(std::chrono::milliseconds(pause(rng)));
}

std::int64_t unix_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::int64_t to_ms(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

std::string nats_error(natsStatus s) {
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  std::string out = natsStatus_GetText(s);
  if (text && *text) out += std::string(": ") + text;
  return out;
}

// kvStore_Create / kvStore_Update refused because the revision moved: another
// agent wrote first. Normal under races; the caller reads and retries.
bool is_conflict(natsStatus s) {
  if (s == NATS_OK) return false;
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  return text && (std::strstr(text, "wrong last sequence") || std::strstr(text, "key exists"));
}

std::string random_hex(std::size_t n) {
  std::random_device rd;
  std::string out;
  static const char* digits = "0123456789abcdef";
  for (std::size_t i = 0; i < n; ++i) out += digits[rd() % 16];
  return out;
}

}  // namespace

// What NATS' threads and the worker reach. NATS callbacks hold a Relay (never
// freed, see below), not this, so a callback already queued inside the library
// when the node stops finds nothing and returns.
struct FleetNode::Shared {
  Reactor* reactor = nullptr;
  FleetNode* node = nullptr;  // dereferenced on the reactor thread only, while *alive
  std::shared_ptr<std::atomic<bool>> alive;
  FleetSettings settings;
  std::string agent;

  natsOptions* opts = nullptr;
  std::atomic<natsConnection*> nc{nullptr};  // set once by the worker; the reactor publishes through it
  jsCtx* js = nullptr;
  kvStore* incidents = nullptr;
  kvStore* leases = nullptr;
  std::vector<natsSubscription*> subs;

  std::thread worker;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void(Shared&)>> jobs;
  bool stopping = false;

  std::thread watch_thread;
  std::mutex watch_mu;
  kvWatcher* watcher = nullptr;
  std::atomic<bool> watch_stop{false};
  std::atomic<bool> watch_dead{false};  // its loop ended on a closed subscription
  std::int64_t incidents_created = 0;     // the bucket stream's creation time, to see it replaced
  std::vector<kvWatcher*> retired;        // stopped once the connection is closed; see attach()

  std::atomic<std::uint64_t> messages_out{0}, bytes_out{0}, messages_in{0}, bytes_in{0};
  std::atomic<std::uint64_t> kv_operations{0}, kv_conflicts{0}, decode_errors{0};

  void post(std::function<void(FleetNode&)> task) {
    auto a = alive;
    FleetNode* n = node;
    reactor->post([a, n, task = std::move(task)] {
      if (*a) task(*n);
    });
  }
  bool connected() const { return nc && natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED; }

  // Reads a key: the entry's value and revision, nothing when absent.
  Result<std::optional<std::pair<std::string, std::uint64_t>>> get(kvStore* kv, const std::string& key) {
    ++kv_operations;
    kvEntry* e = nullptr;
    natsStatus s = kvStore_Get(&e, kv, key.c_str());
    if (s == NATS_NOT_FOUND) return std::optional<std::pair<std::string, std::uint64_t>>{};
    if (s != NATS_OK) return Error::unavailable("kv get " + key + ": " + nats_error(s));
    std::pair<std::string, std::uint64_t> out{
        std::string(static_cast<const char*>(kvEntry_Value(e)), static_cast<std::size_t>(kvEntry_ValueLen(e))),
        kvEntry_Revision(e)};
    kvEntry_Destroy(e);
    return std::optional<std::pair<std::string, std::uint64_t>>(std::move(out));
  }
  // Reads the fleet incident at `key`, lets `change` edit it (false: nothing
  // to write) and compare-and-sets it, again from the top when another agent
  // wrote first. The incident as stored.
  Result<FleetIncident> update(const std::string& key, const std::function<Result<bool>(FleetIncident&)>& change) {
    if (!connected()) return Error::unavailable("not connected to NATS");
    for (int attempt = 0; attempt < kCasAttempts; ++attempt) {
      auto current = get(incidents, key);
      if (!current.ok()) return current.error();
      if (!current->has_value()) return Error::not_found("no fleet incident " + key);
      auto inc = decode_incident((*current)->first);
      if (!inc.ok()) return inc.error();
      auto changed = change(*inc);
      if (!changed.ok()) return changed.error();
      if (!*changed) return inc;
      auto rev = write(incidents, key, encode(*inc), (*current)->second);
      if (!rev.ok()) return rev.error();
      if (*rev != 0) return inc;
      cas_backoff(attempt);
    }
    return Error::unavailable("incident " + key + ": too many concurrent writers");
  }
  // Creates (last == 0) or compare-and-sets; the new revision, 0 on a conflict.
  Result<std::uint64_t> write(kvStore* kv, const std::string& key, const std::string& value, std::uint64_t last) {
    ++kv_operations;
    std::uint64_t rev = 0;
    const int len = static_cast<int>(value.size());
    natsStatus s = last == 0 ? kvStore_Create(&rev, kv, key.c_str(), value.data(), len)
                             : kvStore_Update(&rev, kv, key.c_str(), value.data(), len, last);
    if (s == NATS_OK) return rev;
    if (is_conflict(s)) {
      ++kv_conflicts;
      return std::uint64_t{0};
    }
    return Error::unavailable("kv write " + key + ": " + nats_error(s));
  }
};

namespace {

// The closure NATS callbacks get. Relays are kept for the life of the process
// (a few dozen bytes per node started): the library may still run a queued
// callback after the connection is destroyed, and it must find a live object
// that says "gone".
struct Relay {
  std::mutex mu;
  FleetNode::Shared* shared = nullptr;  // null once the node stopped
};

std::mutex relays_mu;
std::vector<std::unique_ptr<Relay>>& relays() {
  static auto* r = new std::vector<std::unique_ptr<Relay>>();  // reachable to the end: never a leak report
  return *r;
}

}  // namespace

struct RelayAccess {
  static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* relay = static_cast<Relay*>(closure);
    std::string subject = natsMsg_GetSubject(msg);
    std::string data(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    const char* reply = natsMsg_GetReply(msg);
    std::string reply_to = reply ? reply : "";
    natsMsg_Destroy(msg);
    std::lock_guard<std::mutex> lock(relay->mu);
    if (!relay->shared) return;
    ++relay->shared->messages_in;
    relay->shared->bytes_in += data.size();
    relay->shared->post([subject = std::move(subject), data = std::move(data), reply_to = std::move(reply_to)](
                            FleetNode& n) { n.on_message(subject, data, reply_to); });
  }
  static void on_connection(void* closure, bool up) {
    auto* relay = static_cast<Relay*>(closure);
    std::lock_guard<std::mutex> lock(relay->mu);
    if (relay->shared) relay->shared->post([up](FleetNode& n) { n.on_connection(up); });
  }
  static void on_up(natsConnection*, void* closure) { on_connection(closure, true); }
  static void on_down(natsConnection*, void* closure) { on_connection(closure, false); }
  static void on_error(natsConnection*, natsSubscription*, natsStatus err, void*) {
    log::warn("fleet: NATS reported an error", {{"error", natsStatus_GetText(err)}});
  }
};

FleetNode::FleetNode(Reactor& reactor, FleetSettings settings, std::string agent, std::string id_tag, Hooks hooks)
    : reactor_(reactor),
      settings_(std::move(settings)),
      agent_(std::move(agent)),
      agent_token_(subject_token(agent_)),
      id_tag_(std::move(id_tag)),
      hooks_(std::move(hooks)),
      view_(reactor.clock(), agent_, settings_.quorum, settings_.peer_timeout()),
      shared_(std::make_shared<Shared>()),
      alive_(std::make_shared<std::atomic<bool>>(true)) {
  shared_->reactor = &reactor_;
  shared_->node = this;
  shared_->alive = alive_;
  shared_->settings = settings_;
  shared_->agent = agent_;
}

FleetNode::~FleetNode() { stop(); }

std::string FleetNode::subject(const std::string& kind) const { return "ns." + settings_.name + "." + kind; }

void FleetNode::post(std::function<void(FleetNode&)> task) { shared_->post(std::move(task)); }

void FleetNode::run_on_worker(std::function<void(Shared&)> job) {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (shared_->stopping) return;
    shared_->jobs.push_back(std::move(job));
  }
  shared_->cv.notify_one();
}

void FleetNode::start() {
  if (started_) return;
  started_ = true;
  Shared& sh = *shared_;
  Relay* relay = nullptr;
  {
    std::lock_guard<std::mutex> lock(relays_mu);
    relays().push_back(std::make_unique<Relay>());
    relay = relays().back().get();
    relay->shared = &sh;
  }
  sh.worker = std::thread([&sh] {
    for (;;) {
      std::function<void(Shared&)> job;
      {
        std::unique_lock<std::mutex> lock(sh.mu);
        sh.cv.wait(lock, [&] { return sh.stopping || !sh.jobs.empty(); });
        if (sh.stopping) return;
        job = std::move(sh.jobs.front());
        sh.jobs.pop_front();
      }
      job(sh);
    }
  });

  const std::string inbox = "_INBOX." + random_hex(16);
  const std::vector<std::string> subjects = {subject("obs.*"), subject("hb.*"), subject("snap." + agent_token_),
                                             subject("confirm"), inbox + ".confirm", inbox + ".snap"};
  confirm_inbox_ = inbox + ".confirm";
  snap_inbox_ = inbox + ".snap";
  run_on_worker([relay, subjects](Shared& s) {
    natsOptions_Create(&s.opts);
    std::vector<const char*> urls;
    for (const auto& u : s.settings.servers) urls.push_back(u.c_str());
    natsOptions_SetServers(s.opts, urls.data(), static_cast<int>(urls.size()));
    natsOptions_SetName(s.opts, ("nightshift " + s.agent).c_str());
    natsOptions_SetTimeout(s.opts, to_ms(s.settings.connect_timeout));
    natsOptions_SetMaxReconnect(s.opts, -1);  // forever: an agent alone keeps trying
    natsOptions_SetReconnectWait(s.opts, 500);
    natsOptions_SetReconnectJitter(s.opts, 100, 500);
    natsOptions_SetPingInterval(s.opts, 2000);  // a dead server found in seconds, not minutes
    natsOptions_SetMaxPingsOut(s.opts, 2);
    natsOptions_SetFailRequestsOnDisconnect(s.opts, true);
    natsOptions_UseGlobalMessageDelivery(s.opts, true);  // a shared pool, not a thread per subscription
    natsOptions_SetDisconnectedCB(s.opts, &RelayAccess::on_down, relay);
    natsOptions_SetReconnectedCB(s.opts, &RelayAccess::on_up, relay);
    natsOptions_SetErrorHandler(s.opts, &RelayAccess::on_error, relay);
    natsOptions_SetRetryOnFailedConnect(s.opts, true, &RelayAccess::on_up, relay);
    const FleetSettings& fs = s.settings;
    if (!fs.credentials_file.empty()) natsOptions_SetUserCredentialsFromFiles(s.opts, fs.credentials_file.c_str(), nullptr);
    if (!fs.user.empty()) natsOptions_SetUserInfo(s.opts, fs.user.c_str(), fs.password.c_str());
    if (!fs.token.empty()) natsOptions_SetToken(s.opts, fs.token.c_str());
    if (!fs.tls_ca_file.empty() || !fs.tls_cert_file.empty()) natsOptions_SetSecure(s.opts, true);
    if (!fs.tls_ca_file.empty()) natsOptions_LoadCATrustedCertificates(s.opts, fs.tls_ca_file.c_str());
    if (!fs.tls_cert_file.empty()) {
      natsOptions_LoadCertificatesChain(s.opts, fs.tls_cert_file.c_str(), fs.tls_key_file.c_str());
    }
    natsConnection* conn = nullptr;
    natsStatus st = natsConnection_Connect(&conn, s.opts);
    s.nc = conn;
    if (st != NATS_OK && st != NATS_NOT_YET_CONNECTED) {
      const std::string why = nats_error(st);
      s.post([why](FleetNode&) { log::error("fleet: cannot set up the NATS connection; running alone", {{"error", why}}); });
      return;
    }
    for (const auto& subj : subjects) {
      natsSubscription* sub = nullptr;
      if (natsConnection_Subscribe(&sub, s.nc, subj.c_str(), &RelayAccess::on_msg, relay) == NATS_OK) {
        s.subs.push_back(sub);
      }
    }
    if (st == NATS_OK) RelayAccess::on_connection(relay, true);
  });
  relay_ = relay;
  heartbeat_timer_ = reactor_.call_after(settings_.heartbeat, [this] { heartbeat(); });
  lease_timer_ = reactor_.call_after(settings_.lease / 3, [this] { renew_leases(); });
  takeover_timer_ = reactor_.call_after(std::max<Duration>(settings_.lease / 4, std::chrono::milliseconds(250)),
                                        [this] { poll_takeovers(); });
  log::info("fleet: joining", {{"agent", agent_}, {"settings", describe(settings_)}});
}

void FleetNode::stop() {
  if (!started_) return;
  started_ = false;
  *alive_ = false;
  for (auto* t : {&heartbeat_timer_, &lease_timer_, &takeover_timer_}) {
    if (*t) reactor_.cancel(*t);
    *t = 0;
  }
  for (auto& [id, p] : pending_) {
    if (p.timer) reactor_.cancel(p.timer);
  }
  pending_.clear();
  {
    auto* relay = static_cast<Relay*>(relay_);
    std::lock_guard<std::mutex> lock(relay->mu);
    relay->shared = nullptr;
  }
  Shared& sh = *shared_;
  {
    std::lock_guard<std::mutex> lock(sh.mu);
    sh.stopping = true;
  }
  sh.cv.notify_all();
  if (sh.worker.joinable()) sh.worker.join();
  // Closed first, so stopping the watcher deletes no consumer on the server
  // (the server drops an ordered consumer by itself) and cannot race
  // libnats' reset of it; see attach().
  natsConnection* conn = sh.nc.exchange(nullptr);
  sh.watch_stop = true;
  if (conn) natsConnection_Close(conn);
  stop_watcher(sh);
  for (auto* w : sh.retired) kvWatcher_Destroy(w);
  sh.retired.clear();
  for (auto* sub : sh.subs) natsSubscription_Destroy(sub);
  sh.subs.clear();
  if (sh.incidents) kvStore_Destroy(sh.incidents);
  if (sh.leases) kvStore_Destroy(sh.leases);
  if (sh.js) jsCtx_Destroy(sh.js);
  if (conn) natsConnection_Destroy(conn);
  if (sh.opts) natsOptions_Destroy(sh.opts);
  sh.incidents = sh.leases = nullptr;
  sh.js = nullptr;
  sh.nc = nullptr;
  sh.opts = nullptr;
  ready_ = false;
  connected_ = false;
}

void FleetNode::retire_watcher(Shared& sh) {
  if (!sh.watcher) return;
  sh.watch_stop = true;
  if (sh.watch_thread.joinable()) sh.watch_thread.join();
  if (sh.watch_dead) {
    kvWatcher_Destroy(sh.watcher);
  } else {
    sh.retired.push_back(sh.watcher);
  }
  sh.watcher = nullptr;
  sh.watch_stop = false;
  sh.watch_dead = false;
}

void FleetNode::stop_watcher(Shared& sh) {
  sh.watch_stop = true;
  {
    std::lock_guard<std::mutex> lock(sh.watch_mu);
    if (sh.watcher) kvWatcher_Stop(sh.watcher);
  }
  if (sh.watch_thread.joinable()) sh.watch_thread.join();
  if (sh.watcher) kvWatcher_Destroy(sh.watcher);
  sh.watcher = nullptr;
  sh.watch_stop = false;
  sh.watch_dead = false;
}

FleetStats FleetNode::stats() const {
  const Shared& s = *shared_;
  FleetStats out;
  out.messages_out = s.messages_out;
  out.bytes_out = s.bytes_out;
  out.messages_in = s.messages_in;
  out.bytes_in = s.bytes_in;
  out.kv_operations = s.kv_operations;
  out.kv_conflicts = s.kv_conflicts;
  out.decode_errors = s.decode_errors;
  out.takeovers = takeovers_;
  return out;
}

// ---- connection and readiness ----

void FleetNode::on_connection(bool up) {
  connected_ = up;
  if (!up) {
    set_ready(false);
    return;
  }
  run_on_worker([](Shared& s) {
    bool new_watcher = false;
    Status result = attach(s, new_watcher);
    // A new watcher says ready once it delivered the bucket's current values.
    if (!result.ok() || !new_watcher) s.post([result](FleetNode& n) { n.on_ready(result); });
  });
}

// Buckets and the incident watcher, on the worker. The watcher is made once
// and kept across reconnects: libnats resumes its ordered consumer after the
// last revision it delivered, so what was written while this agent was away
// still arrives. A live watcher is never stopped while its connection is up:
// in libnats 3.4 kvWatcher_Stop -> jsSub_deleteConsumer reads the consumer
// name that a concurrent reset of the ordered consumer frees. One that must
// go is retired instead (its thread ends; the watcher is stopped after the
// connection closed).
Status FleetNode::attach(Shared& s, bool& new_watcher) {
  if (!s.js) {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 2000;
    if (natsStatus st = natsConnection_JetStream(&s.js, s.nc, &jo); st != NATS_OK) {
      return Error::unavailable("JetStream: " + nats_error(st));
    }
  }
  const std::string incidents_bucket = "NS_" + s.settings.name + "_incidents";
  auto stream_created = [&](std::int64_t& created) -> natsStatus {
    jsStreamInfo* si = nullptr;
    natsStatus st = js_GetStreamInfo(&si, s.js, ("KV_" + incidents_bucket).c_str(), nullptr, nullptr);
    if (st == NATS_OK) created = si->Created;
    if (si) jsStreamInfo_Destroy(si);
    return st;
  };
  if (s.incidents) {
    // The server came back without its JetStream storage (no volume, say):
    // the bucket is gone, or made again by another agent. Its new stream
    // numbers revisions from 1, so the old watcher would skip them.
    std::int64_t created = 0;
    natsStatus st = stream_created(created);
    if (st != NATS_OK && st != NATS_NOT_FOUND) return Error::unavailable("incident bucket: " + nats_error(st));
    if (st == NATS_NOT_FOUND || created != s.incidents_created) {
      log::warn("fleet: the incident bucket on the servers is new or gone; attaching to it again",
                {{"bucket", incidents_bucket}});
      retire_watcher(s);
      kvStore_Destroy(s.incidents);
      s.incidents = nullptr;
      if (s.leases) kvStore_Destroy(s.leases);
      s.leases = nullptr;
    }
  }
  int replicas = s.settings.replicas;
  if (replicas == 0) {
    char** servers = nullptr;
    int count = 0;
    if (natsConnection_GetServers(s.nc, &servers, &count) == NATS_OK) {
      for (int i = 0; i < count; ++i) free(servers[i]);
      free(servers);
    }
    replicas = count >= 3 ? 3 : 1;
  }
  auto open_bucket = [&](kvStore** kv, const std::string& name, Duration ttl) -> Status {
    if (*kv) return {};
    kvConfig c;
    kvConfig_Init(&c);
    c.Bucket = name.c_str();
    c.History = 1;
    c.TTL = std::chrono::duration_cast<std::chrono::nanoseconds>(ttl).count();
    c.Replicas = replicas;
    c.StorageType = js_FileStorage;
    natsStatus st = js_CreateKeyValue(kv, s.js, &c);
    if (st != NATS_OK) st = js_KeyValue(kv, s.js, name.c_str());  // exists with another config: use it
    if (st != NATS_OK) return Error::unavailable("bucket " + name + ": " + nats_error(st));
    return {};
  };
  const bool reopened = !s.incidents;
  if (Status b = open_bucket(&s.incidents, incidents_bucket, std::chrono::hours(24 * 7)); !b.ok()) return b;
  if (Status b = open_bucket(&s.leases, "NS_" + s.settings.name + "_leases", s.settings.lease); !b.ok()) return b;
  if (reopened) {
    if (natsStatus st = stream_created(s.incidents_created); st != NATS_OK) {
      return Error::unavailable("incident bucket: " + nats_error(st));
    }
  }
  if (s.watcher && !s.watch_dead) return {};
  stop_watcher(s);  // a dead one: its subscription or connection is closed, so nothing is deleted
  kvWatcher* w = nullptr;
  if (natsStatus st = kvStore_WatchAll(&w, s.incidents, nullptr); st != NATS_OK) {
    return Error::unavailable("watch incidents: " + nats_error(st));
  }
  s.watcher = w;
  s.watch_thread = std::thread([&s, w] { watch_loop(s, w); });
  new_watcher = true;
  return {};
}

void FleetNode::watch_loop(Shared& s, void* watcher) {
  auto* w = static_cast<kvWatcher*>(watcher);
  while (!s.watch_stop) {
    kvEntry* e = nullptr;
    natsStatus st = kvWatcher_Next(&e, w, 250);
    if (st == NATS_TIMEOUT) continue;
    if (st != NATS_OK) {
      if (s.watch_stop) return;
      const std::string why = nats_error(st);
      if (st != NATS_CONNECTION_CLOSED && st != NATS_INVALID_SUBSCRIPTION && st != NATS_ILLEGAL_STATE) {
        // One bad update, or a slow-consumer gap the ordered consumer mends by
        // itself: the watcher lives on.
        log::warn("fleet: the incident watcher skipped an update", {{"error", why}});
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // never a busy loop on a repeating error
        continue;
      }
      // The watcher's subscription is closed: attach again, which makes a new
      // one and delivers every current value.
      s.watch_dead = true;
      s.post([why](FleetNode& n) {
        log::warn("fleet: the incident watcher failed; attaching again", {{"error", why}});
        if (n.connected_) n.on_connection(true);
      });
      return;
    }
    if (!e) {  // initial values delivered
      s.post([](FleetNode& n) { n.on_ready(Status{}); });
      continue;
    }
    std::string key = kvEntry_Key(e);
    std::optional<FleetIncident> inc;
    if (kvEntry_Operation(e) == kvOp_Put) {
      auto decoded = decode_incident(
          std::string_view(static_cast<const char*>(kvEntry_Value(e)), static_cast<std::size_t>(kvEntry_ValueLen(e))));
      if (decoded.ok()) {
        inc = std::move(decoded.value());
      } else {
        ++s.decode_errors;
        log::warn("fleet: unreadable incident in the bucket", {{"key", key}, {"error", decoded.error().message}});
      }
    }
    kvEntry_Destroy(e);
    s.post([key = std::move(key), inc = std::move(inc)](FleetNode& n) mutable { n.on_incident_entry(key, std::move(inc)); });
  }
}

void FleetNode::on_ready(Status s) {
  if (!s.ok()) {
    log::error("fleet: JetStream not ready; running alone, retrying", {{"error", s.error().message}});
    set_ready(false);
    reactor_.call_after(std::chrono::seconds(2), [this, alive = alive_] {
      if (*alive && connected_ && !ready_) on_connection(true);
    });
    return;
  }
  if (!connected_) return;
  set_ready(true);
}

void FleetNode::set_ready(bool ready) {
  if (ready == ready_) return;
  ready_ = ready;
  if (ready) {
    log::info("fleet: connected; acting with the fleet", {{"agent", agent_}, {"incidents", incidents_.size()}});
    publish_table(subject("obs." + agent_token_));
    heartbeat_now();
  } else {
    log::warn("fleet: NATS unreachable; this agent detects and pages alone until it is back", {{"agent", agent_}});
  }
  if (hooks_.alone_changed) hooks_.alone_changed(!ready);
}

// ---- observations ----

void FleetNode::publish(const std::string& subj, const std::string& data, const std::string& reply) {
  Shared& s = *shared_;
  natsConnection* conn = s.nc;
  if (!conn) return;
  natsStatus st = reply.empty()
                      ? natsConnection_Publish(conn, subj.c_str(), data.data(), static_cast<int>(data.size()))
                      : natsConnection_PublishRequest(conn, subj.c_str(), reply.c_str(), data.data(),
                                                      static_cast<int>(data.size()));
  if (st == NATS_OK) {
    ++s.messages_out;
    s.bytes_out += data.size();
  }
}

void FleetNode::publish_table(const std::string& subj) {
  if (!ready_) return;
  std::vector<Verdict> all;
  all.reserve(view_.local().size());
  for (const auto& [k, v] : view_.local()) all.push_back(v);
  const std::size_t parts = std::max<std::size_t>(1, (all.size() + kVerdictsPerMessage - 1) / kVerdictsPerMessage);
  for (std::size_t p = 0; p < parts; ++p) {
    Observation o;
    o.agent = agent_;
    o.version = version_;
    o.sent_ms = unix_ms(reactor_.clock().wall_now());
    o.full = true;
    o.part = p;
    o.parts = parts;
    const std::size_t from = p * kVerdictsPerMessage;
    const std::size_t to = std::min(all.size(), from + kVerdictsPerMessage);
    o.verdicts.assign(all.begin() + static_cast<std::ptrdiff_t>(from), all.begin() + static_cast<std::ptrdiff_t>(to));
    publish(subj, encode(o));
  }
}

void FleetNode::set_watched(const std::vector<Verdict>& verdicts) {
  view_.set_local(verdicts);
  changes_.clear();
  ++version_;
  publish_table(subject("obs." + agent_token_));
}

void FleetNode::observe(const Verdict& v) {
  if (!view_.update_local(v)) return;
  changes_.push_back(v);
  if (flush_armed_) return;
  flush_armed_ = true;
  // One message for a burst (a site going dark flips hundreds at once).
  reactor_.call_after(std::chrono::milliseconds(10), [this, alive = alive_] {
    if (*alive) flush_changes();
  });
}

void FleetNode::flush_changes() {
  flush_armed_ = false;
  for (std::size_t from = 0; from < changes_.size(); from += kVerdictsPerMessage) {
    Observation o;
    o.agent = agent_;
    o.version = ++version_;
    o.sent_ms = unix_ms(reactor_.clock().wall_now());
    const std::size_t to = std::min(changes_.size(), from + kVerdictsPerMessage);
    o.verdicts.assign(changes_.begin() + static_cast<std::ptrdiff_t>(from),
                      changes_.begin() + static_cast<std::ptrdiff_t>(to));
    if (ready_) publish(subject("obs." + agent_token_), encode(o));
  }
  changes_.clear();
}

void FleetNode::heartbeat_now() {
  Heartbeat h;
  h.agent = agent_;
  h.version = version_;
  h.sent_ms = unix_ms(reactor_.clock().wall_now());
  h.interval_ms = to_ms(settings_.heartbeat);
  h.watching = view_.local().size();
  for (const auto& [k, v] : view_.local()) h.down += v.ok ? 0 : 1;
  h.id_tag = id_tag_;
  publish(subject("hb." + agent_token_), encode(h));
}

void FleetNode::heartbeat() {
  heartbeat_timer_ = reactor_.call_after(settings_.heartbeat, [this] { heartbeat(); });
  if (ready_) heartbeat_now();
}

void FleetNode::request_snapshot(const std::string& agent) {
  const SteadyTime now = reactor_.clock().now();
  auto it = snapshot_asked_.find(agent);
  if (it != snapshot_asked_.end() && now - it->second < std::chrono::seconds(2)) return;
  snapshot_asked_[agent] = now;
  publish(subject("snap." + subject_token(agent)), "{}", snap_inbox_);
}

void FleetNode::on_message(const std::string& subj, const std::string& data, const std::string& reply) {
  auto bad = [&](const Error& e) {
    ++shared_->decode_errors;
    log::warn("fleet: dropped an unreadable message", {{"subject", subj}, {"error", e.message}});
  };
  const std::string prefix = "ns." + settings_.name + ".";
  if (subj == snap_inbox_ || subj.rfind(prefix + "obs.", 0) == 0) {
    auto o = decode_observation(data);
    if (!o.ok()) return bad(o.error());
    if (view_.apply(*o)) request_snapshot(o->agent);
  } else if (subj.rfind(prefix + "hb.", 0) == 0) {
    auto h = decode_heartbeat(data);
    if (!h.ok()) return bad(h.error());
    if (h->agent != agent_ && !h->id_tag.empty() && h->id_tag == id_tag_ && warned_tags_.insert(h->agent).second) {
      log::error("fleet: another agent uses this agent's incident id tag; give each agent its own state_dir",
                 {{"agent", h->agent}, {"id_tag", id_tag_}});
    }
    if (view_.apply(*h)) request_snapshot(h->agent);
  } else if (subj == prefix + "snap." + agent_token_) {
    if (!reply.empty() && ready_) publish_table(reply);
  } else if (subj == prefix + "confirm") {
    auto r = decode_confirm_request(data);
    if (!r.ok()) return bad(r.error());
    if (r->from != agent_ && !reply.empty()) answer_confirm(*r, reply);
  } else if (subj == confirm_inbox_) {
    auto r = decode_confirm_reply(data);
    if (!r.ok()) return bad(r.error());
    auto it = pending_.find(r->id);
    view_.apply_confirmation(r->agent, r->verdicts);
    if (it == pending_.end()) return;  // late: the verdicts still count
    it->second.waiting.erase(r->agent);
    if (it->second.waiting.empty() || quorum_confirmed(it->second)) finish_confirm(r->id);
  }
}

// ---- confirmation ----

void FleetNode::confirm(const std::string& target, const std::string& probe, std::function<void(Assessment)> done) {
  std::vector<std::string> watchers = view_.watchers_of(target);
  if (!ready_ || watchers.empty()) {
    done(view_.assess(target, probe));
    return;
  }
  const std::uint64_t id = next_confirm_id_++;
  Pending& p = pending_[id];
  p.target = target;
  p.probe = probe;
  p.waiting.insert(watchers.begin(), watchers.end());
  p.done = std::move(done);
  p.timer = reactor_.call_after(settings_.confirm_timeout, [this, id] { finish_confirm(id); });
  ConfirmRequest req{agent_, id, target, probe};
  publish(subject("confirm"), encode(req), confirm_inbox_);
}

// A quorum of fresh verdicts says down (this agent's and the replies so far):
// the rest cannot undo it, so the decision need not wait for the slowest
// watcher. Agents yet to reply count only through their fresh answer, never
// through an older observation.
bool FleetNode::quorum_confirmed(const Pending& p) const {
  const Assessment a = view_.assess(p.target, p.probe);
  if (a.verdict != Assessment::Verdict::kDown) return false;
  std::size_t fresh = 0;
  for (const auto& v : a.down_vantages) fresh += p.waiting.count(v) == 0 ? 1 : 0;
  return fresh >= a.needed;
}

void FleetNode::finish_confirm(std::uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Pending p = std::move(it->second);
  pending_.erase(it);
  if (p.timer) reactor_.cancel(p.timer);
  p.done(view_.assess(p.target, p.probe));
}

void FleetNode::answer_confirm(const ConfirmRequest& req, const std::string& reply) {
  bool watches = false;
  for (auto it = view_.local().lower_bound({req.target, ""}); it != view_.local().end() && it->first.first == req.target;
       ++it) {
    watches = true;
  }
  if (!watches) return;
  auto send = [this, req, reply, alive = alive_](std::vector<Verdict> verdicts) {
    if (!*alive) return;
    for (const auto& v : verdicts) observe(v);
    ConfirmReply r{agent_, req.id, std::move(verdicts)};
    publish(reply, encode(r));
  };
  if (hooks_.confirm) {
    hooks_.confirm(req, send);
    return;
  }
  std::vector<Verdict> current;
  for (auto it = view_.local().lower_bound({req.target, ""}); it != view_.local().end() && it->first.first == req.target;
       ++it) {
    if (req.probe.empty() || it->first.second == req.probe) current.push_back(it->second);
  }
  send(std::move(current));
}

// ---- incidents ----

const FleetIncident* FleetNode::find_incident(const std::string& key) const {
  auto it = incidents_.find(key);
  return it == incidents_.end() ? nullptr : &it->second;
}

void FleetNode::on_incident_entry(const std::string& key, std::optional<FleetIncident> inc) {
  if (!inc) {
    incidents_.erase(key);
    first_seen_open_.erase(key);
    return;
  }
  if (!incidents_.count(key) || !incidents_[key].open) first_seen_open_[key] = reactor_.clock().now();
  incidents_[key] = *inc;
  if (!inc->open) owned_.erase(key);  // resolved: nothing left to announce
  if (hooks_.incident_changed) hooks_.incident_changed(*inc);
}

namespace {
// Adds the draft's impact and vantages to `into`; true if anything changed.
bool merge_impact(FleetIncident& into, const FleetIncident& draft) {
  bool changed = false;
  for (const auto& d : draft.impacted) {
    auto it = std::find_if(into.impacted.begin(), into.impacted.end(), [&](const FleetImpact& t) {
      return t.target == d.target && t.probe == d.probe && t.rule == d.rule;
    });
    if (it == into.impacted.end()) {
      into.impacted.push_back(d);
      changed = true;
      continue;
    }
    if (!it->active && d.active) {
      it->active = true;
      changed = true;
    }
    for (const auto& v : d.vantages) {
      if (std::find(it->vantages.begin(), it->vantages.end(), v) == it->vantages.end()) {
        it->vantages.push_back(v);
        std::sort(it->vantages.begin(), it->vantages.end());
        changed = true;
      }
    }
  }
  return changed;
}
}  // namespace

void FleetNode::claim(FleetIncident draft, std::function<void(Result<Claim>)> done) {
  if (!ready_) {
    done(Error::unavailable("alone: not connected to the fleet"));
    return;
  }
  run_on_worker([draft = std::move(draft), done = std::move(done)](Shared& s) mutable {
    auto finish = [&s, &done](Result<Claim> r) {
      s.post([r = std::move(r), done = std::move(done)](FleetNode& n) mutable {
        if (r.ok() && r->owner) {
          n.owned_.insert(r->incident.key);
        }
        done(std::move(r));
      });
    };
    if (!s.connected()) return finish(Error::unavailable("not connected to NATS"));
    Claim claim;
    bool stored = false;
    std::optional<FleetIncident> seen_open;  // the open incident of the scope, as last read
    for (int attempt = 0; attempt < kCasAttempts && !stored; ++attempt) {
      if (attempt > 0) cas_backoff(attempt - 1);
      auto current = s.get(s.incidents, draft.key);
      if (!current.ok()) return finish(current.error());
      std::optional<FleetIncident> existing;
      if (current->has_value()) {
        auto decoded = decode_incident((*current)->first);
        if (decoded.ok()) existing = std::move(decoded.value());
      }
      if (existing && existing->open) seen_open = existing;
      FleetIncident next;
      std::uint64_t last = current->has_value() ? (*current)->second : 0;
      if (!existing || !existing->open) {
        next = draft;  // a new outage (the old one, if any, was resolved)
        claim.created = true;
      } else {
        next = *existing;
        claim.created = false;
        if (!merge_impact(next, draft)) {
          claim.incident = next;
          stored = true;
          break;
        }
      }
      auto rev = s.write(s.incidents, draft.key, encode(next), last);
      if (!rev.ok()) return finish(rev.error());
      if (*rev != 0) {
        claim.incident = std::move(next);
        stored = true;
      }
    }
    if (!stored && seen_open) {
      // Still losing to other writers of an open incident of this scope: the
      // fleet has the outage, so join it (its owner pages) rather than page
      // alone; only this vantage is missing from its list.
      s.post([key = draft.key, id = seen_open->id](FleetNode&) {
        log::warn("fleet: joined the open incident without adding this vantage: too many concurrent writers",
                  {{"key", key}, {"fleet_id", id}});
      });
      claim.incident = std::move(*seen_open);
      claim.created = false;
      stored = true;
    }
    if (!stored) return finish(Error::unavailable("incident " + draft.key + ": too many concurrent writers"));
    // The lease: whoever creates it announces. Holding it already counts.
    auto lease = s.write(s.leases, draft.key, s.agent, 0);
    if (lease.ok() && *lease != 0) {
      claim.owner = true;
    } else if (auto held = s.get(s.leases, draft.key); held.ok() && held->has_value() && (*held)->first == s.agent) {
      claim.owner = true;
    }
    finish(std::move(claim));
  });
}

void FleetNode::record(const std::string& key, std::string event, std::function<void(FleetIncident&)> mutate,
                       std::function<void(Result<FleetIncident>)> done) {
  if (!ready_) {
    done(Error::unavailable("alone: not connected to the fleet"));
    return;
  }
  run_on_worker([key, event = std::move(event), mutate = std::move(mutate), done = std::move(done)](Shared& s) mutable {
    auto finish = [&s, &done](Result<FleetIncident> r) {
      s.post([r = std::move(r), done = std::move(done)](FleetNode&) mutable { done(std::move(r)); });
    };
    finish(s.update(key, [&](FleetIncident& inc) -> Result<bool> {
      mutate(inc);
      inc.seq += 1;
      inc.last_event = event;
      return true;
    }));
  });
}

void FleetNode::amend(const std::string& key, OperatorAction action, std::function<void(Result<FleetIncident>)> done) {
  if (!ready_) {
    done(Error::unavailable("alone: not connected to the fleet"));
    return;
  }
  run_on_worker([key, action = std::move(action), done = std::move(done)](Shared& s) mutable {
    auto finish = [&s, &done](Result<FleetIncident> r) {
      s.post([r = std::move(r), done = std::move(done)](FleetNode&) mutable { done(std::move(r)); });
    };
    finish(s.update(key, [&](FleetIncident& inc) { return apply(inc, action); }));
  });
}

void FleetNode::mark_notified(const std::string& key, std::uint64_t seq) {
  if (!ready_) return;
  run_on_worker([key, seq](Shared& s) {
    if (!s.connected()) return;
    for (int attempt = 0; attempt < kCasAttempts; ++attempt) {
      auto current = s.get(s.incidents, key);
      if (!current.ok() || !current->has_value()) return;
      auto inc = decode_incident((*current)->first);
      if (!inc.ok() || inc->notified >= seq || seq > inc->seq) return;
      inc->notified = seq;
      auto rev = s.write(s.incidents, key, encode(*inc), (*current)->second);
      if (!rev.ok() || *rev != 0) return;
    }
  });
}

void FleetNode::renew_leases() {
  lease_timer_ = reactor_.call_after(settings_.lease / 3, [this] { renew_leases(); });
  // Connected is enough: a lease must not age out while the watcher reattaches.
  if (!connected_ || owned_.empty() || renew_in_flight_) return;
  renew_in_flight_ = true;
  std::set<std::string> owned = owned_;
  run_on_worker([owned](Shared& s) {
    std::vector<std::string> lost;
    for (const auto& key : owned) {
      if (!s.connected()) break;
      // Unreachable: keep it; the bucket decides when we are back.
      auto held = s.get(s.leases, key);
      if (!held.ok()) continue;
      std::uint64_t last = 0;
      if (held->has_value()) {
        if ((*held)->first != s.agent) {
          lost.push_back(key);
          continue;
        }
        last = (*held)->second;
      }
      auto r = s.write(s.leases, key, s.agent, last);  // absent (aged out, nobody took it): create again
      if (r.ok() && *r == 0) lost.push_back(key);
    }
    s.post([lost](FleetNode& n) {
      n.renew_in_flight_ = false;
      for (const auto& key : lost) {
        if (!n.owned_.erase(key)) continue;
        log::warn("fleet: another agent holds this incident's lease now", {{"key", key}});
        if (n.hooks_.lost_ownership) n.hooks_.lost_ownership(key);
      }
    });
  });
}

void FleetNode::poll_takeovers() {
  takeover_timer_ = reactor_.call_after(std::max<Duration>(settings_.lease / 4, std::chrono::milliseconds(250)),
                                        [this] { poll_takeovers(); });
  if (!ready_) return;
  const SteadyTime now = reactor_.clock().now();
  for (const auto& [key, inc] : incidents_) {
    if (!inc.open || owned_.count(key) || takeover_in_flight_.count(key)) continue;
    // A new incident's creator takes its lease right after creating it: only
    // one open for a lease already can have lost its owner.
    if (auto seen = first_seen_open_.find(key); seen != first_seen_open_.end() && now - seen->second < settings_.lease) {
      continue;
    }
    takeover_in_flight_.insert(key);
    run_on_worker([key = key](Shared& s) {
      std::optional<FleetIncident> won;
      if (s.connected()) {
        auto lease = s.write(s.leases, key, s.agent, 0);
        if (lease.ok() && *lease != 0) {
          if (auto current = s.get(s.incidents, key); current.ok() && current->has_value()) {
            if (auto got = decode_incident((*current)->first); got.ok()) won = std::move(got.value());
          }
        }
      }
      s.post([key, won = std::move(won)](FleetNode& n) {
        n.takeover_in_flight_.erase(key);
        if (!won) return;
        n.owned_.insert(key);
        if (!won->open) return;  // resolved meanwhile: the lease ages out by itself
        ++n.takeovers_;
        log::warn("fleet: took over a fleet incident whose owner went silent",
                  {{"id", won->id}, {"key", key}, {"seq", static_cast<std::int64_t>(won->seq)},
                   {"notified", static_cast<std::int64_t>(won->notified)}});
        if (n.hooks_.became_owner) n.hooks_.became_owner(*won, true);
      });
    });
  }
}

}  // namespace nightshift::fleet
