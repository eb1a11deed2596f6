// Micro-benchmarks of kv::Store on a real RocksDB (no network): the cost of the store itself,
// which bounds what the front-ends can reach. Run: build/bench/store_bench
#include <benchmark/benchmark.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "kv/storage_key.h"
#include "kv/store.h"

namespace edgeflow::kv {
namespace {

class StoreFixture {
 public:
  StoreFixture() {
    dir_ = std::filesystem::temp_directory_path() /
           ("edgeflow-bench-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    StoreOptions options;
    options.dir = dir_;
    auto opened = Store::Open(options);
    if (!opened) {
      std::fprintf(stderr, "store_bench: %s\n", opened.error().ToString().c_str());
      std::abort();
    }
    store_ = std::move(*opened);
  }
  ~StoreFixture() {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  Store* store() { return store_.get(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
};

std::string KeyFor(uint64_t i) { return "key:" + std::to_string(i % 100000); }

void BM_Put(benchmark::State& state) {
  StoreFixture fixture;
  std::string value(state.range(0), 'v');
  uint64_t i = 0;
  for (auto _ : state) {
    auto r = fixture.store()->Put("bench", KeyFor(i++), value);
    if (!r) state.SkipWithError(r.error().message().c_str());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Put)->Arg(100)->Arg(4096)->Arg(1 << 20);

void BM_PutBatch16(benchmark::State& state) {
  StoreFixture fixture;
  std::string value(state.range(0), 'v');
  std::vector<std::string> keys(16);
  std::vector<WriteOp> ops(16);
  uint64_t i = 0;
  for (auto _ : state) {
    for (size_t j = 0; j < ops.size(); ++j) {
      keys[j] = KeyFor(i++);
      ops[j].ns = "bench";
      ops[j].key = keys[j];
      ops[j].value = value;
    }
    auto r = fixture.store()->Apply(ops);
    if (!r) state.SkipWithError(r.error().message().c_str());
  }
  state.SetItemsProcessed(state.iterations() * 16);
}
BENCHMARK(BM_PutBatch16)->Arg(100)->Arg(4096);

// The write load of `redis-benchmark -c 50 -P 16 -r 100000 -t set`: commit groups of 800 puts to
// random keys of a 100000-key space.
constexpr size_t kGroup = 800;

void BM_PutRandomGroup800(benchmark::State& state) {
  StoreFixture fixture;
  std::string value(state.range(0), 'v');
  std::vector<std::string> keys(kGroup);
  std::vector<WriteOp> ops(kGroup);
  std::mt19937_64 random(1);
  for (auto _ : state) {
    for (size_t j = 0; j < kGroup; ++j) {
      keys[j] = KeyFor(random());
      ops[j].ns = "bench";
      ops[j].key = keys[j];
      ops[j].value = value;
    }
    auto r = fixture.store()->Apply(ops);
    if (!r) state.SkipWithError(r.error().message().c_str());
  }
  state.SetItemsProcessed(state.iterations() * kGroup);
}
BENCHMARK(BM_PutRandomGroup800)->Arg(100)->Arg(4096)->UseRealTime();

// The same load on bare RocksDB (default options, 64 MiB memtables, WAL on): one put per key in
// a data column family plus one sequential 60-byte change record, as EKV writes. The ceiling of
// the storage engine on this machine, without any of EKV's work.
void BM_BareRocksDbRandomGroup800(benchmark::State& state) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("edgeflow-bench-rocksdb-" + std::to_string(::getpid()));
  rocksdb::Options options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.write_buffer_size = 64 << 20;
  options.compression = rocksdb::kLZ4Compression;
  options.max_background_jobs = 2;
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, options}, {"changelog", options}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(rocksdb::DBOptions(options), dir.string(), families, &handles, &raw);
  if (!s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  std::string value(state.range(0), 'v');
  const std::string change(60, 'c');
  std::mt19937_64 random(1);
  uint64_t seq = 0;
  for (auto _ : state) {
    rocksdb::WriteBatch batch;
    for (size_t j = 0; j < kGroup; ++j) {
      batch.Put(handles[0], StorageKey("bench", KeyFor(random())), value);
      const uint64_t big_endian = __builtin_bswap64(++seq);
      batch.Put(handles[1], rocksdb::Slice(reinterpret_cast<const char*>(&big_endian), 8), change);
    }
    s = raw->Write(rocksdb::WriteOptions(), &batch);
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations() * kGroup);
  for (auto* handle : handles) raw->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  delete raw;
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_BareRocksDbRandomGroup800)->Arg(100)->Arg(4096)->UseRealTime();

void BM_Get(benchmark::State& state) {
  StoreFixture fixture;
  std::string value(state.range(0), 'v');
  for (uint64_t i = 0; i < 100000; ++i) (void)fixture.store()->Put("bench", KeyFor(i), value);
  uint64_t i = 0;
  for (auto _ : state) {
    auto item = fixture.store()->Get("bench", KeyFor(i++ * 7919));
    benchmark::DoNotOptimize(item);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Get)->Arg(100)->Arg(4096);

}  // namespace
}  // namespace edgeflow::kv

BENCHMARK_MAIN();
