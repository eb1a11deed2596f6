// The in-kernel inspection (src/fanout/bpf/ts_dpi.h) against the reference parser (src/ts) on
// real encoder output: streams made with Debian's ffmpeg (H.264 and H.265, a GOP of 30, B-frames)
// are read packet by packet by both, and every packet must get the same class, and every
// differential picture the same "referenced" answer. This is what lets the fan-out tests trust
// the kernel's counters against the parser's ground truth.
//
// Then the drop policy (drop_policy.h) in frame mode on such a stream, in 7-packet datagrams as a
// sensor sends them: what each consumer gets must decode with ffmpeg without a single error, and
// hold the number of pictures the policy promised.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fanout/bpf/drop_policy.h"
#include "fanout/bpf/ts_dpi.h"
#include "support/command_runner.h"
#include "support/temp_dir.h"
#include "ts/ts_analyzer.h"

namespace edgeflow::test_support {
namespace {

std::vector<uint8_t> ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A stream made with ffmpeg from its test source, `seconds` long at 30 fps.
::testing::AssertionResult Encode(const std::filesystem::path& file, int seconds,
                                  const std::vector<std::string>& codec_args) {
  std::vector<std::string> args = {"-v", "error", "-f", "lavfi", "-i",
                                   "testsrc=size=320x240:rate=30", "-t", std::to_string(seconds)};
  args.insert(args.end(), codec_args.begin(), codec_args.end());
  args.insert(args.end(), {"-f", "mpegts", file.string()});
  CommandOptions options;
  options.timeout = std::chrono::seconds(60);
  const CommandResult encoded = RunCommand("ffmpeg", args, options);
  if (encoded.spawn_failed || encoded.exit_code() != 0) {
    return ::testing::AssertionFailure()
           << "ffmpeg (scripts/setup installs it) failed: " << encoded.Describe();
  }
  return ::testing::AssertionSuccess();
}

struct Encoding {
  std::string name;
  std::vector<std::string> codec_args;
};

class TsDpiAgainstReferenceTest : public ::testing::TestWithParam<Encoding> {};

TEST_P(TsDpiAgainstReferenceTest, EveryPacketGetsTheReferenceClass) {
  TempDir dir("edgeflow-ts-dpi-");
  const std::filesystem::path file = dir.Sub("stream.ts");
  ASSERT_TRUE(Encode(file, 4, GetParam().codec_args));
  const std::vector<uint8_t> bytes = ReadAll(file);
  ASSERT_EQ(bytes.size() % EF_TS_PACKET_BYTES, 0u);

  ts::TsAnalyzer reference;
  reference.PushAll(bytes);
  reference.Finish();
  ASSERT_EQ(reference.frames().size(), 120u);
  ASSERT_EQ(reference.stats().frames[1], 4u);  // a GOP of 30: four reference pictures

  ef_stream_state state;
  ef_stream_state_init(&state, EF_CODEC_AUTO);
  uint64_t mismatches = 0, video = 0;
  std::string first_mismatch;
  for (size_t i = 0; i * EF_TS_PACKET_BYTES < bytes.size(); ++i) {
    const ef_ts_verdict v = ef_inspect_ts_packet(&state, bytes.data() + i * EF_TS_PACKET_BYTES);
    ASSERT_EQ(v.valid, 1) << "packet " << i;
    uint8_t expected = EF_CLASS_OTHER;
    bool referenced = true;
    if (reference.is_video_packet(i)) {
      ++video;
      expected = static_cast<uint8_t>(reference.packet_class(i));
      ASSERT_GT(state.frame_seq, 0u);
      referenced = reference.frames().at(state.frame_seq - 1).referenced;
    }
    const bool same = v.klass == expected &&
                      (expected != EF_CLASS_DIFFERENTIAL || (v.referenced != 0) == referenced);
    if (!same && mismatches++ == 0) {
      first_mismatch = "packet " + std::to_string(i) + ": class " + std::to_string(v.klass) +
                       " referenced " + std::to_string(v.referenced) + ", reference says " +
                       std::to_string(expected) + " referenced " + std::to_string(referenced);
    }
  }
  EXPECT_EQ(mismatches, 0u) << first_mismatch;
  EXPECT_EQ(state.frame_seq, 120u);
  EXPECT_EQ(video, reference.stats().video_packets);
  EXPECT_EQ(state.codec, GetParam().name == "h265" ? EF_CODEC_H265 : EF_CODEC_H264);
}

INSTANTIATE_TEST_SUITE_P(
    Encoders, TsDpiAgainstReferenceTest,
    ::testing::Values(Encoding{"h264", {"-c:v", "libx264", "-g", "30", "-bf", "2"}},
                      Encoding{"h264_no_bframes", {"-c:v", "libx264", "-g", "30", "-bf", "0"}},
                      Encoding{"h265",
                               {"-c:v", "libx265", "-x265-params",
                                "keyint=30:min-keyint=30:bframes=2:log-level=error"}}),
    [](const ::testing::TestParamInfo<Encoding>& param_info) { return param_info.param.name; });

TEST(DropPolicyOnRealVideoTest, FrameModeOutputDecodesWithoutErrors) {
  TempDir dir("edgeflow-drop-policy-");
  const std::filesystem::path source = dir.Sub("source.ts");
  ASSERT_TRUE(Encode(source, 8, {"-c:v", "libx264", "-g", "30", "-bf", "2"}));
  const std::vector<uint8_t> bytes = ReadAll(source);
  const size_t packets = bytes.size() / EF_TS_PACKET_BYTES;

  struct Consumer {
    uint32_t keep_num = 1, keep_den = 1;
    ef_consumer_policy policy{};
    ef_consumer_state state{};
    std::vector<uint8_t> received;
    uint32_t pictures = 0;  // pictures it gets (reference ones and kept differential ones)
  };
  std::vector<Consumer> consumers;
  for (auto [num, den] : std::vector<std::pair<uint32_t, uint32_t>>{
           {1, 1}, {3, 4}, {1, 2}, {1, 4}, {0, 1}}) {
    Consumer& c = consumers.emplace_back();
    c.keep_num = num;
    c.keep_den = den;
    c.policy.keep_num = num;
    c.policy.keep_den = den;
    c.policy.mode = EF_DROP_FRAME;
  }
  std::array<uint8_t, EF_TS_PACKET_BYTES> null_packet;
  null_packet.fill(0xFF);
  null_packet[0] = EF_TS_SYNC_BYTE;
  null_packet[1] = 0x1F;
  null_packet[2] = 0xFF;
  null_packet[3] = 0x10;

  ef_stream_state stream;
  ef_stream_state_init(&stream, EF_CODEC_AUTO);
  uint32_t differential_pictures = 0;
  for (size_t first = 0; first < packets; first += EF_MAX_TS_PER_DATAGRAM) {
    const uint32_t n =
        static_cast<uint32_t>(std::min<size_t>(EF_MAX_TS_PER_DATAGRAM, packets - first));
    ef_ts_verdict verdicts[EF_MAX_TS_PER_DATAGRAM];
    for (uint32_t i = 0; i < n; ++i) {
      verdicts[i] = ef_inspect_ts_packet(&stream, bytes.data() + (first + i) * EF_TS_PACKET_BYTES);
      if (verdicts[i].frame_start && verdicts[i].klass == EF_CLASS_DIFFERENTIAL) {
        ++differential_pictures;
      }
    }
    for (Consumer& c : consumers) {
      const uint32_t mask = ef_decide_datagram(&c.policy, &c.state, verdicts, n);
      if (mask == 0) continue;
      for (uint32_t i = 0; i < n; ++i) {
        const uint8_t* packet = bytes.data() + (first + i) * EF_TS_PACKET_BYTES;
        if ((mask & (1u << i)) != 0) {
          c.received.insert(c.received.end(), packet, packet + EF_TS_PACKET_BYTES);
          if (verdicts[i].frame_start) ++c.pictures;
        } else {
          c.received.insert(c.received.end(), null_packet.begin(), null_packet.end());
        }
      }
    }
  }
  ASSERT_EQ(differential_pictures, 232u);  // 240 pictures, a reference one every 30

  for (Consumer& c : consumers) {
    SCOPED_TRACE(std::to_string(c.keep_num) + "/" + std::to_string(c.keep_den));
    const std::filesystem::path file =
        dir.Sub("consumer-" + std::to_string(c.keep_num) + "-" + std::to_string(c.keep_den) + ".ts");
    std::ofstream(file, std::ios::binary)
        .write(reinterpret_cast<const char*>(c.received.data()),
               static_cast<std::streamsize>(c.received.size()));
    const CommandResult decoded =
        RunCommand("ffmpeg", {"-v", "error", "-i", file.string(), "-f", "null", "-"});
    ASSERT_EQ(decoded.exit_code(), 0) << decoded.Describe();
    EXPECT_EQ(decoded.err, "") << "decoding what the consumer got reported errors";
    const CommandResult probed = RunCommand(
        "ffprobe", {"-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                    "stream=nb_read_frames", "-of", "csv=p=0", file.string()});
    ASSERT_EQ(probed.exit_code(), 0) << probed.Describe();
    EXPECT_EQ(std::stoul(probed.out), c.pictures) << probed.out;
    // Over 8 GOPs the ratio holds to within one GOP's worth of pictures.
    const double target = 8 + 232.0 * c.keep_num / c.keep_den;
    EXPECT_NEAR(c.pictures, target, 30.0);
  }
}

}  // namespace
}  // namespace edgeflow::test_support
