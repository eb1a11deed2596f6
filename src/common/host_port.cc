#include "common/host_port.h"

#include <charconv>

namespace edgeflow {

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<HostPort> ParseHostPort(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Error(Status::InvalidArgument("bad address '" + std::string(text) + "': " +
                                         std::string(why) + " (expected HOST:PORT)"));
  };
  HostPort out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("unterminated IPv6 literal");
    }
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing port");
    out.host = std::string(text.substr(0, colon));
    if (out.host.find(':') != std::string::npos) return bad("IPv6 literals need brackets");
    port_text = text.substr(colon + 1);
  }
  if (out.host.empty()) out.host = "127.0.0.1";
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port_text.empty()) {
    return bad("port is not a number");
  }
  if (port > 65535) return bad("port out of range");
  out.port = static_cast<uint16_t>(port);
  return out;
}

}  // namespace edgeflow
