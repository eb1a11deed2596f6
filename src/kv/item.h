// The data model of EKV: items addressed by namespace + key, with metadata, and the change
// records that every local write appends to the change log.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kv/version.h"

namespace edgeflow::kv {

// Metadata kept with every live item.
struct ItemMeta {
  Version version;
  uint64_t seq = 0;             // change-log sequence number of the write that made this version
  int64_t expires_at_ms = 0;    // Unix milliseconds; 0 = never expires
  std::string content_type;     // free-form, e.g. "video/mp2t"; empty = unspecified
  uint64_t size = 0;            // value size in bytes
};

struct Item {
  ItemMeta meta;
  std::string value;
};

// An item whose value is shared with the store instead of copied: `value` stays valid as long as
// `owner` lives. Cached values are handed out this way, so a front-end can send them straight from
// the record cache to the socket (scatter/gather) without copying them first.
struct SharedItem {
  ItemMeta meta;
  std::shared_ptr<const std::string> owner;
  std::string_view value;
};

// One entry of a prefix listing.
struct ListEntry {
  std::string key;
  ItemMeta meta;
};

struct ListPage {
  std::vector<ListEntry> entries;
  // Pass as `start_after` to get the next page; empty when the listing is complete.
  std::string next_start_after;
};

enum class ChangeOp : uint8_t {
  kPut = 1,     // the item was created or replaced (also for TTL changes: the item is rewritten)
  kDelete = 2,  // the item was deleted; `version` is the tombstone's version
};

// One change-log record. Values are not in the log (a log record stays small whatever the value
// size); readers fetch the value from the store, checking `version` if they need that exact one.
struct Change {
  uint64_t seq = 0;
  ChangeOp op = ChangeOp::kPut;
  std::string ns;
  std::string key;
  Version version;
  int64_t expires_at_ms = 0;
  std::string content_type;
  uint64_t size = 0;
};

struct ChangePage {
  std::vector<Change> changes;
  uint64_t next_seq = 0;  // resume here: one past the last change scanned (matching or not)
};

// Result of a successful write.
struct WriteResult {
  Version version;
  uint64_t seq = 0;
  bool applied = true;  // false for a write that was a no-op (deleting a missing key)
};

}  // namespace edgeflow::kv
