#include "api/loop_committer.h"

#include <boost/asio/post.hpp>
#include <utility>

namespace edgeflow::api {

LoopCommitter::LoopCommitter(kv::Store* store, boost::asio::io_context::executor_type loop,
                             bool on_loop_thread)
    : store_(store), loop_(std::move(loop)), on_loop_thread_(on_loop_thread) {}

void LoopCommitter::Submit(std::span<const kv::WriteOp> ops, Done done) {
  if (!on_loop_thread_) {
    store_->ApplyAsync(ops, [this, done = std::move(done)](WriteResults results) mutable {
      // On the store's committer thread: only hand the results over to the loop.
      boost::asio::post(loop_, [done = std::move(done), results = std::move(results)]() mutable {
        done(std::move(results));
      });
    });
    return;
  }
  std::lock_guard lock(mu_);
  queued_.push_back(Submission{ops, std::move(done)});
  if (scheduled_) return;
  scheduled_ = true;
  // Runs after the handlers already queued on the loop: the other connections whose input
  // arrived in this pass submit first and share the commit.
  boost::asio::post(loop_, [this] { CommitQueued(); });
}

void LoopCommitter::CommitQueued() {
  std::vector<Submission> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(queued_);
    scheduled_ = false;
  }
  if (batch.size() == 1) {
    // The common unpipelined case needs no copy.
    WriteResults results = store_->Apply(batch.front().ops);
    batch.front().done(std::move(results));
    return;
  }
  size_t total = 0;
  for (const Submission& s : batch) total += s.ops.size();
  std::vector<kv::WriteOp> ops;
  ops.reserve(total);
  for (const Submission& s : batch) ops.insert(ops.end(), s.ops.begin(), s.ops.end());
  WriteResults results = store_->Apply(ops);
  size_t next = 0;
  for (Submission& s : batch) {
    if (!results) {
      s.done(Error(results.error()));
      continue;
    }
    std::vector<Result<kv::WriteResult>> own;
    own.reserve(s.ops.size());
    for (size_t i = 0; i < s.ops.size(); ++i) own.push_back(std::move((*results)[next + i]));
    next += s.ops.size();
    s.done(std::move(own));
  }
}

}  // namespace edgeflow::api
