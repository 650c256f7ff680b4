// Outbox: per-sink order, retries, dead letters and coalesced keep-alives, on a
// real SQLite file shared by the store's connection and the notifier's.
#include "notify/outbox.h"

#include <gtest/gtest.h>

#include "store/store.h"
#include "tests/support/temp_dir.h"

namespace nightshift {
namespace {

OutboxEntry row(const std::string& sink, const std::string& key, const std::string& incident = "NS-1",
                bool coalesce = false) {
  OutboxEntry e;
  e.sink = sink;
  e.key = key;
  e.incident = incident;
  e.event = key.substr(0, key.find(':'));
  e.body = "{\"k\":\"" + key + "\"}";
  e.created_ms = 1000;
  e.coalesce = coalesce;
  return e;
}

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Store::open(dir_.path());
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(opened->store);
    auto outbox = Outbox::open(store_->path());
    ASSERT_TRUE(outbox.ok()) << outbox.error().message;
    outbox_ = std::move(outbox.value());
  }
  test::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Outbox> outbox_;
};

TEST_F(OutboxTest, EachSinkDeliversOldestFirstOneAtATime) {
  Incident inc;
  inc.id = "NS-1";
  ASSERT_TRUE(store_->save(inc, {row("a", "declared:1"), row("b", "declared:1"), row("a", "resolved:2")}).ok());
  auto heads = outbox_->heads();
  ASSERT_TRUE(heads.ok());
  ASSERT_EQ(heads->size(), 2u);
  EXPECT_EQ((*heads)[0].sink, "a");
  EXPECT_EQ((*heads)[0].key, "declared:1");
  EXPECT_EQ((*heads)[1].sink, "b");
  // A retry keeps the head in place: the resolve cannot overtake the trigger.
  ASSERT_TRUE(outbox_->retry_later((*heads)[0].seq, 1, 5000, "HTTP 503").ok());
  auto again = outbox_->heads();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].key, "declared:1");
  EXPECT_EQ((*again)[0].attempts, 1);
  EXPECT_EQ((*again)[0].next_attempt_ms, 5000);
  EXPECT_EQ((*again)[0].last_error, "HTTP 503");
  ASSERT_TRUE(outbox_->delivered((*again)[0].seq, 6000).ok());
  auto next = outbox_->heads();
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->size(), 2u);
  EXPECT_EQ((*next)[0].sink, "b");
  EXPECT_EQ((*next)[1].sink, "a");
  EXPECT_EQ((*next)[1].key, "resolved:2");
  auto counts = outbox_->counts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)["a"].pending, 1);
  EXPECT_EQ((*counts)["b"].pending, 1);
}

TEST_F(OutboxTest, TheSameKeyIsQueuedOnceAndKeepAlivesCoalesce) {
  ASSERT_TRUE(store_->enqueue({row("am", "declared:1"), row("am", "declared:1")}).ok());
  ASSERT_TRUE(store_->enqueue({row("am", "refresh:1", "NS-1", true)}).ok());
  ASSERT_TRUE(store_->enqueue({row("am", "refresh:1", "NS-2", true)}).ok());
  auto counts = outbox_->counts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)["am"].pending, 2) << "one declared for NS-1, one keep-alive for NS-2";
}

TEST_F(OutboxTest, DeadLettersLeaveTheQueueAndAreListed) {
  ASSERT_TRUE(store_->enqueue({row("a", "declared:1"), row("a", "updated:2")}).ok());
  auto heads = outbox_->heads();
  ASSERT_TRUE(heads.ok());
  ASSERT_TRUE(outbox_->dead_letter((*heads)[0].seq, 9000, "HTTP 400: bad payload").ok());
  auto next = outbox_->heads();
  ASSERT_TRUE(next.ok());
  EXPECT_EQ((*next)[0].key, "updated:2");
  auto dead = outbox_->dead_letters(10);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].error, "HTTP 400: bad payload");
  auto counts = outbox_->counts();
  EXPECT_EQ((*counts)["a"].dead, 1);
  ASSERT_TRUE(outbox_->prune(10000).ok());
  EXPECT_EQ(outbox_->counts()->at("a").dead, 0);
  EXPECT_EQ(outbox_->counts()->at("a").pending, 1);
}

TEST_F(OutboxTest, RowsSurviveReopening) {
  ASSERT_TRUE(store_->enqueue({row("a", "declared:1")}).ok());
  outbox_.reset();
  store_.reset();
  auto opened = Store::open(dir_.path());
  ASSERT_TRUE(opened.ok());
  auto outbox = Outbox::open(opened->store->path());
  ASSERT_TRUE(outbox.ok());
  auto heads = (*outbox)->heads();
  ASSERT_TRUE(heads.ok());
  ASSERT_EQ(heads->size(), 1u);
  EXPECT_EQ((*heads)[0].body, "{\"k\":\"declared:1\"}");
}

}  // namespace
}  // namespace nightshift
