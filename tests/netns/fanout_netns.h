// What the fan-out's network-namespace tests share: the camera stream they send (ffmpeg), the star
// of namespaces they send it through (sensor and consumers around an edge), and the consumers'
// UDP sockets.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "support/command_runner.h"
#include "support/net_namespace.h"

namespace edgeflow::test_support {

// 4 s of a moving test pattern with noise (so that differential pictures have realistic sizes),
// 640x360 at 30 fps, H.264 at `bitrate` ("1500k"), GOP 30 with B-frames, as MPEG-TS.
inline CommandResult EncodeCamera(const std::filesystem::path& file, const std::string& bitrate) {
  return RunCommand(
      "ffmpeg",
      {"-v", "error", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30,noise=alls=12:allf=t",
       "-t", "4", "-c:v", "libx264", "-b:v", bitrate, "-g", "30", "-bf", "2", "-f", "mpegts",
       file.string()},
      CommandOptions{.timeout = std::chrono::seconds(120)});
}

// Addresses of the star: link k joins spokes[k] (<prefix>.k.2/24) to the edge (<prefix>.k.1/24).
inline std::string EdgeAddress(const std::string& prefix, size_t link) {
  return prefix + "." + std::to_string(link) + ".1";
}
inline std::string SpokeAddress(const std::string& prefix, size_t link) {
  return prefix + "." + std::to_string(link) + ".2";
}

// Joins each spoke to the edge by a veth pair of its own, addressed as above, and waits until
// every link carries frames. Each spoke's default route is the edge: the fan-out's copies keep
// the sensor's source address, and the way back to it is through the edge.
inline Status ConnectToEdge(NetNamespace& edge, const std::vector<NetNamespace*>& spokes,
                            const std::string& prefix) {
  for (size_t link = 0; link < spokes.size(); ++link) {
    auto pair = spokes[link]->AddVethPair(&edge);
    if (!pair) return pair.error();
    for (Status status : {spokes[link]->AddAddress(pair->local, SpokeAddress(prefix, link) + "/24"),
                          edge.AddAddress(pair->peer, EdgeAddress(prefix, link) + "/24"),
                          spokes[link]->SetUp(pair->local), edge.SetUp(pair->peer)}) {
      if (!status.ok()) return status;
    }
    auto route =
        RunIp(spokes[link]->name(), {"route", "add", "default", "via", EdgeAddress(prefix, link)});
    if (!route) return route.error();
  }
  for (NetNamespace* spoke : spokes) {
    if (Status status = spoke->WaitForLinks(); !status.ok()) return status;
  }
  return edge.WaitForLinks();
}

// A UDP socket bound to `port` on every address; made inside NetNamespace::Run it lives in that
// namespace. Its buffer holds a whole test stream, so nothing is lost while the test is busy.
class ConsumerSocket {
 public:
  explicit ConsumerSocket(uint16_t port) : fd_(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    const int buffer = 16 << 20;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof(buffer));
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_port = htons(port);
    bound_ = bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)) == 0;
  }
  ~ConsumerSocket() { close(fd_); }
  ConsumerSocket(const ConsumerSocket&) = delete;
  ConsumerSocket& operator=(const ConsumerSocket&) = delete;

  bool bound() const { return bound_; }

  // The datagrams received until none came for `quiet` (at most `limit` in all).
  std::vector<std::vector<uint8_t>> Drain(std::chrono::milliseconds quiet,
                                          std::chrono::seconds limit = std::chrono::seconds(60)) {
    std::vector<std::vector<uint8_t>> out;
    std::vector<uint8_t> buffer(65536);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    pollfd p{fd_, POLLIN, 0};
    while (std::chrono::steady_clock::now() < deadline &&
           poll(&p, 1, static_cast<int>(quiet.count())) > 0) {
      const ssize_t got = recv(fd_, buffer.data(), buffer.size(), 0);
      if (got < 0) break;
      out.emplace_back(buffer.begin(), buffer.begin() + got);
    }
    return out;
  }

 private:
  int fd_;
  bool bound_ = false;
};

}  // namespace edgeflow::test_support
