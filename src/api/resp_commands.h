// RespCommands: the Redis commands of the RESP front-end, run against kv::Store.
//
// Commands are matched case-insensitively and answer with the reply types Redis 7 uses; see the
// top of resp_commands.cc for the list and for how Redis databases map to EKV namespaces.
//
// Pipelining: Submit() may hold a command back instead of running it, to run several together:
// consecutive writes (SET without GET, SETEX, PSETEX, SETNX, DEL, UNLINK, MSET) become one
// Store::Apply() (one commit), consecutive GETs one Store::MultiGet(). Any other command flushes
// the held-back ones first, so replies stay in order and a read sees every earlier write of the
// same client. The caller calls Flush() before sending the replies.
//
// Thread-safety: one instance serves all connections; Submit()/Flush() may run concurrently for
// different sessions. A session is used by one thread at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "api/resp_scan_cursors.h"
#include "api/resp_server.h"
#include "api/resp_session.h"
#include "api/resp_writer.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "kv/store.h"

namespace edgeflow::api {

// Command names and options are ASCII and case-insensitive.
std::string AsciiLower(std::string_view text);

class RespCommands {
 public:
  using Args = std::span<const std::string_view>;

  // `store` and `metrics` must outlive this object.
  RespCommands(RespServerConfig config, kv::Store* store, metrics::Registry* metrics);

  // Runs `args` (non-empty; args[0] is the command name) or holds it back; its reply, when it
  // comes, is appended to `out` after the replies of all earlier commands of the session.
  // REQUIRES: the bytes `args` points to stay valid until the next Flush() of this session.
  void Submit(RespSession* session, Args args, RespWriter* out);
  // Runs the held-back commands of `session` and appends their replies.
  void Flush(RespSession* session, RespWriter* out);

  // The asynchronous alternative to Flush() for held-back writes: the caller commits
  // PendingWrites() without blocking (see LoopCommitter), then hands the results to
  // FinishWrites(), which appends the replies. PendingWrites() is empty if the session holds back
  // no writes. WouldFlushWrites() tells whether Submit(args) would first commit the held-back
  // writes itself (blocking), so that the caller can commit them asynchronously before.
  std::span<const kv::WriteOp> PendingWrites(const RespSession& session) const;
  bool WouldFlushWrites(const RespSession& session, Args args) const;
  void FinishWrites(RespSession* session, RespWriter* out,
                    Result<std::vector<Result<kv::WriteResult>>> results);
  // Counts asynchronous commits in flight, so that the server can wait for them before its
  // executor goes away (their completions are posted to it).
  void AsyncCommitStarted() { async_commits_.fetch_add(1, std::memory_order_relaxed); }
  void AsyncCommitFinished() { async_commits_.fetch_sub(1, std::memory_order_release); }
  int64_t async_commits() const { return async_commits_.load(std::memory_order_acquire); }

  // Replies "-ERR <message>" to a request that could not be parsed; the caller then closes.
  void ReplyProtocolError(RespWriter* out, std::string_view message);

  // Connection accounting (INFO, metrics); called by the server.
  uint64_t ConnectionOpened();  // returns the new client id
  void ConnectionClosed();
  void ConnectionRejected();
  size_t connections() const { return connections_->load(std::memory_order_relaxed); }
  void set_bound_port(uint16_t port) { bound_port_.store(port, std::memory_order_relaxed); }

  const RespServerConfig& config() const { return config_; }

 private:
  using Handler = void (RespCommands::*)(RespSession&, Args, RespWriter&);
  // Tries to hold a write command back; false if it must run now (e.g. it has a syntax error).
  using Deferrer = bool (RespCommands::*)(RespSession&, Args);

  struct Spec {
    std::string name;  // lower case, also the metric label
    int arity;         // Redis' convention: n = exactly n words, -n = at least n
    Handler handler;
    Deferrer deferrer = nullptr;
    bool is_get = false;  // consecutive ones are grouped into one MultiGet
    bool write = false;   // for COMMAND INFO flags
    metrics::Counter* calls = nullptr;
  };
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  // Parsed SET options (also used by SETEX & co.).
  struct SetRequest {
    kv::PutOptions put;
    bool get = false;  // reply the old value
  };

  void AddCommand(std::string name, int arity, Handler handler, Deferrer deferrer = nullptr,
                  bool write = false);
  const Spec* Find(std::string_view name) const;
  void FlushWrites(RespSession& s, RespWriter& out);
  void ReplyToWrites(RespSession& s, RespWriter& out,
                     const Result<std::vector<Result<kv::WriteResult>>>& results);
  void FlushGets(RespSession& s, RespWriter& out);
  // A read value as a bulk string, nil if the key does not exist, else the error.
  void ReplyValue(RespWriter& out, Result<kv::Item> item);
  // Redis' ":1" (done) / ":0" (the key is missing or the condition failed) / error reply.
  void ReplyFlag(RespWriter& out, const Result<kv::WriteResult>& result);

  // Replies.
  void ReplyError(RespWriter& out, std::string_view message);  // message with its code: "ERR x"
  void ReplyStatus(RespWriter& out, const Status& status);     // "ERR <status message>"
  void ReplyUnknownCommand(RespWriter& out, Args args);
  void ReplyArity(RespWriter& out, std::string_view name);
  // Validation with Redis-like messages; false after writing the error.
  bool CheckKey(RespWriter& out, std::string_view key);
  bool CheckValue(RespWriter& out, std::string_view value);
  bool KeyOk(std::string_view key) const;
  static bool KeyCannotExist(const Status& status);
  bool ValueOk(std::string_view value) const;
  // Parses SET's options from args[first..]; on failure returns the error reply text.
  std::string ParseSetOptions(Args args, size_t first, std::string_view command,
                              SetRequest* request) const;
  int64_t NowMillis() const { return clock_->NowMillis(); }

  // Deferrers (resp_string_commands.cc, resp_key_commands.cc).
  bool DeferSet(RespSession& s, Args args);
  bool DeferSetEx(RespSession& s, Args args);
  bool DeferSetNx(RespSession& s, Args args);
  bool DeferMset(RespSession& s, Args args);
  static void AppendPairOps(const RespSession& s, Args args, kv::PutCondition condition,
                            std::vector<kv::WriteOp>* ops);
  bool DeferDel(RespSession& s, Args args);

  // String commands (resp_string_commands.cc).
  void CmdGet(RespSession& s, Args args, RespWriter& out);
  void CmdSet(RespSession& s, Args args, RespWriter& out);
  void CmdSetEx(RespSession& s, Args args, RespWriter& out);
  void CmdSetNx(RespSession& s, Args args, RespWriter& out);
  void CmdGetSet(RespSession& s, Args args, RespWriter& out);
  void CmdGetDel(RespSession& s, Args args, RespWriter& out);
  void CmdMget(RespSession& s, Args args, RespWriter& out);
  void CmdMset(RespSession& s, Args args, RespWriter& out);
  void CmdMsetNx(RespSession& s, Args args, RespWriter& out);
  void CmdStrlen(RespSession& s, Args args, RespWriter& out);
  void CmdAppend(RespSession& s, Args args, RespWriter& out);
  void CmdIncrBy(RespSession& s, Args args, RespWriter& out);
  // SET with the GET option, and GETSET: read-modify-write with a version check.
  void SetAndGetOld(RespSession& s, std::string_view key, std::string_view value,
                    const SetRequest& request, RespWriter& out);

  // Key-space commands (resp_key_commands.cc).
  void CmdDel(RespSession& s, Args args, RespWriter& out);
  void CmdExists(RespSession& s, Args args, RespWriter& out);
  void CmdType(RespSession& s, Args args, RespWriter& out);
  void CmdExpire(RespSession& s, Args args, RespWriter& out);
  void CmdPersist(RespSession& s, Args args, RespWriter& out);
  void CmdTtl(RespSession& s, Args args, RespWriter& out);
  std::optional<int64_t> ExpiryForReply(RespSession& s, std::string_view key, RespWriter& out);
  std::optional<kv::ItemMeta> HeadOrReply(RespSession& s, std::string_view key, int64_t missing,
                                          RespWriter& out);
  void CmdExpireTime(RespSession& s, Args args, RespWriter& out);
  void CmdScan(RespSession& s, Args args, RespWriter& out);
  void CmdKeys(RespSession& s, Args args, RespWriter& out);
  void CmdDbSize(RespSession& s, Args args, RespWriter& out);

  // Connection and server commands (resp_server_commands.cc).
  void CmdPing(RespSession& s, Args args, RespWriter& out);
  void CmdEcho(RespSession& s, Args args, RespWriter& out);
  void CmdQuit(RespSession& s, Args args, RespWriter& out);
  void CmdSelect(RespSession& s, Args args, RespWriter& out);
  void CmdAuth(RespSession& s, Args args, RespWriter& out);
  void CmdHello(RespSession& s, Args args, RespWriter& out);
  void CmdClient(RespSession& s, Args args, RespWriter& out);
  void CmdCommand(RespSession& s, Args args, RespWriter& out);
  void CmdConfig(RespSession& s, Args args, RespWriter& out);
  void CmdInfo(RespSession& s, Args args, RespWriter& out);
  void CmdTime(RespSession& s, Args args, RespWriter& out);
  void CmdFlush(RespSession& s, Args args, RespWriter& out);
  void WriteCommandInfo(const Spec& spec, RespWriter& out) const;

  const RespServerConfig config_;
  kv::Store* const store_;
  const Clock* const clock_;
  const int64_t started_ms_;
  std::unordered_map<std::string, Spec, NameHash, std::equal_to<>> commands_;
  metrics::Counter* other_calls_;
  metrics::Counter* errors_;
  metrics::Counter* connections_total_;
  metrics::Counter* connections_rejected_;
  // Shared with the metrics registry's gauge callback, which may outlive this object.
  std::shared_ptr<std::atomic<int64_t>> connections_;
  std::atomic<uint64_t> next_client_id_{1};
  std::atomic<int64_t> async_commits_{0};
  std::atomic<uint16_t> bound_port_{0};
  RespScanCursors scan_cursors_;
};

}  // namespace edgeflow::api
