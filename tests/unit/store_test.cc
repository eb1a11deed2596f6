// Tests of kv::Store on a real RocksDB in a per-test directory, with a manual clock for TTLs.
#include "kv/store.h"

#include <atomic>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "kv/hybrid_clock.h"
#include "kv/version.h"
#include "support/temp_dir.h"

namespace edgeflow::kv {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kStart = 1'700'000'000'000;  // a fixed Unix time in ms

// Every store test runs twice: with the record cache and without it (every read from RocksDB).
class StoreTest : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override { Reopen(); }

  StoreOptions Options() {
    StoreOptions options;
    options.dir = dir_.path() / "kv";
    options.clock = &clock_;
    options.blob_threshold_bytes = 1024;
    options.max_value_bytes = 16 << 20;
    options.block_cache_bytes = 8 << 20;
    options.write_buffer_bytes = 4 << 20;
    options.record_cache_bytes = GetParam();
    return options;
  }

  void Reopen(StoreOptions options) {
    store_.reset();
    auto opened = Store::Open(std::move(options));
    ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
    store_ = std::move(*opened);
  }
  void Reopen() { Reopen(Options()); }

  std::string Value(std::string_view ns, std::string_view key) {
    auto item = store_->Get(ns, key);
    return item ? item->value : "<" + std::string(ErrorCodeName(item.error().code())) + ">";
  }

  test_support::TempDir dir_;
  ManualClock clock_{kStart};
  std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, PutGetRoundTripsValueAndMetadata) {
  PutOptions options;
  options.content_type = "text/plain";
  auto put = store_->Put("ns", "k", "hello", options);
  ASSERT_TRUE(put) << put.error().ToString();
  EXPECT_EQ(put->seq, 1u);
  EXPECT_EQ(put->version.origin, store_->node_id());

  auto item = store_->Get("ns", "k");
  ASSERT_TRUE(item);
  EXPECT_EQ(item->value, "hello");
  EXPECT_EQ(item->meta.content_type, "text/plain");
  EXPECT_EQ(item->meta.size, 5u);
  EXPECT_EQ(item->meta.version, put->version);
  EXPECT_EQ(item->meta.seq, 1u);
  EXPECT_EQ(item->meta.expires_at_ms, 0);
}

TEST_P(StoreTest, NamespacesAreSeparate) {
  ASSERT_TRUE(store_->Put("a", "k", "1"));
  ASSERT_TRUE(store_->Put("a-b", "k", "2"));
  EXPECT_EQ(Value("a", "k"), "1");
  EXPECT_EQ(Value("a-b", "k"), "2");
  EXPECT_EQ(Value("b", "k"), "<NOT_FOUND>");
  auto page = store_->List("a", "", "", 100);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->entries.size(), 1u);
}

TEST_P(StoreTest, VersionsIncreaseWithEveryWriteEvenWithoutTimePassing) {
  Version previous;
  for (int i = 0; i < 100; ++i) {
    auto put = store_->Put("ns", "k", std::to_string(i));
    ASSERT_TRUE(put);
    EXPECT_GT(put->version, previous);
    previous = put->version;
  }
  EXPECT_EQ(previous.PhysicalMillis(), kStart);
}

TEST_P(StoreTest, VersionStringRoundTrips) {
  Version v{HybridClock::Pack(kStart, 7), 0xabcdef0123456789};
  auto parsed = Version::Parse(v.ToString());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, v);
  EXPECT_FALSE(Version::Parse("nope"));
  EXPECT_FALSE(Version::Parse(std::string(33, 'z')));
  EXPECT_FALSE(Version::Parse("0000000000000001+0000000000000001"));
}

TEST_P(StoreTest, CompareAndSetAppliesOnlyOnTheExpectedVersion) {
  auto first = store_->Put("ns", "k", "v1");
  ASSERT_TRUE(first);
  PutOptions cas;
  cas.if_version = first->version;
  auto second = store_->Put("ns", "k", "v2", cas);
  ASSERT_TRUE(second) << second.error().ToString();

  // The old version no longer matches.
  auto stale = store_->Put("ns", "k", "v3", cas);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(stale.error().message().find(second->version.ToString()), std::string::npos);
  EXPECT_EQ(Value("ns", "k"), "v2");

  // CAS against a missing key fails.
  auto missing = store_->Put("ns", "other", "x", cas);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kFailedPrecondition);
}

TEST_P(StoreTest, IfAbsentAndIfPresentConditions) {
  PutOptions nx;
  nx.condition = PutCondition::kIfAbsent;
  PutOptions xx;
  xx.condition = PutCondition::kIfPresent;
  EXPECT_FALSE(store_->Put("ns", "k", "x", xx));
  EXPECT_TRUE(store_->Put("ns", "k", "a", nx));
  auto again = store_->Put("ns", "k", "b", nx);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_TRUE(store_->Put("ns", "k", "c", xx));
  EXPECT_EQ(Value("ns", "k"), "c");
}

TEST_P(StoreTest, FailedConditionsDoNotConsumeSequenceNumbers) {
  ASSERT_TRUE(store_->Put("ns", "k", "a"));
  PutOptions nx;
  nx.condition = PutCondition::kIfAbsent;
  EXPECT_FALSE(store_->Put("ns", "k", "b", nx));
  EXPECT_FALSE(store_->Delete("ns", "missing"));
  auto next = store_->Put("ns", "k2", "c");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->seq, 2u);
  EXPECT_EQ(store_->LastSeq(), 2u);
}

TEST_P(StoreTest, DeleteLeavesATombstoneWithANewerVersion) {
  auto put = store_->Put("ns", "k", "v");
  ASSERT_TRUE(put);
  auto del = store_->Delete("ns", "k");
  ASSERT_TRUE(del) << del.error().ToString();
  EXPECT_GT(del->version, put->version);
  EXPECT_EQ(del->seq, 2u);
  EXPECT_EQ(Value("ns", "k"), "<NOT_FOUND>");

  auto again = store_->Delete("ns", "k");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kNotFound);

  auto changes = store_->ReadChanges(1, "", "", 10);
  ASSERT_TRUE(changes);
  ASSERT_EQ(changes->changes.size(), 2u);
  EXPECT_EQ(changes->changes[1].op, ChangeOp::kDelete);
  EXPECT_EQ(changes->changes[1].version, del->version);

  // A put after a delete creates the key again (if-absent sees it as absent).
  PutOptions nx;
  nx.condition = PutCondition::kIfAbsent;
  EXPECT_TRUE(store_->Put("ns", "k", "back", nx));
  EXPECT_EQ(Value("ns", "k"), "back");
}

TEST_P(StoreTest, ConditionalDeleteChecksTheVersion) {
  auto put = store_->Put("ns", "k", "v");
  ASSERT_TRUE(put);
  DeleteOptions wrong;
  wrong.if_version = Version{1, 1};
  auto failed = store_->Delete("ns", "k", wrong);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code(), ErrorCode::kFailedPrecondition);
  DeleteOptions right;
  right.if_version = put->version;
  EXPECT_TRUE(store_->Delete("ns", "k", right));
}

TEST_P(StoreTest, TombstonesAreKeptForTheRetentionPeriodThenCompactedAway) {
  StoreOptions options = Options();
  options.tombstone_retention_ms = 60'000;
  Reopen(options);
  ASSERT_TRUE(store_->Put("ns", "k", "v"));
  ASSERT_TRUE(store_->Delete("ns", "k"));
  ASSERT_TRUE(store_->CompactAll().ok());
  EXPECT_GE(store_->Stats().estimated_keys, 1u);  // the tombstone is still there

  clock_.Advance(61s);
  ASSERT_TRUE(store_->CompactAll().ok());
  EXPECT_EQ(store_->Stats().estimated_keys, 0u);
  EXPECT_EQ(Value("ns", "k"), "<NOT_FOUND>");
}

TEST_P(StoreTest, TtlExpiresOnReadAndIsRemovedByCompaction) {
  PutOptions ttl;
  ttl.ttl_ms = 10'000;
  auto put = store_->Put("ns", "k", "v", ttl);
  ASSERT_TRUE(put);
  ASSERT_TRUE(store_->Put("ns", "forever", "v"));
  auto meta = store_->Head("ns", "k");
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->expires_at_ms, kStart + 10'000);

  clock_.Advance(9999ms);
  EXPECT_EQ(Value("ns", "k"), "v");
  clock_.Advance(1ms);
  EXPECT_EQ(Value("ns", "k"), "<NOT_FOUND>");
  auto page = store_->List("ns", "", "", 10);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].key, "forever");

  ASSERT_TRUE(store_->CompactAll().ok());
  EXPECT_EQ(store_->Stats().estimated_keys, 1u);

  // An expired key counts as absent for conditional puts.
  PutOptions nx;
  nx.condition = PutCondition::kIfAbsent;
  EXPECT_TRUE(store_->Put("ns", "k", "new", nx));
}

TEST_P(StoreTest, SetExpiryAndKeepTtl) {
  ASSERT_TRUE(store_->Put("ns", "k", "v"));
  auto set = store_->SetExpiry("ns", "k", kStart + 5000);
  ASSERT_TRUE(set);
  EXPECT_EQ(store_->Head("ns", "k")->expires_at_ms, kStart + 5000);
  EXPECT_EQ(Value("ns", "k"), "v");

  PutOptions keep;
  keep.keep_ttl = true;
  ASSERT_TRUE(store_->Put("ns", "k", "v2", keep));
  EXPECT_EQ(store_->Head("ns", "k")->expires_at_ms, kStart + 5000);
  ASSERT_TRUE(store_->Put("ns", "k", "v3"));  // a plain put clears the expiry
  EXPECT_EQ(store_->Head("ns", "k")->expires_at_ms, 0);

  ASSERT_TRUE(store_->SetExpiry("ns", "k", kStart + 100));
  ASSERT_TRUE(store_->SetExpiry("ns", "k", std::nullopt));  // persist
  clock_.Advance(1s);
  EXPECT_EQ(Value("ns", "k"), "v3");
  EXPECT_EQ(store_->SetExpiry("ns", "missing", 5).error().code(), ErrorCode::kNotFound);
}

TEST_P(StoreTest, LargeValuesGoToBlobFilesAndRoundTrip) {
  std::string big(5 << 20, '\0');
  std::mt19937 rng(7);
  for (auto& c : big) c = static_cast<char>(rng());
  PutOptions options;
  options.content_type = "video/mp2t";
  ASSERT_TRUE(store_->Put("media", "chunk-1", big, options));
  auto item = store_->Get("media", "chunk-1");
  ASSERT_TRUE(item);
  EXPECT_EQ(item->value, big);
  EXPECT_EQ(item->meta.size, big.size());
  // Listing does not need the value.
  auto page = store_->List("media", "", "", 10);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].meta.size, big.size());

  ASSERT_TRUE(store_->CompactAll().ok());
  EXPECT_GT(store_->Stats().blob_file_bytes, big.size() / 2);
  EXPECT_EQ(store_->Get("media", "chunk-1")->value, big);

  // Replacing a large value by a small one and back, then deleting, never mixes them up.
  ASSERT_TRUE(store_->Put("media", "chunk-1", "small"));
  EXPECT_EQ(Value("media", "chunk-1"), "small");
  ASSERT_TRUE(store_->Put("media", "chunk-1", big));
  EXPECT_EQ(store_->Get("media", "chunk-1")->value, big);
  ASSERT_TRUE(store_->Delete("media", "chunk-1"));
  EXPECT_EQ(Value("media", "chunk-1"), "<NOT_FOUND>");
}

TEST_P(StoreTest, ExpiredLargeValuesAreRemovedWithTheirBlobs) {
  std::string big(64 << 10, 'x');
  PutOptions ttl;
  ttl.ttl_ms = 1000;
  ASSERT_TRUE(store_->Put("media", "old", big, ttl));
  ASSERT_TRUE(store_->SetExpiry("media", "old", kStart + 1000));
  clock_.Advance(2s);
  EXPECT_EQ(Value("media", "old"), "<NOT_FOUND>");
  ASSERT_TRUE(store_->CompactAll().ok());
  ASSERT_TRUE(store_->CompactAll().ok());  // the reap is a new write: compact it away too
  EXPECT_EQ(store_->Stats().estimated_keys, 0u);
}

TEST_P(StoreTest, ExtendingTheTtlOfALargeValueKeepsItsBytes) {
  std::string big(64 << 10, 'y');
  PutOptions ttl;
  ttl.ttl_ms = 1000;
  ASSERT_TRUE(store_->Put("media", "k", big, ttl));
  ASSERT_TRUE(store_->SetExpiry("media", "k", kStart + 100'000));
  clock_.Advance(2s);
  ASSERT_TRUE(store_->CompactAll().ok());
  EXPECT_EQ(store_->Get("media", "k")->value, big);
}

TEST_P(StoreTest, ListPagesThroughAPrefixInKeyOrder) {
  for (int i = 0; i < 250; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "p/%04d", i);
    ASSERT_TRUE(store_->Put("ns", key, "v"));
  }
  ASSERT_TRUE(store_->Put("ns", "q", "v"));
  ASSERT_TRUE(store_->Put("ns", "p", "v"));  // not under "p/"
  ASSERT_TRUE(store_->Delete("ns", "p/0100"));

  std::vector<std::string> keys;
  std::string start_after;
  int pages = 0;
  do {
    auto page = store_->List("ns", "p/", start_after, 100);
    ASSERT_TRUE(page) << page.error().ToString();
    for (auto& e : page->entries) keys.push_back(e.key);
    start_after = page->next_start_after;
    ++pages;
  } while (!start_after.empty() && pages < 10);
  EXPECT_EQ(keys.size(), 249u);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).count("p/0100"), 0u);
  EXPECT_EQ(pages, 3);

  EXPECT_FALSE(store_->List("ns", "", "", 0));
  EXPECT_FALSE(store_->List("bad ns", "", "", 10));
}

TEST_P(StoreTest, ListHandlesKeysWithHighBytes) {
  ASSERT_TRUE(store_->Put("ns", std::string("\xff\xff", 2), "a"));
  ASSERT_TRUE(store_->Put("ns", std::string("\xff\xfe", 2), "b"));
  ASSERT_TRUE(store_->Put("nt", "x", "c"));
  auto page = store_->List("ns", std::string("\xff", 1), "", 10);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->entries.size(), 2u);
}

TEST_P(StoreTest, ChangeLogIsDenseOrderedAndResumable) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(store_->Put(i % 2 ? "odd" : "even", "k" + std::to_string(i), "v"));
  }
  auto all = store_->ReadChanges(1, "", "", 100);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->changes.size(), 20u);
  for (size_t i = 0; i < 20; ++i) EXPECT_EQ(all->changes[i].seq, i + 1);
  EXPECT_EQ(all->next_seq, 21u);

  // Resume half-way, filter by namespace and prefix, scan limits.
  auto page = store_->ReadChanges(11, "odd", "", 100);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->changes.size(), 5u);
  EXPECT_EQ(page->changes[0].seq, 12u);
  auto limited = store_->ReadChanges(1, "", "", 3);
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->changes.size(), 3u);
  EXPECT_EQ(limited->next_seq, 4u);
  auto prefixed = store_->ReadChanges(1, "even", "k1", 100);
  ASSERT_TRUE(prefixed);
  EXPECT_EQ(prefixed->changes.size(), 5u);  // k10 k12 k14 k16 k18

  auto future = store_->ReadChanges(100, "", "", 10);
  ASSERT_TRUE(future);
  EXPECT_TRUE(future->changes.empty());
  EXPECT_EQ(future->next_seq, 100u);
}

TEST_P(StoreTest, ChangeLogTrimMakesOldPositionsOutOfRange) {
  StoreOptions options = Options();
  options.changelog_max_entries = 10;
  Reopen(options);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(store_->Put("ns", "k", std::to_string(i)));
  ASSERT_TRUE(store_->TrimChangeLog().ok());
  auto old = store_->ReadChanges(1, "", "", 100);
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code(), ErrorCode::kOutOfRange);
  auto kept = store_->ReadChanges(21, "", "", 100);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->changes.size(), 10u);
  EXPECT_EQ(store_->Stats().first_seq, 21u);

  // Trim point and sequence survive a restart.
  Reopen(options);
  EXPECT_FALSE(store_->ReadChanges(5, "", "", 10));
  auto next = store_->Put("ns", "k", "after");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->seq, 31u);
}

TEST_P(StoreTest, ChangeLogTrimByAge) {
  StoreOptions options = Options();
  options.changelog_retention_ms = 60'000;
  Reopen(options);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store_->Put("ns", "old", "v"));
  clock_.Advance(120s);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store_->Put("ns", "new", "v"));
  ASSERT_TRUE(store_->TrimChangeLog().ok());
  EXPECT_EQ(store_->Stats().first_seq, 6u);
  auto page = store_->ReadChanges(6, "", "", 10);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->changes.size(), 3u);
}

TEST_P(StoreTest, ReopenKeepsDataNodeIdAndContinuesSequenceAndVersions) {
  auto put = store_->Put("ns", "k", "v");
  ASSERT_TRUE(put);
  NodeId id = store_->node_id();
  EXPECT_NE(id, 0u);

  clock_.Set(kStart - 3'600'000);  // the wall clock stepped back an hour
  Reopen();
  EXPECT_EQ(store_->node_id(), id);
  EXPECT_EQ(Value("ns", "k"), "v");
  EXPECT_EQ(store_->LastSeq(), 1u);
  auto next = store_->Put("ns", "k", "v2");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->seq, 2u);
  EXPECT_GT(next->version, put->version);
}

TEST_P(StoreTest, ApplyRunsABatchInOrderWithPerOpResults) {
  std::vector<WriteOp> ops(4);
  ops[0].ns = "ns";
  ops[0].key = "a";
  ops[0].value = "1";
  ops[1].ns = "ns";
  ops[1].key = "a";
  ops[1].value = "2";
  ops[1].put.condition = PutCondition::kIfAbsent;  // fails: op 0 created it
  ops[2].kind = WriteOp::Kind::kDelete;
  ops[2].ns = "ns";
  ops[2].key = "a";
  ops[3].ns = "bad ns";
  ops[3].key = "b";
  ops[3].value = "x";
  auto results = store_->Apply(ops);
  ASSERT_TRUE(results);
  ASSERT_EQ(results->size(), 4u);
  EXPECT_TRUE((*results)[0]);
  EXPECT_EQ((*results)[1].error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_TRUE((*results)[2]);
  EXPECT_EQ((*results)[3].error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ((*results)[2]->seq, (*results)[0]->seq + 1);
  EXPECT_EQ(Value("ns", "a"), "<NOT_FOUND>");
}

TEST_P(StoreTest, MultiGetReturnsEachKeyInOrder) {
  ASSERT_TRUE(store_->Put("ns", "a", "1"));
  ASSERT_TRUE(store_->Put("ns", "c", std::string(2000, 'c')));
  std::vector<std::string_view> keys = {"a", "b", "c"};
  auto items = store_->MultiGet("ns", keys);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0]->value, "1");
  EXPECT_EQ(items[1].error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(items[2]->value.size(), 2000u);

  // Deleted, expired, invalid and duplicate keys, each with its own result.
  ASSERT_TRUE(store_->Delete("ns", "a"));
  PutOptions ttl;
  ttl.ttl_ms = 10;
  ASSERT_TRUE(store_->Put("ns", "t", "x", ttl));
  clock_.Advance(20ms);
  std::string huge(2000, 'k');
  std::vector<std::string_view> mixed = {"a", "t", "", huge, "c", "c"};
  auto results = store_->MultiGet("ns", mixed);
  ASSERT_EQ(results.size(), 6u);
  EXPECT_EQ(results[0].error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(results[1].error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(results[2].error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(results[3].error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(results[4]->value, results[5]->value);
  auto bad_ns = store_->MultiGet("bad ns", mixed);
  ASSERT_EQ(bad_ns.size(), 6u);
  EXPECT_EQ(bad_ns[4].error().code(), ErrorCode::kInvalidArgument);
}

TEST_P(StoreTest, SharedValuesOutliveOverwritesAndDeletes) {
  ASSERT_TRUE(store_->Put("ns", "k", std::string(3000, 'a')));
  ASSERT_TRUE(store_->Put("ns", "big", std::string(200 << 10, 'b')));  // a blob-file value
  std::vector<std::string_view> keys = {"k", "big", "k"};
  auto first = store_->MultiGet("ns", keys);
  ASSERT_TRUE(first[0] && first[1] && first[2]);
  // The reader still holds the old values while writers replace and delete them.
  ASSERT_TRUE(store_->Put("ns", "k", std::string(3000, 'z')));
  ASSERT_TRUE(store_->Delete("ns", "big"));
  EXPECT_EQ(first[0]->value, std::string(3000, 'a'));
  EXPECT_EQ(first[2]->value, std::string(3000, 'a'));
  EXPECT_EQ(first[1]->value, std::string(200 << 10, 'b'));
  auto second = store_->MultiGet("ns", keys);
  EXPECT_EQ(second[0]->value, std::string(3000, 'z'));
  EXPECT_EQ(second[1].error().code(), ErrorCode::kNotFound);
}

TEST_P(StoreTest, RejectsBadInputWithClearErrors) {
  auto empty_ns = store_->Put("", "k", "v");
  EXPECT_EQ(empty_ns.error().code(), ErrorCode::kInvalidArgument);
  auto bad_ns = store_->Put("a/b", "k", "v");
  EXPECT_EQ(bad_ns.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->Put(std::string(65, 'n'), "k", "v").error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->Put("ns", "", "v").error().code(), ErrorCode::kInvalidArgument);
  auto big_key = store_->Put("ns", std::string(1025, 'k'), "v");
  EXPECT_EQ(big_key.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(big_key.error().message().find("1025"), std::string::npos);
  auto big_value = store_->Put("ns", "k", std::string((16 << 20) + 1, 'v'));
  EXPECT_EQ(big_value.error().code(), ErrorCode::kResourceExhausted);
  PutOptions both;
  both.ttl_ms = 5;
  both.keep_ttl = true;
  EXPECT_EQ(store_->Put("ns", "k", "v", both).error().code(), ErrorCode::kInvalidArgument);
  PutOptions negative;
  negative.ttl_ms = -1;
  EXPECT_EQ(store_->Put("ns", "k", "v", negative).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->Get("ns", "").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->LastSeq(), 0u);  // nothing was written
}

TEST_P(StoreTest, BinaryKeysAndValuesAreKeptExactly) {
  std::string key("a\0b\xff", 4);
  std::string value("\0\r\n\xfe", 4);
  ASSERT_TRUE(store_->Put("ns", key, value));
  EXPECT_EQ(Value("ns", key), value);
  auto page = store_->List("ns", "a", "", 10);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].key, key);
}

TEST_P(StoreTest, ConcurrentWritersGetUniqueDenseSequencesAndListenersSeeThem) {
  std::atomic<uint64_t> notified{0};
  uint64_t id = store_->AddCommitListener([&](uint64_t last) {
    uint64_t seen = notified.load();
    while (last > seen && !notified.compare_exchange_weak(seen, last)) {
    }
  });
  constexpr int kThreads = 8;
  constexpr int kWrites = 500;
  std::vector<std::vector<uint64_t>> seqs(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        auto put = store_->Put("ns", "t" + std::to_string(t) + "-" + std::to_string(i), "v");
        if (put) seqs[t].push_back(put->seq);
      }
    });
  }
  for (auto& th : threads) th.join();
  store_->RemoveCommitListener(id);

  std::set<uint64_t> all;
  for (auto& s : seqs) {
    EXPECT_EQ(s.size(), size_t{kWrites});
    EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
    all.insert(s.begin(), s.end());
  }
  ASSERT_EQ(all.size(), size_t{kThreads * kWrites});
  EXPECT_EQ(*all.begin(), 1u);
  EXPECT_EQ(*all.rbegin(), uint64_t{kThreads * kWrites});
  EXPECT_EQ(notified.load(), uint64_t{kThreads * kWrites});

  // The log holds them all in seq order, each pointing at the write that made it.
  auto page = store_->ReadChanges(1, "", "", kThreads * kWrites + 10);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->changes.size(), size_t{kThreads * kWrites});
}

TEST_P(StoreTest, SyncWritesModeWorks) {
  StoreOptions options = Options();
  options.sync_writes = true;
  Reopen(options);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(store_->Put("ns", "k" + std::to_string(i), "v"));
  Reopen(options);
  EXPECT_EQ(store_->LastSeq(), 20u);
}

TEST_P(StoreTest, OpeningALockedDirectoryFailsClearly) {
  auto second = Store::Open(Options());
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message().find("lock"), std::string::npos)
      << second.error().message();
}

INSTANTIATE_TEST_SUITE_P(RecordCache, StoreTest, ::testing::Values(size_t{0}, size_t{8} << 20),
                         [](const ::testing::TestParamInfo<size_t>& param) {
                           return param.param == 0 ? std::string("Uncached") : std::string("Cached");
                         });

TEST_P(StoreTest, ReadsSeeEveryWriteThroughTheCache) {
  // Readers on other threads race with a writer; a reader must never see a value older than one
  // it saw before (a stale cache fill would).
  std::atomic<bool> stop{false};
  std::atomic<int> regressions{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      int last = -1;
      while (!stop.load()) {
        auto item = store_->Get("ns", "counter");
        if (!item) continue;
        int now = std::stoi(item->value);
        if (now < last) regressions.fetch_add(1);
        last = now;
      }
    });
  }
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(store_->Put("ns", "counter", std::to_string(i)));
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(regressions.load(), 0);
  EXPECT_EQ(Value("ns", "counter"), "2999");
  ASSERT_TRUE(store_->Delete("ns", "counter"));
  EXPECT_EQ(Value("ns", "counter"), "<NOT_FOUND>");
}

TEST(HybridClockTest, FollowsWallClockAndNeverGoesBack) {
  ManualClock wall(kStart);
  HybridClock hlc(&wall);
  uint64_t a = hlc.Now();
  EXPECT_EQ(a, HybridClock::Pack(kStart, 0));
  uint64_t b = hlc.Now();
  EXPECT_EQ(b, HybridClock::Pack(kStart, 1));
  wall.Set(kStart - 1000);
  uint64_t c = hlc.Now();
  EXPECT_GT(c, b);
  wall.Set(kStart + 5);
  EXPECT_EQ(hlc.Now(), HybridClock::Pack(kStart + 5, 0));
  hlc.Observe(HybridClock::Pack(kStart + 100, 3));
  EXPECT_EQ(hlc.Now(), HybridClock::Pack(kStart + 100, 4));
}

}  // namespace
}  // namespace edgeflow::kv
