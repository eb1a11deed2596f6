// Tests of HOST:PORT parsing helpers that need the network stack: free-port picking.
#include "common/host_port.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>

namespace edgeflow {
namespace {

using ::testing::HasSubstr;

TEST(HostPortTest, PickFreePortReturnsABindablePort) {
  Result<uint16_t> port = PickFreePort("127.0.0.1");
  ASSERT_TRUE(port.has_value()) << port.error().ToString();
  EXPECT_NE(*port, 0);

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(*port);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  close(fd);
}

TEST(HostPortTest, PickFreePortRejectsUnknownHost) {
  Result<uint16_t> port = PickFreePort("no-such-host.invalid");
  ASSERT_FALSE(port.has_value());
  EXPECT_THAT(port.error().message(), HasSubstr("no-such-host.invalid"));
}

TEST(HostPortTest, PickFreePortsGivesDifferentPortsAtOnce) {
  auto ports = PickFreePorts({"127.0.0.1", "127.0.0.1", "127.0.0.1"});
  ASSERT_TRUE(ports) << ports.error().ToString();
  ASSERT_EQ(ports->size(), 3u);
  EXPECT_EQ(std::set<uint16_t>(ports->begin(), ports->end()).size(), 3u);
  EXPECT_FALSE(PickFreePorts({"127.0.0.1", "no-such-host.invalid"}));
}

}  // namespace
}  // namespace edgeflow
