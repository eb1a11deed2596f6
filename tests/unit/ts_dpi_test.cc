// The in-kernel inspection's decisions (src/fanout/bpf/ts_dpi.h) on crafted TS packets: what each
// picture start is classified as, which packets are not TS at all, and that nothing outside the
// 188 bytes is read. The comparison with the reference parser on real encoder output is in
// tests/integration/ts_dpi_test.cc.
#include "fanout/bpf/ts_dpi.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace edgeflow::fanout {
namespace {

constexpr uint16_t kVideoPid = 0x100;

struct PacketSpec {
  uint16_t pid = kVideoPid;
  bool pusi = false;
  bool random_access = false;
  std::vector<uint8_t> payload;  // at most 184 bytes (less with the adaptation field)
};

// A TS packet: header, an adaptation field when random_access is asked for (or to pad), payload.
std::array<uint8_t, EF_TS_PACKET_BYTES> Packet(const PacketSpec& spec) {
  std::array<uint8_t, EF_TS_PACKET_BYTES> p{};
  p[0] = EF_TS_SYNC_BYTE;
  p[1] = static_cast<uint8_t>((spec.pusi ? 0x40 : 0) | ((spec.pid >> 8) & 0x1F));
  p[2] = static_cast<uint8_t>(spec.pid & 0xFF);
  const size_t room = EF_TS_PACKET_BYTES - 4;
  const bool adaptation = spec.random_access || spec.payload.size() < room;
  p[3] = static_cast<uint8_t>((adaptation ? 0x30 : 0x10));
  size_t at = 4;
  if (adaptation) {
    const size_t length = room - 1 - spec.payload.size();
    p[4] = static_cast<uint8_t>(length);
    if (length > 0) {
      p[5] = spec.random_access ? 0x40 : 0x00;
      for (size_t i = 6; i < 5 + length; ++i) p[i] = 0xFF;  // stuffing
    }
    at = 5 + length;
  }
  for (size_t i = 0; i < spec.payload.size() && at + i < p.size(); ++i) p[at + i] = spec.payload[i];
  return p;
}

// A video PES header (stream_id 0xE0, no PTS, header_data_length 0) followed by `es`.
std::vector<uint8_t> Pes(std::initializer_list<std::vector<uint8_t>> nals) {
  std::vector<uint8_t> out = {0, 0, 1, 0xE0, 0, 0, 0x80, 0x00, 0x00};
  for (const auto& nal : nals) {
    out.insert(out.end(), {0, 0, 0, 1});
    out.insert(out.end(), nal.begin(), nal.end());
  }
  return out;
}

// H.264 NAL units. A slice header starts with first_mb_in_slice = 0 ('1') and slice_type as
// ue(v): 0 -> '1', 1 -> '010', 2 -> '011', 5 -> '00110', 7 -> '0001000'.
const std::vector<uint8_t> kAud264 = {0x09, 0xF0};          // primary_pic_type 7: anything
const std::vector<uint8_t> kAud264Intra = {0x09, 0x10};     // primary_pic_type 0: I only
const std::vector<uint8_t> kSps264 = {0x67, 0x42, 0x00, 0x1E, 0xAB};
const std::vector<uint8_t> kIdr264 = {0x65, 0x88, 0x84};    // nal_ref_idc 3, type 5
const std::vector<uint8_t> kP264 = {0x41, 0x9A, 0x00};  // ref_idc 2, type 1: '1', '00110' (5, P)

struct Inspection {
  ef_stream_state state;
  Inspection() { ef_stream_state_init(&state, EF_CODEC_AUTO); }
  ef_ts_verdict Inspect(const PacketSpec& spec) {
    const auto p = Packet(spec);
    return ef_inspect_ts_packet(&state, p.data());
  }
};

TEST(TsDpiTest, SliceTypesDecideTheClass) {
  // first_mb_in_slice '1', slice_type: '1' (0, P), '010' (1, B), '011' (2, I), '00110' (5, P),
  // '0001000' (7, I) -- packed MSB first after the NAL header byte.
  struct Case {
    std::vector<uint8_t> slice;
    uint8_t expected;
    bool referenced;
  };
  const Case cases[] = {
      {{0x41, 0b11000000}, EF_CLASS_DIFFERENTIAL, true},   // P, ref_idc 2
      {{0x01, 0b10100000}, EF_CLASS_DIFFERENTIAL, false},  // B, ref_idc 0
      {{0x21, 0b10110000}, EF_CLASS_REFERENCE, true},      // I (non-IDR), ref_idc 1
      {{0x41, 0b10011000}, EF_CLASS_DIFFERENTIAL, true},   // slice_type 5: P
      {{0x61, 0b10001000, 0b00000000}, EF_CLASS_REFERENCE, true},  // slice_type 7: I
      {{0x65, 0b10110000}, EF_CLASS_REFERENCE, true},      // IDR
  };
  for (const Case& c : cases) {
    Inspection run;
    const auto v = run.Inspect({.pusi = true, .payload = Pes({kAud264, kSps264, c.slice})});
    EXPECT_EQ(v.valid, 1);
    EXPECT_EQ(v.frame_start, 1);
    EXPECT_EQ(v.klass, c.expected) << static_cast<int>(c.slice[0]);
    if (c.expected == EF_CLASS_DIFFERENTIAL) {
      EXPECT_EQ(v.referenced, c.referenced);
    }
    EXPECT_EQ(run.state.codec, EF_CODEC_H264);
    EXPECT_EQ(run.state.video_pid, kVideoPid);
    // The next packet of the picture (no PES start) carries the same class.
    const auto next = run.Inspect({.payload = std::vector<uint8_t>(184, 0xAB)});
    EXPECT_EQ(next.klass, c.expected);
    EXPECT_EQ(next.frame_start, 0);
  }
}

TEST(TsDpiTest, ADamagedSliceTypeIsNotTakenModuloFive) {
  // slice_type 10 ('0001011' after first_mb_in_slice '1'): taken modulo 5 it would be a P slice;
  // it is no slice type at all, so the flags decide (none here: unknown, never dropped).
  Inspection run;
  EXPECT_EQ(run.Inspect({.pusi = true, .payload = Pes({kAud264, {0x41, 0x8B, 0x84}})}).klass,
            EF_CLASS_UNKNOWN);
  Inspection flagged;
  EXPECT_EQ(flagged.Inspect({.pusi = true, .random_access = true,
                             .payload = Pes({kAud264, {0x41, 0x8B, 0x84}})})
                .klass,
            EF_CLASS_REFERENCE);
}

TEST(TsDpiTest, EmulationPreventionBytesAreSkippedInTheSliceHeader) {
  // first_mb_in_slice = 2^23 - 1 (23 zeros, '1', 23 zeros) then slice_type 2 ('011', I). As RBSP:
  // 00 00 01 00 00 00 C0; on the wire each 00 00 before a byte <= 3 gets an 03 inserted. Read
  // without dropping the 03s, the slice type would come out as something else.
  const std::vector<uint8_t> slice = {0x21, 0x00, 0x00, 0x03, 0x01, 0x00,
                                      0x00, 0x03, 0x00, 0xC0};
  Inspection run;
  const auto v = run.Inspect({.pusi = true, .payload = Pes({kAud264, slice})});
  EXPECT_EQ(v.valid, 1);
  EXPECT_EQ(v.klass, EF_CLASS_REFERENCE);
  // The same header with slice_type 0 ('1', P): 23 zeros, '1', 23 zeros, '1' -> ... 00 80.
  const std::vector<uint8_t> p_slice = {0x21, 0x00, 0x00, 0x03, 0x01, 0x00,
                                        0x00, 0x03, 0x00, 0x80};
  Inspection run_p;
  EXPECT_EQ(run_p.Inspect({.pusi = true, .payload = Pes({kAud264, p_slice})}).klass,
            EF_CLASS_DIFFERENTIAL);
}

TEST(TsDpiTest, AFirstSliceOutOfSightFallsBackToTheFlags) {
  // A long SEI fills the first packet: the slice is in the next one.
  const std::vector<uint8_t> sei(160, 0x55);
  std::vector<uint8_t> sei_nal = {0x06};
  sei_nal.insert(sei_nal.end(), sei.begin(), sei.end());
  {
    Inspection run;  // random_access_indicator set: a reference picture
    const auto v = run.Inspect({.pusi = true, .random_access = true,
                                .payload = Pes({kAud264, sei_nal})});
    EXPECT_EQ(v.klass, EF_CLASS_REFERENCE);
  }
  {
    Inspection run;  // an intra-only delimiter: a reference picture
    const auto v = run.Inspect({.pusi = true, .payload = Pes({kAud264Intra, sei_nal})});
    EXPECT_EQ(v.klass, EF_CLASS_REFERENCE);
  }
  {
    Inspection run;  // neither: unknown, which is never dropped
    const auto v = run.Inspect({.pusi = true, .payload = Pes({kAud264, sei_nal})});
    EXPECT_EQ(v.klass, EF_CLASS_UNKNOWN);
  }
  {
    Inspection run;  // a slice header cut at the packet's end: the flags decide
    std::vector<uint8_t> payload = Pes({kAud264, sei_nal});
    payload.resize(181);
    payload.insert(payload.end(), {0, 0, 1});  // a start code, and no room for the header
    const auto v = run.Inspect({.pusi = true, .payload = payload});
    EXPECT_EQ(v.valid, 1);
    EXPECT_EQ(v.klass, EF_CLASS_UNKNOWN);
  }
}

TEST(TsDpiTest, H265PicturesByNalType) {
  const std::vector<uint8_t> aud = {0x46, 0x01, 0x50};
  const std::vector<uint8_t> vps = {0x40, 0x01, 0x0C};
  struct Case {
    uint8_t type;
    uint8_t expected;
    bool referenced;
  };
  for (const Case& c : {Case{19, EF_CLASS_REFERENCE, true}, Case{21, EF_CLASS_REFERENCE, true},
                        Case{1, EF_CLASS_DIFFERENTIAL, true},
                        Case{0, EF_CLASS_DIFFERENTIAL, false}}) {
    Inspection run;
    const std::vector<uint8_t> slice = {static_cast<uint8_t>(c.type << 1), 0x01, 0xAF};
    const auto v = run.Inspect({.pusi = true, .payload = Pes({aud, vps, slice})});
    EXPECT_EQ(v.klass, c.expected) << static_cast<int>(c.type);
    if (c.expected == EF_CLASS_DIFFERENTIAL) {
      EXPECT_EQ(v.referenced, c.referenced);
    }
    EXPECT_EQ(run.state.codec, EF_CODEC_H265);
  }
}

TEST(TsDpiTest, WhatIsNotVideoIsOtherAndWhatIsNotTsIsInvalid) {
  Inspection run;
  ASSERT_EQ(run.Inspect({.pusi = true, .payload = Pes({kAud264, kIdr264})}).klass,
            EF_CLASS_REFERENCE);
  // PSI and an audio PES (stream_id 0xC0) on other PIDs.
  EXPECT_EQ(run.Inspect({.pid = 0, .pusi = true, .payload = {0, 0, 0xB0, 0x0D}}).klass,
            EF_CLASS_OTHER);
  EXPECT_EQ(run.Inspect({.pid = 0x101, .pusi = true,
                         .payload = {0, 0, 1, 0xC0, 0, 0, 0x80, 0, 0, 0xFF}})
                .klass,
            EF_CLASS_OTHER);
  EXPECT_EQ(run.state.video_pid, kVideoPid);

  auto bad = Packet({.pusi = true, .payload = Pes({kAud264, kP264})});
  bad[0] = 0x48;  // no sync byte
  EXPECT_EQ(ef_inspect_ts_packet(&run.state, bad.data()).valid, 0);
  auto reserved = Packet({.payload = std::vector<uint8_t>(184, 1)});
  reserved[3] &= 0xCF;  // adaptation_field_control 0
  EXPECT_EQ(ef_inspect_ts_packet(&run.state, reserved.data()).valid, 0);
  auto lying = Packet({.random_access = true, .payload = {1, 2, 3}});
  lying[4] = 184;  // the adaptation field would end past the packet
  EXPECT_EQ(ef_inspect_ts_packet(&run.state, lying.data()).valid, 0);
  // None of the invalid packets changed the picture being followed.
  EXPECT_EQ(run.state.frame_seq, 1u);
  EXPECT_EQ(run.state.frame_class, EF_CLASS_REFERENCE);
}

TEST(TsDpiTest, VideoBeforeTheFirstPictureStartIsUnknown) {
  Inspection run;
  run.state.video_pid = kVideoPid;  // known from a previous picture, say
  const auto v = run.Inspect({.payload = std::vector<uint8_t>(184, 0x11)});
  EXPECT_EQ(v.klass, EF_CLASS_UNKNOWN);
}

}  // namespace
}  // namespace edgeflow::fanout
