// MqttMessage: one MQTT 5 publication as edgeflow sends and receives it: topic, payload and the
// properties the channel envelope uses.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgeflow::channels {

struct MqttMessage {
  std::string topic;
  std::string payload;
  int qos = 1;
  bool retain = false;
  // MQTT 5 properties (empty / 0 = absent).
  std::string content_type;
  std::string correlation_data;
  uint32_t message_expiry_seconds = 0;
  std::vector<std::pair<std::string, std::string>> user_properties;

  // The first user property called `name`, or nullptr.
  const std::string* UserProperty(std::string_view name) const {
    for (const auto& [key, value] : user_properties) {
      if (key == name) return &value;
    }
    return nullptr;
  }
};

}  // namespace edgeflow::channels
