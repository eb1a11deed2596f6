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
// the reader's missed Lookup (or Epoch()) before its RocksDB read: so a slow reader can never put
// back a record that a write has replaced. Entries are records exactly as stored (metadata +
// inline value, or just metadata for large values).
//
// Layout, for few cache misses per lookup: 64 shards, each an open-addressing table (linear
// probing, backward-shift deletion) of {hash, entry} slots, so a probe compares hashes in one
// contiguous array and touches the entry only on a hash match. Eviction is CLOCK (second chance):
// a hit sets the entry's reference bit, and the clock hand sweeping the slots evicts the first
// entry whose bit is clear. That approximates LRU without moving list nodes on every hit.
//
// Thread-safe; sharded by key hash, one mutex per shard.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace edgeflow::kv {

class RecordCache {
 public:
  using RecordPtr = std::shared_ptr<const std::string>;

  // capacity_bytes = 0 disables the cache (every lookup misses, fills and updates do nothing).
  explicit RecordCache(size_t capacity_bytes);
  ~RecordCache();
  RecordCache(const RecordCache&) = delete;
  RecordCache& operator=(const RecordCache&) = delete;

  // On a miss, stores the shard's epoch in `*epoch_on_miss` (when given) for a later Fill().
  RecordPtr Lookup(std::string_view storage_key, uint64_t* epoch_on_miss = nullptr);
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
  static constexpr int kShardBits = 6;
  static constexpr size_t kShards = size_t{1} << kShardBits;
  static constexpr size_t kEntryOverhead = 96;  // entry, slot, shared_ptr control block
  static constexpr size_t kNotFound = ~size_t{0};

  struct Entry {
    std::string key;
    RecordPtr record;
    bool referenced = false;  // CLOCK bit: used since the hand last passed
  };
  struct Slot {
    uint64_t hash = 0;
    std::unique_ptr<Entry> entry;  // null = empty slot
  };
  struct Shard {
    std::mutex mu;
    std::vector<Slot> slots;  // a power of two in size, at most 3/4 full
    size_t count = 0;
    size_t bytes = 0;
    size_t hand = 0;  // CLOCK hand: the next slot eviction looks at
    uint64_t epoch = 0;
  };

  static uint64_t Hash(std::string_view storage_key);
  Shard& ShardFor(uint64_t hash) { return shards_[hash >> (64 - kShardBits)]; }
  static size_t Charge(std::string_view key, const RecordPtr& record) {
    return key.size() + record->size() + kEntryOverhead;
  }

  // REQUIRES: shard.mu held (all below).
  static size_t FindLocked(const Shard& shard, uint64_t hash, std::string_view storage_key);
  void InsertLocked(Shard& shard, uint64_t hash, std::string_view storage_key, RecordPtr record);
  static void RemoveLocked(Shard& shard, size_t index);  // also takes its bytes off
  // Evicts until `incoming` more bytes fit in the shard.
  static void MakeRoomLocked(Shard& shard, size_t incoming, size_t capacity);
  static void GrowLocked(Shard& shard);

  size_t capacity_per_shard_;
  std::vector<Shard> shards_;
  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> misses_{0};
};

}  // namespace edgeflow::kv
