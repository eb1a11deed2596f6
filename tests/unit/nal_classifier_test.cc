#include "ts/nal_classifier.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "ts/frame_class.h"
#include "unit/ts_test_bytes.h"

namespace edgeflow::ts {
namespace {

using test_bytes::BitWriter;
using test_bytes::Bytes;
using test_bytes::Concat;
namespace h264 = test_bytes::h264;
namespace h265 = test_bytes::h265;

PictureInfo Classify264(const Bytes& es) { return ClassifyPicture(VideoCodec::kH264, es); }
PictureInfo Classify265(const Bytes& es) { return ClassifyPicture(VideoCodec::kH265, es); }

void ExpectPicture(const PictureInfo& info, FrameClass frame_class, char slice_type,
                   bool found_slice) {
  EXPECT_EQ(info.frame_class, frame_class) << FrameClassName(info.frame_class);
  EXPECT_EQ(info.slice_type, slice_type);
  EXPECT_EQ(info.found_slice, found_slice);
}

TEST(FrameClassTest, NamesAreDistinct) {
  const std::set<std::string> names = {std::string(FrameClassName(FrameClass::kUnknown)),
                                       std::string(FrameClassName(FrameClass::kReference)),
                                       std::string(FrameClassName(FrameClass::kDifferential))};
  EXPECT_EQ(names.size(), 3u);
  for (const std::string& name : names) EXPECT_FALSE(name.empty());
  // The numeric values are shared with the kernel fan-out.
  EXPECT_EQ(static_cast<int>(FrameClass::kUnknown), 0);
  EXPECT_EQ(static_cast<int>(FrameClass::kReference), 1);
  EXPECT_EQ(static_cast<int>(FrameClass::kDifferential), 2);
}

TEST(H264ClassifierTest, IdrSliceIsReference) {
  ExpectPicture(Classify264(h264::Slice(h264::kIdr, 7)), FrameClass::kReference, 'I', true);
  ExpectPicture(Classify264(h264::Slice(h264::kIdr, 2)), FrameClass::kReference, 'I', true);
}

TEST(H264ClassifierTest, NonIdrSliceIsClassifiedBySliceType) {
  struct Case {
    uint32_t slice_type;
    FrameClass frame_class;
    char name;  // 0: not checked (SP and SI have no letter of their own)
  };
  const Case cases[] = {
      {0, FrameClass::kDifferential, 'P'}, {1, FrameClass::kDifferential, 'B'},
      {2, FrameClass::kReference, 'I'},    {3, FrameClass::kDifferential, 0},
      {4, FrameClass::kReference, 0},      {5, FrameClass::kDifferential, 'P'},
      {6, FrameClass::kDifferential, 'B'}, {7, FrameClass::kReference, 'I'},
      {8, FrameClass::kDifferential, 0},   {9, FrameClass::kReference, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.slice_type);
    const PictureInfo info = Classify264(h264::Slice(h264::kSlice, c.slice_type));
    EXPECT_EQ(info.frame_class, c.frame_class);
    EXPECT_TRUE(info.found_slice);
    if (c.name != 0) {
      EXPECT_EQ(info.slice_type, c.name);
    }
  }
}

TEST(H264ClassifierTest, NalRefIdcTellsWhetherThePictureIsReferenced) {
  // nal_ref_idc 0: a picture nothing references; its class still comes from slice_type.
  const PictureInfo b = Classify264(h264::Nal(h264::kSlice, h264::SliceRbsp(1), 0));
  ExpectPicture(b, FrameClass::kDifferential, 'B', true);
  EXPECT_FALSE(b.referenced);
  const PictureInfo p = Classify264(h264::Nal(h264::kSlice, h264::SliceRbsp(0), 0));
  EXPECT_EQ(p.frame_class, FrameClass::kDifferential);
  EXPECT_FALSE(p.referenced);
  // Any non-zero nal_ref_idc is referenced: a B picture too (B-pyramids).
  for (uint8_t ref_idc : {1, 2, 3}) {
    SCOPED_TRACE(static_cast<int>(ref_idc));
    const PictureInfo referenced_b =
        Classify264(Concat({h264::Aud(2), h264::Nal(h264::kSlice, h264::SliceRbsp(6), ref_idc)}));
    EXPECT_EQ(referenced_b.slice_type, 'B');
    EXPECT_TRUE(referenced_b.referenced);
  }
  EXPECT_TRUE(Classify264(h264::Slice(h264::kIdr, 7)).referenced);
}

TEST(H264ClassifierTest, ReferencedIsTrueWhenUnknown) {
  EXPECT_TRUE(Classify264({}).referenced);
  EXPECT_TRUE(Classify264(Bytes(30, 0xFF)).referenced);
  // An AUD's own nal_ref_idc is 0 by rule; it says nothing about the picture.
  EXPECT_TRUE(Classify264(Concat({h264::Aud(0), h264::Sei(10)})).referenced);
  EXPECT_TRUE(Classify264(Concat({h264::Aud(7), h264::Sei(10)})).referenced);
}

TEST(H264ClassifierTest, SliceTypeOverNineIsNotASliceType) {
  // slice_type is 0..9 (H.264 7.4.3); a larger value is a damaged or misread header, which must
  // not pass for an I, P or B picture (10 and 12 would be 'I' and 'P' taken modulo 5).
  for (uint32_t slice_type : {10u, 11u, 12u, 14u, 17u, 387u}) {
    SCOPED_TRACE(slice_type);
    const PictureInfo info = Classify264(h264::Slice(h264::kSlice, slice_type));
    EXPECT_EQ(info.frame_class, FrameClass::kUnknown) << FrameClassName(info.frame_class);
    EXPECT_EQ(info.slice_type, '?');
  }
}

TEST(H264ClassifierTest, SkipsAudParameterSetsAndSei) {
  const Bytes es =
      Concat({h264::Aud(2), h264::Sps(), h264::Pps(), h264::Sei(40), h264::Slice(h264::kSlice, 5)});
  ExpectPicture(Classify264(es), FrameClass::kDifferential, 'P', true);

  const Bytes b = Concat({h264::Aud(2), h264::Sei(20), h264::Slice(h264::kSlice, 6)});
  ExpectPicture(Classify264(b), FrameClass::kDifferential, 'B', true);

  const Bytes idr =
      Concat({h264::Aud(0), h264::Sps(), h264::Pps(), h264::Sei(300), h264::Slice(h264::kIdr, 7)});
  ExpectPicture(Classify264(idr), FrameClass::kReference, 'I', true);
}

TEST(H264ClassifierTest, SliceWinsOverAPermissiveAud) {
  // primary_pic_type 7 allows every slice type; the slice says P.
  const Bytes es = Concat({h264::Aud(7), h264::Slice(h264::kSlice, 0)});
  ExpectPicture(Classify264(es), FrameClass::kDifferential, 'P', true);
}

TEST(H264ClassifierTest, AudAloneGivesTheClassWhenItAllowsOnlyI) {
  const Bytes es = Concat({h264::Aud(0), h264::Sps(), h264::Pps(), h264::Sei(30)});
  ExpectPicture(Classify264(es), FrameClass::kReference, 'I', false);
  ExpectPicture(Classify264(h264::Aud(0)), FrameClass::kReference, 'I', false);
}

TEST(H264ClassifierTest, AudThatAllowsPAloneIsNotReference) {
  // primary_pic_type 1 (I or P) and 2 (I, P or B) do not tell a reference frame.
  for (uint8_t primary_pic_type : {1, 2, 7}) {
    SCOPED_TRACE(primary_pic_type);
    const PictureInfo info = Classify264(Concat({h264::Aud(primary_pic_type), h264::Sei(10)}));
    EXPECT_NE(info.frame_class, FrameClass::kReference);
    EXPECT_FALSE(info.found_slice);
  }
}

TEST(H264ClassifierTest, ThreeAndFourByteStartCodes) {
  const Bytes three = Concat({test_bytes::kStartCode3, Bytes{0x09, 0x50},  // AUD, type 2
                              h264::Slice(h264::kSlice, 1, 8, false)});
  ExpectPicture(Classify264(three), FrameClass::kDifferential, 'B', true);
  ExpectPicture(Classify264(h264::Slice(h264::kSlice, 2, 8, false)), FrameClass::kReference, 'I',
                true);
  ExpectPicture(Classify264(h264::Slice(h264::kSlice, 0, 8, true)), FrameClass::kDifferential, 'P',
                true);

  // trailing_zero_8bits between NAL units: a long run of zeros before the next start code.
  Bytes zeros = h264::Aud(2);
  zeros.insert(zeros.end(), 5, 0x00);
  const Bytes padded = Concat({zeros, h264::Slice(h264::kSlice, 0, 8, false)});
  ExpectPicture(Classify264(padded), FrameClass::kDifferential, 'P', true);
}

TEST(H264ClassifierTest, LeadingBytesBeforeTheFirstStartCodeAreIgnored) {
  const Bytes es = Concat({Bytes{0x00}, h264::Slice(h264::kSlice, 7)});
  ExpectPicture(Classify264(es), FrameClass::kReference, 'I', true);
}

TEST(H264ClassifierTest, EmulationPreventionInSliceHeader) {
  // first_mb_in_slice 2^22 - 1 codes as 22 zero bits, a one, 22 zero bits: the RBSP then holds
  // 00 00 02 and 00 00 0x, so the NAL unit carries 00 00 03 before slice_type. Read without
  // removing those bytes, slice_type comes out as a number over 9.
  struct Case {
    uint32_t slice_type;
    FrameClass frame_class;
    char name;
  };
  const Case cases[] = {{0, FrameClass::kDifferential, 'P'},
                        {1, FrameClass::kDifferential, 'B'},
                        {2, FrameClass::kReference, 'I'},
                        {7, FrameClass::kReference, 'I'}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.slice_type);
    const Bytes rbsp = h264::SliceRbsp(c.slice_type, (1u << 22) - 1);
    const Bytes nal = h264::Nal(h264::kSlice, rbsp, 2);
    const Bytes escaped = test_bytes::AddEmulationPrevention(rbsp);
    ASSERT_GT(escaped.size(), rbsp.size()) << "the case must contain emulation prevention";
    ASSERT_EQ(escaped[2], 0x03);
    const PictureInfo info = Classify264(Concat({h264::Aud(2), nal}));
    EXPECT_EQ(info.frame_class, c.frame_class);
    EXPECT_EQ(info.slice_type, c.name);
    EXPECT_TRUE(info.found_slice);
  }
}

TEST(H264ClassifierTest, EmulationPreventionInSkippedSeiHidesNoStartCode) {
  // 00 00 03 01 inside an SEI is not a start code; a scanner that took it for one would find a
  // "NAL unit" of type 1 with garbage after it.
  const Bytes sei_payload = {0x00, 0x00, 0x01, 0x21, 0x00, 0x00, 0x01, 0x65, 0x88};
  const Bytes es = Concat({h264::Aud(2), h264::Sei(30, sei_payload), h264::Slice(h264::kSlice, 1)});
  const Bytes escaped_start_code = {0x00, 0x00, 0x03, 0x01};
  ASSERT_NE(std::search(es.begin(), es.end(), escaped_start_code.begin(), escaped_start_code.end()),
            es.end())
      << "the SEI must hold 00 00 03 01";
  ExpectPicture(Classify264(es), FrameClass::kDifferential, 'B', true);
}

TEST(H264ClassifierTest, TruncatedSliceHeaderIsUnknownAndNothingPastTheSpanIsRead) {
  // The whole buffer holds an I slice; only a prefix of it is handed over, cut before slice_type
  // is complete. Reading on into the rest of the buffer would find 'I'.
  BitWriter header;
  header.Ue(600);  // 19 bits
  header.Ue(7);    // 0001000, bits 19..25: across the third and fourth bytes
  header.Ue(0);
  header.Trailing();
  Bytes rbsp = header.bytes();
  rbsp.insert(rbsp.end(), 16, 0x5A);
  const Bytes whole = Concat({h264::Aud(2), h264::Nal(h264::kSlice, rbsp, 2)});
  ExpectPicture(Classify264(whole), FrameClass::kReference, 'I', true);

  const size_t slice_start = h264::Aud(2).size() + 4 + 1;  // after the start code and NAL header
  // Kept bytes 3 ends inside slice_type's code, after its leading zeros and its one bit: a reader
  // that took missing bits for zeros would decode 7 ('I').
  for (size_t kept : {0u, 1u, 2u, 3u}) {
    SCOPED_TRACE(kept);
    const std::span<const uint8_t> cut = std::span(whole).first(slice_start + kept);
    const PictureInfo info = ClassifyPicture(VideoCodec::kH264, cut);
    EXPECT_EQ(info.frame_class, FrameClass::kUnknown);
    EXPECT_NE(info.slice_type, 'I');
  }
}

TEST(H264ClassifierTest, TruncatedInsideSliceTypeCode) {
  // slice_type 7 codes as 0001000; with first_mb_in_slice 0 ("1") it spans bits 1..7 of the first
  // byte. Here first_mb_in_slice 6 (00111) pushes it across the byte boundary (bits 5..11).
  BitWriter header;
  header.Ue(6);
  header.Ue(7);
  header.Ue(0);
  header.Trailing();
  Bytes rbsp = header.bytes();
  rbsp.insert(rbsp.end(), 8, 0x5A);
  const Bytes whole = h264::Nal(h264::kSlice, rbsp, 2);
  ExpectPicture(Classify264(whole), FrameClass::kReference, 'I', true);
  const PictureInfo info = ClassifyPicture(VideoCodec::kH264, std::span(whole).first(4 + 1 + 1));
  EXPECT_EQ(info.frame_class, FrameClass::kUnknown);
}

TEST(H264ClassifierTest, EmptyAndGarbageAreUnknown) {
  ExpectPicture(Classify264({}), FrameClass::kUnknown, '?', false);

  const std::vector<Bytes> garbage = {
      Bytes(64, 0xFF),
      Bytes(64, 0x00),
      test_bytes::NonZeroFiller(200),
      {0x00, 0x00, 0x01},
      {0x00, 0x00, 0x00, 0x01},
      {0x00, 0x00, 0x01, 0x00, 0x00, 0x01},
      {0x47, 0x40, 0x00, 0x10, 0x00, 0x00, 0xB0, 0x0D},  // a TS packet header, not an ES
  };
  for (const Bytes& bytes : garbage) {
    SCOPED_TRACE(bytes.size());
    const PictureInfo info = Classify264(bytes);
    EXPECT_EQ(info.frame_class, FrameClass::kUnknown);
    EXPECT_FALSE(info.found_slice);
  }
}

TEST(H264ClassifierTest, ParameterSetsAloneAreUnknown) {
  const PictureInfo info = Classify264(Concat({h264::Sps(), h264::Pps(), h264::Sei(10)}));
  ExpectPicture(info, FrameClass::kUnknown, '?', false);
}

TEST(H264ClassifierTest, UnknownCodecIsUnknown) {
  const PictureInfo info = ClassifyPicture(VideoCodec::kUnknown, h264::Slice(h264::kIdr, 7));
  EXPECT_EQ(info.frame_class, FrameClass::kUnknown);
}

TEST(H265ClassifierTest, IrapPicturesAreReference) {
  for (uint8_t type : {h265::kBlaWLp, h265::kIdrWRadl, h265::kIdrNLp, h265::kCra, uint8_t{23}}) {
    SCOPED_TRACE(static_cast<int>(type));
    ExpectPicture(Classify265(h265::Nal(type)), FrameClass::kReference, '?', true);
  }
}

TEST(H265ClassifierTest, TrailingAndLeadingPicturesAreDifferential) {
  for (uint8_t type :
       {h265::kTrailN, h265::kTrailR, uint8_t{2}, uint8_t{6}, h265::kRaslN, uint8_t{9}}) {
    SCOPED_TRACE(static_cast<int>(type));
    ExpectPicture(Classify265(h265::Nal(type)), FrameClass::kDifferential, '?', true);
  }
}

TEST(H265ClassifierTest, SkipsParameterSetsAudAndSei) {
  const Bytes idr = Concat({h265::Nal(h265::kAud, 1), h265::Nal(h265::kVps, 20),
                            h265::Nal(h265::kSps, 30), h265::Nal(h265::kPps, 6),
                            h265::Nal(h265::kPrefixSei, 40), h265::Nal(h265::kIdrWRadl, 50)});
  ExpectPicture(Classify265(idr), FrameClass::kReference, '?', true);

  const Bytes cra = Concat({h265::Nal(h265::kVps, 20, false), h265::Nal(h265::kSps, 30, false),
                            h265::Nal(h265::kPps, 6, false), h265::Nal(h265::kAud, 1, false),
                            h265::Nal(h265::kCra, 50, false)});
  ExpectPicture(Classify265(cra), FrameClass::kReference, '?', true);

  const Bytes trail = Concat(
      {h265::Nal(h265::kAud, 1), h265::Nal(h265::kPrefixSei, 10), h265::Nal(h265::kTrailR, 50)});
  ExpectPicture(Classify265(trail), FrameClass::kDifferential, '?', true);
}

TEST(H265ClassifierTest, SubLayerNonReferenceTypesAreNotReferenced) {
  // TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N (even types 0..8) versus their _R counterparts.
  for (uint8_t type = 0; type <= 9; ++type) {
    SCOPED_TRACE(static_cast<int>(type));
    const PictureInfo info = Classify265(Concat({h265::Nal(h265::kAud, 1), h265::Nal(type)}));
    EXPECT_EQ(info.frame_class, FrameClass::kDifferential);
    EXPECT_EQ(info.referenced, type % 2 == 1);
  }
  for (uint8_t type : {h265::kBlaWLp, h265::kIdrWRadl, h265::kIdrNLp, h265::kCra}) {
    SCOPED_TRACE(static_cast<int>(type));
    EXPECT_TRUE(Classify265(h265::Nal(type)).referenced);
  }
  EXPECT_TRUE(Classify265({}).referenced);
}

TEST(H265ClassifierTest, ParameterSetsAloneAreUnknown) {
  const Bytes es = Concat({h265::Nal(h265::kAud, 1), h265::Nal(h265::kVps, 20),
                           h265::Nal(h265::kSps, 30), h265::Nal(h265::kPps, 6)});
  ExpectPicture(Classify265(es), FrameClass::kUnknown, '?', false);
  ExpectPicture(Classify265({}), FrameClass::kUnknown, '?', false);
  ExpectPicture(Classify265(Bytes(40, 0xFF)), FrameClass::kUnknown, '?', false);
}

}  // namespace
}  // namespace edgeflow::ts
