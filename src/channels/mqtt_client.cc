#include "channels/mqtt_client.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include <optional>
#include <random>
#include <set>

#include "common/log.h"

namespace edgeflow::channels {
namespace {

// libmosquitto wants one global initialisation per process before any client exists.
void InitLibraryOnce() {
  static const int initialised = [] { return mosquitto_lib_init(); }();
  (void)initialised;
}

std::string RandomClientId() {
  std::random_device random;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "edgeflow-";
  for (int i = 0; i < 16; ++i) id.push_back(kHex[random() % 16]);
  return id;
}

// Owns a property list built for one call.
struct PropertyList {
  mosquitto_property* head = nullptr;
  ~PropertyList() { mosquitto_property_free_all(&head); }
};

Status FromMosquitto(int rc, const std::string& what);

// The MQTT 5 properties of `message`.
Status BuildProperties(const MqttMessage& message, PropertyList* properties) {
  if (!message.content_type.empty()) {
    mosquitto_property_add_string(&properties->head, MQTT_PROP_CONTENT_TYPE,
                                  message.content_type.c_str());
  }
  if (!message.correlation_data.empty()) {
    if (message.correlation_data.size() > 0xFFFF) {
      return Status::InvalidArgument("MQTT correlation data is limited to 65535 bytes");
    }
    mosquitto_property_add_binary(&properties->head, MQTT_PROP_CORRELATION_DATA,
                                  message.correlation_data.data(),
                                  static_cast<uint16_t>(message.correlation_data.size()));
  }
  if (message.message_expiry_seconds > 0) {
    mosquitto_property_add_int32(&properties->head, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
                                 message.message_expiry_seconds);
  }
  for (const auto& [name, value] : message.user_properties) {
    const int rc = mosquitto_property_add_string_pair(&properties->head, MQTT_PROP_USER_PROPERTY,
                                                      name.c_str(), value.c_str());
    if (rc != MOSQ_ERR_SUCCESS) return FromMosquitto(rc, "bad MQTT user property '" + name + "'");
  }
  if (message.payload.size() > static_cast<size_t>(INT32_MAX)) {
    return Status::ResourceExhausted("MQTT payload too large");
  }
  return Status::Ok();
}

Status FromMosquitto(int rc, const std::string& what) {
  if (rc == MOSQ_ERR_SUCCESS) return Status::Ok();
  const std::string message = what + ": " + mosquitto_strerror(rc);
  switch (rc) {
    case MOSQ_ERR_NO_CONN:
    case MOSQ_ERR_CONN_LOST:
    case MOSQ_ERR_CONN_REFUSED:
      return Status::Unavailable(message);
    case MOSQ_ERR_INVAL:
    case MOSQ_ERR_MALFORMED_UTF8:
    case MOSQ_ERR_QOS_NOT_SUPPORTED:
    case MOSQ_ERR_DUPLICATE_PROPERTY:
      return Status::InvalidArgument(message);
    case MOSQ_ERR_PAYLOAD_SIZE:
    case MOSQ_ERR_OVERSIZE_PACKET:
      return Status::ResourceExhausted(message);
    default:
      return Status::IoError(message);
  }
}

}  // namespace

Result<std::unique_ptr<MqttClient>> MqttClient::Create(MqttClientOptions options) {
  if (options.persistent_session && options.client_id.empty()) {
    return Error(Status::InvalidArgument("a persistent MQTT session needs a fixed client id"));
  }
  if (options.broker.port == 0) {
    return Error(Status::InvalidArgument("the MQTT broker address needs a port"));
  }
  InitLibraryOnce();
  std::unique_ptr<MqttClient> client(new MqttClient(std::move(options)));
  const std::string id =
      client->options_.client_id.empty() ? RandomClientId() : client->options_.client_id;
  client->mosq_ = mosquitto_new(id.c_str(), !client->options_.persistent_session, client.get());
  if (client->mosq_ == nullptr) {
    return Error(Status::Internal("cannot create an MQTT client (out of memory?)"));
  }
  mosquitto_int_option(client->mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  mosquitto_int_option(client->mosq_, MOSQ_OPT_TCP_NODELAY, 1);
  // Another thread publishes while the network thread runs the loop.
  mosquitto_threaded_set(client->mosq_, true);
  if (!client->options_.username.empty()) {
    mosquitto_username_pw_set(client->mosq_, client->options_.username.c_str(),
                              client->options_.password.c_str());
  }
  mosquitto_connect_v5_callback_set(client->mosq_, &MqttClient::OnConnect);
  mosquitto_disconnect_v5_callback_set(client->mosq_, &MqttClient::OnDisconnect);
  mosquitto_publish_v5_callback_set(client->mosq_, &MqttClient::OnPublish);
  mosquitto_subscribe_v5_callback_set(client->mosq_, &MqttClient::OnSubscribe);
  mosquitto_message_v5_callback_set(client->mosq_, &MqttClient::OnMessage);
  return client;
}

MqttClient::MqttClient(MqttClientOptions options) : options_(std::move(options)) {}

MqttClient::~MqttClient() {
  Stop();
  if (mosq_ != nullptr) mosquitto_destroy(mosq_);
}

void MqttClient::SetMessageHandler(MessageHandler handler) { handler_ = std::move(handler); }

void MqttClient::SetPublishedHandler(MessageHandler handler) { published_ = std::move(handler); }

Status MqttClient::Start() {
  std::lock_guard lock(mu_);
  if (started_) return Status::FailedPrecondition("the MQTT client was already started");
  started_ = true;
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void MqttClient::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  connected_.store(false, std::memory_order_release);
}

bool MqttClient::WaitConnected(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return connected() || stopping_; }) && connected();
}

void MqttClient::WaitBackoff(std::chrono::milliseconds delay) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, delay, [this] { return stopping_; });
}

void MqttClient::Run() {
  std::chrono::milliseconds backoff = options_.reconnect_min;
  bool ever_connected = false;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
    }
    PropertyList properties;
    if (options_.persistent_session) {
      mosquitto_property_add_int32(&properties.head, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                   options_.session_expiry_seconds);
    }
    const int rc =
        mosquitto_connect_bind_v5(mosq_, options_.broker.host.c_str(), options_.broker.port,
                                  options_.keepalive_seconds, nullptr, properties.head);
    if (rc != MOSQ_ERR_SUCCESS) {
      log::Debug("mqtt connect failed", {{"broker", options_.broker.ToString()},
                                         {"error", std::string(mosquitto_strerror(rc))}});
      SweepAsyncPublishes(/*all=*/false);
      WaitBackoff(backoff);
      backoff = std::min(backoff * 2, options_.reconnect_max);
      continue;
    }
    if (ever_connected) reconnects_.fetch_add(1, std::memory_order_relaxed);
    ever_connected = true;
    // Serve the connection until it breaks or we stop.
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) break;
      }
      const int loop_rc = mosquitto_loop(mosq_, 100, 1);
      SweepAsyncPublishes(/*all=*/false);
      if (loop_rc != MOSQ_ERR_SUCCESS) {
        log::Debug("mqtt connection lost", {{"broker", options_.broker.ToString()},
                                            {"error", std::string(mosquitto_strerror(loop_rc))}});
        break;
      }
      if (connected()) backoff = options_.reconnect_min;
    }
    connected_.store(false, std::memory_order_release);
    bool stopping;
    {
      std::lock_guard lock(mu_);
      stopping = stopping_;
    }
    if (stopping) {
      mosquitto_disconnect(mosq_);
      // Let the DISCONNECT go out.
      for (int i = 0; i < 5 && mosquitto_loop(mosq_, 10, 1) == MOSQ_ERR_SUCCESS; ++i) {
      }
      break;
    }
    SweepAsyncPublishes(/*all=*/false);
    WaitBackoff(backoff);
    backoff = std::min(backoff * 2, options_.reconnect_max);
  }
  SweepAsyncPublishes(/*all=*/true);  // nobody is left to deliver them
  cv_.notify_all();
}

void MqttClient::SubscribeAll() {
  std::map<std::string, Subscription> subscriptions;
  {
    std::lock_guard lock(mu_);
    subscriptions = subscriptions_;
  }
  for (const auto& [filter, subscription] : subscriptions) {
    const int rc = mosquitto_subscribe_v5(mosq_, nullptr, filter.c_str(), subscription.qos,
                                          subscription.options, nullptr);
    if (rc != MOSQ_ERR_SUCCESS) {
      log::Warn("mqtt resubscribe failed",
                {{"filter", filter}, {"error", std::string(mosquitto_strerror(rc))}});
    }
  }
}

Status MqttClient::Publish(const MqttMessage& message, std::chrono::milliseconds timeout) {
  if (message.qos < 0 || message.qos > 2) {
    return Status::InvalidArgument("MQTT QoS must be 0, 1 or 2");
  }
  PropertyList properties;
  EF_RETURN_IF_ERROR(BuildProperties(message, &properties));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int mid = 0;
    const int rc = mosquitto_publish_v5(
        mosq_, &mid, message.topic.c_str(), static_cast<int>(message.payload.size()),
        message.payload.data(), message.qos, message.retain, properties.head);
    if (rc == MOSQ_ERR_NO_CONN && message.qos > 0) {
      // libmosquitto queued the message before it found the connection down, and sends it
      // itself after the reconnect: publishing again would deliver it twice. Wait for its ack.
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      Status acked =
          AwaitAck(&publish_acks_, mid, std::max(left, std::chrono::milliseconds(0)), "publish");
      if (!acked.ok() && acked.Is(ErrorCode::kUnavailable)) {
        return Status::Unavailable("MQTT broker " + options_.broker.ToString() +
                                   " is not reachable (the message stays queued in this process "
                                   "and is sent if the broker comes back)");
      }
      return acked;
    }
    if (rc == MOSQ_ERR_NO_CONN) {
      // QoS 0 is not queued: wait for the reconnect, within the caller's time, and send again.
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !WaitConnected(left)) {
        return Status::Unavailable("MQTT broker " + options_.broker.ToString() +
                                   " is not reachable");
      }
      continue;
    }
    if (rc != MOSQ_ERR_SUCCESS) return FromMosquitto(rc, "MQTT publish failed");
    if (message.qos == 0) return Status::Ok();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    Status acked =
        AwaitAck(&publish_acks_, mid, std::max(left, std::chrono::milliseconds(0)), "publish");
    if (acked.ok()) {
      Remember(message);
      if (published_) published_(message);
    }
    return acked;
  }
}

void MqttClient::PublishAsync(const MqttMessage& message, std::chrono::milliseconds timeout,
                              PublishCallback done) {
  if (message.qos < 0 || message.qos > 2) {
    done(Status::InvalidArgument("MQTT QoS must be 0, 1 or 2"));
    return;
  }
  PropertyList properties;
  if (Status s = BuildProperties(message, &properties); !s.ok()) {
    done(std::move(s));
    return;
  }
  int mid = 0;
  const int rc = mosquitto_publish_v5(mosq_, &mid, message.topic.c_str(),
                                      static_cast<int>(message.payload.size()),
                                      message.payload.data(), message.qos, message.retain,
                                      properties.head);
  // NO_CONN with QoS > 0: the library queued it and sends it after the reconnect (see Publish).
  if (rc != MOSQ_ERR_SUCCESS && !(rc == MOSQ_ERR_NO_CONN && message.qos > 0)) {
    done(rc == MOSQ_ERR_NO_CONN
             ? Status::Unavailable("MQTT broker " + options_.broker.ToString() +
                                   " is not reachable")
             : FromMosquitto(rc, "MQTT publish failed"));
    return;
  }
  if (message.qos == 0) {
    done(Status::Ok());
    return;
  }
  std::unique_lock lock(mu_);
  // The ack may have come already (read on the network thread while this one was publishing):
  // CompleteAck parked it.
  abandoned_.erase({true, mid});
  if (auto early = publish_acks_.find(mid); early != publish_acks_.end() && early->second.done) {
    const int reason = early->second.reason;
    publish_acks_.erase(early);
    lock.unlock();
    if (reason >= 128) {
      done(Status::FailedPrecondition(std::string("MQTT broker refused the publish: ") +
                                      mosquitto_reason_string(reason)));
      return;
    }
    Remember(message);
    if (published_) published_(message);
    done(Status::Ok());
    return;
  }
  async_publishes_[mid] =
      AsyncPublish{std::chrono::steady_clock::now() + timeout, message, std::move(done)};
}

void MqttClient::SweepAsyncPublishes(bool all) {
  std::vector<AsyncPublish> expired;
  {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    // Called after every turn of the network loop, which under load is once per packet: a walk
    // over thousands of publishes in flight each time would cost more than the traffic itself.
    if (!all && now < next_async_sweep_) return;
    next_async_sweep_ = now + kAsyncSweepInterval;
    for (auto it = async_publishes_.begin(); it != async_publishes_.end();) {
      if (all || it->second.deadline <= now) {
        abandoned_.insert({true, it->first});  // a late ack is dropped
        expired.push_back(std::move(it->second));
        it = async_publishes_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (AsyncPublish& publish : expired) {
    publish.done(Status::Unavailable("MQTT publish not acknowledged by " +
                                     options_.broker.ToString() + " in time"));
  }
}

void MqttClient::Remember(const MqttMessage& message) {
  if (options_.replay_window.count() <= 0) return;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  recent_.push_back({now, message});
  recent_bytes_ += message.PacketBytes();
  const auto horizon = now - options_.replay_window;
  while (!recent_.empty() &&
         (recent_.front().acked_at < horizon || recent_bytes_ > options_.replay_max_bytes)) {
    recent_bytes_ -= recent_.front().message.PacketBytes();
    recent_.pop_front();
  }
}

void MqttClient::Replay() {
  std::vector<MqttMessage> messages;
  {
    std::lock_guard lock(mu_);
    const auto horizon = std::chrono::steady_clock::now() - options_.replay_window;
    for (const Recent& recent : recent_) {
      if (recent.acked_at >= horizon) messages.push_back(recent.message);
    }
  }
  if (messages.empty()) return;
  size_t sent = 0;
  for (const MqttMessage& message : messages) {
    PropertyList properties;
    if (!BuildProperties(message, &properties).ok()) continue;
    int mid = 0;
    const int rc = mosquitto_publish_v5(
        mosq_, &mid, message.topic.c_str(), static_cast<int>(message.payload.size()),
        message.payload.data(), message.qos, message.retain, properties.head);
    if (rc != MOSQ_ERR_SUCCESS) continue;
    ++sent;
    // Nobody waits for these acks: drop them when they come (they cannot come before this
    // callback returns, since they are read on this thread).
    std::lock_guard lock(mu_);
    abandoned_.insert({true, mid});
  }
  replayed_.fetch_add(sent, std::memory_order_relaxed);
  log::Info("mqtt: published again what the broker acknowledged just before it lost the session",
            {{"broker", options_.broker.ToString()}, {"messages", std::to_string(sent)}});
}

Status MqttClient::Subscribe(const std::string& filter, int qos, std::chrono::milliseconds timeout,
                             bool no_local) {
  if (qos < 0 || qos > 2) return Status::InvalidArgument("MQTT QoS must be 0, 1 or 2");
  if (filter.empty()) return Status::InvalidArgument("empty MQTT topic filter");
  const Subscription subscription{qos, no_local ? MQTT_SUB_OPT_NO_LOCAL : 0};
  {
    std::lock_guard lock(mu_);
    subscriptions_[filter] = subscription;
  }
  if (!connected()) return Status::Ok();  // the next connect subscribes
  int mid = 0;
  const int rc =
      mosquitto_subscribe_v5(mosq_, &mid, filter.c_str(), qos, subscription.options, nullptr);
  if (rc == MOSQ_ERR_NO_CONN) return Status::Ok();
  if (rc != MOSQ_ERR_SUCCESS) {
    std::lock_guard lock(mu_);
    subscriptions_.erase(filter);
    return FromMosquitto(rc, "cannot subscribe to '" + filter + "'");
  }
  return AwaitAck(&subscribe_acks_, mid, timeout, "subscribe");
}

Status MqttClient::Unsubscribe(const std::string& filter) {
  {
    std::lock_guard lock(mu_);
    if (subscriptions_.erase(filter) == 0) return Status::Ok();
  }
  if (!connected()) return Status::Ok();  // not renewed at the next connect
  // Not awaited: the filter is gone from the renewals either way, and a lost UNSUBSCRIBE only
  // leaves messages that the handler ignores (no route).
  const int rc = mosquitto_unsubscribe_v5(mosq_, nullptr, filter.c_str(), nullptr);
  if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
    return FromMosquitto(rc, "cannot unsubscribe from '" + filter + "'");
  }
  return Status::Ok();
}

Status MqttClient::AwaitAck(std::map<int, Ack>* acks, int mid, std::chrono::milliseconds timeout,
                            const char* what) {
  std::unique_lock lock(mu_);
  abandoned_.erase({acks == &publish_acks_, mid});  // the library reused the id
  Ack& ack = (*acks)[mid];                          // may already be there, completed: an early ack
  const bool done = cv_.wait_for(lock, timeout, [&] { return ack.done || stopping_; });
  if (!done || !ack.done) {
    // A late ack for this id will park an entry that nobody collects until the library reuses
    // the id, which it does only after the message is gone; AwaitAck then takes it as its own.
    // So mark the id abandoned: CompleteAck drops the next ack that arrives for it.
    acks->erase(mid);
    abandoned_.insert({acks == &publish_acks_, mid});
    return Status::Unavailable(std::string("MQTT ") + what + " not acknowledged by " +
                               options_.broker.ToString() + " in time");
  }
  const int reason = ack.reason;
  acks->erase(mid);
  if (reason >= 128) {
    return Status::FailedPrecondition(std::string("MQTT broker refused the ") + what + ": " +
                                      mosquitto_reason_string(reason));
  }
  return Status::Ok();
}

void MqttClient::CompleteAck(std::map<int, Ack>* acks, int mid, int reason) {
  {
    std::lock_guard lock(mu_);
    if (abandoned_.erase({acks == &publish_acks_, mid}) > 0) return;
    Ack& ack = (*acks)[mid];
    ack.done = true;
    ack.reason = reason;
  }
  cv_.notify_all();
}

void MqttClient::OnConnect(mosquitto*, void* self, int rc, int flags, const mqtt5__property*) {
  auto* client = static_cast<MqttClient*>(self);
  if (rc != 0) {
    log::Warn("mqtt connection refused", {{"broker", client->options_.broker.ToString()},
                                          {"reason", std::string(mosquitto_reason_string(rc))}});
    return;
  }
  client->SubscribeAll();
  // CONNACK flag 0x01 = session present. A broker that kept the session also kept (and saved)
  // what it acknowledged to us; one that did not may have crashed before saving it.
  const bool session_present = (flags & 0x01) != 0;
  if (client->connects_++ > 0 && !session_present) client->Replay();
  client->connected_.store(true, std::memory_order_release);
  client->cv_.notify_all();
}

void MqttClient::OnDisconnect(mosquitto*, void* self, int, const mqtt5__property*) {
  auto* client = static_cast<MqttClient*>(self);
  client->connected_.store(false, std::memory_order_release);
  client->cv_.notify_all();
}

void MqttClient::OnPublish(mosquitto*, void* self, int mid, int reason, const mqtt5__property*) {
  auto* client = static_cast<MqttClient*>(self);
  std::optional<AsyncPublish> async;
  {
    std::lock_guard lock(client->mu_);
    if (auto it = client->async_publishes_.find(mid); it != client->async_publishes_.end()) {
      async = std::move(it->second);
      client->async_publishes_.erase(it);
    }
  }
  if (!async) {
    client->CompleteAck(&client->publish_acks_, mid, reason);
    return;
  }
  if (reason >= 128) {
    async->done(Status::FailedPrecondition(std::string("MQTT broker refused the publish: ") +
                                           mosquitto_reason_string(reason)));
    return;
  }
  client->Remember(async->message);
  if (client->published_) client->published_(async->message);
  async->done(Status::Ok());
}

void MqttClient::OnSubscribe(mosquitto*, void* self, int mid, int count, const int* granted,
                             const mqtt5__property*) {
  auto* client = static_cast<MqttClient*>(self);
  int reason = 0;
  for (int i = 0; i < count; ++i) {
    if (granted[i] >= 128) reason = granted[i];
  }
  client->CompleteAck(&client->subscribe_acks_, mid, reason);
}

void MqttClient::OnMessage(mosquitto*, void* self, const mosquitto_message* message,
                           const mqtt5__property* properties) {
  auto* client = static_cast<MqttClient*>(self);
  if (!client->handler_) return;
  MqttMessage out;
  out.topic = message->topic;
  if (message->payloadlen > 0) {
    out.payload.assign(static_cast<const char*>(message->payload), message->payloadlen);
  }
  out.qos = message->qos;
  out.retain = message->retain;
  for (const mosquitto_property* p = properties; p != nullptr; p = mosquitto_property_next(p)) {
    switch (mosquitto_property_identifier(p)) {
      case MQTT_PROP_CONTENT_TYPE: {
        char* value = nullptr;
        if (mosquitto_property_read_string(p, MQTT_PROP_CONTENT_TYPE, &value, false)) {
          out.content_type = value;
          free(value);
        }
        break;
      }
      case MQTT_PROP_CORRELATION_DATA: {
        void* value = nullptr;
        uint16_t length = 0;
        if (mosquitto_property_read_binary(p, MQTT_PROP_CORRELATION_DATA, &value, &length, false)) {
          out.correlation_data.assign(static_cast<const char*>(value), length);
          free(value);
        }
        break;
      }
      case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL:
        mosquitto_property_read_int32(p, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
                                      &out.message_expiry_seconds, false);
        break;
      case MQTT_PROP_USER_PROPERTY: {
        char* name = nullptr;
        char* value = nullptr;
        if (mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, false)) {
          out.user_properties.emplace_back(name, value);
          free(name);
          free(value);
        }
        break;
      }
      default:
        break;
    }
  }
  client->handler_(out);
}

}  // namespace edgeflow::channels
