// Encoding of the `kv` column family's values: an item's metadata and, for values below the blob
// threshold, the value itself. Layout (docs/architecture.md, "On disk"):
//
//   u8 format (=1) | u8 flags | fixed64 hlc | fixed64 origin | fixed64 seq | fixed64 expires_at_ms
//   | varint content_type length | content_type | varint size | inline value (size bytes, or none)
//
// flags: bit 0 = tombstone (no value), bit 1 = value kept in the `blobs` column family.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "kv/item.h"

namespace edgeflow::kv {

struct Record {
  static constexpr uint8_t kFormat = 1;
  static constexpr uint8_t kFlagTombstone = 1 << 0;
  static constexpr uint8_t kFlagExternal = 1 << 1;

  uint8_t flags = 0;
  ItemMeta meta;
  std::string_view inline_value;  // points into the decoded buffer

  bool tombstone() const { return flags & kFlagTombstone; }
  bool external() const { return flags & kFlagExternal; }
  bool ExpiredAt(int64_t now_ms) const {
    return meta.expires_at_ms != 0 && meta.expires_at_ms <= now_ms;
  }
  // Readers see the item: neither deleted nor expired.
  bool LiveAt(int64_t now_ms) const { return !tombstone() && !ExpiredAt(now_ms); }
};

// Appends the encoding to *out. `inline_value` is ignored for tombstones and external values.
void EncodeRecord(const Record& record, std::string_view inline_value, std::string* out);
// Decodes; string views in the result point into `in`.
Status DecodeRecord(std::string_view in, Record* record);

}  // namespace edgeflow::kv
