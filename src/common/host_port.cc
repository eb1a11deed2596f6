#include "common/host_port.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace edgeflow {

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<HostPort> ParseHostPort(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Error(Status::InvalidArgument("bad address '" + std::string(text) +
                                         "': " + std::string(why) + " (expected HOST:PORT)"));
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

namespace {

// Binds a socket to HOST:0; returns it (the caller closes it) and the port, or an error.
Result<int> BindAnyPort(const std::string& host, uint16_t* port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* addresses = nullptr;
  if (int rc = getaddrinfo(host.c_str(), "0", &hints, &addresses); rc != 0) {
    return Error(
        Status::InvalidArgument("cannot resolve host '" + host + "': " + gai_strerror(rc)));
  }
  std::string last_error = "no address";
  for (addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t bound_length = sizeof bound;
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length) != 0) {
      last_error = std::strerror(errno);
      close(fd);
      continue;
    }
    freeaddrinfo(addresses);
    *port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                        : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    return fd;
  }
  freeaddrinfo(addresses);
  return Error(Status::Unavailable("cannot find a free TCP port on '" + host + "': " + last_error));
}

}  // namespace

Result<std::vector<uint16_t>> PickFreePorts(const std::vector<std::string>& hosts) {
  std::vector<uint16_t> ports;
  std::vector<int> held;
  Status failure;
  for (const std::string& host : hosts) {
    uint16_t port = 0;
    Result<int> fd = BindAnyPort(host, &port);
    if (!fd) {
      failure = std::move(fd.error());
      break;
    }
    held.push_back(*fd);
    ports.push_back(port);
  }
  for (int fd : held) close(fd);
  if (!failure.ok()) return Error(std::move(failure));
  return ports;
}

Result<uint16_t> PickFreePort(const std::string& host) {
  auto ports = PickFreePorts({host});
  if (!ports) return Error(std::move(ports.error()));
  return ports->front();
}

}  // namespace edgeflow
