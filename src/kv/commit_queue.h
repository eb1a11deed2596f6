// CommitQueue: leader/follower group commit. Callers Submit() a request; the first caller to find
// no commit in progress becomes the leader and commits every request queued so far in one go (one
// RocksDB write, one fsync), then hands leadership to the next waiter. The others sleep until their
// request is done. Without contention a caller commits its own request at once (no thread hop).
//
// The commit function runs with no lock held, one group at a time, so it may treat everything it
// touches as single-threaded; this is also what gives change-log sequence numbers in commit order.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

namespace edgeflow::kv {

template <typename Request>
class CommitQueue {
 public:
  using CommitFn = std::function<void(const std::vector<Request*>& group)>;

  explicit CommitQueue(CommitFn commit) : commit_(std::move(commit)) {}

  // Blocks until `request` has been committed (by this thread or by another leader).
  void Submit(Request* request) {
    Waiter self{request};
    std::unique_lock lock(mu_);
    queue_.push_back(&self);
    self.cv.wait(lock, [&] { return self.done || !leader_active_; });
    if (self.done) return;

    leader_active_ = true;
    // The leader's own request is in the first group it takes, so one group is enough; taking more
    // would make this caller wait for strangers.
    std::vector<Waiter*> group(queue_.begin(), queue_.end());
    queue_.clear();
    lock.unlock();

    std::vector<Request*> requests;
    requests.reserve(group.size());
    for (Waiter* w : group) requests.push_back(w->request);
    commit_(requests);

    lock.lock();
    for (Waiter* w : group) {
      w->done = true;
      if (w != &self) w->cv.notify_one();
    }
    leader_active_ = false;
    if (!queue_.empty()) queue_.front()->cv.notify_one();
  }

 private:
  struct Waiter {
    Request* request;
    bool done = false;
    std::condition_variable cv;
  };

  CommitFn commit_;
  std::mutex mu_;
  std::deque<Waiter*> queue_;  // GUARDED_BY(mu_)
  bool leader_active_ = false;  // GUARDED_BY(mu_)
};

}  // namespace edgeflow::kv
