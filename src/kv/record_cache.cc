#include "kv/record_cache.h"

#include <functional>
#include <utility>

namespace edgeflow::kv {
namespace {

constexpr size_t kInitialSlots = 16;

}  // namespace

RecordCache::RecordCache(size_t capacity_bytes)
    : capacity_per_shard_(capacity_bytes / kShards), shards_(kShards) {}

RecordCache::~RecordCache() = default;

uint64_t RecordCache::Hash(std::string_view storage_key) {
  return std::hash<std::string_view>{}(storage_key);
}

RecordCache::RecordPtr RecordCache::Lookup(std::string_view storage_key, uint64_t* epoch_on_miss) {
  if (!enabled()) {
    if (epoch_on_miss) *epoch_on_miss = 0;
    return nullptr;
  }
  const uint64_t hash = Hash(storage_key);
  Shard& shard = ShardFor(hash);
  std::lock_guard lock(shard.mu);
  const size_t index = FindLocked(shard, hash, storage_key);
  if (index == kNotFound) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    if (epoch_on_miss) *epoch_on_miss = shard.epoch;
    return nullptr;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  Entry& entry = *shard.slots[index].entry;
  entry.referenced = true;
  return entry.record;
}

RecordCache::RecordPtr RecordCache::Peek(std::string_view storage_key) {
  if (!enabled()) return nullptr;
  const uint64_t hash = Hash(storage_key);
  Shard& shard = ShardFor(hash);
  std::lock_guard lock(shard.mu);
  const size_t index = FindLocked(shard, hash, storage_key);
  return index == kNotFound ? nullptr : shard.slots[index].entry->record;
}

uint64_t RecordCache::Epoch(std::string_view storage_key) {
  if (!enabled()) return 0;
  Shard& shard = ShardFor(Hash(storage_key));
  std::lock_guard lock(shard.mu);
  return shard.epoch;
}

void RecordCache::Fill(std::string_view storage_key, RecordPtr record, uint64_t epoch) {
  if (!enabled()) return;
  const uint64_t hash = Hash(storage_key);
  Shard& shard = ShardFor(hash);
  std::lock_guard lock(shard.mu);
  if (shard.epoch != epoch || FindLocked(shard, hash, storage_key) != kNotFound) return;
  InsertLocked(shard, hash, storage_key, std::move(record));
}

void RecordCache::Update(std::string_view storage_key, RecordPtr record) {
  if (!enabled()) return;
  const uint64_t hash = Hash(storage_key);
  Shard& shard = ShardFor(hash);
  std::lock_guard lock(shard.mu);
  ++shard.epoch;
  const size_t index = FindLocked(shard, hash, storage_key);
  if (index != kNotFound) {
    Entry& entry = *shard.slots[index].entry;
    const size_t bytes = shard.bytes - entry.record->size() + record->size();
    if (bytes <= capacity_per_shard_) {
      // Replace in place: one probe instead of an erase and an insert.
      shard.bytes = bytes;
      entry.record = std::move(record);
      entry.referenced = true;
      return;
    }
    // Over capacity: insert anew below, after making room, so the sweep cannot evict it.
    RemoveLocked(shard, index);
  }
  InsertLocked(shard, hash, storage_key, std::move(record));
}

void RecordCache::Erase(std::string_view storage_key) {
  if (!enabled()) return;
  const uint64_t hash = Hash(storage_key);
  Shard& shard = ShardFor(hash);
  std::lock_guard lock(shard.mu);
  ++shard.epoch;
  const size_t index = FindLocked(shard, hash, storage_key);
  if (index != kNotFound) RemoveLocked(shard, index);
}

size_t RecordCache::size_bytes() {
  size_t total = 0;
  for (Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    total += shard.bytes;
  }
  return total;
}

size_t RecordCache::FindLocked(const Shard& shard, uint64_t hash, std::string_view storage_key) {
  if (shard.slots.empty()) return kNotFound;
  const size_t mask = shard.slots.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& slot = shard.slots[i];
    if (!slot.entry) return kNotFound;  // the table is never full, so a probe always ends
    if (slot.hash == hash && slot.entry->key == storage_key) return i;
  }
}

void RecordCache::InsertLocked(Shard& shard, uint64_t hash, std::string_view storage_key,
                               RecordPtr record) {
  const size_t charge = Charge(storage_key, record);
  if (charge > capacity_per_shard_) return;
  MakeRoomLocked(shard, charge, capacity_per_shard_);
  if ((shard.count + 1) * 4 > shard.slots.size() * 3) GrowLocked(shard);
  const size_t mask = shard.slots.size() - 1;
  size_t i = hash & mask;
  while (shard.slots[i].entry) i = (i + 1) & mask;
  shard.slots[i].hash = hash;
  shard.slots[i].entry.reset(new Entry{std::string(storage_key), std::move(record), false});
  ++shard.count;
  shard.bytes += charge;
}

void RecordCache::RemoveLocked(Shard& shard, size_t index) {
  // Backward-shift deletion: pull later members of the probe run into the hole, so that lookups
  // never need tombstones.
  const size_t mask = shard.slots.size() - 1;
  shard.bytes -= Charge(shard.slots[index].entry->key, shard.slots[index].entry->record);
  shard.slots[index].entry.reset();
  --shard.count;
  size_t hole = index;
  for (size_t j = (hole + 1) & mask; shard.slots[j].entry; j = (j + 1) & mask) {
    const size_t home = shard.slots[j].hash & mask;
    // The slot at j may move to the hole only if its home is not cyclically within (hole, j].
    const bool home_between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (home_between) continue;
    shard.slots[hole] = std::move(shard.slots[j]);
    hole = j;
  }
}

void RecordCache::MakeRoomLocked(Shard& shard, size_t incoming, size_t capacity) {
  while (shard.count > 0 && shard.bytes + incoming > capacity) {
    shard.hand &= shard.slots.size() - 1;
    Slot& slot = shard.slots[shard.hand];
    if (!slot.entry) {
      ++shard.hand;
    } else if (slot.entry->referenced) {
      slot.entry->referenced = false;
      ++shard.hand;
    } else {
      RemoveLocked(shard, shard.hand);  // the hand stays: a shifted entry may now be here
    }
  }
}

void RecordCache::GrowLocked(Shard& shard) {
  std::vector<Slot> old = std::move(shard.slots);
  shard.slots = std::vector<Slot>(old.empty() ? kInitialSlots : old.size() * 2);
  const size_t mask = shard.slots.size() - 1;
  for (Slot& slot : old) {
    if (!slot.entry) continue;
    size_t i = slot.hash & mask;
    while (shard.slots[i].entry) i = (i + 1) & mask;
    shard.slots[i] = std::move(slot);
  }
  shard.hand = 0;
}

}  // namespace edgeflow::kv
