// channel_latency_bench: publish -> subscriber latency of a computation channel, end to end
// through a running edgeflowd. Driven by bench/channel_latency, which starts the daemon; see
// bench/README.md.
//
// One process holds both ends, so that one steady clock times them:
//   producer (main thread)   POST /v1/channels/<ch>/publish?mode=inline|ref over one keep-alive
//                            HTTP connection (put-then-publish in the node);
//   subscriber (MQTT thread) an MqttClient with a QoS 1 subscription on the channel's topic; for a
//                            message by reference it reads the data with its own keep-alive
//                            HTTP connection (GET of the ef-ref path).
// The producer sends one message at a time and waits until the subscriber has the data before it
// sends the next: the figures are the latency of one message, without queueing behind others.
//
// Per message it records, from just before the POST is written:
//   in hand   the subscriber has the data (inline: the message arrived; ref: the GET returned);
//   arrived   the MQTT message arrived (for ref, before the GET);
//   post      the producer has the POST's response (the put-then-publish round trip).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "channels/channel_name.h"
#include "channels/envelope.h"
#include "channels/mqtt_client.h"
#include "client/http_client.h"
#include "client/server_url.h"
#include "common/host_port.h"
#include "common/status.h"

namespace edgeflow::bench {
namespace {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;
using channels::MqttClient;
using channels::MqttMessage;

// How long one message may take before the run is declared broken (the node's own publish
// timeout is 5 s; anything near that is a failure, not a latency sample).
constexpr auto kMessageTimeout = std::chrono::seconds(10);
constexpr auto kHttpTimeout = std::chrono::seconds(10);

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "channel_latency_bench: %s\n", message.c_str());
  std::fflush(stdout);
  // _Exit, not exit: the MQTT thread may still be running, and static destructors under it
  // would turn a clear error into a crash.
  std::_Exit(1);
}

// What the subscriber made of one message.
struct Delivery {
  Clock::time_point arrived;
  Clock::time_point in_hand;
  bool inline_data = false;
  std::string data;
  Status status;  // not Ok: the message or the fetch of its data failed
};

// The consuming side: receives the channel's messages and, for messages by reference, reads the
// data from the node as a consumer would. Deliveries are handed to the producer by item id.
class Subscriber {
 public:
  Subscriber(HostPort broker, client::ServerUrl server)
      : broker_(std::move(broker)), fetcher_(std::move(server), kHttpTimeout) {}

  ~Subscriber() {
    if (mqtt_) mqtt_->Stop();
  }

  Status Start(const std::string& topic) {
    auto created = MqttClient::Create(channels::MqttClientOptions{.broker = broker_});
    if (!created) return created.error();
    mqtt_ = std::move(*created);
    mqtt_->SetMessageHandler([this](const MqttMessage& message) { OnMessage(message); });
    if (Status s = mqtt_->Start(); !s.ok()) return s;
    if (!mqtt_->WaitConnected(std::chrono::seconds(10))) {
      return Status::Unavailable("cannot connect to the broker at " + broker_.ToString());
    }
    return mqtt_->Subscribe(topic, 1);
  }

  // The delivery of `item_id`, once the subscriber has it; nullopt after `timeout`.
  std::optional<Delivery> Await(const std::string& item_id, std::chrono::nanoseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return deliveries_.contains(item_id); })) {
      return std::nullopt;
    }
    Delivery delivery = std::move(deliveries_[item_id]);
    // One message is in flight at a time, so anything else here is a stale repeat (QoS 1 is at
    // least once) or a warm-up leftover: drop it rather than let the map grow.
    deliveries_.clear();
    return delivery;
  }

 private:
  // Runs on the MQTT network thread. Fetching the data here blocks that thread for the length of
  // a GET; that is harmless with one message in flight and keeps a thread hand-off (tens of
  // microseconds of wake-up) out of the figures.
  void OnMessage(const MqttMessage& message) {
    Delivery delivery;
    delivery.arrived = Clock::now();
    std::string item_id;
    auto envelope = channels::ReadEnvelope(message);
    if (!envelope) {
      delivery.status = envelope.error();
      item_id = message.correlation_data;
    } else {
      item_id = envelope->item_id;
      delivery.inline_data = envelope->inline_data;
      if (envelope->inline_data) {
        delivery.data = message.payload;
        delivery.in_hand = delivery.arrived;
      } else if (!envelope->ref) {
        delivery.status = Status::InvalidArgument("message by reference without ef-ref");
      } else {
        const std::string path = channels::RefPath(*envelope->ref);
        auto response = fetcher_.Request(http::verb::get, path);
        delivery.in_hand = Clock::now();
        if (!response) {
          delivery.status = response.error();
        } else if (response->result() != http::status::ok) {
          delivery.status =
              Status::Internal("GET " + path + " answered " +
                               std::to_string(response->result_int()) + ": " + response->body());
        } else {
          delivery.data = std::move(response->body());
        }
      }
    }
    {
      std::lock_guard lock(mu_);
      deliveries_[item_id] = std::move(delivery);
    }
    cv_.notify_all();
  }

  const HostPort broker_;
  client::HttpClient fetcher_;  // used on the MQTT thread only
  std::unique_ptr<MqttClient> mqtt_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Delivery> deliveries_;  // GUARDED_BY(mu_)
};

struct Case {
  std::string name;   // for the table
  std::string label;  // for RESULT keys
  size_t size = 0;
  bool by_reference = false;
  int samples = 0;
  double goal_p50_us = 0;
};

struct Samples {
  std::vector<double> in_hand_us;
  std::vector<double> arrived_us;
  std::vector<double> post_us;
  bool truncated = false;  // the time limit cut the run short
};

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  // Nearest rank: the smallest value that at least p of the samples do not exceed.
  size_t rank = static_cast<size_t>(p * static_cast<double>(values.size()) + 0.999999);
  rank = std::clamp<size_t>(rank, 1, values.size());
  return values[rank - 1];
}

double Mean(const std::vector<double>& values) {
  if (values.empty()) return 0;
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

// Data that differs per message, so that a stale or repeated delivery cannot pass the check.
std::string MakeData(size_t size, int sequence) {
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    data[i] = static_cast<char>('a' + (static_cast<size_t>(sequence) * 7 + i) % 26);
  }
  return data;
}

// Sends `warmup` unrecorded messages, then up to c.samples recorded ones or until `deadline`.
Samples RunCase(const Case& c, int warmup, Clock::time_point deadline, const std::string& channel,
                client::HttpClient* producer, Subscriber* subscriber) {
  Samples samples;
  const std::string target =
      "/v1/channels/" + channel + "/publish?mode=" + (c.by_reference ? "ref" : "inline");
  const client::Headers headers = {{"content-type", "application/octet-stream"}};
  for (int i = 0; i < warmup + c.samples; ++i) {
    if (i >= warmup && Clock::now() >= deadline) {
      samples.truncated = true;
      break;
    }
    std::string data = MakeData(c.size, i);
    const Clock::time_point start = Clock::now();
    auto response = producer->Request(http::verb::post, target, data, headers);
    const Clock::time_point posted = Clock::now();
    if (!response) Die("POST " + target + " failed: " + response.error().ToString());
    if (response->result() != http::status::ok) {
      Die("POST " + target + " answered " + std::to_string(response->result_int()) + ": " +
          response->body());
    }
    std::string item_id;
    bool inline_data = false;
    try {
      const auto body = nlohmann::json::parse(response->body());
      item_id = body.at("item_id").get<std::string>();
      inline_data = body.at("inline").get<bool>();
    } catch (const std::exception& e) {
      Die("POST " + target + " answered unreadable JSON (" + e.what() + "): " + response->body());
    }
    if (inline_data == c.by_reference) {
      Die("POST " + target + " published " + (inline_data ? "inline" : "by reference"));
    }
    const auto left = start + kMessageTimeout - Clock::now();
    std::optional<Delivery> delivery = subscriber->Await(item_id, left);
    if (!delivery) {
      Die("the subscriber did not get item " + item_id + " (" + c.name + ") within " +
          std::to_string(std::chrono::seconds(kMessageTimeout).count()) + " s of the POST");
    }
    if (!delivery->status.ok()) {
      Die("item " + item_id + " (" + c.name + "): " + delivery->status.ToString());
    }
    if (delivery->inline_data != !c.by_reference) {
      Die("item " + item_id + " arrived " + (delivery->inline_data ? "inline" : "by reference") +
          ", expected " + (c.by_reference ? "by reference" : "inline"));
    }
    if (delivery->data != data) {
      Die("item " + item_id + " (" + c.name + "): the subscriber got " +
          std::to_string(delivery->data.size()) + " bytes that differ from the " +
          std::to_string(data.size()) + " published");
    }
    if (i < warmup) continue;
    samples.in_hand_us.push_back(Micros(delivery->in_hand - start));
    samples.arrived_us.push_back(Micros(delivery->arrived - start));
    samples.post_us.push_back(Micros(posted - start));
  }
  return samples;
}

// Plain EKV round trips on the producer's connection, no channel involved: a POST of `size` bytes
// to /v1/kv/bench-latency/<key> and a GET of it. They split the channel figures: the publish
// round trip is roughly a put plus the broker's PUBACK, and a reference costs the subscriber
// roughly one GET after the message arrived.
struct KvSamples {
  std::vector<double> put_us;
  std::vector<double> get_us;
};

KvSamples RunKvRoundTrips(size_t size, int warmup, int count, Clock::time_point deadline,
                          client::HttpClient* http_client) {
  KvSamples samples;
  for (int i = 0; i < warmup + count; ++i) {
    if (i >= warmup && Clock::now() >= deadline) break;
    const std::string data = MakeData(size, i);
    const std::string target =
        "/v1/kv/bench-latency/kv-" + std::to_string(size) + "-" + std::to_string(i % 100);
    const Clock::time_point start = Clock::now();
    auto put = http_client->Request(http::verb::post, target, data);
    const Clock::time_point put_done = Clock::now();
    if (!put) Die("POST " + target + " failed: " + put.error().ToString());
    if (put->result() != http::status::ok) {
      Die("POST " + target + " answered " + std::to_string(put->result_int()) + ": " + put->body());
    }
    const Clock::time_point get_start = Clock::now();
    auto got = http_client->Request(http::verb::get, target);
    const Clock::time_point get_done = Clock::now();
    if (!got) Die("GET " + target + " failed: " + got.error().ToString());
    if (got->result() != http::status::ok || got->body() != data) {
      Die("GET " + target + " answered " + std::to_string(got->result_int()) +
          " without the data just written");
    }
    if (i < warmup) continue;
    samples.put_us.push_back(Micros(put_done - start));
    samples.get_us.push_back(Micros(get_done - get_start));
  }
  return samples;
}

int Main(int argc, char** argv) {
  CLI::App app{"Publish -> subscriber latency of an edgeflow computation channel"};
  std::string http_address;
  std::string mqtt_address;
  std::string channel = "bench-latency";
  int samples_small = 2000;
  int samples_large = 500;
  int warmup = 100;
  double max_seconds = 25;
  app.add_option("--http", http_address, "edgeflowd HTTP address HOST:PORT")->required();
  app.add_option("--mqtt", mqtt_address, "the node's MQTT broker HOST:PORT")->required();
  app.add_option("--channel", channel, "channel to publish on");
  app.add_option("--samples-small", samples_small, "recorded messages per 10-byte case");
  app.add_option("--samples-large", samples_large, "recorded messages per 100 KB case");
  app.add_option("--warmup", warmup, "unrecorded messages before each case");
  app.add_option("--max-seconds", max_seconds, "time limit of each case, warm-up included");
  CLI11_PARSE(app, argc, argv);

  auto server = client::ServerUrl::Parse(http_address);
  if (!server) Die(server.error().ToString());
  auto broker = ParseHostPort(mqtt_address);
  if (!broker) Die(broker.error().ToString());
  if (Status s = channels::ValidateChannelName(channel); !s.ok()) Die(s.ToString());
  const std::string topic = channels::ChannelTopic("default", channel);

  Subscriber subscriber(*broker, *server);
  if (Status s = subscriber.Start(topic); !s.ok()) Die(s.ToString());
  client::HttpClient producer(*server, kHttpTimeout);

  const std::vector<Case> cases = {
      {"10 B inline", "10b_inline", 10, false, samples_small, 300},
      {"10 B ref", "10b_ref", 10, true, samples_small, 300},
      {"100 KB inline", "100k_inline", 100 * 1024, false, samples_large, 1000},
      {"100 KB ref", "100k_ref", 100 * 1024, true, samples_large, 1000},
  };
  std::printf("topic %s, QoS 1, one message at a time, %d warm-up messages per case\n",
              topic.c_str(), warmup);
  std::printf("in_hand: POST sent -> subscriber has the data (ref: including its GET)\n");
  std::printf("arrived: POST sent -> MQTT message at the subscriber; post: POST round trip\n\n");
  std::printf("%-14s %7s %8s %8s %8s %8s %9s %-6s %11s %11s %11s %11s\n", "case", "samples",
              "mean_us", "p50_us", "p99_us", "max_us", "goal_p50", "goal", "arrived_p50",
              "arrived_p99", "post_p50", "post_p99");
  std::string result = "RESULT name=channel_latency";
  std::string post_result;
  bool any_truncated = false;
  for (const Case& c : cases) {
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(max_seconds));
    Samples s = RunCase(c, warmup, deadline, channel, &producer, &subscriber);
    if (s.in_hand_us.empty()) Die("no samples for " + c.name + " within the time limit");
    any_truncated |= s.truncated;
    const double p50 = Percentile(s.in_hand_us, 0.50);
    const double p99 = Percentile(s.in_hand_us, 0.99);
    std::printf("%-14s %7zu %8.1f %8.1f %8.1f %8.1f %9.0f %-6s %11.1f %11.1f %11.1f %11.1f\n",
                c.name.c_str(), s.in_hand_us.size(), Mean(s.in_hand_us), p50, p99,
                *std::max_element(s.in_hand_us.begin(), s.in_hand_us.end()), c.goal_p50_us,
                p50 <= c.goal_p50_us ? "met" : "MISSED", Percentile(s.arrived_us, 0.50),
                Percentile(s.arrived_us, 0.99), Percentile(s.post_us, 0.50),
                Percentile(s.post_us, 0.99));
    char buffer[256];
    std::snprintf(buffer, sizeof(buffer), " p50_us_%s=%.1f p99_us_%s=%.1f", c.label.c_str(), p50,
                  c.label.c_str(), p99);
    result += buffer;
    std::snprintf(buffer, sizeof(buffer), " post_p50_us_%s=%.1f", c.label.c_str(),
                  Percentile(s.post_us, 0.50));
    post_result += buffer;
  }
  // For information: where the time goes.
  std::printf("\nplain EKV round trips on one keep-alive connection (no channel)\n");
  std::printf("%-14s %7s %11s %11s %11s %11s\n", "size", "samples", "put_p50_us", "put_p99_us",
              "get_p50_us", "get_p99_us");
  const std::tuple<const char*, size_t, int> kv_sizes[] = {{"10b", 10, samples_small},
                                                           {"100k", 100 * 1024, samples_large}};
  for (const auto& [label, size, count] : kv_sizes) {
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(max_seconds));
    KvSamples kv = RunKvRoundTrips(size, warmup, count, deadline, &producer);
    if (kv.put_us.empty()) Die("no EKV samples within the time limit");
    any_truncated |= static_cast<int>(kv.put_us.size()) < count;
    std::printf("%-14s %7zu %11.1f %11.1f %11.1f %11.1f\n", size == 10 ? "10 B" : "100 KB",
                kv.put_us.size(), Percentile(kv.put_us, 0.50), Percentile(kv.put_us, 0.99),
                Percentile(kv.get_us, 0.50), Percentile(kv.get_us, 0.99));
    char buffer[128];
    std::snprintf(buffer, sizeof(buffer), " kv_put_p50_us_%s=%.1f kv_get_p50_us_%s=%.1f", label,
                  Percentile(kv.put_us, 0.50), label, Percentile(kv.get_us, 0.50));
    post_result += buffer;
  }
  if (any_truncated) {
    std::printf("\nnote: the time limit (--max-seconds %.0f) cut at least one case short\n",
                max_seconds);
  }
  std::printf("\n%s%s\n", result.c_str(), post_result.c_str());
  return 0;
}

}  // namespace
}  // namespace edgeflow::bench

int main(int argc, char** argv) { return edgeflow::bench::Main(argc, argv); }
