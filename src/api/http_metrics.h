// Metrics of the HTTP front-end. Every series is registered up front (method x route x status
// class), so /metrics always shows the same set and the request path never takes the registry's
// lock.
//
// The gauges are registry callbacks; they read counters held by shared_ptr so that they stay
// valid after the server is destroyed (the registry has no way to unregister). Register one
// HttpMetrics per registry: a second one would add duplicate gauge series.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

#include "api/http_router.h"
#include "common/metrics.h"

namespace edgeflow::api {

class HttpMetrics {
 public:
  explicit HttpMetrics(metrics::Registry* registry);

  // status: the HTTP status code sent.
  void RecordRequest(HttpMethod method, HttpRoute route, unsigned status, uint64_t micros);

  void ConnectionOpened() { connections_->fetch_add(1, std::memory_order_relaxed); }
  void ConnectionClosed() { connections_->fetch_sub(1, std::memory_order_relaxed); }
  void WatchOpened() { watches_->fetch_add(1, std::memory_order_relaxed); }
  void WatchClosed() { watches_->fetch_sub(1, std::memory_order_relaxed); }

 private:
  static constexpr size_t kClasses = 4;  // 2xx .. 5xx (no 1xx is ever final)

  std::array<std::array<std::array<metrics::Counter*, kClasses>, kHttpRouteCount>, kHttpMethodCount>
      requests_{};
  std::array<metrics::Histogram*, kHttpRouteCount> durations_{};
  std::shared_ptr<std::atomic<int64_t>> connections_ = std::make_shared<std::atomic<int64_t>>(0);
  std::shared_ptr<std::atomic<int64_t>> watches_ = std::make_shared<std::atomic<int64_t>>(0);
};

}  // namespace edgeflow::api
