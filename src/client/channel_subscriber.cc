#include "client/channel_subscriber.h"

#include "channels/channel_name.h"

namespace edgeflow::client {

Result<std::unique_ptr<ChannelSubscriber>> ChannelSubscriber::Create(ServerUrl server,
                                                                     SubscriberOptions options,
                                                                     Handler handler) {
  if (options.channels.empty()) {
    return Error(Status::InvalidArgument("name at least one channel to subscribe to"));
  }
  for (const std::string& pattern : options.channels) {
    if (Status s = channels::ValidateChannelPattern(pattern); !s.ok()) return Error(std::move(s));
  }
  if (options.qos < 0 || options.qos > 1) {
    return Error(Status::InvalidArgument("QoS must be 0 or 1"));
  }
  if (!handler) return Error(Status::InvalidArgument("a subscriber needs a handler"));
  return std::unique_ptr<ChannelSubscriber>(
      new ChannelSubscriber(std::move(server), std::move(options), std::move(handler)));
}

ChannelSubscriber::ChannelSubscriber(ServerUrl server, SubscriberOptions options, Handler handler)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      node_(std::move(server), options_.timeout) {}

ChannelSubscriber::~ChannelSubscriber() { Stop(); }

Status ChannelSubscriber::Start() {
  if (mqtt_) return Status::Ok();
  auto info = node_.Channels();
  if (!info) return info.error();
  info_ = std::move(*info);
  channels::MqttClientOptions mqtt_options;
  mqtt_options.broker = info_.mqtt;
  mqtt_options.client_id = options_.session;
  mqtt_options.persistent_session = !options_.session.empty();
  auto mqtt = channels::MqttClient::Create(std::move(mqtt_options));
  if (!mqtt) return mqtt.error();
  mqtt_ = std::move(*mqtt);
  mqtt_->SetMessageHandler([this](const channels::MqttMessage& message) { OnMessage(message); });
  EF_RETURN_IF_ERROR(mqtt_->Start());
  if (!mqtt_->WaitConnected(options_.timeout)) {
    const std::string address = info_.mqtt.ToString();
    Stop();
    return Status::Unavailable("cannot connect to the node's MQTT broker at " + address);
  }
  for (const std::string& pattern : options_.channels) {
    if (Status s = mqtt_->Subscribe(channels::ChannelTopic(info_.tenant, pattern), options_.qos,
                                    options_.timeout);
        !s.ok()) {
      Stop();
      return s;
    }
  }
  return Status::Ok();
}

void ChannelSubscriber::Stop() {
  if (!mqtt_) return;
  mqtt_->Stop();
  mqtt_.reset();
}

void ChannelSubscriber::OnMessage(const channels::MqttMessage& message) {
  ReceivedMessage received;
  received.topic = message.topic;
  received.channel = channels::ChannelOfTopic(info_.tenant, message.topic).value_or("");
  auto envelope = channels::ReadEnvelope(message);
  if (!envelope) {
    received.status = envelope.error();
    received.data = message.payload;
    handler_(received);
    return;
  }
  received.envelope = std::move(*envelope);
  const channels::Envelope& env = received.envelope;
  if (env.inline_data) {
    received.data = message.payload;
  } else if (env.change == channels::Envelope::Change::kDelete) {
    // A deletion announces that there is nothing left to read.
  } else if (options_.resolve) {
    auto item = node_.Read(*env.ref);
    if (item) {
      received.data = std::move(item->value);
      received.newer_version = !env.ref->version.empty() && item->version != env.ref->version;
    } else {
      received.status = item.error();
    }
  }
  handler_(received);
}

}  // namespace edgeflow::client
