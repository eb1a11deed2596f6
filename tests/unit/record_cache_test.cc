#include "kv/record_cache.h"

#include <gtest/gtest.h>

namespace edgeflow::kv {
namespace {

RecordCache::RecordPtr R(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

TEST(RecordCacheTest, UpdateLookupErase) {
  RecordCache cache(1 << 20);
  EXPECT_EQ(cache.Lookup("k"), nullptr);
  cache.Update("k", R("v1"));
  ASSERT_NE(cache.Lookup("k"), nullptr);
  EXPECT_EQ(*cache.Lookup("k"), "v1");
  cache.Update("k", R("v2"));
  EXPECT_EQ(*cache.Lookup("k"), "v2");
  cache.Erase("k");
  EXPECT_EQ(cache.Lookup("k"), nullptr);
  EXPECT_GT(cache.hits(), 0u);
  EXPECT_GT(cache.misses(), 0u);
}

TEST(RecordCacheTest, AFillIsRefusedAfterAWriteToTheShard) {
  RecordCache cache(1 << 20);
  uint64_t epoch = cache.Epoch("k");
  cache.Update("k", R("new"));  // a write lands while the reader reads RocksDB
  cache.Erase("k");             // ... and even after it is gone again
  cache.Fill("k", R("old"), epoch);
  EXPECT_EQ(cache.Lookup("k"), nullptr);

  epoch = cache.Epoch("k");
  cache.Fill("k", R("current"), epoch);
  ASSERT_NE(cache.Lookup("k"), nullptr);
  EXPECT_EQ(*cache.Lookup("k"), "current");
  // A fill never replaces what is there.
  cache.Fill("k", R("other"), cache.Epoch("k"));
  EXPECT_EQ(*cache.Lookup("k"), "current");
}

TEST(RecordCacheTest, EvictsLeastRecentlyUsedWithinCapacity) {
  RecordCache cache(64 * 2048);  // 64 shards of 2 KiB
  for (int i = 0; i < 10000; ++i) cache.Update("key" + std::to_string(i), R(std::string(100, 'x')));
  EXPECT_LE(cache.size_bytes(), size_t{64 * 2048});
  EXPECT_NE(cache.Lookup("key9999"), nullptr);
  EXPECT_EQ(cache.Lookup("key0"), nullptr);
  // An entry larger than a shard is not kept at all.
  cache.Update("huge", R(std::string(4096, 'h')));
  EXPECT_EQ(cache.Lookup("huge"), nullptr);
}

TEST(RecordCacheTest, DisabledCacheKeepsNothing) {
  RecordCache cache(0);
  cache.Update("k", R("v"));
  cache.Fill("k", R("v"), cache.Epoch("k"));
  EXPECT_EQ(cache.Lookup("k"), nullptr);
  EXPECT_FALSE(cache.enabled());
}

}  // namespace
}  // namespace edgeflow::kv
