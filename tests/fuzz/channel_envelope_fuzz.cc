// Fuzzes the reading of channel envelopes from received MQTT messages, whose properties come from
// any client of the broker: the input is split into a payload and user properties; reading must
// succeed or fail cleanly, and an envelope that reads must write and read back the same. The
// correlation-data line also goes through the channel-name checks, which see topics and names
// from any client too.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "channels/channel_name.h"
#include "channels/envelope.h"

namespace {

void CheckChannelName(std::string_view name) {
  using namespace edgeflow::channels;
  const bool valid_name = ValidateChannelName(name).ok();
  // Every name is a pattern; a valid name maps to a topic and back.
  if (valid_name && !ValidateChannelPattern(name).ok()) std::abort();
  if (valid_name) {
    auto back = ChannelOfTopic("t", ChannelTopic("t", name));
    if (!back || *back != name) std::abort();
  }
  auto channel = ChannelOfTopic("t", name);
  if (channel && !ValidateChannelName(*channel).ok()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using edgeflow::channels::MqttMessage;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // Layout: lines "name=value" become user properties until an empty line; the rest is payload.
  MqttMessage message;
  while (!in.empty()) {
    const size_t eol = in.find('\n');
    std::string_view line = in.substr(0, eol);
    in = eol == std::string_view::npos ? std::string_view() : in.substr(eol + 1);
    if (line.empty()) break;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      message.correlation_data.assign(line);
      continue;
    }
    message.user_properties.emplace_back(std::string(line.substr(0, eq)),
                                         std::string(line.substr(eq + 1)));
  }
  message.payload.assign(in);
  CheckChannelName(message.correlation_data);

  auto envelope = edgeflow::channels::ReadEnvelope(message);
  if (!envelope) return 0;
  MqttMessage again;
  if (envelope->inline_data) again.payload = message.payload;
  edgeflow::channels::WriteEnvelope(*envelope, &again);
  auto second = edgeflow::channels::ReadEnvelope(again);
  if (!second || second->item_id != envelope->item_id ||
      second->inline_data != envelope->inline_data || second->size != envelope->size ||
      second->ref.has_value() != envelope->ref.has_value() ||
      (second->ref &&
       (second->ref->ns != envelope->ref->ns || second->ref->key != envelope->ref->key ||
        second->ref->version != envelope->ref->version))) {
    std::abort();
  }
  return 0;
}
