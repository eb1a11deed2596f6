#include "api/resp_scan_cursors.h"

#include <utility>

namespace edgeflow::api {

RespScanCursors::RespScanCursors(size_t capacity, int64_t ttl_ms, const Clock* clock)
    : capacity_(capacity == 0 ? 1 : capacity),
      ttl_ms_(ttl_ms),
      clock_(clock),
      rng_(std::random_device{}()) {}

void RespScanCursors::EvictLocked(int64_t now_ms) {
  while (!lru_.empty() &&
         (lru_.size() > capacity_ || now_ms - lru_.back().last_used_ms > ttl_ms_)) {
    by_id_.erase(lru_.back().id);
    lru_.pop_back();
  }
}

uint64_t RespScanCursors::Add(ScanPosition position) {
  const int64_t now = clock_->NowMillis();
  std::lock_guard lock(mu_);
  uint64_t id = 0;
  // Unpredictable ids: a client cannot guess (and so resume or disturb) another client's scan.
  do {
    id = rng_() >> 1;
  } while (id == 0 || by_id_.contains(id));
  lru_.push_front(Entry{id, now, std::move(position)});
  by_id_.emplace(id, lru_.begin());
  EvictLocked(now);
  return id;
}

std::optional<ScanPosition> RespScanCursors::Take(uint64_t cursor) {
  const int64_t now = clock_->NowMillis();
  std::lock_guard lock(mu_);
  EvictLocked(now);
  auto it = by_id_.find(cursor);
  if (it == by_id_.end()) return std::nullopt;
  ScanPosition position = std::move(it->second->position);
  lru_.erase(it->second);
  by_id_.erase(it);
  return position;
}

}  // namespace edgeflow::api
