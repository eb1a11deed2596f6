#include "node/node.h"

#include <unistd.h>

#include <mutex>
#include <nlohmann/json.hpp>

#include "channels/channel_name.h"
#include "common/atomic_file.h"
#include "common/log.h"

namespace edgeflow::node {

Result<std::unique_ptr<Node>> Node::Create(NodeConfig config) {
  FinalizeConfig(&config);
  std::unique_ptr<Node> node(new Node(std::move(config)));
  auto store = kv::Store::Open(node->config_.kv);
  if (!store) return Error(std::move(store.error()));
  node->store_ = std::move(*store);
  node->RegisterStoreMetrics();

  const MqttConfig& mqtt = node->config_.mqtt;
  if (mqtt.enabled) {
    if (Status s = ValidateChannels(node->config_); !s.ok()) return Error(std::move(s));
    if (Status s = channels::ValidateNotifyRules(node->config_.notify); !s.ok()) {
      return Error(std::move(s));
    }
    if (!mqtt.external_broker) {
      auto broker = channels::BrokerSupervisor::Create(mqtt.broker);
      if (!broker) return Error(std::move(broker.error()));
      node->broker_ = std::move(*broker);
    }
    node->monitor_ = std::make_unique<channels::ChannelMonitor>(node->config_.channels.tenant,
                                                                SystemClock::Default());
    node->RegisterChannelMetrics();
  }
  auto resp = api::RespServer::Create(node->config_.resp, node->store_.get(), &node->metrics_);
  if (!resp) return Error(std::move(resp.error()));
  node->resp_ = std::move(*resp);
  return node;
}

Node::~Node() { Stop(); }

void Node::RegisterStoreMetrics() {
  kv::Store* store = store_.get();
  metrics_.AddGauge("edgeflow_kv_last_seq", "Sequence number of the newest change-log record",
                    [store] { return static_cast<double>(store->LastSeq()); });
  // Store::Stats() reads several RocksDB properties and every cache shard; one scrape renders all
  // these gauges, so they share one snapshot instead of taking one each.
  struct Snapshot {
    std::mutex mu;
    int64_t taken_ms = 0;
    kv::StoreStats stats;
  };
  auto snapshot = std::make_shared<Snapshot>();
  auto gauge = [this, store, snapshot](const char* name, const char* help,
                                       uint64_t kv::StoreStats::*field) {
    metrics_.AddGauge(name, help, [store, snapshot, field] {
      std::lock_guard lock(snapshot->mu);
      const int64_t now = SystemClock::Default()->NowMillis();
      if (now - snapshot->taken_ms >= 1000) {
        snapshot->stats = store->Stats();
        snapshot->taken_ms = now;
      }
      return static_cast<double>(snapshot->stats.*field);
    });
  };
  gauge("edgeflow_kv_estimated_keys", "Estimated number of stored keys (RocksDB)",
        &kv::StoreStats::estimated_keys);
  gauge("edgeflow_kv_sst_bytes", "Bytes in live SST files", &kv::StoreStats::live_sst_bytes);
  gauge("edgeflow_kv_blob_bytes", "Bytes in blob files (large values)",
        &kv::StoreStats::blob_file_bytes);
  gauge("edgeflow_kv_memtable_bytes", "Bytes in memtables", &kv::StoreStats::memtable_bytes);
  gauge("edgeflow_kv_record_cache_bytes", "Bytes in the record cache",
        &kv::StoreStats::record_cache_bytes);
  gauge("edgeflow_kv_record_cache_hits", "Record cache hits since start",
        &kv::StoreStats::record_cache_hits);
  gauge("edgeflow_kv_record_cache_misses", "Record cache misses since start",
        &kv::StoreStats::record_cache_misses);
}

void Node::RegisterChannelMetrics() {
  metrics_.AddGauge("edgeflow_mqtt_connected", "1 when the node's MQTT connection is up",
                    [this] { return mqtt_ && mqtt_->connected() ? 1.0 : 0.0; });
  metrics_.AddGauge("edgeflow_mqtt_reconnects", "Reconnects of the node's MQTT connection",
                    [this] { return mqtt_ ? static_cast<double>(mqtt_->reconnects()) : 0.0; });
  metrics_.AddGauge("edgeflow_mqtt_replayed",
                    "Messages published again after the broker lost the node's session",
                    [this] { return mqtt_ ? static_cast<double>(mqtt_->replayed()) : 0.0; });
  metrics_.AddGauge("edgeflow_channels_untracked_messages",
                    "Messages on channels beyond the monitor's limit",
                    [this] { return static_cast<double>(monitor_->untracked_messages()); });
  metrics_.AddGauge(
      "edgeflow_channels_notifications", "Key changes announced on channels (channels.notify)",
      [this] { return notifier_ ? static_cast<double>(notifier_->published()) : 0.0; });
  metrics_.AddGauge(
      "edgeflow_channels_notifications_skipped",
      "Change-log records that fell out of the log before they were announced",
      [this] { return notifier_ ? static_cast<double>(notifier_->skipped_records()) : 0.0; });
  if (broker_) {
    channels::BrokerSupervisor* broker = broker_.get();
    metrics_.AddGauge("edgeflow_mqtt_broker_healthy", "1 when the managed Mosquitto is healthy",
                      [broker] { return broker->healthy() ? 1.0 : 0.0; });
    metrics_.AddGauge("edgeflow_mqtt_broker_restarts",
                      "Times the managed Mosquitto was started again after it exited",
                      [broker] { return static_cast<double>(broker->restarts()); });
  }
}

channels::MqttClientOptions Node::ClientOptions(std::string_view role) const {
  channels::MqttClientOptions options;
  options.broker =
      config_.mqtt.external_broker ? *config_.mqtt.external_broker : broker_->mqtt_address();
  // A fixed id per node and role: a restarted node takes its connection over at once instead of
  // waiting for the broker to notice that the old one is gone.
  options.client_id =
      "edgeflowd-" + kv::NodeIdToString(store_->node_id()) + "-" + std::string(role);
  options.username = config_.mqtt.username;
  options.password = config_.mqtt.password;
  return options;
}

Status Node::StartChannels() {
  if (!config_.mqtt.enabled) return Status::Ok();
  if (broker_) {
    if (Status s = broker_->Start(); !s.ok()) {
      return Status(s.code(), "MQTT broker: " + s.message());
    }
    log::Info("listening", {{"proto", "mqtt"},
                            {"addr", broker_->mqtt_address().ToString()},
                            {"broker_pid", std::to_string(broker_->pid())}});
    if (auto ws = broker_->ws_address()) {
      log::Info("listening", {{"proto", "mqtt-ws"}, {"addr", ws->ToString()}});
    }
  }
  channels::MqttClientOptions pub_options = ClientOptions("pub");
  if (broker_) {
    // The managed broker saves its state every autosave_seconds; what it acknowledged since its
    // last save dies with it. Publishing that again after a restart closes the gap (subscribers
    // may see those items twice). Without periodic saves, the last 30 s are covered.
    const int autosave = config_.mqtt.broker.autosave_seconds;
    pub_options.replay_window = std::chrono::seconds(autosave > 0 ? autosave + 2 : 30);
  }
  auto mqtt = channels::MqttClient::Create(std::move(pub_options));
  if (!mqtt) return mqtt.error();
  mqtt_ = std::move(*mqtt);
  // The monitor counts what the node publishes as it is acknowledged, and what other clients
  // publish through a no-local subscription on the same connection: the broker does not echo the
  // node's own messages back (which would double its fan-out and wake the node for each).
  channels::ChannelMonitor* monitor = monitor_.get();
  auto record = [monitor](const channels::MqttMessage& message) {
    monitor->Record(message.topic, message.payload.size());
  };
  mqtt_->SetMessageHandler(record);
  mqtt_->SetPublishedHandler(record);
  EF_RETURN_IF_ERROR(mqtt_->Start());
  // The managed broker is healthy by now, so the connections come up at once; an external
  // broker may be away, and the node then serves EKV while its clients keep reconnecting.
  // An external broker gets a short wait only: the node must not hold EKV back for it.
  const auto wait = broker_ ? std::chrono::seconds(10) : std::chrono::seconds(1);
  const bool connected = mqtt_->WaitConnected(wait);
  if (!connected) {
    const std::string address = ClientOptions("pub").broker.ToString();
    if (broker_) return Status::Unavailable("cannot connect to the MQTT broker at " + address);
    log::Warn("the external MQTT broker is not reachable yet; channels are unavailable until it is",
              {{"broker", address}});
  }
  // Subscribing only registers the filter while disconnected; it is renewed on every connect.
  if (Status s = mqtt_->Subscribe(channels::AllChannelsFilter(config_.channels.tenant), 0,
                                  std::chrono::seconds(5), /*no_local=*/true);
      !s.ok() && connected) {
    return s;
  }
  publisher_ = std::make_unique<channels::ChannelPublisher>(config_.channels, store_.get(),
                                                            mqtt_.get(), SystemClock::Default());
  if (!config_.notify.empty()) {
    auto notifier = channels::KeyChangeNotifier::Create(config_.notify, config_.channels.tenant,
                                                        store_.get(), mqtt_.get());
    if (!notifier) return notifier.error();
    notifier_ = std::move(*notifier);
    EF_RETURN_IF_ERROR(notifier_->Start());
  }
  return Status::Ok();
}

Status Node::StartFunctions() {
  // Functions need the channels: their triggers and outputs are channel messages.
  if (!config_.mqtt.enabled || !config_.functions.enabled) return Status::Ok();
  runtime::PipelineManagerOptions options;
  options.store = store_.get();
  options.publisher = publisher_.get();
  options.trigger_client = ClientOptions("fn");
  options.tenant = config_.channels.tenant;
  options.functions_dir = config_.data_dir / "functions";
  options.runner.idle_timeout = std::chrono::milliseconds(config_.functions.idle_timeout_ms);
  options.runner.ready_timeout = std::chrono::milliseconds(config_.functions.ready_timeout_ms);
  auto manager = runtime::PipelineManager::Create(std::move(options));
  if (!manager) return manager.error();
  pipelines_ = std::move(*manager);
  if (Status s = pipelines_->Start(); !s.ok()) {
    return Status(s.code(), "edge functions: " + s.message());
  }
  return Status::Ok();
}

Status Node::StartFanout() {
  if (!config_.fanout.enabled) return Status::Ok();
  fanout::FanoutServiceOptions options;
  options.datapath = config_.fanout.datapath;
  options.store = store_.get();
  // The broker the node's own clients use; without channels the sensors get no quality, and
  // the fan-out still replicates what arrives.
  options.broker = mqtt_address();
  options.mqtt_username = config_.mqtt.username;
  options.mqtt_password = config_.mqtt.password;
  options.tenant = config_.channels.tenant;
  auto service = fanout::FanoutService::Create(std::move(options));
  if (!service) {
    const Status& s = service.error();
    return Status(s.code(), "stream fan-out: " + s.message());
  }
  fanout_ = std::move(*service);
  if (Status s = fanout_->Start(); !s.ok()) {
    return Status(s.code(), "stream fan-out: " + s.message());
  }
  log::Info("stream fan-out running",
            {{"datapath", std::string(fanout::DatapathName(fanout_->datapath()))}});
  return Status::Ok();
}

void Node::StopServices() noexcept {
  // The fan-out first: its control connection goes to the broker that the channels stop.
  if (fanout_) fanout_->Stop();
  StopChannels();
}

void Node::StopChannels() noexcept {
  // Functions first: their runners publish through the node's connection.
  if (pipelines_) pipelines_->Stop();
  if (notifier_) notifier_->Stop();
  if (mqtt_) mqtt_->Stop();
  if (broker_) broker_->Stop();
}

std::optional<HostPort> Node::mqtt_address() const {
  if (!config_.mqtt.enabled) return std::nullopt;
  if (config_.mqtt.external_broker) return config_.mqtt.external_broker;
  return broker_->mqtt_address();
}

Status Node::Start() {
  if (started_) return Status::Ok();
  started_at_ms_ = SystemClock::Default()->NowMillis();
  if (Status s = StartChannels(); !s.ok()) {
    StopChannels();
    return s;
  }
  // The fan-out before the functions: loading its eBPF program takes a while, and functions
  // that pick up recovered items should not run long before the node is reachable.
  if (Status s = StartFanout(); !s.ok()) {
    StopServices();
    return s;
  }
  if (Status s = StartFunctions(); !s.ok()) {
    StopServices();
    return s;
  }
  Node* self = this;
  auto http = api::HttpServer::Create(
      config_.http, store_.get(), &metrics_, [self] { return self->NodeInfoJson(); },
      api::HttpServices{publisher_.get(), monitor_.get(), pipelines_.get(), fanout_.get()});
  if (!http) {
    StopServices();
    return http.error();
  }
  http_ = std::move(*http);
  if (Status s = http_->Start(); !s.ok()) {
    StopServices();
    return Status(s.code(),
                  "HTTP listener on " + config_.http.listen.ToString() + ": " + s.message());
  }
  if (Status s = resp_->Start(); !s.ok()) {
    http_->Stop();
    StopServices();
    return Status(s.code(),
                  "RESP listener on " + config_.resp.listen.ToString() + ": " + s.message());
  }
  started_ = true;
  log::Info("listening", {{"proto", "http"}, {"addr", http_->bound_address().ToString()}});
  log::Info("listening", {{"proto", "resp"}, {"addr", resp_->bound_address().ToString()}});
  if (Status s = WriteListenFile(); !s.ok()) {
    log::Warn("cannot write the listen file", {{"error", s.message()}});
  }
  return Status::Ok();
}

void Node::Stop() noexcept {
  if (!started_) return;
  started_ = false;
  std::error_code ec;
  std::filesystem::remove(listen_file(), ec);
  // Reverse order of Start(): no new requests, then the fan-out and the channels; the store closes
  // when the node is destroyed.
  resp_->Stop();
  http_->Stop();
  StopServices();
}

nlohmann::json Node::ChannelsInfo() const {
  if (!config_.mqtt.enabled) return {{"enabled", false}};
  const channels::ChannelsConfig& channels = config_.channels;
  nlohmann::json info = {
      {"enabled", true},
      {"mqtt", mqtt_address()->ToString()},
      {"managed_broker", broker_ != nullptr},
      {"connected", mqtt_ && mqtt_->connected()},
      {"tenant", channels.tenant},
      {"topic_prefix", channels::ChannelTopic(channels.tenant, "")},
      {"namespace", channels.ns},
      {"inline_max_bytes", channels.inline_max_bytes},
      {"item_ttl_ms", channels.item_ttl_ms},
      {"max_packet_bytes", channels.max_packet_bytes},
  };
  if (broker_) {
    if (auto ws = broker_->ws_address()) info["mqtt_ws"] = ws->ToString();
    info["broker_pid"] = static_cast<int64_t>(broker_->pid());
    info["broker_restarts"] = broker_->restarts();
  }
  return info;
}

std::string Node::NodeInfoJson() const {
  nlohmann::json info = {
      {"node_id", kv::NodeIdToString(store_->node_id())},
      {"version", EDGEFLOW_VERSION},
      {"started_at_ms", started_at_ms_},
      {"last_seq", store_->LastSeq()},
      {"http", http_->bound_address().ToString()},
      {"resp", resp_->bound_address().ToString()},
      {"sync_writes", config_.kv.sync_writes},
      {"channels", ChannelsInfo()},
      {"functions",
       {{"enabled", pipelines_ != nullptr},
        {"connected", pipelines_ != nullptr && pipelines_->trigger_connected()}}},
      {"fanout",
       {{"enabled", fanout_ != nullptr},
        {"datapath", fanout_ ? nlohmann::json(fanout::DatapathName(fanout_->datapath()))
                             : nlohmann::json(nullptr)}}},
      {"limits",
       {{"max_key_bytes", config_.kv.max_key_bytes},
        {"max_value_bytes", config_.kv.max_value_bytes}}},
  };
  return info.dump();
}

Status Node::WriteListenFile() const {
  nlohmann::json info = {
      {"pid", static_cast<int64_t>(::getpid())},
      {"node_id", kv::NodeIdToString(store_->node_id())},
      {"http", http_->bound_address().ToString()},
      {"resp", resp_->bound_address().ToString()},
  };
  if (auto mqtt = mqtt_address()) info["mqtt"] = mqtt->ToString();
  if (broker_) {
    if (auto ws = broker_->ws_address()) info["mqtt_ws"] = ws->ToString();
    info["broker_pid"] = static_cast<int64_t>(broker_->pid());
  }
  return WriteFileAtomically(listen_file(), info.dump() + "\n");
}

}  // namespace edgeflow::node
