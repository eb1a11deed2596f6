// MqttInbox: collects the messages an MQTT client receives (its message handler calls Add) and
// lets a test wait for them with a deadline. Header-only: only the unit tests, which link
// ef_channels, use it.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "channels/mqtt_message.h"

namespace edgeflow::test_support {

class MqttInbox {
 public:
  void Add(const channels::MqttMessage& m) {
    std::lock_guard lock(mu_);
    messages_.push_back(m);
    cv_.notify_all();
  }

  // Waits until at least `n` messages arrived (or the deadline); returns all received so far.
  std::vector<channels::MqttMessage> WaitFor(
      size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return messages_.size() >= n; });
    return messages_;
  }

  // Waits until every payload in `expected` arrived (delivery is at least once: repeats are
  // allowed and not counted); returns the distinct payloads received.
  std::set<std::string> WaitForPayloads(const std::set<std::string>& expected,
                                        std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    std::set<std::string> seen;
    cv_.wait_for(lock, timeout, [&] {
      seen.clear();
      for (const channels::MqttMessage& m : messages_) seen.insert(m.payload);
      return std::includes(seen.begin(), seen.end(), expected.begin(), expected.end());
    });
    return seen;
  }

  std::vector<channels::MqttMessage> messages() {
    std::lock_guard lock(mu_);
    return messages_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<channels::MqttMessage> messages_;
};

}  // namespace edgeflow::test_support
