#include "channels/channel_name.h"

#include <cstdio>

namespace edgeflow::channels {
namespace {

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

Status ValidateSegment(std::string_view segment, std::string_view what, std::string_view whole) {
  if (segment.empty()) {
    return Status::InvalidArgument(std::string(what) + " '" + std::string(whole) +
                                   "' has an empty segment");
  }
  if (segment == "." || segment == "..") {
    return Status::InvalidArgument(std::string(what) + " '" + std::string(whole) +
                                   "' has a '.' or '..' segment");
  }
  for (char c : segment) {
    if (!IsNameChar(c)) {
      char shown[8];
      if (c >= 0x20 && c < 0x7f) {
        std::snprintf(shown, sizeof(shown), "%c", c);
      } else {
        std::snprintf(shown, sizeof(shown), "\\x%02x", static_cast<unsigned char>(c));
      }
      return Status::InvalidArgument(std::string(what) + " '" + std::string(whole) +
                                     "' contains '" + std::string(shown) +
                                     "': use letters, digits, '_', '-', '.' and '/'");
    }
  }
  return Status::Ok();
}

}  // namespace

Status ValidateChannelName(std::string_view name) {
  if (name.empty()) return Status::InvalidArgument("channel name is empty");
  if (name.size() > kMaxChannelNameBytes) {
    return Status::InvalidArgument("channel name is longer than " +
                                   std::to_string(kMaxChannelNameBytes) + " bytes");
  }
  size_t start = 0;
  for (;;) {
    const size_t slash = name.find('/', start);
    const std::string_view segment = name.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    EF_RETURN_IF_ERROR(ValidateSegment(segment, "channel name", name));
    if (slash == std::string_view::npos) return Status::Ok();
    start = slash + 1;
  }
}

Status ValidateChannelPattern(std::string_view pattern) {
  if (pattern.empty()) return Status::InvalidArgument("channel pattern is empty");
  if (pattern.size() > kMaxChannelNameBytes) {
    return Status::InvalidArgument("channel pattern is longer than " +
                                   std::to_string(kMaxChannelNameBytes) + " bytes");
  }
  size_t start = 0;
  for (;;) {
    const size_t slash = pattern.find('/', start);
    const bool last = slash == std::string_view::npos;
    const std::string_view segment = pattern.substr(start, last ? slash : slash - start);
    if (segment == "#" && !last) {
      return Status::InvalidArgument("channel pattern '" + std::string(pattern) +
                                     "': '#' may only be the last segment");
    }
    if (segment != "+" && segment != "#") {
      EF_RETURN_IF_ERROR(ValidateSegment(segment, "channel pattern", pattern));
    }
    if (last) return Status::Ok();
    start = slash + 1;
  }
}

Status ValidateTenant(std::string_view tenant) {
  if (tenant.size() > 64) return Status::InvalidArgument("tenant is longer than 64 bytes");
  return ValidateSegment(tenant, "tenant", tenant);
}

std::string ChannelTopic(std::string_view tenant, std::string_view name) {
  std::string topic = "ef/";
  topic.append(tenant).append("/ch/").append(name);
  return topic;
}

std::string AllChannelsFilter(std::string_view tenant) { return ChannelTopic(tenant, "#"); }

std::optional<std::string> ChannelOfTopic(std::string_view tenant, std::string_view topic) {
  const std::string prefix = ChannelTopic(tenant, "");
  if (topic.size() <= prefix.size() || topic.substr(0, prefix.size()) != prefix)
    return std::nullopt;
  std::string name(topic.substr(prefix.size()));
  if (!ValidateChannelName(name).ok()) return std::nullopt;
  return name;
}

}  // namespace edgeflow::channels
