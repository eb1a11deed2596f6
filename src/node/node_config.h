// NodeConfig: everything a node is configured with. Built from embedded defaults, then a YAML
// file (--config), then command-line flags; the node's components each get their own plain
// config struct from it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "api/http_server.h"
#include "api/resp_server.h"
#include "channels/channel_publisher.h"
#include "channels/key_change_notifier.h"
#include "channels/mosquitto_config.h"
#include "common/log.h"
#include "common/status.h"
#include "fanout/fanout_service.h"
#include "kv/store.h"

#ifndef EDGEFLOW_VERSION
#define EDGEFLOW_VERSION "0.0.0"
#endif

namespace edgeflow::node {

// The node's MQTT side: the Mosquitto broker it runs (or an external one it uses instead) and its
// own client connections to it.
struct MqttConfig {
  bool enabled = true;            // false: no broker, no channels (the channel routes answer 503)
  channels::BrokerConfig broker;  // broker.dir is derived: data_dir / "mosquitto"
  // Use this broker ("mqtt://host:port" or "host:port") instead of running one; its limits are
  // then its own business, and broker.* settings other than max_packet_bytes do not apply.
  std::optional<HostPort> external_broker;
  // The node's own credentials, needed when the broker has a password file or is external and
  // requires them.
  std::string username;
  std::string password;
};

// "mqtt://host:port" or "host:port" (port 1883 when a mqtt:// URL has none).
Result<HostPort> ParseBrokerUrl(std::string_view text);

// Edge functions (runtime/pipeline_manager.h). They need the channels (mqtt.enabled).
struct FunctionsConfig {
  bool enabled = true;
  // A worker above a function's min_workers retires after this long without work.
  int64_t idle_timeout_ms = 30'000;
  // A starting worker must send "ready" within this (interpreters that load models are slow).
  int64_t ready_timeout_ms = 30'000;
};

// The stream fan-out (fanout/fanout_service.h). It runs without the channels too; the sensors
// then get no quality on their control channels.
struct FanoutConfig {
  bool enabled = true;  // false: no fan-out (the stream routes answer 503)
  // auto: the eBPF data path where the program loads (root), else the userspace replicator;
  // ebpf: the node fails to start when the program cannot be loaded.
  fanout::Datapath datapath = fanout::Datapath::kAuto;
};

struct NodeConfig {
  NodeConfig() {
    http.io_threads = 0;  // automatic, resolved by FinalizeConfig
    resp.io_threads = 0;
    resp.server_version = kVersion;
    kv.record_cache_bytes = kAutomaticSize;
  }
  static constexpr const char* kVersion = EDGEFLOW_VERSION;
  // A size left to FinalizeConfig, which derives it from the machine ("auto" in YAML).
  static constexpr size_t kAutomaticSize = ~size_t{0};

  std::filesystem::path data_dir = "data";
  log::Level log_level = log::Level::kInfo;
  log::Format log_format = log::Format::kText;
  kv::StoreOptions kv;  // kv.dir is derived: data_dir / "kv"
  api::HttpServerConfig http;
  api::RespServerConfig resp;
  MqttConfig mqtt;
  channels::ChannelsConfig channels;
  std::vector<channels::NotifyRule> notify;  // key-change notifications (channels.notify)
  FunctionsConfig functions;  // code snapshots and worker state live in data_dir / "functions"
  FanoutConfig fanout;
};

// Reads a YAML config file over `config`. Unknown keys and bad values are errors that name the key.
Status LoadConfigFile(const std::filesystem::path& path, NodeConfig* config);
// Parses YAML text over `config` (what LoadConfigFile does after reading the file).
Status ParseConfigYaml(std::string_view yaml_text, std::string_view source, NodeConfig* config);
// The key and value size limits (config files and flags alike).
Status ValidateKvLimits(const kv::StoreOptions& kv);
// The channel settings against each other and the broker's packet limit.
Status ValidateChannels(const NodeConfig& config);
// Copies shared settings (limits, paths) into the component configs; call after all overrides.
void FinalizeConfig(NodeConfig* config);

}  // namespace edgeflow::node
