// These tests run the real Mosquitto broker (/usr/sbin/mosquitto) on ports picked from port 0.
#include "channels/broker_supervisor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <mosquitto.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "support/raw_connection.h"
#include "support/temp_dir.h"

namespace edgeflow::channels {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using SteadyClock = std::chrono::steady_clock;

constexpr auto kWaitLimit = seconds(10);

bool WaitUntil(const std::function<bool()>& condition, SteadyClock::duration limit = kWaitLimit) {
  const auto deadline = SteadyClock::now() + limit;
  while (SteadyClock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return condition();
}

BrokerConfig TestConfig(const test_support::TempDir& tmp) {
  BrokerConfig config;
  config.dir = tmp.Sub("broker");
  config.listen = {"127.0.0.1", 0};
  config.ws_listen = HostPort{"127.0.0.1", 0};
  config.start_timeout = seconds(10);
  return config;
}

std::unique_ptr<BrokerSupervisor> CreateOrDie(BrokerConfig config) {
  Result<std::unique_ptr<BrokerSupervisor>> supervisor =
      BrokerSupervisor::Create(std::move(config));
  EXPECT_TRUE(supervisor.has_value()) << supervisor.error().ToString();
  return supervisor.has_value() ? std::move(*supervisor) : nullptr;
}

// A connected TCP socket to 127.0.0.1:port, or -1. Closed by the caller.
int ConnectTcp(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Does an MQTT CONNECT with libmosquitto and returns the CONNACK code (0 = accepted), or -1 if no
// CONNACK came.
int MqttConnack(const HostPort& address) {
  static std::once_flag init;
  std::call_once(init, [] { mosquitto_lib_init(); });
  int connack = -1;
  mosquitto* client = mosquitto_new(nullptr, /*clean_session=*/true, &connack);
  if (client == nullptr) return -1;
  mosquitto_connect_callback_set(client, [](mosquitto*, void* connack_out, int code) {
    *static_cast<int*>(connack_out) = code;
  });
  if (mosquitto_connect(client, address.host.c_str(), address.port, /*keepalive=*/10) ==
      MOSQ_ERR_SUCCESS) {
    const auto deadline = SteadyClock::now() + seconds(5);
    while (connack < 0 && SteadyClock::now() < deadline) {
      if (mosquitto_loop(client, /*timeout_ms=*/100, 1) != MOSQ_ERR_SUCCESS) break;
    }
    mosquitto_disconnect(client);
  }
  mosquitto_destroy(client);
  return connack;
}

// Sends a WebSocket upgrade for the "mqtt" subprotocol and returns the status line of the answer.
std::string WebSocketUpgradeStatus(const HostPort& address) {
  int fd = ConnectTcp(address.port);
  if (fd < 0) return "connect failed: " + std::string(std::strerror(errno));
  const std::string request = "GET /mqtt HTTP/1.1\r\nHost: " + address.ToString() +
                              "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
  std::string response;
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
      static_cast<ssize_t>(request.size())) {
    char buffer[1024];
    while (response.find("\r\n") == std::string::npos) {
      ssize_t n = recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      response.append(buffer, static_cast<size_t>(n));
    }
  }
  close(fd);
  return response.substr(0, response.find("\r\n"));
}

// Whether `pid` is gone: no such process, or a zombie left to a parent that does not reap (PID 1
// in a container may not).
bool ProcessGone(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t after_name = text.rfind(") ");
  return after_name != std::string::npos && text.compare(after_name + 2, 1, "Z") == 0;
}

TEST(BrokerSupervisorTest, StartsOnFreePortsAndServesMqttAndWebsockets) {
  test_support::TempDir tmp;
  auto supervisor = CreateOrDie(TestConfig(tmp));
  ASSERT_NE(supervisor, nullptr);
  Status started = supervisor->Start();
  ASSERT_TRUE(started.ok()) << started.ToString();

  const HostPort mqtt = supervisor->mqtt_address();
  const std::optional<HostPort> ws = supervisor->ws_address();
  ASSERT_TRUE(ws.has_value());
  EXPECT_NE(mqtt.port, 0);
  EXPECT_NE(ws->port, 0);
  EXPECT_NE(ws->port, mqtt.port);
  EXPECT_TRUE(supervisor->healthy());
  EXPECT_GT(supervisor->pid(), 0);
  EXPECT_EQ(supervisor->restarts(), 0u);

  int fd = ConnectTcp(mqtt.port);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  if (fd >= 0) close(fd);
  EXPECT_EQ(MqttConnack(mqtt), 0);
  EXPECT_THAT(WebSocketUpgradeStatus(*ws), HasSubstr("101"));

  std::ifstream conf(tmp.Sub("broker") / "mosquitto.conf");
  std::stringstream text;
  text << conf.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("listener " + std::to_string(mqtt.port) + " 127.0.0.1\n"));
  supervisor->Stop();
}

TEST(BrokerSupervisorTest, RestartsTheBrokerOnTheSamePortsAfterKill9) {
  test_support::TempDir tmp;
  auto supervisor = CreateOrDie(TestConfig(tmp));
  ASSERT_NE(supervisor, nullptr);
  Status started = supervisor->Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  const HostPort mqtt = supervisor->mqtt_address();
  const pid_t first = supervisor->pid();
  // A connection open across the crash leaves the server side of it in TIME_WAIT; the new broker
  // must still be able to bind the port.
  int open_connection = ConnectTcp(mqtt.port);
  ASSERT_GE(open_connection, 0);

  ASSERT_EQ(kill(first, SIGKILL), 0);
  ASSERT_TRUE(WaitUntil([&] {
    const pid_t now = supervisor->pid();
    return now != 0 && now != first && supervisor->healthy();
  })) << "no healthy broker after kill -9; pid "
      << supervisor->pid();
  close(open_connection);

  EXPECT_EQ(supervisor->restarts(), 1u);
  EXPECT_EQ(supervisor->mqtt_address().port, mqtt.port);
  EXPECT_TRUE(ProcessGone(first));
  EXPECT_EQ(MqttConnack(mqtt), 0);
  supervisor->Stop();
}

TEST(BrokerSupervisorTest, StopLeavesNoBrokerProcessAndIsIdempotent) {
  test_support::TempDir tmp;
  auto supervisor = CreateOrDie(TestConfig(tmp));
  ASSERT_NE(supervisor, nullptr);
  Status started = supervisor->Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  const pid_t pid = supervisor->pid();
  ASSERT_GT(pid, 0);

  const auto before = SteadyClock::now();
  supervisor->Stop();
  EXPECT_LT(SteadyClock::now() - before, seconds(5)) << "mosquitto ignored SIGTERM";
  errno = 0;
  EXPECT_EQ(kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
  EXPECT_EQ(supervisor->pid(), 0);
  EXPECT_FALSE(supervisor->healthy());
  supervisor->Stop();

  // A clean stop saves the persistence database.
  EXPECT_TRUE(std::filesystem::exists(tmp.Sub("broker") / "mosquitto.db"));
  Status again = supervisor->Start();
  EXPECT_TRUE(again.Is(ErrorCode::kFailedPrecondition)) << again.ToString();
}

TEST(BrokerSupervisorTest, StartFailsClearlyWhenTheBinaryDoesNotExist) {
  test_support::TempDir tmp;
  BrokerConfig config = TestConfig(tmp);
  config.mosquitto_binary = tmp.Sub("no-such-mosquitto");
  auto supervisor = CreateOrDie(config);
  ASSERT_NE(supervisor, nullptr);
  Status started = supervisor->Start();
  ASSERT_TRUE(started.Is(ErrorCode::kUnavailable)) << started.ToString();
  EXPECT_THAT(started.message(), HasSubstr("no-such-mosquitto"));
  EXPECT_THAT(started.message(), HasSubstr("No such file or directory"));
  EXPECT_EQ(supervisor->pid(), 0);
}

// Writes an executable file and returns its path.
std::filesystem::path WriteExecutable(const test_support::TempDir& tmp, std::string_view name,
                                      std::string_view content) {
  const std::filesystem::path path = tmp.Sub(name);
  std::ofstream(path) << content;
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path;
}

TEST(BrokerSupervisorTest, StartFailsClearlyWhenTheBinaryCannotBeExecuted) {
  test_support::TempDir tmp;
  BrokerConfig config = TestConfig(tmp);
  config.mosquitto_binary = WriteExecutable(tmp, "not-a-program", "just text\n");
  auto supervisor = CreateOrDie(config);
  ASSERT_NE(supervisor, nullptr);
  Status started = supervisor->Start();
  ASSERT_TRUE(started.Is(ErrorCode::kUnavailable)) << started.ToString();
  EXPECT_THAT(started.message(), HasSubstr("not-a-program"));
  EXPECT_THAT(started.message(), HasSubstr("Exec format error"));
  EXPECT_EQ(supervisor->pid(), 0);
}

TEST(BrokerSupervisorTest, StartGivesUpOnABrokerThatNeverListens) {
  test_support::TempDir tmp;
  BrokerConfig config = TestConfig(tmp);
  config.mosquitto_binary = WriteExecutable(tmp, "silent-broker", "#!/bin/sh\nexec sleep 60\n");
  config.start_timeout = milliseconds(1000);
  auto supervisor = CreateOrDie(config);
  ASSERT_NE(supervisor, nullptr);
  const auto before = SteadyClock::now();
  Status started = supervisor->Start();
  EXPECT_LT(SteadyClock::now() - before, seconds(3));
  ASSERT_TRUE(started.Is(ErrorCode::kUnavailable)) << started.ToString();
  EXPECT_THAT(started.message(), HasSubstr("within 1000 ms"));
  EXPECT_THAT(started.message(), HasSubstr("wrote nothing"));
  EXPECT_EQ(supervisor->pid(), 0);
}

TEST(BrokerSupervisorTest, StartFailsWithinTheTimeoutWhenThePortIsTaken) {
  // Another server already listens on the port: a bare TCP connect would succeed, but the broker
  // cannot bind it.
  test_support::HeldPort held;
  ASSERT_TRUE(held.ok());

  test_support::TempDir tmp;
  BrokerConfig config = TestConfig(tmp);
  config.listen.port = held.port();
  config.start_timeout = seconds(3);
  auto supervisor = CreateOrDie(config);
  ASSERT_NE(supervisor, nullptr);
  const auto before = SteadyClock::now();
  Status started = supervisor->Start();
  EXPECT_LT(SteadyClock::now() - before, seconds(4));

  ASSERT_TRUE(started.Is(ErrorCode::kUnavailable)) << started.ToString();
  EXPECT_THAT(started.message(), HasSubstr("Address already in use"));
  EXPECT_THAT(started.message(), HasSubstr("mosquitto.log"));
  EXPECT_EQ(supervisor->pid(), 0);
  EXPECT_FALSE(supervisor->healthy());
}

TEST(BrokerSupervisorTest, StartFailsWhenTheWebsocketsPortIsTaken) {
  test_support::HeldPort held;
  ASSERT_TRUE(held.ok());

  test_support::TempDir tmp;
  BrokerConfig config = TestConfig(tmp);
  config.ws_listen->port = held.port();
  config.start_timeout = seconds(3);
  auto supervisor = CreateOrDie(config);
  ASSERT_NE(supervisor, nullptr);
  Status started = supervisor->Start();
  ASSERT_TRUE(started.Is(ErrorCode::kUnavailable)) << started.ToString();
  EXPECT_EQ(supervisor->pid(), 0);
}

TEST(BrokerSupervisorTest, CreateRejectsAnInvalidConfig) {
  test_support::TempDir tmp;
  BrokerConfig config = TestConfig(tmp);
  config.dir = tmp.Sub("broker\nlistener 1883");
  Result<std::unique_ptr<BrokerSupervisor>> supervisor = BrokerSupervisor::Create(config);
  ASSERT_FALSE(supervisor.has_value());
  EXPECT_TRUE(supervisor.error().Is(ErrorCode::kInvalidArgument)) << supervisor.error().ToString();
}

// The broker must not outlive the process that supervises it, even when that process is killed
// with SIGKILL and runs no cleanup at all.
TEST(BrokerSupervisorTest, BrokerDiesWithItsSupervisingProcess) {
  test_support::TempDir tmp;
  int report[2];
  ASSERT_EQ(pipe2(report, O_CLOEXEC), 0);
  const pid_t node = fork();
  ASSERT_GE(node, 0);
  if (node == 0) {
    // Stands in for edgeflowd: starts a broker, reports its pid and waits to be killed.
    close(report[0]);
    auto supervisor = BrokerSupervisor::Create(TestConfig(tmp));
    pid_t broker = 0;
    if (supervisor.has_value() && (*supervisor)->Start().ok()) broker = (*supervisor)->pid();
    (void)!write(report[1], &broker, sizeof broker);
    while (true) pause();
  }
  close(report[1]);
  pid_t broker = 0;
  pollfd readable{report[0], POLLIN, 0};
  ASSERT_EQ(poll(&readable, 1, 15000), 1);
  ASSERT_EQ(read(report[0], &broker, sizeof broker), static_cast<ssize_t>(sizeof broker));
  close(report[0]);

  kill(node, SIGKILL);
  int status = 0;
  waitpid(node, &status, 0);
  ASSERT_GT(broker, 0) << "the broker did not start in the child process";
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(broker); }))
      << "broker " << broker << " outlived its supervisor";
  if (!ProcessGone(broker)) kill(broker, SIGKILL);
}

}  // namespace
}  // namespace edgeflow::channels
