#include "runtime/pending_item.h"

#include <gtest/gtest.h>

namespace edgeflow::runtime {
namespace {

TEST(PendingItemTest, RoundTripsEveryField) {
  PendingItem item;
  item.item_id = "0190a1b2c3d4e-abcdef01";
  item.first_arrival_ms = 1234567;
  item.failed_attempts = 2;
  TriggerInput frame;
  frame.input = "frame";
  frame.channel = "cams/front";
  frame.envelope.item_id = item.item_id;
  frame.envelope.content_type = "image/jpeg";
  frame.envelope.ref = channels::ItemRef{"channels", "cams/front/x", "v1"};
  frame.envelope.inline_data = false;
  frame.envelope.size = 1 << 20;
  frame.envelope.trace_id = std::string(32, 'a');
  frame.envelope.stream = "cam-1";
  frame.envelope.produced_at_ms = 99;
  frame.envelope.expiry_seconds = 60;
  frame.arrived_at_ms = 1234568;
  TriggerInput coords;
  coords.input = "coords";
  coords.channel = "faces";
  for (int i = 0; i < 256; ++i) coords.payload.push_back(static_cast<char>(i));
  item.inputs = {frame, coords};

  auto decoded = DecodePendingItem(EncodePendingItem(item));
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  EXPECT_EQ(decoded->item_id, item.item_id);
  EXPECT_EQ(decoded->first_arrival_ms, 1234567);
  EXPECT_EQ(decoded->failed_attempts, 2u);
  ASSERT_EQ(decoded->inputs.size(), 2u);
  const TriggerInput* f = decoded->Find("frame");
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(f->envelope.ref.has_value());
  EXPECT_EQ(f->envelope.ref->key, "cams/front/x");
  EXPECT_EQ(f->envelope.ref->version, "v1");
  EXPECT_FALSE(f->envelope.inline_data);
  EXPECT_EQ(f->envelope.size, 1u << 20);
  EXPECT_EQ(f->envelope.stream, "cam-1");
  EXPECT_EQ(f->envelope.expiry_seconds, 60u);
  EXPECT_EQ(decoded->Find("coords")->payload, coords.payload);
  EXPECT_EQ(decoded->Find("nope"), nullptr);
}

TEST(PendingItemTest, GarbageIsCorruptionNotACrash) {
  for (std::string bytes : {std::string(), std::string("\xff\xfe"), std::string("\x81\xa1v\x02"),
                            std::string("\x80"), std::string(100, '\x92')}) {
    auto decoded = DecodePendingItem(bytes);
    ASSERT_FALSE(decoded.has_value());
    EXPECT_TRUE(decoded.error().Is(ErrorCode::kCorruption));
  }
}

TEST(PendingItemTest, KeysKeepFunctionsApart) {
  EXPECT_EQ(ItemKey("p", "f", "i1"), "fn/p/f/i/i1");
  EXPECT_TRUE(ItemKey("p", "f", "x").starts_with(ItemPrefix("p", "f")));
  EXPECT_FALSE(ItemKey("p", "fg", "x").starts_with(FunctionStatePrefix("p", "f")));
}

TEST(PendingItemTest, OutcomesAndPendingItemsAreToldApart) {
  // One key holds either: recovery must never run a finished item, nor skip a pending one.
  const std::string outcome = EncodeItemOutcome({"failed", 42, "timed out"});
  auto decoded = DecodeItemOutcome(outcome);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  EXPECT_EQ(decoded->state, "failed");
  EXPECT_EQ(decoded->at_ms, 42);
  EXPECT_EQ(decoded->error, "timed out");
  EXPECT_FALSE(DecodePendingItem(outcome).has_value());

  PendingItem item;
  item.item_id = "i1";
  const std::string pending = EncodePendingItem(item);
  EXPECT_TRUE(DecodePendingItem(pending).has_value());
  EXPECT_FALSE(DecodeItemOutcome(pending).has_value());
  for (std::string bytes : {std::string(), std::string("\xff"), std::string("\x81\xa5state\x01")}) {
    auto garbage = DecodeItemOutcome(bytes);
    ASSERT_FALSE(garbage.has_value());
    EXPECT_TRUE(garbage.error().Is(ErrorCode::kCorruption));
  }
}

}  // namespace
}  // namespace edgeflow::runtime
