#include "kv/rocks_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "common/log.h"
#include "kv/change_codec.h"
#include "kv/coding.h"
#include "kv/expiry_compaction_filter.h"
#include "kv/storage_key.h"

namespace edgeflow::kv {
namespace {

constexpr char kNodeIdKey[] = "node_id";
constexpr char kTrimmedBelowKey[] = "changelog_trimmed_below";
constexpr size_t kMaxListLimit = 10000;
constexpr auto kMaintenanceInterval = std::chrono::seconds(1);
constexpr int kTrimEveryTicks = 60;

Status KeyNotFound(std::string_view key) {
  return Status::NotFound("key '" + std::string(key) + "' does not exist");
}

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  std::string message = std::string(what) + ": " + s.ToString();
  if (s.IsCorruption()) return Status::Corruption(std::move(message));
  if (s.IsNotFound()) return Status::NotFound(std::move(message));
  return Status::IoError(std::move(message));
}

rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }

Status ValidateWrite(const WriteOp& op, const StoreOptions& options) {
  EF_RETURN_IF_ERROR(ValidateNamespace(op.ns));
  EF_RETURN_IF_ERROR(ValidateKey(op.key, options.max_key_bytes));
  if (op.kind == WriteOp::Kind::kPut) {
    if (op.value.size() > options.max_value_bytes) {
      return Status::ResourceExhausted("value too large (" + std::to_string(op.value.size()) +
                                       " bytes > max " + std::to_string(options.max_value_bytes) +
                                       ")");
    }
    int expiry_options =
        (op.put.ttl_ms ? 1 : 0) + (op.put.expires_at_ms ? 1 : 0) + (op.put.keep_ttl ? 1 : 0);
    if (expiry_options > 1) {
      return Status::InvalidArgument("at most one of ttl, expires_at and keep_ttl may be given");
    }
    if (op.put.ttl_ms && *op.put.ttl_ms <= 0) {
      return Status::InvalidArgument("ttl must be positive");
    }
    if (op.put.expires_at_ms && *op.put.expires_at_ms <= 0) {
      return Status::InvalidArgument("expiry time must be positive");
    }
    if (op.put.content_type.size() > 256) {
      return Status::InvalidArgument("content type too long (max 256 bytes)");
    }
    if (op.put.if_version && op.put.condition == PutCondition::kIfAbsent) {
      return Status::InvalidArgument("a create-only put cannot also require a version");
    }
  }
  if (op.kind == WriteOp::Kind::kSetExpiry && op.expires_at_ms && *op.expires_at_ms <= 0) {
    return Status::InvalidArgument("expiry time must be positive");
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(StoreOptions options) {
  return RocksStore::Open(std::move(options));
}

RocksStore::RocksStore(StoreOptions options)
    : options_(std::move(options)),
      clock_(options_.clock ? options_.clock : SystemClock::Default()),
      hlc_(clock_),
      cache_(options_.record_cache_bytes),
      commit_queue_([this](const std::vector<WriteRequest*>& group) { CommitGroup(group); }) {}

Result<std::unique_ptr<Store>> RocksStore::Open(StoreOptions options) {
  std::unique_ptr<RocksStore> store(new RocksStore(std::move(options)));
  if (Status s = store->OpenDb(); !s.ok()) return Error(std::move(s));
  if (Status s = store->LoadOrCreateNodeId(); !s.ok()) return Error(std::move(s));
  if (Status s = store->RecoverSequence(); !s.ok()) return Error(std::move(s));
  store->maintenance_thread_ = std::thread([s = store.get()] { s->MaintenanceLoop(); });
  log::Info("kv store open", {{"dir", store->options_.dir.string()},
                              {"node_id", NodeIdToString(store->node_id_)},
                              {"last_seq", store->LastSeq()},
                              {"sync_writes", store->options_.sync_writes}});
  return std::unique_ptr<Store>(std::move(store));
}

RocksStore::~RocksStore() {
  // Commit what is queued and stop the committer before anything it uses goes away.
  commit_queue_.Stop();
  {
    std::lock_guard lock(maintenance_mu_);
    stopping_ = true;
  }
  maintenance_cv_.notify_all();
  if (maintenance_thread_.joinable()) maintenance_thread_.join();
  if (db_) {
    // Flush the memtables so that the next open does not replay a long WAL.
    rocksdb::FlushOptions flush;
    db_->Flush(flush, handles_).PermitUncheckedError();
    for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    handles_.clear();
    db_->Close().PermitUncheckedError();
  }
}

Status RocksStore::OpenDb() {
  std::error_code ec;
  std::filesystem::create_directories(options_.dir, ec);
  if (ec) {
    return Status::IoError("cannot create data directory " + options_.dir.string() + ": " +
                           ec.message());
  }

  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.bytes_per_sync = 1 << 20;
  // Several column families share the WAL; this bounds it by forcing flushes of idle ones.
  db_options.max_total_wal_size = 256 << 20;
  db_options.keep_log_file_num = 5;
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db_options.avoid_unnecessary_blocking_io = true;
  // Flushes and compactions yield the CPU to request handling: on a small edge box they share the
  // cores with the front-ends, and a request waiting behind a compaction is what users notice.
  rocksdb::Env::Default()
      ->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::LOW, rocksdb::CpuPriority::kLow)
      .PermitUncheckedError();  // not supported on some platforms; only a scheduling hint

  auto cache = rocksdb::NewLRUCache(options_.block_cache_bytes);
  auto table_options = [&](bool bloom) {
    rocksdb::BlockBasedTableOptions t;
    t.block_cache = cache;
    t.cache_index_and_filter_blocks = true;
    // XXH3, never CRC32c: the packaged RocksDB is built without hardware CRC, and every flush,
    // compaction and block read checksums whole blocks. (XXH3 is also RocksDB 7's default.)
    t.checksum = rocksdb::kXXH3;
    t.pin_l0_filter_and_index_blocks_in_cache = true;
    if (bloom) t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    return rocksdb::NewBlockBasedTableFactory(t);
  };

  expiry_filter_ = std::make_shared<ExpiryCompactionFilter>(
      clock_, options_.tombstone_retention_ms,
      [this](const rocksdb::Slice& k, const Version& v) { OnExpiredBlob(k, v); });

  rocksdb::ColumnFamilyOptions meta_options;
  meta_options.write_buffer_size = 4 << 20;

  rocksdb::ColumnFamilyOptions kv_options;
  kv_options.write_buffer_size = options_.write_buffer_bytes;
  kv_options.table_factory.reset(table_options(true));
  kv_options.compaction_filter = expiry_filter_.get();
  kv_options.level_compaction_dynamic_level_bytes = true;
  // LZ4 at every level: it decompresses several times faster than ZSTD, and most reads that miss
  // the caches land on the bottom level.
  kv_options.compression = rocksdb::kLZ4Compression;
  // Gets of keys not in the memtable skip its skiplist.
  kv_options.memtable_prefix_bloom_size_ratio = 0.05;
  kv_options.memtable_whole_key_filtering = true;

  rocksdb::ColumnFamilyOptions blob_options;
  blob_options.write_buffer_size = options_.write_buffer_bytes;
  blob_options.table_factory.reset(table_options(true));
  blob_options.enable_blob_files = true;
  blob_options.min_blob_size = 0;  // the store puts only large values here
  blob_options.blob_file_size = 256 << 20;
  blob_options.blob_compression_type = rocksdb::kNoCompression;  // media is compressed already
  blob_options.enable_blob_garbage_collection = true;
  blob_options.blob_garbage_collection_age_cutoff = 0.25;
  blob_options.level_compaction_dynamic_level_bytes = true;
  // Most keys have no large value: make "is there one?" (BlobMayExist) cheap in memtables too.
  blob_options.memtable_prefix_bloom_size_ratio = 0.05;
  blob_options.memtable_whole_key_filtering = true;

  rocksdb::ColumnFamilyOptions log_options;
  log_options.write_buffer_size = 16 << 20;
  log_options.table_factory.reset(table_options(false));
  log_options.compression = rocksdb::kLZ4Compression;

  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, meta_options},
      {"kv", kv_options},
      {"blobs", blob_options},
      {"changelog", log_options},
  };
  rocksdb::DB* raw = nullptr;
  rocksdb::DBOptions options_for_db(db_options);
  rocksdb::Status s =
      rocksdb::DB::Open(options_for_db, options_.dir.string(), families, &handles_, &raw);
  if (!s.ok()) {
    Status status = FromRocks(s, "cannot open the store in " + options_.dir.string());
    // RocksDB reports a directory that another process (or this one) holds as an I/O error on its
    // LOCK file: "While lock file: <dir>/LOCK: ..." or "lock hold by ...: <dir>/LOCK: ...".
    if (s.IsIOError() && s.ToString().find("/LOCK: ") != std::string::npos) {
      return Status::Unavailable(status.message() +
                                 " (is another edgeflowd using this data directory?)");
    }
    return status;
  }
  db_.reset(raw);
  meta_cf_ = handles_[0];
  kv_cf_ = handles_[1];
  blobs_cf_ = handles_[2];
  changelog_cf_ = handles_[3];
  write_options_.sync = options_.sync_writes;
  return Status::Ok();
}

Status RocksStore::LoadOrCreateNodeId() {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_cf_, kNodeIdKey, &value);
  if (s.ok()) {
    coding::Reader r(value);
    if (!r.GetFixed64(&node_id_) || node_id_ == 0) {
      return Status::Corruption("stored node id is malformed");
    }
    return Status::Ok();
  }
  if (!s.IsNotFound()) return FromRocks(s, "cannot read the node id");
  std::random_device random;
  while (node_id_ == 0) {
    node_id_ = (static_cast<uint64_t>(random()) << 32) ^ random();
  }
  std::string encoded;
  coding::PutFixed64(&encoded, node_id_);
  rocksdb::WriteOptions sync;
  sync.sync = true;
  return FromRocks(db_->Put(sync, meta_cf_, kNodeIdKey, encoded), "cannot store the node id");
}

Status RocksStore::RecoverSequence() {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), changelog_cf_));
  it->SeekToLast();
  if (it->Valid()) {
    uint64_t seq = 0;
    if (!coding::ParseBigEndian64({it->key().data(), it->key().size()}, &seq)) {
      return Status::Corruption("malformed change-log key");
    }
    Change last;
    EF_RETURN_IF_ERROR(DecodeChange(seq, {it->value().data(), it->value().size()}, &last));
    last_seq_.store(seq);
    // Versions made after a restart must order after those made before, even if the wall clock
    // stepped back meanwhile.
    hlc_.Observe(last.version.hlc);
    it->SeekToFirst();
    uint64_t first = 0;
    if (it->Valid() && coding::ParseBigEndian64({it->key().data(), it->key().size()}, &first)) {
      first_seq_.store(first);
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "cannot read the change log");

  std::string trimmed;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_cf_, kTrimmedBelowKey, &trimmed);
  if (s.ok()) {
    uint64_t below = 0;
    coding::Reader r(trimmed);
    if (r.GetFixed64(&below)) {
      first_seq_.store(std::max(first_seq_.load(), below));
      // The log is never trimmed to empty, but be safe: the sequence continues after the trim.
      if (last_seq_.load() == 0 && below > 0) last_seq_.store(below - 1);
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Writes

Result<WriteResult> RocksStore::SubmitOne(const WriteOp& op) {
  auto results = Apply(std::span<const WriteOp>(&op, 1));
  if (!results) return Error(std::move(results.error()));
  return std::move((*results)[0]);
}

Result<WriteResult> RocksStore::Put(std::string_view ns, std::string_view key,
                                    std::string_view value, const PutOptions& options) {
  WriteOp op;
  op.kind = WriteOp::Kind::kPut;
  op.ns = ns;
  op.key = key;
  op.value = value;
  op.put = options;
  return SubmitOne(op);
}

Result<WriteResult> RocksStore::Delete(std::string_view ns, std::string_view key,
                                       const DeleteOptions& options) {
  WriteOp op;
  op.kind = WriteOp::Kind::kDelete;
  op.ns = ns;
  op.key = key;
  op.del = options;
  return SubmitOne(op);
}

Result<WriteResult> RocksStore::SetExpiry(std::string_view ns, std::string_view key,
                                          std::optional<int64_t> expires_at_ms) {
  WriteOp op;
  op.kind = WriteOp::Kind::kSetExpiry;
  op.ns = ns;
  op.key = key;
  op.expires_at_ms = expires_at_ms;
  return SubmitOne(op);
}

Result<std::vector<Result<WriteResult>>> RocksStore::Apply(std::span<const WriteOp> ops) {
  if (ops.empty()) return std::vector<Result<WriteResult>>{};
  WriteRequest request;
  request.ops = ops;
  commit_queue_.Submit(&request);
  return std::move(request.results);
}

void RocksStore::ApplyAsync(std::span<const WriteOp> ops, ApplyCallback done) {
  if (ops.empty()) {
    done(std::vector<Result<WriteResult>>{});
    return;
  }
  auto* request = new WriteRequest();
  request->ops = ops;
  commit_queue_.SubmitAsync(request, [request, done = std::move(done)]() mutable {
    std::unique_ptr<WriteRequest> owned(request);
    done(std::move(owned->results));
  });
}

bool RocksStore::BlobMayExist(const std::string& skey) {
  // Filters and memtables only, no I/O: false means the key has no large value.
  // (When the key does have a large value in a memtable, this copies it; that case then reads
  // the current record anyway, and large values are few.)
  std::string ignored;
  return db_->KeyMayExist(rocksdb::ReadOptions(), blobs_cf_, skey, &ignored);
}

Result<const RocksStore::KeyState*> RocksStore::LoadState(const std::string& skey, Overlay* overlay,
                                                          bool need_record) {
  if (auto it = overlay->find(skey); it != overlay->end()) return &it->second;
  // The cache is exact for the committing thread: every commit updates it before the next group
  // starts, and readers' fills are refused once a write touched the shard.
  // A plain put asks the blobs family's filters first: cheaper than even a cache lookup.
  if (!need_record && !BlobMayExist(skey)) {
    static const KeyState kNoLargeValue;
    return &kNoLargeValue;
  }
  RecordCache::RecordPtr cached = cache_.Peek(skey);
  KeyState state;
  if (!cached) {
    auto read = std::make_shared<std::string>();
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), kv_cf_, skey, read.get());
    if (!s.ok() && !s.IsNotFound()) return Error(FromRocks(s, "cannot read the current item"));
    if (s.ok()) cached = std::move(read);
  }
  if (cached) {
    state.encoded = std::move(cached);
    if (Status d = DecodeRecord(*state.encoded, &state.record); !d.ok()) return Error(std::move(d));
  }
  auto [it, inserted] = overlay->emplace(skey, std::move(state));
  return &it->second;
}

void RocksStore::StoreState(const std::string& skey, std::string encoded, Overlay* overlay) {
  KeyState& state = (*overlay)[skey];
  state.written = true;
  state.encoded = std::make_shared<const std::string>(std::move(encoded));
  // Cannot fail: we just encoded it.
  DecodeRecord(*state.encoded, &state.record).IgnoreError();
}

void RocksStore::PublishToCache(Overlay* overlay, bool committed) {
  for (auto& [skey, state] : *overlay) {
    if (!state.written) continue;
    if (committed && state.encoded) {
      cache_.Update(skey, std::move(state.encoded));
    } else {
      cache_.Erase(skey);
    }
  }
}

Result<WriteResult> RocksStore::PrepareOp(const WriteOp& op, rocksdb::WriteBatch* batch,
                                          Overlay* overlay, uint64_t* next_seq) {
  if (Status s = ValidateWrite(op, options_); !s.ok()) return Error(std::move(s));
  const std::string skey = StorageKey(op.ns, op.key);
  // A plain put does not depend on the current record, except to delete a large value it
  // replaces; LoadState answers that without reading the record when it can (the hot path of
  // SET-heavy workloads).
  const bool plain_put = op.kind == WriteOp::Kind::kPut &&
                         op.put.condition == PutCondition::kAlways && !op.put.if_version &&
                         !op.put.keep_ttl;
  auto loaded = LoadState(skey, overlay, /*need_record=*/!plain_put);
  if (!loaded) return Error(std::move(loaded.error()));
  const KeyState* state = *loaded;
  const KeyState& current = *state;
  const int64_t now = clock_->NowMillis();
  const bool live = current.encoded && current.record.LiveAt(now);
  const bool had_blob = current.encoded && current.record.external();

  auto key_desc = [&] { return "key '" + std::string(op.key) + "'"; };
  auto check_version = [&](const std::optional<Version>& want) -> Status {
    if (!want) return Status::Ok();
    if (!live) {
      return Status::FailedPrecondition("version mismatch: " + key_desc() + " does not exist");
    }
    if (current.record.meta.version != *want) {
      return Status::FailedPrecondition("version mismatch: current version of " + key_desc() +
                                        " is " + current.record.meta.version.ToString());
    }
    return Status::Ok();
  };

  Record record;
  Change change;
  std::string_view inline_value;

  switch (op.kind) {
    case WriteOp::Kind::kPut: {
      if (op.put.condition == PutCondition::kIfAbsent && live) {
        return Error(Status::FailedPrecondition(key_desc() + " already exists"));
      }
      if (op.put.condition == PutCondition::kIfPresent && !live) {
        return Error(Status::FailedPrecondition(key_desc() + " does not exist"));
      }
      if (Status s = check_version(op.put.if_version); !s.ok()) return Error(std::move(s));
      if (op.put.ttl_ms) {
        record.meta.expires_at_ms = now + *op.put.ttl_ms;
      } else if (op.put.expires_at_ms) {
        record.meta.expires_at_ms = *op.put.expires_at_ms;
      } else if (op.put.keep_ttl && live) {
        record.meta.expires_at_ms = current.record.meta.expires_at_ms;
      }
      record.meta.content_type = op.put.content_type;
      record.meta.size = op.value.size();
      if (op.value.size() >= options_.blob_threshold_bytes) {
        record.flags |= Record::kFlagExternal;
        batch->Put(blobs_cf_, skey, ToSlice(op.value));
      } else {
        inline_value = op.value;
        if (had_blob) batch->Delete(blobs_cf_, skey);
      }
      change.op = ChangeOp::kPut;
      break;
    }
    case WriteOp::Kind::kDelete: {
      if (!live) return Error(Status::NotFound(key_desc() + " does not exist"));
      if (Status s = check_version(op.del.if_version); !s.ok()) return Error(std::move(s));
      record.flags = Record::kFlagTombstone;
      if (had_blob) batch->Delete(blobs_cf_, skey);
      change.op = ChangeOp::kDelete;
      break;
    }
    case WriteOp::Kind::kSetExpiry: {
      if (!live) return Error(Status::NotFound(key_desc() + " does not exist"));
      record.flags = current.record.flags & Record::kFlagExternal;
      record.meta.content_type = current.record.meta.content_type;
      record.meta.size = current.record.meta.size;
      record.meta.expires_at_ms = op.expires_at_ms.value_or(0);
      // Rewritten as it is; current's bytes stay alive until the overlay takes the new record.
      if (!record.external()) inline_value = current.record.inline_value;
      change.op = ChangeOp::kPut;
      break;
    }
  }

  record.meta.version = Version{hlc_.Now(), node_id_};
  record.meta.seq = (*next_seq)++;
  std::string encoded;
  encoded.reserve(64 + record.meta.content_type.size() + inline_value.size());
  EncodeRecord(record, inline_value, &encoded);
  batch->Put(kv_cf_, skey, encoded);

  change.seq = record.meta.seq;
  change.ns.assign(op.ns);
  change.key.assign(op.key);
  change.version = record.meta.version;
  change.expires_at_ms = record.meta.expires_at_ms;
  change.content_type = record.meta.content_type;
  change.size = record.meta.size;
  std::string change_value;
  EncodeChange(change, &change_value);
  batch->Put(changelog_cf_, coding::BigEndian64(change.seq), change_value);

  StoreState(skey, std::move(encoded), overlay);
  return WriteResult{record.meta.version, record.meta.seq, true};
}

void RocksStore::PrepareReap(const std::string& skey, const Version& version,
                             rocksdb::WriteBatch* batch, Overlay* overlay) {
  auto loaded = LoadState(skey, overlay, /*need_record=*/true);
  if (!loaded) return;
  const KeyState& state = **loaded;
  // Only if nothing rewrote the item since the compaction saw it expire.
  if (!state.encoded || state.record.meta.version != version ||
      !state.record.ExpiredAt(clock_->NowMillis())) {
    return;
  }
  batch->Delete(kv_cf_, skey);
  if (state.record.external()) batch->Delete(blobs_cf_, skey);
  KeyState& gone = (*overlay)[skey];
  gone = KeyState{};
  gone.written = true;
}

void RocksStore::CommitGroup(const std::vector<WriteRequest*>& group) {
  rocksdb::WriteBatch batch;
  Overlay overlay;
  const uint64_t first_seq = last_seq_.load(std::memory_order_relaxed) + 1;
  uint64_t next_seq = first_seq;
  for (WriteRequest* request : group) {
    if (!request->reaps.empty()) {
      for (const auto& [skey, version] : request->reaps)
        PrepareReap(skey, version, &batch, &overlay);
      continue;
    }
    request->results.reserve(request->ops.size());
    for (const WriteOp& op : request->ops) {
      request->results.push_back(PrepareOp(op, &batch, &overlay, &next_seq));
    }
  }
  if (batch.Count() == 0) return;

  rocksdb::Status s = db_->Write(write_options_, &batch);
  PublishToCache(&overlay, s.ok());
  if (!s.ok()) {
    Status failure = FromRocks(s, "write failed");
    log::Error("kv commit failed", {{"error", failure.message()}});
    for (WriteRequest* request : group) {
      for (auto& result : request->results) {
        if (result) result = Error(failure);
      }
    }
    return;
  }
  const uint64_t last = next_seq - 1;
  if (last >= first_seq) {
    last_seq_.store(last, std::memory_order_release);
    uint64_t expected = 0;
    first_seq_.compare_exchange_strong(expected, first_seq);
    std::lock_guard lock(listeners_mu_);
    for (auto& [id, listener] : listeners_) listener(last);
  }
}

// ---------------------------------------------------------------------------------------------
// Reads

Result<RecordCache::RecordPtr> RocksStore::ReadRecord(const std::string& skey) {
  uint64_t epoch = 0;
  if (RecordCache::RecordPtr cached = cache_.Lookup(skey, &epoch)) return cached;
  rocksdb::PinnableSlice pinned;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), kv_cf_, skey, &pinned);
  if (s.IsNotFound()) return RecordCache::RecordPtr();
  if (!s.ok()) return Error(FromRocks(s, "read failed"));
  auto record = std::make_shared<const std::string>(pinned.data(), pinned.size());
  cache_.Fill(skey, record, epoch);
  return record;
}

Result<Item> RocksStore::ReadItem(std::string_view ns, std::string_view key, bool with_value) {
  if (Status s = ValidateNamespace(ns); !s.ok()) return Error(std::move(s));
  if (Status s = ValidateKey(key, options_.max_key_bytes); !s.ok()) return Error(std::move(s));
  const std::string skey = StorageKey(ns, key);
  auto not_found = [&] { return Error(KeyNotFound(key)); };

  auto encoded = ReadRecord(skey);
  if (!encoded) return Error(std::move(encoded.error()));
  if (!*encoded) return not_found();
  Record record;
  if (Status d = DecodeRecord(**encoded, &record); !d.ok()) return Error(std::move(d));
  if (!record.LiveAt(clock_->NowMillis())) return not_found();

  Item item;
  if (!with_value || !record.external()) {
    item.meta = std::move(record.meta);
    if (with_value) item.value.assign(record.inline_value);
    return item;
  }

  // The value is in the blobs column family: read record and value from one snapshot so that a
  // concurrent overwrite cannot pair this metadata with another write's bytes.
  rocksdb::ReadOptions read_options;
  const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
  read_options.snapshot = snapshot;
  rocksdb::PinnableSlice pinned;
  rocksdb::Status s = db_->Get(read_options, kv_cf_, skey, &pinned);
  Status status = Status::Ok();
  bool found = false;
  if (s.ok()) {
    status = DecodeRecord({pinned.data(), pinned.size()}, &record);
    found = status.ok() && !record.tombstone() && !record.ExpiredAt(clock_->NowMillis());
    if (found && record.external()) {
      rocksdb::PinnableSlice blob;
      s = db_->Get(read_options, blobs_cf_, skey, &blob);
      if (s.ok()) {
        item.value.assign(blob.data(), blob.size());
      } else {
        status = FromRocks(s, "cannot read the value of key '" + std::string(key) + "'");
      }
    } else if (found) {
      item.value.assign(record.inline_value);
    }
  } else if (!s.IsNotFound()) {
    status = FromRocks(s, "read failed");
  }
  db_->ReleaseSnapshot(snapshot);
  if (!status.ok()) return Error(std::move(status));
  if (!found) return not_found();
  item.meta = std::move(record.meta);
  return item;
}

Result<Item> RocksStore::Get(std::string_view ns, std::string_view key) {
  return ReadItem(ns, key, true);
}

Result<ItemMeta> RocksStore::Head(std::string_view ns, std::string_view key) {
  auto item = ReadItem(ns, key, false);
  if (!item) return Error(std::move(item.error()));
  return std::move(item->meta);
}

std::vector<Result<SharedItem>> RocksStore::MultiGet(std::string_view ns,
                                                     std::span<const std::string_view> keys) {
  std::vector<Result<SharedItem>> out;
  out.reserve(keys.size());
  if (Status s = ValidateNamespace(ns); !s.ok()) {
    for (size_t i = 0; i < keys.size(); ++i) out.push_back(Error(s));
    return out;
  }
  // Cached records first; one batched RocksDB lookup for the other valid keys (it shares work
  // between keys that single Gets repeat). Invalid keys, read errors and large values take the
  // single-key path for their exact result.
  std::vector<std::optional<Result<SharedItem>>> found(keys.size());
  const int64_t now = clock_->NowMillis();
  auto resolve = [&](size_t i, const RecordCache::RecordPtr& encoded) {
    Record record;
    if (!DecodeRecord(*encoded, &record).ok() || record.external()) return;
    if (!record.LiveAt(now)) {
      found[i] = Error(KeyNotFound(keys[i]));
      return;
    }
    found[i] = SharedItem{std::move(record.meta), encoded, record.inline_value};
  };
  std::vector<std::string> skeys;
  std::vector<size_t> slot;
  std::vector<uint64_t> epochs;
  skeys.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!ValidateKey(keys[i], options_.max_key_bytes).ok()) continue;
    std::string skey = StorageKey(ns, keys[i]);
    uint64_t epoch = 0;
    if (RecordCache::RecordPtr cached = cache_.Lookup(skey, &epoch)) {
      resolve(i, cached);
      continue;
    }
    epochs.push_back(epoch);
    skeys.push_back(std::move(skey));
    slot.push_back(i);
  }
  if (!skeys.empty()) {
    std::vector<rocksdb::Slice> slices(skeys.begin(), skeys.end());
    std::vector<rocksdb::PinnableSlice> values(skeys.size());
    std::vector<rocksdb::Status> statuses(skeys.size());
    db_->MultiGet(rocksdb::ReadOptions(), kv_cf_, skeys.size(), slices.data(), values.data(),
                  statuses.data());
    for (size_t j = 0; j < skeys.size(); ++j) {
      if (statuses[j].IsNotFound()) {
        found[slot[j]] = Error(KeyNotFound(keys[slot[j]]));
      } else if (statuses[j].ok()) {
        auto record = std::make_shared<const std::string>(values[j].data(), values[j].size());
        cache_.Fill(skeys[j], record, epochs[j]);
        resolve(slot[j], record);
      }
    }
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    if (found[i]) {
      out.push_back(std::move(*found[i]));
      continue;
    }
    Result<Item> item = ReadItem(ns, keys[i], true);
    if (!item) {
      out.push_back(Error(std::move(item.error())));
      continue;
    }
    auto owner = std::make_shared<const std::string>(std::move(item->value));
    std::string_view value = *owner;
    out.push_back(SharedItem{std::move(item->meta), std::move(owner), value});
  }
  return out;
}

Result<ListPage> RocksStore::List(std::string_view ns, std::string_view prefix,
                                  std::string_view start_after, size_t limit) {
  if (Status s = ValidateNamespace(ns); !s.ok()) return Error(std::move(s));
  if (prefix.size() > options_.max_key_bytes || start_after.size() > options_.max_key_bytes) {
    return Error(Status::ResourceExhausted("prefix or start key longer than the maximum key size"));
  }
  if (limit == 0 || limit > kMaxListLimit) {
    return Error(
        Status::InvalidArgument("limit must be between 1 and " + std::to_string(kMaxListLimit)));
  }
  const std::string lower = StorageKey(ns, prefix);
  const std::string upper = PrefixSuccessor(lower);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions read_options;
  if (!upper.empty()) read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options, kv_cf_));

  std::string seek = lower;
  if (!start_after.empty() && start_after >= prefix) seek = StorageKey(ns, start_after);
  it->Seek(seek);
  if (!start_after.empty() && it->Valid() && it->key() == rocksdb::Slice(seek)) it->Next();

  ListPage page;
  const int64_t now = clock_->NowMillis();
  for (; it->Valid(); it->Next()) {
    Record record;
    if (Status d = DecodeRecord({it->value().data(), it->value().size()}, &record); !d.ok()) {
      return Error(std::move(d));
    }
    if (!record.LiveAt(now)) continue;
    std::string_view key_ns, key;
    SplitStorageKey({it->key().data(), it->key().size()}, &key_ns, &key);
    if (page.entries.size() == limit) {
      page.next_start_after = page.entries.back().key;
      break;
    }
    page.entries.push_back({std::string(key), std::move(record.meta)});
  }
  if (!it->status().ok()) return Error(FromRocks(it->status(), "listing failed"));
  return page;
}

Result<ChangePage> RocksStore::ReadChanges(uint64_t from_seq, std::string_view ns,
                                           std::string_view prefix, size_t max_scan) {
  if (!ns.empty()) {
    if (Status s = ValidateNamespace(ns); !s.ok()) return Error(std::move(s));
  }
  if (from_seq == 0) from_seq = 1;
  const uint64_t first = first_seq_.load(std::memory_order_acquire);
  if (first > 0 && from_seq < first) {
    return Error(Status::OutOfRange("change-log position " + std::to_string(from_seq) +
                                    " was trimmed; the oldest retained is " +
                                    std::to_string(first)));
  }
  ChangePage page;
  page.next_seq = from_seq;
  const uint64_t last = LastSeq();
  if (from_seq > last || max_scan == 0) return page;

  // Do not read past what has been published as committed.
  const std::string upper = coding::BigEndian64(last + 1);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options, changelog_cf_));
  size_t scanned = 0;
  for (it->Seek(coding::BigEndian64(from_seq)); it->Valid() && scanned < max_scan;
       it->Next(), ++scanned) {
    uint64_t seq = 0;
    if (!coding::ParseBigEndian64({it->key().data(), it->key().size()}, &seq)) {
      return Error(Status::Corruption("malformed change-log key"));
    }
    Change change;
    if (Status d = DecodeChange(seq, {it->value().data(), it->value().size()}, &change); !d.ok()) {
      return Error(std::move(d));
    }
    page.next_seq = seq + 1;
    if (!ns.empty() && change.ns != ns) continue;
    if (!prefix.empty() && !std::string_view(change.key).starts_with(prefix)) continue;
    page.changes.push_back(std::move(change));
  }
  if (!it->status().ok()) return Error(FromRocks(it->status(), "cannot read the change log"));
  // A concurrent trim may have removed what we meant to read.
  if (first_seq_.load(std::memory_order_acquire) > from_seq) {
    return Error(Status::OutOfRange("change-log position " + std::to_string(from_seq) +
                                    " was trimmed while reading"));
  }
  return page;
}

// ---------------------------------------------------------------------------------------------
// Listeners, stats, maintenance

uint64_t RocksStore::AddCommitListener(std::function<void(uint64_t)> on_commit) {
  std::lock_guard lock(listeners_mu_);
  uint64_t id = next_listener_id_++;
  listeners_.emplace(id, std::move(on_commit));
  return id;
}

void RocksStore::RemoveCommitListener(uint64_t id) {
  std::lock_guard lock(listeners_mu_);
  listeners_.erase(id);
}

StoreStats RocksStore::Stats() {
  StoreStats stats;
  stats.last_seq = LastSeq();
  stats.first_seq = first_seq_.load();
  db_->GetIntProperty(kv_cf_, "rocksdb.estimate-num-keys", &stats.estimated_keys);
  uint64_t v = 0;
  for (auto* cf : {kv_cf_, blobs_cf_, changelog_cf_, meta_cf_}) {
    if (db_->GetIntProperty(cf, "rocksdb.live-sst-files-size", &v)) stats.live_sst_bytes += v;
    if (db_->GetIntProperty(cf, "rocksdb.cur-size-all-mem-tables", &v)) stats.memtable_bytes += v;
  }
  if (db_->GetIntProperty(blobs_cf_, "rocksdb.total-blob-file-size", &v)) {
    stats.blob_file_bytes = v;
  }
  stats.record_cache_bytes = cache_.size_bytes();
  stats.record_cache_hits = cache_.hits();
  stats.record_cache_misses = cache_.misses();
  return stats;
}

Status RocksStore::CompactAll() {
  rocksdb::CompactRangeOptions options;
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (auto* cf : {kv_cf_, blobs_cf_, changelog_cf_}) {
    EF_RETURN_IF_ERROR(FromRocks(db_->CompactRange(options, cf, nullptr, nullptr), "compaction"));
  }
  // Expired blob values found by that compaction are deleted by the maintenance thread; do it
  // now so that the caller sees the effect.
  ReapExpiredBlobs();
  return Status::Ok();
}

void RocksStore::ReapExpiredBlobs() {
  std::map<std::string, Version> expired;
  {
    std::lock_guard lock(maintenance_mu_);
    expired.swap(expired_blobs_);
  }
  // Commits of a bounded size: each holds the committer while it reads the records it checks.
  constexpr size_t kReapsPerCommit = 1000;
  WriteRequest request;
  for (auto& [skey, version] : expired) {
    request.reaps.emplace_back(skey, version);
    if (request.reaps.size() == kReapsPerCommit) {
      commit_queue_.Submit(&request);
      request.reaps.clear();
    }
  }
  if (!request.reaps.empty()) commit_queue_.Submit(&request);
}

void RocksStore::OnExpiredBlob(const rocksdb::Slice& storage_key, const Version& version) {
  std::lock_guard lock(maintenance_mu_);
  // Bounded: if compactions report faster than we delete, the rest is found again next time.
  if (expired_blobs_.size() < 100000) expired_blobs_[storage_key.ToString()] = version;
}

Result<uint64_t> RocksStore::FindTrimPoint(uint64_t last_seq) {
  uint64_t first = first_seq_.load();
  if (first == 0 || last_seq == 0) return first;
  uint64_t cutoff = first;
  if (last_seq - first + 1 > options_.changelog_max_entries) {
    cutoff = last_seq - options_.changelog_max_entries + 1;
  }
  // Change times grow with seq (HLC), so binary-search the first record young enough to keep.
  const int64_t oldest_kept_ms = clock_->NowMillis() - options_.changelog_retention_ms;
  uint64_t lo = cutoff, hi = last_seq;  // the last record is always kept
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    rocksdb::PinnableSlice value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), changelog_cf_, coding::BigEndian64(mid), &value);
    if (!s.ok()) return Error(FromRocks(s, "cannot read the change log"));
    Change change;
    if (Status d = DecodeChange(mid, {value.data(), value.size()}, &change); !d.ok()) {
      return Error(std::move(d));
    }
    if (change.version.PhysicalMillis() < oldest_kept_ms) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

Status RocksStore::TrimChangeLog() {
  std::lock_guard lock(trim_mu_);
  const uint64_t first = first_seq_.load();
  auto cutoff = FindTrimPoint(LastSeq());
  if (!cutoff) return cutoff.error();
  if (first == 0 || *cutoff <= first) return Status::Ok();
  rocksdb::WriteBatch batch;
  std::string trimmed_below;
  coding::PutFixed64(&trimmed_below, *cutoff);
  // Publish the new first seq before deleting so readers fail cleanly instead of seeing a gap.
  first_seq_.store(*cutoff, std::memory_order_release);
  EF_RETURN_IF_ERROR(FromRocks(batch.Put(meta_cf_, kTrimmedBelowKey, trimmed_below), "trim"));
  EF_RETURN_IF_ERROR(FromRocks(
      batch.DeleteRange(changelog_cf_, coding::BigEndian64(first), coding::BigEndian64(*cutoff)),
      "trim"));
  EF_RETURN_IF_ERROR(FromRocks(db_->Write(write_options_, &batch), "change-log trim"));
  log::Debug("change log trimmed", {{"first_seq", *cutoff}});
  return Status::Ok();
}

void RocksStore::MaintenanceLoop() {
  int ticks = 0;
  std::unique_lock lock(maintenance_mu_);
  while (!stopping_) {
    maintenance_cv_.wait_for(lock, kMaintenanceInterval);
    if (stopping_) break;
    lock.unlock();
    ReapExpiredBlobs();
    if (++ticks % kTrimEveryTicks == 0) {
      if (Status s = TrimChangeLog(); !s.ok()) {
        log::Warn("change-log trim failed", {{"error", s.message()}});
      }
    }
    lock.lock();
  }
}

}  // namespace edgeflow::kv
