// mqtt_vs_http_bench: the MQTT-versus-HTTP comparison of papers/000 (appendix A, Fig. 8 and 9)
// against a running edgeflowd. Driven by bench/mqtt_vs_http, which starts the daemon; see
// bench/README.md.
//
// 1, 10 and 100 messages of 10 bytes, several trials each, timed from the start of the trial
// (connection set-up included) until the last acknowledgement is in:
//   mqtt            connect to the node's broker once, then publish the messages QoS 1 on that
//                   connection, each waiting for its PUBACK (request/answer, as HTTP does); the
//                   same trials also give the time without the connect;
//   mqtt pipelined  (for information) connect, publish all messages at once, wait for all PUBACKs:
//                   how an asynchronous MQTT client sends by default;
//   http            POST of each message to the node, with a new TCP connection per request (what
//                   the comparison the paper cites, [21], measured) and with one keep-alive
//                   connection per trial (its connect included, like MQTT's); to the channel
//                   publish endpoint (put-then-publish: what MQTT does plus storage) and, for
//                   reference, to a plain EKV put.
//
// Both clients are minimal and single-threaded (libmosquitto's synchronous loop, Boost.Beast), so
// that the comparison is one of protocols and server paths, not of client libraries.
#include <mosquitto.h>
#include <mqtt_protocol.h>

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>: it goes first.
// clang-format off
#include <utility>
// clang-format on

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "channels/channel_name.h"
#include "common/host_port.h"
#include "common/status.h"

namespace edgeflow::bench {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

// Per operation: a loopback answer takes well under a millisecond; seconds mean something broke.
constexpr auto kTimeout = std::chrono::seconds(10);
const std::string kPayload = "0123456789";  // 10 bytes, as in the paper

double Millis(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "mqtt_vs_http_bench: %s\n", message.c_str());
  std::fflush(stdout);
  std::_Exit(1);
}

// --- HTTP ----------------------------------------------------------------------------------------

// A single-threaded HTTP/1.1 client for POSTs. The asynchronous operations run to completion one
// at a time on a private io_context; they are used only for the stream's deadline, so that a stuck
// server fails the run instead of hanging it.
class BenchHttp {
 public:
  explicit BenchHttp(net::ip::tcp::endpoint endpoint) : endpoint_(endpoint), stream_(ioc_) {}

  // POSTs `body` to `target` and checks for 200. With `keep_alive` the connection stays open for
  // the next call; without, the request says "Connection: close" and the socket is closed after
  // the answer, so every call pays a TCP handshake (and the server's accept).
  Status Post(const std::string& target, const std::string& body, bool keep_alive) {
    if (!connected_) {
      if (Status s = Connect(); !s.ok()) return s;
    }
    http::request<http::string_body> req{http::verb::post, target, 11};
    req.set(http::field::host, endpoint_.address().to_string());
    req.set(http::field::content_type, "application/octet-stream");
    req.keep_alive(keep_alive);
    req.body() = body;
    req.prepare_payload();
    error_code result = net::error::would_block;
    stream_.expires_after(kTimeout);
    http::async_write(stream_, req, [&](error_code e, size_t) { result = e; });
    Run();
    if (result) return Failed("sending POST " + target, result);
    http::response<http::string_body> res;
    result = net::error::would_block;
    stream_.expires_after(kTimeout);
    http::async_read(stream_, buffer_, res, [&](error_code e, size_t) { result = e; });
    Run();
    if (result) return Failed("reading the answer to POST " + target, result);
    if (!keep_alive || !res.keep_alive()) Close();
    if (res.result() != http::status::ok) {
      return Status::Internal("POST " + target + " answered " + std::to_string(res.result_int()) +
                              ": " + res.body());
    }
    return Status::Ok();
  }

  void Close() {
    error_code ignored;
    stream_.socket().close(ignored);
    connected_ = false;
    buffer_.clear();
  }

 private:
  Status Connect() {
    error_code result = net::error::would_block;
    stream_.expires_after(kTimeout);
    stream_.async_connect(endpoint_, [&](error_code e) { result = e; });
    Run();
    if (result) return Failed("connecting", result);
    // As every client of a request/answer protocol should: no Nagle delay on small writes.
    stream_.socket().set_option(net::ip::tcp::no_delay(true), result);
    connected_ = true;
    return Status::Ok();
  }

  void Run() {
    ioc_.restart();
    ioc_.run();
  }

  Status Failed(const std::string& during, const error_code& ec) {
    Close();
    return Status::Unavailable("HTTP to " + endpoint_.address().to_string() + ":" +
                               std::to_string(endpoint_.port()) + " failed while " + during + " (" +
                               (ec == beast::error::timeout ? "timed out" : ec.message()) + ")");
  }

  const net::ip::tcp::endpoint endpoint_;
  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  bool connected_ = false;
};

// --- MQTT ----------------------------------------------------------------------------------------

struct MqttState {
  bool connack = false;
  int connack_reason = 0;
  int acked = 0;
  int refused_reason = 0;  // the first PUBACK reason code >= 128, if any
};

struct MosquittoDeleter {
  void operator()(mosquitto* m) const { mosquitto_destroy(m); }
};

// Runs the client's network loop until `done` holds or the deadline passes. The loop returns as
// soon as a packet was handled, so the wait adds no polling delay.
Status LoopUntil(mosquitto* m, const std::function<bool()>& done, Clock::time_point deadline) {
  while (!done()) {
    if (Clock::now() >= deadline) return Status::Unavailable("timed out waiting for the broker");
    const int rc = mosquitto_loop(m, 100, 1);
    if (rc != MOSQ_ERR_SUCCESS) {
      return Status::Unavailable(std::string("MQTT connection failed: ") + mosquitto_strerror(rc));
    }
  }
  return Status::Ok();
}

struct MqttTiming {
  double total_ms = 0;    // connect and all messages
  double publish_ms = 0;  // after the CONNACK
};

// One MQTT trial: a new client connects, publishes `n` messages QoS 1 and waits for their PUBACKs
// (each in turn, or all at once when `pipelined`); it disconnects after the clock stopped.
Result<MqttTiming> MqttTrial(const HostPort& broker, const std::string& topic, int n,
                             bool pipelined) {
  static int serial = 0;
  const std::string client_id =
      "ef-bench-" + std::to_string(::getpid()) + "-" + std::to_string(++serial);
  MqttState state;
  std::unique_ptr<mosquitto, MosquittoDeleter> client(
      mosquitto_new(client_id.c_str(), /*clean_session=*/true, &state));
  mosquitto* m = client.get();
  if (m == nullptr) return Error(Status::Internal("mosquitto_new failed"));
  // MQTT 5, like the node's own clients; TCP_NODELAY, as for HTTP.
  mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
  mosquitto_connect_v5_callback_set(
      m, [](mosquitto*, void* self, int reason, int, const mosquitto_property*) {
        auto* s = static_cast<MqttState*>(self);
        s->connack = true;
        s->connack_reason = reason;
      });
  mosquitto_publish_v5_callback_set(
      m, [](mosquitto*, void* self, int, int reason, const mosquitto_property*) {
        auto* s = static_cast<MqttState*>(self);
        ++s->acked;
        if (reason >= 128 && s->refused_reason == 0) s->refused_reason = reason;
      });

  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + kTimeout;
  // Opens the TCP connection and sends CONNECT; the CONNACK comes through the loop.
  int rc = mosquitto_connect(m, broker.host.c_str(), broker.port, 60);
  if (rc != MOSQ_ERR_SUCCESS) {
    return Error(Status::Unavailable("cannot connect to the broker at " + broker.ToString() + ": " +
                                     mosquitto_strerror(rc)));
  }
  if (Status s = LoopUntil(
          m, [&] { return state.connack; }, deadline);
      !s.ok())
    return Error(s);
  if (state.connack_reason != 0) {
    return Error(Status::Unavailable(std::string("the broker refused the connection: ") +
                                     mosquitto_reason_string(state.connack_reason)));
  }
  const Clock::time_point connected = Clock::now();
  for (int i = 0; i < n; ++i) {
    rc = mosquitto_publish_v5(m, nullptr, topic.c_str(), static_cast<int>(kPayload.size()),
                              kPayload.data(), 1, false, nullptr);
    if (rc != MOSQ_ERR_SUCCESS) {
      return Error(
          Status::Unavailable(std::string("MQTT publish failed: ") + mosquitto_strerror(rc)));
    }
    if (!pipelined) {
      if (Status s = LoopUntil(
              m, [&] { return state.acked > i; }, deadline);
          !s.ok()) {
        return Error(s);
      }
    }
  }
  if (Status s = LoopUntil(
          m, [&] { return state.acked >= n; }, deadline);
      !s.ok()) {
    return Error(s);
  }
  const Clock::time_point end = Clock::now();
  if (state.refused_reason != 0) {
    return Error(Status::FailedPrecondition(std::string("the broker refused a publication: ") +
                                            mosquitto_reason_string(state.refused_reason)));
  }
  // A clean DISCONNECT, so that the broker does not log a lost client; not timed.
  mosquitto_disconnect(m);
  for (int i = 0; i < 5 && mosquitto_loop(m, 10, 1) == MOSQ_ERR_SUCCESS; ++i) {
  }
  return MqttTiming{Millis(end - start), Millis(end - connected)};
}

// --- the comparison ------------------------------------------------------------------------------

enum Variant {
  kMqtt,
  kMqttPublishOnly,
  kMqttPipelined,
  kHttpNewPublish,
  kHttpKeepAlivePublish,
  kHttpNewKv,
  kHttpKeepAliveKv,
  kVariants,
};

struct VariantInfo {
  const char* label;       // table
  const char* result_key;  // RESULT line: <key>_<n>
};

constexpr VariantInfo kInfo[kVariants] = {
    {"mqtt: connect + publish, PUBACK each", "mqtt_ms"},
    {"mqtt: publish only (connected)", "mqtt_publish_ms"},
    {"mqtt: connect + pipelined publish", "mqtt_pipelined_ms"},
    {"http new conn: channel publish", "http_new_ms"},
    {"http keep-alive: channel publish", "http_keepalive_ms"},
    {"http new conn: kv put", "http_new_kv_ms"},
    {"http keep-alive: kv put", "http_keepalive_kv_ms"},
};

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

double Min(const std::vector<double>& values) {
  return values.empty() ? 0 : *std::min_element(values.begin(), values.end());
}

struct Target {
  HostPort broker;
  std::string topic;
  net::ip::tcp::endpoint http;
  std::string channel;
};

// One HTTP trial: `n` POSTs, timed from before the first connect until the last answer.
Result<double> HttpTrial(const Target& target, int n, bool keep_alive, bool kv) {
  BenchHttp client(target.http);  // its io_context is set up before the clock starts
  const std::string publish_target = "/v1/channels/" + target.channel + "/publish";
  std::vector<std::string> targets;
  targets.reserve(n);
  for (int i = 0; i < n; ++i) {
    targets.push_back(kv ? "/v1/kv/bench/" + std::to_string(i) : publish_target);
  }
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < n; ++i) {
    if (Status s = client.Post(targets[i], kPayload, keep_alive); !s.ok()) return Error(s);
  }
  const Clock::time_point end = Clock::now();
  client.Close();
  return Millis(end - start);
}

// Runs every variant once for `n` messages; records into `times` unless it is null (warm-up).
void RunRound(const Target& target, int n, std::map<int, std::vector<double>> (*times)[kVariants]) {
  auto record = [&](Variant v, double ms) {
    if (times != nullptr) (*times)[v][n].push_back(ms);
  };
  // A failed trial ends the run: a comparison with holes in it would mislead.
  auto fail = [&](Variant v, const Status& s) {
    Die(std::string(kInfo[v].label) + ", " + std::to_string(n) + " messages: " + s.ToString());
  };
  {
    auto t = MqttTrial(target.broker, target.topic, n, false);
    if (!t) fail(kMqtt, t.error());
    record(kMqtt, t->total_ms);
    record(kMqttPublishOnly, t->publish_ms);
  }
  {
    auto t = MqttTrial(target.broker, target.topic, n, true);
    if (!t) fail(kMqttPipelined, t.error());
    record(kMqttPipelined, t->total_ms);
  }
  const struct {
    Variant variant;
    bool keep_alive;
    bool kv;
  } http_variants[] = {
      {kHttpNewPublish, false, false},
      {kHttpKeepAlivePublish, true, false},
      {kHttpNewKv, false, true},
      {kHttpKeepAliveKv, true, true},
  };
  for (const auto& h : http_variants) {
    auto t = HttpTrial(target, n, h.keep_alive, h.kv);
    if (!t) fail(h.variant, t.error());
    record(h.variant, *t);
  }
}

std::vector<int> ParseCounts(const std::string& text) {
  std::vector<int> counts;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      const int n = std::stoi(item, &used);
      if (used != item.size() || n < 1 || n > 100000) throw std::out_of_range(item);
      counts.push_back(n);
    } catch (const std::exception&) {
      Die("--counts must be positive integers separated by commas, not '" + text + "'");
    }
  }
  if (counts.empty()) Die("--counts is empty");
  return counts;
}

int Main(int argc, char** argv) {
  CLI::App app{"MQTT versus HTTP for small messages to an edgeflow node (papers/000, Fig. 8-9)"};
  std::string http_address;
  std::string mqtt_address;
  std::string channel = "bench";
  std::string counts_text = "1,10,100";
  int trials = 10;
  app.add_option("--http", http_address, "edgeflowd HTTP address HOST:PORT")->required();
  app.add_option("--mqtt", mqtt_address, "the node's MQTT broker HOST:PORT")->required();
  app.add_option("--channel", channel, "channel to publish on");
  app.add_option("--counts", counts_text, "messages per trial, comma-separated");
  app.add_option("--trials", trials, "timed trials per count and variant")
      ->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);

  const std::vector<int> counts = ParseCounts(counts_text);
  auto broker = ParseHostPort(mqtt_address);
  if (!broker) Die(broker.error().ToString());
  auto http_host_port = ParseHostPort(http_address);
  if (!http_host_port) Die(http_host_port.error().ToString());
  if (Status s = channels::ValidateChannelName(channel); !s.ok()) Die(s.ToString());
  Target target;
  target.broker = *broker;
  target.channel = channel;
  // The same topic the channel publish endpoint publishes on: equal work for the broker.
  target.topic = channels::ChannelTopic("default", channel);
  {
    error_code ec;
    const auto address = net::ip::make_address(http_host_port->host, ec);
    if (ec) Die("--http needs a numeric address, not '" + http_host_port->host + "'");
    target.http = net::ip::tcp::endpoint(address, http_host_port->port);
  }

  mosquitto_lib_init();
  // Warm-up: one untimed round, so that the first timed trial does not pay for first use (page
  // faults, the node's first put, the broker's first subscriber lookup).
  RunRound(target, 10, nullptr);
  std::map<int, std::vector<double>> times[kVariants];
  for (int trial = 0; trial < trials; ++trial) {
    // Rounds interleave the variants, so that drift on the machine touches all of them alike.
    for (int n : counts) RunRound(target, n, &times);
  }
  mosquitto_lib_cleanup();

  std::printf("%d trials per line, %zu-byte messages, QoS 1 on %s; times in ms per trial\n", trials,
              kPayload.size(), target.topic.c_str());
  std::printf("ratio: median / median of \"mqtt: connect + publish\" with as many messages\n\n");
  std::printf("%8s  %-38s %10s %10s %8s\n", "messages", "variant", "median_ms", "min_ms", "ratio");
  std::string result = "RESULT name=mqtt_vs_http";
  std::string ratios;
  char buffer[256];
  for (int n : counts) {
    const double mqtt = Median(times[kMqtt][n]);
    for (int v = 0; v < kVariants; ++v) {
      const double median = Median(times[v][n]);
      std::printf("%8d  %-38s %10.3f %10.3f %8.2f\n", n, kInfo[v].label, median, Min(times[v][n]),
                  mqtt > 0 ? median / mqtt : 0.0);
      std::snprintf(buffer, sizeof(buffer), " %s_%d=%.3f", kInfo[v].result_key, n, median);
      result += buffer;
    }
    std::snprintf(buffer, sizeof(buffer), " ratio_new_%d=%.2f ratio_keepalive_%d=%.2f", n,
                  mqtt > 0 ? Median(times[kHttpNewPublish][n]) / mqtt : 0.0, n,
                  mqtt > 0 ? Median(times[kHttpKeepAlivePublish][n]) / mqtt : 0.0);
    ratios += buffer;
    std::printf("\n");
  }
  std::printf("%s%s trials=%d\n", result.c_str(), ratios.c_str(), trials);
  return 0;
}

}  // namespace
}  // namespace edgeflow::bench

int main(int argc, char** argv) { return edgeflow::bench::Main(argc, argv); }
