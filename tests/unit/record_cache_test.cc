#include "kv/record_cache.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

namespace edgeflow::kv {
namespace {

RecordCache::RecordPtr R(std::string s) {
  return std::make_shared<const std::string>(std::move(s));
}

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

TEST(RecordCacheTest, AMissedLookupGivesTheEpochForTheFill) {
  RecordCache cache(1 << 20);
  uint64_t epoch = 99;
  EXPECT_EQ(cache.Lookup("k", &epoch), nullptr);
  EXPECT_EQ(epoch, cache.Epoch("k"));
  cache.Update("other-key-in-maybe-another-shard", R("x"));
  cache.Fill("k", R("v"), epoch);
  ASSERT_NE(cache.Lookup("k"), nullptr);

  EXPECT_EQ(cache.Lookup("j", &epoch), nullptr);
  cache.Erase("j");  // a delete lands while the reader reads RocksDB
  cache.Fill("j", R("stale"), epoch);
  EXPECT_EQ(cache.Lookup("j"), nullptr);
}

TEST(RecordCacheTest, AHotKeySurvivesAScanOfColdKeys) {
  RecordCache cache(64 * 4096);
  cache.Update("hot", R(std::string(100, 'h')));
  for (int i = 0; i < 20000; ++i) {
    ASSERT_NE(cache.Lookup("hot"), nullptr) << "evicted after " << i << " cold inserts";
    cache.Update("cold" + std::to_string(i), R(std::string(100, 'c')));
  }
}

// Random updates, erases, fills and lookups against a plain map: a hit must always be the latest
// record (never a stale or foreign one), and the byte count must stay within capacity. Small
// shards make eviction, table growth and backward-shift deletion happen constantly.
TEST(RecordCacheTest, RandomOperationsAgreeWithAModel) {
  RecordCache cache(64 * 1500);
  std::map<std::string, std::string> model;
  std::mt19937_64 random(7);
  for (int step = 0; step < 200000; ++step) {
    const std::string key = "k" + std::to_string(random() % 3000);
    switch (random() % 4) {
      case 0: {
        std::string value = key + "@" + std::to_string(step) + std::string(random() % 200, 'v');
        model[key] = value;
        cache.Update(key, R(std::move(value)));
        break;
      }
      case 1:
        model.erase(key);
        cache.Erase(key);
        break;
      case 2: {
        uint64_t epoch = 0;
        if (cache.Lookup(key, &epoch) == nullptr) {
          auto it = model.find(key);
          if (it != model.end()) cache.Fill(key, R(it->second), epoch);
        }
        break;
      }
      default: {
        RecordCache::RecordPtr hit = cache.Lookup(key);
        if (hit) {
          auto it = model.find(key);
          ASSERT_NE(it, model.end()) << "step " << step << ": " << key << " was erased";
          ASSERT_EQ(*hit, it->second) << "step " << step;
        }
      }
    }
    if (step % 10000 == 0) {
      ASSERT_LE(cache.size_bytes(), size_t{64 * 1500});
    }
  }
  // Every key still cached answers with its latest record.
  size_t cached = 0;
  for (const auto& [key, value] : model) {
    if (RecordCache::RecordPtr hit = cache.Peek(key)) {
      ++cached;
      EXPECT_EQ(*hit, value);
    }
  }
  EXPECT_GT(cached, 0u);
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
