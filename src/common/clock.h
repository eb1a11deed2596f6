// Wall-clock time source, injectable so that TTL and HLC logic can be tested without sleeping.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace edgeflow {

// Thread-safe. Implementations return Unix time in milliseconds.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMillis() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  // A process-wide instance; never destroyed.
  static Clock* Default();
};

// A clock that only moves when told to; for tests.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_millis) : now_(start_millis) {}
  int64_t NowMillis() const override { return now_.load(std::memory_order_relaxed); }
  void Advance(std::chrono::milliseconds d) { now_.fetch_add(d.count(), std::memory_order_relaxed); }
  void Set(int64_t millis) { now_.store(millis, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace edgeflow
