// Round trips and damaged-input handling of the on-disk encodings.
#include <gtest/gtest.h>

#include "kv/change_codec.h"
#include "kv/coding.h"
#include "kv/record_codec.h"
#include "kv/storage_key.h"

namespace edgeflow::kv {
namespace {

Record SampleRecord(uint8_t flags) {
  Record r;
  r.flags = flags;
  r.meta.version = {0x0123456789abcdef, 42};
  r.meta.seq = 99;
  r.meta.expires_at_ms = 1'700'000'000'000;
  r.meta.content_type = "application/json";
  r.meta.size = 5;
  return r;
}

TEST(RecordCodecTest, InlineRecordRoundTrips) {
  std::string encoded;
  EncodeRecord(SampleRecord(0), "hello", &encoded);
  Record decoded;
  ASSERT_TRUE(DecodeRecord(encoded, &decoded).ok());
  EXPECT_EQ(decoded.meta.version, (Version{0x0123456789abcdef, 42}));
  EXPECT_EQ(decoded.meta.seq, 99u);
  EXPECT_EQ(decoded.meta.expires_at_ms, 1'700'000'000'000);
  EXPECT_EQ(decoded.meta.content_type, "application/json");
  EXPECT_EQ(decoded.inline_value, "hello");
  EXPECT_FALSE(decoded.tombstone());
}

TEST(RecordCodecTest, TombstoneAndExternalCarryNoValue) {
  for (uint8_t flags : {Record::kFlagTombstone, Record::kFlagExternal}) {
    std::string encoded;
    EncodeRecord(SampleRecord(flags), "ignored", &encoded);
    Record decoded;
    ASSERT_TRUE(DecodeRecord(encoded, &decoded).ok());
    EXPECT_EQ(decoded.flags, flags);
    EXPECT_TRUE(decoded.inline_value.empty());
  }
}

TEST(RecordCodecTest, EveryTruncationIsCorruptionNotACrash) {
  std::string encoded;
  EncodeRecord(SampleRecord(0), "hello", &encoded);
  for (size_t n = 0; n < encoded.size(); ++n) {
    Record decoded;
    Status s = DecodeRecord(std::string_view(encoded).substr(0, n), &decoded);
    EXPECT_EQ(s.code(), ErrorCode::kCorruption) << "length " << n;
  }
  Record decoded;
  EXPECT_FALSE(DecodeRecord(encoded + "x", &decoded).ok());
  encoded[0] = 7;  // unknown format
  EXPECT_FALSE(DecodeRecord(encoded, &decoded).ok());
}

TEST(ChangeCodecTest, RoundTripsAndRejectsDamage) {
  Change c;
  c.op = ChangeOp::kDelete;
  c.ns = "cams";
  c.key = std::string("k\0ey", 4);
  c.version = {5, 6};
  c.expires_at_ms = 77;
  c.content_type = "video/mp2t";
  c.size = 1234567;
  std::string encoded;
  EncodeChange(c, &encoded);
  Change d;
  ASSERT_TRUE(DecodeChange(17, encoded, &d).ok());
  EXPECT_EQ(d.seq, 17u);
  EXPECT_EQ(d.op, ChangeOp::kDelete);
  EXPECT_EQ(d.ns, "cams");
  EXPECT_EQ(d.key, c.key);
  EXPECT_EQ(d.version, c.version);
  EXPECT_EQ(d.expires_at_ms, 77);
  EXPECT_EQ(d.content_type, "video/mp2t");
  EXPECT_EQ(d.size, 1234567u);
  for (size_t n = 0; n < encoded.size(); ++n) {
    EXPECT_FALSE(DecodeChange(1, std::string_view(encoded).substr(0, n), &d).ok());
  }
  encoded[1] = 9;  // unknown op
  EXPECT_FALSE(DecodeChange(1, encoded, &d).ok());
}

TEST(CodingTest, VarintRejectsOverlongEncodings) {
  std::string eleven(11, '\xff');
  coding::Reader r(eleven);
  uint64_t v = 0;
  EXPECT_FALSE(r.GetVarint64(&v));
  std::string max;
  coding::PutVarint64(&max, UINT64_MAX);
  coding::Reader r2(max);
  ASSERT_TRUE(r2.GetVarint64(&v));
  EXPECT_EQ(v, UINT64_MAX);
}

TEST(CodingTest, BigEndianKeysSortNumerically) {
  EXPECT_LT(coding::BigEndian64(255), coding::BigEndian64(256));
  EXPECT_LT(coding::BigEndian64(1), coding::BigEndian64(1ull << 40));
  uint64_t v = 0;
  ASSERT_TRUE(coding::ParseBigEndian64(coding::BigEndian64(0xdeadbeef), &v));
  EXPECT_EQ(v, 0xdeadbeefu);
}

TEST(StorageKeyTest, SplitsAndBoundsPrefixes) {
  std::string_view ns, key;
  std::string skey = StorageKey("ns", std::string("a\0b", 3));
  ASSERT_TRUE(SplitStorageKey(skey, &ns, &key));
  EXPECT_EQ(ns, "ns");
  EXPECT_EQ(key, std::string_view("a\0b", 3));
  EXPECT_EQ(PrefixSuccessor("ab"), "ac");
  EXPECT_EQ(PrefixSuccessor(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixSuccessor(std::string("\xff\xff", 2)), "");
}

}  // namespace
}  // namespace edgeflow::kv
