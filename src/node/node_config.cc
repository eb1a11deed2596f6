#include "node/node_config.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "channels/channel_name.h"

namespace edgeflow::node {
namespace {

// Walks a YAML mapping, rejecting keys that no reader asked for, so that a typo in a config file
// is an error instead of a silently ignored setting.
class Section {
 public:
  Section(const YAML::Node& node, std::string path) : node_(node), path_(std::move(path)) {}

  Status CheckShape() const {
    if (node_ && !node_.IsNull() && !node_.IsMap()) {
      return Status::InvalidArgument(Name("") + " must be a mapping");
    }
    return Status::Ok();
  }

  template <typename T>
  Status Read(const std::string& key, T* out) {
    known_.insert(key);
    if (!node_ || !node_.IsMap() || !node_[key]) return Status::Ok();
    try {
      *out = node_[key].as<T>();
    } catch (const YAML::Exception&) {
      return Status::InvalidArgument(Name(key) + " has a bad value");
    }
    return Status::Ok();
  }

  // A byte count, or "auto" (stored as NodeConfig::kAutomaticSize).
  Status ReadSizeOrAuto(const std::string& key, size_t* out) {
    known_.insert(key);
    if (!node_ || !node_.IsMap() || !node_[key]) return Status::Ok();
    if (node_[key].IsScalar() && node_[key].Scalar() == "auto") {
      *out = NodeConfig::kAutomaticSize;
      return Status::Ok();
    }
    return Read(key, out);
  }

  Status ReadAddress(const std::string& key, HostPort* out) {
    std::string text;
    EF_RETURN_IF_ERROR(Read(key, &text));
    if (text.empty()) return Status::Ok();
    auto parsed = ParseHostPort(text);
    if (!parsed) return Status::InvalidArgument(Name(key) + ": " + parsed.error().message());
    *out = *parsed;
    return Status::Ok();
  }

  // For keys read by other means (lists).
  void MarkKnown(const std::string& key) { known_.insert(key); }

  Section Child(const std::string& key) {
    known_.insert(key);
    return Section(node_ && node_.IsMap() ? node_[key] : YAML::Node(), Name(key));
  }

  Status CheckUnknown() const {
    if (!node_ || !node_.IsMap()) return Status::Ok();
    for (const auto& entry : node_) {
      std::string key = entry.first.as<std::string>("");
      if (!known_.contains(key)) {
        return Status::InvalidArgument("unknown config key '" + Name(key) + "'");
      }
    }
    return Status::Ok();
  }

 private:
  // The dotted name of `key` in this section ("http.listen"), or of the section itself.
  std::string Name(const std::string& key) const {
    if (path_.empty()) return key.empty() ? "the top level" : key;
    return key.empty() ? path_ : path_ + "." + key;
  }

  YAML::Node node_;
  std::string path_;
  std::set<std::string> known_;
};

Status ReadLog(Section section, NodeConfig* config) {
  EF_RETURN_IF_ERROR(section.CheckShape());
  std::string level, format;
  EF_RETURN_IF_ERROR(section.Read("level", &level));
  EF_RETURN_IF_ERROR(section.Read("format", &format));
  if (!level.empty() && !log::ParseLevel(level, &config->log_level)) {
    return Status::InvalidArgument("log.level must be debug, info, warn or error");
  }
  if (!format.empty() && !log::ParseFormat(format, &config->log_format)) {
    return Status::InvalidArgument("log.format must be text or json");
  }
  return section.CheckUnknown();
}

Status ReadFunctions(Section section, FunctionsConfig* functions) {
  EF_RETURN_IF_ERROR(section.CheckShape());
  EF_RETURN_IF_ERROR(section.Read("enabled", &functions->enabled));
  EF_RETURN_IF_ERROR(section.Read("idle_timeout_ms", &functions->idle_timeout_ms));
  EF_RETURN_IF_ERROR(section.Read("ready_timeout_ms", &functions->ready_timeout_ms));
  for (auto [name, value] : {std::pair{"idle_timeout_ms", functions->idle_timeout_ms},
                             std::pair{"ready_timeout_ms", functions->ready_timeout_ms}}) {
    if (value < 1 || value > 86'400'000) {
      return Status::InvalidArgument(std::string("functions.") + name +
                                     " must be between 1 and 86400000");
    }
  }
  return section.CheckUnknown();
}

Status ReadFanout(Section section, FanoutConfig* fanout) {
  EF_RETURN_IF_ERROR(section.CheckShape());
  EF_RETURN_IF_ERROR(section.Read("enabled", &fanout->enabled));
  std::string datapath;
  EF_RETURN_IF_ERROR(section.Read("datapath", &datapath));
  if (!datapath.empty()) {
    auto parsed = fanout::ParseDatapath(datapath);
    if (!parsed) return Status::InvalidArgument("fanout.datapath must be auto, ebpf or userspace");
    fanout->datapath = *parsed;
  }
  return section.CheckUnknown();
}

}  // namespace

Status ValidateKvLimits(const kv::StoreOptions& kv) {
  if (kv.max_key_bytes == 0 || kv.max_key_bytes > (1 << 20)) {
    return Status::InvalidArgument("kv.max_key_bytes must be between 1 and 1048576");
  }
  if (kv.max_value_bytes == 0 || kv.max_value_bytes > (size_t{1} << 30)) {
    return Status::InvalidArgument("kv.max_value_bytes must be between 1 and 1073741824");
  }
  return Status::Ok();
}

namespace {

Status ReadKv(Section section, kv::StoreOptions* kv) {
  EF_RETURN_IF_ERROR(section.CheckShape());
  EF_RETURN_IF_ERROR(section.Read("sync_writes", &kv->sync_writes));
  EF_RETURN_IF_ERROR(section.Read("max_key_bytes", &kv->max_key_bytes));
  EF_RETURN_IF_ERROR(section.Read("max_value_bytes", &kv->max_value_bytes));
  EF_RETURN_IF_ERROR(section.Read("blob_threshold_bytes", &kv->blob_threshold_bytes));
  EF_RETURN_IF_ERROR(section.Read("block_cache_bytes", &kv->block_cache_bytes));
  EF_RETURN_IF_ERROR(section.ReadSizeOrAuto("record_cache_bytes", &kv->record_cache_bytes));
  EF_RETURN_IF_ERROR(section.Read("write_buffer_bytes", &kv->write_buffer_bytes));
  int64_t tombstone_s = kv->tombstone_retention_ms / 1000;
  int64_t changelog_s = kv->changelog_retention_ms / 1000;
  EF_RETURN_IF_ERROR(section.Read("tombstone_retention_seconds", &tombstone_s));
  EF_RETURN_IF_ERROR(section.Read("changelog_retention_seconds", &changelog_s));
  EF_RETURN_IF_ERROR(section.Read("changelog_max_entries", &kv->changelog_max_entries));
  if (tombstone_s <= 0 || changelog_s <= 0) {
    return Status::InvalidArgument("kv retention periods must be positive");
  }
  kv->tombstone_retention_ms = tombstone_s * 1000;
  kv->changelog_retention_ms = changelog_s * 1000;
  EF_RETURN_IF_ERROR(ValidateKvLimits(*kv));
  if (kv->changelog_max_entries == 0) {
    return Status::InvalidArgument("kv.changelog_max_entries must be positive");
  }
  return section.CheckUnknown();
}

Status ReadHttp(Section section, api::HttpServerConfig* http) {
  EF_RETURN_IF_ERROR(section.CheckShape());
  EF_RETURN_IF_ERROR(section.ReadAddress("listen", &http->listen));
  EF_RETURN_IF_ERROR(section.Read("io_threads", &http->io_threads));
  EF_RETURN_IF_ERROR(section.Read("max_connections", &http->max_connections));
  EF_RETURN_IF_ERROR(section.Read("idle_timeout_seconds", &http->idle_timeout_seconds));
  if (http->io_threads > 256) {
    return Status::InvalidArgument("http.io_threads must be between 0 (automatic) and 256");
  }
  return section.CheckUnknown();
}

Status ReadResp(Section section, api::RespServerConfig* resp) {
  EF_RETURN_IF_ERROR(section.CheckShape());
  EF_RETURN_IF_ERROR(section.ReadAddress("listen", &resp->listen));
  EF_RETURN_IF_ERROR(section.Read("io_threads", &resp->io_threads));
  EF_RETURN_IF_ERROR(section.Read("max_connections", &resp->max_connections));
  EF_RETURN_IF_ERROR(section.Read("default_namespace", &resp->default_namespace));
  if (resp->io_threads > 256) {
    return Status::InvalidArgument("resp.io_threads must be between 0 (automatic) and 256");
  }
  if (Status s = kv::ValidateWritableNamespace(resp->default_namespace); !s.ok()) {
    return Status::InvalidArgument("resp.default_namespace: " + s.message());
  }
  return section.CheckUnknown();
}

// An address, or "off" for none.
Status ReadOptionalAddress(Section& section, const std::string& key, std::optional<HostPort>* out) {
  std::string text;
  EF_RETURN_IF_ERROR(section.Read(key, &text));
  if (text.empty()) return Status::Ok();
  if (text == "off") {
    out->reset();
    return Status::Ok();
  }
  HostPort address;
  EF_RETURN_IF_ERROR(section.ReadAddress(key, &address));
  *out = address;
  return Status::Ok();
}

Status ReadMqtt(Section section, MqttConfig* mqtt) {
  EF_RETURN_IF_ERROR(section.CheckShape());
  channels::BrokerConfig& broker = mqtt->broker;
  EF_RETURN_IF_ERROR(section.Read("enabled", &mqtt->enabled));
  EF_RETURN_IF_ERROR(section.ReadAddress("listen", &broker.listen));
  EF_RETURN_IF_ERROR(ReadOptionalAddress(section, "ws_listen", &broker.ws_listen));
  std::string external;
  EF_RETURN_IF_ERROR(section.Read("external_broker", &external));
  if (!external.empty()) {
    auto parsed = ParseBrokerUrl(external);
    if (!parsed)
      return Status::InvalidArgument("mqtt.external_broker: " + parsed.error().message());
    mqtt->external_broker = *parsed;
  }
  EF_RETURN_IF_ERROR(section.Read("username", &mqtt->username));
  EF_RETURN_IF_ERROR(section.Read("password", &mqtt->password));
  std::string binary, password_file, acl_file;
  EF_RETURN_IF_ERROR(section.Read("mosquitto_binary", &binary));
  if (!binary.empty()) broker.mosquitto_binary = binary;
  EF_RETURN_IF_ERROR(section.Read("password_file", &password_file));
  if (!password_file.empty()) broker.password_file = password_file;
  EF_RETURN_IF_ERROR(section.Read("acl_file", &acl_file));
  if (!acl_file.empty()) broker.acl_file = acl_file;
  EF_RETURN_IF_ERROR(section.Read("max_packet_bytes", &broker.max_packet_bytes));
  EF_RETURN_IF_ERROR(section.Read("max_queued_messages", &broker.max_queued_messages));
  EF_RETURN_IF_ERROR(section.Read("max_inflight_messages", &broker.max_inflight_messages));
  EF_RETURN_IF_ERROR(section.Read("autosave_seconds", &broker.autosave_seconds));
  EF_RETURN_IF_ERROR(
      section.Read("persistent_client_expiration_days", &broker.persistent_client_expiration_days));
  // Everything but the directory, which FinalizeConfig derives; port 0 is resolved at start.
  channels::BrokerConfig check = broker;
  check.dir = "/";
  if (Status s = channels::ValidateBrokerConfig(check); !s.ok()) {
    return Status::InvalidArgument("mqtt: " + s.message());
  }
  return section.CheckUnknown();
}

Status ReadNotifyRules(const YAML::Node& node, std::vector<channels::NotifyRule>* rules) {
  if (!node || node.IsNull()) return Status::Ok();
  if (!node.IsSequence()) return Status::InvalidArgument("channels.notify must be a list");
  rules->clear();
  for (size_t i = 0; i < node.size(); ++i) {
    Section rule(node[i], "channels.notify[" + std::to_string(i) + "]");
    EF_RETURN_IF_ERROR(rule.CheckShape());
    channels::NotifyRule parsed;
    EF_RETURN_IF_ERROR(rule.Read("namespace", &parsed.ns));
    EF_RETURN_IF_ERROR(rule.Read("prefix", &parsed.prefix));
    EF_RETURN_IF_ERROR(rule.Read("channel", &parsed.channel));
    EF_RETURN_IF_ERROR(rule.CheckUnknown());
    rules->push_back(std::move(parsed));
  }
  return channels::ValidateNotifyRules(*rules);
}

Status ReadChannels(Section section, const YAML::Node& node, NodeConfig* config) {
  EF_RETURN_IF_ERROR(section.CheckShape());
  channels::ChannelsConfig& channels = config->channels;
  EF_RETURN_IF_ERROR(section.Read("tenant", &channels.tenant));
  EF_RETURN_IF_ERROR(section.Read("namespace", &channels.ns));
  EF_RETURN_IF_ERROR(section.Read("inline_max_bytes", &channels.inline_max_bytes));
  int64_t ttl_s = channels.item_ttl_ms / 1000;
  EF_RETURN_IF_ERROR(section.Read("item_ttl_seconds", &ttl_s));
  if (ttl_s < 0) return Status::InvalidArgument("channels.item_ttl_seconds must not be negative");
  channels.item_ttl_ms = ttl_s * 1000;
  int64_t timeout_ms = channels.publish_timeout.count();
  EF_RETURN_IF_ERROR(section.Read("publish_timeout_ms", &timeout_ms));
  if (timeout_ms <= 0 || timeout_ms > 600'000) {
    return Status::InvalidArgument("channels.publish_timeout_ms must be between 1 and 600000");
  }
  channels.publish_timeout = std::chrono::milliseconds(timeout_ms);
  section.MarkKnown("notify");  // a list, read below
  EF_RETURN_IF_ERROR(
      ReadNotifyRules(node && node.IsMap() ? node["notify"] : YAML::Node(), &config->notify));
  return section.CheckUnknown();
}

}  // namespace

Result<HostPort> ParseBrokerUrl(std::string_view text) {
  std::string_view rest = text;
  bool url = false;
  for (std::string_view scheme : {"mqtt://", "tcp://"}) {
    if (rest.starts_with(scheme)) {
      rest.remove_prefix(scheme.size());
      url = true;
    }
  }
  for (std::string_view scheme : {"mqtts://", "ssl://", "ws://", "wss://"}) {
    if (rest.starts_with(scheme)) {
      return Error(Status::InvalidArgument("'" + std::string(text) +
                                           "': only plain MQTT over TCP (mqtt://) is supported"));
    }
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty()) {
    return Error(Status::InvalidArgument("'" + std::string(text) + "' names no broker host"));
  }
  // A URL may leave the port out: "mqtt://host", "mqtt://[::1]".
  const bool has_port = rest.back() != ']' && rest.find(':') != std::string_view::npos;
  std::string with_port(rest);
  if (url && !has_port) with_port += ":1883";
  auto parsed = ParseHostPort(with_port);
  if (!parsed) return Error(std::move(parsed.error()));
  if (parsed->port == 0) return Error(Status::InvalidArgument("the broker's port must not be 0"));
  return *parsed;
}

Status ValidateChannels(const NodeConfig& config) {
  const channels::ChannelsConfig& channels = config.channels;
  if (Status s = channels::ValidateTenant(channels.tenant); !s.ok()) {
    return Status::InvalidArgument("channels.tenant: " + s.message());
  }
  if (Status s = kv::ValidateWritableNamespace(channels.ns); !s.ok()) {
    return Status::InvalidArgument("channels.namespace: " + s.message());
  }
  const size_t packet = config.mqtt.broker.max_packet_bytes;
  if (packet <= channels::kMessageOverheadBytes ||
      channels.inline_max_bytes > packet - channels::kMessageOverheadBytes) {
    return Status::InvalidArgument(
        "channels.inline_max_bytes must leave room for the message envelope in the broker's "
        "packet limit (mqtt.max_packet_bytes - " +
        std::to_string(channels::kMessageOverheadBytes) + ")");
  }
  return Status::Ok();
}

Status ParseConfigYaml(std::string_view yaml_text, std::string_view source, NodeConfig* config) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(std::string(source) + ": invalid YAML: " + e.what());
  }
  auto in_source = [&](Status s) {
    return s.ok() ? s : Status(s.code(), std::string(source) + ": " + s.message());
  };
  if (root.IsNull()) return Status::Ok();  // an empty file keeps the defaults
  Section top(root, "");
  if (!root.IsMap()) return in_source(Status::InvalidArgument("the top level must be a mapping"));
  std::string data_dir;
  EF_RETURN_IF_ERROR(in_source(top.Read("data_dir", &data_dir)));
  if (!data_dir.empty()) config->data_dir = data_dir;
  EF_RETURN_IF_ERROR(in_source(ReadLog(top.Child("log"), config)));
  EF_RETURN_IF_ERROR(in_source(ReadKv(top.Child("kv"), &config->kv)));
  EF_RETURN_IF_ERROR(in_source(ReadHttp(top.Child("http"), &config->http)));
  EF_RETURN_IF_ERROR(in_source(ReadResp(top.Child("resp"), &config->resp)));
  EF_RETURN_IF_ERROR(in_source(ReadMqtt(top.Child("mqtt"), &config->mqtt)));
  EF_RETURN_IF_ERROR(in_source(ReadChannels(top.Child("channels"), root["channels"], config)));
  EF_RETURN_IF_ERROR(in_source(ValidateChannels(*config)));
  EF_RETURN_IF_ERROR(in_source(ReadFunctions(top.Child("functions"), &config->functions)));
  EF_RETURN_IF_ERROR(in_source(ReadFanout(top.Child("fanout"), &config->fanout)));
  return in_source(top.CheckUnknown());
}

Status LoadConfigFile(const std::filesystem::path& path, NodeConfig* config) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument("cannot read config file " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfigYaml(text.str(), path.string(), config);
}

void FinalizeConfig(NodeConfig* config) {
  // Automatic I/O threads: half the cores. On small edge boxes the other half is needed by RocksDB
  // (flushes, compactions) and by the clients themselves; more I/O threads than that only add
  // contention (measured with redis-benchmark on 2 cores: 1 thread beats 2).
  const size_t automatic = std::max<size_t>(1, std::thread::hardware_concurrency() / 2);
  if (config->http.io_threads == 0) config->http.io_threads = automatic;
  if (config->resp.io_threads == 0) config->resp.io_threads = automatic;
  // Automatic record cache: an eighth of the machine's memory, at least 64 MiB. Edge boxes range
  // from 1 GiB boards to 64 GiB servers; a fixed size is either too big for the first or leaves
  // the second reading hot keys from RocksDB. (Redis, the usual comparison, keeps everything.)
  if (config->kv.record_cache_bytes == NodeConfig::kAutomaticSize) {
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page_size = sysconf(_SC_PAGE_SIZE);
    const uint64_t memory = pages > 0 && page_size > 0 ? uint64_t(pages) * uint64_t(page_size) : 0;
    config->kv.record_cache_bytes = std::max<uint64_t>(memory / 8, uint64_t{64} << 20);
  }
  config->kv.dir = config->data_dir / "kv";
  config->mqtt.broker.dir = config->data_dir / "mosquitto";
  config->channels.max_packet_bytes = config->mqtt.broker.max_packet_bytes;
  // Without fsync a commit is a WAL append of microseconds: cheaper on the I/O thread than a hand-
  // off. With fsync it takes milliseconds, which the I/O thread should spend serving reads.
  config->resp.commit_on_io_thread = !config->kv.sync_writes;
  config->http.max_key_bytes = config->kv.max_key_bytes;
  config->http.max_value_bytes = config->kv.max_value_bytes;
  config->resp.max_key_bytes = config->kv.max_key_bytes;
  config->resp.max_value_bytes = config->kv.max_value_bytes;
}

}  // namespace edgeflow::node
