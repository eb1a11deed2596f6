// ServerUrl: where clients find edgeflowd's HTTP API ("http://127.0.0.1:7070").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace edgeflow::client {

inline constexpr std::string_view kDefaultServer = "http://127.0.0.1:7070";

struct ServerUrl {
  std::string host;  // IPv6 literals without brackets
  uint16_t port = 7070;

  // "http://host:port" as given back to the user in messages.
  std::string ToString() const;

  // Accepts "http://host[:port][/]", "host[:port]" and "[v6]:port"; the port defaults to 7070.
  // https and URLs with a path are rejected with a message saying why.
  static Result<ServerUrl> Parse(std::string_view text);
};

}  // namespace edgeflow::client
