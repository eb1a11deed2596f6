// The fan-out's tc program, loaded into the kernel for real and run on crafted frames with
// BPF_PROG_TEST_RUN (the kernel runs it on an skb built from the bytes, as at tc ingress). Loading
// needs CAP_BPF/CAP_NET_ADMIN: without them the tests skip with a message; CI runs them as root.
#include "fanout/fanout_program.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace edgeflow::fanout {
namespace {

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr uint8_t kProtocolTcp = 6;
constexpr uint8_t kProtocolUdp = 17;

constexpr size_t kEthernetHeader = 14;
constexpr size_t kIpv4Header = 20;  // without options
constexpr size_t kUdpHeader = 8;
constexpr size_t kTsPacket = 188;
constexpr size_t kTsPayload = 7 * kTsPacket;  // what MPEG-TS over UDP usually puts in a datagram

// The registered stream's destination, host byte order: 239.1.2.3:5000.
constexpr uint32_t kStreamAddr = 0xef010203;
constexpr uint16_t kStreamPort = 5000;
constexpr uint32_t kStreamId = 7;

struct FrameSpec {
  uint16_t ether_type = kEtherTypeIpv4;
  uint8_t protocol = kProtocolUdp;
  std::vector<uint8_t> ip_options;  // a multiple of 4 bytes; IHL = 5 + size / 4
  uint16_t frag_off = 0;            // flags and fragment offset, host byte order
  uint32_t daddr = kStreamAddr;     // host byte order
  uint16_t dport = kStreamPort;     // host byte order
  size_t payload = kTsPayload;
};

void Put16(std::vector<uint8_t>& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}

void Put32(std::vector<uint8_t>& out, uint32_t value) {
  Put16(out, static_cast<uint16_t>(value >> 16));
  Put16(out, static_cast<uint16_t>(value));
}

// Ethernet / IPv4 (with options) / UDP (or, for another protocol, the same 8 bytes where UDP's
// header would be: TCP's ports are in the same place) / MPEG-TS packets.
std::vector<uint8_t> Frame(const FrameSpec& spec) {
  std::vector<uint8_t> frame = {0x01, 0x00, 0x5e, 0x01, 0x02, 0x03,   // destination MAC
                                0x02, 0x00, 0x00, 0x00, 0x00, 0x01};  // source MAC
  Put16(frame, spec.ether_type);
  const size_t ip_start = frame.size();
  const size_t ip_header = kIpv4Header + spec.ip_options.size();
  frame.push_back(static_cast<uint8_t>(0x40 | (ip_header / 4)));               // version 4, IHL
  frame.push_back(0);                                                          // DSCP/ECN
  Put16(frame, static_cast<uint16_t>(ip_header + kUdpHeader + spec.payload));  // total length
  Put16(frame, 0x1234);                                                        // identification
  Put16(frame, spec.frag_off);
  frame.push_back(64);  // TTL
  frame.push_back(spec.protocol);
  Put16(frame, 0);           // header checksum, filled in below
  Put32(frame, 0x0a000001);  // source 10.0.0.1
  Put32(frame, spec.daddr);
  frame.insert(frame.end(), spec.ip_options.begin(), spec.ip_options.end());
  uint32_t sum = 0;
  for (size_t i = ip_start; i < ip_start + ip_header; i += 2) {
    sum += static_cast<uint32_t>(frame[i] << 8 | frame[i + 1]);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  frame[ip_start + 10] = static_cast<uint8_t>(~sum >> 8);
  frame[ip_start + 11] = static_cast<uint8_t>(~sum);

  Put16(frame, 40000);  // source port
  Put16(frame, spec.dport);
  Put16(frame, static_cast<uint16_t>(kUdpHeader + spec.payload));
  Put16(frame, 0);  // no UDP checksum
  for (size_t i = 0; i < spec.payload; ++i) {
    frame.push_back(i % kTsPacket == 0 ? 0x47 : static_cast<uint8_t>(i));  // TS sync bytes
  }
  return frame;
}

class FanoutProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = FanoutProgram::Load();
    if (!loaded && loaded.error().code() == ErrorCode::kUnavailable) {
      GTEST_SKIP() << "the fan-out's eBPF program cannot be loaded here: "
                   << loaded.error().ToString();
    }
    ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
    program_ = std::move(*loaded);
    ASSERT_TRUE(program_->AddStream(htonl(kStreamAddr), htons(kStreamPort), kStreamId).ok());
  }

  // Runs the program once on `frame` and expects it to let the frame pass.
  void Run(const std::vector<uint8_t>& frame) {
    bpf_test_run_opts options;
    std::memset(&options, 0, sizeof(options));  // libbpf checks unknown bytes are zero
    options.sz = sizeof(options);
    options.data_in = frame.data();
    options.data_size_in = static_cast<uint32_t>(frame.size());
    options.repeat = 1;
    ASSERT_EQ(bpf_prog_test_run_opts(program_->prog_fd(), &options), 0) << std::strerror(errno);
    EXPECT_EQ(options.retval, static_cast<uint32_t>(TC_ACT_OK));
  }

  StreamCounters CountersOf(uint32_t id) {
    auto counters = program_->Counters(id);
    EXPECT_TRUE(counters.has_value()) << counters.error().ToString();
    return counters.value_or(StreamCounters{});
  }

  std::unique_ptr<FanoutProgram> program_;
};

TEST_F(FanoutProgramTest, CountsTheRegisteredStreamsPacketsAndBytes) {
  const std::vector<uint8_t> frame = Frame({});
  ASSERT_EQ(frame.size(), kEthernetHeader + kIpv4Header + kUdpHeader + kTsPayload);
  EXPECT_EQ(CountersOf(kStreamId).packets, 0u);

  Run(frame);
  StreamCounters counters = CountersOf(kStreamId);
  EXPECT_EQ(counters.packets, 1u);
  EXPECT_EQ(counters.bytes, frame.size());

  const std::vector<uint8_t> small = Frame({.payload = kTsPacket});
  Run(small);
  counters = CountersOf(kStreamId);
  EXPECT_EQ(counters.packets, 2u);
  EXPECT_EQ(counters.bytes, frame.size() + small.size());
}

TEST_F(FanoutProgramTest, KeepsStreamsApart) {
  ASSERT_TRUE(program_->AddStream(htonl(kStreamAddr), htons(kStreamPort + 2), 8).ok());
  Run(Frame({.dport = kStreamPort + 2}));
  Run(Frame({.dport = kStreamPort + 2}));
  Run(Frame({}));
  EXPECT_EQ(CountersOf(8).packets, 2u);
  EXPECT_EQ(CountersOf(kStreamId).packets, 1u);
}

TEST_F(FanoutProgramTest, IgnoresAnUnregisteredPortOrAddress) {
  Run(Frame({.dport = kStreamPort + 1}));
  Run(Frame({.daddr = kStreamAddr + 1}));
  EXPECT_EQ(CountersOf(kStreamId).packets, 0u);
  EXPECT_EQ(CountersOf(kStreamId).bytes, 0u);
}

TEST_F(FanoutProgramTest, IgnoresAFrameCutInsideTheUdpHeader) {
  std::vector<uint8_t> frame = Frame({});
  frame.resize(kEthernetHeader + kIpv4Header + 4);  // the destination port is the cut-off half
  Run(frame);
  std::vector<uint8_t> with_options = Frame({.ip_options = {0x94, 0x04, 0x00, 0x00}});
  with_options.resize(kEthernetHeader + kIpv4Header + 4 + kUdpHeader - 1);
  Run(with_options);
  EXPECT_EQ(CountersOf(kStreamId).packets, 0u);
}

TEST_F(FanoutProgramTest, FindsTheUdpHeaderAfterIpv4Options) {
  // IHL 6: a Router Alert option. Read at a fixed offset, the "port" would be the option's bytes.
  const std::vector<uint8_t> frame = Frame({.ip_options = {0x94, 0x04, 0x00, 0x00}});
  Run(frame);
  // IHL 15, the most there is: 40 bytes of no-operation options.
  const std::vector<uint8_t> longest = Frame({.ip_options = std::vector<uint8_t>(40, 0x01)});
  Run(longest);
  const StreamCounters counters = CountersOf(kStreamId);
  EXPECT_EQ(counters.packets, 2u);
  EXPECT_EQ(counters.bytes, frame.size() + longest.size());
}

TEST_F(FanoutProgramTest, IgnoresOtherProtocols) {
  Run(Frame({.protocol = kProtocolTcp}));  // TCP's destination port is where UDP's is
  Run(Frame({.ether_type = kEtherTypeArp}));
  Run(Frame({.ether_type = kEtherTypeIpv6}));
  EXPECT_EQ(CountersOf(kStreamId).packets, 0u);
}

TEST_F(FanoutProgramTest, IgnoresMalformedAndLaterFragments) {
  std::vector<uint8_t> short_ihl = Frame({});
  short_ihl[kEthernetHeader] = 0x44;  // IHL 4: shorter than an IPv4 header can be
  Run(short_ihl);
  std::vector<uint8_t> not_v4 = Frame({});
  not_v4[kEthernetHeader] = 0x65;  // version 6 in an IPv4 ethertype
  Run(not_v4);
  // A later fragment has no UDP header; its first bytes are payload that can look like one.
  Run(Frame({.frag_off = 185}));
  EXPECT_EQ(CountersOf(kStreamId).packets, 0u);
  // The first fragment (more fragments, offset 0) does carry the UDP header.
  Run(Frame({.frag_off = 0x2000}));
  EXPECT_EQ(CountersOf(kStreamId).packets, 1u);
}

TEST_F(FanoutProgramTest, RefusesBadRegistrations) {
  EXPECT_EQ(program_->AddStream(htonl(kStreamAddr), htons(kStreamPort), 9).code(),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(program_->AddStream(htonl(kStreamAddr), htons(6000), FanoutProgram::kMaxStreams).code(),
            ErrorCode::kInvalidArgument);
  auto counters = program_->Counters(FanoutProgram::kMaxStreams);
  ASSERT_FALSE(counters.has_value());
  EXPECT_EQ(counters.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(FanoutProgramTest, RefusesMoreStreamsThanItHas) {
  for (uint32_t i = 0; i < FanoutProgram::kMaxStreams - 1; ++i) {  // kStreamId is registered
    ASSERT_TRUE(program_->AddStream(htonl(0x0a010000 + i), htons(5000), i).ok()) << i;
  }
  EXPECT_EQ(program_->AddStream(htonl(0x0a020000), htons(5000), 1).code(),
            ErrorCode::kResourceExhausted);
}

}  // namespace
}  // namespace edgeflow::fanout
