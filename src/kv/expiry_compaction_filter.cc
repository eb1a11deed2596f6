#include "kv/expiry_compaction_filter.h"

#include "kv/record_codec.h"

namespace edgeflow::kv {

rocksdb::CompactionFilter::Decision ExpiryCompactionFilter::FilterV2(
    int /*level*/, const rocksdb::Slice& key, ValueType value_type,
    const rocksdb::Slice& existing_value, std::string* /*new_value*/,
    std::string* /*skip_until*/) const {
  if (value_type != ValueType::kValue) return Decision::kKeep;
  Record record;
  // A record that does not decode is kept: dropping data we do not understand is never right.
  if (!DecodeRecord({existing_value.data(), existing_value.size()}, &record).ok()) {
    return Decision::kKeep;
  }
  int64_t now = clock_->NowMillis();
  if (record.tombstone()) {
    return record.meta.version.PhysicalMillis() + tombstone_retention_ms_ < now ? Decision::kRemove
                                                                              : Decision::kKeep;
  }
  if (!record.ExpiredAt(now)) return Decision::kKeep;
  if (record.external()) {
    if (on_expired_blob_) on_expired_blob_(key, record.meta.version);
    return Decision::kKeep;
  }
  return Decision::kRemove;
}

}  // namespace edgeflow::kv
