// Connection and server commands of RespCommands: PING, SELECT, HELLO, CLIENT, COMMAND, CONFIG,
// INFO, ... Enough of them for redis-cli, redis-benchmark and the common client libraries.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <utility>

#include "api/glob_match.h"
#include "api/resp_commands.h"
#include "api/resp_integer.h"

namespace edgeflow::api {
namespace {

constexpr std::string_view kRedisVersion = "7.0.0";

std::string UnknownSubcommand(std::string_view sub, std::string_view command) {
  return "ERR unknown subcommand '" + std::string(sub.substr(0, 128)) + "'. Try " +
         std::string(command) + " HELP.";
}

}  // namespace

void RespCommands::CmdPing(RespSession&, Args args, RespWriter& out) {
  if (args.size() > 2) {
    ReplyArity(out, "ping");
  } else if (args.size() == 2) {
    out.Bulk(args[1]);
  } else {
    out.SimpleString("PONG");
  }
}

void RespCommands::CmdEcho(RespSession&, Args args, RespWriter& out) { out.Bulk(args[1]); }

void RespCommands::CmdQuit(RespSession& s, Args, RespWriter& out) {
  s.quit = true;
  out.Ok();
}

void RespCommands::CmdSelect(RespSession& s, Args args, RespWriter& out) {
  const std::string_view arg = args[1];
  int64_t index = 0;
  if (ParseRespInteger(arg, &index)) {
    if (index < 0 || index > INT32_MAX) {
      ReplyError(out, "ERR DB index is out of range");
      return;
    }
    s.ns = index == 0 ? config_.default_namespace : "db" + std::to_string(index);
    out.Ok();
    return;
  }
  // RESP sessions write to the namespace they select, so the node's own one cannot be selected.
  if (Status st = kv::ValidateWritableNamespace(arg); !st.ok()) {
    ReplyError(out, "ERR invalid DB index or namespace name: " + st.message());
    return;
  }
  s.ns.assign(arg);
  out.Ok();
}

void RespCommands::CmdAuth(RespSession&, Args args, RespWriter& out) {
  // No passwords are configured: like Redis' default user, "AUTH default <anything>" is
  // accepted and a bare "AUTH <password>" is a configuration mistake worth pointing out.
  if (args.size() == 2) {
    ReplyError(out,
               "ERR AUTH <password> called without any password configured for the default "
               "user. Are you sure your configuration is correct?");
  } else if (args.size() == 3 && AsciiLower(args[1]) == "default") {
    out.Ok();
  } else if (args.size() == 3) {
    ReplyError(out, "WRONGPASS invalid username-password pair or user is disabled.");
  } else {
    ReplyError(out, "ERR syntax error");
  }
}

void RespCommands::CmdHello(RespSession& s, Args args, RespWriter& out) {
  if (args.size() >= 2) {
    int64_t version = 0;
    if (!ParseRespInteger(args[1], &version)) {
      ReplyError(out, "ERR Protocol version is not an integer or out of range");
      return;
    }
    if (version != 2) {
      ReplyError(out, "NOPROTO sorry, this protocol version is not supported");
      return;
    }
  }
  std::string name = s.name;
  for (size_t i = 2; i < args.size(); ++i) {
    const std::string opt = AsciiLower(args[i]);
    if (opt == "auth" && i + 2 < args.size()) {
      i += 2;  // no passwords here; see AUTH
    } else if (opt == "setname" && i + 1 < args.size()) {
      name.assign(args[++i]);
    } else {
      ReplyError(out, "ERR Syntax error in HELLO option '" + std::string(args[i]) + "'");
      return;
    }
  }
  s.name = std::move(name);
  // RESP2 has no maps: Redis sends the map as a flat array of keys and values.
  out.ArrayHeader(14);
  out.Bulk(std::string_view("server"));
  out.Bulk(std::string_view("redis"));
  out.Bulk(std::string_view("version"));
  out.Bulk(kRedisVersion);
  out.Bulk(std::string_view("proto"));
  out.Integer(2);
  out.Bulk(std::string_view("id"));
  out.Integer(static_cast<int64_t>(s.client_id));
  out.Bulk(std::string_view("mode"));
  out.Bulk(std::string_view("standalone"));
  out.Bulk(std::string_view("role"));
  out.Bulk(std::string_view("master"));
  out.Bulk(std::string_view("modules"));
  out.ArrayHeader(0);
}

void RespCommands::CmdClient(RespSession& s, Args args, RespWriter& out) {
  const std::string sub = AsciiLower(args[1]);
  auto arity = [&](size_t n) {
    if (args.size() == n) return true;
    ReplyArity(out, "client|" + sub);
    return false;
  };
  if (sub == "setname") {
    if (!arity(3)) return;
    for (char c : args[2]) {
      if (c < '!' || c > '~') {
        ReplyError(out, "ERR Client names cannot contain spaces, newlines or special characters.");
        return;
      }
    }
    s.name.assign(args[2]);
    out.Ok();
  } else if (sub == "getname") {
    if (!arity(2)) return;
    if (s.name.empty()) {
      out.NullBulk();
    } else {
      out.Bulk(std::string_view(s.name));
    }
  } else if (sub == "id") {
    if (!arity(2)) return;
    out.Integer(static_cast<int64_t>(s.client_id));
  } else if (sub == "info" || sub == "list") {
    if (sub == "info" && !arity(2)) return;
    std::string line = "id=" + std::to_string(s.client_id) + " addr=" + s.peer +
                       " laddr=" + s.local + " name=" + s.name + " ns=" + s.ns +
                       " resp=2 cmd=client|" + sub + "\n";
    out.Bulk(std::string_view(line));
  } else if (sub == "setinfo") {
    // Sent by newer client libraries (library name and version); nothing to keep.
    if (!arity(4)) return;
    out.Ok();
  } else {
    ReplyError(out, UnknownSubcommand(args[1], "CLIENT"));
  }
}

void RespCommands::WriteCommandInfo(const Spec& spec, RespWriter& out) const {
  // The six fields of Redis' COMMAND reply before 7.0 (enough for clients that look at it):
  // name, arity, flags, first key, last key, key step.
  out.ArrayHeader(6);
  out.Bulk(std::string_view(spec.name));
  out.Integer(spec.arity);
  out.ArrayHeader(1);
  out.SimpleString(spec.write ? "write" : "readonly");
  const bool has_key = spec.write || spec.is_get || spec.name == "mget" || spec.name == "exists" ||
                       spec.name == "ttl" || spec.name == "pttl" || spec.name == "type" ||
                       spec.name == "strlen";
  const bool many = spec.name == "mget" || spec.name == "del" || spec.name == "unlink" ||
                    spec.name == "exists" || spec.name == "mset" || spec.name == "msetnx";
  const bool flush = spec.name == "flushdb" || spec.name == "flushall";
  out.Integer(has_key && !flush ? 1 : 0);
  out.Integer(has_key && !flush ? (many ? -1 : 1) : 0);
  out.Integer(has_key && !flush ? ((spec.name == "mset" || spec.name == "msetnx") ? 2 : 1) : 0);
}

void RespCommands::CmdCommand(RespSession&, Args args, RespWriter& out) {
  if (args.size() == 1) {
    out.ArrayHeader(commands_.size());
    for (const auto& [name, spec] : commands_) WriteCommandInfo(spec, out);
    return;
  }
  const std::string sub = AsciiLower(args[1]);
  if (sub == "count") {
    out.Integer(static_cast<int64_t>(commands_.size()));
  } else if (sub == "docs") {
    // redis-cli asks for the docs at start-up to build its hints; none is a valid answer.
    out.ArrayHeader(0);
  } else if (sub == "info") {
    out.ArrayHeader(args.size() - 2);
    for (size_t i = 2; i < args.size(); ++i) {
      const Spec* spec = Find(args[i]);
      if (spec == nullptr) {
        out.NullArray();
      } else {
        WriteCommandInfo(*spec, out);
      }
    }
  } else if (sub == "list") {
    out.ArrayHeader(commands_.size());
    for (const auto& [name, spec] : commands_) out.Bulk(std::string_view(name));
  } else {
    ReplyError(out, UnknownSubcommand(args[1], "COMMAND"));
  }
}

void RespCommands::CmdConfig(RespSession&, Args args, RespWriter& out) {
  const std::string sub = AsciiLower(args[1]);
  if (sub == "get") {
    if (args.size() < 3) {
      ReplyArity(out, "config|get");
      return;
    }
    // Fixed answers, for tools that read a setting or two (redis-benchmark asks for "save" and
    // "appendonly"). Ordered so that the reply is stable.
    const std::map<std::string, std::string> settings = {
        {"appendonly", "no"},
        {"bind", config_.listen.host},
        {"databases", "16"},
        {"maxclients", std::to_string(config_.max_connections)},
        {"maxmemory", "0"},
        {"port", std::to_string(bound_port_.load(std::memory_order_relaxed))},
        {"proto-max-bulk-len",
         std::to_string(std::max(config_.max_value_bytes, config_.max_key_bytes))},
        {"save", ""},
        {"timeout", "0"},
    };
    std::vector<std::string> patterns;
    for (size_t i = 2; i < args.size(); ++i) patterns.push_back(AsciiLower(args[i]));
    std::vector<const std::pair<const std::string, std::string>*> found;
    for (const auto& setting : settings) {
      for (const std::string& pattern : patterns) {
        if (GlobMatch(pattern, setting.first)) {
          found.push_back(&setting);
          break;
        }
      }
    }
    out.ArrayHeader(found.size() * 2);
    for (const auto* setting : found) {
      out.Bulk(std::string_view(setting->first));
      out.Bulk(std::string_view(setting->second));
    }
  } else if (sub == "set" || sub == "resetstat" || sub == "rewrite") {
    ReplyError(out, "ERR CONFIG " + AsciiLower(args[1]) + " is not supported by this server");
  } else {
    ReplyError(out, UnknownSubcommand(args[1], "CONFIG"));
  }
}

void RespCommands::CmdInfo(RespSession&, Args args, RespWriter& out) {
  bool all = args.size() == 1;
  std::vector<std::string> wanted;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string section = AsciiLower(args[i]);
    if (section == "all" || section == "everything" || section == "default") all = true;
    wanted.push_back(std::move(section));
  }
  auto want = [&](std::string_view section) {
    return all || std::find(wanted.begin(), wanted.end(), section) != wanted.end();
  };
  const int64_t uptime_s = (NowMillis() - started_ms_) / 1000;
  std::string info;
  auto section = [&](std::string_view title) {
    if (!info.empty()) info += "\r\n";
    info += "# ";
    info += title;
    info += "\r\n";
  };
  auto field = [&](std::string_view key, const std::string& value) {
    info += key;
    info += ':';
    info += value;
    info += "\r\n";
  };
  if (want("server")) {
    section("Server");
    field("redis_version", std::string(kRedisVersion));
    field("edgeflow_version",
          config_.server_version.empty() ? std::string("unknown") : config_.server_version);
    field("redis_mode", "standalone");
    field("os", "Linux");
    field("arch_bits", std::to_string(sizeof(void*) * 8));
    field("process_id", std::to_string(::getpid()));
    field("tcp_port", std::to_string(bound_port_.load(std::memory_order_relaxed)));
    field("io_threads_active", std::to_string(config_.io_threads));
    field("uptime_in_seconds", std::to_string(uptime_s));
    field("uptime_in_days", std::to_string(uptime_s / 86400));
  }
  if (want("clients")) {
    section("Clients");
    field("connected_clients", std::to_string(connections()));
    field("maxclients", std::to_string(config_.max_connections));
  }
  if (want("stats")) {
    uint64_t commands = other_calls_->Value();
    for (const auto& [name, spec] : commands_) commands += spec.calls->Value();
    section("Stats");
    field("total_connections_received", std::to_string(connections_total_->Value()));
    field("total_commands_processed", std::to_string(commands));
    field("rejected_connections", std::to_string(connections_rejected_->Value()));
    field("total_error_replies", std::to_string(errors_->Value()));
  }
  if (want("replication")) {
    section("Replication");
    field("role", "master");
    field("connected_slaves", "0");
  }
  if (want("keyspace")) {
    const kv::StoreStats stats = store_->Stats();
    section("Keyspace");
    // The store's estimate for the whole node (all namespaces, recent deletes included).
    field("db0", "keys=" + std::to_string(stats.estimated_keys) + ",expires=0,avg_ttl=0");
    field("edgeflow_last_seq", std::to_string(stats.last_seq));
  }
  out.Bulk(std::string_view(info));
}

void RespCommands::CmdTime(RespSession&, Args, RespWriter& out) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const int64_t micros = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
  out.ArrayHeader(2);
  out.Bulk(std::string_view(std::to_string(micros / 1000000)));
  out.Bulk(std::string_view(std::to_string(micros % 1000000)));
}

void RespCommands::CmdFlush(RespSession&, Args args, RespWriter& out) {
  ReplyError(out, "ERR " + AsciiLower(args[0]) +
                      " is not supported by this server: delete keys with DEL, or let them "
                      "expire");
}

}  // namespace edgeflow::api
