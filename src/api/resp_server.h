// RespServer: the Redis protocol (RESP2) front-end of EKV, so that redis-cli, redis-benchmark and
// Redis client libraries work against a node unchanged.
//
// Lifecycle: Create(config) -> Start() -> Stop() (idempotent). Stop() closes the listener and all
// connections and joins the I/O threads.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "common/host_port.h"
#include "common/metrics.h"
#include "common/status.h"
#include "kv/store.h"

namespace edgeflow::api {

struct RespServerConfig {
  HostPort listen{"127.0.0.1", 7379};
  size_t io_threads = 2;
  std::string default_namespace = "default";
  size_t max_key_bytes = 1024;
  size_t max_value_bytes = 64 << 20;
  size_t max_args = 1 << 20;           // elements in one command (MSET, MGET, DEL)
  size_t max_inline_bytes = 64 << 10;  // inline (telnet-style) command line length
  size_t max_connections = 10000;
};

class RespServer {
 public:
  // `store` and `metrics` must outlive the server.
  static Result<std::unique_ptr<RespServer>> Create(RespServerConfig config, kv::Store* store,
                                                    metrics::Registry* metrics);
  virtual ~RespServer() = default;

  // Binds and starts serving; the bound address (with the real port if 0 was asked) is then in
  // bound_address().
  virtual Status Start() = 0;
  virtual void Stop() noexcept = 0;
  virtual HostPort bound_address() const = 0;
};

}  // namespace edgeflow::api
