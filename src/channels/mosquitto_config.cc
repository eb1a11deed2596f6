#include "channels/mosquitto_config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include "common/text_encoding.h"

namespace edgeflow::channels {
namespace {

// The MQTT fixed header is at most 5 bytes and the remaining length at most 268435455.
constexpr size_t kMaxMqttPacketBytes = 268435455 + 5;
// Mosquitto 2.0.11 refuses smaller values ("Invalid max_packet_size value").
constexpr size_t kMinMqttPacketBytes = 20;
constexpr int kMaxInflightMessages = 65535;
// Keeps the expiration in seconds within a 32-bit int, whatever Mosquitto stores it in.
constexpr int kMaxExpirationDays = INT_MAX / 86400;

// A value that can stand alone after its keyword on one mosquitto.conf line.
Status CheckConfValue(std::string_view field, std::string_view value) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("broker " + std::string(field) + " '" + std::string(value) +
                                   "' " + std::string(why));
  };
  if (value.empty()) return bad("is empty");
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    // Newlines would start a new directive; Mosquitto rejects the other control characters.
    if (byte < 0x20 || byte == 0x7F) {
      return bad(
          "contains a control character (newline, tab, ...), which mosquitto.conf cannot "
          "hold");
    }
  }
  if (value.front() == ' ' || value.back() == ' ') {
    return bad("starts or ends with a space, which mosquitto.conf would drop");
  }
  if (!IsValidUtf8(value)) return bad("is not valid UTF-8, which mosquitto.conf requires");
  return Status::Ok();
}

Status CheckPath(std::string_view field, const std::filesystem::path& path) {
  EF_RETURN_IF_ERROR(CheckConfValue(field, path.string()));
  if (!path.is_absolute()) {
    return Status::InvalidArgument("broker " + std::string(field) + " '" + path.string() +
                                   "' must be an absolute path");
  }
  return Status::Ok();
}

bool IsIpLiteral(const std::string& host) {
  in_addr v4;
  in6_addr v6;
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

Status CheckHost(std::string_view field, const HostPort& address, bool ip_literal_only) {
  const std::string& host = address.host;
  if (host.empty()) {
    return Status::InvalidArgument("broker " + std::string(field) +
                                   " needs a host to bind to (e.g. 127.0.0.1 or 0.0.0.0)");
  }
  for (char c : host) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' || c == ':' ||
                         c == '%';
    if (!allowed) {
      return Status::InvalidArgument("broker " + std::string(field) + " host '" + host +
                                     "' is not a host name or IP address");
    }
  }
  if (ip_literal_only && !IsIpLiteral(host)) {
    return Status::InvalidArgument("broker " + std::string(field) + " host '" + host +
                                   "' must be an IP address: Mosquitto binds websockets "
                                   "listeners only to IP addresses");
  }
  return Status::Ok();
}

// The user Mosquitto must keep running as so that it can write the directory the node created.
// nullopt when the effective user has no name; Mosquitto only switches users when run as root.
std::optional<std::string> EffectiveUserName() {
  const uid_t uid = geteuid();
  long size_hint = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buffer(size_hint > 0 ? static_cast<size_t>(size_hint) : 16384);
  passwd entry;
  passwd* found = nullptr;
  if (getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
    return std::string(found->pw_name);
  }
  if (uid == 0) return std::string("root");
  return std::nullopt;
}

}  // namespace

Status ValidateBrokerConfig(const BrokerConfig& config) {
  if (config.mosquitto_binary.empty()) {
    return Status::InvalidArgument(
        "broker mosquitto_binary is empty (default /usr/sbin/mosquitto)");
  }
  if (config.dir.empty()) {
    return Status::InvalidArgument(
        "broker dir is empty: the broker needs a directory for its "
        "config, persistence and log");
  }
  EF_RETURN_IF_ERROR(CheckPath("dir", config.dir));
  if (config.password_file.has_value()) {
    EF_RETURN_IF_ERROR(CheckPath("password_file", *config.password_file));
  }
  if (config.acl_file.has_value()) {
    EF_RETURN_IF_ERROR(CheckPath("acl_file", *config.acl_file));
    if (!config.password_file.has_value()) {
      return Status::InvalidArgument(
          "broker acl_file is set without password_file: anonymous clients are refused when auth "
          "is configured, so nobody could connect");
    }
  }
  EF_RETURN_IF_ERROR(CheckHost("listen", config.listen, /*ip_literal_only=*/false));
  if (config.ws_listen.has_value()) {
    EF_RETURN_IF_ERROR(CheckHost("ws_listen", *config.ws_listen, /*ip_literal_only=*/true));
    if (config.ws_listen->port != 0 && config.ws_listen->port == config.listen.port &&
        config.ws_listen->host == config.listen.host) {
      return Status::InvalidArgument("broker listen and ws_listen are both " +
                                     config.listen.ToString() + "; they need different ports");
    }
  }
  if (config.max_packet_bytes < kMinMqttPacketBytes ||
      config.max_packet_bytes > kMaxMqttPacketBytes) {
    return Status::InvalidArgument(
        "broker max_packet_bytes " + std::to_string(config.max_packet_bytes) + " is out of range " +
        std::to_string(kMinMqttPacketBytes) + ".." + std::to_string(kMaxMqttPacketBytes));
  }
  if (config.max_queued_messages > static_cast<size_t>(INT_MAX)) {
    return Status::InvalidArgument("broker max_queued_messages " +
                                   std::to_string(config.max_queued_messages) +
                                   " is too large (at most " + std::to_string(INT_MAX) + ")");
  }
  if (config.max_inflight_messages < 0 || config.max_inflight_messages > kMaxInflightMessages) {
    return Status::InvalidArgument("broker max_inflight_messages " +
                                   std::to_string(config.max_inflight_messages) +
                                   " is out of range 0..65535 (0 = no limit)");
  }
  if (config.autosave_seconds < 0) {
    return Status::InvalidArgument("broker autosave_seconds " +
                                   std::to_string(config.autosave_seconds) +
                                   " is negative (0 = save only at shutdown)");
  }
  if (config.persistent_client_expiration_days < 0 ||
      config.persistent_client_expiration_days > kMaxExpirationDays) {
    return Status::InvalidArgument("broker persistent_client_expiration_days " +
                                   std::to_string(config.persistent_client_expiration_days) +
                                   " is out of range 0.." + std::to_string(kMaxExpirationDays) +
                                   " (0 = never expire)");
  }
  return Status::Ok();
}

Result<std::string> RenderMosquittoConf(const BrokerConfig& config) {
  if (Status valid = ValidateBrokerConfig(config); !valid.ok()) return Error(std::move(valid));
  if (config.listen.port == 0 || (config.ws_listen.has_value() && config.ws_listen->port == 0)) {
    // `listener 0 HOST` would make a unix socket named HOST, not a TCP listener.
    return Error(Status::InvalidArgument(
        "broker listeners need real ports to render mosquitto.conf (port 0 must be resolved to a "
        "free port first)"));
  }
  std::string persistence_dir = config.dir.string();
  // Mosquitto 1.x glued the file name straight onto the location; 2.0.11 adds a '/' itself (its
  // log then shows "broker//mosquitto.db", which is harmless). The trailing '/' suits both.
  if (persistence_dir.back() != '/') persistence_dir += '/';

  std::string out;
  auto line = [&out](std::string_view text) {
    out += text;
    out += '\n';
  };
  line("# Written by edgeflowd at every broker start; edits are overwritten.");
  // Must come before the options it governs.
  line("per_listener_settings false");
  if (auto user = EffectiveUserName(); user.has_value()) line("user " + *user);
  if (config.password_file.has_value()) {
    line("allow_anonymous false");
    line("password_file " + config.password_file->string());
    if (config.acl_file.has_value()) line("acl_file " + config.acl_file->string());
  } else {
    line("allow_anonymous true");
  }
  line("");
  line("persistence true");
  line("persistence_location " + persistence_dir);
  line("autosave_interval " + std::to_string(config.autosave_seconds));
  if (config.persistent_client_expiration_days > 0) {
    line("persistent_client_expiration " +
         std::to_string(config.persistent_client_expiration_days) + "d");
  }
  line("");
  line("max_packet_size " + std::to_string(config.max_packet_bytes));
  // Without it a client's back-to-back QoS 1 publishes stall ~40 ms: the PUBACKs wait under
  // Nagle's algorithm for the client's delayed ACK (measured with 10 pipelined publishes).
  line("set_tcp_nodelay true");
  line("max_queued_messages " + std::to_string(config.max_queued_messages));
  line("max_inflight_messages " + std::to_string(config.max_inflight_messages));
  line("");
  line("log_dest file " + (config.dir / kMosquittoLogFileName).string());
  for (const char* type : {"error", "warning", "notice", "information"}) {
    line(std::string("log_type ") + type);
  }
  line("connection_messages true");
  line("log_timestamp true");
  line("");
  // Listeners last: listener-specific options (protocol) apply to the listener line above them.
  line("listener " + std::to_string(config.listen.port) + " " + config.listen.host);
  if (config.ws_listen.has_value()) {
    line("listener " + std::to_string(config.ws_listen->port) + " " + config.ws_listen->host);
    line("protocol websockets");
  }
  return out;
}

}  // namespace edgeflow::channels
