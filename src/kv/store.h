// Store: EKV on one node. Namespace + key -> value bytes with metadata (version, expiry, content
// type, size), kept in RocksDB in the node's data directory.
//
// Use cases: producers put data (small messages to multi-megabyte video chunks), functions keep
// context, consumers get, list and watch; replication (later) reads the change log.
//
// Behaviour:
//  - Every applied write gets the next sequence number (dense: 1, 2, 3, ...) and a change-log
//    record in the `changelog` column family, in the same atomic RocksDB write as the data. The
//    sequence order is the commit order, so a watcher that resumes at seq N never misses a change.
//  - Versions are HLC timestamps + this node's id (see version.h), strictly increasing per node.
//  - Deletes leave tombstones (with their version) for `tombstone_retention`, so a replica that
//    comes back later can order a delete against a concurrent put.
//  - Expired items are invisible at once (checked on read) and removed by compaction.
//  - Values of `blob_threshold_bytes` or more are kept apart from the metadata, in RocksDB blob
//    files, so that listings and compactions do not copy them.
//  - A write returns once it is in the WAL; with `sync_writes` the WAL is fsync'd first.
//
// Thread-safety: all methods are safe to call concurrently. Writes from many threads are grouped
// into one RocksDB write (group commit), which is what makes fsync'd writes cheap under load.
//
// Constraints: namespaces match [A-Za-z0-9_.-]{1,64}; keys are 1..max_key_bytes arbitrary bytes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "kv/item.h"

namespace edgeflow::kv {

struct StoreOptions {
  std::filesystem::path dir = "data/kv";
  bool sync_writes = false;               // fsync the WAL before acknowledging each write
  size_t max_key_bytes = 1024;
  size_t max_value_bytes = 64 << 20;      // 64 MiB
  size_t blob_threshold_bytes = 64 << 10;  // values at least this large go to blob files
  size_t block_cache_bytes = 128 << 20;
  size_t record_cache_bytes = 256 << 20;  // recently used records in memory (0 = none)
  size_t write_buffer_bytes = 64 << 20;   // memtable size of the data column family
  int64_t tombstone_retention_ms = 24LL * 3600 * 1000;
  int64_t changelog_retention_ms = 24LL * 3600 * 1000;
  uint64_t changelog_max_entries = 10'000'000;
  const Clock* clock = nullptr;           // nullptr = system clock
};

// Condition for a put.
enum class PutCondition {
  kAlways,
  kIfAbsent,   // create only (Redis NX, HTTP If-None-Match: *)
  kIfPresent,  // replace only (Redis XX)
};

struct PutOptions {
  PutCondition condition = PutCondition::kAlways;
  std::optional<Version> if_version;  // compare-and-set: apply only if the current version is this
  // Expiry: at most one of these. Neither = no expiry, unless keep_ttl.
  std::optional<int64_t> ttl_ms;         // relative, > 0
  std::optional<int64_t> expires_at_ms;  // absolute Unix milliseconds
  bool keep_ttl = false;                 // keep the current item's expiry (Redis KEEPTTL)
  std::string content_type;
};

struct DeleteOptions {
  std::optional<Version> if_version;
};

// One operation of a batch; views must outlive the Apply() call.
struct WriteOp {
  enum class Kind { kPut, kDelete, kSetExpiry };
  Kind kind = Kind::kPut;
  std::string_view ns;
  std::string_view key;
  std::string_view value;      // kPut
  PutOptions put;              // kPut
  DeleteOptions del;           // kDelete
  std::optional<int64_t> expires_at_ms;  // kSetExpiry: new absolute expiry; nullopt = persist
};

struct StoreStats {
  uint64_t last_seq = 0;
  uint64_t first_seq = 0;             // oldest change still in the log (0 if empty)
  uint64_t estimated_keys = 0;        // RocksDB estimate, includes tombstones
  uint64_t live_sst_bytes = 0;
  uint64_t blob_file_bytes = 0;
  uint64_t memtable_bytes = 0;
  uint64_t record_cache_bytes = 0;
  uint64_t record_cache_hits = 0;
  uint64_t record_cache_misses = 0;
};

class Store {
 public:
  // Opens (creating if needed) the store in options.dir.
  static Result<std::unique_ptr<Store>> Open(StoreOptions options);
  virtual ~Store() = default;

  virtual NodeId node_id() const = 0;

  // Single operations. Errors: InvalidArgument (bad ns/key), ResourceExhausted (size limits),
  // FailedPrecondition (condition or CAS failed), NotFound (key absent), IoError.
  virtual Result<WriteResult> Put(std::string_view ns, std::string_view key,
                                  std::string_view value, const PutOptions& options = {}) = 0;
  virtual Result<Item> Get(std::string_view ns, std::string_view key) = 0;
  virtual Result<ItemMeta> Head(std::string_view ns, std::string_view key) = 0;
  // NotFound if the key is absent (or expired). A conditional delete of a different version is
  // FailedPrecondition.
  virtual Result<WriteResult> Delete(std::string_view ns, std::string_view key,
                                     const DeleteOptions& options = {}) = 0;
  // Sets (or with nullopt removes) the expiry of a live item. NotFound if absent.
  virtual Result<WriteResult> SetExpiry(std::string_view ns, std::string_view key,
                                        std::optional<int64_t> expires_at_ms) = 0;

  // Applies ops atomically in one commit, in order (a later op sees the effect of an earlier one
  // on the same key). Each op gets its own result: a failed condition fails that op only. The
  // outer error is for failures of the whole commit (I/O) or of the batch itself.
  virtual Result<std::vector<Result<WriteResult>>> Apply(std::span<const WriteOp> ops) = 0;

  // Apply() without blocking: `done` runs with the results once the batch is committed, on the
  // committing thread, so it must be quick (post the continuation to the caller's executor) and
  // must not call back into the store. `ops` and the bytes it points to must stay valid until
  // then. Writes queued this way from many connections share commits.
  using ApplyCallback = std::move_only_function<void(Result<std::vector<Result<WriteResult>>>)>;
  virtual void ApplyAsync(std::span<const WriteOp> ops, ApplyCallback done) = 0;

  // Gets several keys of one namespace; missing ones are NotFound in their slot. Values are
  // shared, not copied (see SharedItem).
  virtual std::vector<Result<SharedItem>> MultiGet(std::string_view ns,
                                                   std::span<const std::string_view> keys) = 0;

  // Live items of `ns` whose key starts with `prefix`, in key order, after `start_after`
  // (exclusive; empty = from the start), at most `limit` (1..10000) entries.
  virtual Result<ListPage> List(std::string_view ns, std::string_view prefix,
                                std::string_view start_after, size_t limit) = 0;

  // Change log: records with seq >= from_seq, optionally only those of `ns` (empty = all) whose
  // key starts with `prefix`; scans at most `max_scan` records. OutOfRange if from_seq is older
  // than the oldest retained record (the caller must re-list instead of resuming).
  virtual Result<ChangePage> ReadChanges(uint64_t from_seq, std::string_view ns,
                                         std::string_view prefix, size_t max_scan) = 0;
  virtual uint64_t LastSeq() const = 0;

  // Calls `on_commit(last_seq)` after every commit, from the committing thread; it must be quick
  // and must not call back into the store (post the work elsewhere). Returns an id for Unwatch.
  virtual uint64_t AddCommitListener(std::function<void(uint64_t last_seq)> on_commit) = 0;
  virtual void RemoveCommitListener(uint64_t id) = 0;

  virtual StoreStats Stats() = 0;

  // Runs a full compaction now (expiry and tombstone removal happen there); for tests and admin.
  virtual Status CompactAll() = 0;
  // Drops change-log records beyond the retention limits now (normally done in the background).
  virtual Status TrimChangeLog() = 0;
};

// Validation shared by the front-ends, so that they can reject bad input before touching the store.
Status ValidateNamespace(std::string_view ns);
// The namespace where the node keeps its own state (for example the positions of key-change
// notifiers). Clients may read it but not write it.
inline constexpr std::string_view kNodeStateNamespace = "_edgeflow";
// ValidateNamespace, and not the node's own namespace: where the front-ends let clients write.
Status ValidateWritableNamespace(std::string_view ns);
Status ValidateKey(std::string_view key, size_t max_key_bytes);

}  // namespace edgeflow::kv
