#include "ts/ts_analyzer.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ts/psi.h"
#include "ts/ts_packet.h"
#include "unit/ts_test_bytes.h"

namespace edgeflow::ts {
namespace {

using test_bytes::BuildPacket;
using test_bytes::BuildPatSection;
using test_bytes::BuildPes;
using test_bytes::BuildPmtSection;
using test_bytes::Bytes;
using test_bytes::Concat;
using test_bytes::NonZeroFiller;
using test_bytes::StreamBuilder;
namespace h264 = test_bytes::h264;
namespace h265 = test_bytes::h265;

constexpr uint16_t kPmtPid = 0x1000;
constexpr uint16_t kVideoPid = 0x0100;
constexpr uint16_t kAudioPid = 0x0101;
constexpr uint8_t kStreamTypeAac = 0x0F;
// A tag for packets whose class the test does not pin down.
constexpr int64_t kUnchecked = -2;

size_t Index(FrameClass c) { return static_cast<size_t>(c); }

struct ExpectedFrame {
  FrameClass frame_class = FrameClass::kUnknown;
  char slice_type = '?';
  bool referenced = true;
  bool random_access = false;
  StreamBuilder::Span span;
};

// The ES of one H.264 picture laid out the way muxers do: an AUD (primary_pic_type 7, which says
// nothing about the picture), parameter sets before IDR pictures, an optional SEI, then the
// picture's slice. `kind`: 'I' IDR, 'i' non-IDR I slice, 'P', 'B' (nal_ref_idc 0: a B picture
// nothing references).
Bytes H264PictureEs(char kind, size_t slice_filler, size_t sei_bytes = 0) {
  Bytes es = h264::Aud(7);
  if (kind == 'I') es = Concat({es, h264::Sps(), h264::Pps()});
  if (sei_bytes > 0) es = Concat({es, h264::Sei(sei_bytes)});
  switch (kind) {
    case 'I':
      return Concat({es, h264::Slice(h264::kIdr, 7, slice_filler)});
    case 'i':
      return Concat({es, h264::Slice(h264::kSlice, 2, slice_filler)});
    case 'P':
      return Concat({es, h264::Slice(h264::kSlice, 5, slice_filler)});
    case 'B':
      return Concat({es, h264::Nal(h264::kSlice, h264::SliceRbsp(6, 0, slice_filler), 0)});
    default:
      test_bytes::Require(false, "unknown picture kind");
      return {};
  }
}

FrameClass H264Class(char kind) {
  return kind == 'I' || kind == 'i' ? FrameClass::kReference : FrameClass::kDifferential;
}

char H264Letter(char kind) { return kind == 'i' ? 'I' : kind; }

uint16_t PidOf(const Bytes& packet) {
  return static_cast<uint16_t>(((packet[1] & 0x1F) << 8) | packet[2]);
}

bool IsWellFormed(const Bytes& packet) {
  return packet.size() == test_bytes::kTsBytes && packet[0] == kSyncByte;
}

class TsAnalyzerTest : public ::testing::Test {
 protected:
  void AddPsiTables(uint8_t video_stream_type = kStreamTypeH264, uint8_t pointer = 0) {
    stream_.AddPsi(kPatPid, BuildPatSection({{1, kPmtPid}}), pointer);
    // Another stream comes first: the analyzer must pick the video one, not the first one.
    stream_.AddPsi(
        kPmtPid,
        BuildPmtSection(1, kVideoPid,
                        {{kStreamTypeAac, kAudioPid, {}}, {video_stream_type, kVideoPid, {}}}),
        pointer);
  }

  // Adds a picture carried on the video PID and what the analyzer should make of it.
  ExpectedFrame AddPictureEs(const Bytes& es, FrameClass frame_class, char slice_type,
                             bool random_access, const std::function<void()>& after_first = {},
                             bool referenced = true) {
    const Bytes pes = BuildPes(es, NextPts());
    const auto tag = static_cast<int64_t>(expected_.size());
    const StreamBuilder::Span span =
        stream_.AddPes(kVideoPid, pes, random_access, tag, after_first);
    expected_.push_back({frame_class, slice_type, referenced, random_access, span});
    return expected_.back();
  }

  ExpectedFrame AddPicture(char kind, size_t slice_filler, bool random_access, size_t sei_bytes = 0,
                           const std::function<void()>& after_first = {}) {
    return AddPictureEs(H264PictureEs(kind, slice_filler, sei_bytes), H264Class(kind),
                        H264Letter(kind), random_access, after_first, kind != 'B');
  }

  void AddAudio() {
    stream_.AddPes(kAudioPid, BuildPes(NonZeroFiller(100), NextPts(), test_bytes::kAudioStreamId));
  }

  void AddNullPacket() { stream_.Add(BuildPacket(kNullPid, false, 0, NonZeroFiller(184))); }

  uint64_t NextPts() { return pts_ += 3000; }

  TsAnalyzer PushEach(bool finish = true) const {
    TsAnalyzer analyzer;
    for (const Bytes& packet : stream_.packets()) analyzer.Push(packet);
    if (finish) analyzer.Finish();
    return analyzer;
  }

  void ExpectFrames(const TsAnalyzer& analyzer) const {
    const auto& frames = analyzer.frames();
    ASSERT_EQ(frames.size(), expected_.size());
    for (size_t i = 0; i < frames.size(); ++i) {
      SCOPED_TRACE("frame " + std::to_string(i));
      const ExpectedFrame& want = expected_[i];
      EXPECT_EQ(frames[i].index, i);
      EXPECT_EQ(frames[i].frame_class, want.frame_class) << FrameClassName(frames[i].frame_class);
      EXPECT_EQ(frames[i].slice_type, want.slice_type);
      EXPECT_EQ(frames[i].referenced, want.referenced);
      EXPECT_EQ(frames[i].random_access, want.random_access);
      EXPECT_EQ(frames[i].first_packet, want.span.first_packet);
      EXPECT_EQ(frames[i].packets, want.span.packets);
      EXPECT_EQ(frames[i].payload_bytes, want.span.payload_bytes);
    }
  }

  // Every packet: its picture's class for video packets, kUnknown for the rest.
  void ExpectPacketClasses(const TsAnalyzer& analyzer, uint16_t video_pid = kVideoPid) const {
    const auto& packets = stream_.packets();
    for (size_t i = 0; i < packets.size(); ++i) {
      SCOPED_TRACE("packet " + std::to_string(i));
      const int64_t tag = stream_.tags()[i];
      if (tag == kUnchecked) continue;
      const FrameClass want =
          tag >= 0 ? expected_[static_cast<size_t>(tag)].frame_class : FrameClass::kUnknown;
      EXPECT_EQ(analyzer.packet_class(i), want);
      EXPECT_EQ(analyzer.is_video_packet(i),
                IsWellFormed(packets[i]) && PidOf(packets[i]) == video_pid);
    }
  }

  // The stats of a stream without errors, from the expectations.
  void ExpectCleanStats(const TsAnalyzer& analyzer) const {
    const AnalyzerStats stats = analyzer.stats();
    EXPECT_EQ(stats.packets, stream_.packets().size());
    EXPECT_EQ(stats.invalid_packets, 0u);
    EXPECT_EQ(stats.continuity_errors, 0u);
    EXPECT_EQ(stats.psi_errors, 0u);
    EXPECT_EQ(stats.pes_errors, 0u);
    EXPECT_EQ(stats.random_access_mismatches, 0u);
    ExpectClassTotals(stats);
  }

  void ExpectClassTotals(const AnalyzerStats& stats) const {
    std::array<uint64_t, 3> frames{};
    std::array<uint64_t, 3> packets{};
    uint64_t video_packets = 0;
    for (const ExpectedFrame& f : expected_) {
      frames[Index(f.frame_class)] += 1;
      packets[Index(f.frame_class)] += f.span.packets;
      video_packets += f.span.packets;
    }
    EXPECT_EQ(stats.video_packets, video_packets);
    EXPECT_EQ(stats.frames, frames);
    EXPECT_EQ(stats.packets_by_class, packets);
  }

  StreamBuilder stream_;
  std::vector<ExpectedFrame> expected_;
  uint64_t pts_ = 90000;
};

TEST_F(TsAnalyzerTest, ClassifiesEveryPictureOfAnH264Stream) {
  AddPsiTables();
  // An audio packet between the IDR picture's first and second packets still leaves all the
  // IDR's packets to it.
  const ExpectedFrame idr = AddPicture('I', 500, true, 0, [this] { AddAudio(); });
  EXPECT_EQ(idr.span.packets, 3u);
  EXPECT_EQ(AddPicture('P', 300, false).span.packets, 2u);
  EXPECT_EQ(AddPicture('B', 100, false).span.packets, 1u);
  AddNullPacket();
  AddPicture('B', 120, false);
  AddPicture('P', 350, false);
  // The tables again, as muxers repeat them.
  AddPsiTables();
  AddPicture('i', 600, true);
  AddPicture('B', 30, false);
  AddPicture('P', 250, false);
  AddAudio();

  const TsAnalyzer analyzer = PushEach();
  ASSERT_EQ(analyzer.video_pid(), kVideoPid);
  EXPECT_EQ(analyzer.codec(), VideoCodec::kH264);
  ExpectFrames(analyzer);
  ExpectPacketClasses(analyzer);
  ExpectCleanStats(analyzer);
  const AnalyzerStats stats = analyzer.stats();
  EXPECT_EQ(stats.frames[Index(FrameClass::kReference)], 2u);
  EXPECT_EQ(stats.frames[Index(FrameClass::kDifferential)], 6u);
}

TEST_F(TsAnalyzerTest, PicturesAreClassifiedBeforeFinishOnceTheNextOneStarts) {
  AddPsiTables();
  AddPicture('I', 400, true);
  AddPicture('P', 200, false);
  AddPicture('B', 200, false);
  AddPicture('P', 200, false);

  const TsAnalyzer analyzer = PushEach(/*finish=*/false);
  ASSERT_GE(analyzer.frames().size(), expected_.size() - 1);
  for (size_t i = 0; i + 1 < expected_.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(analyzer.frames()[i].frame_class, expected_[i].frame_class);
    EXPECT_EQ(analyzer.frames()[i].slice_type, expected_[i].slice_type);
  }
}

TEST_F(TsAnalyzerTest, PushAllMatchesPushingPacketsOneByOne) {
  AddPsiTables();
  AddPicture('I', 500, true);
  AddPicture('P', 300, false);
  AddAudio();
  AddPicture('B', 100, false);
  AddPicture('P', 700, false);

  TsAnalyzer whole;
  whole.PushAll(stream_.Joined());
  whole.Finish();
  ExpectFrames(whole);
  ExpectPacketClasses(whole);
  ExpectCleanStats(whole);

  // In two calls split at a packet boundary.
  const Bytes joined = stream_.Joined();
  const size_t cut = 5 * test_bytes::kTsBytes;
  TsAnalyzer halves;
  halves.PushAll(std::span(joined).first(cut));
  halves.PushAll(std::span(joined).subspan(cut));
  halves.Finish();
  ExpectFrames(halves);
  ExpectCleanStats(halves);
}

TEST_F(TsAnalyzerTest, PushAllCountsATrailingPartialPacketAsInvalid) {
  AddPsiTables();
  AddPicture('I', 500, true);
  AddPicture('P', 300, false);
  Bytes bytes = stream_.Joined();
  const size_t whole_packets = stream_.packets().size();
  // The start of another video packet, cut short.
  const Bytes next = BuildPacket(kVideoPid, false, 0, NonZeroFiller(184));
  bytes.insert(bytes.end(), next.begin(), next.begin() + 100);

  TsAnalyzer analyzer;
  analyzer.PushAll(bytes);
  analyzer.Finish();
  ExpectFrames(analyzer);
  const AnalyzerStats stats = analyzer.stats();
  EXPECT_EQ(stats.packets, whole_packets + 1);
  EXPECT_EQ(stats.invalid_packets, 1u);
  EXPECT_EQ(stats.continuity_errors, 0u);
  ExpectClassTotals(stats);
  EXPECT_EQ(analyzer.packet_class(whole_packets), FrameClass::kUnknown);
  EXPECT_FALSE(analyzer.is_video_packet(whole_packets));
}

TEST_F(TsAnalyzerTest, CountsContinuityGapsOnTheVideoPid) {
  AddPsiTables();
  AddPicture('I', 500, true);
  // A gap inside a picture (between its first and second packet) and one at a PES start.
  AddPicture('P', 300, false, 0, [this] { stream_.SkipCc(kVideoPid); });
  stream_.SkipCc(kVideoPid);
  AddPicture('B', 100, false);
  // Gaps on another PID are not the video's.
  stream_.SkipCc(kAudioPid);
  AddAudio();
  stream_.SkipCc(kAudioPid);
  AddAudio();
  AddPicture('P', 100, false);

  const TsAnalyzer analyzer = PushEach();
  ExpectFrames(analyzer);
  ExpectPacketClasses(analyzer);
  const AnalyzerStats stats = analyzer.stats();
  EXPECT_EQ(stats.continuity_errors, 2u);
  EXPECT_EQ(stats.invalid_packets, 0u);
  ExpectClassTotals(stats);
}

TEST_F(TsAnalyzerTest, AdaptationOnlyVideoPacketDoesNotAdvanceTheContinuityCounter) {
  AddPsiTables();
  // A PCR-only packet (adaptation_field_control 2) repeats the counter of the packet before it,
  // as ISO/IEC 13818-1 2.4.3.3 requires; it belongs to the picture in progress.
  AddPicture('I', 500, true, 0, [this] {
    stream_.Add(BuildPacket(kVideoPid, false, stream_.LastCc(kVideoPid), {},
                            test_bytes::AdaptationSpec{.pcr_base = 12345}),
                0);
  });
  expected_.back().span.packets += 1;  // payload_bytes unchanged: the packet has none
  AddPicture('P', 300, false);

  const TsAnalyzer analyzer = PushEach();
  ExpectFrames(analyzer);
  ExpectPacketClasses(analyzer);
  ExpectCleanStats(analyzer);
}

TEST_F(TsAnalyzerTest, SkipsInvalidPackets) {
  AddPsiTables();
  AddPicture('I', 500, true);
  // A packet with a corrupted sync byte between two packets of a picture.
  AddPicture('P', 400, false, 0, [this] {
    Bytes broken = BuildPacket(kVideoPid, false, 0, NonZeroFiller(184));
    broken[0] = 0x46;
    stream_.Add(broken);
  });
  AddPicture('B', 100, false);

  TsAnalyzer analyzer;
  for (const Bytes& packet : stream_.packets()) analyzer.Push(packet);
  // A packet of the wrong size pushed on its own.
  analyzer.Push(NonZeroFiller(100));
  analyzer.Finish();

  ExpectFrames(analyzer);
  ExpectPacketClasses(analyzer);
  const AnalyzerStats stats = analyzer.stats();
  EXPECT_EQ(stats.packets, stream_.packets().size() + 1);
  EXPECT_EQ(stats.invalid_packets, 2u);
  EXPECT_EQ(stats.continuity_errors, 0u);
  ExpectClassTotals(stats);
  EXPECT_EQ(analyzer.packet_class(stream_.packets().size()), FrameClass::kUnknown);
}

TEST_F(TsAnalyzerTest, CorruptedVideoPacketIsLostAndLeavesAContinuityGap) {
  AddPsiTables();
  AddPicture('I', 500, true);
  const ExpectedFrame p = AddPicture('P', 500, false);
  ASSERT_EQ(p.span.packets, 3u);
  const size_t broken_index = p.span.first_packet + 1;
  AddPicture('B', 100, false);

  std::vector<Bytes> packets = stream_.packets();
  packets[broken_index][0] = 0x00;
  TsAnalyzer analyzer;
  for (const Bytes& packet : packets) analyzer.Push(packet);
  analyzer.Finish();

  const AnalyzerStats stats = analyzer.stats();
  EXPECT_EQ(stats.invalid_packets, 1u);
  EXPECT_EQ(stats.continuity_errors, 1u);
  ASSERT_EQ(analyzer.frames().size(), 3u);
  EXPECT_EQ(analyzer.frames()[1].frame_class, FrameClass::kDifferential);
  EXPECT_EQ(analyzer.frames()[1].packets, 2u);
  EXPECT_EQ(analyzer.frames()[1].payload_bytes, p.span.payload_bytes - 184);
  EXPECT_EQ(analyzer.frames()[2].frame_class, FrameClass::kDifferential);
  EXPECT_EQ(analyzer.packet_class(broken_index), FrameClass::kUnknown);
  EXPECT_FALSE(analyzer.is_video_packet(broken_index));
  EXPECT_EQ(analyzer.packet_class(broken_index + 1), FrameClass::kDifferential);
}

// The ES of an H.264 picture (AUD, SEI, slice) whose slice NAL unit (start code included) has
// `in_first_packet` of its bytes in the first TS packet of a PES without random_access, the rest in
// the second.
Bytes SliceSplitAcrossPacketsEs(char kind, size_t in_first_packet) {
  constexpr size_t kPesHeaderBytes = 14;
  constexpr size_t kSeiOverhead = 8;  // start code, NAL header, type, size, trailing bits
  const size_t sei = test_bytes::kTsPayloadBytes - kPesHeaderBytes - h264::Aud(7).size() -
                     kSeiOverhead - in_first_packet;
  const Bytes es = H264PictureEs(kind, 200, sei);
  const size_t slice_at = test_bytes::kTsPayloadBytes - kPesHeaderBytes - in_first_packet;
  const Bytes start = {es[slice_at], es[slice_at + 1], es[slice_at + 2], es[slice_at + 3]};
  test_bytes::Require(start == test_bytes::kStartCode4, "slice not where the split wants it");
  return es;
}

TEST_F(TsAnalyzerTest, ClassifiesPictureWhoseFirstSliceIsInALaterPacket) {
  AddPsiTables();
  AddPicture('I', 300, true, 500);
  // A 400-byte SEI: the P slice starts in the third packet of the PES.
  const Bytes es = H264PictureEs('P', 200, 400);
  const size_t slice_offset = 14 + es.size() - h264::Slice(h264::kSlice, 5, 200).size();
  ASSERT_GE(slice_offset, 2 * test_bytes::kTsPayloadBytes);
  AddPictureEs(es, FrameClass::kDifferential, 'P', false);
  // Slices cut by the packet boundary: inside the start code, right after the NAL header, and
  // after the first byte of the slice header.
  AddPictureEs(SliceSplitAcrossPacketsEs('B', 2), FrameClass::kDifferential, 'B', false, {}, false);
  AddPictureEs(SliceSplitAcrossPacketsEs('P', 5), FrameClass::kDifferential, 'P', false);
  AddPictureEs(SliceSplitAcrossPacketsEs('B', 6), FrameClass::kDifferential, 'B', false, {}, false);
  AddPictureEs(SliceSplitAcrossPacketsEs('i', 3), FrameClass::kReference, 'I', false);
  AddPicture('P', 100, false);

  const TsAnalyzer analyzer = PushEach();
  ExpectFrames(analyzer);
  ExpectPacketClasses(analyzer);
  const AnalyzerStats stats = analyzer.stats();
  ExpectClassTotals(stats);
  EXPECT_EQ(stats.continuity_errors, 0u);
  EXPECT_EQ(stats.pes_errors, 0u);
}

TEST_F(TsAnalyzerTest, PesStartWithoutPesHeaderIsCounted) {
  AddPsiTables();
  const ExpectedFrame first = AddPicture('I', 300, true);
  const ExpectedFrame second = AddPicture('P', 300, false);
  // payload_unit_start set, but the payload does not begin with a PES start code prefix.
  stream_.Add(BuildPacket(kVideoPid, true, stream_.NextCc(kVideoPid), NonZeroFiller(184)),
              kUnchecked);
  const size_t third_start = stream_.packets().size();
  AddPicture('P', 300, false);
  AddPicture('I', 300, true);

  const TsAnalyzer analyzer = PushEach();
  const AnalyzerStats stats = analyzer.stats();
  EXPECT_EQ(stats.pes_errors, 1u);
  EXPECT_EQ(stats.continuity_errors, 0u);
  EXPECT_EQ(stats.invalid_packets, 0u);
  // The pictures around it are unharmed, whether or not the broken start made a record.
  auto find = [&](uint64_t first_packet) -> const FrameRecord* {
    for (const FrameRecord& f : analyzer.frames()) {
      if (f.first_packet == first_packet) return &f;
    }
    return nullptr;
  };
  const FrameRecord* i_frame = find(first.span.first_packet);
  const FrameRecord* p_frame = find(second.span.first_packet);
  const FrameRecord* after = find(third_start);
  const FrameRecord* last = find(expected_.back().span.first_packet);
  ASSERT_TRUE(i_frame && p_frame && after && last);
  EXPECT_EQ(i_frame->frame_class, FrameClass::kReference);
  EXPECT_EQ(p_frame->frame_class, FrameClass::kDifferential);
  EXPECT_EQ(p_frame->packets, second.span.packets);  // the broken start is not the P's
  EXPECT_EQ(after->frame_class, FrameClass::kDifferential);
  EXPECT_EQ(after->slice_type, 'P');
  EXPECT_EQ(last->frame_class, FrameClass::kReference);
  EXPECT_EQ(analyzer.packet_class(third_start), FrameClass::kDifferential);
}

TEST_F(TsAnalyzerTest, PmtWithBadCrcIsCountedAndIgnored) {
  stream_.AddPsi(kPatPid, BuildPatSection({{1, kPmtPid}}));
  // A PMT naming another video PID, with a broken CRC: nothing in it may be believed.
  Bytes bad = BuildPmtSection(1, 0x0200, {{kStreamTypeH264, 0x0200, {}}});
  bad.back() ^= 0xFF;
  const size_t bad_pmt = stream_.AddPsi(kPmtPid, bad);
  const size_t stray_first = stream_.packets().size();
  stream_.AddPes(0x0200, BuildPes(H264PictureEs('I', 300), NextPts()), true);
  const size_t stray_end = stream_.packets().size();
  // The real tables, then the pictures.
  stream_.AddPsi(kPmtPid, BuildPmtSection(1, kVideoPid, {{kStreamTypeH264, kVideoPid, {}}}));
  AddPicture('I', 300, true);
  AddPicture('P', 300, false);

  TsAnalyzer analyzer;
  const auto& packets = stream_.packets();
  for (size_t i = 0; i <= bad_pmt; ++i) analyzer.Push(packets[i]);
  EXPECT_FALSE(analyzer.video_pid().has_value());
  EXPECT_EQ(analyzer.stats().psi_errors, 1u);
  for (size_t i = bad_pmt + 1; i < packets.size(); ++i) analyzer.Push(packets[i]);
  analyzer.Finish();

  ASSERT_EQ(analyzer.video_pid(), kVideoPid);
  EXPECT_EQ(analyzer.codec(), VideoCodec::kH264);
  ExpectFrames(analyzer);
  ExpectPacketClasses(analyzer);
  for (size_t i = stray_first; i < stray_end; ++i) EXPECT_FALSE(analyzer.is_video_packet(i));
  const AnalyzerStats stats = analyzer.stats();
  EXPECT_EQ(stats.psi_errors, 1u);
  ExpectClassTotals(stats);
}

TEST_F(TsAnalyzerTest, PatWithBadCrcIsCountedAndIgnored) {
  Bytes bad = BuildPatSection({{1, 0x0555}});
  bad[bad.size() - 2] ^= 0x10;
  stream_.AddPsi(kPatPid, bad);
  AddPsiTables(kStreamTypeH264, 4);
  AddPicture('I', 300, true);
  AddPicture('B', 300, false);

  const TsAnalyzer analyzer = PushEach();
  ASSERT_EQ(analyzer.video_pid(), kVideoPid);
  ExpectFrames(analyzer);
  const AnalyzerStats stats = analyzer.stats();
  EXPECT_EQ(stats.psi_errors, 1u);
  ExpectClassTotals(stats);
}

TEST_F(TsAnalyzerTest, NoVideoBeforeTheTables) {
  // Video packets before the PAT and PMT cannot be known as video.
  stream_.AddPes(kVideoPid, BuildPes(H264PictureEs('P', 300), NextPts()), false);
  const size_t before = stream_.packets().size();
  AddPsiTables();
  AddPicture('I', 300, true);

  const TsAnalyzer analyzer = PushEach();
  for (size_t i = 0; i < before; ++i) EXPECT_EQ(analyzer.packet_class(i), FrameClass::kUnknown);
  ASSERT_EQ(analyzer.frames().size(), 1u);
  EXPECT_EQ(analyzer.frames()[0].first_packet, expected_[0].span.first_packet);
  EXPECT_EQ(analyzer.frames()[0].frame_class, FrameClass::kReference);
}

TEST_F(TsAnalyzerTest, VideoPacketsBeforeTheFirstPesStartHaveNoPicture) {
  AddPsiTables();
  // Joined mid-picture: the tail of a PES whose start was never seen.
  const size_t tail_first = stream_.packets().size();
  for (int i = 0; i < 2; ++i) {
    stream_.Add(BuildPacket(kVideoPid, false, stream_.NextCc(kVideoPid), NonZeroFiller(184)));
  }
  AddPicture('I', 300, true);
  AddPicture('P', 300, false);

  const TsAnalyzer analyzer = PushEach();
  ExpectFrames(analyzer);
  ExpectPacketClasses(analyzer);
  EXPECT_TRUE(analyzer.is_video_packet(tail_first));
  EXPECT_EQ(analyzer.packet_class(tail_first), FrameClass::kUnknown);
  const AnalyzerStats stats = analyzer.stats();
  EXPECT_EQ(stats.video_packets, 2u + expected_[0].span.packets + expected_[1].span.packets);
  EXPECT_EQ(stats.frames[Index(FrameClass::kReference)], 1u);
  EXPECT_EQ(stats.frames[Index(FrameClass::kDifferential)], 1u);
}

TEST_F(TsAnalyzerTest, ClassifiesAnH265Stream) {
  AddPsiTables(kStreamTypeH265, 2);
  const Bytes parameter_sets = Concat({h265::Nal(h265::kAud, 1), h265::Nal(h265::kVps, 20),
                                       h265::Nal(h265::kSps, 40), h265::Nal(h265::kPps, 8)});
  auto picture = [](uint8_t type, size_t bytes) {
    return Concat({h265::Nal(h265::kAud, 1), h265::Nal(type, bytes)});
  };
  AddPictureEs(
      Concat({parameter_sets, h265::Nal(h265::kPrefixSei, 300), h265::Nal(h265::kIdrWRadl, 400)}),
      FrameClass::kReference, '?', true);
  AddPictureEs(picture(h265::kTrailR, 300), FrameClass::kDifferential, '?', false);
  AddPictureEs(picture(h265::kTrailN, 100), FrameClass::kDifferential, '?', false, {}, false);
  AddPictureEs(Concat({parameter_sets, h265::Nal(h265::kCra, 500)}), FrameClass::kReference, '?',
               true);
  AddPictureEs(picture(h265::kRaslN, 100), FrameClass::kDifferential, '?', false, {}, false);
  AddPictureEs(picture(h265::kTrailR, 200), FrameClass::kDifferential, '?', false);

  const TsAnalyzer analyzer = PushEach();
  ASSERT_EQ(analyzer.video_pid(), kVideoPid);
  EXPECT_EQ(analyzer.codec(), VideoCodec::kH265);
  ExpectFrames(analyzer);
  ExpectPacketClasses(analyzer);
  ExpectCleanStats(analyzer);
}

TEST_F(TsAnalyzerTest, RandomAccessOnADifferentialPictureIsAMismatch) {
  AddPsiTables();
  AddPicture('I', 300, true);
  AddPicture('P', 300, true);
  AddPicture('B', 300, false);

  const TsAnalyzer analyzer = PushEach();
  ExpectFrames(analyzer);
  EXPECT_EQ(analyzer.stats().random_access_mismatches, 1u);
}

TEST_F(TsAnalyzerTest, ReferencePictureWithoutRandomAccessIsAMismatch) {
  AddPsiTables();
  AddPicture('I', 300, true);
  AddPicture('P', 300, false);
  AddPicture('I', 300, false);
  AddPicture('P', 300, false);

  const TsAnalyzer analyzer = PushEach();
  ExpectFrames(analyzer);
  EXPECT_EQ(analyzer.stats().random_access_mismatches, 1u);
}

TEST_F(TsAnalyzerTest, FinishClassifiesTheLastPictureWithWhatArrived) {
  AddPsiTables();
  AddPicture('I', 300, true);
  AddPicture('P', 300, false);
  // The last picture's slice never arrives: only the first packet of a PES whose AUD says "I
  // only" (primary_pic_type 0), followed by a long SEI.
  const Bytes es = Concat({h264::Aud(0), h264::Sei(600), h264::Slice(h264::kIdr, 7, 100)});
  const Bytes pes = BuildPes(es, NextPts());
  const size_t last_start =
      stream_.Add(BuildPacket(kVideoPid, true, stream_.NextCc(kVideoPid),
                              std::span(pes).first(test_bytes::kTsPayloadBytes)));

  TsAnalyzer analyzer = PushEach(/*finish=*/false);
  analyzer.Finish();
  ASSERT_EQ(analyzer.frames().size(), 3u);
  const FrameRecord& last = analyzer.frames()[2];
  EXPECT_EQ(last.first_packet, last_start);
  EXPECT_EQ(last.packets, 1u);
  EXPECT_EQ(last.frame_class, FrameClass::kReference);
  EXPECT_EQ(last.slice_type, 'I');
  EXPECT_EQ(analyzer.packet_class(last_start), FrameClass::kReference);
}

TEST_F(TsAnalyzerTest, PictureWithoutASliceIsUnknown) {
  AddPsiTables();
  AddPicture('I', 300, true);
  // A PES with an AUD that allows P and B and an SEI, but no slice; then a normal picture.
  AddPictureEs(Concat({h264::Aud(7), h264::Sei(250)}), FrameClass::kUnknown, '?', false);
  AddPicture('P', 300, false);

  const TsAnalyzer analyzer = PushEach();
  ExpectFrames(analyzer);
  ExpectPacketClasses(analyzer);
  const AnalyzerStats stats = analyzer.stats();
  ExpectClassTotals(stats);
  EXPECT_EQ(stats.frames[Index(FrameClass::kUnknown)], 1u);
}

TEST_F(TsAnalyzerTest, EmptyAnalyzer) {
  TsAnalyzer analyzer;
  analyzer.Finish();
  EXPECT_FALSE(analyzer.video_pid().has_value());
  EXPECT_EQ(analyzer.codec(), VideoCodec::kUnknown);
  EXPECT_TRUE(analyzer.frames().empty());
  EXPECT_EQ(analyzer.stats().packets, 0u);
  EXPECT_EQ(analyzer.stats().frames, (std::array<uint64_t, 3>{}));
}

}  // namespace
}  // namespace edgeflow::ts
