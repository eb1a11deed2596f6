// Channel names and their MQTT topics.
//
// A channel is a named MQTT topic under the node's prefix: channel "cams/front" of tenant
// "default" is topic "ef/default/ch/cams/front". Names are one or more '/'-separated segments of
// letters, digits, '_', '-' and '.', at most 200 bytes: no MQTT wildcards ('+', '#'), no empty
// segments, no "." or ".." segments, nothing that needs escaping in a URL path or a shell.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace edgeflow::channels {

inline constexpr size_t kMaxChannelNameBytes = 200;

// InvalidArgument naming what is wrong, or Ok.
Status ValidateChannelName(std::string_view name);
// A subscription pattern: a channel name whose segments may also be MQTT wildcards, '+' (any one
// segment) or, as the last segment, '#' (any number of segments, including none).
Status ValidateChannelPattern(std::string_view pattern);
// Tenants follow the rules of a single channel segment.
Status ValidateTenant(std::string_view tenant);

// "ef/<tenant>/ch/<name>". Both must be valid.
std::string ChannelTopic(std::string_view tenant, std::string_view name);
// The topic filter that matches every channel of a tenant: "ef/<tenant>/ch/#".
std::string AllChannelsFilter(std::string_view tenant);
// The channel name in a topic of `tenant`, or nullopt if the topic is not one of its channels.
std::optional<std::string> ChannelOfTopic(std::string_view tenant, std::string_view topic);

}  // namespace edgeflow::channels
