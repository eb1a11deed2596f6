#include <gtest/gtest.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "ts/psi.h"
#include "unit/ts_test_bytes.h"

namespace edgeflow::ts {
namespace {

using test_bytes::BitwiseCrc32Mpeg2;
using test_bytes::BuildPatSection;
using test_bytes::BuildPmtSection;
using test_bytes::BuildSection;
using test_bytes::Bytes;
using test_bytes::Descriptor;
using test_bytes::EsSpec;
using test_bytes::PsiPayload;

constexpr uint8_t kStreamTypeAac = 0x0F;

std::span<const uint8_t> AsBytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// Rewrites the CRC of a section after a test changed its bytes on purpose.
void Recrc(Bytes* section) {
  section->resize(section->size() - 4);
  const uint32_t crc = BitwiseCrc32Mpeg2(*section);
  for (int shift = 24; shift >= 0; shift -= 8)
    section->push_back(static_cast<uint8_t>(crc >> shift));
}

template <typename T>
void ExpectInvalid(const Result<T>& result) {
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(result.error().message().empty());
}

TEST(Crc32Mpeg2Test, MatchesTheCatalogueCheckValue) {
  EXPECT_EQ(Crc32Mpeg2(AsBytes("123456789")), 0x0376E6E7u);
  // The test's own implementation agrees, so the sections built below carry correct CRCs.
  EXPECT_EQ(BitwiseCrc32Mpeg2(AsBytes("123456789")), 0x0376E6E7u);
}

TEST(Crc32Mpeg2Test, EmptyInputIsTheInitialValue) { EXPECT_EQ(Crc32Mpeg2({}), 0xFFFFFFFFu); }

TEST(Crc32Mpeg2Test, SectionWithItsCrcChecksToZero) {
  const Bytes section = BuildPatSection({{1, 0x1000}, {2, 0x1001}});
  EXPECT_EQ(Crc32Mpeg2(section), 0u);
  const Bytes without_crc(section.begin(), section.end() - 4);
  const uint32_t crc = Crc32Mpeg2(without_crc);
  EXPECT_EQ(crc, BitwiseCrc32Mpeg2(without_crc));
  EXPECT_NE(crc, 0u);
}

TEST(Crc32Mpeg2Test, AgreesWithBitwiseCrcOnManyLengths) {
  Bytes data;
  for (size_t i = 0; i < 300; ++i) {
    EXPECT_EQ(Crc32Mpeg2(data), BitwiseCrc32Mpeg2(data)) << "length " << i;
    data.push_back(static_cast<uint8_t>(i * 131 + 7));
  }
}

TEST(PatTest, ParsesPrograms) {
  const Bytes payload = PsiPayload(BuildPatSection({{1, 0x1000}, {0x1234, 0x1FFE}}));
  ASSERT_EQ(payload.size(), 184u);
  auto pat = ParsePat(payload);
  ASSERT_TRUE(pat.has_value()) << pat.error().ToString();
  ASSERT_EQ(pat->size(), 2u);
  EXPECT_EQ((*pat)[0].program_number, 1);
  EXPECT_EQ((*pat)[0].pmt_pid, 0x1000);
  EXPECT_EQ((*pat)[1].program_number, 0x1234);
  EXPECT_EQ((*pat)[1].pmt_pid, 0x1FFE);
}

TEST(PatTest, ParsesSectionWithoutStuffing) {
  const Bytes payload = PsiPayload(BuildPatSection({{7, 0x0042}}), 0, 0);
  ASSERT_EQ(payload.size(), 1u + 8 + 4 + 4);
  auto pat = ParsePat(payload);
  ASSERT_TRUE(pat.has_value()) << pat.error().ToString();
  ASSERT_EQ(pat->size(), 1u);
  EXPECT_EQ((*pat)[0].program_number, 7);
  EXPECT_EQ((*pat)[0].pmt_pid, 0x0042);
}

TEST(PatTest, AppliesPointerField) {
  // The bytes skipped by the pointer field look like a PAT for another PID: reading them as the
  // section would give a different answer (or a CRC error).
  const Bytes decoy = BuildPatSection({{9, 0x0999}});
  Bytes payload = PsiPayload(BuildPatSection({{1, 0x0100}}), static_cast<uint8_t>(decoy.size()));
  std::copy(decoy.begin(), decoy.end(), payload.begin() + 1);
  auto pat = ParsePat(payload);
  ASSERT_TRUE(pat.has_value()) << pat.error().ToString();
  ASSERT_EQ(pat->size(), 1u);
  EXPECT_EQ((*pat)[0].program_number, 1);
  EXPECT_EQ((*pat)[0].pmt_pid, 0x0100);
}

TEST(PatTest, RejectsPointerFieldPastThePayload) {
  Bytes payload = PsiPayload(BuildPatSection({{1, 0x0100}}));
  payload[0] = 200;  // past the 184 bytes
  ExpectInvalid(ParsePat(payload));
  payload[0] = 183;  // leaves nothing for the section
  ExpectInvalid(ParsePat(payload));
}

TEST(PatTest, RejectsBadCrc) {
  Bytes section = BuildPatSection({{1, 0x0100}});
  section[section.size() - 1] ^= 0x01;
  ExpectInvalid(ParsePat(PsiPayload(section)));

  // A changed PID with the old CRC.
  Bytes changed = BuildPatSection({{1, 0x0100}});
  changed[11] ^= 0x01;
  ExpectInvalid(ParsePat(PsiPayload(changed)));
}

TEST(PatTest, RejectsSectionLengthPastTheBytes) {
  Bytes section = BuildPatSection({{1, 0x0100}});
  const Bytes exact = PsiPayload(section, 0, 0);
  // Cut off the CRC's last byte.
  ExpectInvalid(ParsePat(std::span(exact).first(exact.size() - 1)));
  // A section_length larger than what follows, even within a stuffed payload.
  section[1] = static_cast<uint8_t>(0xB0 | 0x03);
  section[2] = 0xFF;  // 1023 bytes
  Recrc(&section);
  ExpectInvalid(ParsePat(PsiPayload(section)));
}

TEST(PatTest, RejectsTruncatedSection) {
  const Bytes payload = PsiPayload(BuildPatSection({{1, 0x0100}}), 0, 0);
  for (size_t size : {0u, 1u, 2u, 3u, 4u, 8u, 12u}) {
    SCOPED_TRACE(size);
    ExpectInvalid(ParsePat(std::span(payload).first(size)));
  }
}

TEST(PatTest, RejectsWrongTableId) {
  Bytes section = BuildPatSection({{1, 0x0100}});
  section[0] = 0x02;  // a PMT's table id
  Recrc(&section);
  ExpectInvalid(ParsePat(PsiPayload(section)));
  // And the other way round: a PAT is not a PMT.
  ExpectInvalid(ParsePmt(PsiPayload(BuildPatSection({{1, 0x0100}}))));
}

TEST(PmtTest, ParsesStreams) {
  const Bytes section =
      BuildPmtSection(1, 0x0100, {{kStreamTypeH264, 0x0100, {}}, {kStreamTypeAac, 0x0101, {}}});
  auto pmt = ParsePmt(PsiPayload(section));
  ASSERT_TRUE(pmt.has_value()) << pmt.error().ToString();
  EXPECT_EQ(pmt->program_number, 1);
  EXPECT_EQ(pmt->pcr_pid, 0x0100);
  ASSERT_EQ(pmt->streams.size(), 2u);
  EXPECT_EQ(pmt->streams[0].stream_type, kStreamTypeH264);
  EXPECT_EQ(pmt->streams[0].pid, 0x0100);
  EXPECT_EQ(pmt->streams[1].stream_type, kStreamTypeAac);
  EXPECT_EQ(pmt->streams[1].pid, 0x0101);
}

TEST(PmtTest, ParsesH265Stream) {
  const Bytes section = BuildPmtSection(0x0abc, 0x1FFF, {{kStreamTypeH265, 0x01E1, {}}});
  auto pmt = ParsePmt(PsiPayload(section, 3));
  ASSERT_TRUE(pmt.has_value()) << pmt.error().ToString();
  EXPECT_EQ(pmt->program_number, 0x0abc);
  EXPECT_EQ(pmt->pcr_pid, 0x1FFF);
  ASSERT_EQ(pmt->streams.size(), 1u);
  EXPECT_EQ(pmt->streams[0].stream_type, kStreamTypeH265);
  EXPECT_EQ(pmt->streams[0].pid, 0x01E1);
}

TEST(PmtTest, SkipsProgramAndStreamDescriptors) {
  // Descriptor bytes that would read as streams if the lengths were not honoured.
  const Bytes program_info =
      test_bytes::Concat({Descriptor(0x05, 4, kStreamTypeH265), Descriptor(0x0E, 3, 0x1B)});
  const Bytes video_descriptors = Descriptor(0x28, 4, 0x24);
  const Bytes audio_descriptors =
      test_bytes::Concat({Descriptor(0x0A, 4, 0x65), Descriptor(0x52, 1, 0x01)});
  const Bytes section = BuildPmtSection(5, 0x0100,
                                        {{kStreamTypeH264, 0x0100, video_descriptors},
                                         {kStreamTypeAac, 0x0101, audio_descriptors},
                                         {0x06, 0x0102, {}}},
                                        program_info);
  auto pmt = ParsePmt(PsiPayload(section, 1));
  ASSERT_TRUE(pmt.has_value()) << pmt.error().ToString();
  EXPECT_EQ(pmt->program_number, 5);
  ASSERT_EQ(pmt->streams.size(), 3u);
  EXPECT_EQ(pmt->streams[0].stream_type, kStreamTypeH264);
  EXPECT_EQ(pmt->streams[0].pid, 0x0100);
  EXPECT_EQ(pmt->streams[1].stream_type, kStreamTypeAac);
  EXPECT_EQ(pmt->streams[1].pid, 0x0101);
  EXPECT_EQ(pmt->streams[2].stream_type, 0x06);
  EXPECT_EQ(pmt->streams[2].pid, 0x0102);
}

TEST(PmtTest, ParsesProgramWithoutStreams) {
  auto pmt = ParsePmt(PsiPayload(BuildPmtSection(1, 0x0100, {})));
  ASSERT_TRUE(pmt.has_value()) << pmt.error().ToString();
  EXPECT_TRUE(pmt->streams.empty());
}

TEST(PmtTest, RejectsBadCrc) {
  Bytes section = BuildPmtSection(1, 0x0100, {{kStreamTypeH264, 0x0100, {}}});
  section[section.size() - 4] ^= 0x80;
  ExpectInvalid(ParsePmt(PsiPayload(section)));
}

TEST(PmtTest, RejectsWrongTableId) {
  Bytes section = BuildPmtSection(1, 0x0100, {{kStreamTypeH264, 0x0100, {}}});
  section[0] = 0x00;
  Recrc(&section);
  ExpectInvalid(ParsePmt(PsiPayload(section)));
  section[0] = 0x42;  // an SDT
  Recrc(&section);
  ExpectInvalid(ParsePmt(PsiPayload(section)));
}

TEST(PmtTest, RejectsTruncatedSection) {
  const Bytes payload = PsiPayload(
      BuildPmtSection(1, 0x0100, {{kStreamTypeH264, 0x0100, Descriptor(0x28, 4)}}), 0, 0);
  for (size_t cut = 1; cut < payload.size(); cut += 3) {
    SCOPED_TRACE(cut);
    ExpectInvalid(ParsePmt(std::span(payload).first(payload.size() - cut)));
  }
}

TEST(PmtTest, RejectsSectionLengthPastTheBytes) {
  Bytes section = BuildPmtSection(1, 0x0100, {{kStreamTypeH264, 0x0100, {}}});
  const size_t declared = (static_cast<size_t>(section[1] & 0x0F) << 8) | section[2];
  // One byte more than is there, in a payload without stuffing.
  section[2] = static_cast<uint8_t>(declared + 1);
  Recrc(&section);
  ExpectInvalid(ParsePmt(PsiPayload(section, 0, 0)));
}

TEST(PmtTest, RejectsDescriptorLengthsPastTheSection) {
  // program_info_length larger than the section; the CRC is right, so only the length check can
  // catch it.
  Bytes section = BuildPmtSection(1, 0x0100, {{kStreamTypeH264, 0x0100, {}}});
  section[10] = 0xF0 | 0x03;
  section[11] = 0xFF;
  Recrc(&section);
  ExpectInvalid(ParsePmt(PsiPayload(section)));

  // An ES_info_length running past the section.
  Bytes es = BuildPmtSection(1, 0x0100, {{kStreamTypeH264, 0x0100, {}}});
  es[12 + 3] = 0xF0;
  es[12 + 4] = 0x40;
  Recrc(&es);
  ExpectInvalid(ParsePmt(PsiPayload(es)));
}

}  // namespace
}  // namespace edgeflow::ts
