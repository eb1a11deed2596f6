// FanoutService with the userspace data path (no privileges needed): the QoC plan it computes as
// consumers come, go and change their needs, what each consumer then gets of a real datagram
// flow on loopback, bad requests, and the streams it sets up again from EKV after a restart. The
// eBPF data path under the same service is exercised end to end in tests/netns.
#include "fanout/fanout_service.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "common/host_port.h"
#include "kv/store.h"
#include "support/temp_dir.h"
#include "unit/ts_test_bytes.h"

namespace edgeflow::fanout {
namespace {

namespace tb = ts::test_bytes;
using Bytes = std::vector<uint8_t>;
using namespace std::chrono_literals;

// A UDP socket on 127.0.0.1 standing for a consumer.
class Receiver {
 public:
  Receiver() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)), 0);
    socklen_t size = sizeof(local);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &size);
    port_ = ntohs(local.sin_port);
  }
  ~Receiver() { close(fd_); }
  HostPort address() const { return {"127.0.0.1", port_}; }

  // Datagrams until none came for `quiet`.
  std::vector<Bytes> Drain(std::chrono::milliseconds quiet = 300ms) {
    std::vector<Bytes> out;
    Bytes buffer(65536);
    pollfd p{fd_, POLLIN, 0};
    while (poll(&p, 1, static_cast<int>(quiet.count())) > 0) {
      const ssize_t got = recv(fd_, buffer.data(), buffer.size(), 0);
      if (got < 0) break;
      out.emplace_back(buffer.begin(), buffer.begin() + got);
    }
    return out;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// 2 GOPs of I P B B P B B (B not referenced), one picture per datagram of whole TS packets.
std::vector<Bytes> PictureDatagrams() {
  tb::StreamBuilder stream;
  std::vector<size_t> picture_starts;
  for (int gop = 0; gop < 2; ++gop) {
    for (int picture = 0; picture < 7; ++picture) {
      Bytes es = tb::h264::Aud(picture == 0 ? 0 : 2);
      if (picture == 0) {
        tb::Append(&es, tb::h264::Slice(tb::h264::kIdr, 7, 300));
      } else if (picture % 3 == 1) {
        tb::Append(&es, tb::h264::Slice(tb::h264::kSlice, 5, 200));
      } else {
        tb::Append(&es, tb::h264::Nal(tb::h264::kSlice, tb::h264::SliceRbsp(6, 0, 100), 0));
      }
      picture_starts.push_back(
          stream.AddPes(0x100, tb::BuildPes(es, 0), picture == 0).first_packet);
    }
  }
  picture_starts.push_back(stream.packets().size());
  std::vector<Bytes> datagrams;
  for (size_t p = 0; p + 1 < picture_starts.size(); ++p) {
    Bytes datagram;
    for (size_t i = picture_starts[p]; i < picture_starts[p + 1]; ++i) {
      tb::Append(&datagram, stream.packets()[i]);
    }
    datagrams.push_back(std::move(datagram));
  }
  return datagrams;
}

void SendTo(const HostPort& to, const std::vector<Bytes>& datagrams) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(to.port);
  inet_pton(AF_INET, to.host.c_str(), &address.sin_addr);
  for (const Bytes& datagram : datagrams) {
    sendto(fd, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&address),
           sizeof(address));
    std::this_thread::sleep_for(1ms);  // a paced sensor, not a burst into one socket buffer
  }
  close(fd);
}

ConsumerConfig Consumer(const std::string& name, const HostPort& address, Fraction need,
                        ef_drop_mode mode = EF_DROP_FRAME) {
  ConsumerConfig config;
  config.name = name;
  config.address = address;
  config.need = {need, mode};
  return config;
}

class FanoutServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kv::StoreOptions options;
    options.dir = dir_.path() / "kv";
    auto store = kv::Store::Open(options);
    ASSERT_TRUE(store.has_value()) << store.error().ToString();
    store_ = std::move(*store);
    StartService();
    auto port = PickFreePort("127.0.0.1");
    ASSERT_TRUE(port.has_value());
    listen_ = {"127.0.0.1", *port};
  }

  void StartService() {
    service_.reset();
    auto service = FanoutService::Create(
        {.datapath = Datapath::kUserspace, .store = store_.get(), .broker = std::nullopt});
    ASSERT_TRUE(service.has_value()) << service.error().ToString();
    service_ = std::move(*service);
    ASSERT_TRUE(service_->Start().ok());
  }

  test_support::TempDir dir_;
  std::unique_ptr<kv::Store> store_;
  std::unique_ptr<FanoutService> service_;
  HostPort listen_;
};

TEST_F(FanoutServiceTest, ThePlanFollowsTheConsumers) {
  ASSERT_TRUE(service_->AddStream({.name = "cam1", .listen = listen_}).has_value());
  EXPECT_EQ(service_->datapath(), Datapath::kUserspace);
  // No consumer: the sensor is asked for reference pictures only.
  EXPECT_EQ(service_->GetStream("cam1")->sensor_keep, Fraction::Zero());

  Receiver a, b;
  ASSERT_TRUE(service_->AddConsumer("cam1", Consumer("a", a.address(), {1, 4})).has_value());
  auto added = service_->AddConsumer("cam1", Consumer("b", b.address(), {1, 2}));
  ASSERT_TRUE(added.has_value()) << added.error().ToString();
  StreamStatus stream = *service_->GetStream("cam1");
  EXPECT_EQ(stream.sensor_keep, Fraction(1, 2));  // the union: the larger need
  EXPECT_EQ(stream.sensor_mode, EF_DROP_FRAME);
  EXPECT_FALSE(stream.sensor_reported.has_value());  // no sensor has reported
  ASSERT_EQ(stream.consumers.size(), 2u);
  EXPECT_EQ(stream.consumers[0].residual, Fraction(1, 2));  // 1/4 of the sensor's 1/2
  EXPECT_EQ(stream.consumers[1].residual, Fraction::One());
  // A sensor that does not report is taken to follow the plan.
  EXPECT_EQ(stream.consumers[0].in_effect, Fraction(1, 2));
  EXPECT_EQ(stream.consumers[1].in_effect, Fraction::One());

  auto changed = service_->ChangeNeed("cam1", "a", {Fraction{1, 1}, EF_DROP_PACKET});
  ASSERT_TRUE(changed.has_value());
  EXPECT_EQ(changed->residual, Fraction::One());
  stream = *service_->GetStream("cam1");
  EXPECT_EQ(stream.sensor_keep, Fraction::One());
  EXPECT_EQ(stream.consumers[1].residual, Fraction(1, 2));
  // A change of one field leaves the other as it is.
  changed = service_->ChangeNeed("cam1", "a", {.mode = EF_DROP_FRAME});
  ASSERT_TRUE(changed.has_value());
  EXPECT_EQ(changed->config.need.need, Fraction::One());
  EXPECT_EQ(changed->config.need.mode, EF_DROP_FRAME);
  changed = service_->ChangeNeed("cam1", "a", {.need = Fraction{3, 4}});
  ASSERT_TRUE(changed.has_value());
  EXPECT_EQ(changed->config.need.need, Fraction(3, 4));
  EXPECT_EQ(changed->config.need.mode, EF_DROP_FRAME);
  EXPECT_EQ(service_->ChangeNeed("cam1", "a", {.need = Fraction{3, 2}}).error().code(),
            ErrorCode::kInvalidArgument);

  ASSERT_TRUE(service_->RemoveConsumer("cam1", "a").ok());
  stream = *service_->GetStream("cam1");
  EXPECT_EQ(stream.sensor_keep, Fraction(1, 2));
  ASSERT_EQ(stream.consumers.size(), 1u);
  EXPECT_EQ(stream.consumers[0].config.name, "b");
}

TEST_F(FanoutServiceTest, EachConsumerGetsItsShareOfTheStream) {
  ASSERT_TRUE(service_->AddStream({.name = "cam1", .listen = listen_}).has_value());
  Receiver all, half, none;
  ASSERT_TRUE(service_->AddConsumer("cam1", Consumer("all", all.address(), {1, 1})).has_value());
  ASSERT_TRUE(service_->AddConsumer("cam1", Consumer("half", half.address(), {1, 2})).has_value());
  ASSERT_TRUE(service_->AddConsumer("cam1", Consumer("none", none.address(), {0, 1})).has_value());
  const std::vector<Bytes> datagrams = PictureDatagrams();  // 14 pictures: 2 I, 12 differential
  SendTo(listen_, datagrams);
  EXPECT_EQ(all.Drain().size(), 14u);
  EXPECT_EQ(half.Drain().size(), 2u + 6u);
  EXPECT_EQ(none.Drain().size(), 2u);

  const StreamStatus stream = *service_->GetStream("cam1");
  EXPECT_EQ(stream.ingress.packets, datagrams.size());
  EXPECT_GT(stream.ingress.ts_packets[EF_CLASS_REFERENCE], 0u);
  const ConsumerCounters& half_counters = stream.consumers[1].counters;
  EXPECT_EQ(half_counters.datagrams_sent, 8u);
  EXPECT_EQ(half_counters.datagrams_dropped, 6u);
  EXPECT_EQ(stream.consumers[2].counters.sent_packets[EF_CLASS_DIFFERENTIAL], 0u);
}

TEST_F(FanoutServiceTest, RefusesBadRequestsWithReasons) {
  ASSERT_TRUE(service_->AddStream({.name = "cam1", .listen = listen_}).has_value());
  Receiver r;
  auto code = [](const auto& result) { return result.error().code(); };
  EXPECT_EQ(code(service_->AddStream({.name = "cam1", .listen = {"127.0.0.1", 9}})),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(code(service_->AddStream({.name = "cam2", .listen = listen_})),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(code(service_->AddStream({.name = "bad/name", .listen = {"127.0.0.1", 9}})),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(service_->AddStream({.name = std::string(65, 'x'), .listen = {"127.0.0.1", 9}})),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(service_->AddStream({.name = "v6", .listen = {"::1", 9}})),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(service_->AddStream({.name = "noport", .listen = {"127.0.0.1", 0}})),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(service_->AddConsumer("nope", Consumer("c", r.address(), {1, 1}))),
            ErrorCode::kNotFound);
  EXPECT_EQ(code(service_->AddConsumer("cam1", Consumer("c", r.address(), {3, 2}))),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(service_->AddConsumer("cam1", Consumer("c", {"host.example", 9}, {1, 1}))),
            ErrorCode::kInvalidArgument);
  ASSERT_TRUE(service_->AddConsumer("cam1", Consumer("c", r.address(), {1, 1})).has_value());
  EXPECT_EQ(code(service_->AddConsumer("cam1", Consumer("c", r.address(), {1, 1}))),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(code(service_->ChangeNeed("cam1", "zz", {Fraction{1, 2}, EF_DROP_FRAME})),
            ErrorCode::kNotFound);
  EXPECT_EQ(service_->RemoveConsumer("cam1", "zz").code(), ErrorCode::kNotFound);
  EXPECT_EQ(service_->RemoveStream("zz").code(), ErrorCode::kNotFound);
  // The address of a stream that failed to be set up is free again: nothing half-made stays.
  EXPECT_EQ(service_->ListStreams().size(), 1u);
}

TEST_F(FanoutServiceTest, StreamsAndConsumersSurviveARestart) {
  ASSERT_TRUE(
      service_->AddStream({.name = "cam1", .listen = listen_, .codec = EF_CODEC_H264}).has_value());
  Receiver a;
  ASSERT_TRUE(service_->AddConsumer("cam1", Consumer("a", a.address(), {1, 3}, EF_DROP_PACKET))
                  .has_value());
  StartService();  // a new service on the same store, as after a restart of the node
  auto stream = service_->GetStream("cam1");
  ASSERT_TRUE(stream.has_value()) << stream.error().ToString();
  EXPECT_EQ(stream->config.listen.port, listen_.port);
  EXPECT_EQ(stream->config.codec, EF_CODEC_H264);
  ASSERT_EQ(stream->consumers.size(), 1u);
  EXPECT_EQ(stream->consumers[0].config.need.need, Fraction(1, 3));
  EXPECT_EQ(stream->consumers[0].config.need.mode, EF_DROP_PACKET);
  // And it forwards again.
  SendTo(listen_, PictureDatagrams());
  EXPECT_FALSE(a.Drain().empty());

  ASSERT_TRUE(service_->RemoveStream("cam1").ok());
  StartService();
  EXPECT_TRUE(service_->ListStreams().empty());
}

}  // namespace
}  // namespace edgeflow::fanout
