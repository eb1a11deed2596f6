// ChannelPublisher: put-then-publish, the producer's one call (papers/000, section 3.3).
//
// Publish() stores the data in EKV (durably: the put is acknowledged by the WAL) and only then
// publishes the channel message, so a subscriber that gets the message can always read the data.
// Small data also travels inline in the message; data above `inline_max_bytes` travels by
// reference only (claim check), and subscribers read it from EKV.
//
// When the broker does not acknowledge the publication in `publish_timeout` (it is down or
// restarting), Publish() fails with Unavailable, and the error names the stored item: the put is
// not lost, and publishing again is safe (subscribers tell repeats apart by the item id; delivery
// is at least once anyway). The client library may still deliver the first attempt once the
// broker is back.
//
// Thread-safety: Publish() may be called from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "channels/envelope.h"
#include "channels/mqtt_client.h"
#include "common/clock.h"
#include "common/status.h"
#include "kv/store.h"

namespace edgeflow::channels {

// Room for the topic and the envelope's properties in a message, besides the payload: the config
// keeps inline_max_bytes this far below the broker's packet limit. Publish() checks the real size
// of each message, so data whose envelope is larger still (a very long key) travels by reference.
inline constexpr size_t kMessageOverheadBytes = 4096;

struct ChannelsConfig {
  std::string tenant = "default";
  std::string ns = "channels";  // EKV namespace of published items that name none
  size_t inline_max_bytes = 64 << 10;
  int64_t item_ttl_ms = 3600 * 1000;  // published items expire after this; 0 = never
  std::chrono::milliseconds publish_timeout{5000};
  size_t max_packet_bytes = 64 << 20;  // the broker's limit: inline messages must fit in it
};

struct PublishRequest {
  enum class Mode { kAuto, kInline, kReference };
  std::string channel;
  std::string_view data;
  std::string key;  // empty: "<channel>/<new item id>"
  std::string ns;   // empty: ChannelsConfig::ns
  std::string content_type;
  std::optional<int64_t> ttl_ms;  // empty: ChannelsConfig::item_ttl_ms
  std::string trace_id;           // empty: a new one
  Mode mode = Mode::kAuto;
  std::string item_id;        // empty: the key if one is given, else a new id
  std::string stream;         // the stream key (envelope ef-stream); empty: none
  int64_t invoked_at_ms = 0;  // function outputs: when the invocation began
};

struct PublishResult {
  std::string topic;
  std::string item_id;
  ItemRef ref;
  uint64_t seq = 0;
  bool inline_data = true;
  std::string trace_id;
};

class ChannelPublisher {
 public:
  // All must outlive the publisher.
  ChannelPublisher(ChannelsConfig config, kv::Store* store, MqttClient* mqtt, const Clock* clock);

  Result<PublishResult> Publish(const PublishRequest& request);

  // Publish() of several items without waiting for the broker: their data is stored in one
  // commit when this returns (or `done[i]` already ran with the error), and `done[i]` runs once
  // the broker acknowledged the announcement of `requests[i]` or the publish timeout passed, on
  // the MQTT client's network thread (see MqttClient::PublishAsync: quick, no blocking calls).
  // The requests' data may go once this returns.
  using PublishCallback = std::move_only_function<void(Result<PublishResult>)>;
  void PublishAllAsync(std::span<const PublishRequest> requests, std::span<PublishCallback> done);

  const ChannelsConfig& config() const { return config_; }

 private:
  struct Prepared {
    PublishResult result;
    MqttMessage message;
    Envelope envelope;
    kv::PutOptions put;
  };
  // Validates and plans: where the data goes and how it travels.
  Result<Prepared> Plan(const PublishRequest& request);
  // Completes the announcement once the data is stored as `written`.
  static void Seal(const kv::WriteResult& written, std::string_view data, Prepared* prepared);
  // Plan(), store the data, Seal().
  Result<Prepared> Prepare(const PublishRequest& request);
  // The publish outcome, with the stored item named when it failed.
  static Status Announced(const PublishResult& result, Status published);

  const ChannelsConfig config_;
  kv::Store* const store_;
  MqttClient* const mqtt_;
  const Clock* const clock_;
};

}  // namespace edgeflow::channels
