#include "kv/hybrid_clock.h"

namespace edgeflow::kv {

uint64_t HybridClock::Now() {
  uint64_t wall = Pack(clock_->NowMillis(), 0);
  uint64_t prev = last_.load(std::memory_order_relaxed);
  while (true) {
    // Physical time moved on: take it with a zero counter. Otherwise (same millisecond, or the
    // wall clock stepped back) count up from the last timestamp; the counter carries into the
    // physical part when it overflows, which keeps the order.
    uint64_t next = wall > prev ? wall : prev + 1;
    if (last_.compare_exchange_weak(prev, next, std::memory_order_acq_rel)) return next;
  }
}

void HybridClock::Observe(uint64_t remote) {
  uint64_t prev = last_.load(std::memory_order_relaxed);
  while (remote > prev &&
         !last_.compare_exchange_weak(prev, remote, std::memory_order_acq_rel)) {
  }
}

}  // namespace edgeflow::kv
