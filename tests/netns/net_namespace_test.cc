// The network-namespace support the fan-out tests stand on (tests/support/net_namespace.h), on
// the real kernel: a UDP datagram crosses a veth pair between two namespaces intact, a bridge
// floods a broadcast to every port, processes started in a namespace see its interfaces, and
// nothing is left behind: namespaces and links are gone as soon as the objects are.
//
// Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2; without them every test skips and says
// why. CI runs them as root: `ctest -L netns`.
#include "support/net_namespace.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/command_runner.h"

namespace edgeflow::test_support {
namespace {

class NetNamespaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!HaveNetAdmin(&why)) {
      GTEST_SKIP() << "network namespace tests need root with CAP_NET_ADMIN and iproute2 (CI "
                      "runs them as root): "
                   << why;
    }
  }

  static std::unique_ptr<NetNamespace> MakeNamespace() {
    auto created = NetNamespace::Create();
    EXPECT_TRUE(created.has_value()) << created.error().ToString();
    return created.has_value() ? std::move(*created) : nullptr;
  }
};

// A UDP socket that closes itself; made inside NetNamespace::Run, it lives in that namespace.
class UdpSocket {
 public:
  UdpSocket() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}
  ~UdpSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  int fd() const { return fd_; }

  // Binds to address:port (port 0: the kernel picks); the port bound.
  Result<uint16_t> Bind(const std::string& address, uint16_t port) {
    sockaddr_in sa = Address(address, port);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      return Error(Status::IoError("bind " + address + ": " + std::strerror(errno)));
    }
    socklen_t length = sizeof sa;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &length);
    return ntohs(sa.sin_port);
  }

  // Broadcast addresses allowed.
  Status SendTo(const std::string& address, uint16_t port, const std::string& payload) {
    const int on = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_BROADCAST, &on, sizeof on);
    const sockaddr_in sa = Address(address, port);
    if (::sendto(fd_, payload.data(), payload.size(), 0, reinterpret_cast<const sockaddr*>(&sa),
                 sizeof sa) != static_cast<ssize_t>(payload.size())) {
      return Status::IoError("send to " + address + ": " + std::strerror(errno));
    }
    return Status::Ok();
  }

  // The next datagram and its sender's address, or nullopt after `timeout` without one.
  struct Datagram {
    std::string payload;
    std::string from;
  };
  std::optional<Datagram> Receive(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    std::string buffer(65536, '\0');
    sockaddr_in from{};
    socklen_t length = sizeof from;
    const ssize_t n = ::recvfrom(fd_, buffer.data(), buffer.size(), 0,
                                 reinterpret_cast<sockaddr*>(&from), &length);
    if (n < 0) return std::nullopt;
    buffer.resize(static_cast<size_t>(n));
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &from.sin_addr, text, sizeof text);
    return Datagram{std::move(buffer), text};
  }

 private:
  static sockaddr_in Address(const std::string& address, uint16_t port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
    return sa;
  }

  int fd_;
};

// A payload with every byte value, so that any rewriting on the way would show.
std::string EveryByte(size_t size) {
  std::string payload(size, '\0');
  for (size_t i = 0; i < size; ++i) payload[i] = static_cast<char>(i * 7 + 3);
  return payload;
}

bool NamespaceListed(const std::string& name) {
  auto list = RunIp("", {"netns", "list"});
  EXPECT_TRUE(list.has_value()) << list.error().ToString();
  if (!list.has_value()) return false;
  for (const std::string& line : SplitLines(*list)) {
    if (line.substr(0, line.find(' ')) == name) return true;
  }
  return false;
}

bool RootLinkExists(const std::string& name) {
  return RunIp("", {"link", "show", "dev", name}).has_value();
}

TEST_F(NetNamespaceTest, ADatagramCrossesAVethPairBetweenTwoNamespacesIntact) {
  auto sender = MakeNamespace();
  auto receiver = MakeNamespace();
  ASSERT_TRUE(sender && receiver);
  auto pair = sender->AddVethPair(receiver.get());
  ASSERT_TRUE(pair.has_value()) << pair.error().ToString();
  EXPECT_LE(pair->local.size(), 15u);
  EXPECT_LE(pair->peer.size(), 15u);
  EXPECT_EQ(pair->peer_namespace, receiver->name());
  ASSERT_TRUE(sender->AddAddress(pair->local, "10.201.0.1/24").ok());
  ASSERT_TRUE(receiver->AddAddress(pair->peer, "10.201.0.2/24").ok());
  ASSERT_TRUE(sender->SetUp(pair->local).ok());
  ASSERT_TRUE(receiver->SetUp(pair->peer).ok());
  Status ready = sender->WaitForLinks();
  ASSERT_TRUE(ready.ok()) << ready.ToString();
  ready = receiver->WaitForLinks();
  ASSERT_TRUE(ready.ok()) << ready.ToString();

  // Each end as its namespace sees it: an index there and a unicast MAC of its own.
  auto sender_index = sender->Ifindex(pair->local);
  auto receiver_index = receiver->Ifindex(pair->peer);
  ASSERT_TRUE(sender_index.has_value()) << sender_index.error().ToString();
  ASSERT_TRUE(receiver_index.has_value()) << receiver_index.error().ToString();
  EXPECT_GT(*sender_index, 1);  // 1 is the namespace's loopback
  EXPECT_GT(*receiver_index, 1);
  auto sender_mac = sender->Mac(pair->local);
  auto receiver_mac = receiver->Mac(pair->peer);
  ASSERT_TRUE(sender_mac.has_value()) << sender_mac.error().ToString();
  ASSERT_TRUE(receiver_mac.has_value()) << receiver_mac.error().ToString();
  EXPECT_NE(*sender_mac, *receiver_mac);
  EXPECT_EQ((*sender_mac)[0] & 1, 0) << FormatMac(*sender_mac);  // not a multicast address
  EXPECT_FALSE(sender->Ifindex("no-such-if").has_value());

  // The receiving socket is made inside the receiver's namespace and stays there; the
  // receiver's address does not exist in the root namespace at all.
  UdpSocket* inbox = nullptr;
  std::unique_ptr<UdpSocket> inbox_owner;
  auto port = receiver->Run([&] {
    inbox_owner = std::make_unique<UdpSocket>();
    inbox = inbox_owner.get();
    return inbox->Bind("10.201.0.2", 0);
  });
  ASSERT_TRUE(port.has_value()) << port.error().ToString();
  ASSERT_TRUE(port->has_value()) << port->error().ToString();
  {
    UdpSocket in_root;
    EXPECT_FALSE(in_root.Bind("10.201.0.2", 0).has_value())
        << "10.201.0.2 should exist only in the receiver's namespace";
  }

  const std::string payload = EveryByte(1316);  // 7 TS packets, as a sensor sends them
  auto sent = sender->Run([&] {
    UdpSocket out;
    return out.SendTo("10.201.0.2", **port, payload);
  });
  ASSERT_TRUE(sent.has_value()) << sent.error().ToString();
  ASSERT_TRUE(sent->ok()) << sent->ToString();
  // Received on the test's own thread: the socket works from anywhere.
  auto got = inbox->Receive(std::chrono::seconds(5));
  ASSERT_TRUE(got.has_value()) << "nothing arrived";
  EXPECT_EQ(got->payload, payload);
  EXPECT_EQ(got->from, "10.201.0.1");

  const std::string sender_name = sender->name();
  const std::string receiver_name = receiver->name();
  EXPECT_TRUE(NamespaceListed(sender_name));
  EXPECT_TRUE(NamespaceListed(receiver_name));
  inbox_owner.reset();  // a socket would keep its namespace alive (though no longer listed)
  sender.reset();
  receiver.reset();
  EXPECT_FALSE(NamespaceListed(sender_name));
  EXPECT_FALSE(NamespaceListed(receiver_name));
}

TEST_F(NetNamespaceTest, APeerInTheRootNamespaceGoesWithItsNamespace) {
  auto netns = MakeNamespace();
  ASSERT_TRUE(netns);
  auto pair = netns->AddVethPair();
  ASSERT_TRUE(pair.has_value()) << pair.error().ToString();
  EXPECT_TRUE(pair->peer_namespace.empty());
  EXPECT_TRUE(RootLinkExists(pair->peer));
  EXPECT_FALSE(RootLinkExists(pair->local));  // that end is in the namespace
  const std::string name = netns->name();
  netns.reset();
  // At once, not when the kernel gets round to cleaning up the namespace.
  EXPECT_FALSE(RootLinkExists(pair->peer));
  EXPECT_FALSE(NamespaceListed(name));
}

TEST_F(NetNamespaceTest, AProcessStartedInANamespaceSeesItsInterfaces) {
  auto netns = MakeNamespace();
  auto other = MakeNamespace();
  ASSERT_TRUE(netns && other);
  auto pair = netns->AddVethPair(other.get());
  ASSERT_TRUE(pair.has_value()) << pair.error().ToString();
  auto mac = netns->Mac(pair->local);
  auto index = netns->Ifindex(pair->local);
  ASSERT_TRUE(mac.has_value() && index.has_value());

  auto child = netns->Spawn("cat", {"/sys/class/net/" + pair->local + "/address",
                                    "/sys/class/net/" + pair->local + "/ifindex"});
  ASSERT_TRUE(child.has_value()) << child.error().ToString();
  const ExitStatus status = (*child)->Finish(std::chrono::seconds(10));
  ASSERT_EQ(status.exit_code, 0) << status.ToString() << ": " << (*child)->Stderr();
  EXPECT_EQ((*child)->Stdout(), FormatMac(*mac) + "\n" + std::to_string(*index) + "\n");
}

TEST_F(NetNamespaceTest, ABridgeFloodsABroadcastToEveryPort) {
  constexpr size_t kConsumers = 4;
  constexpr uint16_t kPort = 5004;  // the same port in every namespace: they do not share ports
  auto hub = MakeNamespace();
  auto sensor = MakeNamespace();
  ASSERT_TRUE(hub && sensor);
  std::vector<std::unique_ptr<NetNamespace>> consumers;
  std::vector<std::string> ports;
  auto uplink = hub->AddVethPair(sensor.get());
  ASSERT_TRUE(uplink.has_value()) << uplink.error().ToString();
  ports.push_back(uplink->local);
  ASSERT_TRUE(sensor->AddAddress(uplink->peer, "10.202.0.1/24").ok());
  ASSERT_TRUE(sensor->SetUp(uplink->peer).ok());
  std::vector<std::string> consumer_ends;
  for (size_t i = 0; i < kConsumers; ++i) {
    auto consumer = MakeNamespace();
    ASSERT_TRUE(consumer);
    auto pair = hub->AddVethPair(consumer.get());
    ASSERT_TRUE(pair.has_value()) << pair.error().ToString();
    ports.push_back(pair->local);
    const std::string address = "10.202.0." + std::to_string(10 + i) + "/24";
    ASSERT_TRUE(consumer->AddAddress(pair->peer, address).ok());
    ASSERT_TRUE(consumer->SetUp(pair->peer).ok());
    consumers.push_back(std::move(consumer));
  }
  const Status bridged = hub->AddBridge("br0", ports);
  ASSERT_TRUE(bridged.ok()) << bridged.ToString();
  for (NetNamespace* netns : {hub.get(), sensor.get()}) {
    const Status ready = netns->WaitForLinks();
    ASSERT_TRUE(ready.ok()) << ready.ToString();
  }
  std::vector<std::unique_ptr<UdpSocket>> inboxes;
  for (auto& consumer : consumers) {
    const Status ready = consumer->WaitForLinks();
    ASSERT_TRUE(ready.ok()) << ready.ToString();
    auto bound = consumer->Run([&] {
      inboxes.push_back(std::make_unique<UdpSocket>());
      return inboxes.back()->Bind("0.0.0.0", kPort);
    });
    ASSERT_TRUE(bound.has_value()) << bound.error().ToString();
    ASSERT_TRUE(bound->has_value()) << bound->error().ToString();
  }

  const std::string payload = EveryByte(1316);
  auto sent = sensor->Run([&] { return UdpSocket().SendTo("10.202.0.255", kPort, payload); });
  ASSERT_TRUE(sent.has_value()) << sent.error().ToString();
  ASSERT_TRUE(sent->ok()) << sent->ToString();
  for (size_t i = 0; i < kConsumers; ++i) {
    auto got = inboxes[i]->Receive(std::chrono::seconds(5));
    ASSERT_TRUE(got.has_value()) << "consumer " << i << " got nothing";
    EXPECT_EQ(got->payload, payload) << "consumer " << i;
    EXPECT_EQ(got->from, "10.202.0.1");
    EXPECT_FALSE(inboxes[i]->Receive(std::chrono::milliseconds(0)).has_value())
        << "consumer " << i << " got the broadcast twice";
  }

  // A unicast datagram, once the bridge has learnt where its destination is (from the ARP
  // reply), goes to that port only.
  auto unicast = sensor->Run([&] { return UdpSocket().SendTo("10.202.0.12", kPort, "only 2"); });
  ASSERT_TRUE(unicast.has_value() && unicast->ok());
  auto got = inboxes[2]->Receive(std::chrono::seconds(5));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->payload, "only 2");
  for (size_t i : {0u, 1u, 3u}) {
    EXPECT_FALSE(inboxes[i]->Receive(std::chrono::milliseconds(200)).has_value())
        << "consumer " << i << " got a unicast datagram for consumer 2";
  }
  inboxes.clear();
}

}  // namespace
}  // namespace edgeflow::test_support
