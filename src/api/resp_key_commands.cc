// Key-space commands of RespCommands: DEL, EXISTS, expiry, SCAN, KEYS, DBSIZE.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>

#include "api/glob_match.h"
#include "api/resp_commands.h"
#include "api/resp_integer.h"

namespace edgeflow::api {
namespace {

constexpr std::string_view kNotInteger = "ERR value is not an integer or out of range";
constexpr size_t kMaxKeysMatches = 100000;
constexpr size_t kListPage = 10000;  // the store's largest listing page
constexpr size_t kDbSizeExactLimit = 100000;
constexpr int64_t kDefaultScanCount = 10;

}  // namespace

bool RespCommands::DeferDel(RespSession& s, Args args) {
  RespPendingGroup& p = s.pending;
  p.write_replies.push_back({RespPendingGroup::ReplyKind::kDelCount,
                             static_cast<uint32_t>(p.ops.size()),
                             static_cast<uint32_t>(args.size() - 1)});
  for (size_t i = 1; i < args.size(); ++i) {
    kv::WriteOp& op = p.ops.emplace_back();
    op.kind = kv::WriteOp::Kind::kDelete;
    op.ns = s.ns;
    op.key = args[i];
  }
  return true;
}

// DEL is normally held back by DeferDel(); this direct form runs it alone.
void RespCommands::CmdDel(RespSession& s, Args args, RespWriter& out) {
  DeferDel(s, args);
  s.pending.kind = RespPendingGroup::Kind::kWrites;
  Flush(&s, &out);
}

void RespCommands::CmdExists(RespSession& s, Args args, RespWriter& out) {
  int64_t count = 0;
  for (size_t i = 1; i < args.size(); ++i) {
    if (!KeyOk(args[i])) continue;
    auto head = store_->Head(s.ns, args[i]);
    if (head) {
      ++count;
    } else if (!head.error().Is(ErrorCode::kNotFound)) {
      ReplyStatus(out, head.error());
      return;
    }
  }
  out.Integer(count);
}

void RespCommands::CmdType(RespSession& s, Args args, RespWriter& out) {
  if (!KeyOk(args[1])) {
    out.SimpleString("none");
    return;
  }
  auto head = store_->Head(s.ns, args[1]);
  if (head) {
    out.SimpleString("string");
  } else if (head.error().Is(ErrorCode::kNotFound)) {
    out.SimpleString("none");
  } else {
    ReplyStatus(out, head.error());
  }
}

// EXPIRE key seconds, PEXPIRE key ms, EXPIREAT key unix-seconds, PEXPIREAT key unix-ms; each
// with an optional NX | XX | GT | LT.
void RespCommands::CmdExpire(RespSession& s, Args args, RespWriter& out) {
  const std::string name = AsciiLower(args[0]);
  const bool millis = name[0] == 'p';
  const bool absolute = name.ends_with("at");
  int64_t when = 0;
  if (!ParseRespInteger(args[2], &when)) {
    ReplyError(out, kNotInteger);
    return;
  }
  bool nx = false, xx = false, gt = false, lt = false;
  for (size_t i = 3; i < args.size(); ++i) {
    const std::string opt = AsciiLower(args[i]);
    if (opt == "nx") {
      nx = true;
    } else if (opt == "xx") {
      xx = true;
    } else if (opt == "gt") {
      gt = true;
    } else if (opt == "lt") {
      lt = true;
    } else {
      ReplyError(out, "ERR Unsupported option " + std::string(args[i]));
      return;
    }
  }
  if (nx && (xx || gt || lt)) {
    ReplyError(out, "ERR NX and XX, GT or LT options at the same time are not compatible");
    return;
  }
  if (gt && lt) {
    ReplyError(out, "ERR GT and LT options at the same time are not compatible");
    return;
  }
  const std::string invalid = "ERR invalid expire time in '" + name + "' command";
  const int64_t now = NowMillis();
  if (!millis) {
    if (when > INT64_MAX / 1000 || when < INT64_MIN / 1000) {
      ReplyError(out, invalid);
      return;
    }
    when *= 1000;
  }
  if (!absolute) {
    if (when > INT64_MAX - now) {
      ReplyError(out, invalid);
      return;
    }
    when += now;
  }
  const std::optional<kv::ItemMeta> head = HeadOrReply(s, args[1], /*missing=*/0, out);
  if (!head) return;
  // Redis treats "no expiry" as an infinite one for GT and LT.
  const int64_t current = head->expires_at_ms;
  if ((nx && current != 0) || (xx && current == 0) || (gt && (current == 0 || when <= current)) ||
      (lt && current != 0 && when >= current)) {
    out.Integer(0);
    return;
  }
  Result<kv::WriteResult> r;
  if (when <= now) {
    // A time in the past deletes the key, as in Redis.
    kv::DeleteOptions del;
    del.if_version = head->version;
    r = store_->Delete(s.ns, args[1], del);
  } else {
    r = store_->SetExpiry(s.ns, args[1], when);
  }
  ReplyFlag(out, r);
}

void RespCommands::CmdPersist(RespSession& s, Args args, RespWriter& out) {
  const std::optional<kv::ItemMeta> head = HeadOrReply(s, args[1], /*missing=*/0, out);
  if (!head) return;
  if (head->expires_at_ms == 0) {
    out.Integer(0);
    return;
  }
  ReplyFlag(out, store_->SetExpiry(s.ns, args[1], std::nullopt));
}

// The metadata of a live key; otherwise replies `missing` (the key cannot exist or does not) or
// the error, and returns nothing.
std::optional<kv::ItemMeta> RespCommands::HeadOrReply(RespSession& s, std::string_view key,
                                                      int64_t missing, RespWriter& out) {
  if (!KeyOk(key)) {
    out.Integer(missing);
    return std::nullopt;
  }
  auto head = store_->Head(s.ns, key);
  if (head) return std::move(*head);
  if (head.error().Is(ErrorCode::kNotFound)) {
    out.Integer(missing);
  } else {
    ReplyStatus(out, head.error());
  }
  return std::nullopt;
}

// The expiry of a key for TTL-like commands: replies -2 if the key does not exist, -1 if it has
// no expiry (or the error), and returns the absolute expiry only when there is one to report.
std::optional<int64_t> RespCommands::ExpiryForReply(RespSession& s, std::string_view key,
                                                    RespWriter& out) {
  const std::optional<kv::ItemMeta> head = HeadOrReply(s, key, /*missing=*/-2, out);
  if (!head) return std::nullopt;
  if (head->expires_at_ms == 0) {
    out.Integer(-1);
    return std::nullopt;
  }
  return head->expires_at_ms;
}

// TTL and PTTL: the time left.
void RespCommands::CmdTtl(RespSession& s, Args args, RespWriter& out) {
  const bool millis = args[0][0] == 'p' || args[0][0] == 'P';
  if (auto expires_at = ExpiryForReply(s, args[1], out)) {
    const int64_t ttl = std::max<int64_t>(*expires_at - NowMillis(), 0);
    out.Integer(millis ? ttl : (ttl + 500) / 1000);
  }
}

// EXPIRETIME and PEXPIRETIME: the absolute expiry.
void RespCommands::CmdExpireTime(RespSession& s, Args args, RespWriter& out) {
  const bool millis = args[0][0] == 'p' || args[0][0] == 'P';
  if (auto expires_at = ExpiryForReply(s, args[1], out)) {
    out.Integer(millis ? *expires_at : *expires_at / 1000);
  }
}

// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]. COUNT is how many keys one call looks
// at (1..10000), as in Redis: with a selective pattern a page can be empty though the cursor is
// not 0. The pattern's literal prefix narrows the listing; the rest is matched per key.
void RespCommands::CmdScan(RespSession& s, Args args, RespWriter& out) {
  uint64_t cursor = 0;
  {
    const std::string_view text = args[1];
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), cursor);
    if (ec != std::errc() || end != text.data() + text.size()) {
      ReplyError(out, "ERR invalid cursor");
      return;
    }
  }
  std::optional<std::string_view> match;
  int64_t count = kDefaultScanCount;
  std::optional<std::string> type;
  for (size_t i = 2; i < args.size(); i += 2) {
    const std::string opt = AsciiLower(args[i]);
    if (i + 1 >= args.size()) {
      ReplyError(out, "ERR syntax error");
      return;
    }
    if (opt == "match") {
      match = args[i + 1];
    } else if (opt == "count") {
      if (!ParseRespInteger(args[i + 1], &count)) {
        ReplyError(out, kNotInteger);
        return;
      }
      if (count < 1) {
        ReplyError(out, "ERR syntax error");
        return;
      }
    } else if (opt == "type") {
      type = AsciiLower(args[i + 1]);
    } else {
      ReplyError(out, "ERR syntax error");
      return;
    }
  }

  ScanPosition position;
  if (cursor == 0) {
    position.ns = s.ns;
    if (match) position.pattern.assign(*match);
  } else {
    auto taken = scan_cursors_.Take(cursor);
    if (!taken) {
      ReplyError(out, "ERR invalid cursor");
      return;
    }
    position = std::move(*taken);
  }

  auto reply = [&](uint64_t next, const std::vector<std::string>& keys) {
    out.ArrayHeader(2);
    char text[24];
    const auto end = std::to_chars(text, text + sizeof(text), next).ptr;
    out.Bulk(std::string_view(text, end - text));
    out.ArrayHeader(keys.size());
    for (const auto& k : keys) out.Bulk(std::string_view(k));
  };

  // Only strings exist, so any other type matches nothing.
  if (type && *type != "string") {
    reply(0, {});
    return;
  }
  const std::string& pattern = position.pattern;
  if (!pattern.empty() && GlobIsLiteral(pattern)) {
    // MATCH without metacharacters names one key: look it up instead of listing.
    const std::string key = GlobLiteralPrefix(pattern);
    std::vector<std::string> keys;
    if (KeyOk(key)) {
      auto head = store_->Head(position.ns, key);
      if (head) {
        keys.push_back(key);
      } else if (!head.error().Is(ErrorCode::kNotFound)) {
        ReplyStatus(out, head.error());
        return;
      }
    }
    reply(0, keys);
    return;
  }
  const bool match_all = pattern.empty() || pattern == "*";
  const std::string prefix = match_all ? std::string() : GlobLiteralPrefix(pattern);
  if (prefix.size() > config_.max_key_bytes) {  // no key can have it
    reply(0, {});
    return;
  }
  const size_t limit = static_cast<size_t>(std::min<int64_t>(count, kListPage));
  auto page = store_->List(position.ns, prefix, position.last_key, limit);
  if (!page) {
    ReplyStatus(out, page.error());
    return;
  }
  std::vector<std::string> keys;
  keys.reserve(page->entries.size());
  for (auto& entry : page->entries) {
    if (match_all || GlobMatch(pattern, entry.key)) keys.push_back(std::move(entry.key));
  }
  uint64_t next = 0;
  if (!page->next_start_after.empty()) {
    position.last_key = std::move(page->next_start_after);
    next = scan_cursors_.Add(std::move(position));
  }
  reply(next, keys);
}

void RespCommands::CmdKeys(RespSession& s, Args args, RespWriter& out) {
  const std::string_view pattern = args[1];
  const bool match_all = pattern == "*";
  const std::string prefix = match_all ? std::string() : GlobLiteralPrefix(pattern);
  std::vector<std::string> keys;
  if (prefix.size() <= config_.max_key_bytes) {
    std::string after;
    for (;;) {
      auto page = store_->List(s.ns, prefix, after, kListPage);
      if (!page) {
        ReplyStatus(out, page.error());
        return;
      }
      for (auto& entry : page->entries) {
        if (!match_all && !GlobMatch(pattern, entry.key)) continue;
        if (keys.size() == kMaxKeysMatches) {
          ReplyError(out, "ERR KEYS would return more than " + std::to_string(kMaxKeysMatches) +
                              " keys; use SCAN instead");
          return;
        }
        keys.push_back(std::move(entry.key));
      }
      if (page->next_start_after.empty()) break;
      after = std::move(page->next_start_after);
    }
  }
  out.ArrayHeader(keys.size());
  for (const auto& k : keys) out.Bulk(std::string_view(k));
}

void RespCommands::CmdDbSize(RespSession& s, Args, RespWriter& out) {
  size_t count = 0;
  std::string after;
  while (count <= kDbSizeExactLimit) {
    auto page = store_->List(s.ns, "", after, kListPage);
    if (!page) {
      ReplyStatus(out, page.error());
      return;
    }
    count += page->entries.size();
    if (page->next_start_after.empty()) {
      out.Integer(static_cast<int64_t>(count));
      return;
    }
    after = std::move(page->next_start_after);
  }
  const uint64_t estimate = store_->Stats().estimated_keys;
  out.Integer(static_cast<int64_t>(std::max<uint64_t>(count, estimate)));
}

}  // namespace edgeflow::api
