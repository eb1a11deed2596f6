// StreamCommands: `edgeflow stream add|rm|ls|stats`, `consumer add|rm` and `policy set`: the
// node's stream fan-out over its HTTP API (api/http_stream_handlers.h). Exit statuses as in
// cli_input.h; a fraction or address that cannot be right is bad usage (64) before anything is
// sent.
#pragma once

#include <cstdio>
#include <string>

#include "client/edge_client.h"

namespace edgeflow::cli {

struct StreamAddArgs {
  std::string name;
  std::string listen;     // IP:PORT the sensor sends to
  std::string interface;  // "": the node's choice
  std::string codec = "auto";
  bool json = false;
};

struct StreamStatsArgs {
  std::string name;
  bool json = false;
  double watch_seconds = 0;  // > 0: print again every this many seconds, until interrupted
};

struct ConsumerAddArgs {
  std::string stream;
  std::string name;
  std::string to;         // IP:PORT its copies go to
  std::string interface;  // "": the route's
  std::string mac;        // "": the neighbour table's
  std::string keep = "1";
  std::string mode = "frame";
  bool json = false;
};

struct PolicySetArgs {
  std::string stream;
  std::string consumer;
  std::string keep;  // "": unchanged
  std::string mode;  // "": unchanged
  bool json = false;
};

class StreamCommands {
 public:
  StreamCommands(client::EdgeClient* node, std::FILE* out, std::FILE* err)
      : node_(node), out_(out), err_(err) {}

  int AddStream(const StreamAddArgs& args);
  int RemoveStream(const std::string& name);
  int ListStreams(bool json);
  int Stats(const StreamStatsArgs& args);
  int AddConsumer(const ConsumerAddArgs& args);
  int RemoveConsumer(const std::string& stream, const std::string& consumer);
  int SetPolicy(const PolicySetArgs& args);

 private:
  // One stats screen: the exit status of its request.
  int PrintStats(const StreamStatsArgs& args, bool clear_screen);

  client::EdgeClient* node_;
  std::FILE* out_;
  std::FILE* err_;
};

}  // namespace edgeflow::cli
