// The userspace replicator on loopback: a sensor's stream (made with ffmpeg) sent in 7-packet
// datagrams reaches three consumers, each with its own policy, and every consumer receives
// exactly the bytes the fan-out's decision code (DatagramDecider, the kernel program's C) says it
// should, in order, with the same counters; a consumer that keeps everything gets the stream
// whole, with the reference parser's packet counts by class.
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "fanout/datagram_decider.h"
#include "fanout/qoc_plan.h"
#include "fanout/udp_replicator.h"
#include "support/command_runner.h"
#include "support/temp_dir.h"
#include "ts/ts_analyzer.h"

namespace edgeflow::test_support {
namespace {

using fanout::DatagramDecider;
using fanout::ReplicatorConsumer;
using fanout::UdpReplicator;

// A UDP socket bound to 127.0.0.1 on a port the kernel picks.
struct UdpSocket {
  int fd = -1;
  uint16_t port = 0;
  UdpSocket() {
    fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int buffer = 4 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
      socklen_t length = sizeof address;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
      port = ntohs(address.sin_port);
    }
  }
  ~UdpSocket() { ::close(fd); }
  // Datagrams until `count` arrived or `timeout` passed with nothing new.
  std::vector<std::vector<uint8_t>> Receive(size_t count, std::chrono::milliseconds timeout) const {
    std::vector<std::vector<uint8_t>> out;
    std::vector<uint8_t> buffer(65536);
    while (out.size() < count) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) break;
      const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n < 0) break;
      out.emplace_back(buffer.begin(), buffer.begin() + n);
    }
    return out;
  }
};

ef_consumer_policy Policy(uint32_t num, uint32_t den, uint8_t mode) {
  return fanout::PolicyOf({num, den}, static_cast<ef_drop_mode>(mode));
}

TEST(UdpReplicatorTest, EveryConsumerGetsExactlyWhatTheDecisionCodeSays) {
  TempDir dir("edgeflow-replicator-");
  const std::filesystem::path file = dir.Sub("stream.ts");
  const CommandResult encoded = RunCommand(
      // Noise makes the differential pictures camera-sized (several datagrams each), so that
      // both modes have whole datagrams to drop.
      "ffmpeg", {"-v", "error", "-f", "lavfi", "-i",
                 "testsrc=size=640x480:rate=30,noise=alls=12:allf=t", "-t", "2", "-c:v",
                 "libx264", "-b:v", "2M", "-g", "30", "-bf", "2", "-f", "mpegts", file.string()},
      {.timeout = std::chrono::seconds(60)});
  ASSERT_EQ(encoded.exit_code(), 0) << "ffmpeg (scripts/setup installs it): " << encoded.Describe();
  std::ifstream in(file, std::ios::binary);
  const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in),
                                   std::istreambuf_iterator<char>()};
  std::vector<std::vector<uint8_t>> datagrams;
  for (size_t at = 0; at < bytes.size(); at += 7 * EF_TS_PACKET_BYTES) {
    const size_t end = std::min(bytes.size(), at + 7 * EF_TS_PACKET_BYTES);
    datagrams.emplace_back(bytes.begin() + static_cast<ptrdiff_t>(at),
                           bytes.begin() + static_cast<ptrdiff_t>(end));
  }

  const std::vector<ef_consumer_policy> policies = {Policy(1, 1, EF_DROP_FRAME),
                                                    Policy(1, 2, EF_DROP_FRAME),
                                                    Policy(1, 2, EF_DROP_PACKET)};
  // What each consumer should get, from the decision code run here.
  DatagramDecider expected_decider;
  for (const auto& policy : policies) expected_decider.AddConsumer(policy);
  std::vector<std::vector<std::vector<uint8_t>>> expected(policies.size());
  std::vector<uint8_t> copy;
  for (const auto& datagram : datagrams) {
    expected_decider.Decide(datagram);
    for (size_t c = 0; c < policies.size(); ++c) {
      expected_decider.Compose(c, datagram, &copy);
      if (!copy.empty()) expected[c].push_back(copy);
    }
  }
  // The policies do drop something, whole datagrams included.
  ASSERT_LT(expected[1].size(), expected[0].size());
  ASSERT_LT(expected[2].size(), expected[0].size());
  ASSERT_LT(expected_decider.counters(1).sent_packets[EF_CLASS_DIFFERENTIAL],
            expected_decider.counters(0).sent_packets[EF_CLASS_DIFFERENTIAL]);

  std::vector<UdpSocket> sockets(policies.size());
  std::vector<ReplicatorConsumer> consumers;
  for (size_t c = 0; c < policies.size(); ++c) {
    ASSERT_NE(sockets[c].port, 0);
    consumers.push_back({HostPort{"127.0.0.1", sockets[c].port}, policies[c]});
  }
  auto replicator = UdpReplicator::Start(HostPort{"127.0.0.1", 0}, consumers);
  ASSERT_TRUE(replicator.has_value()) << replicator.error().ToString();

  UdpSocket sensor;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons((*replicator)->port());
  for (size_t i = 0; i < datagrams.size(); ++i) {
    ASSERT_EQ(::sendto(sensor.fd, datagrams[i].data(), datagrams[i].size(), 0,
                       reinterpret_cast<sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(datagrams[i].size()));
    // Paced a little, as a sensor is: loopback then loses nothing.
    if (i % 16 == 15) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (size_t c = 0; c < policies.size(); ++c) {
    SCOPED_TRACE("consumer " + std::to_string(c));
    const auto received = sockets[c].Receive(expected[c].size(), std::chrono::seconds(5));
    ASSERT_EQ(received.size(), expected[c].size());
    for (size_t i = 0; i < received.size(); ++i) {
      ASSERT_EQ(received[i], expected[c][i]) << "datagram " << i;
    }
    const fanout::ConsumerCounters got = (*replicator)->counters(c);
    const fanout::ConsumerCounters want = expected_decider.counters(c);
    EXPECT_EQ(got.sent_packets, want.sent_packets);
    EXPECT_EQ(got.dropped_packets, want.dropped_packets);
    EXPECT_EQ(got.datagrams_sent, want.datagrams_sent);
    EXPECT_EQ(got.datagrams_dropped, want.datagrams_dropped);
  }
  EXPECT_EQ((*replicator)->datagrams(), datagrams.size());
  EXPECT_EQ((*replicator)->send_errors(), 0u);

  // The consumer that keeps everything got the stream as it was sent, and its counters by class
  // are the reference parser's.
  ts::TsAnalyzer reference;
  reference.PushAll(bytes);
  reference.Finish();
  const fanout::ConsumerCounters all = (*replicator)->counters(0);
  EXPECT_EQ(all.sent_packets[EF_CLASS_REFERENCE], reference.stats().packets_by_class[1]);
  EXPECT_EQ(all.sent_packets[EF_CLASS_DIFFERENTIAL], reference.stats().packets_by_class[2]);
  EXPECT_EQ(all.sent_packets[EF_CLASS_OTHER],
            reference.stats().packets - reference.stats().video_packets);
}

TEST(UdpReplicatorTest, RefusesWhatItCannotServe) {
  auto not_ipv4 = UdpReplicator::Start(HostPort{"::1", 0}, {});
  ASSERT_FALSE(not_ipv4.has_value());
  EXPECT_TRUE(not_ipv4.error().Is(ErrorCode::kInvalidArgument));
  auto bad_consumer =
      UdpReplicator::Start(HostPort{"127.0.0.1", 0}, {{HostPort{"camera.local", 9}, {}}});
  ASSERT_FALSE(bad_consumer.has_value());
  EXPECT_NE(bad_consumer.error().message().find("camera.local"), std::string::npos);
  UdpSocket taken;
  auto busy = UdpReplicator::Start(HostPort{"127.0.0.1", taken.port}, {});
  ASSERT_FALSE(busy.has_value());
  EXPECT_TRUE(busy.error().Is(ErrorCode::kIoError));
}

}  // namespace
}  // namespace edgeflow::test_support
