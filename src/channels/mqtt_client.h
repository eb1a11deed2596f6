// MqttClient: an MQTT 5 client connection (libmosquitto) that stays connected on its own.
//
// It owns a network thread that connects, reconnects with back-off after any loss, and renews
// every subscription on each (re)connect. Its own reconnect loop (rather than libmosquitto's)
// sends the CONNECT properties again every time: libmosquitto 2.0's automatic reconnect drops the
// session expiry interval, which would silently turn a persistent session into a clean one after
// the first broker restart.
//
// Persistent sessions: with a fixed client id and `persistent_session`, the broker keeps the
// subscriptions and queues QoS 1 messages while the client is away (up to the broker's limits),
// and delivers them when it comes back.
//
// Thread-safety: all methods may be called from any thread. The message handler runs on the
// network thread, one message at a time; it must not block for long (hand work elsewhere).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "channels/mqtt_message.h"
#include "common/host_port.h"
#include "common/status.h"

struct mosquitto;
struct mosquitto_message;
struct mqtt5__property;

namespace edgeflow::channels {

struct MqttClientOptions {
  HostPort broker{"127.0.0.1", 7883};
  std::string client_id;  // empty: a random one (then the session cannot be persistent)
  bool persistent_session = false;
  uint32_t session_expiry_seconds = 7 * 24 * 3600;
  int keepalive_seconds = 30;
  std::string username;
  std::string password;
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{2000};
  // Replay: QoS 1/2 messages the broker acknowledged in the last `replay_window` are kept (up to
  // `replay_max_bytes`) and published again after a reconnect to a broker that has no session for
  // this client. A broker that crashed may have acknowledged them without saving them (Mosquitto
  // saves its state every autosave interval), so persistent subscribers that were away would
  // lose them; with the replay they get them, possibly twice. 0 = off.
  std::chrono::milliseconds replay_window{0};
  size_t replay_max_bytes = 64 << 20;
};

class MqttClient {
 public:
  using MessageHandler = std::function<void(const MqttMessage&)>;

  static Result<std::unique_ptr<MqttClient>> Create(MqttClientOptions options);
  ~MqttClient();
  MqttClient(const MqttClient&) = delete;
  MqttClient& operator=(const MqttClient&) = delete;

  // Set before Start(): receives every message of every subscription.
  void SetMessageHandler(MessageHandler handler);
  // Set before Start(): sees every message this client published and the broker acknowledged
  // (QoS 1 and 2; on the publishing thread, after the ack). With a no_local subscription it lets
  // a client count its own traffic without the broker echoing it back.
  void SetPublishedHandler(MessageHandler handler);
  // Starts the network thread, which connects in the background.
  Status Start();
  // Disconnects and joins the network thread. Idempotent.
  void Stop();

  bool connected() const { return connected_.load(std::memory_order_acquire); }
  // Waits until connected (true) or `timeout` passed (false).
  bool WaitConnected(std::chrono::milliseconds timeout);

  // QoS 0: returns once the library has the message. QoS 1 and 2: returns once the broker
  // acknowledged it; Unavailable if that did not happen within `timeout` (the library may still
  // deliver it later: at least once, never silently lost while the process lives), and the
  // broker's reason if it refused the message.
  Status Publish(const MqttMessage& message, std::chrono::milliseconds timeout);

  // Publish() without waiting: `done` runs exactly once, with what Publish() would have
  // returned (QoS 0: at once). It runs on the network thread when the ack arrives or `timeout`
  // passes (or on the calling thread when the outcome is known at once), so it must be quick
  // and must not call this client's blocking methods. Lets a caller keep many publications in
  // flight instead of one round trip each.
  using PublishCallback = std::move_only_function<void(Status)>;
  void PublishAsync(const MqttMessage& message, std::chrono::milliseconds timeout,
                    PublishCallback done);

  // Subscribes now if connected, and again after every reconnect. Waits for the SUBACK up to
  // `timeout` when connected. With `no_local` the broker does not send this client the messages
  // it published itself (MQTT 5).
  Status Subscribe(const std::string& filter, int qos,
                   std::chrono::milliseconds timeout = std::chrono::seconds(5),
                   bool no_local = false);

  // Stops the subscription (now if connected) and its renewal on reconnects. A persistent
  // session keeps a subscription across restarts until it is unsubscribed.
  Status Unsubscribe(const std::string& filter);

  uint64_t reconnects() const { return reconnects_.load(std::memory_order_relaxed); }
  // Messages published again after reconnects (see MqttClientOptions::replay_window).
  uint64_t replayed() const { return replayed_.load(std::memory_order_relaxed); }

 private:
  explicit MqttClient(MqttClientOptions options);
  void Run();
  void WaitBackoff(std::chrono::milliseconds delay);
  void SubscribeAll();
  void Remember(const MqttMessage& message);  // after its ack, for the replay window
  // Fails the asynchronous publications whose time is up (all of them when `all`).
  void SweepAsyncPublishes(bool all);
  void Replay();                              // on the network thread, at a reconnect

  // libmosquitto callbacks (on the network thread).
  static void OnConnect(mosquitto*, void* self, int rc, int flags, const mqtt5__property*);
  static void OnDisconnect(mosquitto*, void* self, int rc, const mqtt5__property*);
  static void OnPublish(mosquitto*, void* self, int mid, int reason, const mqtt5__property*);
  static void OnSubscribe(mosquitto*, void* self, int mid, int count, const int* granted,
                          const mqtt5__property*);
  static void OnMessage(mosquitto*, void* self, const mosquitto_message* message,
                        const mqtt5__property* properties);

  // Completion of an acknowledged request (publish or subscribe), keyed by message id. An ack
  // may arrive before the requesting thread registered its wait; it is then parked here.
  struct Ack {
    bool done = false;
    int reason = 0;
  };
  Status AwaitAck(std::map<int, Ack>* acks, int mid, std::chrono::milliseconds timeout,
                  const char* what);
  void CompleteAck(std::map<int, Ack>* acks, int mid, int reason);

  const MqttClientOptions options_;
  mosquitto* mosq_ = nullptr;
  MessageHandler handler_;
  MessageHandler published_;
  std::thread thread_;
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> reconnects_{0};
  std::atomic<uint64_t> replayed_{0};
  uint64_t connects_ = 0;  // network thread only

  std::mutex mu_;
  std::condition_variable cv_;  // connection state, acks, stop
  bool stopping_ = false;       // GUARDED_BY(mu_)
  bool started_ = false;        // GUARDED_BY(mu_)
  struct Subscription {
    int qos = 0;
    int options = 0;  // MQTT 5 subscription options (no local)
  };
  std::map<std::string, Subscription> subscriptions_;  // GUARDED_BY(mu_): by filter
  std::map<int, Ack> publish_acks_;                    // GUARDED_BY(mu_)
  std::map<int, Ack> subscribe_acks_;                  // GUARDED_BY(mu_)
  // Ids whose waiter gave up ({is publish, id}): their late ack is dropped, not parked.
  std::set<std::pair<bool, int>> abandoned_;  // GUARDED_BY(mu_)
  struct Recent {
    std::chrono::steady_clock::time_point acked_at;
    MqttMessage message;
  };
  std::deque<Recent> recent_;  // GUARDED_BY(mu_): acknowledged, within the replay window
  struct AsyncPublish {
    std::chrono::steady_clock::time_point deadline;
    MqttMessage message;
    PublishCallback done;
  };
  std::map<int, AsyncPublish> async_publishes_;  // GUARDED_BY(mu_): by message id
  // Time-outs of asynchronous publishes are looked for this often (so they fire up to this late).
  static constexpr std::chrono::milliseconds kAsyncSweepInterval{50};
  std::chrono::steady_clock::time_point next_async_sweep_;  // GUARDED_BY(mu_)
  size_t recent_bytes_ = 0;    // GUARDED_BY(mu_)
};

}  // namespace edgeflow::channels
