// SensorSender on hand-made H.264 streams (tests/unit/ts_test_bytes.h) sent to a UDP receiver in
// this process, on loopback: the datagrams' packing, the suppression against the decision code
// run here, resynchronisation on damaged files, pacing from the PCR, loops, the duration, Stop()
// and quality changes while it runs. The same on ffmpeg's output, decoded by ffmpeg, is in
// tests/integration/sensor_sender_ffmpeg_test.cc.
#include "fanout/sensor_sender.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "fanout/datagram_decider.h"
#include "fanout/qoc_plan.h"
#include "support/temp_dir.h"
#include "support/udp_receiver.h"
#include "ts_test_bytes.h"

namespace edgeflow::fanout {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using ts::test_bytes::AdaptationSpec;
using ts::test_bytes::BuildPacket;
using ts::test_bytes::BuildPatSection;
using ts::test_bytes::BuildPes;
using ts::test_bytes::BuildPmtSection;
using ts::test_bytes::Bytes;
using ts::test_bytes::Concat;
using ts::test_bytes::StreamBuilder;
namespace h264 = ts::test_bytes::h264;

constexpr uint16_t kPmtPid = 0x1000;
constexpr uint16_t kVideoPid = 0x100;
constexpr uint16_t kPcrPid = 0x101;
constexpr int kPicturesPerSecond = 30;
constexpr int kGop = 10;
constexpr size_t kTs = EF_TS_PACKET_BYTES;

// `seconds` of video at 30 pictures a second, a GOP of 10: an IDR picture, then referenced P and
// non-referenced B pictures in turn, each a few TS packets. The clock is a PID of its own
// (PCR_PID in the PMT) with one PCR before each picture, at the picture's time.
Bytes MakeStream(double seconds, size_t slice_bytes = 500) {
  StreamBuilder b;
  b.AddPsi(0, BuildPatSection({{1, kPmtPid}}));
  b.AddPsi(kPmtPid, BuildPmtSection(1, kPcrPid, {{0x1B, kVideoPid, {}}}));
  const int pictures = static_cast<int>(seconds * kPicturesPerSecond + 0.5);
  const uint64_t first_pcr = 27'000'000ull * 3600;  // an hour into the camera's clock
  for (int i = 0; i < pictures; ++i) {
    AdaptationSpec clock;
    const uint64_t pcr = first_pcr + static_cast<uint64_t>(i) * (27'000'000 / kPicturesPerSecond);
    clock.pcr_base = pcr / 300;
    clock.pcr_extension = static_cast<uint16_t>(pcr % 300);
    b.Add(BuildPacket(kPcrPid, false, 0, {}, clock));
    Bytes es;
    if (i % kGop == 0) {
      es = Concat({h264::Aud(0), h264::Sps(), h264::Pps(), h264::Slice(h264::kIdr, 7, slice_bytes)});
    } else if (i % 2 == 1) {
      es = Concat({h264::Aud(1), h264::Slice(h264::kSlice, 5, slice_bytes)});
    } else {
      es = Concat({h264::Aud(2),
                   h264::Nal(h264::kSlice, h264::SliceRbsp(6, 0, slice_bytes), /*ref_idc=*/0)});
    }
    b.AddPes(kVideoPid, BuildPes(es, static_cast<uint64_t>(i) * 3000), i % kGop == 0);
  }
  return b.Joined();
}

bool IsPictureStart(const uint8_t* packet) {
  const uint16_t pid = static_cast<uint16_t>(((packet[1] & 0x1F) << 8) | packet[2]);
  return pid == kVideoPid && (packet[1] & 0x40) != 0;
}

std::filesystem::path WriteFile(const test_support::TempDir& dir, const std::string& name,
                                const Bytes& bytes) {
  const std::filesystem::path path = dir.Sub(name);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return path;
}

ef_consumer_policy Policy(uint32_t num, uint32_t den, uint8_t mode) {
  return PolicyOf({num, den}, static_cast<ef_drop_mode>(mode));
}

using test_support::UdpReceiver;
using Received = test_support::ReceivedDatagram;

Bytes Joined(const std::vector<Received>& datagrams) { return UdpReceiver::Joined(datagrams); }

class SensorSenderTest : public ::testing::Test {
 protected:
  SensorSenderOptions Options(const std::filesystem::path& file, uint16_t port) {
    SensorSenderOptions options;
    options.ts_file = file;
    options.destination = HostPort{"127.0.0.1", port};
    options.speed = 0;
    return options;
  }

  std::unique_ptr<SensorSender> Make(SensorSenderOptions options) {
    auto sender = SensorSender::Create(std::move(options));
    EXPECT_TRUE(sender.has_value()) << sender.error().ToString();
    return sender ? std::move(*sender) : nullptr;
  }

  // Runs a sender to its end; returns how long it took.
  std::chrono::duration<double> RunToEnd(SensorSender* sender) {
    const Clock::time_point start = Clock::now();
    const Status status = sender->Run();
    EXPECT_TRUE(status.ok()) << status.ToString();
    return Clock::now() - start;
  }

  test_support::TempDir dir_{"edgeflow-sensor-"};
};

TEST_F(SensorSenderTest, KeepingEverythingSendsTheFileInPictureAlignedDatagrams) {
  const Bytes stream = MakeStream(1.0);
  const auto file = WriteFile(dir_, "stream.ts", stream);
  UdpReceiver receiver;
  ASSERT_NE(receiver.port(), 0);
  auto sender = Make(Options(file, receiver.port()));
  ASSERT_NE(sender, nullptr);
  RunToEnd(sender.get());
  const std::vector<Received> datagrams = receiver.Settle();

  EXPECT_EQ(Joined(datagrams), stream);
  size_t starting_a_picture = 0;
  for (size_t d = 0; d < datagrams.size(); ++d) {
    const Bytes& bytes = datagrams[d].bytes;
    ASSERT_EQ(bytes.size() % kTs, 0u) << d;
    ASSERT_GE(bytes.size(), kTs) << d;
    ASSERT_LE(bytes.size(), EF_MAX_TS_PER_DATAGRAM * kTs) << d;
    if (IsPictureStart(bytes.data())) ++starting_a_picture;
    for (size_t i = 1; i < bytes.size() / kTs; ++i) {
      EXPECT_FALSE(IsPictureStart(bytes.data() + i * kTs))
          << "datagram " << d << " has a picture start at packet " << i;
    }
  }
  EXPECT_EQ(starting_a_picture, 30u);

  const SensorCounters counters = sender->counters();
  EXPECT_EQ(counters.datagrams_sent, datagrams.size());
  EXPECT_EQ(counters.bytes_sent, stream.size());
  EXPECT_EQ(counters.total_sent_packets(), stream.size() / kTs);
  EXPECT_EQ(counters.total_suppressed_packets(), 0u);
  EXPECT_EQ(counters.packets_sent[EF_CLASS_OTHER], 2u + 30u);  // PAT, PMT, one PCR per picture
  EXPECT_GT(counters.packets_sent[EF_CLASS_REFERENCE], 0u);
  EXPECT_GT(counters.packets_sent[EF_CLASS_DIFFERENTIAL], 0u);
  EXPECT_EQ(counters.packets_sent[EF_CLASS_UNKNOWN], 0u);
  EXPECT_EQ(counters.datagrams_suppressed, 0u);
  EXPECT_EQ(counters.skipped_bytes, 0u);
  EXPECT_EQ(counters.send_errors, 0u);
  EXPECT_EQ(counters.late_datagrams, 0u);
  EXPECT_EQ(counters.passes, 1u);
  EXPECT_EQ(counters.pcrs, 30u);
}

TEST_F(SensorSenderTest, SuppressesExactlyWhatTheDecisionCodeDrops) {
  const Bytes stream = MakeStream(2.0);
  const auto file = WriteFile(dir_, "stream.ts", stream);
  // The packing, from a run that keeps everything.
  std::vector<Bytes> packed;
  {
    UdpReceiver receiver;
    auto sender = Make(Options(file, receiver.port()));
    ASSERT_NE(sender, nullptr);
    RunToEnd(sender.get());
    for (Received& d : receiver.Settle()) packed.push_back(std::move(d.bytes));
  }
  for (const ef_consumer_policy policy :
       {Policy(1, 2, EF_DROP_FRAME), Policy(1, 2, EF_DROP_PACKET), Policy(0, 1, EF_DROP_FRAME),
        Policy(1, 3, EF_DROP_PACKET), Policy(3, 4, EF_DROP_FRAME)}) {
    SCOPED_TRACE(KeepText(policy) + " " + std::string(DropModeName(policy)));
    // What the edge's decision code would keep of each datagram, the rest left out.
    DatagramDecider decider;
    decider.AddConsumer(policy);
    std::vector<Bytes> expected;
    uint64_t nothing_kept = 0;
    for (const Bytes& datagram : packed) {
      decider.Decide(datagram);
      Bytes kept;
      for (size_t i = 0; i < datagram.size() / kTs; ++i) {
        if ((decider.mask(0) & (1u << i)) == 0) continue;
        kept.insert(kept.end(), datagram.begin() + static_cast<ptrdiff_t>(i * kTs),
                    datagram.begin() + static_cast<ptrdiff_t>((i + 1) * kTs));
      }
      if (kept.empty()) {
        ++nothing_kept;
      } else {
        expected.push_back(std::move(kept));
      }
    }

    UdpReceiver receiver;
    SensorSenderOptions options = Options(file, receiver.port());
    options.quality = policy;
    auto sender = Make(options);
    ASSERT_NE(sender, nullptr);
    RunToEnd(sender.get());
    const std::vector<Received> received = receiver.Settle();
    ASSERT_EQ(received.size(), expected.size())
        << "of " << packed.size() << " datagrams the sender sent "
        << sender->counters().datagrams_sent << " and suppressed "
        << sender->counters().datagrams_suppressed << "; the decision code suppresses "
        << nothing_kept;
    for (size_t d = 0; d < received.size(); ++d) ASSERT_EQ(received[d].bytes, expected[d]) << d;

    const SensorCounters counters = sender->counters();
    const auto want = decider.counters(0);
    EXPECT_EQ(counters.packets_sent, want.sent_packets);
    EXPECT_EQ(counters.packets_suppressed, want.dropped_packets);
    EXPECT_EQ(counters.datagrams_suppressed, nothing_kept);
    EXPECT_EQ(counters.datagrams_sent, expected.size());
    EXPECT_GT(counters.packets_suppressed[EF_CLASS_DIFFERENTIAL], 0u);
    EXPECT_EQ(counters.packets_suppressed[EF_CLASS_REFERENCE], 0u);
    EXPECT_EQ(counters.packets_suppressed[EF_CLASS_OTHER], 0u);
    EXPECT_EQ(counters.bytes_sent, kTs * counters.total_sent_packets());
  }
}

TEST_F(SensorSenderTest, FindsTheSyncAgainAndCountsTheBytesPassedOver) {
  const Bytes stream = MakeStream(1.0);
  const size_t middle = (stream.size() / kTs / 2) * kTs;
  // Junk with sync bytes in it that are not followed by another one a packet later.
  Bytes junk_before(50, 0x00);
  junk_before[0] = 0x47;
  Bytes junk_middle(100, 0x11);
  junk_middle[0] = 0x47;
  junk_middle[30] = 0x47;
  const Bytes cut_packet = {0x47, 0x01, 0x00, 0x10, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF};
  Bytes damaged = junk_before;
  damaged.insert(damaged.end(), stream.begin(), stream.begin() + static_cast<ptrdiff_t>(middle));
  damaged.insert(damaged.end(), junk_middle.begin(), junk_middle.end());
  damaged.insert(damaged.end(), stream.begin() + static_cast<ptrdiff_t>(middle), stream.end());
  damaged.insert(damaged.end(), cut_packet.begin(), cut_packet.end());
  const auto file = WriteFile(dir_, "damaged.ts", damaged);

  for (const size_t chunk : {size_t{1} << 20, size_t{1}, size_t{1000}}) {
    SCOPED_TRACE("read chunks of " + std::to_string(chunk));
    UdpReceiver receiver;
    SensorSenderOptions options = Options(file, receiver.port());
    options.read_chunk_bytes = chunk;  // 1 means the least the reader can work with
    auto sender = Make(options);
    ASSERT_NE(sender, nullptr);
    RunToEnd(sender.get());
    EXPECT_EQ(Joined(receiver.Settle()), stream);
    EXPECT_EQ(sender->counters().skipped_bytes, 50u + 100u + 10u);
  }
}

TEST_F(SensorSenderTest, PacesAtTheRateOfTheStreamsClock) {
  // 90 pictures, PCRs from 0 to 2.967 s: three seconds of video.
  const Bytes stream = MakeStream(3.0);
  const auto file = WriteFile(dir_, "stream.ts", stream);
  UdpReceiver receiver;
  SensorSenderOptions options = Options(file, receiver.port());
  options.speed = 1;
  auto sender = Make(options);
  ASSERT_NE(sender, nullptr);
  const double took = RunToEnd(sender.get()).count();
  EXPECT_NEAR(took, 3.0, 0.3);
  const std::vector<Received> received = receiver.Settle();
  ASSERT_EQ(Joined(received), stream);
  // Evenly over the three seconds, not in bursts: the datagram of picture 45 left at 1.5 s.
  size_t pictures = 0;
  for (const Received& d : received) {
    if (!IsPictureStart(d.bytes.data()) || ++pictures != 46) continue;
    EXPECT_NEAR(std::chrono::duration<double>(d.at - received.front().at).count(), 1.5, 0.1);
  }
  EXPECT_EQ(pictures, 90u);
  const SensorCounters counters = sender->counters();
  EXPECT_LE(counters.late_datagrams, counters.datagrams_sent / 20) << "pacing fell behind";

  // Twice as fast: half the time. As fast as possible: far less.
  for (const double speed : {2.0, 0.0}) {
    SCOPED_TRACE(speed);
    UdpReceiver fast_receiver;
    options = Options(file, fast_receiver.port());
    options.speed = speed;
    auto fast = Make(options);
    ASSERT_NE(fast, nullptr);
    const double fast_took = RunToEnd(fast.get()).count();
    if (speed > 0) {
      EXPECT_NEAR(fast_took, 1.5, 0.15);
    } else {
      EXPECT_LT(fast_took, 0.5);
    }
    EXPECT_EQ(Joined(fast_receiver.Settle()), stream);
  }
}

TEST_F(SensorSenderTest, StopEndsARunPromptly) {
  const auto file = WriteFile(dir_, "long.ts", MakeStream(60.0, 100));
  UdpReceiver receiver;
  SensorSenderOptions options = Options(file, receiver.port());
  options.speed = 1;
  options.loops = 0;
  auto sender = Make(options);
  ASSERT_NE(sender, nullptr);
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    sender->Stop();
  });
  const double took = RunToEnd(sender.get()).count();
  stopper.join();
  EXPECT_NEAR(took, 0.3, 0.15);
  EXPECT_GT(sender->counters().datagrams_sent, 0u);
  EXPECT_EQ(sender->counters().passes, 0u);
}

TEST_F(SensorSenderTest, TheDurationEndsTheRun) {
  const auto file = WriteFile(dir_, "long.ts", MakeStream(60.0, 100));
  UdpReceiver receiver;
  SensorSenderOptions options = Options(file, receiver.port());
  options.speed = 1;
  options.duration = 500ms;
  auto sender = Make(options);
  ASSERT_NE(sender, nullptr);
  EXPECT_NEAR(RunToEnd(sender.get()).count(), 0.5, 0.1);
  // Half a second of 30 pictures a second went out, not more.
  size_t pictures = 0;
  for (const Received& d : receiver.Settle()) pictures += IsPictureStart(d.bytes.data());
  EXPECT_NEAR(static_cast<double>(pictures), 15, 2);
}

TEST_F(SensorSenderTest, LoopsSendTheFileAgainOnOneTimeline) {
  const Bytes stream = MakeStream(1.0);
  const auto file = WriteFile(dir_, "stream.ts", stream);
  {
    UdpReceiver receiver;
    SensorSenderOptions options = Options(file, receiver.port());
    options.loops = 3;
    auto sender = Make(options);
    ASSERT_NE(sender, nullptr);
    RunToEnd(sender.get());
    EXPECT_EQ(Joined(receiver.Settle()), Concat({stream, stream, stream}));
    EXPECT_EQ(sender->counters().passes, 3u);
    EXPECT_EQ(sender->counters().timeline_breaks, 0u);  // the loops are not the stream's
  }
  {
    // In real time, the second pass follows the first without a pause and without a burst.
    UdpReceiver receiver;
    SensorSenderOptions options = Options(file, receiver.port());
    options.loops = 2;
    options.speed = 1;
    auto sender = Make(options);
    ASSERT_NE(sender, nullptr);
    EXPECT_NEAR(RunToEnd(sender.get()).count(), 2.0, 0.2);
    const std::vector<Received> received = receiver.Settle();
    EXPECT_EQ(Joined(received), Concat({stream, stream}));
    size_t pictures = 0;
    for (const Received& d : received) {
      if (!IsPictureStart(d.bytes.data()) || ++pictures != 31) continue;
      // The first picture of the second pass: one picture after the last of the first.
      EXPECT_NEAR(std::chrono::duration<double>(d.at - received.front().at).count(), 1.0, 0.1);
    }
  }
  {
    // Until stopped: here by the duration.
    UdpReceiver receiver;
    SensorSenderOptions options = Options(file, receiver.port());
    options.loops = 0;
    options.speed = 4;
    options.duration = 800ms;
    auto sender = Make(options);
    ASSERT_NE(sender, nullptr);
    EXPECT_NEAR(RunToEnd(sender.get()).count(), 0.8, 0.1);
    EXPECT_EQ(sender->counters().passes, 3u);  // 0.25 s each
  }
}

TEST_F(SensorSenderTest, QualityChangesWhileItRuns) {
  const auto file = WriteFile(dir_, "stream.ts", MakeStream(2.0));
  UdpReceiver receiver;
  SensorSenderOptions options = Options(file, receiver.port());
  options.speed = 1;
  auto sender = Make(options);
  ASSERT_NE(sender, nullptr);
  std::thread control([&] {
    std::this_thread::sleep_for(700ms);
    sender->SetQuality(Policy(0, 1, EF_DROP_FRAME));
    sender->SetQuality(Policy(0, 1, EF_DROP_FRAME));  // the same again is no change
  });
  RunToEnd(sender.get());
  control.join();
  const SensorCounters counters = sender->counters();
  EXPECT_EQ(counters.quality_changes, 1u);
  EXPECT_EQ(KeepText(sender->quality()), "0/1");
  // Differential pictures went out for the first 0.7 s, none after.
  EXPECT_GT(counters.packets_sent[EF_CLASS_DIFFERENTIAL], 0u);
  EXPECT_GT(counters.packets_suppressed[EF_CLASS_DIFFERENTIAL], 0u);
  const double sent_share =
      static_cast<double>(counters.packets_sent[EF_CLASS_DIFFERENTIAL]) /
      static_cast<double>(counters.packets_sent[EF_CLASS_DIFFERENTIAL] +
                          counters.packets_suppressed[EF_CLASS_DIFFERENTIAL]);
  EXPECT_NEAR(sent_share, 0.35, 0.1);
}

TEST_F(SensorSenderTest, RefusesWhatItCannotSend) {
  const auto file = WriteFile(dir_, "stream.ts", MakeStream(0.2));
  SensorSenderOptions options = Options(dir_.Sub("missing.ts"), 9);
  auto missing = SensorSender::Create(options);
  ASSERT_FALSE(missing.has_value());
  EXPECT_TRUE(missing.error().Is(ErrorCode::kIoError)) << missing.error().ToString();
  EXPECT_NE(missing.error().message().find("missing.ts"), std::string::npos);

  options = Options(file, 9);
  options.destination.host = "no-such-host.invalid";
  auto unresolved = SensorSender::Create(options);
  ASSERT_FALSE(unresolved.has_value());
  EXPECT_TRUE(unresolved.error().Is(ErrorCode::kInvalidArgument));
  EXPECT_NE(unresolved.error().message().find("no-such-host.invalid"), std::string::npos);

  options = Options(file, 0);
  EXPECT_FALSE(SensorSender::Create(options).has_value());
  options = Options(file, 9);
  options.speed = -1;
  EXPECT_FALSE(SensorSender::Create(options).has_value());

  // A file without a single TS packet is an error, even when asked to loop forever. Sync bytes
  // a hundred bytes apart are never confirmed by another one a packet later.
  Bytes sparse_syncs(5000, 0x11);
  for (size_t i = 0; i < sparse_syncs.size(); i += 100) sparse_syncs[i] = 0x47;
  for (const Bytes& content : {Bytes{}, Bytes(5000, 0x00), sparse_syncs}) {
    const auto junk = WriteFile(dir_, "junk.ts", content);
    options = Options(junk, 9);
    options.loops = 0;
    auto sender = Make(options);
    ASSERT_NE(sender, nullptr);
    const Status status = sender->Run();
    EXPECT_TRUE(status.Is(ErrorCode::kInvalidArgument)) << status.ToString();
    EXPECT_EQ(sender->counters().skipped_bytes, content.size());
  }
}

TEST_F(SensorSenderTest, SendsToIpv6AndToNames) {
  const Bytes stream = MakeStream(0.2);
  const auto file = WriteFile(dir_, "stream.ts", stream);
  UdpReceiver v6("::1");
  if (v6.port() == 0) GTEST_SKIP() << "no IPv6 loopback here";
  SensorSenderOptions options = Options(file, v6.port());
  options.destination.host = "::1";
  auto sender = Make(options);
  ASSERT_NE(sender, nullptr);
  EXPECT_EQ(sender->destination(), "[::1]:" + std::to_string(v6.port()));
  RunToEnd(sender.get());
  EXPECT_EQ(Joined(v6.Settle()), stream);

  // A name goes to the first address it resolves to.
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* resolved = nullptr;
  ASSERT_EQ(::getaddrinfo("localhost", "9", &hints, &resolved), 0);
  char first[INET6_ADDRSTRLEN] = {};
  const void* address =
      resolved->ai_family == AF_INET6
          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(resolved->ai_addr)->sin6_addr)
          : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(resolved->ai_addr)->sin_addr);
  ::inet_ntop(resolved->ai_family, address, first, sizeof first);
  ::freeaddrinfo(resolved);
  UdpReceiver named(first);
  ASSERT_NE(named.port(), 0) << first;
  options = Options(file, named.port());
  options.destination.host = "localhost";
  sender = Make(options);
  ASSERT_NE(sender, nullptr);
  RunToEnd(sender.get());
  EXPECT_EQ(Joined(named.Settle()), stream);
}

}  // namespace
}  // namespace edgeflow::fanout
