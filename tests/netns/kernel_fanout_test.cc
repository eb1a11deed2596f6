// The stream fan-out in the kernel, end to end on real packets: a sensor namespace streams an
// H.264 TS file made by ffmpeg (testsrc, GOP 30, B-frames) over a veth pair to an edge namespace,
// where FanoutService has the tc program attached, and three consumer namespaces with different
// tolerances receive their copies over veth pairs of their own.
//
// Checked against ground truth computed beside the kernel: every consumer receives, byte for byte
// and in order, what the userspace decision code (DatagramDecider) composes for it from the same
// datagrams; the consumer that keeps everything counts, by class, what the reference TS parser
// counts; the frame-mode consumer's stream decodes with ffmpeg without an error; and the bad
// datagrams a network can bring (not TS, truncated, lying adaptation fields, duplicated,
// reordered) are forwarded whole or counted, never to another consumer.
//
// Needs root (namespaces, eBPF) and ffmpeg with libx264; CI runs it as root (`ctest -L netns`).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fanout/datagram_decider.h"
#include "fanout/fanout_service.h"
#include "netns/fanout_netns.h"
#include "support/command_runner.h"
#include "support/net_namespace.h"
#include "support/temp_dir.h"
#include "ts/ts_analyzer.h"

namespace edgeflow::test_support {
namespace {

using Bytes = std::vector<uint8_t>;
using namespace std::chrono_literals;

constexpr uint16_t kStreamPort = 5000;
constexpr uint16_t kConsumerPort = 6000;
constexpr size_t kTsPacket = 188;
constexpr size_t kPacketsPerDatagram = 7;

Bytes ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteFile(const std::filesystem::path& path, const std::vector<Bytes>& parts) {
  std::ofstream out(path, std::ios::binary);
  for (const Bytes& part : parts) {
    out.write(reinterpret_cast<const char*>(part.data()),
              static_cast<std::streamsize>(part.size()));
  }
}

// Datagrams as a sensor sends them: up to 7 TS packets, a new one at each video picture start
// (the PID of the first video PES start: ffmpeg's is the only video PID).
std::vector<Bytes> SensorDatagrams(const Bytes& ts) {
  std::vector<Bytes> datagrams;
  Bytes current;
  int video_pid = -1;
  for (size_t at = 0; at + kTsPacket <= ts.size(); at += kTsPacket) {
    const uint8_t* p = ts.data() + at;
    const int pid = (p[1] & 0x1F) << 8 | p[2];
    const bool pusi = (p[1] & 0x40) != 0;
    const size_t payload = (p[3] & 0x20) ? 5u + p[4] : 4u;
    const bool video_start = pusi && payload + 4 <= kTsPacket && p[payload] == 0 &&
                             p[payload + 1] == 0 && p[payload + 2] == 1 &&
                             (p[payload + 3] & 0xF0) == 0xE0;
    if (video_start && video_pid < 0) video_pid = pid;
    const bool picture_start = video_start && pid == video_pid;
    if (!current.empty() && (picture_start || current.size() == kPacketsPerDatagram * kTsPacket)) {
      datagrams.push_back(std::move(current));
      current.clear();
    }
    current.insert(current.end(), p, p + kTsPacket);
  }
  if (!current.empty()) datagrams.push_back(std::move(current));
  return datagrams;
}

constexpr char kNet[] = "10.77";
std::string Edge(size_t link) { return EdgeAddress(kNet, link); }
std::string Host(size_t link) { return SpokeAddress(kNet, link); }

// The sensor's socket.
class Sender {
 public:
  Sender() : fd_(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}
  ~Sender() { close(fd_); }
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  void SendTo(const std::string& host, uint16_t port, const Bytes& datagram) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    inet_pton(AF_INET, host.c_str(), &to.sin_addr);
    EXPECT_EQ(sendto(fd_, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&to),
                     sizeof(to)),
              static_cast<ssize_t>(datagram.size()))
        << std::strerror(errno);
  }

 private:
  int fd_;
};

class KernelFanoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!HaveNetAdmin(&why)) {
      GTEST_SKIP() << "the kernel fan-out test needs root with CAP_NET_ADMIN (CI runs it as "
                      "root): "
                   << why;
    }
    // The sensor's file, at about 1.5 Mbps.
    file_ = dir_.path() / "camera.ts";
    const CommandResult encoded = EncodeCamera(file_, "1500k");
    ASSERT_EQ(encoded.exit_code(), 0)
        << "ffmpeg with libx264 is needed (scripts/setup installs it): " << encoded.Describe();

    for (auto* ns : {&edge_, &sensor_, &consumers_[0], &consumers_[1], &consumers_[2]}) {
      auto created = NetNamespace::Create();
      ASSERT_TRUE(created.has_value()) << created.error().ToString();
      *ns = std::move(*created);
    }
    // Link 0: sensor - edge; links 1..3: edge - consumer k.
    const Status connected = ConnectToEdge(
        *edge_, {sensor_.get(), consumers_[0].get(), consumers_[1].get(), consumers_[2].get()},
        kNet);
    ASSERT_TRUE(connected.ok()) << connected.ToString();
  }

  void TearDown() override {
    // The service detaches from the edge's interfaces, which only the edge's namespace knows.
    if (edge_ && service_) {
      auto destroyed = edge_->Run([&] { service_.reset(); });
      EXPECT_TRUE(destroyed.has_value()) << destroyed.error().ToString();
    }
  }

  TempDir dir_;
  std::filesystem::path file_;
  std::unique_ptr<NetNamespace> edge_, sensor_;
  std::unique_ptr<NetNamespace> consumers_[3];
  std::unique_ptr<fanout::FanoutService> service_;
};

TEST_F(KernelFanoutTest, EachConsumerGetsExactlyItsShareOfARealCameraStream) {
  const std::vector<ef_consumer_policy> policies = {
      {.keep_num = 1, .keep_den = 1, .mode = EF_DROP_FRAME, .pad = {}},
      {.keep_num = 1, .keep_den = 2, .mode = EF_DROP_FRAME, .pad = {}},
      {.keep_num = 1, .keep_den = 3, .mode = EF_DROP_PACKET, .pad = {}}};

  // The edge: the service with the eBPF data path (no sensor control here: the sensor sends
  // everything, so each consumer's residual is its own need).
  auto started = edge_->Run([&]() -> Status {
    auto service = fanout::FanoutService::Create({.datapath = fanout::Datapath::kEbpf});
    if (!service) return service.error();
    service_ = std::move(*service);
    if (Status status = service_->Start(); !status.ok()) return status;
    auto stream = service_->AddStream({.name = "cam1", .listen = {Edge(0), kStreamPort}});
    if (!stream) return stream.error();
    for (size_t c = 0; c < policies.size(); ++c) {
      fanout::ConsumerConfig consumer;
      consumer.name = "c" + std::to_string(c + 1);
      consumer.address = {Host(c + 1), kConsumerPort};
      consumer.need = {{policies[c].keep_num, policies[c].keep_den},
                       static_cast<ef_drop_mode>(policies[c].mode)};
      auto added = service_->AddConsumer("cam1", consumer);
      if (!added) return added.error();
    }
    return Status::Ok();
  });
  ASSERT_TRUE(started.has_value()) << started.error().ToString();
  ASSERT_TRUE(started->ok()) << started->ToString();

  std::vector<std::unique_ptr<ConsumerSocket>> receivers;
  for (auto& consumer : consumers_) {
    auto made = consumer->Run([] {
      auto socket = std::make_unique<ConsumerSocket>(kConsumerPort);
      EXPECT_TRUE(socket->bound());
      return socket;
    });
    ASSERT_TRUE(made.has_value());
    receivers.push_back(std::move(*made));
  }
  auto sender = sensor_->Run([] { return std::make_unique<Sender>(); });
  ASSERT_TRUE(sender.has_value());

  // What the sensor sends: the file's datagrams, then what else a network brings.
  const Bytes ts = ReadFile(file_);
  std::vector<Bytes> datagrams = SensorDatagrams(ts);
  const size_t video_datagrams = datagrams.size();
  Bytes lying_adaptation = datagrams[video_datagrams / 2];
  lying_adaptation[3] |= 0x20;
  lying_adaptation[4] = 190;
  datagrams.push_back(Bytes(512, 0x47));                                     // not TS-aligned
  datagrams.push_back(Bytes(datagrams[1].begin(), datagrams[1].end() - 1));  // truncated
  datagrams.push_back(lying_adaptation);
  datagrams.push_back(datagrams[5]);  // duplicated
  datagrams.push_back(datagrams[9]);  // reordered: 9 before 8
  datagrams.push_back(datagrams[8]);
  for (size_t d = 0; d < datagrams.size(); ++d) {
    (*sender)->SendTo(Edge(0), kStreamPort, datagrams[d]);
    if (d % 8 == 7) std::this_thread::sleep_for(2ms);  // paced, about 40 Mbps at most
  }

  fanout::DatagramDecider expected_decider;
  for (const ef_consumer_policy& policy : policies) expected_decider.AddConsumer(policy);
  std::vector<std::vector<Bytes>> expected(policies.size());
  std::vector<size_t> copies_of_the_file(policies.size());
  Bytes copy;
  for (size_t d = 0; d < datagrams.size(); ++d) {
    const Bytes& datagram = datagrams[d];
    if (d == video_datagrams) {
      for (size_t c = 0; c < policies.size(); ++c) copies_of_the_file[c] = expected[c].size();
    }
    expected_decider.Decide(datagram);
    for (size_t c = 0; c < policies.size(); ++c) {
      expected_decider.Compose(c, datagram, &copy);
      if (!copy.empty()) expected[c].push_back(copy);
    }
  }

  auto status = edge_->Run([&] { return service_->GetStream("cam1"); });
  ASSERT_TRUE(status.has_value());
  for (size_t c = 0; c < policies.size(); ++c) {
    SCOPED_TRACE("consumer " + std::to_string(c + 1));
    const std::vector<Bytes> received = receivers[c]->Drain(700ms);
    ASSERT_EQ(received.size(), expected[c].size());
    for (size_t i = 0; i < received.size(); ++i) {
      ASSERT_EQ(received[i], expected[c][i]) << "copy " << i;
    }
  }
  status = edge_->Run([&] { return service_->GetStream("cam1"); });
  ASSERT_TRUE(status.has_value() && status->has_value());
  const fanout::StreamStatus& stream = **status;
  EXPECT_EQ(stream.datapath, fanout::Datapath::kEbpf);
  EXPECT_EQ(stream.ingress.packets, datagrams.size());
  EXPECT_EQ(stream.ingress.malformed, 0u);
  EXPECT_EQ(stream.ingress.uninspected, 2u);
  EXPECT_EQ(stream.ingress.invalid_ts, 1u);
  for (size_t c = 0; c < policies.size(); ++c) {
    SCOPED_TRACE("consumer " + std::to_string(c + 1));
    fanout::ConsumerCounters kernel = stream.consumers[c].counters;
    EXPECT_EQ(kernel.send_errors, 0u);
    EXPECT_EQ(kernel, expected_decider.counters(c));
  }

  // Ground truth for the consumer that keeps everything: the reference parser over the file.
  ts::TsAnalyzer reference;
  reference.PushAll(ts);
  reference.Finish();
  fanout::DatagramDecider file_only;
  file_only.AddConsumer(policies[0]);
  for (size_t d = 0; d < video_datagrams; ++d) file_only.Decide(datagrams[d]);
  const fanout::ConsumerCounters all = file_only.counters(0);
  EXPECT_EQ(all.sent_packets[EF_CLASS_REFERENCE], reference.stats().packets_by_class[1]);
  EXPECT_EQ(all.sent_packets[EF_CLASS_DIFFERENTIAL], reference.stats().packets_by_class[2]);
  EXPECT_EQ(all.sent_packets[EF_CLASS_OTHER],
            reference.stats().packets - reference.stats().video_packets);

  // Frame mode at 1/2: what the consumer got of the file decodes without an error, and holds
  // about half of the differential pictures (the ratio holds to within a group of pictures).
  const size_t from_file = copies_of_the_file[1];
  const std::filesystem::path half = dir_.path() / "half.ts";
  WriteFile(half, std::vector<Bytes>(expected[1].begin(), expected[1].begin() + from_file));
  const CommandResult decoded =
      RunCommand("ffmpeg", {"-v", "error", "-i", half.string(), "-f", "null", "-"},
                 CommandOptions{.timeout = 120s});
  EXPECT_EQ(decoded.exit_code(), 0) << decoded.Describe();
  EXPECT_EQ(decoded.err, "") << "ffmpeg found errors in the frame-mode consumer's stream";
  const fanout::ConsumerCounters half_counts = stream.consumers[1].counters;
  EXPECT_GT(half_counts.dropped_packets[EF_CLASS_DIFFERENTIAL], 0u);
  EXPECT_EQ(half_counts.dropped_packets[EF_CLASS_REFERENCE], 0u);
}

}  // namespace
}  // namespace edgeflow::test_support
