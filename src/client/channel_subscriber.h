// ChannelSubscriber: receives the messages of one or more channels of a node and hands each to a
// handler with its data in hand, whether the data travelled inline or by reference (claim
// check): referenced data is read from the node's EKV before the handler runs.
//
// It asks the node (GET /v1/node) where its broker is and what its tenant is, then keeps an MQTT
// 5 connection to the broker (reconnecting and resubscribing on its own). With a session name
// the connection is a persistent session with QoS 1: messages published while the subscriber is
// away are kept by the broker and delivered when it comes back (at least once).
//
// The handler runs on the subscriber's network thread, one message at a time, in the broker's
// order; while it runs, no further message is taken.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "channels/envelope.h"
#include "channels/mqtt_client.h"
#include "client/edge_client.h"
#include "common/status.h"

namespace edgeflow::client {

struct SubscriberOptions {
  // Channel names or patterns ('+' for one segment, a final '#' for any rest).
  std::vector<std::string> channels;
  int qos = 1;
  // A persistent session under this name (the MQTT client id); empty = a fresh session that the
  // broker forgets on disconnect.
  std::string session;
  bool resolve = true;  // read referenced data from EKV before calling the handler
  std::chrono::milliseconds timeout{30'000};  // for each request to the node
};

struct ReceivedMessage {
  std::string channel;  // empty for a topic outside the node's channels
  std::string topic;
  channels::Envelope envelope;
  std::string data;  // the data, inline or read from EKV (empty for key deletions)
  // Ok when `data` is the item's data. Otherwise why it could not be had: a malformed envelope
  // (InvalidArgument), an item that expired before it was read (NotFound), the node unreachable.
  Status status;
  // The item was read by reference and its version is newer than the announced one (the key was
  // written again since).
  bool newer_version = false;
};

class ChannelSubscriber {
 public:
  using Handler = std::function<void(const ReceivedMessage&)>;

  // Checks the options; contacts nothing yet.
  static Result<std::unique_ptr<ChannelSubscriber>> Create(ServerUrl server,
                                                           SubscriberOptions options,
                                                           Handler handler);
  ~ChannelSubscriber();
  ChannelSubscriber(const ChannelSubscriber&) = delete;
  ChannelSubscriber& operator=(const ChannelSubscriber&) = delete;

  // Asks the node for its broker, connects and subscribes; Unavailable if the node or its
  // broker cannot be reached within the timeout.
  Status Start();
  void Stop();

 private:
  ChannelSubscriber(ServerUrl server, SubscriberOptions options, Handler handler);
  void OnMessage(const channels::MqttMessage& message);

  SubscriberOptions options_;
  Handler handler_;
  EdgeClient node_;  // for Start() and for reading references (on the network thread)
  ChannelsInfo info_;
  std::unique_ptr<channels::MqttClient> mqtt_;
};

}  // namespace edgeflow::client
