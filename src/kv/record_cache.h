// RecordCache: the current item records of recently used keys, in memory, in front of RocksDB.
//
// Use case: hot keys (the latest frame of a camera, a function's context, a dashboard's counters)
// are read far more often than written; a memtable or block-cache lookup costs microseconds of
// skiplist and block walking, a hash lookup here a fraction of that. The store's write path also
// reads it instead of RocksDB when it needs a key's current record.
//
// Behaviour: the store's committing thread writes every record it commits through (Update) or
// drops it (Erase), after the RocksDB write and before acknowledging it. Readers that miss fill
// the cache from RocksDB with Fill(), which is refused if any write touched the key's shard since
// the reader took Epoch() before its RocksDB read: so a slow reader can never put back a record
// that a write has replaced. Entries are records exactly as stored (metadata + inline value, or
// just metadata for large values), evicted least-recently-used per shard when over capacity.
//
// Thread-safe; sharded by key hash, one mutex per shard.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace edgeflow::kv {

class RecordCache {
 public:
  using RecordPtr = std::shared_ptr<const std::string>;

  // capacity_bytes = 0 disables the cache (every lookup misses, fills and updates do nothing).
  explicit RecordCache(size_t capacity_bytes);

  RecordPtr Lookup(std::string_view storage_key);
  // Lookup() for the write path: does not count as a use (the write that follows refreshes the
  // entry anyway) and is not counted in hits/misses.
  RecordPtr Peek(std::string_view storage_key);
  uint64_t Epoch(std::string_view storage_key);
  // Inserts a record read from RocksDB, unless a write reached the shard since `epoch`.
  void Fill(std::string_view storage_key, RecordPtr record, uint64_t epoch);
  // The committing thread: the key's record is now `record`.
  void Update(std::string_view storage_key, RecordPtr record);
  // The committing thread: the key has no record any more (or one not worth caching).
  void Erase(std::string_view storage_key);

  bool enabled() const { return capacity_per_shard_ > 0; }
  size_t size_bytes();
  uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  uint64_t misses() const { return misses_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kShards = 64;
  static constexpr size_t kEntryOverhead = 96;  // list node, hash node, shared_ptr control block

  struct Entry {
    std::string key;
    RecordPtr record;
  };
  struct Shard {
    std::mutex mu;
    std::list<Entry> lru;  // front = most recently used
    std::unordered_map<std::string_view, std::list<Entry>::iterator> index;  // views into lru
    size_t bytes = 0;
    uint64_t epoch = 0;
  };

  Shard& ShardFor(std::string_view storage_key);
  // REQUIRES: shard.mu held.
  void InsertLocked(Shard& shard, std::string_view storage_key, RecordPtr record);
  void EraseLocked(Shard& shard, std::string_view storage_key);
  void EvictLocked(Shard& shard);

  size_t capacity_per_shard_;
  std::vector<Shard> shards_;
  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> misses_{0};
};

}  // namespace edgeflow::kv
