// edgeflow: command-line client of edgeflowd (EKV, channels, edge functions and the stream fan-out
// over the HTTP API; subscriptions straight from the node's MQTT broker).
//
//   edgeflow [--server URL] kv put NS KEY [VALUE|-] [-f FILE] [--ttl T] [--content-type T]
//                                 [--if-version V] [--if-absent]
//   edgeflow kv get NS KEY [--meta] [-o FILE]
//   edgeflow kv del NS KEY [--if-version V]
//   edgeflow kv ls NS [PREFIX] [--limit N] [--all] [--start-after K] [--json]
//   edgeflow kv watch NS [PREFIX] [--from-seq N] [--json]
//   edgeflow pub CHANNEL [DATA|-] [-f FILE] [--key K] [--ns NS] [--ttl T] [--content-type T]
//                [--mode auto|inline|ref] [--traceparent TP] [--stream S] [--json]
//   edgeflow sub CHANNEL... [--session NAME] [--qos 0|1] [-n COUNT] [-W SECONDS] [-v] [--json]
//                [--no-resolve]
//   edgeflow channels [--json]
//   edgeflow deploy SPEC.yaml [--json]         edgeflow undeploy PIPELINE
//   edgeflow ps [--json]                       edgeflow logs [PIPELINE/]FUNCTION [-n N] [-f] [-W S]
//   edgeflow node | health | --version
//   edgeflow sensor --ts FILE --to HOST:PORT --id ID [--loop [N]] [--duration S] [--speed X]
//                   [--keep 1/2] [--mode frame|packet] [--mqtt HOST:PORT] [--tenant T]
//                   [--no-control] [--report-interval S] [--json]
//   edgeflow stream add NAME --listen IP:PORT [--interface IF] [--codec auto|h264|h265] [--json]
//   edgeflow stream rm NAME                    edgeflow stream ls [--json]
//   edgeflow stream stats NAME [--json] [-w SECONDS]
//   edgeflow consumer add STREAM NAME --to IP:PORT [--interface IF] [--mac M] [--keep 1/2]
//                         [--mode frame|packet] [--json]
//   edgeflow consumer rm STREAM NAME
//   edgeflow policy set STREAM CONSUMER [--keep 1/4] [--mode frame|packet] [--json]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "cli/channel_commands.h"
#include "cli/cli_commands.h"
#include "cli/function_commands.h"
#include "cli/sensor_command.h"
#include "cli/stream_commands.h"
#include "client/edge_client.h"
#include "client/server_url.h"

namespace {

using edgeflow::cli::kExitUsage;

std::string DefaultServer() {
  const char* env = std::getenv("EDGEFLOW_SERVER");
  return env != nullptr && *env != '\0' ? env : std::string(edgeflow::client::kDefaultServer);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"edgeflow: command-line client of edgeflowd"};
  app.set_version_flag("--version", std::string("edgeflow ") + EDGEFLOW_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Exit status: 0 success, 1 the server refused the request (e.g. not found), 2 the server "
      "could not be reached, 64 bad usage.");

  std::string server = DefaultServer();
  double timeout_seconds = 60;
  app.add_option("--server", server, "edgeflowd HTTP address (env EDGEFLOW_SERVER)")
      ->capture_default_str();
  app.add_option("--timeout", timeout_seconds, "Seconds to wait for each request")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));

  auto* health = app.add_subcommand("health", "Check that the daemon answers");
  auto* node = app.add_subcommand("node", "Show the node's identity and addresses");
  auto* kv = app.add_subcommand("kv", "Read and write EKV keys");
  kv->require_subcommand(1);

  edgeflow::cli::KvPutArgs put_args;
  std::string put_value;
  auto* put = kv->add_subcommand("put", "Write a key");
  put->add_option("ns", put_args.ns, "Namespace")->required();
  put->add_option("key", put_args.key, "Key")->required();
  auto* put_value_option =
      put->add_option("value", put_value, "Value, or '-' to read it from standard input");
  put->add_option("-f,--file", put_args.file, "Read the value from this file");
  put->add_option("--ttl", put_args.ttl, "Expire after this long (30, 1.5, 250ms, 5m, 2h)");
  put->add_option("--content-type", put_args.content_type, "Content type stored with the value");
  put->add_option("--if-version", put_args.if_version,
                  "Write only if the current version is this one (compare-and-set)");
  put->add_flag("--if-absent", put_args.if_absent, "Write only if the key does not exist");

  std::string get_ns, get_key, get_output;
  bool get_meta = false;
  auto* get = kv->add_subcommand("get", "Print a key's value (raw bytes) to standard output");
  get->add_option("ns", get_ns, "Namespace")->required();
  get->add_option("key", get_key, "Key")->required();
  get->add_flag("--meta", get_meta, "Print the key's metadata as JSON instead of its value");
  get->add_option("-o,--output", get_output, "Write the value to this file");

  std::string del_ns, del_key, del_if_version;
  auto* del = kv->add_subcommand("del", "Delete a key");
  del->alias("delete");
  del->add_option("ns", del_ns, "Namespace")->required();
  del->add_option("key", del_key, "Key")->required();
  del->add_option("--if-version", del_if_version, "Delete only if the current version is this one");

  edgeflow::cli::KvListArgs ls_args;
  auto* ls = kv->add_subcommand("ls", "List keys of a namespace");
  ls->alias("list");
  ls->add_option("ns", ls_args.ns, "Namespace")->required();
  ls->add_option("prefix", ls_args.prefix, "Only keys starting with this");
  ls->add_option("--limit", ls_args.limit, "Keys per page (max 10000)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{10000}));
  ls->add_flag("--all", ls_args.all, "Follow the pages to list every key");
  ls->add_option("--start-after", ls_args.start_after, "Start after this key");
  ls->add_flag("--json", ls_args.json, "Print the entries as JSON");

  edgeflow::cli::KvWatchArgs watch_args;
  uint64_t from_seq = 0;
  auto* watch = kv->add_subcommand("watch", "Print changes as they happen, until Ctrl-C");
  watch->add_option("ns", watch_args.ns, "Namespace, or '*' for all")->required();
  watch->add_option("prefix", watch_args.prefix, "Only keys starting with this");
  auto* from_seq_option =
      watch->add_option("--from-seq", from_seq, "Start at this change-log sequence number");
  watch->add_flag("--json", watch_args.json, "Print each change as its JSON record");

  edgeflow::cli::PubArgs pub_args;
  std::string pub_value, pub_mode = "auto";
  auto* pub = app.add_subcommand("pub", "Put data into EKV and publish it on a channel");
  pub->add_option("channel", pub_args.channel, "Channel name, e.g. cams/front")->required();
  auto* pub_value_option =
      pub->add_option("data", pub_value, "The data, or '-' to read it from standard input");
  pub->add_option("-f,--file", pub_args.file, "Read the data from this file");
  pub->add_option("--key", pub_args.options.key, "Store under this key (also the item id)");
  pub->add_option("--ns", pub_args.options.ns, "EKV namespace (default: the node's)");
  pub->add_option("--ttl", pub_args.options.ttl,
                  "The stored data expires after this long (30, 250ms, 5m, 2h) or 'none'");
  pub->add_option("--content-type", pub_args.options.content_type, "Content type of the data");
  pub->add_option("--mode", pub_mode, "auto, inline or ref (claim check)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "inline", "ref"}));
  pub->add_option("--traceparent", pub_args.options.traceparent, "W3C trace context to continue");
  pub->add_option("--stream", pub_args.options.stream,
                  "Stream key of the item (functions keep per-stream context by it)");
  pub->add_flag("--json", pub_args.json, "Print the node's answer as JSON");

  edgeflow::cli::SubArgs sub_args;
  auto* sub = app.add_subcommand(
      "sub", "Print messages of channels as they arrive, with referenced data read from EKV");
  sub->add_option("channels", sub_args.channels,
                  "Channel names or patterns ('+' one segment, final '#' any rest)")
      ->required();
  sub->add_option("--session", sub_args.session,
                  "Persistent session name: messages sent while away are kept for it");
  sub->add_option("--qos", sub_args.qos, "0 or 1")->capture_default_str()->check(CLI::Range(0, 1));
  sub->add_option("-n,--count", sub_args.count, "Exit after this many messages");
  sub->add_option("-W,--wait", sub_args.wait_seconds,
                  "Give up after this many seconds (exit 1 if --count was not reached)")
      ->check(CLI::Range(0.0, 86400.0 * 365));
  sub->add_flag("-v,--verbose", sub_args.verbose, "Print the channel before each message");
  sub->add_flag("--json", sub_args.json, "Print each message with its envelope as JSON");
  sub->add_flag("!--no-resolve", sub_args.resolve,
                "Do not read referenced data (print the envelope only with --json)");

  bool channels_json = false;
  auto* channels =
      app.add_subcommand("channels", "List the channels seen by the node, with message rates");
  channels->add_flag("--json", channels_json, "Print the node's answer as JSON");

  std::string deploy_spec;
  bool deploy_json = false;
  auto* deploy = app.add_subcommand(
      "deploy", "Deploy a pipeline of edge functions (or replace one of the same name)");
  deploy->add_option("spec", deploy_spec, "The pipeline's YAML spec, or '-' for standard input")
      ->required();
  deploy->add_flag("--json", deploy_json, "Print the node's answer as JSON");

  std::string undeploy_name;
  auto* undeploy = app.add_subcommand("undeploy", "Stop a pipeline and remove it from the node");
  undeploy->add_option("pipeline", undeploy_name, "The pipeline's name")->required();

  bool ps_json = false;
  auto* ps = app.add_subcommand(
      "ps", "List deployed functions: workers, queued, in flight, done, failed, latency");
  ps->add_flag("--json", ps_json, "Print the node's answer as JSON");

  edgeflow::cli::LogsArgs logs_args;
  auto* logs = app.add_subcommand("logs", "Print a function's recent log (stderr, log calls, "
                                          "and the runtime's events about it)");
  logs->add_option("function", logs_args.function,
                   "pipeline/function, or the function's name when it is unique")
      ->required();
  logs->add_option("-n,--lines", logs_args.lines, "How many recent lines")
      ->check(CLI::Range(1, 5000));
  logs->add_flag("-f,--follow", logs_args.follow, "Keep printing new lines as they come");
  logs->add_option("-W,--wait", logs_args.wait_seconds, "With --follow: stop after this many seconds")
      ->check(CLI::Range(0.0, 86400.0 * 365));
  logs->add_flag("--json", logs_args.json, "Print one JSON object per line");

  edgeflow::cli::SensorArgs sensor_args;
  auto* sensor = app.add_subcommand(
      "sensor", "Send a recorded MPEG-TS file to the edge over UDP at its real-time rate, at the "
                "quality the edge asks for on the sensor's control channel");
  sensor->add_option("--ts", sensor_args.ts_file, "The MPEG-TS file to send")->required();
  sensor->add_option("--to", sensor_args.to, "Where to send it: HOST:PORT (UDP)")->required();
  sensor->add_option("--id", sensor_args.id,
                     "The sensor's id: its control channel is _fanout/ID/quality, its reports "
                     "go to _fanout/ID/report")
      ->required();
  auto* loop_option = sensor->add_option(
      "--loop", sensor_args.loop_count,
      "Send the file N times, or until stopped when N is not given");
  loop_option->expected(0, 1)->type_name("[N]");
  sensor->add_option("--duration", sensor_args.duration_seconds, "Stop after this many seconds")
      ->check(CLI::Range(0.0, 86400.0 * 365));
  sensor->add_option("--speed", sensor_args.speed,
                     "1 = the file's real-time rate (from its PCR), 2 = twice as fast, 0 = as "
                     "fast as possible")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1000.0));
  sensor->add_option("--keep", sensor_args.keep,
                     "Differential data kept until the control channel says otherwise: num/den "
                     "or a number in [0,1]")
      ->capture_default_str();
  sensor->add_option("--mode", sensor_args.mode,
                     "frame (drop whole pictures, the rest decodes) or packet (whole datagrams)")
      ->capture_default_str()
      ->check(CLI::IsMember({"frame", "packet"}));
  sensor->add_option("--mqtt", sensor_args.mqtt,
                     "The broker of the control channel, HOST:PORT (default: the node's)");
  sensor->add_option("--tenant", sensor_args.tenant,
                     "Tenant of the control channel (default: the node's, or 'default')");
  sensor->add_flag("!--no-control", sensor_args.control,
                   "No control channel and no reports over MQTT: send at --keep throughout");
  sensor->add_option("--report-interval", sensor_args.report_interval_seconds,
                     "Seconds between reports")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 86400.0));
  sensor->add_flag("--json", sensor_args.json, "Print each report as a JSON line on stdout");

  // The stream fan-out: streams, their consumers and what each consumer needs.
  auto* stream = app.add_subcommand("stream", "Manage the node's fan-out streams");
  stream->require_subcommand(1);
  edgeflow::cli::StreamAddArgs stream_add_args;
  auto* stream_add = stream->add_subcommand("add", "Add a stream that a sensor sends to");
  stream_add->add_option("name", stream_add_args.name, "The stream's name (also the sensor's id)")
      ->required();
  stream_add->add_option("--listen", stream_add_args.listen,
                         "Where the sensor sends: IPv4 address and UDP port, IP:PORT")
      ->required();
  stream_add->add_option("--interface", stream_add_args.interface,
                         "Interface the stream arrives on (default: the one holding the address)");
  stream_add->add_option("--codec", stream_add_args.codec, "auto, h264 or h265")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "h264", "h265"}));
  stream_add->add_flag("--json", stream_add_args.json, "Print the stream's status as JSON");
  std::string stream_rm_name;
  auto* stream_rm = stream->add_subcommand("rm", "Remove a stream and its consumers");
  stream_rm->alias("remove");
  stream_rm->add_option("name", stream_rm_name, "The stream's name")->required();
  bool stream_ls_json = false;
  auto* stream_ls = stream->add_subcommand("ls", "List the streams");
  stream_ls->alias("list");
  stream_ls->add_flag("--json", stream_ls_json, "Print the node's answer as JSON");
  edgeflow::cli::StreamStatsArgs stream_stats_args;
  auto* stream_stats = stream->add_subcommand(
      "stats", "Show a stream's sensor quality, ingress and per-consumer counters");
  stream_stats->add_option("name", stream_stats_args.name, "The stream's name")->required();
  stream_stats->add_flag("--json", stream_stats_args.json, "Print the stream's status as JSON");
  stream_stats->add_option("-w,--watch", stream_stats_args.watch_seconds,
                           "Refresh every this many seconds, until Ctrl-C")
      ->check(CLI::Range(0.1, 86400.0));

  auto* consumer = app.add_subcommand("consumer", "Manage the consumers of a fan-out stream");
  consumer->require_subcommand(1);
  edgeflow::cli::ConsumerAddArgs consumer_add_args;
  auto* consumer_add = consumer->add_subcommand("add", "Send a copy of a stream to a consumer");
  consumer_add->add_option("stream", consumer_add_args.stream, "The stream's name")->required();
  consumer_add->add_option("name", consumer_add_args.name, "The consumer's name")->required();
  consumer_add->add_option("--to", consumer_add_args.to,
                           "Where its copy goes: IPv4 address and UDP port, IP:PORT")
      ->required();
  consumer_add->add_option("--interface", consumer_add_args.interface,
                           "Interface its copy leaves by (default: the route's)");
  consumer_add->add_option("--mac", consumer_add_args.mac,
                           "Its Ethernet address (default: the neighbour table's)");
  consumer_add->add_option("--keep", consumer_add_args.keep,
                           "Differential data it needs: num/den or a number in [0,1]")
      ->capture_default_str();
  consumer_add->add_option("--mode", consumer_add_args.mode,
                           "frame (drop whole pictures, the rest decodes) or packet (whole "
                           "datagrams)")
      ->capture_default_str()
      ->check(CLI::IsMember({"frame", "packet"}));
  consumer_add->add_flag("--json", consumer_add_args.json, "Print the consumer's status as JSON");
  std::string consumer_rm_stream, consumer_rm_name;
  auto* consumer_rm = consumer->add_subcommand("rm", "Stop sending a stream to a consumer");
  consumer_rm->alias("remove");
  consumer_rm->add_option("stream", consumer_rm_stream, "The stream's name")->required();
  consumer_rm->add_option("name", consumer_rm_name, "The consumer's name")->required();

  auto* policy = app.add_subcommand("policy", "Change what a consumer of a stream needs");
  policy->require_subcommand(1);
  edgeflow::cli::PolicySetArgs policy_set_args;
  auto* policy_set = policy->add_subcommand(
      "set", "Set a consumer's need; the sensor's quality follows every consumer's needs");
  policy_set->add_option("stream", policy_set_args.stream, "The stream's name")->required();
  policy_set->add_option("consumer", policy_set_args.consumer, "The consumer's name")->required();
  policy_set->add_option("--keep", policy_set_args.keep,
                         "Differential data it needs: num/den or a number in [0,1]");
  policy_set->add_option("--mode", policy_set_args.mode, "frame or packet (default: unchanged)")
      ->check(CLI::IsMember({"frame", "packet"}));
  policy_set->add_flag("--json", policy_set_args.json, "Print the consumer's status as JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }

  auto url = edgeflow::client::ServerUrl::Parse(server);
  if (!url) {
    std::fprintf(stderr, "edgeflow: %s\n", url.error().message().c_str());
    return kExitUsage;
  }
  edgeflow::client::EdgeClient node_client(
      *url, std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)));
  edgeflow::cli::CliCommands commands(&node_client.http(), stdout, stderr);
  edgeflow::cli::ChannelCommands channel_commands(&node_client, stdout, stderr);
  edgeflow::cli::FunctionCommands function_commands(&node_client, stdout, stderr);
  edgeflow::cli::StreamCommands stream_commands(&node_client, stdout, stderr);

  try {
    if (*health) return commands.Health();
    if (*node) return commands.Node();
    if (*put) {
      if (*put_value_option) put_args.value = put_value;
      return commands.KvPut(put_args);
    }
    if (*get) return commands.KvGet(get_ns, get_key, get_meta, get_output);
    if (*del) return commands.KvDelete(del_ns, del_key, del_if_version);
    if (*ls) return commands.KvList(ls_args);
    if (*pub) {
      if (*pub_value_option) pub_args.value = pub_value;
      using Mode = edgeflow::client::PublishOptions::Mode;
      pub_args.options.mode = pub_mode == "inline" ? Mode::kInline
                              : pub_mode == "ref"  ? Mode::kReference
                                                   : Mode::kAuto;
      return channel_commands.Publish(pub_args);
    }
    if (*sub) return channel_commands.Subscribe(sub_args);
    if (*channels) return channel_commands.List(channels_json);
    if (*deploy) return function_commands.Deploy(deploy_spec, deploy_json);
    if (*undeploy) return function_commands.Undeploy(undeploy_name);
    if (*ps) return function_commands.Ps(ps_json);
    if (*logs) return function_commands.Logs(logs_args);
    if (*sensor) {
      sensor_args.loop = loop_option->count() > 0;
      edgeflow::cli::SensorCommand sensor_command(
          &node_client, std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)),
          stdout, stderr);
      return sensor_command.Run(sensor_args);
    }
    if (*stream_add) return stream_commands.AddStream(stream_add_args);
    if (*stream_rm) return stream_commands.RemoveStream(stream_rm_name);
    if (*stream_ls) return stream_commands.ListStreams(stream_ls_json);
    if (*stream_stats) return stream_commands.Stats(stream_stats_args);
    if (*consumer_add) return stream_commands.AddConsumer(consumer_add_args);
    if (*consumer_rm) return stream_commands.RemoveConsumer(consumer_rm_stream, consumer_rm_name);
    if (*policy_set) return stream_commands.SetPolicy(policy_set_args);
    if (*watch) {
      if (*from_seq_option) watch_args.from_seq = from_seq;
      return commands.KvWatch(watch_args);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgeflow: unexpected error: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "%s", app.help().c_str());
  return kExitUsage;
}
