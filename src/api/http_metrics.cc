#include "api/http_metrics.h"

#include <string>

#include <fmt/format.h>

namespace edgeflow::api {

HttpMetrics::HttpMetrics(metrics::Registry* registry) {
  for (size_t m = 0; m < kHttpMethodCount; ++m) {
    for (size_t r = 0; r < kHttpRouteCount; ++r) {
      for (size_t c = 0; c < kClasses; ++c) {
        requests_[m][r][c] =
            registry->AddCounter("edgeflow_http_requests_total",
                                 "HTTP requests answered, by method, route and status class",
                                 fmt::format(R"(method="{}",route="{}",code_class="{}xx")",
                                             HttpMethodName(static_cast<HttpMethod>(m)),
                                             HttpRouteName(static_cast<HttpRoute>(r)), c + 2));
      }
    }
  }
  for (size_t r = 0; r < kHttpRouteCount; ++r) {
    durations_[r] = registry->AddHistogram(
        "edgeflow_http_request_duration_seconds",
        "Time from a complete request to its response being written (watch: until the stream "
        "starts)",
        fmt::format(R"(route="{}")", HttpRouteName(static_cast<HttpRoute>(r))));
  }
  registry->AddGauge("edgeflow_http_connections", "Open HTTP connections",
                     [c = connections_] { return static_cast<double>(c->load()); });
  registry->AddGauge("edgeflow_watch_streams", "Open watch (Server-Sent Events) streams",
                     [w = watches_] { return static_cast<double>(w->load()); });
}

void HttpMetrics::RecordRequest(HttpMethod method, HttpRoute route, unsigned status,
                                uint64_t micros) {
  size_t cls = status / 100;
  cls = cls < 2 ? 0 : (cls > 5 ? kClasses - 1 : cls - 2);
  requests_[static_cast<size_t>(method)][static_cast<size_t>(route)][cls]->Increment();
  durations_[static_cast<size_t>(route)]->ObserveMicros(micros);
}

}  // namespace edgeflow::api
