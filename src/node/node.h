// Node: one edgeflow node in one process: the EKV store and its HTTP and RESP front-ends, the
// Mosquitto broker it supervises and the computation channels on it, the edge functions deployed
// on it, the stream fan-out, plus the node's metrics.
// This is the wiring; each component is configured from NodeConfig.
//
// Lifecycle: Create(config) -> Start() -> Stop() (idempotent, reverse order of start). Start()
// opens nothing to clients before the channels work: the broker is healthy and the node's MQTT
// connections are up (with an external broker, the node starts anyway and keeps reconnecting),
// and the stream fan-out runs (on the userspace data path when eBPF cannot be loaded, unless
// fanout.datapath is ebpf).
// After Start() the node writes `<data_dir>/edgeflowd.listen.json` with its bound addresses, so
// that tools and tests that asked for port 0 can find it; Stop() removes it.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "api/http_server.h"
#include "api/resp_server.h"
#include "channels/broker_supervisor.h"
#include "channels/channel_monitor.h"
#include "channels/channel_publisher.h"
#include "channels/key_change_notifier.h"
#include "channels/mqtt_client.h"
#include "common/metrics.h"
#include "fanout/fanout_service.h"
#include "kv/store.h"
#include "node/node_config.h"
#include "runtime/pipeline_manager.h"

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
  // The broker's MQTT address the node uses (nullopt when MQTT is off).
  std::optional<HostPort> mqtt_address() const;
  std::filesystem::path listen_file() const { return config_.data_dir / "edgeflowd.listen.json"; }

  // The JSON served on GET /v1/node.
  std::string NodeInfoJson() const;

 private:
  explicit Node(NodeConfig config) : config_(std::move(config)) {}
  void RegisterStoreMetrics();
  void RegisterChannelMetrics();
  Status StartChannels();
  void StopChannels() noexcept;
  Status StartFunctions();
  Status StartFanout();
  // What runs behind the listeners: the fan-out, then the channels.
  void StopServices() noexcept;
  Status WriteListenFile() const;
  nlohmann::json ChannelsInfo() const;
  channels::MqttClientOptions ClientOptions(std::string_view role) const;

  NodeConfig config_;
  int64_t started_at_ms_ = 0;
  metrics::Registry metrics_;
  std::unique_ptr<kv::Store> store_;
  std::unique_ptr<api::HttpServer> http_;
  std::unique_ptr<api::RespServer> resp_;
  // Channels (all null when mqtt.enabled is false; broker_ also with an external broker).
  std::unique_ptr<channels::BrokerSupervisor> broker_;
  std::unique_ptr<channels::ChannelMonitor> monitor_;
  // Publishes (producers, notifications) and watches every channel for the monitor.
  std::unique_ptr<channels::MqttClient> mqtt_;
  std::unique_ptr<channels::ChannelPublisher> publisher_;
  std::unique_ptr<channels::KeyChangeNotifier> notifier_;
  // Edge functions (null when functions or channels are off).
  std::unique_ptr<runtime::PipelineManager> pipelines_;
  // The stream fan-out (null when fanout.enabled is false).
  std::unique_ptr<fanout::FanoutService> fanout_;
  bool started_ = false;
};

}  // namespace edgeflow::node
