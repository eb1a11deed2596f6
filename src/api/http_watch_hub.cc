#include "api/http_watch_hub.h"

#include <algorithm>

namespace edgeflow::api {

void WatchHub::Add(std::shared_ptr<WatchWaiter> waiter) {
  std::lock_guard lock(mu_);
  if (closed_) return;
  waiters_.push_back(std::move(waiter));
}

void WatchHub::Remove(const WatchWaiter* waiter) {
  std::lock_guard lock(mu_);
  auto it = std::find_if(waiters_.begin(), waiters_.end(),
                         [waiter](const auto& w) { return w.get() == waiter; });
  if (it != waiters_.end()) {
    std::swap(*it, waiters_.back());
    waiters_.pop_back();
  }
}

void WatchHub::OnCommit() {
  std::lock_guard lock(mu_);
  for (const auto& waiter : waiters_) {
    if (!waiter->pending.exchange(true, std::memory_order_acq_rel)) waiter->notify();
  }
}

void WatchHub::Close() {
  std::vector<std::shared_ptr<WatchWaiter>> waiters;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    waiters.swap(waiters_);
  }
  for (const auto& waiter : waiters) {
    waiter->pending.store(true, std::memory_order_release);
    waiter->notify();
  }
}

}  // namespace edgeflow::api
