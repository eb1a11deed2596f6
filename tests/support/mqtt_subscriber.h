// MqttSubscriber: a small MQTT 5 subscriber for the integration tests, written from the MQTT 5.0
// specification on a plain socket.
//
// It shares no code with the product's MQTT client (libmosquitto, src/channels) on purpose: the
// tests check what edgeflowd puts on the wire with a decoder of their own, so an encoding mistake
// cannot cancel out against the same mistake in the product's decoder. (It also keeps the test
// binary free of libmosquitto.)
//
// It connects, subscribes to its filters, records every message and acknowledges QoS 1 messages
// (PUBACK) after recording them. When the connection breaks it connects again with the same
// client id and subscribes again, until Stop(). With `persistent_session` it connects with Clean
// Start off and a session expiry interval, so the broker keeps its subscriptions and queues QoS 1
// messages while it is away.
//
// Supports what the tests need: QoS 0 and 1 deliveries (QoS 2 is never requested), no topic
// aliases (none are announced, so the broker sends none), no authentication.
//
// Thread-safety: every method may be called from any thread; a network thread does the I/O.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/host_port.h"
#include "common/status.h"

namespace edgeflow::test_support {

// One PUBLISH as received, with the MQTT 5 properties the channel envelope uses.
struct MqttReceived {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
  bool dup = false;
  std::string content_type;
  std::optional<std::string> correlation_data;
  std::optional<uint32_t> message_expiry_seconds;
  std::vector<std::pair<std::string, std::string>> user_properties;

  // The first user property called `name`, or nullptr.
  const std::string* UserProperty(std::string_view name) const;
  // The user property's value, or "<absent>" (for comparisons in assertions).
  std::string Prop(std::string_view name) const;
  // Everything but the payload (its size only), for failure messages.
  std::string Describe() const;
};

// The messages whose correlation data (the item id) is `item_id`.
std::vector<MqttReceived> ForItem(const std::vector<MqttReceived>& messages,
                                  const std::string& item_id);
// Every message, for failure messages; a payload is shown when it is short printable text.
std::string DescribeAll(const std::vector<MqttReceived>& messages);

struct MqttSubscriberOptions {
  HostPort broker;
  std::vector<std::string> filters;
  int qos = 1;
  std::string client_id;  // empty: a random one
  bool persistent_session = false;
  uint32_t session_expiry_seconds = 300;
  std::chrono::milliseconds reconnect_delay{100};
};

class MqttSubscriber {
 public:
  // Connects and subscribes; returns once the broker acknowledged every subscription, or an
  // error (with the last connection problem) when that did not happen within `timeout`.
  static Result<std::unique_ptr<MqttSubscriber>> Start(
      MqttSubscriberOptions options, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~MqttSubscriber();
  MqttSubscriber(const MqttSubscriber&) = delete;
  MqttSubscriber& operator=(const MqttSubscriber&) = delete;

  // Disconnects (the network thread sends DISCONNECT, so a persistent session is kept) and joins
  // the network thread. Idempotent.
  void Stop();

  std::vector<MqttReceived> Messages() const;
  // Waits until `done(messages so far)` holds or `timeout` passes; returns whether it held.
  bool WaitFor(const std::function<bool(const std::vector<MqttReceived>&)>& done,
               std::chrono::milliseconds timeout) const;
  bool WaitForCount(size_t count, std::chrono::milliseconds timeout) const;

  // Connections that got as far as an acknowledged subscription (1 after Start()).
  int sessions() const;
  bool WaitForSessions(int count, std::chrono::milliseconds timeout) const;
  // Whether the broker said it still had the session (CONNACK "session present") last time.
  bool last_session_present() const;
  // Why the last connection ended or could not be made ("" if none did).
  std::string last_error() const;

 private:
  explicit MqttSubscriber(MqttSubscriberOptions options);
  void Run();
  // One connection: connect, subscribe, receive until it breaks or Stop().
  Status Session();
  bool Stopping() const;

  const MqttSubscriberOptions options_;
  std::string client_id_;
  std::thread thread_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<MqttReceived> messages_;
  int sessions_ = 0;
  bool last_session_present_ = false;
  std::string last_error_;
  std::string fatal_error_;  // refused by the broker: retrying would not help
};

}  // namespace edgeflow::test_support
