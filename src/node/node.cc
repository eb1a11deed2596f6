#include "node/node.h"

#include <unistd.h>

#include <mutex>
#include <nlohmann/json.hpp>

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

  Node* self = node.get();
  auto http = api::HttpServer::Create(node->config_.http, node->store_.get(), &node->metrics_,
                                      [self] { return self->NodeInfoJson(); });
  if (!http) return Error(std::move(http.error()));
  node->http_ = std::move(*http);
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

Status Node::Start() {
  if (started_) return Status::Ok();
  started_at_ms_ = SystemClock::Default()->NowMillis();
  if (Status s = http_->Start(); !s.ok()) {
    return Status(s.code(),
                  "HTTP listener on " + config_.http.listen.ToString() + ": " + s.message());
  }
  if (Status s = resp_->Start(); !s.ok()) {
    http_->Stop();
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
  // Reverse order of Start(): no new requests, then the store closes when the node is destroyed.
  resp_->Stop();
  http_->Stop();
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
  return WriteFileAtomically(listen_file(), info.dump() + "\n");
}

}  // namespace edgeflow::node
