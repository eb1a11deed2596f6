// edgeflowd: the edgeflow node daemon. Reads the config (embedded defaults, then --config FILE,
// then flags), starts the node, and runs until SIGTERM or SIGINT.
//
// Exit codes: 0 clean stop, 1 the node failed (store, listeners), 2 bad configuration or flags.

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <thread>

#include "common/log.h"
#include "node/node.h"

namespace {

using edgeflow::Status;
using edgeflow::node::NodeConfig;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr auto kStopDeadline = std::chrono::seconds(20);

struct Flags {
  std::string config_file;
  std::string data_dir;
  std::string http_listen;
  std::string resp_listen;
  std::string mqtt_listen;
  std::string mqtt_ws_listen;
  std::string mqtt_broker;
  bool no_mqtt = false;
  bool no_fanout = false;
  std::string fanout_datapath;
  bool sync_writes = false;
  std::string log_level;
  std::string log_format;
  size_t max_key_bytes = 0;
  size_t max_value_bytes = 0;
};

int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "edgeflowd: %s\n", message.c_str());
  return code;
}

// Applies flags over the file-and-defaults config.
Status ApplyFlags(const Flags& flags, NodeConfig* config) {
  if (!flags.data_dir.empty()) config->data_dir = flags.data_dir;
  if (!flags.http_listen.empty()) {
    auto a = edgeflow::ParseHostPort(flags.http_listen);
    if (!a) return Status::InvalidArgument("--http-listen: " + a.error().message());
    config->http.listen = *a;
  }
  if (!flags.resp_listen.empty()) {
    auto a = edgeflow::ParseHostPort(flags.resp_listen);
    if (!a) return Status::InvalidArgument("--resp-listen: " + a.error().message());
    config->resp.listen = *a;
  }
  if (!flags.mqtt_listen.empty()) {
    auto a = edgeflow::ParseHostPort(flags.mqtt_listen);
    if (!a) return Status::InvalidArgument("--mqtt-listen: " + a.error().message());
    config->mqtt.broker.listen = *a;
  }
  if (flags.mqtt_ws_listen == "off") {
    config->mqtt.broker.ws_listen.reset();
  } else if (!flags.mqtt_ws_listen.empty()) {
    auto a = edgeflow::ParseHostPort(flags.mqtt_ws_listen);
    if (!a) return Status::InvalidArgument("--mqtt-ws-listen: " + a.error().message());
    config->mqtt.broker.ws_listen = *a;
  }
  if (!flags.mqtt_broker.empty()) {
    auto a = edgeflow::node::ParseBrokerUrl(flags.mqtt_broker);
    if (!a) return Status::InvalidArgument("--mqtt-broker: " + a.error().message());
    config->mqtt.external_broker = *a;
  }
  if (flags.no_mqtt) config->mqtt.enabled = false;
  if (flags.no_fanout) config->fanout.enabled = false;
  if (!flags.fanout_datapath.empty()) {
    auto datapath = edgeflow::fanout::ParseDatapath(flags.fanout_datapath);
    if (!datapath) {
      return Status::InvalidArgument("--fanout-datapath must be auto, ebpf or userspace");
    }
    config->fanout.datapath = *datapath;
  }
  if (flags.sync_writes) config->kv.sync_writes = true;
  if (!flags.log_level.empty() && !edgeflow::log::ParseLevel(flags.log_level, &config->log_level)) {
    return Status::InvalidArgument("--log-level must be debug, info, warn or error");
  }
  if (!flags.log_format.empty() &&
      !edgeflow::log::ParseFormat(flags.log_format, &config->log_format)) {
    return Status::InvalidArgument("--log-format must be text or json");
  }
  if (flags.max_key_bytes) config->kv.max_key_bytes = flags.max_key_bytes;
  if (flags.max_value_bytes) config->kv.max_value_bytes = flags.max_value_bytes;
  EF_RETURN_IF_ERROR(edgeflow::node::ValidateKvLimits(config->kv));
  return edgeflow::node::ValidateChannels(*config);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "edgeflowd: the edgeflow edge node (EKV over HTTP and the Redis protocol, computation "
      "channels on a managed Mosquitto broker)"};
  Flags flags;
  app.add_option("--config", flags.config_file, "YAML config file")->check(CLI::ExistingFile);
  app.add_option("--data-dir", flags.data_dir, "Data directory (default ./data)");
  app.add_option("--http-listen", flags.http_listen,
                 "HTTP listen address HOST:PORT (default 127.0.0.1:7070; port 0 = any)");
  app.add_option("--resp-listen", flags.resp_listen,
                 "Redis-protocol listen address HOST:PORT (default 127.0.0.1:7379)");
  app.add_option("--mqtt-listen", flags.mqtt_listen,
                 "MQTT listen address of the managed broker HOST:PORT (default 127.0.0.1:7883)");
  app.add_option("--mqtt-ws-listen", flags.mqtt_ws_listen,
                 "MQTT-over-WebSockets listen address HOST:PORT, or 'off' (default "
                 "127.0.0.1:7884)");
  app.add_option("--mqtt-broker", flags.mqtt_broker,
                 "Use this MQTT broker (mqtt://HOST:PORT) instead of running Mosquitto");
  app.add_flag("--no-mqtt", flags.no_mqtt, "Run without a broker and without channels");
  app.add_flag("--no-fanout", flags.no_fanout, "Run without the stream fan-out");
  app.add_option("--fanout-datapath", flags.fanout_datapath,
                 "Stream fan-out data path: auto (eBPF when it loads, else userspace), ebpf "
                 "(or fail) or userspace");
  app.add_flag("--sync-writes", flags.sync_writes,
               "fsync the write-ahead log before acknowledging each write");
  app.add_option("--log-level", flags.log_level, "debug, info, warn or error");
  app.add_option("--log-format", flags.log_format, "text (logfmt) or json");
  app.add_option("--max-key-bytes", flags.max_key_bytes, "Largest key accepted");
  app.add_option("--max-value-bytes", flags.max_value_bytes, "Largest value accepted");
  app.set_version_flag("--version", std::string("edgeflowd ") + EDGEFLOW_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }

  NodeConfig config;
  if (!flags.config_file.empty()) {
    if (Status s = edgeflow::node::LoadConfigFile(flags.config_file, &config); !s.ok()) {
      return Fail(kExitUsage, s.message());
    }
  }
  if (Status s = ApplyFlags(flags, &config); !s.ok()) return Fail(kExitUsage, s.message());
  edgeflow::log::Configure(config.log_level, config.log_format);

  // Signals are taken synchronously by this thread (sigwait); every other thread inherits the
  // blocked mask, so no handler ever runs on an I/O or RocksDB thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto node = edgeflow::node::Node::Create(config);
  if (!node) return Fail(kExitFailure, node.error().message());
  if (Status s = (*node)->Start(); !s.ok()) return Fail(kExitFailure, s.message());
  edgeflow::log::Info("edgeflowd started",
                      {{"version", EDGEFLOW_VERSION},
                       {"data_dir", config.data_dir.string()},
                       {"node_id", edgeflow::kv::NodeIdToString((*node)->store()->node_id())}});

  int sig = 0;
  while (true) {
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      edgeflow::log::Info("SIGHUP ignored: configuration reload is not supported yet");
      continue;
    }
    break;
  }
  edgeflow::log::Info("stopping", {{"signal", sig == SIGTERM ? "TERM" : "INT"}});
  // A stop that hangs (a stuck client, a stuck disk) must not keep the process forever.
  std::thread([] {
    std::this_thread::sleep_for(kStopDeadline);
    std::fprintf(stderr, "edgeflowd: graceful stop took too long, exiting\n");
    _exit(kExitFailure);
  }).detach();
  (*node)->Stop();
  node->reset();
  edgeflow::log::Info("stopped");
  return 0;
}
