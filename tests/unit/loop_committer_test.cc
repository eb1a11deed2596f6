// Tests of LoopCommitter over a real store: submissions made in one pass of the event loop share
// one commit and each gets its own results; the hand-off mode (fsync'd nodes) gives the same
// results through the store's committer thread.
#include "api/loop_committer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <optional>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace edgeflow::api {
namespace {

using WriteResults = LoopCommitter::WriteResults;

class LoopCommitterTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    kv::StoreOptions options;
    options.dir = dir_.Sub("kv");
    auto opened = kv::Store::Open(options);
    ASSERT_TRUE(opened) << opened.error().ToString();
    store_ = std::move(*opened);
    listener_ = store_->AddCommitListener([this](uint64_t) { commits_.fetch_add(1); });
  }
  void TearDown() override {
    if (store_) store_->RemoveCommitListener(listener_);
  }

  static kv::WriteOp Put(std::string_view key, std::string_view value) {
    kv::WriteOp op;
    op.ns = "ns";
    op.key = key;
    op.value = value;
    return op;
  }
  static kv::WriteOp PutIfAbsent(std::string_view key, std::string_view value) {
    kv::WriteOp op = Put(key, value);
    op.put.condition = kv::PutCondition::kIfAbsent;
    return op;
  }

  test_support::TempDir dir_;
  std::unique_ptr<kv::Store> store_;
  uint64_t listener_ = 0;
  std::atomic<int> commits_{0};
};

TEST_P(LoopCommitterTest, SubmissionsOfOnePassShareACommitAndGetTheirOwnResults) {
  boost::asio::io_context loop;
  // Keeps run_for() waiting while the hand-off mode's completions are still on the store's thread.
  auto keep_running = boost::asio::make_work_guard(loop);
  LoopCommitter committer(store_.get(), loop.get_executor(), /*on_loop_thread=*/GetParam());
  const std::vector<kv::WriteOp> first = {Put("a", "1"), Put("b", "2")};
  const std::vector<kv::WriteOp> second = {PutIfAbsent("a", "x"), Put("c", "3")};
  const std::vector<kv::WriteOp> third = {Put("d", "4")};
  std::optional<WriteResults> r1, r2, r3;
  // Three connections whose input arrived in the same pass of the loop.
  boost::asio::post(loop,
                    [&] { committer.Submit(first, [&](WriteResults r) { r1 = std::move(r); }); });
  boost::asio::post(loop,
                    [&] { committer.Submit(second, [&](WriteResults r) { r2 = std::move(r); }); });
  boost::asio::post(loop,
                    [&] { committer.Submit(third, [&](WriteResults r) { r3 = std::move(r); }); });
  const int commits_before = commits_.load();
  // The hand-off mode completes on the store's thread and posts back: keep the loop alive.
  for (int i = 0; i < 2000 && !(r1 && r2 && r3); ++i) {
    loop.run_for(std::chrono::milliseconds(5));
    loop.restart();
  }
  ASSERT_TRUE(r1 && r2 && r3);
  ASSERT_TRUE(*r1 && *r2 && *r3);
  ASSERT_EQ((*r1)->size(), 2u);
  ASSERT_EQ((*r2)->size(), 2u);
  ASSERT_EQ((*r3)->size(), 1u);
  EXPECT_TRUE((**r1)[0] && (**r1)[1]);
  // The second submission's create-only put sees the first one's write of "a".
  ASSERT_FALSE((**r2)[0]);
  EXPECT_EQ((**r2)[0].error().code(), ErrorCode::kFailedPrecondition);
  ASSERT_TRUE((**r2)[1]);
  ASSERT_TRUE((**r3)[0]);
  EXPECT_EQ((**r1)[1]->seq, (**r1)[0]->seq + 1);
  EXPECT_EQ((**r2)[1]->seq, (**r1)[1]->seq + 1);
  EXPECT_EQ((**r3)[0]->seq, (**r2)[1]->seq + 1);
  if (GetParam()) {
    EXPECT_EQ(commits_.load() - commits_before, 1) << "one commit for the whole pass";
  }
  auto a = store_->Get("ns", "a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->value, "1");
  EXPECT_TRUE(store_->Get("ns", "d"));
}

TEST_P(LoopCommitterTest, ALaterPassGetsItsOwnCommit) {
  boost::asio::io_context loop;
  auto keep_running = boost::asio::make_work_guard(loop);
  LoopCommitter committer(store_.get(), loop.get_executor(), GetParam());
  const std::vector<kv::WriteOp> ops = {Put("k", "v")};
  int done = 0;
  for (int pass = 0; pass < 3; ++pass) {
    boost::asio::post(loop, [&] {
      committer.Submit(ops, [&](WriteResults r) {
        EXPECT_TRUE(r && (*r)[0]);
        ++done;
      });
    });
    for (int i = 0; i < 2000 && done <= pass; ++i) {
      loop.run_for(std::chrono::milliseconds(5));
      loop.restart();
    }
  }
  EXPECT_EQ(done, 3);
  EXPECT_EQ(store_->LastSeq(), 3u);
  EXPECT_EQ(commits_.load(), 3) << "one commit per pass";
}

INSTANTIATE_TEST_SUITE_P(Modes, LoopCommitterTest, ::testing::Values(true, false),
                         [](const auto& test_param) {
                           return test_param.param ? "OnLoopThread" : "HandOff";
                         });

}  // namespace
}  // namespace edgeflow::api
