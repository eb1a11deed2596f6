#include "channels/envelope.h"

#include <gtest/gtest.h>

#include <set>

namespace edgeflow::channels {
namespace {

TEST(EnvelopeTest, RoundTripsThroughMessageProperties) {
  Envelope in;
  in.item_id = "cam1/000123";
  in.content_type = "video/mp2t";
  in.ref = ItemRef{"channels", "cams/front/a b%", "0000000000000001-00000000000000aa"};
  in.size = 5;
  in.inline_data = true;
  in.produced_at_ms = 1'700'000'000'123;
  in.trace_id = NewTraceId();
  in.expiry_seconds = 3600;
  MqttMessage message;
  message.payload = "hello";
  WriteEnvelope(in, &message);
  EXPECT_EQ(message.correlation_data, in.item_id);
  ASSERT_NE(message.UserProperty("ef-ref"), nullptr);
  EXPECT_EQ(*message.UserProperty("ef-ref"), "/v1/kv/channels/cams/front/a%20b%25");

  auto out = ReadEnvelope(message);
  ASSERT_TRUE(out) << out.error().ToString();
  EXPECT_EQ(out->item_id, in.item_id);
  EXPECT_EQ(out->content_type, in.content_type);
  ASSERT_TRUE(out->ref);
  EXPECT_EQ(out->ref->ns, "channels");
  EXPECT_EQ(out->ref->key, "cams/front/a b%");
  EXPECT_EQ(out->ref->version, in.ref->version);
  EXPECT_EQ(out->size, 5u);
  EXPECT_TRUE(out->inline_data);
  EXPECT_EQ(out->produced_at_ms, in.produced_at_ms);
  EXPECT_EQ(out->trace_id, in.trace_id);
  EXPECT_EQ(out->expiry_seconds, 3600u);
}

TEST(EnvelopeTest, AClaimCheckCarriesOnlyTheReference) {
  Envelope in;
  in.item_id = "x";
  in.ref = ItemRef{"ns", "k", ""};
  in.size = 100000;
  in.inline_data = false;
  MqttMessage message;
  WriteEnvelope(in, &message);
  auto out = ReadEnvelope(message);
  ASSERT_TRUE(out);
  EXPECT_FALSE(out->inline_data);
  EXPECT_EQ(out->size, 100000u);
}

TEST(EnvelopeTest, AMessageFromAPlainClientIsInlineData) {
  MqttMessage message;
  message.payload = "raw bytes";
  auto out = ReadEnvelope(message);
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->inline_data);
  EXPECT_FALSE(out->ref);
  EXPECT_EQ(out->size, 9u);
}

TEST(EnvelopeTest, MalformedPropertiesAreClearErrors) {
  auto with = [](std::string name, std::string value) {
    MqttMessage m;
    m.payload = "abc";
    m.user_properties.emplace_back(std::move(name), std::move(value));
    return ReadEnvelope(m);
  };
  EXPECT_NE(with("ef-ref", "/elsewhere/x").error().message().find("/v1/kv/"), std::string::npos);
  EXPECT_NE(with("ef-ref", "/v1/kv/onlyns").error().message().find("<namespace>/<key>"),
            std::string::npos);
  EXPECT_FALSE(with("ef-ref", "/v1/kv/ns/%zz"));
  EXPECT_NE(with("ef-size", "12x").error().message().find("ef-size"), std::string::npos);
  EXPECT_NE(with("ef-size", "4").error().message().find("payload has 3"), std::string::npos);
  EXPECT_NE(with("ef-data", "maybe").error().message().find("ef-data"), std::string::npos);
  EXPECT_NE(with("ef-data", "ref").error().message().find("no ef-ref"), std::string::npos);
  EXPECT_FALSE(with("ef-produced-at", "-x"));
}

TEST(EnvelopeTest, KeyChangesRoundTrip) {
  for (Envelope::Change change : {Envelope::Change::kPut, Envelope::Change::kDelete}) {
    Envelope in;
    in.item_id = "front/1";
    in.ref = ItemRef{"cams", "front/1", "0000000000000002-00000000000000bb"};
    in.size = change == Envelope::Change::kPut ? 42 : 0;
    in.inline_data = false;
    in.change = change;
    MqttMessage message;
    WriteEnvelope(in, &message);
    ASSERT_NE(message.UserProperty("ef-change"), nullptr);
    EXPECT_EQ(*message.UserProperty("ef-change"),
              change == Envelope::Change::kPut ? "put" : "delete");

    auto out = ReadEnvelope(message);
    ASSERT_TRUE(out) << out.error().ToString();
    EXPECT_EQ(out->change, change);
    ASSERT_TRUE(out->ref);
    EXPECT_EQ(out->ref->ns, "cams");
    EXPECT_EQ(out->ref->key, "front/1");
    EXPECT_EQ(out->ref->version, in.ref->version);
    EXPECT_FALSE(out->inline_data);
    EXPECT_EQ(out->size, in.size);
  }
  // Ordinary channel messages carry no ef-change and read as none.
  Envelope plain;
  plain.ref = ItemRef{"ns", "k", ""};
  MqttMessage message;
  WriteEnvelope(plain, &message);
  EXPECT_EQ(message.UserProperty("ef-change"), nullptr);
  auto out = ReadEnvelope(message);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->change, Envelope::Change::kNone);
}

TEST(EnvelopeTest, BadKeyChangesAreInvalidArgument) {
  MqttMessage bad_value;
  bad_value.user_properties = {{"ef-ref", "/v1/kv/ns/k"}, {"ef-change", "update"}};
  auto out = ReadEnvelope(bad_value);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(out.error().message().find("ef-change"), std::string::npos) << out.error().message();

  // A change says what happened to an item, so it must say which item.
  for (const char* change : {"put", "delete"}) {
    MqttMessage no_ref;
    no_ref.user_properties = {{"ef-change", change}};
    out = ReadEnvelope(no_ref);
    ASSERT_FALSE(out) << change;
    EXPECT_EQ(out.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(out.error().message().find("ef-ref"), std::string::npos) << out.error().message();
  }
  // Case matters, like the other ef-* flags.
  MqttMessage upper;
  upper.user_properties = {{"ef-ref", "/v1/kv/ns/k"}, {"ef-change", "PUT"}};
  EXPECT_FALSE(ReadEnvelope(upper));
}

TEST(EnvelopeTest, ItemIdsSortByTimeAndDoNotCollide) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.insert(NewItemId(1'700'000'000'000 + i / 10));
  EXPECT_EQ(ids.size(), 1000u);
  EXPECT_LT(NewItemId(1000), NewItemId(1001));
  EXPECT_EQ(NewItemId(1).size(), 21u);
  EXPECT_EQ(NewTraceId().size(), 32u);
}

}  // namespace
}  // namespace edgeflow::channels
