// The sink contract, one typed suite every sink type passes: rows go through
// the real delivery path (Store → outbox → Notifier → libcurl) to a real HTTP
// receiver on loopback (tests/support/receiver.h).
//
//   - 5xx, 429 and 408 answers are retried with the same idempotency key; other
//     4xx answers are permanent: dead-lettered after one attempt, and the
//     sink's next row goes out;
//   - each incident event maps to the sink's action (merged included), or is
//     not sent at all;
//   - no secret (HMAC key, routing key, bearer token, a Slack URL's path) is in
//     a stored body, an error kept in the outbox, or a log line — even when the
//     endpoint echoes the request back in its error;
//   - idempotency keys are stable: the same event gets the same key from
//     paging, on every attempt, and after a restart of the notifier.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "incidents/incident_json.h"
#include "notify/notifier.h"
#include "notify/outbox.h"
#include "notify/paging.h"
#include "notify/sinks.h"
#include "store/store.h"
#include "tests/support/receiver.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace nightshift {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::ReceivedRequest;

constexpr const char* kBearer = "bearer-3c9e71d2-never-logged";

// --- each sink type: how it is configured, its secrets, what an answer means ---

struct WebhookSink {
  static constexpr SinkType kType = SinkType::kWebhook;
  static constexpr const char* kName = "webhook";
  static constexpr const char* kSecret = "whsec-a81f0c55-never-logged";
  static void configure(SinkSpec& s, const test::Receiver& r) {
    s.url = r.url("/hook");
    s.secret = kSecret;
  }
  static std::vector<std::string> secrets() { return {kSecret, kBearer}; }
  // The action a request stands for: the webhook names the event.
  static std::string action(const ReceivedRequest& r) { return json::parse(r.body).value("event", "?"); }
  static std::map<std::string, std::string> expected() {
    return {{"declared", "declared"},       {"updated", "updated"},   {"acknowledged", "acknowledged"},
            {"note", "note"},               {"resolved", "resolved"}, {"reopened", "reopened"},
            {"merged", "merged"},           {"update_overdue", "update_overdue"},
            {"renotify", "renotify"},       {"escalated", ""},        {"refresh", ""}};
  }
};

struct AlertmanagerSink {
  static constexpr SinkType kType = SinkType::kAlertmanager;
  static constexpr const char* kName = "alertmanager";
  static void configure(SinkSpec& s, const test::Receiver& r) { s.url = r.url("/api/v2/alerts"); }
  static std::vector<std::string> secrets() { return {kBearer}; }
  // Firing alerts have no end; resolved ones end.
  static std::string action(const ReceivedRequest& r) {
    const json j = json::parse(r.body);
    return j.at(0).contains("endsAt") ? "resolved" : "firing";
  }
  static std::map<std::string, std::string> expected() {
    return {{"declared", "firing"}, {"updated", "firing"},  {"acknowledged", ""},   {"note", ""},
            {"resolved", "resolved"}, {"reopened", "firing"}, {"merged", "resolved"}, {"update_overdue", ""},
            {"renotify", ""},       {"escalated", ""},      {"refresh", "firing"}};
  }
};

struct PagerDutySink {
  static constexpr SinkType kType = SinkType::kPagerDuty;
  static constexpr const char* kName = "pagerduty";
  static constexpr const char* kRoutingKey = "R0UTING-5d2b8e-never-logged";
  static void configure(SinkSpec& s, const test::Receiver& r) {
    s.url = r.url("/v2/enqueue");
    s.routing_key = kRoutingKey;
  }
  static std::vector<std::string> secrets() { return {kRoutingKey, kBearer}; }
  static std::string action(const ReceivedRequest& r) { return json::parse(r.body).value("event_action", "?"); }
  static std::map<std::string, std::string> expected() {
    return {{"declared", "trigger"},  {"updated", "trigger"},   {"acknowledged", "acknowledge"}, {"note", ""},
            {"resolved", "resolve"},  {"reopened", "trigger"},  {"merged", "resolve"},         {"update_overdue", ""},
            {"renotify", ""},         {"escalated", ""},        {"refresh", ""}};
  }
};

struct SlackSink {
  static constexpr SinkType kType = SinkType::kSlack;
  static constexpr const char* kName = "slack";
  // An incoming webhook's URL is itself the secret.
  static constexpr const char* kPath = "/services/T0000/B0000/SLACKPATH7e4a91never";
  static void configure(SinkSpec& s, const test::Receiver& r) { s.url = r.url(kPath); }
  static std::vector<std::string> secrets() { return {"SLACKPATH7e4a91never", kBearer}; }
  // The bold head of the message: "*DECLARED* [critical] ...".
  static std::string action(const ReceivedRequest& r) {
    const std::string text = json::parse(r.body).value("text", "");
    if (text.size() < 2 || text[0] != '*') return "?";
    std::string head = text.substr(1, text.find('*', 1) - 1);
    return head.substr(0, head.find(" by "));  // "ACKNOWLEDGED by noc"
  }
  static std::map<std::string, std::string> expected() {
    return {{"declared", "DECLARED"},
            {"updated", "UPDATE"},
            {"acknowledged", "ACKNOWLEDGED"},
            {"note", "UPDATE"},
            {"resolved", "RESOLVED"},
            {"reopened", "REOPENED"},
            {"merged", "MERGED"},
            {"update_overdue", "UPDATE OVERDUE (promised"},
            {"renotify", "STILL UNACKNOWLEDGED"},
            {"escalated", ""},
            {"refresh", ""}};
  }
};

struct NoticeSink {
  static constexpr SinkType kType = SinkType::kNotice;
  static constexpr const char* kName = "notice";
  static constexpr const char* kSecret = "notice-hmac-0b6d3f-never-logged";
  static void configure(SinkSpec& s, const test::Receiver& r) {
    s.url = r.url("/notice");
    s.secret = kSecret;
    s.audience = "Business customers in Amsterdam";
  }
  static std::vector<std::string> secrets() { return {kSecret, kBearer}; }
  // Customers hear whether it is still open.
  static std::string action(const ReceivedRequest& r) { return json::parse(r.body).value("status", "?"); }
  // Only news for customers: no internal updates, and (as built) no merge.
  static std::map<std::string, std::string> expected() {
    return {{"declared", "open"}, {"updated", ""},  {"acknowledged", ""},   {"note", "open"},
            {"resolved", "resolved"}, {"reopened", "open"}, {"merged", ""}, {"update_overdue", ""},
            {"renotify", ""},     {"escalated", ""}, {"refresh", ""}};
  }
};

// --- the harness -------------------------------------------------------------------

const SystemTime kStart = SystemTime{} + std::chrono::hours(24 * 365 * 56);

// An incident as it stands after `event`.
Incident incident_after(const std::string& event, const std::string& id = "NS-20261201-0001") {
  Incident inc;
  inc.id = id;
  inc.title = "core-ams1: target_down";
  inc.severity = Severity::kCritical;
  inc.scope = {{"site", "ams1"}, {"group", "core"}};
  inc.started_at = kStart;
  inc.declared_at = kStart + 3s;
  inc.next_update_due = inc.declared_at + 30min;
  inc.impacted.push_back({"core-ams1", "icmp", "target_down", Severity::kCritical, "3 of 3 probes failed", "", kStart, true, ""});
  inc.timeline.push_back({inc.declared_at, "declared", "declared", false, ""});
  if (event == "acknowledged") {
    inc.status = IncidentStatus::kAcknowledged;
    inc.acknowledged_by = "noc";
    inc.acknowledged_at = kStart + 1min;
  }
  if (event == "resolved" || event == "merged") {
    inc.status = IncidentStatus::kResolved;
    inc.resolved_at = kStart + 10min;
    inc.impacted.front().active = false;
  }
  // A note is the last entry (public: news for customers too).
  if (event == "note") {
    inc.timeline.push_back({kStart + 2min, "note", "Fibre cut near Haarlem; crew on site.", true, "noc"});
  } else {
    inc.timeline.push_back({kStart + 3min, event, event, false, ""});
  }
  return inc;
}

const std::vector<std::string> kEvents = {"declared", "updated",  "acknowledged",   "note",
                                          "resolved", "reopened", "merged",         "update_overdue",
                                          "renotify", "escalated", "refresh"};

// Every log line, for the secret checks.
class LogCapture {
 public:
  LogCapture() {
    log::set_sink([this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu_);
      text_ += line;
      text_ += '\n';
    });
  }
  ~LogCapture() { log::set_sink({}); }
  std::string text() const {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }

 private:
  mutable std::mutex mu_;
  std::string text_;
};

template <typename Sink>
class SinkConformanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Store::open(dir_.path());
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(opened->store);
    sink_.name = Sink::kName;
    sink_.type = Sink::kType;
    sink_.bearer_token = kBearer;
    sink_.timeout = 2s;
    Sink::configure(sink_, receiver_);
    policy_.agent_name = "conformance";
    policy_.status_url = "http://127.0.0.1:9/status";
    policy_.first_backoff = 20ms;
    policy_.max_backoff = 40ms;
  }
  void TearDown() override { stop_notifier(); }

  void start_notifier() {
    notifier_ = std::make_unique<Notifier>(store_->path(), registry_, "conformance", clock_);
    ASSERT_TRUE(notifier_->start({sink_}, policy_).ok());
  }
  void stop_notifier() {
    if (notifier_) notifier_->stop();
    notifier_.reset();
  }

  // The outbox row paging would write for `event` (empty if the sink does not want it).
  std::optional<OutboxEntry> row(const std::string& event, const std::string& key_suffix = "1",
                                 const std::string& id = "NS-20261201-0001") {
    const NotificationEvent e{event, incident_after(event, id)};
    if (!sink_wants(sink_, e, /*escalated=*/false)) return std::nullopt;
    OutboxEntry r;
    r.sink = sink_.name;
    r.key = id + ":" + event + ":" + key_suffix;
    r.incident = id;
    r.event = event;
    r.body = render_body(sink_, policy_, e, r.key, clock_.wall_now());
    r.created_ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.wall_now().time_since_epoch()).count();
    return r;
  }
  void enqueue(const OutboxEntry& r) {
    ASSERT_TRUE(store_->enqueue({r}).ok());
    if (notifier_) notifier_->wake();
  }

  std::vector<ReceivedRequest> requests_with_key(const std::string& key) const {
    std::vector<ReceivedRequest> out;
    for (const auto& r : receiver_.requests()) {
      auto it = r.headers.find("idempotency-key");
      if (it != r.headers.end() && it->second == key) out.push_back(r);
    }
    return out;
  }

  Outbox::Counts counts() {
    auto outbox = Outbox::open(store_->path());
    EXPECT_TRUE(outbox.ok());
    auto c = (*outbox)->counts();
    EXPECT_TRUE(c.ok());
    auto it = c->find(sink_.name);
    return it == c->end() ? Outbox::Counts{} : it->second;
  }

  std::vector<Outbox::DeadLetter> dead_letters() {
    auto outbox = Outbox::open(store_->path());
    EXPECT_TRUE(outbox.ok());
    auto d = (*outbox)->dead_letters(100);
    EXPECT_TRUE(d.ok());
    return *d;
  }

  test::TempDir dir_{"nightshift-sink-conformance-"};
  test::Receiver receiver_;
  SystemClock clock_;
  prometheus::Registry registry_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Notifier> notifier_;
  SinkSpec sink_;
  NotifyPolicy policy_;
};

using SinkTypes = ::testing::Types<WebhookSink, AlertmanagerSink, PagerDutySink, SlackSink, NoticeSink>;
class SinkNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};
TYPED_TEST_SUITE(SinkConformanceTest, SinkTypes, SinkNames);

TYPED_TEST(SinkConformanceTest, RetryableAnswersAreRetriedWithTheSameKeyUntilDelivered) {
  this->start_notifier();
  int n = 0;
  for (int status : {500, 502, 503, 504, 429, 408}) {
    SCOPED_TRACE(status);
    auto r = this->row("declared", std::to_string(++n));
    ASSERT_TRUE(r);
    this->receiver_.answer(status);
    this->enqueue(*r);
    ASSERT_TRUE(test::wait_until([&] { return this->requests_with_key(r->key).size() >= 3; }, 5s))
        << "retried after HTTP " << status;
    this->receiver_.answer(200);
    ASSERT_TRUE(test::wait_until([&] { return this->counts().pending == 0; }, 5s));
    const auto attempts = this->requests_with_key(r->key);
    EXPECT_EQ(attempts.back().answered, 200);
    for (const auto& a : attempts) EXPECT_EQ(a.body, attempts.front().body) << "every attempt sends the same row";
  }
  EXPECT_EQ(this->counts().dead, 0);
}

TYPED_TEST(SinkConformanceTest, OtherClientErrorsArePermanentAndDoNotBlockTheSink) {
  this->start_notifier();
  int n = 0;
  for (int status : {400, 401, 403, 404, 410, 413, 422}) {
    SCOPED_TRACE(status);
    auto rejected = this->row("declared", std::to_string(++n));
    auto next = this->row("declared", std::to_string(++n));
    ASSERT_TRUE(rejected && next);
    this->receiver_.answer(status);
    this->enqueue(*rejected);
    ASSERT_TRUE(test::wait_until([&] { return !this->requests_with_key(rejected->key).empty(); }, 5s));
    this->receiver_.answer(200);
    // Per sink one at a time, oldest first: the next row goes only once the
    // rejected one is given up on.
    this->enqueue(*next);
    ASSERT_TRUE(test::wait_until([&] { return !this->requests_with_key(next->key).empty(); }, 5s));
    EXPECT_EQ(this->requests_with_key(rejected->key).size(), 1u) << "never retried";
  }
  EXPECT_TRUE(test::wait_until([&] { return this->counts().pending == 0; }, 5s));
  const auto dead = this->dead_letters();
  ASSERT_EQ(dead.size(), 7u);
  std::set<std::string> errors;
  for (const auto& d : dead) errors.insert(d.error.substr(0, d.error.find(':')));
  EXPECT_EQ(errors, (std::set<std::string>{"HTTP 400", "HTTP 401", "HTTP 403", "HTTP 404", "HTTP 410", "HTTP 413",
                                           "HTTP 422"}));
}

TYPED_TEST(SinkConformanceTest, EventsMapToTheSinksActionsMergedIncluded) {
  const auto expected = TypeParam::expected();
  ASSERT_EQ(expected.size(), kEvents.size());
  std::map<std::string, std::string> sent_key;  // event -> key
  std::size_t n = 0;
  for (const auto& event : kEvents) {
    auto r = this->row(event, std::to_string(++n));
    EXPECT_EQ(r.has_value(), !expected.at(event).empty()) << event << ": sent when it should not be, or not sent";
    if (!r) continue;
    sent_key[event] = r->key;
    this->enqueue(*r);
  }
  this->start_notifier();
  ASSERT_TRUE(this->receiver_.wait_accepted(sent_key.size(), 10s));
  for (const auto& [event, key] : sent_key) {
    SCOPED_TRACE(event);
    const auto got = this->requests_with_key(key);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got.front().method, "POST");
    EXPECT_EQ(TypeParam::action(got.front()).rfind(expected.at(event), 0), 0u)
        << "got " << TypeParam::action(got.front()) << ", expected " << expected.at(event);
  }
  // In the order the rows were written.
  std::vector<std::string> order;
  for (const auto& r : this->receiver_.requests()) order.push_back(r.headers.at("idempotency-key"));
  std::vector<std::string> written;
  for (const auto& event : kEvents) {
    if (sent_key.count(event)) written.push_back(sent_key[event]);
  }
  EXPECT_EQ(order, written);
}

TYPED_TEST(SinkConformanceTest, NoSecretInBodiesErrorsOrLogs) {
  LogCapture logs;
  // A careless endpoint: its errors quote what it was sent, credentials first.
  this->receiver_.error_body([](const ReceivedRequest& r) {
    std::string quoted = "rejected " + r.path;
    if (auto it = r.headers.find("authorization"); it != r.headers.end()) quoted += " with " + it->second;
    const json j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("routing_key")) quoted += " for routing_key " + j["routing_key"].dump();
    return quoted + ": " + r.body;
  });
  auto retried = this->row("declared", "1");
  auto rejected = this->row("resolved", "2");
  ASSERT_TRUE(retried && rejected);
  this->receiver_.answer(503);
  this->enqueue(*retried);
  this->start_notifier();
  ASSERT_TRUE(test::wait_until([&] { return this->requests_with_key(retried->key).size() >= 2; }, 5s));
  // The error kept for the pending row.
  std::string pending_error;
  {
    auto outbox = Outbox::open(this->store_->path());
    ASSERT_TRUE(outbox.ok());
    auto heads = (*outbox)->heads();
    ASSERT_TRUE(heads.ok());
    ASSERT_EQ(heads->size(), 1u);
    pending_error = heads->front().last_error;
  }
  EXPECT_NE(pending_error.find("HTTP 503"), std::string::npos) << pending_error;
  this->receiver_.answer(200);
  ASSERT_TRUE(test::wait_until([&] { return this->counts().pending == 0; }, 5s));
  this->receiver_.answer(400);
  this->enqueue(*rejected);
  ASSERT_TRUE(test::wait_until([&] { return this->counts().dead == 1; }, 5s));
  this->stop_notifier();

  // The secrets were used on the wire ...
  const auto sent = this->requests_with_key(retried->key);
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(sent.front().headers.at("authorization"), std::string("Bearer ") + kBearer);
  // ... and are nowhere else.
  const std::string dead_error = this->dead_letters().at(0).error;
  EXPECT_NE(dead_error.find("HTTP 400"), std::string::npos) << dead_error;
  const std::string log_text = logs.text();
  EXPECT_NE(log_text.find("sink=" + std::string(TypeParam::kName)), std::string::npos) << "logs name the sink";
  for (const std::string& secret : TypeParam::secrets()) {
    SCOPED_TRACE(secret);
    EXPECT_EQ(retried->body.find(secret), std::string::npos) << "stored body";
    EXPECT_EQ(rejected->body.find(secret), std::string::npos) << "stored body";
    EXPECT_EQ(pending_error.find(secret), std::string::npos) << "retry error: " << pending_error;
    EXPECT_EQ(dead_error.find(secret), std::string::npos) << "dead letter: " << dead_error;
    EXPECT_EQ(log_text.find(secret), std::string::npos) << "logs";
  }
}

TYPED_TEST(SinkConformanceTest, KeysAreStableAcrossPagingAttemptsAndRestarts) {
  // Paging gives the same event the same key, whoever computes it.
  ManualClock clock;
  std::vector<std::string> keys[2];
  for (auto& k : keys) {
    Paging paging(clock, {this->sink_}, this->policy_);
    IncidentEvent declared{IncidentEvent::Kind::kDeclared, incident_after("declared"), true};
    for (const auto& r : paging.on_event(declared)) k.push_back(r.key);
    IncidentEvent resolved{IncidentEvent::Kind::kResolved, incident_after("resolved"), false};
    for (const auto& r : paging.on_event(resolved)) k.push_back(r.key);
  }
  ASSERT_FALSE(keys[0].empty());
  EXPECT_EQ(keys[0], keys[1]);
  EXPECT_EQ(std::set<std::string>(keys[0].begin(), keys[0].end()).size(), keys[0].size()) << "one key per change";

  // The notifier sends the row's key on every attempt, and again after a restart.
  auto r = this->row("declared", "1");
  ASSERT_TRUE(r);
  this->enqueue(*r);
  this->receiver_.answer(503);
  this->start_notifier();
  ASSERT_TRUE(test::wait_until([&] { return this->requests_with_key(r->key).size() >= 2; }, 5s));
  this->stop_notifier();
  this->receiver_.answer(200);
  this->start_notifier();
  ASSERT_TRUE(this->receiver_.wait_accepted(1, 5s));
  for (const auto& req : this->receiver_.requests()) EXPECT_EQ(req.headers.at("idempotency-key"), r->key);
  if (TypeParam::kType == SinkType::kWebhook || TypeParam::kType == SinkType::kNotice) {
    EXPECT_EQ(json::parse(this->receiver_.accepted().front().body)["idempotency_key"], r->key) << "in the body too";
  }
}

}  // namespace
}  // namespace nightshift
