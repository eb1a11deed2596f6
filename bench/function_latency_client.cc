// function_latency_client: the measuring tool of bench/function_latency (see bench/README.md),
// which builds it with g++ and libmosquitto alone (no edgeflow libraries) and starts the daemon.
//
// One process, one thread, one steady clock: it publishes items to a function's input channel and
// receives the function's outputs on its output channel (an MQTT 5 subscription, QoS 1), matching
// them by item id (MQTT correlation data), with the node's HTTP connection and its MQTT connection
// multiplexed in one poll() loop, so that whichever answer comes first is seen at once.
//
//   latency     one item at a time (the next only after the output of the previous arrived):
//               --via http   POST /v1/channels/<in>/publish?key=<id>&mode=inline (put-then-publish
//                            on one keep-alive connection); the clock stops at the output message,
//                            also when it arrives before the HTTP answer (both are waited for)
//               --via mqtt   an MQTT 5 QoS 1 PUBLISH straight to the input topic with correlation
//                            data = the item id (no EKV put by the producer)
//               prints: latency via=... n=... p50_us=... p99_us=... mean_us=... max_us=...
//   throughput  --count N items published over MQTT QoS 1 as fast as the window allows (at most
//               --window items published but not yet seen as outputs); the clock runs from the
//               first publish to the last output. prints: throughput n=... seconds=... items_s=...
//
// Any failure (no CONNACK, refused publish, an HTTP answer other than 200, an output that does not
// come within --timeout seconds) ends the run with a message and exit status 1.
#include <arpa/inet.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "function_latency_client: %s\n", message.c_str());
  std::exit(1);
}

struct HostPort {
  std::string host;
  int port = 0;
};

HostPort ParseHostPort(const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) Die("not HOST:PORT: " + text);
  return {text.substr(0, colon), std::atoi(text.c_str() + colon + 1)};
}

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// --- MQTT ---------------------------------------------------------------------------------------

struct MqttState {
  bool connected = false;
  int connack = -1;
  bool subscribed = false;
  uint64_t pubacks = 0;
  uint64_t puback_failures = 0;
  // The output messages: item id -> arrival time (latency), or counted (throughput).
  std::string awaited;  // latency: the id the current sample waits for
  bool awaited_arrived = false;
  Clock::time_point awaited_at{};
  std::string throughput_prefix;  // throughput: ids are <prefix><index>
  std::vector<char> seen;
  uint64_t distinct = 0;
  uint64_t duplicates = 0;
  uint64_t stray = 0;
  Clock::time_point last_output{};
};

class Mqtt {
 public:
  Mqtt(const HostPort& broker, const std::string& client_id, MqttState* state) : state_(state) {
    m_ = mosquitto_new(client_id.c_str(), /*clean_session=*/true, state);
    if (m_ == nullptr) Die("mosquitto_new failed");
    mosquitto_int_option(m_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(m_, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_v5_callback_set(
        m_, [](mosquitto*, void* self, int reason, int, const mosquitto_property*) {
          auto* s = static_cast<MqttState*>(self);
          s->connack = reason;
          s->connected = reason == 0;
        });
    mosquitto_subscribe_v5_callback_set(
        m_, [](mosquitto*, void* self, int, int, const int*, const mosquitto_property*) {
          static_cast<MqttState*>(self)->subscribed = true;
        });
    mosquitto_publish_v5_callback_set(
        m_, [](mosquitto*, void* self, int, int reason, const mosquitto_property*) {
          auto* s = static_cast<MqttState*>(self);
          ++s->pubacks;
          if (reason >= 0x80) ++s->puback_failures;
        });
    mosquitto_message_v5_callback_set(m_, &Mqtt::OnMessage);
    const int rc = mosquitto_connect(m_, broker.host.c_str(), broker.port, 60);
    if (rc != MOSQ_ERR_SUCCESS) Die(std::string("MQTT connect: ") + mosquitto_strerror(rc));
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (state_->connack < 0) {
      if (Clock::now() > deadline) Die("no CONNACK within 10 s");
      Pump(100);
    }
    if (!state_->connected) {
      Die(std::string("MQTT connection refused: ") + mosquitto_reason_string(state_->connack));
    }
  }
  ~Mqtt() {
    mosquitto_disconnect(m_);
    mosquitto_destroy(m_);
  }

  void Subscribe(const std::string& topic) {
    const int rc = mosquitto_subscribe_v5(m_, nullptr, topic.c_str(), 1, 0, nullptr);
    if (rc != MOSQ_ERR_SUCCESS) Die(std::string("MQTT subscribe: ") + mosquitto_strerror(rc));
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!state_->subscribed) {
      if (Clock::now() > deadline) Die("no SUBACK within 10 s");
      Pump(100);
    }
  }

  // QoS 1 publish with correlation data = item id.
  void Publish(const std::string& topic, const std::string& item_id, std::string_view payload) {
    mosquitto_property* props = nullptr;
    mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, item_id.data(),
                                  static_cast<uint16_t>(item_id.size()));
    mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, "application/octet-stream");
    const int rc =
        mosquitto_publish_v5(m_, nullptr, topic.c_str(), static_cast<int>(payload.size()),
                             payload.data(), 1, false, props);
    mosquitto_property_free_all(&props);
    if (rc != MOSQ_ERR_SUCCESS) Die(std::string("MQTT publish: ") + mosquitto_strerror(rc));
  }

  int socket() const { return mosquitto_socket(m_); }
  bool want_write() const { return mosquitto_want_write(m_); }

  // Handles what the socket has (reads, pending writes, keep-alive); `revents` from poll().
  void Handle(short revents) {
    int rc = MOSQ_ERR_SUCCESS;
    if (revents & (POLLIN | POLLHUP | POLLERR)) rc = mosquitto_loop_read(m_, 1);
    if (rc == MOSQ_ERR_SUCCESS && (revents & POLLOUT)) rc = mosquitto_loop_write(m_, 1);
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_loop_misc(m_);
    if (rc != MOSQ_ERR_SUCCESS) Die(std::string("MQTT connection: ") + mosquitto_strerror(rc));
  }

  // Waits up to `timeout_ms` for MQTT traffic and handles it.
  void Pump(int timeout_ms) {
    pollfd fd{.fd = socket(),
              .events = static_cast<short>(POLLIN | (want_write() ? POLLOUT : 0)),
              .revents = 0};
    if (::poll(&fd, 1, timeout_ms) < 0 && errno != EINTR) Die("poll failed");
    Handle(fd.revents);
  }

 private:
  static void OnMessage(mosquitto*, void* self, const mosquitto_message*,
                        const mosquitto_property* props) {
    const auto now = Clock::now();
    auto* s = static_cast<MqttState*>(self);
    void* value = nullptr;
    uint16_t length = 0;
    if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &value, &length, false) ==
        nullptr) {
      ++s->stray;
      return;
    }
    const std::string id(static_cast<const char*>(value), length);
    std::free(value);
    if (!s->awaited.empty() && id == s->awaited) {
      if (!s->awaited_arrived) {
        s->awaited_arrived = true;
        s->awaited_at = now;
      }
      return;
    }
    if (!s->throughput_prefix.empty() && id.starts_with(s->throughput_prefix)) {
      const size_t index = std::strtoull(id.c_str() + s->throughput_prefix.size(), nullptr, 10);
      if (index < s->seen.size()) {
        if (s->seen[index]) {
          ++s->duplicates;
        } else {
          s->seen[index] = 1;
          ++s->distinct;
          s->last_output = now;
        }
        return;
      }
    }
    ++s->stray;  // an earlier sample's repeat, or someone else's item
  }

  mosquitto* m_ = nullptr;
  MqttState* state_;
};

// --- HTTP (a minimal keep-alive HTTP/1.1 client: enough for the node's publish answers) ----------

class Http {
 public:
  explicit Http(const HostPort& server) : server_(server) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) Die("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server.port));
    if (::inet_pton(AF_INET, server.host.c_str(), &addr.sin_addr) != 1) {
      Die("not an IPv4 address: " + server.host);
    }
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      Die("cannot connect to " + server.host + ":" + std::to_string(server.port) + ": " +
          std::strerror(errno));
    }
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Http() { ::close(fd_); }

  int fd() const { return fd_; }

  void SendPost(const std::string& target, std::string_view body) {
    std::string request = "POST " + target + " HTTP/1.1\r\nHost: " + server_.host +
                          "\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n";
    request.append(body);
    size_t sent = 0;
    while (sent < request.size()) {
      const ssize_t n = ::send(fd_, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        Die(std::string("HTTP send: ") + std::strerror(errno));
      }
      sent += static_cast<size_t>(n);
    }
    buffer_.clear();
  }

  // Reads what is there; true once a whole answer is in (status 200, or Die).
  bool ReadSome() {
    char chunk[4096];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n == 0) Die("the node closed the HTTP connection");
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return false;
      Die(std::string("HTTP recv: ") + std::strerror(errno));
    }
    buffer_.append(chunk, static_cast<size_t>(n));
    const size_t end = buffer_.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    std::string head = buffer_.substr(0, end);
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t length = 0;
    if (const size_t at = head.find("\r\ncontent-length:"); at != std::string::npos) {
      length = std::strtoull(head.c_str() + at + 17, nullptr, 10);
    }
    if (buffer_.size() < end + 4 + length) return false;
    if (!buffer_.starts_with("HTTP/1.1 200")) {
      Die("publish answered: " + buffer_.substr(0, std::min<size_t>(buffer_.size(), 400)));
    }
    return true;
  }

 private:
  HostPort server_;
  int fd_ = -1;
  std::string buffer_;
};

// --- the measurements ---------------------------------------------------------------------------

struct Options {
  std::string mode;
  HostPort mqtt, http;
  std::string via = "mqtt";
  std::string prefix = "ef/default/ch/";
  std::string in = "fl/in", out = "fl/out";
  std::string run_id = "0";
  int samples = 2000, warmup = 200, payload = 16;
  int count = 20000, window = 2000;
  double timeout = 10;
  double max_seconds = 60;
};

std::string PercentEncode(std::string_view text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', hex[c >> 4], hex[c & 15]};
    }
  }
  return out;
}

uint64_t Percentile(std::vector<double> sorted, double q) {  // nearest rank
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(q * static_cast<double>(sorted.size()) + 0.999999);
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return static_cast<uint64_t>(sorted[rank - 1]);
}

int Latency(const Options& o) {
  MqttState state;
  Mqtt mqtt(o.mqtt, "fl-latency-" + o.run_id + "-" + o.via, &state);
  mqtt.Subscribe(o.prefix + o.out);
  std::unique_ptr<Http> http;
  if (o.via == "http") http = std::make_unique<Http>(o.http);
  const std::string payload(static_cast<size_t>(o.payload), 'x');
  std::vector<double> samples, answers;
  const auto started = Clock::now();
  int recorded = 0;
  for (int i = 0; i < o.warmup + o.samples; ++i) {
    if (Clock::now() - started > std::chrono::duration<double>(o.max_seconds)) break;
    const std::string id = "lat-" + o.via + "-" + o.run_id + "-" + std::to_string(i);
    state.awaited = id;
    state.awaited_arrived = false;
    bool answered = http == nullptr;
    const auto t0 = Clock::now();
    Clock::time_point answered_at{};
    if (http) {
      http->SendPost("/v1/channels/" + PercentEncode(o.in) + "/publish?key=" + PercentEncode(id) +
                         "&mode=inline",
                     payload);
    } else {
      mqtt.Publish(o.prefix + o.in, id, payload);
    }
    const auto deadline =
        t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.timeout));
    while (!state.awaited_arrived || !answered) {
      if (Clock::now() > deadline) {
        Die("item " + id + ": " + (state.awaited_arrived ? "no HTTP answer" : "no output") +
            " within " + std::to_string(o.timeout) + " s");
      }
      pollfd fds[2] = {{.fd = mqtt.socket(),
                        .events = static_cast<short>(POLLIN | (mqtt.want_write() ? POLLOUT : 0)),
                        .revents = 0},
                       {.fd = http ? http->fd() : -1, .events = POLLIN, .revents = 0}};
      if (::poll(fds, http && !answered ? 2 : 1, 100) < 0 && errno != EINTR) Die("poll failed");
      if (fds[0].revents != 0) mqtt.Handle(fds[0].revents);
      if (http && !answered && fds[1].revents != 0 && http->ReadSome()) {
        answered = true;
        answered_at = Clock::now();
      }
    }
    if (i >= o.warmup) {
      samples.push_back(Micros(state.awaited_at - t0));
      if (http) answers.push_back(Micros(answered_at - t0));
      ++recorded;
    }
  }
  state.awaited.clear();
  if (state.puback_failures > 0) Die("the broker refused some publishes");
  if (recorded == 0) Die("no sample recorded");
  double sum = 0;
  for (double s : samples) sum += s;
  std::sort(samples.begin(), samples.end());
  std::sort(answers.begin(), answers.end());
  std::printf("latency via=%s n=%d p50_us=%llu p99_us=%llu mean_us=%.0f max_us=%llu", o.via.c_str(),
              recorded, static_cast<unsigned long long>(Percentile(samples, 0.50)),
              static_cast<unsigned long long>(Percentile(samples, 0.99)),
              sum / static_cast<double>(samples.size()),
              static_cast<unsigned long long>(samples.back()));
  if (!answers.empty()) {
    std::printf(" post_p50_us=%llu", static_cast<unsigned long long>(Percentile(answers, 0.50)));
  }
  std::printf(" stray=%llu\n", static_cast<unsigned long long>(state.stray));
  return 0;
}

int Throughput(const Options& o) {
  MqttState state;
  state.throughput_prefix = "tp-" + o.run_id + "-";
  state.seen.assign(static_cast<size_t>(o.count), 0);
  Mqtt mqtt(o.mqtt, "fl-throughput-" + o.run_id, &state);
  mqtt.Subscribe(o.prefix + o.out);
  const std::string payload(static_cast<size_t>(o.payload), 'x');
  const std::string topic = o.prefix + o.in;
  uint64_t published = 0;
  const auto t0 = Clock::now();
  Clock::time_point all_acked{};
  auto last_progress = t0;
  uint64_t last_distinct = 0;
  while (state.distinct < static_cast<uint64_t>(o.count)) {
    while (published < static_cast<uint64_t>(o.count) &&
           published - state.distinct < static_cast<uint64_t>(o.window)) {
      mqtt.Publish(topic, state.throughput_prefix + std::to_string(published), payload);
      ++published;
    }
    mqtt.Pump(10);
    const auto now = Clock::now();
    if (all_acked == Clock::time_point{} && state.pubacks >= static_cast<uint64_t>(o.count)) {
      all_acked = now;
    }
    if (state.distinct != last_distinct) {
      last_distinct = state.distinct;
      last_progress = now;
    } else if (now - last_progress > std::chrono::duration<double>(o.timeout)) {
      Die("no output for " + std::to_string(o.timeout) + " s after " +
          std::to_string(state.distinct) + " of " + std::to_string(o.count) + " (" +
          std::to_string(published) + " published, " + std::to_string(state.pubacks) +
          " acknowledged)");
    }
  }
  // Anything acknowledged late is still counted; the figure is the outputs'.
  for (int i = 0; i < 20 && state.pubacks < published; ++i) mqtt.Pump(10);
  if (state.puback_failures > 0) Die("the broker refused some publishes");
  const double seconds = std::chrono::duration<double>(state.last_output - t0).count();
  const double publish_seconds =
      all_acked == Clock::time_point{} ? 0 : std::chrono::duration<double>(all_acked - t0).count();
  std::printf(
      "throughput n=%d seconds=%.3f items_s=%.0f publish_s=%.3f duplicates=%llu "
      "stray=%llu\n",
      o.count, seconds, static_cast<double>(o.count) / seconds, publish_seconds,
      static_cast<unsigned long long>(state.duplicates),
      static_cast<unsigned long long>(state.stray));
  return 0;
}

void Usage() {
  std::fprintf(stderr,
               "usage: function_latency_client latency|throughput --mqtt HOST:PORT "
               "[--http HOST:PORT] [--via http|mqtt] [--samples N] [--warmup N] [--count N] "
               "[--window N] [--payload BYTES] [--prefix ef/default/ch/] [--in CH] [--out CH] "
               "[--run-id ID] [--timeout S] [--max-seconds S]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Usage();
  Options o;
  o.mode = argv[1];
  std::map<std::string, std::string> args;
  for (int i = 2; i < argc; i += 2) {
    if (i + 1 >= argc || std::strncmp(argv[i], "--", 2) != 0) Usage();
    args[argv[i] + 2] = argv[i + 1];
  }
  using Setter = std::function<void(const std::string&)>;
  const std::map<std::string, Setter> setters = {
      {"mqtt", [&](const std::string& v) { o.mqtt = ParseHostPort(v); }},
      {"http", [&](const std::string& v) { o.http = ParseHostPort(v); }},
      {"via", [&](const std::string& v) { o.via = v; }},
      {"prefix", [&](const std::string& v) { o.prefix = v; }},
      {"in", [&](const std::string& v) { o.in = v; }},
      {"out", [&](const std::string& v) { o.out = v; }},
      {"run-id", [&](const std::string& v) { o.run_id = v; }},
      {"samples", [&](const std::string& v) { o.samples = std::atoi(v.c_str()); }},
      {"warmup", [&](const std::string& v) { o.warmup = std::atoi(v.c_str()); }},
      {"payload", [&](const std::string& v) { o.payload = std::atoi(v.c_str()); }},
      {"count", [&](const std::string& v) { o.count = std::atoi(v.c_str()); }},
      {"window", [&](const std::string& v) { o.window = std::atoi(v.c_str()); }},
      {"timeout", [&](const std::string& v) { o.timeout = std::atof(v.c_str()); }},
      {"max-seconds", [&](const std::string& v) { o.max_seconds = std::atof(v.c_str()); }},
  };
  for (const auto& [key, value] : args) {
    const auto setter = setters.find(key);
    if (setter == setters.end()) Usage();
    setter->second(value);
  }
  if (o.mqtt.port == 0 || (o.via == "http" && o.http.port == 0) ||
      (o.via != "http" && o.via != "mqtt") || o.count < 1 || o.window < 1 || o.samples < 1) {
    Usage();
  }
  mosquitto_lib_init();
  if (o.mode != "latency" && o.mode != "throughput") Usage();
  const int rc = o.mode == "latency" ? Latency(o) : Throughput(o);
  mosquitto_lib_cleanup();
  return rc;
}
