// Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014): timestamps that follow
// wall-clock milliseconds but never go backwards and order causally related events across nodes.
// Layout: upper 48 bits physical milliseconds, lower 16 bits a logical counter.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/clock.h"

namespace edgeflow::kv {

class HybridClock {
 public:
  explicit HybridClock(const Clock* clock) : clock_(clock) {}

  // A timestamp greater than every timestamp this clock returned or observed before.
  uint64_t Now();
  // Merges a timestamp seen from elsewhere (a restart's last write, a remote node's write) so that
  // later Now() values order after it.
  void Observe(uint64_t remote);

  static constexpr uint64_t Pack(int64_t physical_ms, uint16_t logical) {
    return (static_cast<uint64_t>(physical_ms) << 16) | logical;
  }

 private:
  const Clock* clock_;
  std::atomic<uint64_t> last_{0};
};

}  // namespace edgeflow::kv
