// RespClient: a blocking Redis-protocol client for tests, over hiredis, with a timeout on every
// call. Not thread-safe: use one client per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

struct redisContext;

namespace edgeflow::test_support {

struct RespReply {
  enum class Type { kString, kStatus, kError, kInteger, kNil, kArray };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  long long integer = 0;
  std::vector<RespReply> elements;

  bool is_error() const { return type == Type::kError; }
  bool is_nil() const { return type == Type::kNil; }
  bool IsStatus(const std::string& text) const { return type == Type::kStatus && str == text; }
  // A readable rendering, for failure messages.
  std::string ToString() const;
};

class RespClient {
 public:
  static Result<std::unique_ptr<RespClient>> Connect(
      const std::string& host, uint16_t port,
      std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~RespClient();
  RespClient(const RespClient&) = delete;
  RespClient& operator=(const RespClient&) = delete;

  // Sends one command (binary-safe arguments) and waits for its reply. An error reply from the
  // server is a reply of type kError; a broken connection or a timeout is an error Status (and
  // the client is unusable afterwards).
  Result<RespReply> Command(const std::vector<std::string>& args);

 private:
  explicit RespClient(redisContext* context) : context_(context) {}
  redisContext* context_;
};

}  // namespace edgeflow::test_support
