// UdpReceiver: a UDP socket on a loopback address that records every datagram it gets, with its
// arrival time, on a thread of its own, for tests of what senders put on the wire (the sensor
// agent). Header-only, so that both the unit and the integration suites use it.
#pragma once

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace edgeflow::test_support {

struct ReceivedDatagram {
  std::vector<uint8_t> bytes;
  std::chrono::steady_clock::time_point at;
};

class UdpReceiver {
 public:
  // Binds `address` (a numeric loopback address) on a port the kernel picks; port() is 0 when
  // that failed (e.g. no IPv6 here).
  explicit UdpReceiver(const std::string& address = "127.0.0.1") {
    addrinfo hints{};
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICHOST;
    addrinfo* resolved = nullptr;
    if (::getaddrinfo(address.c_str(), "0", &hints, &resolved) != 0) return;
    fd_ = ::socket(resolved->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ >= 0 && ::bind(fd_, resolved->ai_addr, resolved->ai_addrlen) == 0) {
      // A reference picture arrives as a burst; at full speed a whole file may.
      const int buffer = 4 << 20;
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
      sockaddr_storage bound{};
      socklen_t length = sizeof bound;
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &length);
      port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
      thread_ = std::thread([this] { Loop(); });
    }
    ::freeaddrinfo(resolved);
  }
  ~UdpReceiver() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  UdpReceiver(const UdpReceiver&) = delete;
  UdpReceiver& operator=(const UdpReceiver&) = delete;

  uint16_t port() const { return port_; }

  // What arrived so far.
  std::vector<ReceivedDatagram> Received() const {
    std::lock_guard lock(mu_);
    return received_;
  }
  uint64_t bytes() const {
    std::lock_guard lock(mu_);
    return bytes_;
  }
  // Everything received, once nothing more came for `quiet`.
  std::vector<ReceivedDatagram> Settle(
      std::chrono::milliseconds quiet = std::chrono::milliseconds(200)) const {
    size_t seen = SIZE_MAX;
    for (;;) {
      std::this_thread::sleep_for(quiet);
      std::lock_guard lock(mu_);
      if (received_.size() == seen) return received_;
      seen = received_.size();
    }
  }

  // The datagrams' bytes back to back.
  static std::vector<uint8_t> Joined(const std::vector<ReceivedDatagram>& datagrams) {
    std::vector<uint8_t> out;
    for (const ReceivedDatagram& d : datagrams) out.insert(out.end(), d.bytes.begin(), d.bytes.end());
    return out;
  }

 private:
  void Loop() {
    std::vector<uint8_t> buffer(65536);
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), 0);
      if (n < 0) continue;
      std::lock_guard lock(mu_);
      received_.push_back({std::vector<uint8_t>(buffer.begin(), buffer.begin() + n),
                           std::chrono::steady_clock::now()});
      bytes_ += static_cast<uint64_t>(n);
    }
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<ReceivedDatagram> received_;
  uint64_t bytes_ = 0;
};

}  // namespace edgeflow::test_support
