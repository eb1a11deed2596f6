// CommitQueue: group commit for the store's writes, for blocking and for asynchronous callers.
//
// Blocking callers (Submit) use leader/follower: the first caller to find no commit in progress
// becomes the leader and commits every request queued so far in one go (one RocksDB write, one
// fsync), then hands leadership on; the others sleep until their request is done. Without
// contention a caller commits its own request at once, with no thread hop.
//
// Asynchronous callers (SubmitAsync) return at once; a committer thread, or a blocking leader that
// comes first, commits their requests with everything else queued, then runs their `done` on the
// committing thread. This lets a single-threaded event loop keep serving other connections while
// a commit is in progress, and lets the writes of all those connections share one commit.
//
// The commit function runs with no lock held, one group at a time, so it may treat everything it
// touches as single-threaded; this is also what gives change-log sequence numbers in commit order.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace edgeflow::kv {

template <typename Request>
class CommitQueue {
 public:
  using CommitFn = std::function<void(const std::vector<Request*>& group)>;
  using DoneFn = std::move_only_function<void()>;

  explicit CommitQueue(CommitFn commit)
      : commit_(std::move(commit)), committer_([this] { CommitterLoop(); }) {}
  ~CommitQueue() { Stop(); }
  CommitQueue(const CommitQueue&) = delete;
  CommitQueue& operator=(const CommitQueue&) = delete;

  // Blocks until `request` has been committed (by this thread or by another leader).
  void Submit(Request* request) {
    Waiter self{request};
    std::unique_lock lock(mu_);
    queue_.push_back(&self);
    self.cv.wait(lock, [&] { return self.done || !leader_active_; });
    if (self.done) return;
    // The leader's own request is in the group it takes, so one group is enough; taking more
    // would make this caller wait for strangers.
    LeadOneGroup(lock);
  }

  // Queues `request`; `done` runs on the committing thread once it is committed. It must be quick
  // (post the continuation elsewhere). `request` must stay alive until then.
  void SubmitAsync(Request* request, DoneFn done) {
    auto waiter = new Waiter{request};
    waiter->on_done = std::move(done);
    std::lock_guard lock(mu_);
    queue_.push_back(waiter);
    if (!leader_active_) work_cv_.notify_one();
  }

  // Commits what is queued, then stops the committer thread. Idempotent.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    if (committer_.joinable()) committer_.join();
  }

 private:
  struct Waiter {
    Request* request;
    bool done = false;
    std::condition_variable cv;  // blocking callers only
    DoneFn on_done;              // asynchronous callers only; the waiter is then heap-owned
  };

  // REQUIRES: lock held and no leader active. Returns with the lock held.
  void LeadOneGroup(std::unique_lock<std::mutex>& lock) {
    leader_active_ = true;
    std::vector<Waiter*> group(queue_.begin(), queue_.end());
    queue_.clear();
    lock.unlock();

    std::vector<Request*> requests;
    requests.reserve(group.size());
    for (Waiter* w : group) requests.push_back(w->request);
    commit_(requests);

    std::vector<Waiter*> finished_async;
    lock.lock();
    for (Waiter* w : group) {
      w->done = true;
      if (w->on_done) {
        finished_async.push_back(w);
      } else {
        w->cv.notify_one();
      }
    }
    leader_active_ = false;
    if (!queue_.empty()) queue_.front()->cv.notify_one();
    // The committer thread waits for the queue to be free: to take what is left, or to stop.
    if (!queue_.empty() || stopping_) work_cv_.notify_one();
    lock.unlock();
    for (Waiter* w : finished_async) {
      w->on_done();
      delete w;
    }
    lock.lock();
  }

  void CommitterLoop() {
    std::unique_lock lock(mu_);
    while (true) {
      work_cv_.wait(lock, [&] { return !leader_active_ && (stopping_ || !queue_.empty()); });
      if (queue_.empty()) return;  // stopping, and nothing left to commit
      LeadOneGroup(lock);
    }
  }

  CommitFn commit_;
  std::mutex mu_;
  std::condition_variable work_cv_;  // wakes the committer thread
  std::deque<Waiter*> queue_;        // GUARDED_BY(mu_)
  bool leader_active_ = false;       // GUARDED_BY(mu_)
  bool stopping_ = false;            // GUARDED_BY(mu_)
  std::thread committer_;            // last: starts once the members above exist
};

}  // namespace edgeflow::kv
