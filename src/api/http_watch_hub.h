// WatchHub: the one commit listener of the HTTP server, fanning commit notifications out to the
// open watch streams.
//
// The store calls OnCommit() on the committing thread after every commit, so it must be cheap:
// it only flips each waiter's `pending` flag and, if the flag was clear, calls its `notify`
// (which posts a wake-up to the stream's strand). A stream clears `pending` before it reads the
// change log and looks at it again before it sleeps, so no commit is missed and a burst of
// commits costs one wake-up per stream, not one per commit.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace edgeflow::api {

struct WatchWaiter {
  std::atomic<bool> pending{false};
  std::function<void()> notify;  // must only post work elsewhere; never blocks
};

class WatchHub {
 public:
  void Add(std::shared_ptr<WatchWaiter> waiter);
  void Remove(const WatchWaiter* waiter);
  // Wakes every waiter (after a commit, and at shutdown).
  void OnCommit();
  // Wakes every waiter one last time and drops them all; later Add() calls are ignored.
  void Close();

 private:
  mutable std::mutex mu_;
  bool closed_ = false;
  std::vector<std::shared_ptr<WatchWaiter>> waiters_;
};

}  // namespace edgeflow::api
