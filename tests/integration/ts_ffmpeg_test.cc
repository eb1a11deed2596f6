// TsAnalyzer against FFmpeg on real encoder output: ffmpeg encodes a test pattern with libx264 or
// libx265 (GOP of 30, B-frames) into MPEG-TS, ffprobe decodes it and says what each picture is,
// and the analyzer's classification of every picture must agree.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "support/command_runner.h"
#include "support/temp_dir.h"
#include "ts/frame_class.h"
#include "ts/nal_classifier.h"
#include "ts/ts_analyzer.h"

namespace edgeflow::ts {
namespace {

using test_support::CommandOptions;
using test_support::CommandResult;
using test_support::RunCommand;
using test_support::SplitLines;
using test_support::TempDir;

constexpr int kFrames = 120;    // 4 s at 30 frames/s
constexpr int kGopFrames = 30;  // -g 30 / keyint=30
constexpr int kExpectedReference = kFrames / kGopFrames;

// What ffprobe says about one picture.
struct ProbedPicture {
  char pict_type = '?';
  bool key_frame = false;
};

CommandOptions LongCommand() {
  CommandOptions options;
  options.timeout = std::chrono::seconds(180);
  return options;
}

// Fails the test (the caller asserts no fatal failure) when a tool is missing: CI always has
// them, so a missing one is a broken setup, not a reason to skip.
void RequireTool(const std::string& tool) {
  const CommandResult result = RunCommand(tool, {"-hide_banner", "-version"});
  ASSERT_FALSE(result.spawn_failed)
      << tool << " is not installed: install Debian's ffmpeg package (scripts/setup does). "
      << result.Describe();
  ASSERT_EQ(result.exit_code(), 0) << result.Describe();
}

bool HasEncoder(const std::string& encoder) {
  const CommandResult result = RunCommand("ffmpeg", {"-hide_banner", "-encoders"});
  return result.exit_code() == 0 && result.out.find(" " + encoder + " ") != std::string::npos;
}

std::vector<uint8_t> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// ffprobe's "flat" output: one `<section>.<index>.<key>=<value>` line per field. Returns the
// plain fields of each numbered entry (nested side data is left out), values unquoted.
std::vector<std::map<std::string, std::string>> ParseFlat(const std::string& text,
                                                          std::string_view prefix) {
  std::vector<std::map<std::string, std::string>> entries;
  for (const std::string& line : SplitLines(text)) {
    if (!line.starts_with(prefix)) continue;
    const size_t index_end = line.find('.', prefix.size());
    const size_t equals = line.find('=');
    if (index_end == std::string::npos || equals == std::string::npos || equals < index_end) {
      continue;
    }
    const size_t index = std::stoul(line.substr(prefix.size(), index_end - prefix.size()));
    const std::string key = line.substr(index_end + 1, equals - index_end - 1);
    if (key.find('.') != std::string::npos) continue;  // side data
    std::string value = line.substr(equals + 1);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    if (entries.size() <= index) entries.resize(index + 1);
    entries[index][key] = value;
  }
  return entries;
}

// ffprobe's pictures in decode order, the order in which they are in the stream and in which the
// analyzer records them. -show_frames lists frames in presentation order, which differs as soon
// as there are B-frames, so each frame is matched through its PTS to the packet that carried it
// (-show_packets lists packets in stream order).
std::vector<ProbedPicture> ProbeInStreamOrder(const std::filesystem::path& file) {
  const CommandResult frames_out =
      RunCommand("ffprobe",
                 {"-v", "error", "-select_streams", "v:0", "-show_frames", "-show_entries",
                  "frame=pts,pict_type,key_frame", "-of", "flat", file.string()},
                 LongCommand());
  EXPECT_EQ(frames_out.exit_code(), 0) << frames_out.Describe();
  const CommandResult packets_out =
      RunCommand("ffprobe",
                 {"-v", "error", "-select_streams", "v:0", "-show_packets", "-show_entries",
                  "packet=pts", "-of", "flat", file.string()},
                 LongCommand());
  EXPECT_EQ(packets_out.exit_code(), 0) << packets_out.Describe();

  std::map<std::string, ProbedPicture> by_pts;
  for (const auto& frame : ParseFlat(frames_out.out, "frames.frame.")) {
    const auto pts = frame.find("pts");
    const auto type = frame.find("pict_type");
    const auto key = frame.find("key_frame");
    if (pts == frame.end() || type == frame.end() || key == frame.end() || type->second.empty()) {
      ADD_FAILURE() << "incomplete ffprobe frame entry";
      continue;
    }
    EXPECT_TRUE(
        by_pts.emplace(pts->second, ProbedPicture{type->second[0], key->second == "1"}).second)
        << "two frames with pts " << pts->second;
  }
  std::vector<ProbedPicture> in_stream_order;
  for (const auto& packet : ParseFlat(packets_out.out, "packets.packet.")) {
    const auto pts = packet.find("pts");
    if (pts == packet.end()) {
      ADD_FAILURE() << "ffprobe packet without pts";
      continue;
    }
    const auto found = by_pts.find(pts->second);
    if (found == by_pts.end()) {
      ADD_FAILURE() << "no decoded frame for the packet with pts " << pts->second;
      continue;
    }
    in_stream_order.push_back(found->second);
  }
  EXPECT_EQ(in_stream_order.size(), by_pts.size());
  return in_stream_order;
}

FrameClass ClassOfPictType(char pict_type) {
  switch (pict_type) {
    case 'I':
      return FrameClass::kReference;
    case 'P':
    case 'B':
      return FrameClass::kDifferential;
    default:
      return FrameClass::kUnknown;
  }
}

void ExpectAnalyzerMatchesFfprobe(const std::filesystem::path& file, VideoCodec codec) {
  const std::vector<uint8_t> bytes = ReadFile(file);
  ASSERT_FALSE(bytes.empty()) << file;
  ASSERT_EQ(bytes.size() % 188, 0u) << "ffmpeg writes whole TS packets";

  TsAnalyzer analyzer;
  analyzer.PushAll(bytes);
  analyzer.Finish();

  const std::vector<ProbedPicture> truth = ProbeInStreamOrder(file);
  ASSERT_EQ(truth.size(), static_cast<size_t>(kFrames)) << "ffprobe's frame count";

  ASSERT_TRUE(analyzer.video_pid().has_value());
  EXPECT_EQ(analyzer.codec(), codec);
  const auto& frames = analyzer.frames();
  ASSERT_EQ(frames.size(), truth.size());

  int reference = 0;
  int key_frames = 0;
  uint64_t packets_in_frames = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    SCOPED_TRACE("frame " + std::to_string(i) + ", ffprobe pict_type " + truth[i].pict_type);
    EXPECT_EQ(frames[i].frame_class, ClassOfPictType(truth[i].pict_type))
        << FrameClassName(frames[i].frame_class);
    if (codec == VideoCodec::kH264) {
      EXPECT_EQ(frames[i].slice_type, truth[i].pict_type);
    }
    // ffmpeg's muxer sets random_access_indicator on key frames.
    EXPECT_EQ(frames[i].random_access, truth[i].key_frame);
    EXPECT_EQ(frames[i].index, i);
    EXPECT_GE(frames[i].packets, 1u);
    if (frames[i].frame_class == FrameClass::kReference) ++reference;
    if (truth[i].key_frame) ++key_frames;
    packets_in_frames += frames[i].packets;
  }
  EXPECT_EQ(reference, kExpectedReference);
  EXPECT_EQ(key_frames, kExpectedReference);

  const AnalyzerStats stats = analyzer.stats();
  EXPECT_EQ(stats.packets, bytes.size() / 188);
  EXPECT_EQ(stats.invalid_packets, 0u);
  EXPECT_EQ(stats.continuity_errors, 0u);
  EXPECT_EQ(stats.psi_errors, 0u);
  EXPECT_EQ(stats.pes_errors, 0u);
  EXPECT_EQ(stats.random_access_mismatches, 0u);
  EXPECT_EQ(stats.frames[static_cast<size_t>(FrameClass::kUnknown)], 0u);
  EXPECT_EQ(stats.frames[static_cast<size_t>(FrameClass::kReference)],
            static_cast<uint64_t>(kExpectedReference));
  EXPECT_EQ(stats.frames[static_cast<size_t>(FrameClass::kDifferential)],
            static_cast<uint64_t>(kFrames - kExpectedReference));
  // ffmpeg starts every video PES on a picture: each video packet belongs to one.
  EXPECT_EQ(packets_in_frames, stats.video_packets);
  EXPECT_EQ(stats.packets_by_class[static_cast<size_t>(FrameClass::kUnknown)], 0u);
  EXPECT_EQ(stats.packets_by_class[1] + stats.packets_by_class[2], stats.video_packets);

  // And packet by packet: every video packet carries its picture's class.
  for (const FrameRecord& frame : frames) {
    EXPECT_TRUE(analyzer.is_video_packet(frame.first_packet));
    EXPECT_EQ(analyzer.packet_class(frame.first_packet), frame.frame_class);
  }
  uint64_t video_packets = 0;
  for (uint64_t i = 0; i < stats.packets; ++i) {
    if (!analyzer.is_video_packet(i)) {
      EXPECT_EQ(analyzer.packet_class(i), FrameClass::kUnknown) << "packet " << i;
      continue;
    }
    ++video_packets;
    EXPECT_NE(analyzer.packet_class(i), FrameClass::kUnknown) << "packet " << i;
  }
  EXPECT_EQ(video_packets, stats.video_packets);
}

// Encodes the lavfi test pattern: 4 s at 30 frames/s, a key frame every 30, up to 2 B-frames.
void Encode(const std::filesystem::path& out, const std::vector<std::string>& codec_args) {
  std::vector<std::string> args = {"-nostdin",
                                   "-hide_banner",
                                   "-v",
                                   "error",
                                   "-y",
                                   "-f",
                                   "lavfi",
                                   "-i",
                                   "testsrc=size=320x240:rate=30",
                                   "-t",
                                   "4"};
  args.insert(args.end(), codec_args.begin(), codec_args.end());
  args.insert(args.end(), {"-pix_fmt", "yuv420p", "-f", "mpegts", out.string()});
  const CommandResult result = RunCommand("ffmpeg", args, LongCommand());
  ASSERT_EQ(result.exit_code(), 0) << result.Describe();
  ASSERT_TRUE(std::filesystem::exists(out));
}

TEST(TsFfmpegTest, AnalyzerAgreesWithFfprobeOnH264) {
  ASSERT_NO_FATAL_FAILURE(RequireTool("ffmpeg"));
  ASSERT_NO_FATAL_FAILURE(RequireTool("ffprobe"));
  TempDir dir("edgeflow-ts-ffmpeg-");
  const std::filesystem::path file = dir.Sub("h264.ts");
  ASSERT_NO_FATAL_FAILURE(Encode(file, {"-c:v", "libx264", "-g", "30", "-bf", "2"}));
  ExpectAnalyzerMatchesFfprobe(file, VideoCodec::kH264);
}

TEST(TsFfmpegTest, AnalyzerAgreesWithFfprobeOnH265) {
  ASSERT_NO_FATAL_FAILURE(RequireTool("ffmpeg"));
  ASSERT_NO_FATAL_FAILURE(RequireTool("ffprobe"));
  if (!HasEncoder("libx265")) {
    GTEST_SKIP() << "this ffmpeg has no libx265 encoder; the H.265 comparison needs it";
  }
  TempDir dir("edgeflow-ts-ffmpeg-");
  const std::filesystem::path file = dir.Sub("h265.ts");
  ASSERT_NO_FATAL_FAILURE(
      Encode(file, {"-c:v", "libx265", "-x265-params", "keyint=30:bframes=2:log-level=error"}));
  ExpectAnalyzerMatchesFfprobe(file, VideoCodec::kH265);
}

}  // namespace
}  // namespace edgeflow::ts
