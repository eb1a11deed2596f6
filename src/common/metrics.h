// In-process metrics rendered in the Prometheus text exposition format (version 0.0.4).
//
// Counters and histograms are lock-free on the hot path (relaxed atomics); registration and
// rendering take a mutex. Metrics are owned by the Registry and live as long as it does, so the
// pointers it hands out stay valid. Gauges are callbacks evaluated at render time.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace edgeflow::metrics {

class Counter {
 public:
  void Increment(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Latency histogram in seconds with fixed exponential buckets from 10us to ~10s.
class Histogram {
 public:
  static constexpr size_t kBuckets = 21;
  static const std::array<double, kBuckets>& Bounds();

  void ObserveMicros(uint64_t micros);
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }
  // Cumulative counts per bound, sum in seconds; for rendering.
  void Snapshot(std::array<uint64_t, kBuckets>* cumulative, uint64_t* count, double* sum) const;

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};
};

// Labels are written already rendered: R"(op="get",proto="http")". Empty for none.
class Registry {
 public:
  Counter* AddCounter(const std::string& name, const std::string& help,
                      const std::string& labels = "");
  Histogram* AddHistogram(const std::string& name, const std::string& help,
                          const std::string& labels = "");
  void AddGauge(const std::string& name, const std::string& help, std::function<double()> read,
                const std::string& labels = "");

  std::string RenderPrometheus() const;

 private:
  enum class Kind { kCounter, kGauge, kHistogram };
  struct Family {
    std::string name;
    std::string help;
    Kind kind;
  };
  struct Series {
    size_t family;
    std::string labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> gauge;
  };
  size_t FamilyIndex(const std::string& name, const std::string& help, Kind kind);

  mutable std::mutex mu_;
  std::vector<Family> families_;
  std::vector<Series> series_;
};

}  // namespace edgeflow::metrics
