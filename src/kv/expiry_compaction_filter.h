// ExpiryCompactionFilter: the `kv` column family's compaction filter. It removes items whose expiry
// has passed and tombstones older than the retention period (kept that long so that replicas can
// order a delete against a concurrent put).
//
// Expired items whose value lives in the `blobs` column family are not removed here: a compaction
// filter cannot touch another column family. They are kept and reported through `on_expired_blob`,
// and the store deletes record and blob together in a normal write.
//
// Thread-safe: RocksDB calls it from several compaction threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <rocksdb/compaction_filter.h>

#include "common/clock.h"
#include "kv/version.h"

namespace edgeflow::kv {

class ExpiryCompactionFilter final : public rocksdb::CompactionFilter {
 public:
  using ExpiredBlobFn = std::function<void(const rocksdb::Slice& storage_key, const Version&)>;

  ExpiryCompactionFilter(const Clock* clock, int64_t tombstone_retention_ms,
                         ExpiredBlobFn on_expired_blob)
      : clock_(clock),
        tombstone_retention_ms_(tombstone_retention_ms),
        on_expired_blob_(std::move(on_expired_blob)) {}

  Decision FilterV2(int level, const rocksdb::Slice& key, ValueType value_type,
                    const rocksdb::Slice& existing_value, std::string* new_value,
                    std::string* skip_until) const override;
  const char* Name() const override { return "edgeflow.ExpiryCompactionFilter"; }

 private:
  const Clock* clock_;
  int64_t tombstone_retention_ms_;
  ExpiredBlobFn on_expired_blob_;
};

}  // namespace edgeflow::kv
