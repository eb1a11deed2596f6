// Micro-benchmarks of kv::Store on a real RocksDB (no network): the cost of the store itself,
// which bounds what the front-ends can reach. Run: build/bench/store_bench
#include <benchmark/benchmark.h>

#include <filesystem>
#include <random>
#include <string>

#include <unistd.h>

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
    store_ = std::move(*Store::Open(options));
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
