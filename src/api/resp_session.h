// RespSession: what the RESP front-end knows about one client connection (selected namespace,
// client name, ...) plus the commands of its pipeline that are held back to be run together.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kv/store.h"

namespace edgeflow::api {

// Commands held back by RespCommands::Submit() until the next Flush(). Holds views into the
// connection's read buffer, so the connection flushes before it reuses that buffer.
struct RespPendingGroup {
  enum class Kind { kNone, kWrites, kGets };
  // How to turn the results of a write command's ops into its reply.
  enum class ReplyKind {
    kSet,       // +OK, or nil if an NX/XX condition failed
    kSetNx,     // :1 / :0
    kOk,        // +OK (SETEX, PSETEX, MSET)
    kDelCount,  // number of keys deleted
  };
  struct WriteReply {
    ReplyKind kind;
    uint32_t first_op;
    uint32_t op_count;
  };

  Kind kind = Kind::kNone;
  std::vector<kv::WriteOp> ops;
  std::vector<WriteReply> write_replies;
  std::vector<std::string_view> get_keys;

  bool empty() const { return kind == Kind::kNone; }
  void Clear() {
    kind = Kind::kNone;
    ops.clear();
    write_replies.clear();
    get_keys.clear();
  }
};

struct RespSession {
  uint64_t client_id = 0;
  std::string ns;     // the selected namespace
  std::string name;   // CLIENT SETNAME
  std::string peer;   // "ip:port" of the client
  std::string local;  // "ip:port" of this end
  bool quit = false;  // QUIT was received: close once the replies are written
  RespPendingGroup pending;
};

}  // namespace edgeflow::api
