#include "support/resp_client.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

namespace edgeflow::test_support {
namespace {

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

RespReply Convert(const redisReply* r) {
  RespReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RespReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RespReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RespReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RespReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RespReply::Type::kArray;
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      out.type = RespReply::Type::kNil;
      break;
  }
  return out;
}

Result<RespReply> TakeReply(redisContext* c, void* raw) {
  if (raw == nullptr) {
    return Error(Status::Unavailable(std::string("RESP connection failed: ") +
                                     (c->errstr[0] != '\0' ? c->errstr : "no reply")));
  }
  auto* reply = static_cast<redisReply*>(raw);
  RespReply out = Convert(reply);
  freeReplyObject(reply);
  return out;
}

}  // namespace

std::string RespReply::ToString() const {
  switch (type) {
    case Type::kString:
      return str.size() > 200
                 ? "\"" + str.substr(0, 200) + "...\" (" + std::to_string(str.size()) + " bytes)"
                 : "\"" + str + "\"";
    case Type::kStatus:
      return "+" + str;
    case Type::kError:
      return "-" + str;
    case Type::kInteger:
      return "(integer) " + std::to_string(integer);
    case Type::kNil:
      return "(nil)";
    case Type::kArray: {
      std::string text = "[";
      for (size_t i = 0; i < elements.size(); ++i) {
        if (i > 0) text += ", ";
        text += elements[i].ToString();
      }
      return text + "]";
    }
  }
  return "?";
}

Result<std::unique_ptr<RespClient>> RespClient::Connect(const std::string& host, uint16_t port,
                                                        std::chrono::milliseconds timeout) {
  redisContext* c = redisConnectWithTimeout(host.c_str(), port, ToTimeval(timeout));
  if (c == nullptr) return Error(Status::Unavailable("cannot allocate a redis context"));
  if (c->err != 0) {
    std::string message = std::string("cannot connect to RESP ") + host + ":" +
                          std::to_string(port) + ": " + c->errstr;
    redisFree(c);
    return Error(Status::Unavailable(message));
  }
  redisSetTimeout(c, ToTimeval(timeout));
  return std::unique_ptr<RespClient>(new RespClient(c));
}

RespClient::~RespClient() { redisFree(context_); }

Result<RespReply> RespClient::Command(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  void* reply =
      redisCommandArgv(context_, static_cast<int>(args.size()), argv.data(), lengths.data());
  return TakeReply(context_, reply);
}

}  // namespace edgeflow::test_support
