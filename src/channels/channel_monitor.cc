#include "channels/channel_monitor.h"

#include "channels/channel_name.h"

namespace edgeflow::channels {

ChannelMonitor::ChannelMonitor(std::string tenant, const Clock* clock, size_t max_channels)
    : tenant_(std::move(tenant)),
      topic_prefix_(ChannelTopic(tenant_, "")),
      clock_(clock),
      max_channels_(max_channels) {}

void ChannelMonitor::Record(std::string_view topic, size_t payload_bytes) {
  if (!topic.starts_with(topic_prefix_)) return;
  const std::string_view name = topic.substr(topic_prefix_.size());
  const int64_t now_ms = clock_->NowMillis();
  const int64_t second = now_ms / 1000;
  std::lock_guard lock(mu_);
  auto it = channels_.find(name);
  if (it == channels_.end()) {
    // Validated once per new channel only: anything a plain MQTT client may publish under the
    // prefix reaches here, and only real channel names are worth listing.
    if (channels_.size() >= max_channels_ || !ValidateChannelName(name).ok()) {
      ++untracked_messages_;
      return;
    }
    it = channels_.emplace(std::string(name), Counters{}).first;
  }
  Counters& counters = it->second;
  ++counters.messages;
  counters.bytes += payload_bytes;
  counters.last_message_ms = now_ms;
  Bucket& bucket = counters.buckets[static_cast<size_t>(second) % counters.buckets.size()];
  if (bucket.second != second) bucket = Bucket{second, 0, 0};
  ++bucket.messages;
  bucket.bytes += payload_bytes;
}

ChannelStats ChannelMonitor::StatsOf(const std::string& name, const Counters& counters,
                                     int64_t now_ms) const {
  ChannelStats stats;
  stats.name = name;
  stats.messages = counters.messages;
  stats.bytes = counters.bytes;
  stats.last_message_ms = counters.last_message_ms;
  // The window is the last kRateWindowSeconds whole seconds; the current, partial second is left
  // out so that the rate does not dip at the start of every second.
  const int64_t now_second = now_ms / 1000;
  uint64_t messages = 0, bytes = 0;
  for (const Bucket& bucket : counters.buckets) {
    if (bucket.second < now_second && bucket.second >= now_second - kRateWindowSeconds) {
      messages += bucket.messages;
      bytes += bucket.bytes;
    }
  }
  stats.messages_per_second = static_cast<double>(messages) / kRateWindowSeconds;
  stats.bytes_per_second = static_cast<double>(bytes) / kRateWindowSeconds;
  return stats;
}

std::vector<ChannelStats> ChannelMonitor::List() const {
  const int64_t now_ms = clock_->NowMillis();
  std::lock_guard lock(mu_);
  std::vector<ChannelStats> out;
  out.reserve(channels_.size());
  for (const auto& [name, counters] : channels_) out.push_back(StatsOf(name, counters, now_ms));
  return out;
}

std::optional<ChannelStats> ChannelMonitor::Get(std::string_view name) const {
  const int64_t now_ms = clock_->NowMillis();
  std::lock_guard lock(mu_);
  auto it = channels_.find(name);
  if (it == channels_.end()) return std::nullopt;
  return StatsOf(it->first, it->second, now_ms);
}

uint64_t ChannelMonitor::untracked_messages() const {
  std::lock_guard lock(mu_);
  return untracked_messages_;
}

}  // namespace edgeflow::channels
