// LatencyWindow: the most recent N latencies of something, for percentiles that describe now
// rather than since the start (a histogram since start would hide that a function became slow).
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <vector>

namespace edgeflow::runtime {

class LatencyWindow {
 public:
  explicit LatencyWindow(size_t capacity = 2048) : samples_(capacity, 0) {}

  void Add(uint64_t micros) {
    std::lock_guard lock(mu_);
    samples_[next_ % samples_.size()] = micros;
    ++next_;
  }

  // The q-quantile (0..1) of the window in microseconds; 0 when empty.
  uint64_t Quantile(double q) const {
    std::vector<uint64_t> copy;
    {
      std::lock_guard lock(mu_);
      copy.assign(samples_.begin(),
                  samples_.begin() + static_cast<ptrdiff_t>(std::min(next_, samples_.size())));
    }
    if (copy.empty()) return 0;
    const size_t rank = std::min(copy.size() - 1, static_cast<size_t>(q * copy.size()));
    std::nth_element(copy.begin(), copy.begin() + static_cast<ptrdiff_t>(rank), copy.end());
    return copy[rank];
  }

 private:
  mutable std::mutex mu_;
  std::vector<uint64_t> samples_;  // GUARDED_BY(mu_): a ring
  size_t next_ = 0;                // GUARDED_BY(mu_): samples added so far
};

}  // namespace edgeflow::runtime
