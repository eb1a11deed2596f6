// String commands of RespCommands: GET, SET and friends, MGET/MSET, counters.
#include <charconv>

#include "api/resp_commands.h"
#include "api/resp_integer.h"

namespace edgeflow::api {
namespace {

// Read-modify-write commands retry this often when another client wins the race.
constexpr int kMaxCasAttempts = 100;

constexpr std::string_view kNotInteger = "ERR value is not an integer or out of range";
constexpr std::string_view kContention =
    "ERR the key is being changed by other clients too often; try again";

}  // namespace

// ---------------------------------------------------------------------------------------------
// Deferrers: queue the ops of a write command into the session's pending group. They refuse
// anything that needs an immediate error reply, which the Cmd* handler then writes.

bool RespCommands::DeferSet(RespSession& s, Args args) {
  if (!KeyOk(args[1]) || !ValueOk(args[2])) return false;
  SetRequest request;
  if (!ParseSetOptions(args, 3, "set", &request).empty() || request.get) return false;
  RespPendingGroup& p = s.pending;
  p.write_replies.push_back(
      {RespPendingGroup::ReplyKind::kSet, static_cast<uint32_t>(p.ops.size()), 1});
  kv::WriteOp& op = p.ops.emplace_back();
  op.ns = s.ns;
  op.key = args[1];
  op.value = args[2];
  op.put = std::move(request.put);
  return true;
}

// SETEX key seconds value / PSETEX key milliseconds value.
bool RespCommands::DeferSetEx(RespSession& s, Args args) {
  if (!KeyOk(args[1]) || !ValueOk(args[3])) return false;
  int64_t n = 0;
  if (!ParseRespInteger(args[2], &n) || n <= 0) return false;
  const bool seconds = args[0].size() == 5;  // "setex" vs "psetex"
  if (seconds && n > INT64_MAX / 1000) return false;
  const int64_t ttl_ms = seconds ? n * 1000 : n;
  if (ttl_ms > INT64_MAX - NowMillis()) return false;
  RespPendingGroup& p = s.pending;
  p.write_replies.push_back(
      {RespPendingGroup::ReplyKind::kOk, static_cast<uint32_t>(p.ops.size()), 1});
  kv::WriteOp& op = p.ops.emplace_back();
  op.ns = s.ns;
  op.key = args[1];
  op.value = args[3];
  op.put.ttl_ms = ttl_ms;
  return true;
}

bool RespCommands::DeferSetNx(RespSession& s, Args args) {
  if (!KeyOk(args[1]) || !ValueOk(args[2])) return false;
  RespPendingGroup& p = s.pending;
  p.write_replies.push_back(
      {RespPendingGroup::ReplyKind::kSetNx, static_cast<uint32_t>(p.ops.size()), 1});
  kv::WriteOp& op = p.ops.emplace_back();
  op.ns = s.ns;
  op.key = args[1];
  op.value = args[2];
  op.put.condition = kv::PutCondition::kIfAbsent;
  return true;
}

bool RespCommands::DeferMset(RespSession& s, Args args) {
  if (args.size() % 2 == 0) return false;
  for (size_t i = 1; i < args.size(); i += 2) {
    if (!KeyOk(args[i]) || !ValueOk(args[i + 1])) return false;
  }
  RespPendingGroup& p = s.pending;
  p.write_replies.push_back({RespPendingGroup::ReplyKind::kOk, static_cast<uint32_t>(p.ops.size()),
                             static_cast<uint32_t>(args.size() / 2)});
  AppendPairOps(s, args, kv::PutCondition::kAlways, &p.ops);
  return true;
}

// MSET and MSETNX: one put per key/value pair of args[1..].
void RespCommands::AppendPairOps(const RespSession& s, Args args, kv::PutCondition condition,
                                 std::vector<kv::WriteOp>* ops) {
  ops->reserve(ops->size() + args.size() / 2);
  for (size_t i = 1; i + 1 < args.size(); i += 2) {
    kv::WriteOp& op = ops->emplace_back();
    op.ns = s.ns;
    op.key = args[i];
    op.value = args[i + 1];
    op.put.condition = condition;
  }
}

// ---------------------------------------------------------------------------------------------
// Handlers

void RespCommands::CmdGet(RespSession& s, Args args, RespWriter& out) {
  ReplyValue(out, store_->Get(s.ns, args[1]));
}

void RespCommands::CmdSet(RespSession& s, Args args, RespWriter& out) {
  SetRequest request;
  if (std::string error = ParseSetOptions(args, 3, "set", &request); !error.empty()) {
    ReplyError(out, error);
    return;
  }
  if (!CheckKey(out, args[1]) || !CheckValue(out, args[2])) return;
  if (request.get) {
    SetAndGetOld(s, args[1], args[2], request, out);
    return;
  }
  auto r = store_->Put(s.ns, args[1], args[2], request.put);
  if (r) {
    out.Ok();
  } else if (r.error().Is(ErrorCode::kFailedPrecondition)) {
    out.NullBulk();
  } else {
    ReplyStatus(out, r.error());
  }
}

void RespCommands::SetAndGetOld(RespSession& s, std::string_view key, std::string_view value,
                                const SetRequest& request, RespWriter& out) {
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    auto old = store_->Get(s.ns, key);
    if (!old && !old.error().Is(ErrorCode::kNotFound)) {
      ReplyStatus(out, old.error());
      return;
    }
    const bool exists = old.has_value();
    auto reply_old = [&] {
      if (exists) {
        out.Bulk(std::move(old->value));
      } else {
        out.NullBulk();
      }
    };
    if ((request.put.condition == kv::PutCondition::kIfAbsent && exists) ||
        (request.put.condition == kv::PutCondition::kIfPresent && !exists)) {
      reply_old();
      return;
    }
    kv::PutOptions put = request.put;
    if (exists) {
      put.condition = kv::PutCondition::kAlways;
      put.if_version = old->meta.version;
    } else {
      put.condition = kv::PutCondition::kIfAbsent;
    }
    auto r = store_->Put(s.ns, key, value, put);
    if (r) {
      reply_old();
      return;
    }
    if (!r.error().Is(ErrorCode::kFailedPrecondition)) {
      ReplyStatus(out, r.error());
      return;
    }
  }
  ReplyError(out, kContention);
}

void RespCommands::CmdSetEx(RespSession& s, Args args, RespWriter& out) {
  const bool seconds = args[0].size() == 5;
  const std::string name = seconds ? "setex" : "psetex";
  int64_t n = 0;
  if (!ParseRespInteger(args[2], &n)) {
    ReplyError(out, kNotInteger);
    return;
  }
  const std::string invalid = "ERR invalid expire time in '" + name + "' command";
  if (n <= 0 || (seconds && n > INT64_MAX / 1000)) {
    ReplyError(out, invalid);
    return;
  }
  const int64_t ttl_ms = seconds ? n * 1000 : n;
  if (ttl_ms > INT64_MAX - NowMillis()) {
    ReplyError(out, invalid);
    return;
  }
  if (!CheckKey(out, args[1]) || !CheckValue(out, args[3])) return;
  kv::PutOptions put;
  put.ttl_ms = ttl_ms;
  auto r = store_->Put(s.ns, args[1], args[3], put);
  if (r) {
    out.Ok();
  } else {
    ReplyStatus(out, r.error());
  }
}

void RespCommands::CmdSetNx(RespSession& s, Args args, RespWriter& out) {
  if (!CheckKey(out, args[1]) || !CheckValue(out, args[2])) return;
  kv::PutOptions put;
  put.condition = kv::PutCondition::kIfAbsent;
  ReplyFlag(out, store_->Put(s.ns, args[1], args[2], put));
}

void RespCommands::CmdGetSet(RespSession& s, Args args, RespWriter& out) {
  if (!CheckKey(out, args[1]) || !CheckValue(out, args[2])) return;
  SetRequest request;
  request.get = true;
  SetAndGetOld(s, args[1], args[2], request, out);
}

void RespCommands::CmdGetDel(RespSession& s, Args args, RespWriter& out) {
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    auto old = store_->Get(s.ns, args[1]);
    if (!old) {
      if (old.error().Is(ErrorCode::kNotFound)) {
        out.NullBulk();
      } else {
        ReplyStatus(out, old.error());
      }
      return;
    }
    kv::DeleteOptions del;
    del.if_version = old->meta.version;
    auto r = store_->Delete(s.ns, args[1], del);
    if (r) {
      out.Bulk(std::move(old->value));
      return;
    }
    if (!r.error().Is(ErrorCode::kFailedPrecondition) && !r.error().Is(ErrorCode::kNotFound)) {
      ReplyStatus(out, r.error());
      return;
    }
  }
  ReplyError(out, kContention);
}

void RespCommands::CmdMget(RespSession& s, Args args, RespWriter& out) {
  std::vector<Result<kv::SharedItem>> items = store_->MultiGet(s.ns, args.subspan(1));
  // A failure of the store fails the whole command, before any part of the array is written; a
  // missing or malformed key is just a nil.
  for (const auto& item : items) {
    if (!item && !KeyCannotExist(item.error())) {
      ReplyStatus(out, item.error());
      return;
    }
  }
  out.ArrayHeader(items.size());
  for (auto& item : items) {
    if (item) {
      out.Bulk(item->value, std::move(item->owner));
    } else {
      out.NullBulk();
    }
  }
}

// Runs only when DeferMset() declined, i.e. to report what is wrong with the arguments; a valid
// MSET is always held back and committed with its neighbours.
void RespCommands::CmdMset(RespSession& s, Args args, RespWriter& out) {
  if (args.size() % 2 == 0) {
    ReplyArity(out, "mset");
    return;
  }
  for (size_t i = 1; i < args.size(); i += 2) {
    if (!CheckKey(out, args[i]) || !CheckValue(out, args[i + 1])) return;
  }
  std::vector<kv::WriteOp> ops;
  AppendPairOps(s, args, kv::PutCondition::kAlways, &ops);
  auto results = store_->Apply(ops);
  if (!results) {
    ReplyStatus(out, results.error());
    return;
  }
  for (const auto& r : *results) {
    if (!r) {
      ReplyStatus(out, r.error());
      return;
    }
  }
  out.Ok();
}

void RespCommands::CmdMsetNx(RespSession& s, Args args, RespWriter& out) {
  if (args.size() % 2 == 0) {
    ReplyArity(out, "msetnx");
    return;
  }
  for (size_t i = 1; i < args.size(); i += 2) {
    if (!CheckKey(out, args[i]) || !CheckValue(out, args[i + 1])) return;
    auto head = store_->Head(s.ns, args[i]);
    if (head) {
      out.Integer(0);
      return;
    }
    if (!head.error().Is(ErrorCode::kNotFound)) {
      ReplyStatus(out, head.error());
      return;
    }
  }
  std::vector<kv::WriteOp> ops;
  AppendPairOps(s, args, kv::PutCondition::kIfAbsent, &ops);
  auto results = store_->Apply(ops);
  if (!results) {
    ReplyStatus(out, results.error());
    return;
  }
  for (const auto& r : *results) {
    if (!r) {
      if (r.error().Is(ErrorCode::kFailedPrecondition)) {
        out.Integer(0);
      } else {
        ReplyStatus(out, r.error());
      }
      return;
    }
  }
  out.Integer(1);
}

void RespCommands::CmdStrlen(RespSession& s, Args args, RespWriter& out) {
  auto head = store_->Head(s.ns, args[1]);
  if (head) {
    out.Integer(static_cast<int64_t>(head->size));
  } else if (head.error().Is(ErrorCode::kNotFound)) {
    out.Integer(0);
  } else {
    ReplyStatus(out, head.error());
  }
}

void RespCommands::CmdAppend(RespSession& s, Args args, RespWriter& out) {
  if (!CheckKey(out, args[1])) return;
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    auto old = store_->Get(s.ns, args[1]);
    if (!old && !old.error().Is(ErrorCode::kNotFound)) {
      ReplyStatus(out, old.error());
      return;
    }
    std::string value;
    kv::PutOptions put;
    if (old) {
      value = std::move(old->value);
      put.if_version = old->meta.version;
      put.keep_ttl = true;
    } else {
      put.condition = kv::PutCondition::kIfAbsent;
    }
    if (value.size() + args[2].size() > config_.max_value_bytes) {
      ReplyError(out, "ERR value too large (" + std::to_string(value.size() + args[2].size()) +
                          " bytes > max " + std::to_string(config_.max_value_bytes) + ")");
      return;
    }
    value.append(args[2]);
    auto r = store_->Put(s.ns, args[1], value, put);
    if (r) {
      out.Integer(static_cast<int64_t>(value.size()));
      return;
    }
    if (!r.error().Is(ErrorCode::kFailedPrecondition)) {
      ReplyStatus(out, r.error());
      return;
    }
  }
  ReplyError(out, kContention);
}

// INCR, DECR, INCRBY, DECRBY.
void RespCommands::CmdIncrBy(RespSession& s, Args args, RespWriter& out) {
  const bool decrement = args[0][0] == 'd' || args[0][0] == 'D';
  int64_t delta = 1;
  if (args.size() == 3 && !ParseRespInteger(args[2], &delta)) {
    ReplyError(out, kNotInteger);
    return;
  }
  if (decrement) {
    if (delta == INT64_MIN) {
      ReplyError(out, "ERR decrement would overflow");
      return;
    }
    delta = -delta;
  }
  if (!CheckKey(out, args[1])) return;
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    auto old = store_->Get(s.ns, args[1]);
    if (!old && !old.error().Is(ErrorCode::kNotFound)) {
      ReplyStatus(out, old.error());
      return;
    }
    int64_t current = 0;
    kv::PutOptions put;
    if (old) {
      if (!ParseRespInteger(old->value, &current)) {
        ReplyError(out, kNotInteger);
        return;
      }
      put.if_version = old->meta.version;
      put.keep_ttl = true;
    } else {
      put.condition = kv::PutCondition::kIfAbsent;
    }
    if ((delta > 0 && current > INT64_MAX - delta) || (delta < 0 && current < INT64_MIN - delta)) {
      ReplyError(out, "ERR increment or decrement would overflow");
      return;
    }
    const int64_t next = current + delta;
    char text[24];
    const auto end = std::to_chars(text, text + sizeof(text), next).ptr;
    auto r = store_->Put(s.ns, args[1], std::string_view(text, end - text), put);
    if (r) {
      out.Integer(next);
      return;
    }
    if (!r.error().Is(ErrorCode::kFailedPrecondition)) {
      ReplyStatus(out, r.error());
      return;
    }
  }
  ReplyError(out, kContention);
}

}  // namespace edgeflow::api
