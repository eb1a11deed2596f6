#include "ts/ts_packet.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "unit/ts_test_bytes.h"

namespace edgeflow::ts {
namespace {

using test_bytes::AdaptationSpec;
using test_bytes::BuildPacket;
using test_bytes::Bytes;
using test_bytes::NonZeroFiller;

void ExpectInvalid(const Bytes& bytes, const char* why) {
  SCOPED_TRACE(why);
  auto parsed = ParsePacket(bytes);
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(parsed.error().message().empty());
}

// The payload span must point into the parsed bytes, not into a copy.
void ExpectPayloadAt(const TsPacket& packet, const Bytes& bytes, size_t offset) {
  EXPECT_EQ(packet.payload.data(), bytes.data() + offset);
  EXPECT_EQ(packet.payload.size(), bytes.size() - offset);
}

TEST(TsPacketTest, ParsesPlainPacket) {
  const Bytes payload = NonZeroFiller(184);
  const Bytes bytes = BuildPacket(0x0123, true, 7, payload);
  ASSERT_EQ(bytes[3] >> 4, 1);  // payload only

  auto parsed = ParsePacket(bytes);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(parsed->pid, 0x0123);
  EXPECT_TRUE(parsed->payload_unit_start);
  EXPECT_EQ(parsed->continuity_counter, 7);
  EXPECT_FALSE(parsed->transport_error);
  EXPECT_EQ(parsed->scrambling, 0);
  EXPECT_FALSE(parsed->adaptation.has_value());
  ExpectPayloadAt(*parsed, bytes, 4);
  EXPECT_EQ(Bytes(parsed->payload.begin(), parsed->payload.end()), payload);
}

TEST(TsPacketTest, ParsesEveryHeaderField) {
  Bytes bytes = BuildPacket(0x1FFF, false, 15, NonZeroFiller(184));
  bytes[1] |= 0x80;  // transport_error_indicator
  bytes[3] |= 0x80;  // transport_scrambling_control = 2
  auto parsed = ParsePacket(bytes);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(parsed->pid, kNullPid);
  EXPECT_FALSE(parsed->payload_unit_start);
  EXPECT_TRUE(parsed->transport_error);
  EXPECT_EQ(parsed->scrambling, 2);
  EXPECT_EQ(parsed->continuity_counter, 15);

  // The same bits elsewhere must not leak into neighbouring fields.
  Bytes other = BuildPacket(0x0A5A, true, 0, NonZeroFiller(184));
  other[3] |= 0x40;  // scrambling = 1
  auto second = ParsePacket(other);
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  EXPECT_EQ(second->pid, 0x0A5A);
  EXPECT_TRUE(second->payload_unit_start);
  EXPECT_FALSE(second->transport_error);
  EXPECT_EQ(second->scrambling, 1);
  EXPECT_EQ(second->continuity_counter, 0);
}

TEST(TsPacketTest, ParsesAdaptationFieldWithPcr) {
  // A 33-bit base above 2^32 and a non-zero extension: a 32-bit intermediate or a wrong shift
  // shows up in the 27 MHz value.
  const uint64_t base = 0x1'2345'6789;
  const uint16_t extension = 0x155;
  const Bytes payload = NonZeroFiller(100);
  const Bytes bytes = BuildPacket(
      0x0100, true, 3, payload,
      AdaptationSpec{.random_access = true, .pcr_base = base, .pcr_extension = extension});
  ASSERT_EQ(bytes[3] >> 4, 3);

  auto parsed = ParsePacket(bytes);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  ASSERT_TRUE(parsed->adaptation.has_value());
  EXPECT_TRUE(parsed->adaptation->random_access);
  EXPECT_FALSE(parsed->adaptation->discontinuity);
  EXPECT_FALSE(parsed->adaptation->es_priority);
  ASSERT_TRUE(parsed->adaptation->pcr.has_value());
  EXPECT_EQ(*parsed->adaptation->pcr, base * 300 + extension);
  ExpectPayloadAt(*parsed, bytes, 188 - payload.size());
  EXPECT_EQ(Bytes(parsed->payload.begin(), parsed->payload.end()), payload);
}

TEST(TsPacketTest, ParsesLargestPcr) {
  const uint64_t base = (uint64_t{1} << 33) - 1;
  const Bytes bytes = BuildPacket(0x0100, false, 0, NonZeroFiller(10),
                                  AdaptationSpec{.pcr_base = base, .pcr_extension = 299});
  auto parsed = ParsePacket(bytes);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  ASSERT_TRUE(parsed->adaptation && parsed->adaptation->pcr);
  EXPECT_EQ(*parsed->adaptation->pcr, base * 300 + 299);
  EXPECT_FALSE(parsed->adaptation->random_access);
}

TEST(TsPacketTest, ParsesAdaptationFlagsWithoutPcr) {
  const Bytes bytes = BuildPacket(
      0x0042, false, 9, NonZeroFiller(50),
      AdaptationSpec{.discontinuity = true, .random_access = false, .es_priority = true});
  auto parsed = ParsePacket(bytes);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  ASSERT_TRUE(parsed->adaptation.has_value());
  EXPECT_TRUE(parsed->adaptation->discontinuity);
  EXPECT_FALSE(parsed->adaptation->random_access);
  EXPECT_TRUE(parsed->adaptation->es_priority);
  EXPECT_FALSE(parsed->adaptation->pcr.has_value());
  ExpectPayloadAt(*parsed, bytes, 188 - 50);
}

TEST(TsPacketTest, AdaptationOnlyPacketHasEmptyPayload) {
  const Bytes bytes = BuildPacket(0x0100, false, 4, {}, AdaptationSpec{.random_access = true});
  ASSERT_EQ(bytes[3] >> 4, 2);
  ASSERT_EQ(bytes[4], 183);
  auto parsed = ParsePacket(bytes);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_TRUE(parsed->payload.empty());
  ASSERT_TRUE(parsed->adaptation.has_value());
  EXPECT_TRUE(parsed->adaptation->random_access);
  EXPECT_EQ(parsed->continuity_counter, 4);
}

TEST(TsPacketTest, ZeroLengthAdaptationFieldLeaves183PayloadBytes) {
  const Bytes payload = NonZeroFiller(183);
  const Bytes bytes = BuildPacket(0x0100, false, 1, payload);
  ASSERT_EQ(bytes[3] >> 4, 3);
  ASSERT_EQ(bytes[4], 0);
  auto parsed = ParsePacket(bytes);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  ExpectPayloadAt(*parsed, bytes, 5);
  EXPECT_EQ(Bytes(parsed->payload.begin(), parsed->payload.end()), payload);
  // A field of length 0 has no flags byte: nothing may be read from the payload as flags.
  if (parsed->adaptation) {
    EXPECT_FALSE(parsed->adaptation->random_access);
    EXPECT_FALSE(parsed->adaptation->discontinuity);
    EXPECT_FALSE(parsed->adaptation->pcr.has_value());
  }
}

TEST(TsPacketTest, RejectsWrongSizes) {
  const Bytes good = BuildPacket(0x0100, false, 0, NonZeroFiller(184));
  ExpectInvalid(Bytes(good.begin(), good.begin() + 187), "187 bytes");
  Bytes longer = good;
  longer.push_back(0x47);
  ExpectInvalid(longer, "189 bytes");
  ExpectInvalid(Bytes{}, "empty");
  ExpectInvalid(Bytes(good.begin(), good.begin() + 4), "header only");
  Bytes two = good;
  two.insert(two.end(), good.begin(), good.end());
  ExpectInvalid(two, "two packets at once");
}

TEST(TsPacketTest, RejectsMissingSyncByte) {
  Bytes bytes = BuildPacket(0x0100, false, 0, NonZeroFiller(184));
  bytes[0] = 0x48;
  ExpectInvalid(bytes, "0x48");
  bytes[0] = 0x00;
  ExpectInvalid(bytes, "0x00");
}

TEST(TsPacketTest, RejectsAdaptationFieldRunningPastThePacket) {
  Bytes bytes = BuildPacket(0x0100, false, 0, NonZeroFiller(100), AdaptationSpec{});
  ASSERT_EQ(bytes[3] >> 4, 3);
  bytes[4] = 184;  // 4 + 1 + 184 = 189
  ExpectInvalid(bytes, "afc 3, length 184");
  bytes[4] = 200;
  ExpectInvalid(bytes, "afc 3, length 200");
  bytes[4] = 255;
  ExpectInvalid(bytes, "afc 3, length 255");

  Bytes only = BuildPacket(0x0100, false, 0, {}, AdaptationSpec{});
  ASSERT_EQ(only[3] >> 4, 2);
  only[4] = 184;
  ExpectInvalid(only, "afc 2, length 184");
}

TEST(TsPacketTest, RejectsReservedAdaptationFieldControl) {
  Bytes bytes = BuildPacket(0x0100, false, 0, NonZeroFiller(184));
  bytes[3] &= 0xCF;  // adaptation_field_control = 0
  ExpectInvalid(bytes, "afc 0");
}

TEST(TsPacketTest, PcrFlagInAFieldTooShortForAPcrIsNotReadFromThePayload) {
  // adaptation_field_length 1 holds only the flags byte; a PCR flag there would have the PCR
  // read out of the payload. Either the packet is rejected or no PCR is reported.
  Bytes payload(182, 0x11);
  Bytes bytes = BuildPacket(0x0100, false, 0, payload, AdaptationSpec{});
  ASSERT_EQ(bytes[4], 1);
  bytes[5] = 0x10;  // PCR_flag
  auto parsed = ParsePacket(bytes);
  if (parsed.has_value()) {
    ASSERT_TRUE(parsed->adaptation.has_value());
    EXPECT_FALSE(parsed->adaptation->pcr.has_value());
    ExpectPayloadAt(*parsed, bytes, 6);
  } else {
    EXPECT_EQ(parsed.error().code(), ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace edgeflow::ts
