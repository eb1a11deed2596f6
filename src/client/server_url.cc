#include "client/server_url.h"

#include <charconv>

namespace edgeflow::client {

std::string ServerUrl::ToString() const {
  bool v6 = host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<ServerUrl> ServerUrl::Parse(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Error(Status::InvalidArgument("invalid server URL '" + std::string(text) + "': " +
                                         std::string(why) + " (example: http://127.0.0.1:7070)"));
  };
  std::string_view rest = text;
  if (rest.starts_with("https://")) return bad("https is not supported, use http://");
  if (rest.starts_with("http://")) rest.remove_prefix(7);
  if (rest.find("://") != std::string_view::npos) return bad("only http:// URLs are supported");
  if (rest.ends_with("/")) rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) return bad("a path is not allowed");
  ServerUrl url;
  std::string_view port_text;
  if (rest.starts_with("[")) {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("unterminated '[' in IPv6 address");
    url.host = std::string(rest.substr(1, close - 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("expected ':' after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return bad("empty port");
    }
  } else {
    size_t colon = rest.rfind(':');
    if (colon != std::string_view::npos && rest.find(':') != colon) {
      return bad("IPv6 addresses must be written in brackets, e.g. http://[::1]:7070");
    }
    url.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = rest.substr(colon + 1);
      if (port_text.empty()) return bad("empty port");
    }
  }
  if (url.host.empty()) return bad("no host");
  for (char c : url.host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_' || c == ':' || c == '%';
    if (!ok) return bad("the host may contain only letters, digits, '.', '-' and '_'");
  }
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
      return bad("port must be a number from 1 to 65535");
    }
    url.port = static_cast<uint16_t>(port);
  }
  return url;
}

}  // namespace edgeflow::client
