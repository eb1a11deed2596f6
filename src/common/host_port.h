// "HOST:PORT" listen and connect addresses, as given in config files and flags.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace edgeflow {

struct HostPort {
  std::string host;  // "127.0.0.1", "::1", "localhost"; IPv6 literals without brackets
  uint16_t port = 0;  // 0 = let the kernel choose (the bound port is then reported)

  std::string ToString() const;  // brackets IPv6 literals: "[::1]:7070"
};

// Accepts "host:port", "[v6]:port" and ":port" (loopback). Rejects ports above 65535.
Result<HostPort> ParseHostPort(std::string_view text);

// TCP ports that were free a moment ago, one per host, all different: binds HOST:0 for each and
// keeps every socket until all ports are chosen, then closes them. Another process may still take
// a port before the caller binds it (a server given one then fails with "Address already in use").
Result<std::vector<uint16_t>> PickFreePorts(const std::vector<std::string>& hosts);
Result<uint16_t> PickFreePort(const std::string& host);

}  // namespace edgeflow
