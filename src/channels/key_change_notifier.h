// KeyChangeNotifier: makes the store itself a producer. For each configured rule, every change of
// a key of namespace `ns` starting with `prefix` is announced on `channel`, in the channel
// envelope, by reference (ef-data=ref, ef-change=put|delete, ef-ref and ef-version naming the
// item), so subscribers read the new value from EKV exactly as they read claim-checked data.
//
// The notifier follows the store's change log, so it sees every write whichever front-end made
// it (HTTP, RESP, put-then-publish, functions), in commit order. Delivery is at least once: a
// change is announced with QoS 1 and the notifier moves on only once the broker acknowledged it
// (while the broker is down it retries, and the changes wait in the log). How far each rule got is
// saved in the store (namespace `_edgeflow`, key `notify/<ns>/<channel>`) at Start(), at Stop()
// and at most once a second in between, so after a restart the rule resumes where it was; a
// crash may announce the last second's changes again. A rule that has no saved position starts
// with the changes made after Start().
// If the node was down for longer than the change log keeps records, the changes that fell out
// of the log are skipped, logged and counted in skipped_records().
//
// Thread-safety: Start() and Stop() from one thread; the counters from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "channels/mqtt_client.h"
#include "common/status.h"
#include "kv/store.h"

namespace edgeflow::channels {

struct NotifyRule {
  std::string ns;
  std::string prefix;  // empty = every key of the namespace
  std::string channel;
};

// InvalidArgument naming the rule (by its position) and what is wrong with it.
Status ValidateNotifyRules(const std::vector<NotifyRule>& rules);

class KeyChangeNotifier {
 public:
  // `store` and `mqtt` must outlive the notifier. Validates the rules.
  static Result<std::unique_ptr<KeyChangeNotifier>> Create(std::vector<NotifyRule> rules,
                                                           std::string tenant, kv::Store* store,
                                                           MqttClient* mqtt);
  ~KeyChangeNotifier();
  KeyChangeNotifier(const KeyChangeNotifier&) = delete;
  KeyChangeNotifier& operator=(const KeyChangeNotifier&) = delete;

  // Reads the saved positions and starts following the change log.
  Status Start();
  // Saves the positions and stops. Idempotent.
  void Stop();

  uint64_t published() const { return published_.load(std::memory_order_relaxed); }
  uint64_t skipped_records() const { return skipped_.load(std::memory_order_relaxed); }
  uint64_t publish_failures() const { return failures_.load(std::memory_order_relaxed); }

 private:
  struct RuleState {
    NotifyRule rule;
    std::string topic;
    std::string progress_key;
    uint64_t next_seq = 0;
    bool unsaved = false;  // announced changes since the position was last saved
  };

  KeyChangeNotifier(std::vector<NotifyRule> rules, std::string tenant, kv::Store* store,
                    MqttClient* mqtt);
  void Run();
  // Announces one page of the rule's changes; false if it stopped at a publish that failed.
  bool Pump(RuleState& state, bool* more);
  void SaveProgress(bool force);
  bool WaitFor(std::chrono::milliseconds delay);  // false once Stop() was asked

  const std::string tenant_;
  kv::Store* const store_;
  MqttClient* const mqtt_;
  std::vector<RuleState> rules_;  // owned by the notifier thread once started
  std::chrono::steady_clock::time_point last_save_;
  uint64_t listener_id_ = 0;
  bool listening_ = false;
  std::thread thread_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;       // GUARDED_BY(mu_)
  uint64_t committed_ = 0;  // GUARDED_BY(mu_): newest sequence number the store reported

  std::atomic<uint64_t> published_{0};
  std::atomic<uint64_t> skipped_{0};
  std::atomic<uint64_t> failures_{0};
};

}  // namespace edgeflow::channels
