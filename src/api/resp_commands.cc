// The Redis command set of EKV.
//
// Databases and namespaces. A Redis client picks a database with SELECT; here a database is an
// EKV namespace:
//   SELECT 0       the default namespace (RespServerConfig::default_namespace, "default")
//   SELECT <n>     n > 0: the namespace "db<n>"
//   SELECT <name>  any other word that is a valid namespace name ([A-Za-z0-9_.-]{1,64}) selects
//                  that namespace, so Redis clients can reach data written over HTTP
// Every connection starts in the default namespace.
//
// Commands (Redis 7 semantics and reply types unless noted):
//   strings   GET SET(EX PX EXAT PXAT NX XX KEEPTTL GET) SETEX PSETEX SETNX GETSET GETDEL MGET
//             MSET MSETNX STRLEN APPEND INCR DECR INCRBY DECRBY
//   keys      DEL UNLINK EXISTS TYPE EXPIRE PEXPIRE EXPIREAT PEXPIREAT (NX XX GT LT) PERSIST TTL
//             PTTL EXPIRETIME PEXPIRETIME SCAN KEYS DBSIZE
//   server    PING ECHO QUIT SELECT AUTH HELLO CLIENT COMMAND CONFIG INFO TIME
//   refused   FLUSHDB FLUSHALL (an error: deleting a whole namespace is not offered here)
// Differences from Redis:
//   - Only strings exist: TYPE says "string" or "none", SCAN TYPE <other> finds nothing.
//   - Keys must not be empty and are at most max_key_bytes long; values at most max_value_bytes.
//   - SCAN cursors are random ids of a node-wide table (see resp_scan_cursors.h); one expires
//     after scan_cursor_ttl_seconds unused (or when more than max_scan_cursors are open), and
//     then SCAN answers "ERR invalid cursor". A cursor keeps the namespace and MATCH pattern of
//     the SCAN that started it (a MATCH sent with a later cursor is ignored); COUNT (1..10000) is
//     read on every call. Each cursor can be followed once.
//   - KEYS refuses to return more than 100000 keys (use SCAN).
//   - DBSIZE is exact up to 100000 keys in the selected namespace; above that it is the store's
//     estimate for the whole node (which also counts recently deleted keys).
//   - APPEND, INCR*, SET ... GET, GETSET and GETDEL are read-modify-write with a version check
//     (compare-and-set), retried under contention; MSETNX checks the keys and then writes them
//     create-only, so a racing writer can make it set some keys but not others.
//   - EXPIRE's NX/XX/GT/LT compare against the expiry read just before setting it.
//   - INFO's "db0:keys=" is the store's estimate for the whole node. KEYS, DBSIZE and SCAN run
//     on the connection's I/O thread like every command, so a huge KEYS delays other clients.
//   - CONFIG GET answers a few fixed settings; CONFIG SET is refused. CLIENT LIST shows only the
//     calling connection. HELLO supports protocol 2 only.
#include "api/resp_commands.h"

#include <algorithm>
#include <boost/algorithm/string/case_conv.hpp>
#include <boost/algorithm/string/predicate.hpp>
#include <cctype>
#include <locale>

#include "api/resp_integer.h"

namespace edgeflow::api {
namespace {

// Most commands grouped into one Apply() or MultiGet(): bounds the latency of the first one and,
// for GETs, the memory of values read before they are written out.
constexpr size_t kMaxGroupedOps = 1024;
constexpr size_t kMaxGroupedGets = 64;

}  // namespace

RespCommands::RespCommands(RespServerConfig config, kv::Store* store, metrics::Registry* metrics)
    : config_(std::move(config)),
      store_(store),
      clock_(config_.clock != nullptr ? config_.clock : SystemClock::Default()),
      started_ms_(clock_->NowMillis()),
      connections_(std::make_shared<std::atomic<int64_t>>(0)),
      scan_cursors_(config_.max_scan_cursors, int64_t{config_.scan_cursor_ttl_seconds} * 1000,
                    clock_) {
  using C = RespCommands;
  // Strings.
  AddCommand("get", 2, &C::CmdGet);
  AddCommand("set", -3, &C::CmdSet, &C::DeferSet, true);
  AddCommand("setex", 4, &C::CmdSetEx, &C::DeferSetEx, true);
  AddCommand("psetex", 4, &C::CmdSetEx, &C::DeferSetEx, true);
  AddCommand("setnx", 3, &C::CmdSetNx, &C::DeferSetNx, true);
  AddCommand("getset", 3, &C::CmdGetSet, nullptr, true);
  AddCommand("getdel", 2, &C::CmdGetDel, nullptr, true);
  AddCommand("mget", -2, &C::CmdMget);
  AddCommand("mset", -3, &C::CmdMset, &C::DeferMset, true);
  AddCommand("msetnx", -3, &C::CmdMsetNx, nullptr, true);
  AddCommand("strlen", 2, &C::CmdStrlen);
  AddCommand("append", 3, &C::CmdAppend, nullptr, true);
  AddCommand("incr", 2, &C::CmdIncrBy, nullptr, true);
  AddCommand("decr", 2, &C::CmdIncrBy, nullptr, true);
  AddCommand("incrby", 3, &C::CmdIncrBy, nullptr, true);
  AddCommand("decrby", 3, &C::CmdIncrBy, nullptr, true);
  // Keys.
  AddCommand("del", -2, &C::CmdDel, &C::DeferDel, true);
  AddCommand("unlink", -2, &C::CmdDel, &C::DeferDel, true);
  AddCommand("exists", -2, &C::CmdExists);
  AddCommand("type", 2, &C::CmdType);
  AddCommand("expire", -3, &C::CmdExpire, nullptr, true);
  AddCommand("pexpire", -3, &C::CmdExpire, nullptr, true);
  AddCommand("expireat", -3, &C::CmdExpire, nullptr, true);
  AddCommand("pexpireat", -3, &C::CmdExpire, nullptr, true);
  AddCommand("persist", 2, &C::CmdPersist, nullptr, true);
  AddCommand("ttl", 2, &C::CmdTtl);
  AddCommand("pttl", 2, &C::CmdTtl);
  AddCommand("expiretime", 2, &C::CmdExpireTime);
  AddCommand("pexpiretime", 2, &C::CmdExpireTime);
  AddCommand("scan", -2, &C::CmdScan);
  AddCommand("keys", 2, &C::CmdKeys);
  AddCommand("dbsize", 1, &C::CmdDbSize);
  // Connection and server.
  AddCommand("ping", -1, &C::CmdPing);
  AddCommand("echo", 2, &C::CmdEcho);
  AddCommand("quit", -1, &C::CmdQuit);
  AddCommand("select", 2, &C::CmdSelect);
  AddCommand("auth", -2, &C::CmdAuth);
  AddCommand("hello", -1, &C::CmdHello);
  AddCommand("client", -2, &C::CmdClient);
  AddCommand("command", -1, &C::CmdCommand);
  AddCommand("config", -2, &C::CmdConfig);
  AddCommand("info", -1, &C::CmdInfo);
  AddCommand("time", 1, &C::CmdTime);
  AddCommand("flushdb", -1, &C::CmdFlush, nullptr, true);
  AddCommand("flushall", -1, &C::CmdFlush, nullptr, true);
  commands_.at("get").is_get = true;

  const std::string help = "Redis protocol commands received, by command";
  for (auto& [name, spec] : commands_) {
    spec.calls = metrics->AddCounter("edgeflow_resp_commands_total", help, "cmd=\"" + name + "\"");
  }
  other_calls_ = metrics->AddCounter("edgeflow_resp_commands_total", help, "cmd=\"other\"");
  errors_ = metrics->AddCounter("edgeflow_resp_errors_total",
                                "Redis protocol commands answered with an error");
  connections_total_ =
      metrics->AddCounter("edgeflow_resp_connections_total", "Redis protocol connections accepted");
  connections_rejected_ =
      metrics->AddCounter("edgeflow_resp_connections_rejected_total",
                          "Redis protocol connections refused because of max_connections");
  metrics->AddGauge("edgeflow_resp_connections", "Open Redis protocol connections",
                    [connections = connections_] {
                      return static_cast<double>(connections->load(std::memory_order_relaxed));
                    });
}

void RespCommands::AddCommand(std::string name, int arity, Handler handler, Deferrer deferrer,
                              bool write) {
  Spec spec;
  spec.name = name;
  spec.arity = arity;
  spec.handler = handler;
  spec.deferrer = deferrer;
  spec.write = write;
  commands_.emplace(std::move(name), std::move(spec));
}

const RespCommands::Spec* RespCommands::Find(std::string_view name) const {
  char lower[24];
  if (name.size() > sizeof(lower)) return nullptr;
  for (size_t i = 0; i < name.size(); ++i) {
    lower[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(name[i])));
  }
  auto it = commands_.find(std::string_view(lower, name.size()));
  return it == commands_.end() ? nullptr : &it->second;
}

uint64_t RespCommands::ConnectionOpened() {
  connections_->fetch_add(1, std::memory_order_relaxed);
  connections_total_->Increment();
  return next_client_id_.fetch_add(1, std::memory_order_relaxed);
}

void RespCommands::ConnectionClosed() { connections_->fetch_sub(1, std::memory_order_relaxed); }

void RespCommands::ConnectionRejected() { connections_rejected_->Increment(); }

// ---------------------------------------------------------------------------------------------
// Dispatch and pipelining

void RespCommands::Submit(RespSession* session, Args args, RespWriter* out) {
  RespSession& s = *session;
  const Spec* spec = Find(args[0]);
  if (spec == nullptr) {
    Flush(session, out);
    other_calls_->Increment();
    ReplyUnknownCommand(*out, args);
    return;
  }
  spec->calls->Increment();
  const size_t argc = args.size();
  if ((spec->arity > 0 && argc != static_cast<size_t>(spec->arity)) ||
      (spec->arity < 0 && argc < static_cast<size_t>(-spec->arity))) {
    Flush(session, out);
    ReplyArity(*out, spec->name);
    return;
  }
  RespPendingGroup& pending = s.pending;
  if (spec->is_get) {
    if (pending.kind == RespPendingGroup::Kind::kWrites ||
        pending.get_keys.size() >= kMaxGroupedGets) {
      Flush(session, out);
    }
    pending.kind = RespPendingGroup::Kind::kGets;
    pending.get_keys.push_back(args[1]);
    return;
  }
  if (spec->deferrer != nullptr) {
    if (pending.kind == RespPendingGroup::Kind::kGets || pending.ops.size() >= kMaxGroupedOps) {
      Flush(session, out);
    }
    if ((this->*spec->deferrer)(s, args)) {
      pending.kind = RespPendingGroup::Kind::kWrites;
      return;
    }
  }
  Flush(session, out);
  (this->*spec->handler)(s, args, *out);
}

void RespCommands::Flush(RespSession* session, RespWriter* out) {
  switch (session->pending.kind) {
    case RespPendingGroup::Kind::kNone:
      return;
    case RespPendingGroup::Kind::kGets:
      FlushGets(*session, *out);
      break;
    case RespPendingGroup::Kind::kWrites:
      FlushWrites(*session, *out);
      break;
  }
  session->pending.Clear();
}

void RespCommands::FlushGets(RespSession& s, RespWriter& out) {
  std::vector<Result<kv::SharedItem>> items = store_->MultiGet(s.ns, s.pending.get_keys);
  for (auto& item : items) {
    if (item) {
      out.Bulk(item->value, std::move(item->owner));
    } else {
      ReplyValue(out, Error(std::move(item.error())));
    }
  }
}

void RespCommands::ReplyFlag(RespWriter& out, const Result<kv::WriteResult>& result) {
  if (result) {
    out.Integer(1);
  } else if (result.error().Is(ErrorCode::kNotFound) ||
             result.error().Is(ErrorCode::kFailedPrecondition)) {
    out.Integer(0);
  } else {
    ReplyStatus(out, result.error());
  }
}

std::string AsciiLower(std::string_view text) {
  std::string lower(text);
  boost::algorithm::to_lower(lower, std::locale::classic());
  return lower;
}

void RespCommands::ReplyValue(RespWriter& out, Result<kv::Item> item) {
  if (item) {
    out.Bulk(std::move(item->value));
  } else if (item.error().Is(ErrorCode::kNotFound)) {
    out.NullBulk();
  } else {
    ReplyStatus(out, item.error());
  }
}

void RespCommands::FlushWrites(RespSession& s, RespWriter& out) {
  ReplyToWrites(s, out, store_->Apply(s.pending.ops));
}

bool RespCommands::WouldFlushWrites(const RespSession& session, Args args) const {
  if (session.pending.kind != RespPendingGroup::Kind::kWrites) return false;
  const Spec* spec = Find(args[0]);
  // Only another write that can join the group keeps it open (if its arguments are valid).
  return spec == nullptr || spec->deferrer == nullptr ||
         session.pending.ops.size() >= kMaxGroupedOps;
}

std::span<const kv::WriteOp> RespCommands::PendingWrites(const RespSession& session) const {
  if (session.pending.kind != RespPendingGroup::Kind::kWrites) return {};
  return session.pending.ops;
}

void RespCommands::FinishWrites(RespSession* session, RespWriter* out,
                                Result<std::vector<Result<kv::WriteResult>>> results) {
  ReplyToWrites(*session, *out, results);
  session->pending.Clear();
}

void RespCommands::ReplyToWrites(RespSession& s, RespWriter& out,
                                 const Result<std::vector<Result<kv::WriteResult>>>& results) {
  RespPendingGroup& pending = s.pending;
  if (!results) {
    for (size_t i = 0; i < pending.write_replies.size(); ++i) ReplyStatus(out, results.error());
    return;
  }
  const std::vector<Result<kv::WriteResult>>& r = *results;
  for (const RespPendingGroup::WriteReply& reply : pending.write_replies) {
    const auto begin = r.begin() + reply.first_op;
    const auto end = begin + reply.op_count;
    switch (reply.kind) {
      case RespPendingGroup::ReplyKind::kSet:
        if (*begin) {
          out.Ok();
        } else if (begin->error().Is(ErrorCode::kFailedPrecondition)) {
          out.NullBulk();
        } else {
          ReplyStatus(out, begin->error());
        }
        break;
      case RespPendingGroup::ReplyKind::kSetNx:
        ReplyFlag(out, *begin);
        break;
      case RespPendingGroup::ReplyKind::kOk: {
        auto failed = std::find_if(begin, end, [](const auto& x) { return !x.has_value(); });
        if (failed == end) {
          out.Ok();
        } else {
          ReplyStatus(out, failed->error());
        }
        break;
      }
      case RespPendingGroup::ReplyKind::kDelCount: {
        int64_t deleted = 0;
        const Status* failure = nullptr;
        for (auto it = begin; it != end; ++it) {
          if (*it) {
            ++deleted;
          } else if (!KeyCannotExist(it->error())) {
            failure = &it->error();
          }
        }
        if (failure != nullptr) {
          ReplyStatus(out, *failure);
        } else {
          out.Integer(deleted);
        }
        break;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Replies and validation

void RespCommands::ReplyError(RespWriter& out, std::string_view message) {
  errors_->Increment();
  out.Error(message);
}

void RespCommands::ReplyStatus(RespWriter& out, const Status& status) {
  errors_->Increment();
  std::string message = "ERR ";
  message += status.message();
  out.Error(message);
}

void RespCommands::ReplyUnknownCommand(RespWriter& out, Args args) {
  // Redis' wording, including its truncation of long names and arguments.
  std::string message = "ERR unknown command '";
  message.append(args[0].substr(0, 128));
  message.append("', with args beginning with: ");
  std::string quoted;
  for (size_t i = 1; i < args.size() && quoted.size() < 128; ++i) {
    quoted += '\'';
    quoted.append(args[i].substr(0, 128 - quoted.size()));
    quoted += "' ";
  }
  message += quoted;
  ReplyError(out, message);
}

void RespCommands::ReplyArity(RespWriter& out, std::string_view name) {
  ReplyError(out, "ERR wrong number of arguments for '" + std::string(name) + "' command");
}

bool RespCommands::KeyCannotExist(const Status& status) {
  // An empty or oversized key is refused by the store; like a missing key, it has no value.
  return status.Is(ErrorCode::kNotFound) || status.Is(ErrorCode::kInvalidArgument) ||
         status.Is(ErrorCode::kResourceExhausted);
}

void RespCommands::ReplyProtocolError(RespWriter* out, std::string_view message) {
  errors_->Increment();
  out->Error("ERR " + std::string(message));
}

bool RespCommands::KeyOk(std::string_view key) const {
  return !key.empty() && key.size() <= config_.max_key_bytes;
}

bool RespCommands::ValueOk(std::string_view value) const {
  return value.size() <= config_.max_value_bytes;
}

bool RespCommands::CheckKey(RespWriter& out, std::string_view key) {
  if (Status s = kv::ValidateKey(key, config_.max_key_bytes); !s.ok()) {
    ReplyStatus(out, s);
    return false;
  }
  return true;
}

bool RespCommands::CheckValue(RespWriter& out, std::string_view value) {
  if (!ValueOk(value)) {
    ReplyError(out, "ERR value too large (" + std::to_string(value.size()) + " bytes > max " +
                        std::to_string(config_.max_value_bytes) + ")");
    return false;
  }
  return true;
}

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return boost::algorithm::iequals(a, b);
}
}  // namespace

std::string RespCommands::ParseSetOptions(Args args, size_t first, std::string_view command,
                                          SetRequest* request) const {
  bool nx = false;
  bool xx = false;
  bool keep_ttl = false;
  char expiry_kind = 0;  // 'e' EX, 'p' PX, 'E' EXAT, 'P' PXAT
  std::string_view expiry_arg;
  for (size_t i = first; i < args.size(); ++i) {
    const std::string_view opt = args[i];
    const bool has_next = i + 1 < args.size();
    if (EqualsIgnoreCase(opt, "nx") && !xx) {
      nx = true;
    } else if (EqualsIgnoreCase(opt, "xx") && !nx) {
      xx = true;
    } else if (EqualsIgnoreCase(opt, "get")) {
      request->get = true;
    } else if (EqualsIgnoreCase(opt, "keepttl") && expiry_kind == 0) {
      keep_ttl = true;
    } else if (!keep_ttl && has_next &&
               (EqualsIgnoreCase(opt, "ex") || EqualsIgnoreCase(opt, "px") ||
                EqualsIgnoreCase(opt, "exat") || EqualsIgnoreCase(opt, "pxat"))) {
      const char kind = opt.size() == 2 ? static_cast<char>(std::tolower(opt[0]))
                                        : static_cast<char>(std::toupper(opt[0]));
      if (expiry_kind != 0 && expiry_kind != kind) return "ERR syntax error";
      expiry_kind = kind;
      expiry_arg = args[++i];
    } else {
      return "ERR syntax error";
    }
  }
  request->put.condition = nx   ? kv::PutCondition::kIfAbsent
                           : xx ? kv::PutCondition::kIfPresent
                                : kv::PutCondition::kAlways;
  request->put.keep_ttl = keep_ttl;
  if (expiry_kind != 0) {
    int64_t n = 0;
    if (!ParseRespInteger(expiry_arg, &n)) return "ERR value is not an integer or out of range";
    const std::string invalid = "ERR invalid expire time in '" + std::string(command) + "' command";
    if (n <= 0) return invalid;
    const bool seconds = expiry_kind == 'e' || expiry_kind == 'E';
    if (seconds) {
      if (n > INT64_MAX / 1000) return invalid;
      n *= 1000;
    }
    if (expiry_kind == 'e' || expiry_kind == 'p') {
      if (n > INT64_MAX - NowMillis()) return invalid;
      request->put.ttl_ms = n;
    } else {
      request->put.expires_at_ms = n;
    }
  }
  return {};
}

}  // namespace edgeflow::api
