// The fan-out's tc program, loaded into the kernel for real and run on crafted frames with
// BPF_PROG_TEST_RUN (the kernel runs it on an skb built from the bytes, as at tc ingress). The
// clones the program sends to consumers go out on the loopback interface, where a packet socket
// catches them whole (Ethernet, IP and UDP headers included) and UDP sockets take them in; the
// original, which the last consumer gets (bpf_redirect), comes back from the test run.
//
// Loading needs CAP_BPF/CAP_NET_ADMIN: without them the tests skip with a message; CI runs them as
// root.
#include "fanout/fanout_program.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "fanout/datagram_decider.h"
#include "unit/ts_test_bytes.h"

namespace edgeflow::fanout {
namespace {

namespace tb = ts::test_bytes;
using Bytes = std::vector<uint8_t>;

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
constexpr uint32_t kLoopback = 0x7f000001;
constexpr uint16_t kSourcePort = 40000;

struct FrameSpec {
  uint16_t ether_type = kEtherTypeIpv4;
  uint8_t protocol = kProtocolUdp;
  std::vector<uint8_t> ip_options;  // a multiple of 4 bytes; IHL = 5 + size / 4
  uint16_t frag_off = 0;            // flags and fragment offset, host byte order
  uint32_t saddr = 0x0a000001;      // host byte order
  uint32_t daddr = kStreamAddr;     // host byte order
  uint16_t dport = kStreamPort;     // host byte order
  std::optional<Bytes> payload;     // default: kTsPayload bytes that look like TS packets
  bool udp_checksum = false;        // compute one (else 0: none)
};

void Put16(Bytes& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}

void Put32(Bytes& out, uint32_t value) {
  Put16(out, static_cast<uint16_t>(value >> 16));
  Put16(out, static_cast<uint16_t>(value));
}

uint16_t Get16(const Bytes& in, size_t at) {
  return static_cast<uint16_t>(in[at] << 8 | in[at + 1]);
}

uint32_t Get32(const Bytes& in, size_t at) {
  return static_cast<uint32_t>(Get16(in, at)) << 16 | Get16(in, at + 2);
}

// The Internet checksum's 16-bit ones' complement sum of `bytes`, added to `sum`.
uint32_t SumWords(const uint8_t* bytes, size_t size, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < size; i += 2)
    sum += static_cast<uint32_t>(bytes[i] << 8 | bytes[i + 1]);
  if (size % 2 == 1) sum += static_cast<uint32_t>(bytes[size - 1] << 8);
  return sum;
}

uint16_t Fold(uint32_t sum) {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// The UDP checksum over the pseudo-header, the UDP header (with its checksum field) and payload:
// 0xffff when the checksum field is right.
uint16_t UdpSum(const Bytes& frame, size_t ip_start, size_t udp_start) {
  const uint16_t udp_length = Get16(frame, udp_start + 4);
  uint32_t sum = SumWords(frame.data() + ip_start + 12, 8);  // source and destination addresses
  sum += kProtocolUdp;
  sum += udp_length;
  return Fold(SumWords(frame.data() + udp_start, udp_length, sum));
}

Bytes TsLikePayload(size_t size) {
  Bytes payload;
  for (size_t i = 0; i < size; ++i) {
    payload.push_back(i % kTsPacket == 0 ? 0x47 : static_cast<uint8_t>(i));  // TS sync bytes
  }
  return payload;
}

// Ethernet / IPv4 (with options) / UDP (or, for another protocol, the same 8 bytes where UDP's
// header would be: TCP's ports are in the same place) / payload.
Bytes Frame(const FrameSpec& spec) {
  const Bytes payload = spec.payload.value_or(TsLikePayload(kTsPayload));
  Bytes frame = {0x01, 0x00, 0x5e, 0x01, 0x02, 0x03,   // destination MAC
                 0x02, 0x00, 0x00, 0x00, 0x00, 0x01};  // source MAC
  Put16(frame, spec.ether_type);
  const size_t ip_start = frame.size();
  const size_t ip_header = kIpv4Header + spec.ip_options.size();
  frame.push_back(static_cast<uint8_t>(0x40 | (ip_header / 4)));                 // version, IHL
  frame.push_back(0);                                                            // DSCP/ECN
  Put16(frame, static_cast<uint16_t>(ip_header + kUdpHeader + payload.size()));  // total length
  Put16(frame, 0x1234);                                                          // id
  Put16(frame, spec.frag_off);
  frame.push_back(64);  // TTL
  frame.push_back(spec.protocol);
  Put16(frame, 0);  // header checksum, filled in below
  Put32(frame, spec.saddr);
  Put32(frame, spec.daddr);
  frame.insert(frame.end(), spec.ip_options.begin(), spec.ip_options.end());
  const uint16_t ip_sum =
      static_cast<uint16_t>(~Fold(SumWords(frame.data() + ip_start, ip_header)));
  frame[ip_start + 10] = static_cast<uint8_t>(ip_sum >> 8);
  frame[ip_start + 11] = static_cast<uint8_t>(ip_sum);

  const size_t udp_start = frame.size();
  Put16(frame, kSourcePort);
  Put16(frame, spec.dport);
  Put16(frame, static_cast<uint16_t>(kUdpHeader + payload.size()));
  Put16(frame, 0);  // checksum, filled in below if asked for
  frame.insert(frame.end(), payload.begin(), payload.end());
  if (spec.udp_checksum) {
    uint16_t udp_sum = static_cast<uint16_t>(~UdpSum(frame, ip_start, udp_start));
    if (udp_sum == 0) udp_sum = 0xffff;  // 0 means "none"
    frame[udp_start + 6] = static_cast<uint8_t>(udp_sum >> 8);
    frame[udp_start + 7] = static_cast<uint8_t>(udp_sum);
  }
  return frame;
}

// A copy the program sent: a clone, as a packet socket on lo saw it leave, or the original
// itself, which the last consumer gets (bpf_redirect; BPF_PROG_TEST_RUN hands it back instead of
// sending it).
struct Copy {
  Bytes frame;
  uint16_t dport = 0;  // host byte order
  Bytes payload;       // the UDP payload
};

// The frame as a copy to a local port from the test's source port, or nullopt for other traffic.
std::optional<Copy> CopyOf(Bytes frame) {
  if (frame.size() < kEthernetHeader + kIpv4Header + kUdpHeader) return std::nullopt;
  if (Get16(frame, 12) != kEtherTypeIpv4 || frame[kEthernetHeader + 9] != kProtocolUdp) {
    return std::nullopt;
  }
  const size_t udp = kEthernetHeader + (frame[kEthernetHeader] & 0x0F) * 4;
  if (Get16(frame, udp) != kSourcePort) return std::nullopt;
  const uint16_t dport = Get16(frame, udp + 2);
  const uint16_t udp_length = Get16(frame, udp + 4);
  if (udp + udp_length > frame.size()) return std::nullopt;
  Bytes payload(frame.begin() + static_cast<long>(udp + kUdpHeader),
                frame.begin() + static_cast<long>(udp + udp_length));
  return Copy{std::move(frame), dport, std::move(payload)};
}

// Catches the UDP/IPv4 frames that leave the loopback interface for a set of local ports (other
// tests' traffic on lo is ignored), and binds UDP sockets on those ports so that the copies have
// somewhere to go (the kernel would answer port unreachable otherwise).
class LoopbackTap {
 public:
  explicit LoopbackTap(size_t ports) {
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = static_cast<int>(if_nametoindex("lo"));
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    // Room for every copy of a test (each shows twice on lo) and whatever else lo carries
    // meanwhile; the default buffer holds about a hundred frames.
    const int buffer_bytes = 64 << 20;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &buffer_bytes, sizeof(buffer_bytes));
    for (size_t i = 0; i < ports; ++i) {
      const int udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
      sockaddr_in local{};
      local.sin_family = AF_INET;
      local.sin_addr.s_addr = htonl(kLoopback);
      EXPECT_EQ(bind(udp, reinterpret_cast<sockaddr*>(&local), sizeof(local)), 0);
      socklen_t size = sizeof(local);
      getsockname(udp, reinterpret_cast<sockaddr*>(&local), &size);
      udp_fds_.push_back(udp);
      ports_.push_back(ntohs(local.sin_port));
    }
  }
  ~LoopbackTap() {
    close(fd_);
    for (const int fd : udp_fds_) close(fd);
  }

  uint16_t port(size_t i) const { return ports_[i]; }

  // The copies caught so far, in the order they left (waits up to `wait` for the first).
  std::vector<Copy> Drain(std::chrono::milliseconds wait = std::chrono::milliseconds(200)) {
    std::vector<Copy> copies;
    Bytes buffer(65536);
    pollfd p{fd_, POLLIN, 0};
    while (poll(&p, 1, static_cast<int>(wait.count())) > 0) {
      wait = std::chrono::milliseconds(20);  // the rest left with the first
      for (;;) {
        sockaddr_ll from{};
        socklen_t size = sizeof(from);
        const ssize_t got = recvfrom(fd_, buffer.data(), buffer.size(), 0,
                                     reinterpret_cast<sockaddr*>(&from), &size);
        if (got <= 0) break;
        if (from.sll_pkttype != PACKET_OUTGOING) continue;  // lo shows each frame twice
        auto copy = CopyOf(Bytes(buffer.begin(), buffer.begin() + got));
        if (!copy || std::find(ports_.begin(), ports_.end(), copy->dport) == ports_.end()) {
          continue;
        }
        copies.push_back(std::move(*copy));
      }
    }
    return copies;
  }

 private:
  int fd_ = -1;
  std::vector<int> udp_fds_;
  std::vector<uint16_t> ports_;
};

ef_consumer_policy Policy(uint32_t keep_num, uint32_t keep_den, uint8_t mode) {
  ef_consumer_policy policy{};
  policy.keep_num = keep_num;
  policy.keep_den = keep_den;
  policy.mode = mode;
  return policy;
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
    ASSERT_TRUE(program_->AddStream(kStreamId, Stream(kStreamAddr, kStreamPort)).ok());
  }

  static StreamSpec Stream(uint32_t daddr, uint16_t dport) {
    return StreamSpec{.daddr = htonl(daddr), .dport = htons(dport)};
  }

  // A consumer on lo: 127.0.0.1:port, Ethernet addresses lo's (zero).
  static ConsumerSpec OnLoopback(uint16_t port, const ef_consumer_policy& policy) {
    return ConsumerSpec{.ifindex = static_cast<int>(if_nametoindex("lo")),
                        .daddr = htonl(kLoopback),
                        .dport = htons(port),
                        .policy = policy};
  }

  // Runs the program once on `frame`; returns its verdict. The frame as the program left it is
  // in last_out_.
  uint32_t Run(const Bytes& frame) {
    last_out_.assign(65536, 0);
    bpf_test_run_opts options;
    std::memset(&options, 0, sizeof(options));  // libbpf checks unknown bytes are zero
    options.sz = sizeof(options);
    options.data_in = frame.data();
    options.data_size_in = static_cast<uint32_t>(frame.size());
    options.data_out = last_out_.data();
    options.data_size_out = static_cast<uint32_t>(last_out_.size());
    options.repeat = 1;
    EXPECT_EQ(bpf_prog_test_run_opts(program_->prog_fd(), &options), 0) << std::strerror(errno);
    last_out_.resize(options.data_size_out);
    return options.retval;
  }

  // Runs the program on `frame` and returns every copy it made, in the order the consumers got
  // them: the clones (on lo by the time the run returns), then the original, redirected to the
  // last consumer.
  std::vector<Copy> Send(LoopbackTap& tap, const Bytes& frame) {
    const uint32_t verdict = Run(frame);
    std::vector<Copy> copies = tap.Drain(std::chrono::milliseconds(0));
    if (verdict == static_cast<uint32_t>(TC_ACT_REDIRECT)) {
      auto last = CopyOf(last_out_);
      EXPECT_TRUE(last.has_value()) << "the redirected frame is not a copy to a consumer";
      if (last) copies.push_back(std::move(*last));
    } else {
      EXPECT_EQ(verdict, static_cast<uint32_t>(TC_ACT_SHOT)) << "a stream's datagram went on";
    }
    return copies;
  }

  StreamCounters CountersOf(uint32_t id) {
    auto counters = program_->Counters(id);
    EXPECT_TRUE(counters.has_value()) << counters.error().ToString();
    return counters.value_or(StreamCounters{});
  }

  ConsumerCounters CountersOfConsumer(uint32_t slot) {
    auto counters = program_->CountersOfConsumer(slot);
    EXPECT_TRUE(counters.has_value()) << counters.error().ToString();
    return counters.value_or(ConsumerCounters{});
  }

  std::unique_ptr<FanoutProgram> program_;
  Bytes last_out_;
};

// ---------------------------------------------------------------------------------------------
// Which frames are the stream's

TEST_F(FanoutProgramTest, CountsTheRegisteredStreamsPacketsAndBytesAndConsumesThem) {
  const Bytes frame = Frame({});
  ASSERT_EQ(frame.size(), kEthernetHeader + kIpv4Header + kUdpHeader + kTsPayload);
  EXPECT_EQ(CountersOf(kStreamId).packets, 0u);

  // The fan-out delivers the stream (to no consumer yet): the original goes no further.
  EXPECT_EQ(Run(frame), static_cast<uint32_t>(TC_ACT_SHOT));
  StreamCounters counters = CountersOf(kStreamId);
  EXPECT_EQ(counters.packets, 1u);
  EXPECT_EQ(counters.bytes, frame.size());

  const Bytes small = Frame({.payload = TsLikePayload(kTsPacket)});
  EXPECT_EQ(Run(small), static_cast<uint32_t>(TC_ACT_SHOT));
  counters = CountersOf(kStreamId);
  EXPECT_EQ(counters.packets, 2u);
  EXPECT_EQ(counters.bytes, frame.size() + small.size());
  EXPECT_EQ(counters.ts_packets[EF_CLASS_OTHER], 8u);  // no video PES start seen: not video
}

TEST_F(FanoutProgramTest, KeepsStreamsApart) {
  ASSERT_TRUE(program_->AddStream(8, Stream(kStreamAddr, kStreamPort + 2)).ok());
  Run(Frame({.dport = kStreamPort + 2}));
  Run(Frame({.dport = kStreamPort + 2}));
  Run(Frame({}));
  EXPECT_EQ(CountersOf(8).packets, 2u);
  EXPECT_EQ(CountersOf(kStreamId).packets, 1u);
}

TEST_F(FanoutProgramTest, LetsEverythingElsePass) {
  const uint32_t pass = TC_ACT_OK;
  EXPECT_EQ(Run(Frame({.dport = kStreamPort + 1})), pass);
  EXPECT_EQ(Run(Frame({.daddr = kStreamAddr + 1})), pass);
  EXPECT_EQ(Run(Frame({.protocol = kProtocolTcp})), pass);  // TCP's port is where UDP's is
  EXPECT_EQ(Run(Frame({.ether_type = kEtherTypeArp})), pass);
  EXPECT_EQ(Run(Frame({.ether_type = kEtherTypeIpv6})), pass);
  // A later fragment has no UDP header; its first bytes are payload that can look like one.
  EXPECT_EQ(Run(Frame({.frag_off = 185})), pass);
  EXPECT_EQ(CountersOf(kStreamId).packets, 0u);
  EXPECT_EQ(CountersOf(kStreamId).bytes, 0u);
}

TEST_F(FanoutProgramTest, IgnoresAFrameCutInsideTheUdpHeader) {
  Bytes frame = Frame({});
  frame.resize(kEthernetHeader + kIpv4Header + 4);  // the destination port is the cut-off half
  EXPECT_EQ(Run(frame), static_cast<uint32_t>(TC_ACT_OK));
  Bytes with_options = Frame({.ip_options = {0x94, 0x04, 0x00, 0x00}});
  with_options.resize(kEthernetHeader + kIpv4Header + 4 + kUdpHeader - 1);
  EXPECT_EQ(Run(with_options), static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(CountersOf(kStreamId).packets, 0u);
}

TEST_F(FanoutProgramTest, FindsTheUdpHeaderAfterIpv4Options) {
  // IHL 6: a Router Alert option. Read at a fixed offset, the "port" would be the option's bytes.
  const Bytes frame = Frame({.ip_options = {0x94, 0x04, 0x00, 0x00}});
  EXPECT_EQ(Run(frame), static_cast<uint32_t>(TC_ACT_SHOT));
  // IHL 15, the most there is: 40 bytes of no-operation options.
  const Bytes longest = Frame({.ip_options = std::vector<uint8_t>(40, 0x01)});
  EXPECT_EQ(Run(longest), static_cast<uint32_t>(TC_ACT_SHOT));
  const StreamCounters counters = CountersOf(kStreamId);
  EXPECT_EQ(counters.packets, 2u);
  EXPECT_EQ(counters.bytes, frame.size() + longest.size());
  EXPECT_EQ(counters.malformed, 0u);
}

TEST_F(FanoutProgramTest, LyingLengthsAndFragmentsAreCountedAndNotForwarded) {
  LoopbackTap tap(1);
  ASSERT_TRUE(
      program_->AddConsumer(kStreamId, OnLoopback(tap.port(0), Policy(1, 1, 0))).has_value());
  const size_t udp_length_at = kEthernetHeader + kIpv4Header + 4;
  const size_t ip_length_at = kEthernetHeader + 2;
  std::vector<Bytes> bad;
  Bytes udp_too_long = Frame({});
  udp_too_long[udp_length_at] += 1;  // 256 bytes more than the IP packet holds
  bad.push_back(udp_too_long);
  Bytes udp_too_short = Frame({});
  udp_too_short[udp_length_at] = 0;
  udp_too_short[udp_length_at + 1] = 7;  // less than its own header
  bad.push_back(udp_too_short);
  Bytes ip_too_long = Frame({});
  ip_too_long[ip_length_at] += 1;  // the IP packet claims more than the frame has
  bad.push_back(ip_too_long);
  Bytes short_ihl = Frame({});
  short_ihl[kEthernetHeader] = 0x44;  // IHL 4: shorter than an IPv4 header can be
  bad.push_back(short_ihl);
  bad.push_back(Frame({.frag_off = 0x2000}));  // the first fragment: the rest is elsewhere
  for (const Bytes& frame : bad) {
    EXPECT_EQ(Run(frame), static_cast<uint32_t>(TC_ACT_OK));  // the stack drops them as usual
  }
  EXPECT_TRUE(tap.Drain().empty());
  const StreamCounters counters = CountersOf(kStreamId);
  EXPECT_EQ(counters.malformed, 4u);  // the short IHL is not even recognised as the stream's
  EXPECT_EQ(counters.packets, 4u);
}

TEST_F(FanoutProgramTest, RefusesBadRegistrations) {
  EXPECT_EQ(program_->AddStream(9, Stream(kStreamAddr, kStreamPort)).code(),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(program_->AddStream(kStreamId, Stream(kStreamAddr, 6000)).code(),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(program_->AddStream(FanoutProgram::kMaxStreams, Stream(kStreamAddr, 6000)).code(),
            ErrorCode::kInvalidArgument);
  auto counters = program_->Counters(FanoutProgram::kMaxStreams);
  ASSERT_FALSE(counters.has_value());
  EXPECT_EQ(counters.error().code(), ErrorCode::kInvalidArgument);
  auto consumer = program_->AddConsumer(99, OnLoopback(9, Policy(1, 1, 0)));
  ASSERT_FALSE(consumer.has_value());
  EXPECT_EQ(consumer.error().code(), ErrorCode::kNotFound);
  consumer = program_->AddConsumer(kStreamId, ConsumerSpec{});
  ASSERT_FALSE(consumer.has_value());
  EXPECT_EQ(consumer.error().code(), ErrorCode::kInvalidArgument);  // no interface
  EXPECT_EQ(program_->SetPolicy(5, Policy(1, 2, 0)).code(), ErrorCode::kNotFound);
  EXPECT_EQ(program_->RemoveConsumer(FanoutProgram::kMaxConsumers).code(), ErrorCode::kNotFound);
  EXPECT_EQ(program_->RemoveStream(3).code(), ErrorCode::kNotFound);
}

TEST_F(FanoutProgramTest, RefusesMoreStreamsAndConsumersThanItHas) {
  for (uint32_t i = 0; i < FanoutProgram::kMaxStreams; ++i) {
    if (i == kStreamId) continue;
    ASSERT_TRUE(program_->AddStream(i, Stream(0x0a010000 + i, 5000)).ok()) << i;
  }
  EXPECT_EQ(program_->AddStream(FanoutProgram::kMaxStreams - 1, Stream(0x0a020000, 5000)).code(),
            ErrorCode::kAlreadyExists);
  for (uint32_t i = 0; i < FanoutProgram::kMaxConsumersPerStream; ++i) {
    ASSERT_TRUE(program_->AddConsumer(kStreamId, OnLoopback(9, Policy(1, 1, 0))).has_value()) << i;
  }
  auto one_more = program_->AddConsumer(kStreamId, OnLoopback(9, Policy(1, 1, 0)));
  ASSERT_FALSE(one_more.has_value());
  EXPECT_EQ(one_more.error().code(), ErrorCode::kResourceExhausted);
  // Other streams fill the rest of the slots; then none is left anywhere.
  uint32_t stream = 0;
  for (uint32_t added = FanoutProgram::kMaxConsumersPerStream; added < FanoutProgram::kMaxConsumers;
       ++added) {
    if (added % FanoutProgram::kMaxConsumersPerStream == 0) {
      ++stream;
      if (stream == kStreamId) ++stream;
    }
    auto slot = program_->AddConsumer(stream, OnLoopback(9, Policy(1, 1, 0)));
    ASSERT_TRUE(slot.has_value()) << added << ": " << slot.error().ToString();
  }
  one_more = program_->AddConsumer(100, OnLoopback(9, Policy(1, 1, 0)));
  ASSERT_FALSE(one_more.has_value());
  EXPECT_EQ(one_more.error().code(), ErrorCode::kResourceExhausted);
}

// ---------------------------------------------------------------------------------------------
// Replication

constexpr uint16_t kVideoPid = 0x100;

// An H.264 stream of `gops` groups of pictures (I B B P B B P B B P B B, the B pictures not
// referenced), with PAT and PMT before each I picture, in TS packets.
tb::StreamBuilder CameraLikeStream(int gops) {
  tb::StreamBuilder stream;
  const Bytes pat = tb::BuildPatSection({{1, 0x1000}});
  const Bytes pmt = tb::BuildPmtSection(1, kVideoPid, {{0x1B, kVideoPid, {}}});
  uint64_t pts = 0;
  for (int gop = 0; gop < gops; ++gop) {
    stream.AddPsi(0, pat);
    stream.AddPsi(0x1000, pmt);
    for (int picture = 0; picture < 12; ++picture) {
      Bytes es = tb::h264::Aud(picture == 0 ? 0 : 2);
      if (picture == 0) {
        tb::Append(&es, tb::h264::Slice(tb::h264::kIdr, 7, 1500));
      } else if (picture % 3 == 0) {
        tb::Append(&es, tb::h264::Slice(tb::h264::kSlice, 5, 600));  // P, referenced
      } else {
        tb::Append(&es, tb::h264::Nal(tb::h264::kSlice, tb::h264::SliceRbsp(6, 0, 250), 0));  // B
      }
      stream.AddPes(kVideoPid, tb::BuildPes(es, pts), picture == 0);
      pts += 3000;
    }
  }
  return stream;
}

// Datagrams of up to 7 TS packets, starting a new one at each picture start as a good sender
// does, plus what a network can also bring: not TS, truncated, too many packets, a TS packet with
// a lying adaptation field length.
std::vector<Bytes> Datagrams(const tb::StreamBuilder& stream) {
  std::vector<Bytes> datagrams;
  Bytes current;
  for (const Bytes& packet : stream.packets()) {
    const bool picture_start =
        (packet[1] & 0x40) != 0 && ((packet[1] & 0x1F) << 8 | packet[2]) == kVideoPid;
    if (!current.empty() && (picture_start || current.size() == kTsPayload)) {
      datagrams.push_back(std::move(current));
      current.clear();
    }
    current.insert(current.end(), packet.begin(), packet.end());
  }
  if (!current.empty()) datagrams.push_back(std::move(current));
  const size_t middle = datagrams.size() / 2;
  datagrams.insert(datagrams.begin() + static_cast<long>(middle), Bytes(512, 0x47));
  datagrams.insert(datagrams.begin() + static_cast<long>(middle), TsLikePayload(kTsPacket - 1));
  datagrams.insert(datagrams.begin() + static_cast<long>(middle), TsLikePayload(8 * kTsPacket));
  Bytes lying = datagrams[middle + 5];
  lying[3] |= 0x20;  // claims an adaptation field...
  lying[4] = 200;    // ...longer than the packet
  datagrams.insert(datagrams.begin() + static_cast<long>(middle) + 6, lying);
  return datagrams;
}

TEST_F(FanoutProgramTest, SendsEachConsumerWhatTheUserspaceDeciderDoes) {
  const std::vector<Bytes> datagrams = Datagrams(CameraLikeStream(4));
  const std::vector<ef_consumer_policy> policies = {
      Policy(1, 1, EF_DROP_FRAME), Policy(1, 2, EF_DROP_FRAME), Policy(1, 3, EF_DROP_PACKET),
      Policy(0, 1, EF_DROP_FRAME)};
  LoopbackTap tap(policies.size());
  DatagramDecider decider;
  std::vector<uint32_t> slots;
  std::map<uint16_t, size_t> consumer_of_port;
  for (size_t c = 0; c < policies.size(); ++c) {
    ConsumerSpec spec = OnLoopback(tap.port(c), policies[c]);
    spec.dmac = {0, 0, 0, 0, 0, 0};
    spec.smac = {0x02, 0, 0, 0, 0, static_cast<uint8_t>(c)};
    auto slot = program_->AddConsumer(kStreamId, spec);
    ASSERT_TRUE(slot.has_value()) << slot.error().ToString();
    slots.push_back(*slot);
    EXPECT_EQ(decider.AddConsumer(policies[c]), c);
    consumer_of_port[tap.port(c)] = c;
  }

  size_t expected_copies = 0;
  std::vector<std::vector<Bytes>> expected(policies.size());
  std::vector<Copy> copies;
  Bytes composed;
  for (size_t d = 0; d < datagrams.size(); ++d) {
    if (d == datagrams.size() / 2 + 20) {
      // A policy changes while the stream flows: the kernel takes it without reloading.
      ASSERT_TRUE(program_->SetPolicy(slots[0], Policy(1, 4, EF_DROP_PACKET)).ok());
      decider.SetPolicy(0, Policy(1, 4, EF_DROP_PACKET));
    }
    if (d == datagrams.size() * 3 / 4) {
      // And again: the policy is double-buffered, so this one goes back to the first buffer.
      ASSERT_TRUE(program_->SetPolicy(slots[0], Policy(2, 3, EF_DROP_PACKET)).ok());
      decider.SetPolicy(0, Policy(2, 3, EF_DROP_PACKET));
    }
    std::vector<Copy> sent =
        Send(tap, Frame({.saddr = kLoopback, .payload = datagrams[d], .udp_checksum = true}));
    copies.insert(copies.end(), sent.begin(), sent.end());
    decider.Decide(datagrams[d]);
    for (size_t c = 0; c < policies.size(); ++c) {
      if (decider.mask(c) == 0) continue;
      decider.Compose(c, datagrams[d], &composed);
      expected[c].push_back(composed);
      ++expected_copies;
    }
  }
  ASSERT_EQ(copies.size(), expected_copies);

  std::vector<size_t> next(policies.size(), 0);
  for (const Copy& copy : copies) {
    const size_t c = consumer_of_port.at(copy.dport);
    SCOPED_TRACE("consumer " + std::to_string(c) + ", copy " + std::to_string(next[c]));
    ASSERT_LT(next[c], expected[c].size());
    EXPECT_EQ(copy.payload, expected[c][next[c]]);
    ++next[c];
    // Addressed to the consumer, with checksums that still add up.
    const Bytes& frame = copy.frame;
    EXPECT_EQ(frame[11], static_cast<uint8_t>(c));  // its source MAC
    EXPECT_EQ(Get32(frame, kEthernetHeader + 16), kLoopback);
    EXPECT_EQ(Fold(SumWords(frame.data() + kEthernetHeader, kIpv4Header)), 0xffff);
    EXPECT_EQ(UdpSum(frame, kEthernetHeader, kEthernetHeader + kIpv4Header), 0xffff);
  }
  for (size_t c = 0; c < policies.size(); ++c) {
    SCOPED_TRACE("consumer " + std::to_string(c));
    EXPECT_EQ(next[c], expected[c].size());
    ConsumerCounters kernel = CountersOfConsumer(slots[c]);
    EXPECT_EQ(kernel.send_errors, 0u);
    kernel.send_errors = 0;
    EXPECT_EQ(kernel, decider.counters(c));
  }
  // Something was dropped for the thinned consumers, and a picture's packets went null where it
  // shared a datagram with packets that were kept.
  EXPECT_GT(decider.counters(1).dropped_packets[EF_CLASS_DIFFERENTIAL], 0u);
  EXPECT_GT(decider.counters(3).dropped_packets[EF_CLASS_DIFFERENTIAL],
            decider.counters(1).dropped_packets[EF_CLASS_DIFFERENTIAL]);

  const StreamCounters stream = CountersOf(kStreamId);
  EXPECT_EQ(stream.packets, datagrams.size());
  EXPECT_EQ(stream.uninspected, 3u);
  EXPECT_EQ(stream.invalid_ts, 1u);
  EXPECT_EQ(stream.malformed, 0u);
  EXPECT_GT(stream.ts_packets[EF_CLASS_REFERENCE], 0u);
  EXPECT_GT(stream.ts_packets[EF_CLASS_DIFFERENTIAL], 0u);
}

TEST_F(FanoutProgramTest, ADatagramWithoutUdpChecksumKeepsNone) {
  LoopbackTap tap(2);
  // The second consumer drops every differential picture: its copies carry null packets.
  ASSERT_TRUE(
      program_->AddConsumer(kStreamId, OnLoopback(tap.port(0), Policy(1, 1, 1))).has_value());
  ASSERT_TRUE(
      program_->AddConsumer(kStreamId, OnLoopback(tap.port(1), Policy(0, 1, 1))).has_value());
  std::vector<Copy> copies;
  for (const Bytes& datagram : Datagrams(CameraLikeStream(1))) {
    std::vector<Copy> sent = Send(tap, Frame({.saddr = kLoopback, .payload = datagram}));
    copies.insert(copies.end(), sent.begin(), sent.end());
  }
  ASSERT_FALSE(copies.empty());
  for (const Copy& copy : copies) {
    EXPECT_EQ(Get16(copy.frame, kEthernetHeader + kIpv4Header + 6), 0u);  // still "none"
    EXPECT_EQ(Fold(SumWords(copy.frame.data() + kEthernetHeader, kIpv4Header)), 0xffff);
  }
}

TEST_F(FanoutProgramTest, CopiesGoOnlyToTheStreamsOwnCurrentConsumers) {
  LoopbackTap tap(3);
  constexpr uint32_t kOther = 8;
  ASSERT_TRUE(program_->AddStream(kOther, Stream(kStreamAddr, kStreamPort + 1)).ok());
  auto first = program_->AddConsumer(kStreamId, OnLoopback(tap.port(0), Policy(1, 1, 0)));
  auto other = program_->AddConsumer(kOther, OnLoopback(tap.port(1), Policy(1, 1, 0)));
  ASSERT_TRUE(first.has_value() && other.has_value());

  std::vector<Copy> copies = Send(tap, Frame({.saddr = kLoopback}));
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].dport, tap.port(0));
  copies = Send(tap, Frame({.saddr = kLoopback, .dport = kStreamPort + 1}));
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].dport, tap.port(1));

  // A removed consumer gets nothing more; its slot, reused for another stream's consumer, does
  // not bring that consumer this stream's packets.
  ASSERT_TRUE(program_->RemoveConsumer(*first).ok());
  auto reused = program_->AddConsumer(kOther, OnLoopback(tap.port(2), Policy(1, 1, 0)));
  ASSERT_TRUE(reused.has_value());
  EXPECT_EQ(*reused, *first);
  EXPECT_TRUE(Send(tap, Frame({.saddr = kLoopback})).empty());
  copies = Send(tap, Frame({.saddr = kLoopback, .dport = kStreamPort + 1}));
  ASSERT_EQ(copies.size(), 2u);
  EXPECT_EQ(copies[0].dport, tap.port(1));
  EXPECT_EQ(copies[1].dport, tap.port(2));

  // A removed stream's packets go up the stack again, and its consumers are gone.
  ASSERT_TRUE(program_->RemoveStream(kOther).ok());
  EXPECT_EQ(Run(Frame({.saddr = kLoopback, .dport = kStreamPort + 1})),
            static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_TRUE(tap.Drain().empty());
  EXPECT_EQ(program_->SetPolicy(*other, Policy(1, 2, 0)).code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace edgeflow::fanout
