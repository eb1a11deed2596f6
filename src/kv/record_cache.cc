#include "kv/record_cache.h"

#include <functional>

namespace edgeflow::kv {

RecordCache::RecordCache(size_t capacity_bytes)
    : capacity_per_shard_(capacity_bytes / kShards), shards_(kShards) {}

RecordCache::Shard& RecordCache::ShardFor(std::string_view storage_key) {
  return shards_[std::hash<std::string_view>{}(storage_key) % kShards];
}

RecordCache::RecordPtr RecordCache::Lookup(std::string_view storage_key) {
  if (!enabled()) return nullptr;
  Shard& shard = ShardFor(storage_key);
  std::lock_guard lock(shard.mu);
  auto it = shard.index.find(storage_key);
  if (it == shard.index.end()) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
  return it->second->record;
}

RecordCache::RecordPtr RecordCache::Peek(std::string_view storage_key) {
  if (!enabled()) return nullptr;
  Shard& shard = ShardFor(storage_key);
  std::lock_guard lock(shard.mu);
  auto it = shard.index.find(storage_key);
  return it == shard.index.end() ? nullptr : it->second->record;
}

uint64_t RecordCache::Epoch(std::string_view storage_key) {
  if (!enabled()) return 0;
  Shard& shard = ShardFor(storage_key);
  std::lock_guard lock(shard.mu);
  return shard.epoch;
}

void RecordCache::Fill(std::string_view storage_key, RecordPtr record, uint64_t epoch) {
  if (!enabled()) return;
  Shard& shard = ShardFor(storage_key);
  std::lock_guard lock(shard.mu);
  if (shard.epoch != epoch || shard.index.contains(storage_key)) return;
  InsertLocked(shard, storage_key, std::move(record));
}

void RecordCache::Update(std::string_view storage_key, RecordPtr record) {
  if (!enabled()) return;
  Shard& shard = ShardFor(storage_key);
  std::lock_guard lock(shard.mu);
  ++shard.epoch;
  auto it = shard.index.find(storage_key);
  if (it == shard.index.end()) {
    InsertLocked(shard, storage_key, std::move(record));
    return;
  }
  // Replace in place: one hash lookup instead of an erase and an insert.
  Entry& entry = *it->second;
  const size_t new_bytes = storage_key.size() + record->size() + kEntryOverhead;
  if (new_bytes > capacity_per_shard_) {
    EraseLocked(shard, storage_key);
    return;
  }
  shard.bytes = shard.bytes - entry.record->size() + record->size();
  entry.record = std::move(record);
  shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
  EvictLocked(shard);
}

void RecordCache::Erase(std::string_view storage_key) {
  if (!enabled()) return;
  Shard& shard = ShardFor(storage_key);
  std::lock_guard lock(shard.mu);
  ++shard.epoch;
  EraseLocked(shard, storage_key);
}

size_t RecordCache::size_bytes() {
  size_t total = 0;
  for (Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    total += shard.bytes;
  }
  return total;
}

void RecordCache::InsertLocked(Shard& shard, std::string_view storage_key, RecordPtr record) {
  const size_t bytes = storage_key.size() + record->size() + kEntryOverhead;
  if (bytes > capacity_per_shard_) return;
  shard.lru.push_front(Entry{std::string(storage_key), std::move(record)});
  shard.index.emplace(shard.lru.front().key, shard.lru.begin());
  shard.bytes += bytes;
  EvictLocked(shard);
}

void RecordCache::EvictLocked(Shard& shard) {
  while (shard.bytes > capacity_per_shard_) {
    Entry& victim = shard.lru.back();
    shard.bytes -= victim.key.size() + victim.record->size() + kEntryOverhead;
    shard.index.erase(victim.key);
    shard.lru.pop_back();
  }
}

void RecordCache::EraseLocked(Shard& shard, std::string_view storage_key) {
  auto it = shard.index.find(storage_key);
  if (it == shard.index.end()) return;
  Entry& entry = *it->second;
  shard.bytes -= entry.key.size() + entry.record->size() + kEntryOverhead;
  auto node = it->second;
  shard.index.erase(it);
  shard.lru.erase(node);
}

}  // namespace edgeflow::kv
