// HttpServer: the HTTP/1.1 REST front-end of the node (EKV under /v1/kv, watch as Server-Sent
// Events under /v1/watch, channels under /v1/channels, /healthz, /metrics). Keep-alive, bounded
// request sizes, JSON errors.
//
// Lifecycle: Create(config) -> Start() -> Stop() (idempotent). Stop() closes the listener and all
// connections (including open watch streams) and joins the I/O threads; it must not be called
// from one of them.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "api/http_channel_handlers.h"
#include "common/host_port.h"
#include "common/metrics.h"
#include "common/status.h"
#include "kv/store.h"

namespace edgeflow::api {

struct HttpServerConfig {
  HostPort listen{"127.0.0.1", 7070};
  size_t io_threads = 2;
  size_t max_key_bytes = 1024;
  size_t max_value_bytes = 64 << 20;
  size_t max_header_bytes = 16 << 10;
  size_t max_connections = 10000;
  int idle_timeout_seconds = 300;  // keep-alive connections idle longer than this are closed
  // Writes (PUT/POST/DELETE) run on a pool of this many threads rather than on the I/O threads,
  // so that a write waiting for its fsync does not stall other connections and concurrent
  // writes can share one commit. 0 = run them on the I/O threads.
  size_t write_threads = 4;
  int watch_keepalive_seconds = 15;  // comment line sent on idle watch streams
  int shutdown_grace_ms = 2000;      // Stop() waits this long for connections to wind down
};

// Extra facts the node reports on GET /v1/node (node id, version, listen addresses, ...).
using NodeInfoProvider = std::function<std::string()>;  // returns a JSON object as text

class HttpServer {
 public:
  // `store` and `metrics` must outlive the server. The server registers its metrics in `metrics`
  // (see http_metrics.h): use one HttpServer per registry. The channel routes answer 503 unless
  // `channels` names the node's channel components (which must outlive the server).
  static Result<std::unique_ptr<HttpServer>> Create(HttpServerConfig config, kv::Store* store,
                                                    metrics::Registry* metrics,
                                                    NodeInfoProvider node_info,
                                                    HttpServices channels = {});
  virtual ~HttpServer() = default;

  // Binds and starts serving; the bound address (with the real port if 0 was asked) is then in
  // bound_address().
  virtual Status Start() = 0;
  virtual void Stop() noexcept = 0;
  virtual HostPort bound_address() const = 0;
};

}  // namespace edgeflow::api
