// LoopCommitter: commits the writes that the connections of an event loop held back, all of them
// in one store commit, on the loop's own thread.
//
// Why: a RESP connection holds its writes back until it has parsed all the input it has, then
// waits for their commit. Handing each connection's writes to the store's committer thread costs
// two thread wake-ups per commit group, which dominates small unpipelined writes. Instead, the
// first connection to submit in a pass of the event loop schedules one commit at the end of the
// pass (a post() to the loop); the connections whose input arrived in the same pass join it. WAL
// writes without fsync take microseconds, so running them on the loop thread costs less than the
// hand-off.
//
// With `on_loop_thread` false (the node's setting when every write is fsync'd) it hands each
// submission to Store::ApplyAsync instead: an fsync takes milliseconds, and the loop keeps serving
// reads meanwhile.
//
// Thread-safety: Submit() from any thread of the loop; `done` runs on one of them.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "common/status.h"
#include "kv/store.h"

namespace edgeflow::api {

class LoopCommitter {
 public:
  using WriteResults = Result<std::vector<Result<kv::WriteResult>>>;
  using Done = std::move_only_function<void(WriteResults)>;

  LoopCommitter(kv::Store* store, boost::asio::io_context::executor_type loop, bool on_loop_thread);

  // Commits `ops` (which must stay valid until `done` runs) with the others submitted in this
  // pass of the loop; `done` gets this submission's results, in the order of `ops`.
  void Submit(std::span<const kv::WriteOp> ops, Done done);

 private:
  struct Submission {
    std::span<const kv::WriteOp> ops;
    Done done;
  };

  void CommitQueued();

  kv::Store* const store_;
  const boost::asio::io_context::executor_type loop_;
  const bool on_loop_thread_;

  std::mutex mu_;
  std::vector<Submission> queued_;  // GUARDED_BY(mu_)
  bool scheduled_ = false;          // GUARDED_BY(mu_): a CommitQueued() is posted
};

}  // namespace edgeflow::api
