// ChannelMonitor: message and byte counts and rates per channel, for GET /v1/channels and
// `edgeflow channels`.
//
// The node feeds it every message published on any of its tenant's channels (a QoS 0
// subscription to ef/<tenant>/ch/# on a connection of its own), so it sees the node's own
// put-then-publish traffic and plain MQTT publishers alike. Channels exist by use: a channel is
// listed once a message was seen on it since the node started.
//
// Rates are over a sliding window of the last kRateWindowSeconds whole seconds. At most
// `max_channels` channels are tracked, so that a client publishing to endless new topics cannot
// grow the node's memory without bound; messages on channels beyond that are only counted in
// untracked_messages().
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"

namespace edgeflow::channels {

struct ChannelStats {
  std::string name;
  uint64_t messages = 0;  // since the node started
  uint64_t bytes = 0;     // payload bytes since the node started
  double messages_per_second = 0;
  double bytes_per_second = 0;
  int64_t last_message_ms = 0;  // Unix milliseconds
};

class ChannelMonitor {
 public:
  static constexpr int kRateWindowSeconds = 10;
  static constexpr size_t kDefaultMaxChannels = 10000;

  ChannelMonitor(std::string tenant, const Clock* clock, size_t max_channels = kDefaultMaxChannels);

  // One message seen on `topic`; topics that are not channels of the tenant are ignored.
  void Record(std::string_view topic, size_t payload_bytes);

  // Every tracked channel, by name.
  std::vector<ChannelStats> List() const;
  std::optional<ChannelStats> Get(std::string_view name) const;
  uint64_t untracked_messages() const;
  const std::string& tenant() const { return tenant_; }

 private:
  struct Bucket {
    int64_t second = 0;
    uint64_t messages = 0;
    uint64_t bytes = 0;
  };
  struct Counters {
    uint64_t messages = 0;
    uint64_t bytes = 0;
    int64_t last_message_ms = 0;
    std::array<Bucket, kRateWindowSeconds + 1> buckets{};  // ring indexed by second
  };
  ChannelStats StatsOf(const std::string& name, const Counters& counters, int64_t now_ms) const;

  const std::string tenant_;
  const std::string topic_prefix_;
  const Clock* const clock_;
  const size_t max_channels_;
  mutable std::mutex mu_;
  std::map<std::string, Counters, std::less<>> channels_;  // GUARDED_BY(mu_)
  uint64_t untracked_messages_ = 0;                        // GUARDED_BY(mu_)
};

}  // namespace edgeflow::channels
