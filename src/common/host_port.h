// "HOST:PORT" listen and connect addresses, as given in config files and flags.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace edgeflow {

struct HostPort {
  std::string host;  // "127.0.0.1", "::1", "localhost"; IPv6 literals without brackets
  uint16_t port = 0;  // 0 = let the kernel choose (the bound port is then reported)

  std::string ToString() const;  // brackets IPv6 literals: "[::1]:7070"
};

// Accepts "host:port", "[v6]:port" and ":port" (loopback). Rejects ports above 65535.
Result<HostPort> ParseHostPort(std::string_view text);

}  // namespace edgeflow
