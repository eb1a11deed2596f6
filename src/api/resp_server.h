// RespServer: the Redis protocol (RESP2) front-end of EKV, so that redis-cli, redis-benchmark and
// Redis client libraries work against a node unchanged.
//
// Lifecycle: Create(config) -> Start() -> Stop() (idempotent). Stop() closes the listener and all
// connections and joins the I/O threads.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "common/clock.h"
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
  // One command on the wire, all arguments together: bounds what one client can make the server
  // buffer (Redis' client-query-buffer-limit).
  size_t max_command_bytes = 256 << 20;
  size_t max_connections = 10000;
  // SCAN cursors are kept node-wide; the least recently used beyond this many are dropped, and any
  // unused for scan_cursor_ttl_seconds.
  size_t max_scan_cursors = 10000;
  int scan_cursor_ttl_seconds = 600;
  // Commit held-back writes on the I/O thread that collected them (see LoopCommitter); false hands
  // them to the store's committer thread, for when every commit waits for an fsync.
  bool commit_on_io_thread = true;
  std::string server_version;    // reported by INFO as edgeflow_version
  const Clock* clock = nullptr;  // for TTL arithmetic; nullptr = system clock
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
