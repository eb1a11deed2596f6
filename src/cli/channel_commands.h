// ChannelCommands: the `edgeflow pub`, `sub` and `channels` subcommands, on the client library.
// Exit statuses as in cli_input.h.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "client/edge_client.h"

namespace edgeflow::cli {

struct PubArgs {
  std::string channel;
  std::optional<std::string> value;  // "-" = read standard input
  std::string file;                  // -f FILE
  client::PublishOptions options;
  bool json = false;
};

struct SubArgs {
  std::vector<std::string> channels;
  std::string session;
  int qos = 1;
  uint64_t count = 0;       // exit after this many messages; 0 = run until interrupted
  double wait_seconds = 0;  // give up after this long; 0 = no limit
  bool verbose = false;     // prefix each message with its channel
  bool json = false;        // one JSON object per message
  bool resolve = true;
};

class ChannelCommands {
 public:
  ChannelCommands(client::EdgeClient* node, std::FILE* out, std::FILE* err)
      : node_(node), out_(out), err_(err) {}

  int Publish(const PubArgs& args);
  int Subscribe(const SubArgs& args);
  int List(bool json);

 private:
  client::EdgeClient* node_;
  std::FILE* out_;
  std::FILE* err_;
};

}  // namespace edgeflow::cli
