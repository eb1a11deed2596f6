// BrokerConfig: how the node runs its Mosquitto broker, and the mosquitto.conf it renders to.
//
// The node runs a real Mosquitto 2.0 (the Debian package) as a child process (see
// BrokerSupervisor); everything Mosquitto needs lives in one directory under the node's data dir:
// mosquitto.conf (rewritten at every start), the persistence database, mosquitto.log and
// mosquitto.stdout (what the broker prints before its log file is open).
//
// Rules of Mosquitto 2.0.11 that shape the rendered file (checked against the installed broker):
//  - `listener 0 HOST` makes a unix socket named HOST, not a TCP listener on a free port, so the
//    renderer requires real ports; BrokerSupervisor turns port 0 into one with PickFreePorts().
//  - Every listener refuses anonymous clients unless `allow_anonymous true` is given; the file uses
//    `per_listener_settings false` and one global allow_anonymous (false when auth is configured).
//  - Run as root, Mosquitto switches to user "mosquitto" unless told otherwise, and then cannot
//    write the persistence directory the node created; the file names the effective user.
//  - `log_type a b c` on one line silently keeps only `a`: each type gets its own line.
//  - The parser rejects lines that are not valid UTF-8 (even a tab in a path) and trims
//    whitespace around values, so such paths are refused here with a clear message instead.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/host_port.h"
#include "common/status.h"

namespace edgeflow::channels {

// Files inside BrokerConfig::dir.
inline constexpr std::string_view kMosquittoConfFileName = "mosquitto.conf";
inline constexpr std::string_view kMosquittoLogFileName = "mosquitto.log";
inline constexpr std::string_view kMosquittoStdoutFileName = "mosquitto.stdout";

struct BrokerConfig {
  std::filesystem::path mosquitto_binary = "/usr/sbin/mosquitto";
  // The broker's directory under the node's data dir: config, persistence, log. Absolute (the
  // supervisor makes a relative one absolute against the working directory at Create()).
  std::filesystem::path dir;
  HostPort listen{"127.0.0.1", 7883};  // MQTT over TCP; port 0 = pick a free port at Start()
  // MQTT over WebSockets; nullopt = none. Mosquitto binds websockets only to IP literals.
  std::optional<HostPort> ws_listen = HostPort{"127.0.0.1", 7884};
  size_t max_packet_bytes = 64 << 20;  // whole MQTT packet; 20 .. 268435460 (the MQTT maximum)
  // QoS 1/2 messages queued per persistent session while its client is away; 0 = no limit.
  size_t max_queued_messages = 100000;
  // QoS 1/2 messages in flight to one client at a time (Mosquitto's default of 20 throttles a
  // stream consumer on a slow link); 0 = no limit, at most 65535.
  int max_inflight_messages = 100;
  // Persistence: the in-memory state is saved this often and at shutdown; 0 = only at shutdown.
  int autosave_seconds = 5;
  int persistent_client_expiration_days = 7;  // 0 = persistent sessions never expire
  // Auth: when password_file is set, anonymous clients are refused. An acl_file needs a
  // password_file: without one nobody could connect.
  std::optional<std::filesystem::path> password_file, acl_file;

  // Supervision (used by BrokerSupervisor, not rendered).
  std::chrono::milliseconds start_timeout{10'000};         // Start() gives up after this long
  std::chrono::milliseconds stop_timeout{5'000};           // SIGTERM, then SIGKILL after this long
  std::chrono::milliseconds restart_backoff_initial{100};  // doubled after each exit ...
  std::chrono::milliseconds restart_backoff_max{5'000};    // ... up to this
  // A broker that stayed healthy this long is considered recovered: the back-off starts over.
  std::chrono::milliseconds restart_backoff_reset_after{30'000};
};

// Checks everything the renderer checks except that ports are non-zero (port 0 is resolved at
// Start()). InvalidArgument names the offending field.
Status ValidateBrokerConfig(const BrokerConfig& config);

// The text of mosquitto.conf for `config`. Requires absolute paths and real (non-zero) ports.
Result<std::string> RenderMosquittoConf(const BrokerConfig& config);

}  // namespace edgeflow::channels
