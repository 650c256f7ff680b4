// The outbox failing between "sent" and "marked delivered" (leveldb's
// fault_injection_test idea: wrap the storage, fail one step on purpose). The
// notifier runs on a wrapper around the real SQLite outbox whose first
// delivered() fails, as a full disk or a crash right after the 2xx would make
// it; a real HTTP receiver on loopback counts what arrives.
//
// At least once, never lost, never a second notification: the row is sent
// again with the same idempotency key and the same body, then marked, and the
// outbox holds nothing else.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <set>
#include <thread>

#include "notify/notifier.h"
#include "notify/outbox.h"
#include "store/store.h"
#include "tests/support/receiver.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace nightshift {
namespace {

using namespace std::chrono_literals;

// The real outbox, except that delivered() fails once. With `crash`, the
// process "dies" there: from then on every call fails, as if nothing ran.
class FailOnceAfterSend final : public OutboxQueue {
 public:
  FailOnceAfterSend(std::unique_ptr<Outbox> real, bool crash) : real_(std::move(real)), crash_(crash) {}

  Result<std::vector<OutboxEntry>> heads() override {
    if (dead_) return Error::io("injected: the process is gone");
    return real_->heads();
  }
  Status delivered(std::int64_t seq, std::int64_t now_ms) override {
    if (dead_) return Error::io("injected: the process is gone");
    if (!failed_.exchange(true)) {
      if (crash_) dead_ = true;
      return Error::io("injected: disk I/O error while marking delivered");
    }
    return real_->delivered(seq, now_ms);
  }
  Status retry_later(std::int64_t seq, int attempts, std::int64_t next_attempt_ms, const std::string& error) override {
    if (dead_) return Error::io("injected: the process is gone");
    return real_->retry_later(seq, attempts, next_attempt_ms, error);
  }
  Status dead_letter(std::int64_t seq, std::int64_t now_ms, const std::string& error) override {
    if (dead_) return Error::io("injected: the process is gone");
    return real_->dead_letter(seq, now_ms, error);
  }
  Result<std::map<std::string, Counts>> counts() override {
    if (dead_) return Error::io("injected: the process is gone");
    return real_->counts();
  }
  Status prune(std::int64_t before_ms) override {
    if (dead_) return Error::io("injected: the process is gone");
    return real_->prune(before_ms);
  }
  bool failed() const { return failed_; }

 private:
  std::unique_ptr<Outbox> real_;
  bool crash_;
  std::atomic<bool> failed_{false};
  std::atomic<bool> dead_{false};
};

class OutboxFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Store::open(dir_.path());
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(opened->store);
    sink_.name = "hook";
    sink_.type = SinkType::kWebhook;
    sink_.url = receiver_.url("/hook");
    sink_.timeout = 2s;
    policy_.first_backoff = 20ms;
    policy_.max_backoff = 40ms;
    // One incident's declaration and resolution, queued as paging would.
    for (const char* event : {"declared", "resolved"}) {
      OutboxEntry e;
      e.sink = "hook";
      e.key = std::string("NS-1:") + event + ":1";
      e.incident = "NS-1";
      e.event = event;
      e.body = std::string("{\"event\":\"") + event + "\"}";
      e.created_ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.wall_now().time_since_epoch()).count();
      rows_.push_back(e);
    }
    ASSERT_TRUE(store_->enqueue(rows_).ok());
  }

  std::unique_ptr<Notifier> start(std::unique_ptr<OutboxQueue> queue) {
    auto n = std::make_unique<Notifier>(store_->path(), registry_, "fault-test", clock_);
    Status s = queue ? n->start(std::move(queue), {sink_}, policy_) : n->start({sink_}, policy_);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    return n;
  }
  std::unique_ptr<FailOnceAfterSend> faulty(bool crash) {
    auto real = Outbox::open(store_->path());
    EXPECT_TRUE(real.ok());
    return std::make_unique<FailOnceAfterSend>(std::move(real.value()), crash);
  }

  Outbox::Counts counts() {
    auto outbox = Outbox::open(store_->path());
    EXPECT_TRUE(outbox.ok());
    auto c = (*outbox)->counts();
    EXPECT_TRUE(c.ok());
    return c->count("hook") ? c->at("hook") : Outbox::Counts{};
  }

  // Keys in the order they arrived, and every body per key.
  std::vector<std::string> arrived_keys() const {
    std::vector<std::string> keys;
    for (const auto& r : receiver_.accepted()) keys.push_back(r.headers.at("idempotency-key"));
    return keys;
  }

  test::TempDir dir_{"nightshift-outbox-fault-"};
  test::Receiver receiver_;
  SystemClock clock_;
  prometheus::Registry registry_;
  std::unique_ptr<Store> store_;
  SinkSpec sink_;
  NotifyPolicy policy_;
  std::vector<OutboxEntry> rows_;
};

TEST_F(OutboxFaultTest, MarkFailingAfterASendSendsTheSameNotificationAgain) {
  auto queue = faulty(/*crash=*/false);
  FailOnceAfterSend* fault = queue.get();
  auto notifier = start(std::move(queue));
  ASSERT_TRUE(receiver_.wait_accepted(3, 5s)) << receiver_.requests().size() << " requests";
  ASSERT_TRUE(test::wait_until([&] { return counts().pending == 0; }, 5s));
  notifier->stop();
  EXPECT_TRUE(fault->failed());
  // The declaration twice (same key, same body), then the resolution once: in
  // order, nothing lost, no new notification made up.
  EXPECT_EQ(arrived_keys(), (std::vector<std::string>{"NS-1:declared:1", "NS-1:declared:1", "NS-1:resolved:1"}));
  const auto accepted = receiver_.accepted();
  EXPECT_EQ(accepted[0].body, accepted[1].body);
  EXPECT_EQ(counts().dead, 0);
  std::this_thread::sleep_for(200ms);  // several backoffs: nothing more may arrive
  EXPECT_EQ(receiver_.requests().size(), 3u);
}

TEST_F(OutboxFaultTest, CrashAfterASendDeliversItAgainAfterRecovery) {
  auto queue = faulty(/*crash=*/true);
  FailOnceAfterSend* fault = queue.get();
  auto notifier = start(std::move(queue));
  ASSERT_TRUE(receiver_.wait_accepted(1, 5s));
  ASSERT_TRUE(test::wait_until([&] { return fault->failed(); }, 5s));
  std::this_thread::sleep_for(100ms);  // "dead": the resolution must not go out now
  notifier->stop();
  notifier.reset();
  EXPECT_EQ(arrived_keys(), std::vector<std::string>{"NS-1:declared:1"});
  EXPECT_EQ(counts().pending, 2) << "the declaration was never marked";

  // Recovery: a new notifier on the same outbox.
  notifier = start(nullptr);
  ASSERT_TRUE(receiver_.wait_accepted(3, 5s));
  ASSERT_TRUE(test::wait_until([&] { return counts().pending == 0; }, 5s));
  notifier->stop();
  EXPECT_EQ(arrived_keys(), (std::vector<std::string>{"NS-1:declared:1", "NS-1:declared:1", "NS-1:resolved:1"}));
  EXPECT_EQ(counts().dead, 0);
}

}  // namespace
}  // namespace nightshift
