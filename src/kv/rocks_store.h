// RocksStore: the RocksDB implementation of Store (see store.h for the contract).
//
// Column families (docs/architecture.md, "On disk"):
//   default    node metadata (node id, change-log trim point)
//   kv         storage key -> item record (metadata + small values + tombstones)
//   blobs      storage key -> large value bytes; integrated blob files, so compactions move only
//              small blob references, not the multi-megabyte values themselves
//   changelog  big-endian seq -> change record
//
// Writes go through a CommitQueue: one thread at a time builds a WriteBatch for a whole group of
// requests (reading the current records it needs, with an overlay for keys written earlier in the
// same group), assigns versions and sequence numbers, and writes it once.
#pragma once

#include <rocksdb/db.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "kv/commit_queue.h"
#include "kv/hybrid_clock.h"
#include "kv/record_cache.h"
#include "kv/record_codec.h"
#include "kv/store.h"

namespace edgeflow::kv {

class ExpiryCompactionFilter;

class RocksStore final : public Store {
 public:
  static Result<std::unique_ptr<Store>> Open(StoreOptions options);
  ~RocksStore() override;

  NodeId node_id() const override { return node_id_; }
  Result<WriteResult> Put(std::string_view ns, std::string_view key, std::string_view value,
                          const PutOptions& options) override;
  Result<Item> Get(std::string_view ns, std::string_view key) override;
  Result<ItemMeta> Head(std::string_view ns, std::string_view key) override;
  Result<WriteResult> Delete(std::string_view ns, std::string_view key,
                             const DeleteOptions& options) override;
  Result<WriteResult> SetExpiry(std::string_view ns, std::string_view key,
                                std::optional<int64_t> expires_at_ms) override;
  Result<std::vector<Result<WriteResult>>> Apply(std::span<const WriteOp> ops) override;
  void ApplyAsync(std::span<const WriteOp> ops, ApplyCallback done) override;
  std::vector<Result<SharedItem>> MultiGet(std::string_view ns,
                                           std::span<const std::string_view> keys) override;
  Result<ListPage> List(std::string_view ns, std::string_view prefix, std::string_view start_after,
                        size_t limit) override;
  Result<ChangePage> ReadChanges(uint64_t from_seq, std::string_view ns, std::string_view prefix,
                                 size_t max_scan) override;
  uint64_t LastSeq() const override { return last_seq_.load(std::memory_order_acquire); }
  uint64_t AddCommitListener(std::function<void(uint64_t)> on_commit) override;
  void RemoveCommitListener(uint64_t id) override;
  StoreStats Stats() override;
  Status CompactAll() override;
  Status TrimChangeLog() override;

 private:
  // One Apply() call waiting in the commit queue.
  struct WriteRequest {
    std::span<const WriteOp> ops;
    std::vector<Result<WriteResult>> results;
    // Internal, instead of ops: delete these expired records and their blobs, each only if it
    // still has the version the compaction saw (no change record).
    std::vector<std::pair<std::string, Version>> reaps;
  };
  // The current state of a key as the committing group sees it.
  struct KeyState {
    bool written = false;  // this group wrote the key: the cache gets the new state after commit
    // The record bytes (shared with the cache); null when no record (live, expired or tombstone)
    // is stored.
    RecordCache::RecordPtr encoded;
    Record record;  // decoded; views into *encoded
  };
  using Overlay = std::unordered_map<std::string, KeyState>;

  explicit RocksStore(StoreOptions options);
  Status OpenDb();
  Status LoadOrCreateNodeId();
  Status RecoverSequence();

  void CommitGroup(const std::vector<WriteRequest*>& group);
  Result<WriteResult> PrepareOp(const WriteOp& op, rocksdb::WriteBatch* batch, Overlay* overlay,
                                uint64_t* next_seq);
  void PrepareReap(const std::string& skey, const Version& version, rocksdb::WriteBatch* batch,
                   Overlay* overlay);
  // The current state of `skey` for the committing group: from the overlay, else the cache, else
  // RocksDB (then kept in the overlay). With `need_record` false the caller only needs to know
  // whether a large value must be deleted; if there is none, an unknown state is returned without
  // reading the record.
  Result<const KeyState*> LoadState(const std::string& skey, Overlay* overlay, bool need_record);
  bool BlobMayExist(const std::string& skey);
  void StoreState(const std::string& skey, std::string encoded, Overlay* overlay);
  // After a commit: the cache gets the new records of the keys the group wrote.
  void PublishToCache(Overlay* overlay, bool committed);
  Result<WriteResult> SubmitOne(const WriteOp& op);

  // Reads the live record of a key; NotFound for absent, deleted or expired.
  Result<Item> ReadItem(std::string_view ns, std::string_view key, bool with_value);
  // The stored record of a key (any state), from the cache or RocksDB (filling the cache);
  // nullptr if there is none.
  Result<RecordCache::RecordPtr> ReadRecord(const std::string& skey);
  Result<uint64_t> FindTrimPoint(uint64_t last_seq);
  void OnExpiredBlob(const rocksdb::Slice& storage_key, const Version& version);
  // Deletes (record + blob) the expired large values that compactions reported.
  void ReapExpiredBlobs();
  void MaintenanceLoop();

  StoreOptions options_;
  const Clock* clock_;
  HybridClock hlc_;
  NodeId node_id_ = 0;

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // owned; destroyed before db_
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* kv_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* blobs_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* changelog_cf_ = nullptr;
  std::shared_ptr<ExpiryCompactionFilter> expiry_filter_;
  rocksdb::WriteOptions write_options_;
  RecordCache cache_;

  CommitQueue<WriteRequest> commit_queue_;
  // Written only by the committing thread (one at a time); read anywhere.
  std::atomic<uint64_t> last_seq_{0};
  std::atomic<uint64_t> first_seq_{0};  // oldest retained change (0 = log empty)
  std::mutex trim_mu_;                  // serialises change-log trimming

  std::mutex listeners_mu_;
  std::map<uint64_t, std::function<void(uint64_t)>> listeners_;  // GUARDED_BY(listeners_mu_)
  uint64_t next_listener_id_ = 1;                                // GUARDED_BY(listeners_mu_)

  // Expired items with blob values, reported by compactions, to be deleted by the maintenance
  // thread.
  std::mutex maintenance_mu_;
  std::condition_variable maintenance_cv_;
  std::map<std::string, Version> expired_blobs_;  // GUARDED_BY(maintenance_mu_)
  bool stopping_ = false;                         // GUARDED_BY(maintenance_mu_)
  std::thread maintenance_thread_;
};

}  // namespace edgeflow::kv
