// Tests of the RESP front-end: a real RespServer on a free loopback port over a real kv::Store in
// a per-test directory, driven over raw TCP (a small blocking RESP client below) and through
// hiredis. Time is a ManualClock shared by the store and the server, so TTLs are tested without
// sleeping.
#include "api/resp_server.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "support/temp_dir.h"

namespace edgeflow::api {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr int64_t kStart = 1'700'000'000'000;
constexpr size_t kMaxValue = 1 << 20;
constexpr size_t kMaxKey = 256;
constexpr size_t kMaxArgs = 5000;
constexpr size_t kMaxConnections = 16;

// One decoded reply.
struct Reply {
  char type = 0;  // '+', '-', ':', '$', '*'; 0 when the connection closed
  bool nil = false;
  std::string str;
  int64_t integer = 0;
  std::vector<Reply> elements;

  // "+OK", "-ERR x", ":3", "$value", "$nil", "*nil", "[a, b]" (elements rendered the same way).
  std::string Text() const {
    switch (type) {
      case '+':
      case '-':
        return std::string(1, type) + str;
      case ':':
        return ":" + std::to_string(integer);
      case '$':
        return nil ? "$nil" : "$" + str;
      case '*': {
        if (nil) return "*nil";
        std::string s = "[";
        for (size_t i = 0; i < elements.size(); ++i) {
          if (i > 0) s += ", ";
          s += elements[i].Text();
        }
        return s + "]";
      }
      default:
        return "<closed>";
    }
  }
};

std::string Encode(const std::vector<std::string>& args) {
  std::string s = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return s;
}

// A blocking RESP client over a raw socket, with a receive timeout so that a missing reply fails
// the test instead of hanging it.
class RawClient {
 public:
  explicit RawClient(uint16_t port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval tv{10, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }

  void Send(std::string_view bytes) {
    boost::system::error_code ec;
    asio::write(socket_, asio::buffer(bytes.data(), bytes.size()), ec);
  }

  Reply Call(const std::vector<std::string>& args) {
    Send(Encode(args));
    return Read();
  }

  // Reads one reply; type 0 if the connection closed (or timed out) first.
  Reply Read() {
    Reply r;
    std::string line;
    if (!ReadLine(&line) || line.empty()) return r;
    const char type = line[0];
    const std::string rest = line.substr(1);
    switch (type) {
      case '+':
      case '-':
        r.str = rest;
        break;
      case ':':
        r.integer = std::stoll(rest);
        break;
      case '$': {
        const int64_t len = std::stoll(rest);
        if (len < 0) {
          r.nil = true;
          break;
        }
        if (!ReadBytes(static_cast<size_t>(len) + 2, &r.str)) return Reply{};
        r.str.resize(static_cast<size_t>(len));
        break;
      }
      case '*': {
        const int64_t n = std::stoll(rest);
        if (n < 0) {
          r.nil = true;
          break;
        }
        for (int64_t i = 0; i < n; ++i) {
          Reply e = Read();
          if (e.type == 0) return Reply{};
          r.elements.push_back(std::move(e));
        }
        break;
      }
      default:
        return Reply{};
    }
    r.type = type;
    return r;
  }

  // True if the server closed the connection (reads EOF within the timeout).
  bool Closed() {
    char c;
    boost::system::error_code ec;
    while (buffered_.empty()) {
      socket_.read_some(asio::buffer(&c, 1), ec);
      if (ec) return ec == asio::error::eof || ec == asio::error::connection_reset;
      buffered_.push_back(c);
    }
    return false;
  }

  void Close() {
    boost::system::error_code ec;
    socket_.close(ec);
  }

  // Tells the server that nothing more is coming.
  void ShutdownSend() {
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
  }

 private:
  bool Fill() {
    char chunk[65536];
    boost::system::error_code ec;
    const size_t n = socket_.read_some(asio::buffer(chunk), ec);
    if (ec) return false;
    buffered_.append(chunk, n);
    return true;
  }
  bool ReadLine(std::string* line) {
    size_t pos;
    while ((pos = buffered_.find("\r\n")) == std::string::npos) {
      if (!Fill()) return false;
    }
    *line = buffered_.substr(0, pos);
    buffered_.erase(0, pos + 2);
    return true;
  }
  bool ReadBytes(size_t n, std::string* out) {
    while (buffered_.size() < n) {
      if (!Fill()) return false;
    }
    *out = buffered_.substr(0, n);
    buffered_.erase(0, n);
    return true;
  }

  asio::io_context io_;
  tcp::socket socket_;
  std::string buffered_;
};

struct RedisContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct RedisReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using RedisContextPtr = std::unique_ptr<redisContext, RedisContextDeleter>;
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyDeleter>;

class RespServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kv::StoreOptions options;
    options.dir = dir_.path() / "kv";
    options.clock = &clock_;
    options.max_key_bytes = kMaxKey;
    options.max_value_bytes = kMaxValue;
    options.block_cache_bytes = 8 << 20;
    options.write_buffer_bytes = 4 << 20;
    auto opened = kv::Store::Open(std::move(options));
    ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
    store_ = std::move(*opened);
    StartServer(Config());
  }

  void TearDown() override {
    if (server_) server_->Stop();
    server_.reset();
    store_.reset();
  }

  RespServerConfig Config() {
    RespServerConfig config;
    config.listen = {"127.0.0.1", 0};
    config.io_threads = 2;
    config.max_key_bytes = kMaxKey;
    config.max_value_bytes = kMaxValue;
    config.max_args = kMaxArgs;
    config.max_inline_bytes = 4096;
    config.max_command_bytes = 8 << 20;
    config.max_connections = kMaxConnections;
    config.server_version = "9.9.9-test";
    config.clock = &clock_;
    return config;
  }

  void StartServer(RespServerConfig config) {
    if (server_) server_->Stop();
    server_.reset();
    auto created = RespServer::Create(std::move(config), store_.get(), &registry_);
    ASSERT_TRUE(created.has_value()) << created.error().ToString();
    server_ = std::move(*created);
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    port_ = server_->bound_address().port;
    ASSERT_NE(port_, 0);
  }

  // One command on a fresh connection.
  std::string Once(const std::vector<std::string>& args) {
    RawClient c(port_);
    return c.Call(args).Text();
  }

  RedisContextPtr Hiredis() {
    timeval tv{10, 0};
    RedisContextPtr ctx(redisConnectWithTimeout("127.0.0.1", port_, tv));
    EXPECT_TRUE(ctx != nullptr && ctx->err == 0) << (ctx ? ctx->errstr : "no context");
    if (ctx) redisSetTimeout(ctx.get(), tv);
    return ctx;
  }

  test_support::TempDir dir_;
  ManualClock clock_{kStart};
  metrics::Registry registry_;
  std::unique_ptr<kv::Store> store_;
  std::unique_ptr<RespServer> server_;
  uint16_t port_ = 0;
};

// ------------------------------------------------------------------ basics

TEST_F(RespServerTest, PingEchoAndInline) {
  RawClient c(port_);
  EXPECT_EQ(c.Call({"PING"}).Text(), "+PONG");
  EXPECT_EQ(c.Call({"ping", "hello"}).Text(), "$hello");
  EXPECT_EQ(c.Call({"PING", "a", "b"}).Text(), "-ERR wrong number of arguments for 'ping' command");
  EXPECT_EQ(c.Call({"ECHO", std::string("a\0b", 3)}).Text(), std::string("$a\0b", 4));
  c.Send("PING\r\n");
  EXPECT_EQ(c.Read().Text(), "+PONG");
  c.Send("set inline \"two words\"\r\nGET inline\n\r\n");
  EXPECT_EQ(c.Read().Text(), "+OK");
  EXPECT_EQ(c.Read().Text(), "$two words");
  c.Send("*0\r\n*-1\r\nPING\r\n");  // empty commands get no reply, as in Redis
  EXPECT_EQ(c.Read().Text(), "+PONG");
}

TEST_F(RespServerTest, UnknownCommandAndArity) {
  RawClient c(port_);
  EXPECT_EQ(c.Call({"foo", "a", "b"}).Text(),
            "-ERR unknown command 'foo', with args beginning with: 'a' 'b' ");
  EXPECT_EQ(c.Call({"FOO"}).Text(), "-ERR unknown command 'FOO', with args beginning with: ");
  // Long arguments are cut like Redis does.
  const Reply long_args = c.Call({"nope", std::string(300, 'x'), "y"});
  EXPECT_EQ(long_args.type, '-');
  EXPECT_LT(long_args.str.size(), 330u);
  EXPECT_EQ(c.Call({"GET"}).Text(), "-ERR wrong number of arguments for 'get' command");
  EXPECT_EQ(c.Call({"get", "a", "b"}).Text(), "-ERR wrong number of arguments for 'get' command");
  EXPECT_EQ(c.Call({"SET", "k"}).Text(), "-ERR wrong number of arguments for 'set' command");
  EXPECT_EQ(c.Call({"MSET", "a", "1", "b"}).Text(),
            "-ERR wrong number of arguments for 'mset' command");
  EXPECT_EQ(c.Call({"PING"}).Text(), "+PONG");  // errors keep the connection open
}

// ------------------------------------------------------------------ strings

TEST_F(RespServerTest, SetGetAndOptions) {
  RawClient c(port_);
  EXPECT_EQ(c.Call({"GET", "k"}).Text(), "$nil");
  EXPECT_EQ(c.Call({"SET", "k", "v1"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"get", "k"}).Text(), "$v1");
  EXPECT_EQ(c.Call({"SET", "k", "v2", "NX"}).Text(), "$nil");
  EXPECT_EQ(c.Call({"SET", "k", "v2", "XX"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"SET", "absent", "v", "XX"}).Text(), "$nil");
  EXPECT_EQ(c.Call({"SET", "k", "v3", "GET"}).Text(), "$v2");
  EXPECT_EQ(c.Call({"SET", "new", "n1", "get"}).Text(), "$nil");
  EXPECT_EQ(c.Call({"GET", "new"}).Text(), "$n1");
  EXPECT_EQ(c.Call({"SET", "k", "v4", "NX", "GET"}).Text(), "$v3");  // exists: not set
  EXPECT_EQ(c.Call({"GET", "k"}).Text(), "$v3");
  // Binary-safe keys and values.
  const std::string key("b\0\r\nk", 5);
  const std::string value("\xff\0\r\n$1\r\n", 8);
  EXPECT_EQ(c.Call({"SET", key, value}).Text(), "+OK");
  EXPECT_EQ(c.Call({"GET", key}).str, value);
}

TEST_F(RespServerTest, SetErrors) {
  RawClient c(port_);
  const std::string not_int = "-ERR value is not an integer or out of range";
  const std::string invalid = "-ERR invalid expire time in 'set' command";
  EXPECT_EQ(c.Call({"SET", "k", "v", "EX", "abc"}).Text(), not_int);
  EXPECT_EQ(c.Call({"SET", "k", "v", "EX", "0"}).Text(), invalid);
  EXPECT_EQ(c.Call({"SET", "k", "v", "PX", "-5"}).Text(), invalid);
  EXPECT_EQ(c.Call({"SET", "k", "v", "EX", "9223372036854775807"}).Text(), invalid);
  EXPECT_EQ(c.Call({"SET", "k", "v", "PX", "99999999999999999999"}).Text(), not_int);
  EXPECT_EQ(c.Call({"SET", "k", "v", "EX"}).Text(), "-ERR syntax error");
  EXPECT_EQ(c.Call({"SET", "k", "v", "NX", "XX"}).Text(), "-ERR syntax error");
  EXPECT_EQ(c.Call({"SET", "k", "v", "EX", "10", "PX", "100"}).Text(), "-ERR syntax error");
  EXPECT_EQ(c.Call({"SET", "k", "v", "EX", "10", "KEEPTTL"}).Text(), "-ERR syntax error");
  EXPECT_EQ(c.Call({"SET", "k", "v", "BOGUS"}).Text(), "-ERR syntax error");
  EXPECT_EQ(c.Call({"SET", "", "v"}).Text(), "-ERR key must not be empty");
  EXPECT_EQ(c.Call({"SET", std::string(kMaxKey + 1, 'k'), "v"}).Text(),
            "-ERR key too large (257 bytes > max 256)");
  EXPECT_EQ(c.Call({"SET", "k", std::string(kMaxValue + 1, 'v')}).Text(),
            "-ERR value too large (1048577 bytes > max 1048576)");
  EXPECT_EQ(c.Call({"GET", std::string(kMaxKey + 1, 'k')}).Text(),
            "-ERR key too large (257 bytes > max 256)");
  EXPECT_EQ(c.Call({"EXISTS", "k"}).Text(), ":0");  // nothing above was written
}

TEST_F(RespServerTest, StringCommands) {
  RawClient c(port_);
  EXPECT_EQ(c.Call({"SETNX", "a", "1"}).Text(), ":1");
  EXPECT_EQ(c.Call({"SETNX", "a", "2"}).Text(), ":0");
  EXPECT_EQ(c.Call({"GETSET", "a", "3"}).Text(), "$1");
  EXPECT_EQ(c.Call({"GETSET", "fresh", "x"}).Text(), "$nil");
  EXPECT_EQ(c.Call({"GETDEL", "a"}).Text(), "$3");
  EXPECT_EQ(c.Call({"GETDEL", "a"}).Text(), "$nil");
  EXPECT_EQ(c.Call({"MSET", "m1", "one", "m2", "two"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"MGET", "m1", "nope", "m2", ""}).Text(), "[$one, $nil, $two, $nil]");
  EXPECT_EQ(c.Call({"MSETNX", "m2", "x", "m3", "y"}).Text(), ":0");
  EXPECT_EQ(c.Call({"EXISTS", "m3"}).Text(), ":0");
  EXPECT_EQ(c.Call({"MSETNX", "m3", "x", "m4", "y"}).Text(), ":1");
  EXPECT_EQ(c.Call({"MGET", "m3", "m4"}).Text(), "[$x, $y]");
  EXPECT_EQ(c.Call({"STRLEN", "m1"}).Text(), ":3");
  EXPECT_EQ(c.Call({"STRLEN", "nope"}).Text(), ":0");
  EXPECT_EQ(c.Call({"APPEND", "ap", "ab"}).Text(), ":2");
  EXPECT_EQ(c.Call({"APPEND", "ap", "cde"}).Text(), ":5");
  EXPECT_EQ(c.Call({"GET", "ap"}).Text(), "$abcde");
  EXPECT_EQ(c.Call({"TYPE", "ap"}).Text(), "+string");
  EXPECT_EQ(c.Call({"TYPE", "nope"}).Text(), "+none");
}

TEST_F(RespServerTest, Counters) {
  RawClient c(port_);
  EXPECT_EQ(c.Call({"INCR", "n"}).Text(), ":1");
  EXPECT_EQ(c.Call({"INCRBY", "n", "41"}).Text(), ":42");
  EXPECT_EQ(c.Call({"DECR", "n"}).Text(), ":41");
  EXPECT_EQ(c.Call({"DECRBY", "n", "-9"}).Text(), ":50");
  EXPECT_EQ(c.Call({"GET", "n"}).Text(), "$50");
  EXPECT_EQ(c.Call({"INCRBY", "n", "x"}).Text(), "-ERR value is not an integer or out of range");
  EXPECT_EQ(c.Call({"SET", "s", "abc"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"INCR", "s"}).Text(), "-ERR value is not an integer or out of range");
  EXPECT_EQ(c.Call({"SET", "big", "9223372036854775807"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"INCR", "big"}).Text(), "-ERR increment or decrement would overflow");
  EXPECT_EQ(c.Call({"DECRBY", "n", "-9223372036854775808"}).Text(),
            "-ERR decrement would overflow");
  // INCR keeps the TTL, like Redis.
  EXPECT_EQ(c.Call({"SET", "t", "1", "EX", "100"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"INCR", "t"}).Text(), ":2");
  EXPECT_EQ(c.Call({"TTL", "t"}).Text(), ":100");
}

TEST_F(RespServerTest, ConcurrentIncrementsAreNotLost) {
  constexpr int kThreads = 6;
  constexpr int kEach = 100;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      RawClient c(port_);
      for (int i = 0; i < kEach; ++i) {
        if (c.Call({"INCR", "shared"}).type != ':') ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Once({"GET", "shared"}), "$" + std::to_string(kThreads * kEach));
}

// ------------------------------------------------------------------ keys

TEST_F(RespServerTest, DelExistsUnlink) {
  RawClient c(port_);
  EXPECT_EQ(c.Call({"MSET", "a", "1", "b", "2", "c", "3"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"EXISTS", "a", "a", "b", "nope", ""}).Text(), ":3");  // repeats count
  EXPECT_EQ(c.Call({"DEL", "a", "a", "nope"}).Text(), ":1");
  EXPECT_EQ(c.Call({"UNLINK", "b", "c", ""}).Text(), ":2");
  EXPECT_EQ(c.Call({"EXISTS", "a", "b", "c"}).Text(), ":0");
  EXPECT_EQ(c.Call({"DEL"}).Text(), "-ERR wrong number of arguments for 'del' command");
}

TEST_F(RespServerTest, TtlExpireAndPersist) {
  RawClient c(port_);
  EXPECT_EQ(c.Call({"TTL", "k"}).Text(), ":-2");
  EXPECT_EQ(c.Call({"PTTL", "k"}).Text(), ":-2");
  EXPECT_EQ(c.Call({"EXPIRE", "k", "10"}).Text(), ":0");
  EXPECT_EQ(c.Call({"SET", "k", "v"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"TTL", "k"}).Text(), ":-1");
  EXPECT_EQ(c.Call({"EXPIRETIME", "k"}).Text(), ":-1");
  EXPECT_EQ(c.Call({"PERSIST", "k"}).Text(), ":0");
  EXPECT_EQ(c.Call({"EXPIRE", "k", "100"}).Text(), ":1");
  EXPECT_EQ(c.Call({"TTL", "k"}).Text(), ":100");
  EXPECT_EQ(c.Call({"PTTL", "k"}).Text(), ":100000");
  EXPECT_EQ(c.Call({"EXPIRETIME", "k"}).Text(), ":" + std::to_string(kStart / 1000 + 100));
  EXPECT_EQ(c.Call({"PEXPIRETIME", "k"}).Text(), ":" + std::to_string(kStart + 100000));
  clock_.Advance(std::chrono::milliseconds(30'400));
  EXPECT_EQ(c.Call({"TTL", "k"}).Text(), ":70");  // 69.6 s rounds like Redis
  EXPECT_EQ(c.Call({"PTTL", "k"}).Text(), ":69600");

  // NX / XX / GT / LT.
  EXPECT_EQ(c.Call({"EXPIRE", "k", "500", "NX"}).Text(), ":0");
  EXPECT_EQ(c.Call({"EXPIRE", "k", "50", "GT"}).Text(), ":0");
  EXPECT_EQ(c.Call({"EXPIRE", "k", "500", "GT"}).Text(), ":1");
  EXPECT_EQ(c.Call({"EXPIRE", "k", "600", "LT"}).Text(), ":0");
  EXPECT_EQ(c.Call({"PEXPIRE", "k", "200000", "lt"}).Text(), ":1");
  EXPECT_EQ(c.Call({"TTL", "k"}).Text(), ":200");
  EXPECT_EQ(c.Call({"EXPIRE", "k", "5", "NX", "XX"}).Text(),
            "-ERR NX and XX, GT or LT options at the same time are not compatible");
  EXPECT_EQ(c.Call({"EXPIRE", "k", "5", "GT", "LT"}).Text(),
            "-ERR GT and LT options at the same time are not compatible");
  EXPECT_EQ(c.Call({"EXPIRE", "k", "5", "SOON"}).Text(), "-ERR Unsupported option SOON");
  EXPECT_EQ(c.Call({"EXPIRE", "k", "x"}).Text(), "-ERR value is not an integer or out of range");
  EXPECT_EQ(c.Call({"EXPIRE", "k", "9223372036854775807"}).Text(),
            "-ERR invalid expire time in 'expire' command");

  // PERSIST, then XX fails and NX works.
  EXPECT_EQ(c.Call({"PERSIST", "k"}).Text(), ":1");
  EXPECT_EQ(c.Call({"TTL", "k"}).Text(), ":-1");
  EXPECT_EQ(c.Call({"EXPIRE", "k", "5", "XX"}).Text(), ":0");
  EXPECT_EQ(c.Call({"EXPIRE", "k", "5", "GT"}).Text(), ":0");  // no expiry counts as infinite
  EXPECT_EQ(c.Call({"EXPIRE", "k", "5", "NX"}).Text(), ":1");

  // Absolute forms.
  const int64_t now = clock_.NowMillis();
  EXPECT_EQ(c.Call({"EXPIREAT", "k", std::to_string(now / 1000 + 1000)}).Text(), ":1");
  EXPECT_EQ(c.Call({"PEXPIREAT", "k", std::to_string(now + 2000)}).Text(), ":1");
  EXPECT_EQ(c.Call({"PTTL", "k"}).Text(), ":2000");

  // The key goes away once its time has passed.
  clock_.Advance(std::chrono::milliseconds(2001));
  EXPECT_EQ(c.Call({"GET", "k"}).Text(), "$nil");
  EXPECT_EQ(c.Call({"TTL", "k"}).Text(), ":-2");

  // A time in the past deletes at once.
  EXPECT_EQ(c.Call({"SET", "gone", "v"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"EXPIRE", "gone", "-1"}).Text(), ":1");
  EXPECT_EQ(c.Call({"EXISTS", "gone"}).Text(), ":0");
}

TEST_F(RespServerTest, SetExpiryOptions) {
  RawClient c(port_);
  EXPECT_EQ(c.Call({"SET", "a", "v", "EX", "10"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"TTL", "a"}).Text(), ":10");
  EXPECT_EQ(c.Call({"SET", "a", "v2", "KEEPTTL"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"TTL", "a"}).Text(), ":10");
  EXPECT_EQ(c.Call({"SET", "a", "v3"}).Text(), "+OK");  // a plain SET clears it
  EXPECT_EQ(c.Call({"TTL", "a"}).Text(), ":-1");
  EXPECT_EQ(c.Call({"SET", "b", "v", "PX", "1500"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"PTTL", "b"}).Text(), ":1500");
  EXPECT_EQ(c.Call({"SET", "c", "v", "EXAT", std::to_string(kStart / 1000 + 60)}).Text(), "+OK");
  EXPECT_EQ(c.Call({"TTL", "c"}).Text(), ":60");
  EXPECT_EQ(c.Call({"SET", "d", "v", "PXAT", std::to_string(kStart + 750)}).Text(), "+OK");
  EXPECT_EQ(c.Call({"PTTL", "d"}).Text(), ":750");
  EXPECT_EQ(c.Call({"SETEX", "e", "20", "v"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"TTL", "e"}).Text(), ":20");
  EXPECT_EQ(c.Call({"PSETEX", "f", "2500", "v"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"PTTL", "f"}).Text(), ":2500");
  EXPECT_EQ(c.Call({"SETEX", "g", "0", "v"}).Text(), "-ERR invalid expire time in 'setex' command");
  EXPECT_EQ(c.Call({"PSETEX", "g", "x", "v"}).Text(),
            "-ERR value is not an integer or out of range");
  clock_.Advance(std::chrono::milliseconds(1600));
  EXPECT_EQ(c.Call({"MGET", "b", "d", "f"}).Text(), "[$nil, $nil, $v]");
}

TEST_F(RespServerTest, SelectIsolatesNamespaces) {
  RawClient c(port_);
  RawClient other(port_);
  EXPECT_EQ(c.Call({"SET", "k", "in-default"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"SELECT", "1"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"GET", "k"}).Text(), "$nil");
  EXPECT_EQ(c.Call({"SET", "k", "in-db1"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"SELECT", "sensors"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"SET", "k", "in-sensors"}).Text(), "+OK");
  // Each connection starts in the default namespace, whatever others selected.
  EXPECT_EQ(other.Call({"GET", "k"}).Text(), "$in-default");
  EXPECT_EQ(other.Call({"SELECT", "db1"}).Text(), "+OK");  // "db1" is what SELECT 1 means
  EXPECT_EQ(other.Call({"GET", "k"}).Text(), "$in-db1");
  EXPECT_EQ(c.Call({"SELECT", "0"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"GET", "k"}).Text(), "$in-default");
  EXPECT_EQ(c.Call({"DBSIZE"}).Text(), ":1");
  EXPECT_EQ(c.Call({"SELECT", "-1"}).Text(), "-ERR DB index is out of range");
  const Reply bad = c.Call({"SELECT", "no/slashes"});
  EXPECT_EQ(bad.type, '-');
  EXPECT_TRUE(bad.str.starts_with("ERR invalid DB index or namespace name")) << bad.str;
  EXPECT_EQ(c.Call({"SELECT", std::string(65, 'n')}).type, '-');
  EXPECT_EQ(c.Call({"GET", "k"}).Text(), "$in-default");  // a failed SELECT changes nothing
  EXPECT_EQ(Once({"GET", "k"}), "$in-default");
}

TEST_F(RespServerTest, ScanPagesThroughManyKeysWithMatchAndCount) {
  RawClient c(port_);
  // 2500 matching keys and 700 others, written in large MSETs.
  std::set<std::string> expected;
  for (int batch = 0; batch < 25; ++batch) {
    std::vector<std::string> mset = {"MSET"};
    for (int i = 0; i < 100; ++i) {
      const std::string key = "user:" + std::to_string(batch * 100 + i);
      expected.insert(key);
      mset.push_back(key);
      mset.push_back("v");
      if (i < 28) {
        mset.push_back("other:" + std::to_string(batch * 100 + i));
        mset.push_back("v");
      }
    }
    ASSERT_EQ(c.Call(mset).Text(), "+OK");
  }
  std::set<std::string> seen;
  std::string cursor = "0";
  int calls = 0;
  do {
    const Reply page = c.Call({"SCAN", cursor, "MATCH", "user:*", "COUNT", "100"});
    ASSERT_EQ(page.type, '*') << page.Text();
    ASSERT_EQ(page.elements.size(), 2u);
    cursor = page.elements[0].str;
    for (const auto& k : page.elements[1].elements) {
      EXPECT_TRUE(seen.insert(k.str).second) << "returned twice: " << k.str;
    }
  } while (cursor != "0" && ++calls < 1000);
  EXPECT_EQ(cursor, "0");
  EXPECT_EQ(seen, expected);
  EXPECT_GE(calls, 24);  // COUNT bounds each page

  // A pattern with no literal prefix, matched key by key.
  std::set<std::string> nines;
  cursor = "0";
  calls = 0;
  do {
    const Reply page = c.Call({"scan", cursor, "count", "1000", "match", "*:?99"});
    ASSERT_EQ(page.elements.size(), 2u) << page.Text();
    cursor = page.elements[0].str;
    for (const auto& k : page.elements[1].elements) nines.insert(k.str);
  } while (cursor != "0" && ++calls < 100);
  EXPECT_EQ(nines,
            (std::set<std::string>{"user:199", "user:299", "user:399", "user:499", "user:599",
                                   "user:699", "user:799", "user:899", "user:999"}));

  // Without MATCH everything comes back; TYPE other than string finds nothing.
  size_t all = 0;
  cursor = "0";
  calls = 0;
  do {
    const Reply page = c.Call({"SCAN", cursor, "COUNT", "1000"});
    cursor = page.elements[0].str;
    all += page.elements[1].elements.size();
  } while (cursor != "0" && ++calls < 100);
  EXPECT_EQ(all, 2500u + 700u);
  EXPECT_EQ(c.Call({"SCAN", "0", "TYPE", "hash"}).Text(), "[$0, []]");
  EXPECT_EQ(c.Call({"SCAN", "0", "MATCH", "user:42"}).Text(), "[$0, [$user:42]]");

  // Errors.
  EXPECT_EQ(c.Call({"SCAN", "abc"}).Text(), "-ERR invalid cursor");
  EXPECT_EQ(c.Call({"SCAN", "12345"}).Text(), "-ERR invalid cursor");  // never handed out
  EXPECT_EQ(c.Call({"SCAN", "0", "COUNT", "0"}).Text(), "-ERR syntax error");
  EXPECT_EQ(c.Call({"SCAN", "0", "COUNT", "x"}).Text(),
            "-ERR value is not an integer or out of range");
  EXPECT_EQ(c.Call({"SCAN", "0", "MATCH"}).Text(), "-ERR syntax error");
  EXPECT_EQ(c.Call({"SCAN", "0", "FOO", "bar"}).Text(), "-ERR syntax error");

  // A cursor is used up once followed.
  const Reply first = c.Call({"SCAN", "0", "COUNT", "10"});
  const std::string next = first.elements[0].str;
  ASSERT_NE(next, "0");
  EXPECT_EQ(c.Call({"SCAN", next}).type, '*');
  EXPECT_EQ(c.Call({"SCAN", next}).Text(), "-ERR invalid cursor");
}

TEST_F(RespServerTest, KeysAndDbSize) {
  RawClient c(port_);
  EXPECT_EQ(c.Call({"DBSIZE"}).Text(), ":0");
  EXPECT_EQ(c.Call({"MSET", "h1", "a", "h2", "b", "hx", "c", "z", "d"}).Text(), "+OK");
  const Reply keys = c.Call({"KEYS", "h?"});
  std::set<std::string> got;
  for (const auto& e : keys.elements) got.insert(e.str);
  EXPECT_EQ(got, (std::set<std::string>{"h1", "h2", "hx"}));
  EXPECT_EQ(c.Call({"KEYS", "h[0-9]"}).elements.size(), 2u);
  EXPECT_EQ(c.Call({"KEYS", "*"}).elements.size(), 4u);
  EXPECT_EQ(c.Call({"KEYS", "nomatch*"}).Text(), "[]");
  EXPECT_EQ(c.Call({"DBSIZE"}).Text(), ":4");
}

// ------------------------------------------------------------------ server commands

TEST_F(RespServerTest, ServerCommands) {
  RawClient c(port_);
  EXPECT_EQ(c.Call({"COMMAND", "DOCS"}).Text(), "[]");
  EXPECT_EQ(c.Call({"COMMAND", "COUNT"}).type, ':');
  EXPECT_GT(c.Call({"COMMAND", "COUNT"}).integer, 40);
  const Reply info = c.Call({"COMMAND", "INFO", "get", "nosuch"});
  ASSERT_EQ(info.elements.size(), 2u) << info.Text();
  EXPECT_EQ(info.elements[0].elements[0].Text(), "$get");
  EXPECT_EQ(info.elements[1].Text(), "*nil");
  EXPECT_GT(c.Call({"COMMAND"}).elements.size(), 40u);
  EXPECT_EQ(c.Call({"COMMAND", "BOGUS"}).Text(),
            "-ERR unknown subcommand 'BOGUS'. Try COMMAND HELP.");

  EXPECT_EQ(c.Call({"CONFIG", "GET", "save"}).Text(), "[$save, $]");
  EXPECT_EQ(c.Call({"CONFIG", "GET", "appendonly"}).Text(), "[$appendonly, $no]");
  EXPECT_EQ(c.Call({"CONFIG", "GET", "nosuch"}).Text(), "[]");
  EXPECT_EQ(c.Call({"CONFIG", "GET", "max*"}).elements.size(), 4u);
  EXPECT_EQ(c.Call({"CONFIG", "SET", "save", ""}).Text(),
            "-ERR CONFIG set is not supported by this server");

  const Reply all = c.Call({"INFO"});
  ASSERT_EQ(all.type, '$');
  EXPECT_TRUE(all.str.starts_with("# Server\r\nredis_version:7.0.0\r\nedgeflow_version:9.9.9-test"))
      << all.str;
  EXPECT_NE(all.str.find("connected_clients:1\r\n"), std::string::npos) << all.str;
  EXPECT_NE(all.str.find("# Keyspace\r\ndb0:keys="), std::string::npos) << all.str;
  EXPECT_NE(all.str.find("tcp_port:" + std::to_string(port_)), std::string::npos);
  const Reply clients = c.Call({"info", "clients"});
  EXPECT_TRUE(clients.str.starts_with("# Clients\r\n")) << clients.str;
  EXPECT_EQ(clients.str.find("# Server"), std::string::npos);
  EXPECT_EQ(c.Call({"INFO", "nosuchsection"}).Text(), "$");

  EXPECT_EQ(c.Call({"CLIENT", "GETNAME"}).Text(), "$nil");
  EXPECT_EQ(c.Call({"CLIENT", "SETNAME", "worker-1"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"CLIENT", "GETNAME"}).Text(), "$worker-1");
  EXPECT_EQ(c.Call({"CLIENT", "SETNAME", "has space"}).Text(),
            "-ERR Client names cannot contain spaces, newlines or special characters.");
  const Reply id = c.Call({"CLIENT", "ID"});
  EXPECT_EQ(id.type, ':');
  const Reply client_info = c.Call({"CLIENT", "INFO"});
  EXPECT_TRUE(client_info.str.starts_with("id=" + std::to_string(id.integer) + " addr=127.0.0.1:"))
      << client_info.str;
  EXPECT_NE(client_info.str.find("name=worker-1"), std::string::npos);
  EXPECT_EQ(c.Call({"CLIENT", "SETINFO", "LIB-NAME", "x"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"CLIENT", "KILL", "x"}).Text(),
            "-ERR unknown subcommand 'KILL'. Try CLIENT HELP.");

  const Reply hello = c.Call({"HELLO"});
  ASSERT_EQ(hello.elements.size(), 14u) << hello.Text();
  EXPECT_EQ(hello.elements[0].Text(), "$server");
  EXPECT_EQ(hello.elements[5].Text(), ":2");
  EXPECT_EQ(c.Call({"HELLO", "2", "SETNAME", "renamed"}).elements.size(), 14u);
  EXPECT_EQ(c.Call({"CLIENT", "GETNAME"}).Text(), "$renamed");
  EXPECT_EQ(c.Call({"HELLO", "3"}).Text(),
            "-NOPROTO sorry, this protocol version is not supported");
  EXPECT_EQ(c.Call({"HELLO", "x"}).Text(),
            "-ERR Protocol version is not an integer or out of range");

  EXPECT_EQ(c.Call({"AUTH", "default", "anything"}).Text(), "+OK");
  EXPECT_EQ(c.Call({"AUTH", "secret"}).type, '-');
  const Reply flush = c.Call({"FLUSHDB"});
  EXPECT_TRUE(flush.str.starts_with("ERR flushdb is not supported")) << flush.str;
  EXPECT_EQ(c.Call({"FLUSHALL"}).type, '-');
  const Reply time = c.Call({"TIME"});
  EXPECT_EQ(time.elements.size(), 2u);

  EXPECT_EQ(c.Call({"QUIT"}).Text(), "+OK");
  EXPECT_TRUE(c.Closed());
}

// ------------------------------------------------------------------ pipelining

TEST_F(RespServerTest, PipelineOfThousandCommandsInOneWrite) {
  RawClient c(port_);
  // SET then GET of the same key, alternating: every GET must see the SET before it, also when
  // the writes are grouped into one commit.
  std::string pipeline;
  for (int i = 0; i < 500; ++i) {
    pipeline += Encode({"SET", "p" + std::to_string(i % 50), "v" + std::to_string(i)});
    pipeline += Encode({"GET", "p" + std::to_string(i % 50)});
  }
  c.Send(pipeline);
  for (int i = 0; i < 500; ++i) {
    ASSERT_EQ(c.Read().Text(), "+OK") << i;
    ASSERT_EQ(c.Read().Text(), "$v" + std::to_string(i)) << i;
  }

  // Mixed: writes, reads, deletes, errors and counters, replies in order.
  std::string mixed;
  std::vector<std::string> want;
  for (int i = 0; i < 200; ++i) {
    const std::string k = "m" + std::to_string(i);
    mixed += Encode({"SET", k, "x"});
    want.push_back("+OK");
    mixed += Encode({"SETNX", k, "y"});
    want.push_back(":0");
    mixed += Encode({"GET", k});
    want.push_back("$x");
    mixed += Encode({"DEL", k, "never"});
    want.push_back(":1");
    mixed += Encode({"GET", k});
    want.push_back("$nil");
    if (i % 40 == 0) {
      mixed += Encode({"SET", k, "v", "EX", "bad"});
      want.push_back("-ERR value is not an integer or out of range");
      mixed += Encode({"INCR", "counter"});
      want.push_back(":" + std::to_string(i / 40 + 1));
    }
  }
  c.Send(mixed);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(c.Read().Text(), want[i]) << i;

  // 1000 GETs in one write.
  std::string gets;
  for (int i = 0; i < 1000; ++i) gets += Encode({"GET", "p" + std::to_string(i % 60)});
  c.Send(gets);
  for (int i = 0; i < 1000; ++i) {
    const std::string got = c.Read().Text();
    const int k = i % 60;
    ASSERT_EQ(got, k < 50 ? "$v" + std::to_string(450 + k) : "$nil") << i;
  }
}

TEST_F(RespServerTest, LargeValuesRoundTrip) {
  RawClient c(port_);
  std::mt19937 rng(7);
  std::string big(kMaxValue, '\0');
  for (char& ch : big) ch = static_cast<char>(rng());
  EXPECT_EQ(c.Call({"SET", "big", big}).Text(), "+OK");
  const Reply got = c.Call({"GET", "big"});
  ASSERT_EQ(got.type, '$');
  EXPECT_TRUE(got.str == big);
  // Several in one pipeline, read back in one MGET and as a pipeline of GETs.
  std::string pipeline;
  for (int i = 0; i < 4; ++i) pipeline += Encode({"SET", "big" + std::to_string(i), big});
  c.Send(pipeline);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(c.Read().Text(), "+OK");
  const Reply mget = c.Call({"MGET", "big0", "big3"});
  ASSERT_EQ(mget.elements.size(), 2u);
  EXPECT_TRUE(mget.elements[1].str == big);
  std::string gets;
  for (int i = 0; i < 4; ++i) gets += Encode({"GET", "big" + std::to_string(i)});
  c.Send(gets);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(c.Read().str == big) << i;
}

// ------------------------------------------------------------------ hostile input

TEST_F(RespServerTest, TruncatedFrameThenDisconnectWritesNothing) {
  for (const std::string& frame :
       {std::string("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$10\r\nabc"), std::string("*3\r\n$3\r\nSET"),
        std::string("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$3\r\nabc"), std::string("SET x inline")}) {
    RawClient c(port_);
    c.Send(frame);
    c.Close();
  }
  // Another client meanwhile and afterwards is served normally.
  RawClient other(port_);
  EXPECT_EQ(other.Call({"EXISTS", "x"}).Text(), ":0");
  EXPECT_EQ(other.Call({"PING"}).Text(), "+PONG");
}

// Each value is within the bulk limit, but all of them together exceed max_command_bytes (8 MiB):
// refused when the header of the value that would cross the limit arrives.
std::string TooLargeMset() {
  std::string s = "*21\r\n$4\r\nMSET\r\n";
  for (int i = 0; i < 8; ++i) {
    s += "$2\r\nk" + std::to_string(i) + "\r\n$1000000\r\n" + std::string(1000000, 'v') + "\r\n";
  }
  return s + "$2\r\nk8\r\n$2000000\r\n";
}

TEST_F(RespServerTest, ProtocolErrorsReplyAndClose) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$999999999\r\n", "-ERR Protocol error: invalid bulk length"},
      {"*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length"},
      {"*x\r\n", "-ERR Protocol error: invalid multibulk length"},
      {"*" + std::to_string(kMaxArgs + 1) + "\r\n",
       "-ERR Protocol error: invalid multibulk length"},
      {"*1\r\n:5\r\n", "-ERR Protocol error: expected '$', got ':'"},
      {"*1\r\n$4\r\nPINGXX\r\n", "-ERR Protocol error: bulk string not terminated by CRLF"},
      {"SET a \"unterminated\r\n", "-ERR Protocol error: unbalanced quotes in request"},
      {std::string(5000, 'a'), "-ERR Protocol error: too big inline request"},
      {TooLargeMset(), "-ERR Protocol error: request too large"},
  };
  for (const auto& [input, reply] : cases) {
    RawClient c(port_);
    c.Send(Encode({"SET", "before", "ok"}) + input);
    c.ShutdownSend();
    EXPECT_EQ(c.Read().Text(), "+OK") << input.substr(0, 40);
    EXPECT_EQ(c.Read().Text(), reply) << input.substr(0, 40);
    EXPECT_TRUE(c.Closed()) << input.substr(0, 40);
  }
  EXPECT_EQ(Once({"GET", "before"}), "$ok");
  EXPECT_EQ(Once({"EXISTS", "k", "a"}), ":0");
}

TEST_F(RespServerTest, MaxArgsIsAccepted) {
  RawClient c(port_);
  std::vector<std::string> del = {"DEL"};
  for (size_t i = 1; i < kMaxArgs; ++i) del.push_back("k" + std::to_string(i));
  EXPECT_EQ(c.Call(del).Text(), ":0");
  std::vector<std::string> mget = {"MGET"};
  for (size_t i = 1; i < kMaxArgs; ++i) mget.push_back("k");
  EXPECT_EQ(c.Call(mget).elements.size(), kMaxArgs - 1);
}

TEST_F(RespServerTest, GarbageBytesNeverHurtOtherClients) {
  std::mt19937 rng(99);
  for (int round = 0; round < 20; ++round) {
    std::string junk(2000 + round * 300, '\0');
    for (char& ch : junk) ch = static_cast<char>(rng());
    if (round % 3 == 0) junk[0] = '*';
    if (round % 3 == 1) junk = "*2\r\n$3\r\nGET\r\n" + junk;
    RawClient c(port_);
    c.Send(junk);
    if (round % 2 == 0) c.Close();  // sometimes without waiting for the answer
  }
  EXPECT_EQ(Once({"PING"}), "+PONG");
  EXPECT_EQ(Once({"SET", "still", "fine"}), "+OK");
}

TEST_F(RespServerTest, MaxConnections) {
  std::vector<std::unique_ptr<RawClient>> clients;
  for (size_t i = 0; i < kMaxConnections; ++i) {
    clients.push_back(std::make_unique<RawClient>(port_));
    ASSERT_EQ(clients.back()->Call({"PING"}).Text(), "+PONG");
  }
  RawClient refused(port_);
  EXPECT_EQ(refused.Read().Text(), "-ERR max number of clients reached");
  EXPECT_TRUE(refused.Closed());
  // Once one leaves, a new client gets in (the server notices the close asynchronously).
  clients.pop_back();
  bool admitted = false;
  for (int attempt = 0; attempt < 200 && !admitted; ++attempt) {
    RawClient again(port_);
    admitted = again.Call({"PING"}).Text() == "+PONG";
    if (!admitted) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(admitted);
}

TEST_F(RespServerTest, StopClosesClients) {
  RawClient c(port_);
  EXPECT_EQ(c.Call({"PING"}).Text(), "+PONG");
  server_->Stop();
  EXPECT_TRUE(c.Closed());
  server_->Stop();  // idempotent
}

TEST_F(RespServerTest, CreateRejectsBadConfig) {
  RespServerConfig config = Config();
  config.default_namespace = "bad namespace";
  EXPECT_FALSE(RespServer::Create(config, store_.get(), &registry_).has_value());
  config = Config();
  config.io_threads = 0;
  EXPECT_FALSE(RespServer::Create(config, store_.get(), &registry_).has_value());
  config = Config();
  config.listen = {"127.0.0.1", port_};  // taken
  auto created = RespServer::Create(config, store_.get(), &registry_);
  ASSERT_TRUE(created.has_value());
  EXPECT_FALSE((*created)->Start().ok());
}

// ------------------------------------------------------------------ metrics

TEST_F(RespServerTest, MetricsCountCommandsErrorsAndConnections) {
  {
    RawClient c(port_);
    c.Call({"SET", "a", "1"});
    c.Call({"GET", "a"});
    c.Call({"GET", "a"});
    c.Call({"NOSUCH"});
  }
  const std::string text = registry_.RenderPrometheus();
  EXPECT_NE(text.find("edgeflow_resp_commands_total{cmd=\"get\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("edgeflow_resp_commands_total{cmd=\"set\"} 1"), std::string::npos);
  EXPECT_NE(text.find("edgeflow_resp_commands_total{cmd=\"other\"} 1"), std::string::npos);
  EXPECT_NE(text.find("edgeflow_resp_errors_total 1"), std::string::npos);
  EXPECT_NE(text.find("edgeflow_resp_connections_total 1"), std::string::npos);
  EXPECT_NE(text.find("edgeflow_resp_connections "), std::string::npos);
}

// ------------------------------------------------------------------ hiredis

TEST_F(RespServerTest, HiredisClient) {
  RedisContextPtr ctx = Hiredis();
  ASSERT_TRUE(ctx);
  const std::string value("bin\0ary\r\n", 9);
  RedisReplyPtr set(static_cast<redisReply*>(
      redisCommand(ctx.get(), "SET %s %b", "hkey", value.data(), value.size())));
  ASSERT_TRUE(set);
  EXPECT_EQ(set->type, REDIS_REPLY_STATUS);
  EXPECT_EQ(std::string(set->str, set->len), "OK");

  RedisReplyPtr get(static_cast<redisReply*>(redisCommand(ctx.get(), "GET hkey")));
  ASSERT_TRUE(get);
  ASSERT_EQ(get->type, REDIS_REPLY_STRING);
  EXPECT_EQ(std::string(get->str, get->len), value);

  RedisReplyPtr missing(static_cast<redisReply*>(redisCommand(ctx.get(), "GET nope")));
  EXPECT_EQ(missing->type, REDIS_REPLY_NIL);

  RedisReplyPtr incr(static_cast<redisReply*>(redisCommand(ctx.get(), "INCRBY hn 5")));
  EXPECT_EQ(incr->type, REDIS_REPLY_INTEGER);
  EXPECT_EQ(incr->integer, 5);

  RedisReplyPtr err(static_cast<redisReply*>(redisCommand(ctx.get(), "GET")));
  EXPECT_EQ(err->type, REDIS_REPLY_ERROR);

  // Pipelined through hiredis, then a SCAN loop as client libraries write it.
  for (int i = 0; i < 300; ++i) {
    redisAppendCommand(ctx.get(), "SET scan:%d v", i);
  }
  for (int i = 0; i < 300; ++i) {
    void* r = nullptr;
    ASSERT_EQ(redisGetReply(ctx.get(), &r), REDIS_OK);
    RedisReplyPtr reply(static_cast<redisReply*>(r));
    ASSERT_EQ(reply->type, REDIS_REPLY_STATUS);
  }
  std::set<std::string> keys;
  std::string cursor = "0";
  int calls = 0;
  do {
    RedisReplyPtr page(static_cast<redisReply*>(
        redisCommand(ctx.get(), "SCAN %s MATCH scan:* COUNT 50", cursor.c_str())));
    ASSERT_TRUE(page);
    ASSERT_EQ(page->type, REDIS_REPLY_ARRAY);
    ASSERT_EQ(page->elements, 2u);
    cursor.assign(page->element[0]->str, page->element[0]->len);
    // Client libraries parse the cursor as an integer.
    EXPECT_NO_THROW((void)std::stoull(cursor));
    for (size_t i = 0; i < page->element[1]->elements; ++i) {
      keys.insert(
          std::string(page->element[1]->element[i]->str, page->element[1]->element[i]->len));
    }
  } while (cursor != "0" && ++calls < 100);
  EXPECT_EQ(keys.size(), 300u);
}

}  // namespace
}  // namespace edgeflow::api
