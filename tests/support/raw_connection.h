// RawConnection: a plain loopback TCP connection for sending arbitrary bytes (malformed, truncated,
// oversized) to a server and reading whatever comes back, with every wait bounded.
//
// Also: HeldPort, for tests that need a port that is taken (for one nothing listens on, use
// PickFreePort() from common/host_port.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace edgeflow::test_support {

class RawConnection {
 public:
  RawConnection() = default;
  ~RawConnection();
  RawConnection(RawConnection&& other) noexcept;
  RawConnection& operator=(RawConnection&& other) noexcept;
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  static Result<RawConnection> Connect(uint16_t port, std::string_view host = "127.0.0.1");

  // Sends all of `bytes`; fails if the peer closed or reset the connection first.
  Status Send(std::string_view bytes);
  // Sends EOF (half close): the server sees the end of the request stream.
  void ShutdownWrite();
  // Closes with an RST instead of a FIN (SO_LINGER 0), like a crashed client.
  void Reset();
  void Close();

  // Reads until `done(received)` holds, the peer closes, or the timeout passes. Returns what was
  // received in this call; `*closed` says whether the peer closed (or reset) the connection.
  std::string ReadUntil(const std::function<bool(const std::string&)>& done,
                        std::chrono::milliseconds timeout, bool* closed = nullptr);
  // Reads until the peer closes or the timeout passes.
  std::string ReadUntilClosed(std::chrono::milliseconds timeout, bool* closed = nullptr);

  bool is_open() const { return fd_ >= 0; }

 private:
  explicit RawConnection(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// A loopback port that stays taken (bound and listening) while the object lives.
class HeldPort {
 public:
  HeldPort();
  ~HeldPort();
  HeldPort(const HeldPort&) = delete;
  HeldPort& operator=(const HeldPort&) = delete;

  bool ok() const { return fd_ >= 0; }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

}  // namespace edgeflow::test_support
