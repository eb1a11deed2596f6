// CliCommands: what each `edgeflow` subcommand does, on top of HttpClient. Each method returns
// the process exit status:
//   0   success
//   1   the server refused the request (not found, failed precondition, invalid argument, ...)
//   2   the server could not be reached or the connection broke
//   64  bad usage (unreadable input file, contradicting options)
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "cli/cli_input.h"
#include "client/http_client.h"

namespace edgeflow::cli {

using client::Headers;
using client::HttpClient;
using client::Response;

struct KvPutArgs {
  std::string ns;
  std::string key;
  std::optional<std::string> value;  // "-" = read standard input
  std::string file;                  // -f FILE
  std::string ttl;                   // "30", "1.5", "250ms", "5m", ...
  std::string content_type;
  std::string if_version;
  bool if_absent = false;
};

struct KvListArgs {
  std::string ns;
  std::string prefix;
  std::string start_after;
  size_t limit = 100;
  bool all = false;
  bool json = false;
};

struct KvWatchArgs {
  std::string ns;
  std::string prefix;
  std::optional<uint64_t> from_seq;
  bool json = false;
};

class CliCommands {
 public:
  // `out` receives results (values, tables, events); `err` receives messages.
  CliCommands(HttpClient* client, std::FILE* out, std::FILE* err)
      : client_(client), out_(out), err_(err) {}

  int Health();
  int Node();
  int KvPut(const KvPutArgs& args);
  int KvGet(const std::string& ns, const std::string& key, bool meta, const std::string& output);
  int KvDelete(const std::string& ns, const std::string& key, const std::string& if_version);
  int KvList(const KvListArgs& args);
  int KvWatch(const KvWatchArgs& args);

 private:
  // Reports a transport failure (exit 2) or a usage problem (exit 64).
  int Fail(const Status& status);
  // Reports an HTTP error response: the server's JSON error message; exit 1.
  int Refused(const Response& res);
  static std::string ItemTarget(const std::string& ns, const std::string& key);

  HttpClient* client_;
  std::FILE* out_;
  std::FILE* err_;
};

}  // namespace edgeflow::cli
