#include "node/node_config.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

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
  if (Status s = kv::ValidateNamespace(resp->default_namespace); !s.ok()) {
    return Status::InvalidArgument("resp.default_namespace: " + s.message());
  }
  return section.CheckUnknown();
}

}  // namespace

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
  // Without fsync a commit is a WAL append of microseconds: cheaper on the I/O thread than a hand-
  // off. With fsync it takes milliseconds, which the I/O thread should spend serving reads.
  config->resp.commit_on_io_thread = !config->kv.sync_writes;
  config->http.max_key_bytes = config->kv.max_key_bytes;
  config->http.max_value_bytes = config->kv.max_value_bytes;
  config->resp.max_key_bytes = config->kv.max_key_bytes;
  config->resp.max_value_bytes = config->kv.max_value_bytes;
}

}  // namespace edgeflow::node
