// SensorSender on real encoder output: a 3-second H.264 stream made with Debian's ffmpeg (GOP of
// 30, B-frames, camera-like noise), sent over loopback to a receiver in this process. Keeping
// everything, the receiver gets the file exactly, in datagrams of at most 7 TS packets that start
// at picture starts, with the reference parser's counts by class; keeping half in frame mode,
// what arrives decodes with ffmpeg without a single error, and the counts are what the fan-out's
// decision code says; at speed 1 the file takes its 3 seconds.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "fanout/datagram_decider.h"
#include "fanout/sensor_quality.h"
#include "fanout/sensor_sender.h"
#include "support/command_runner.h"
#include "support/temp_dir.h"
#include "support/udp_receiver.h"
#include "ts/ts_analyzer.h"

namespace edgeflow::test_support {
namespace {

using fanout::SensorCounters;
using fanout::SensorSender;
using fanout::SensorSenderOptions;
constexpr size_t kTs = EF_TS_PACKET_BYTES;

std::vector<uint8_t> ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class SensorSenderFfmpegTest : public ::testing::Test {
 protected:
  // One stream for the whole suite: encoding is the slow part.
  static void SetUpTestSuite() {
    dir_ = new TempDir("edgeflow-sensor-ffmpeg-");
    const std::filesystem::path file = dir_->Sub("camera.ts");
    const CommandResult encoded = RunCommand(
        "ffmpeg",
        {"-v", "error", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30,noise=alls=12:allf=t",
         "-t", "3", "-c:v", "libx264", "-b:v", "1500k", "-g", "30", "-bf", "2", "-f", "mpegts",
         file.string()},
        {.timeout = std::chrono::seconds(120)});
    encode_error_ = new std::string(encoded.exit_code() == 0 ? "" : encoded.Describe());
    stream_ = new std::vector<uint8_t>(ReadAll(file));
  }
  static void TearDownTestSuite() {
    delete stream_;
    delete encode_error_;
    delete dir_;
  }
  void SetUp() override {
    ASSERT_EQ(*encode_error_, "") << "ffmpeg (scripts/setup installs it) failed";
    ASSERT_FALSE(stream_->empty());
  }

  static std::filesystem::path File() { return dir_->Sub("camera.ts"); }

  // Sends the stream to `receiver` with `quality` at `speed`; returns the counters and the time.
  static SensorCounters Send(const UdpReceiver& receiver, const ef_consumer_policy& quality,
                             double speed, double* seconds = nullptr) {
    SensorSenderOptions options;
    options.ts_file = File();
    options.destination = HostPort{"127.0.0.1", receiver.port()};
    options.speed = speed;
    options.quality = quality;
    auto sender = SensorSender::Create(options);
    EXPECT_TRUE(sender.has_value()) << sender.error().ToString();
    if (!sender) return {};
    const auto start = std::chrono::steady_clock::now();
    const Status status = (*sender)->Run();
    EXPECT_TRUE(status.ok()) << status.ToString();
    if (seconds != nullptr) {
      *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    return (*sender)->counters();
  }

  static TempDir* dir_;
  static std::string* encode_error_;
  static std::vector<uint8_t>* stream_;
};

TempDir* SensorSenderFfmpegTest::dir_ = nullptr;
std::string* SensorSenderFfmpegTest::encode_error_ = nullptr;
std::vector<uint8_t>* SensorSenderFfmpegTest::stream_ = nullptr;

ef_consumer_policy Half() {
  ef_consumer_policy policy = fanout::FullQuality();
  policy.keep_num = 1;
  policy.keep_den = 2;
  return policy;
}

TEST_F(SensorSenderFfmpegTest, KeepingEverythingDeliversTheFileInPictureAlignedDatagrams) {
  ts::TsAnalyzer reference;
  reference.PushAll(*stream_);
  reference.Finish();
  ASSERT_TRUE(reference.video_pid().has_value());
  const uint16_t video_pid = *reference.video_pid();
  auto picture_start = [&](const uint8_t* p) {
    return (p[1] & 0x40) != 0 && ((((p[1] & 0x1F) << 8) | p[2]) == video_pid);
  };

  UdpReceiver receiver;
  ASSERT_NE(receiver.port(), 0);
  const SensorCounters counters = Send(receiver, fanout::FullQuality(), 0);
  const std::vector<ReceivedDatagram> datagrams = receiver.Settle();
  ASSERT_EQ(UdpReceiver::Joined(datagrams), *stream_);

  size_t pictures = 0;
  for (size_t d = 0; d < datagrams.size(); ++d) {
    const std::vector<uint8_t>& bytes = datagrams[d].bytes;
    ASSERT_EQ(bytes.size() % kTs, 0u);
    ASSERT_LE(bytes.size() / kTs, size_t{EF_MAX_TS_PER_DATAGRAM}) << d;
    if (picture_start(bytes.data())) ++pictures;
    for (size_t i = 1; i < bytes.size() / kTs; ++i) {
      ASSERT_FALSE(picture_start(bytes.data() + i * kTs)) << "datagram " << d << ", packet " << i;
    }
  }
  EXPECT_EQ(pictures, reference.frames().size());
  EXPECT_EQ(pictures, 90u);

  const ts::AnalyzerStats stats = reference.stats();
  EXPECT_EQ(counters.packets_sent[EF_CLASS_REFERENCE], stats.packets_by_class[1]);
  EXPECT_EQ(counters.packets_sent[EF_CLASS_DIFFERENTIAL], stats.packets_by_class[2]);
  EXPECT_EQ(counters.packets_sent[EF_CLASS_OTHER], stats.packets - stats.video_packets);
  EXPECT_EQ(counters.total_suppressed_packets(), 0u);
  EXPECT_EQ(counters.datagrams_sent, datagrams.size());
  EXPECT_EQ(counters.bytes_sent, stream_->size());
  EXPECT_EQ(counters.skipped_bytes, 0u);
  EXPECT_GT(counters.pcrs, 30u);  // ffmpeg writes a PCR at least every 100 ms
  EXPECT_EQ(counters.timeline_breaks, 0u);
}

TEST_F(SensorSenderFfmpegTest, KeepingHalfInFrameModeSendsWhatTheEdgeWouldAndItDecodes) {
  // The packing, then what the edge's decision code keeps of it for a consumer at 1/2.
  UdpReceiver all_receiver;
  Send(all_receiver, fanout::FullQuality(), 0);
  const std::vector<ReceivedDatagram> packed = all_receiver.Settle();
  fanout::DatagramDecider decider;
  decider.AddConsumer(Half());
  std::vector<uint8_t> expected;
  for (const ReceivedDatagram& datagram : packed) {
    decider.Decide(datagram.bytes);
    for (size_t i = 0; i < datagram.bytes.size() / kTs; ++i) {
      if ((decider.mask(0) & (1u << i)) == 0) continue;
      expected.insert(expected.end(), datagram.bytes.begin() + static_cast<ptrdiff_t>(i * kTs),
                      datagram.bytes.begin() + static_cast<ptrdiff_t>((i + 1) * kTs));
    }
  }

  UdpReceiver receiver;
  const SensorCounters counters = Send(receiver, Half(), 0);
  const std::vector<uint8_t> received = UdpReceiver::Joined(receiver.Settle());
  ASSERT_EQ(received, expected);
  EXPECT_EQ(counters.packets_sent, decider.counters(0).sent_packets);
  EXPECT_EQ(counters.packets_suppressed, decider.counters(0).dropped_packets);
  EXPECT_GT(counters.packets_suppressed[EF_CLASS_DIFFERENTIAL],
            counters.packets_sent[EF_CLASS_DIFFERENTIAL] / 4)
      << "a half of the differential pictures is a good share of their packets";
  EXPECT_LT(received.size(), stream_->size());

  const std::filesystem::path file = dir_->Sub("received-half.ts");
  std::ofstream(file, std::ios::binary)
      .write(reinterpret_cast<const char*>(received.data()),
             static_cast<std::streamsize>(received.size()));
  const CommandResult decoded =
      RunCommand("ffmpeg", {"-v", "error", "-i", file.string(), "-f", "null", "-"});
  ASSERT_EQ(decoded.exit_code(), 0) << decoded.Describe();
  EXPECT_EQ(decoded.err, "") << "decoding what the sensor sent reported errors";
  // The pictures that arrived: the 3 reference ones and about half of the 87 others.
  const CommandResult probed = RunCommand(
      "ffprobe", {"-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                  "stream=nb_read_frames", "-of", "csv=p=0", file.string()});
  ASSERT_EQ(probed.exit_code(), 0) << probed.Describe();
  EXPECT_NEAR(std::stod(probed.out), 3 + 87 / 2.0, 30.0 / 2) << probed.out;
}

TEST_F(SensorSenderFfmpegTest, AtSpeedOneTheFileTakesItsDuration) {
  UdpReceiver receiver;
  double seconds = 0;
  const SensorCounters counters = Send(receiver, fanout::FullQuality(), 1, &seconds);
  EXPECT_NEAR(seconds, 3.0, 0.3);
  EXPECT_EQ(UdpReceiver::Joined(receiver.Settle()), *stream_);
  EXPECT_LE(counters.late_datagrams, counters.datagrams_sent / 20) << "pacing fell behind";
}

}  // namespace
}  // namespace edgeflow::test_support
