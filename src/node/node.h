// Node: one edgeflow node in one process: the EKV store and its HTTP and RESP front-ends, plus the
// node's metrics. This is the wiring; each component is configured from NodeConfig.
//
// Lifecycle: Create(config) -> Start() -> Stop() (idempotent, reverse order of start). After
// Start() the node writes `<data_dir>/edgeflowd.listen.json` with its bound addresses, so that
// tools and tests that asked for port 0 can find it; Stop() removes it.
#pragma once

#include <memory>
#include <string>

#include "api/http_server.h"
#include "api/resp_server.h"
#include "common/metrics.h"
#include "kv/store.h"
#include "node/node_config.h"

namespace edgeflow::node {

class Node {
 public:
  static Result<std::unique_ptr<Node>> Create(NodeConfig config);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  Status Start();
  void Stop() noexcept;

  kv::Store* store() { return store_.get(); }
  HostPort http_address() const { return http_->bound_address(); }
  HostPort resp_address() const { return resp_->bound_address(); }
  std::filesystem::path listen_file() const { return config_.data_dir / "edgeflowd.listen.json"; }

  // The JSON served on GET /v1/node.
  std::string NodeInfoJson() const;

 private:
  explicit Node(NodeConfig config) : config_(std::move(config)) {}
  void RegisterStoreMetrics();
  Status WriteListenFile() const;

  NodeConfig config_;
  int64_t started_at_ms_ = 0;
  metrics::Registry metrics_;
  std::unique_ptr<kv::Store> store_;
  std::unique_ptr<api::HttpServer> http_;
  std::unique_ptr<api::RespServer> resp_;
  bool started_ = false;
};

}  // namespace edgeflow::node
