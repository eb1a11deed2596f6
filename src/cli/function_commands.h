// FunctionCommands: `edgeflow deploy`, `undeploy`, `ps` and `logs`, over the node's HTTP API
// (api/http_function_handlers.h). Exit statuses as in cli_input.h.
#pragma once

#include <cstdio>
#include <string>

#include "client/edge_client.h"

namespace edgeflow::cli {

struct LogsArgs {
  std::string function;  // "pipeline/function", or "function" when the name is unique
  size_t lines = 100;
  bool follow = false;
  double poll_seconds = 0.5;  // --follow: how often to ask for new lines
  double wait_seconds = 0;    // --follow: stop after this long (0 = until interrupted)
  bool json = false;
};

class FunctionCommands {
 public:
  FunctionCommands(client::EdgeClient* node, std::FILE* out, std::FILE* err)
      : node_(node), out_(out), err_(err) {}

  // Sends the spec at `spec_path` ("-" = standard input) with its directory, so that the node
  // finds code given by relative paths.
  int Deploy(const std::string& spec_path, bool json);
  int Undeploy(const std::string& pipeline);
  int Ps(bool json);
  int Logs(const LogsArgs& args);

 private:
  // "pipeline/function" for `name`, asking the node when it is a bare function name.
  Result<std::pair<std::string, std::string>> ResolveFunction(const std::string& name);

  client::EdgeClient* node_;
  std::FILE* out_;
  std::FILE* err_;
};

}  // namespace edgeflow::cli
