// MqttMessage: one MQTT 5 publication as edgeflow sends and receives it: topic, payload and the
// properties the channel envelope uses.
#pragma once

#include <cstddef>
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

  // The size of this message as an MQTT 5 PUBLISH packet, at most (variable-length integers are
  // counted at their longest), to check it against a broker's maximum packet size.
  size_t PacketBytes() const {
    constexpr size_t kFixedHeader = 1 + 4;  // type and flags, remaining length
    constexpr size_t kPacketId = 2;
    constexpr size_t kPropertiesLength = 4;
    size_t bytes = kFixedHeader + 2 + topic.size() + kPacketId + kPropertiesLength;
    if (!content_type.empty()) bytes += 1 + 2 + content_type.size();
    if (!correlation_data.empty()) bytes += 1 + 2 + correlation_data.size();
    if (message_expiry_seconds > 0) bytes += 1 + 4;
    for (const auto& [name, value] : user_properties)
      bytes += 1 + 2 + name.size() + 2 + value.size();
    return bytes + payload.size();
  }

  // The first user property called `name`, or nullptr.
  const std::string* UserProperty(std::string_view name) const {
    for (const auto& [key, value] : user_properties) {
      if (key == name) return &value;
    }
    return nullptr;
  }
};

}  // namespace edgeflow::channels
