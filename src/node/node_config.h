// NodeConfig: everything a node is configured with. Built from embedded defaults, then a YAML
// file (--config), then command-line flags; the node's components each get their own plain
// config struct from it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "api/http_server.h"
#include "api/resp_server.h"
#include "common/log.h"
#include "common/status.h"
#include "kv/store.h"

#ifndef EDGEFLOW_VERSION
#define EDGEFLOW_VERSION "0.0.0"
#endif

namespace edgeflow::node {

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
  kv::StoreOptions kv;              // kv.dir is derived: data_dir / "kv"
  api::HttpServerConfig http;
  api::RespServerConfig resp;
};

// Reads a YAML config file over `config`. Unknown keys and bad values are errors that name the key.
Status LoadConfigFile(const std::filesystem::path& path, NodeConfig* config);
// Parses YAML text over `config` (what LoadConfigFile does after reading the file).
Status ParseConfigYaml(std::string_view yaml_text, std::string_view source, NodeConfig* config);
// The key and value size limits (config files and flags alike).
Status ValidateKvLimits(const kv::StoreOptions& kv);
// Copies shared settings (limits, paths) into the component configs; call after all overrides.
void FinalizeConfig(NodeConfig* config);

}  // namespace edgeflow::node
