// ConsumerCounters: what one consumer of a stream was sent and spared, by class (enum ef_class),
// as the C++ side reports it. The data paths count into struct ef_consumer_counters
// (bpf/drop_policy.h: the kernel per CPU, the userspace replicator once); this is their sum, with
// std::array so that counters compare and copy as values.
#pragma once

#include <array>
#include <cstdint>

#include "fanout/bpf/drop_policy.h"

namespace edgeflow::fanout {

struct ConsumerCounters {
  std::array<uint64_t, EF_CLASS_COUNT> sent_packets{};  // TS packets
  std::array<uint64_t, EF_CLASS_COUNT> dropped_packets{};
  std::array<uint64_t, EF_CLASS_COUNT> sent_bytes{};  // TS bytes, 188 per TS packet (derived)
  std::array<uint64_t, EF_CLASS_COUNT> dropped_bytes{};
  uint64_t datagrams_sent = 0;
  uint64_t datagrams_dropped = 0;
  uint64_t uninspected_datagrams = 0;  // sent whole, not being 1..7 whole TS packets
  uint64_t payload_bytes_sent = 0;     // UDP payload, null packets included
  uint64_t send_errors = 0;

  // Adds one data path's (or one CPU's) counts.
  void Add(const ef_consumer_counters& counts) {
    for (size_t k = 0; k < EF_CLASS_COUNT; ++k) {
      sent_packets[k] += counts.sent_packets[k];
      dropped_packets[k] += counts.dropped_packets[k];
      sent_bytes[k] += counts.sent_packets[k] * EF_TS_PACKET_BYTES;
      dropped_bytes[k] += counts.dropped_packets[k] * EF_TS_PACKET_BYTES;
    }
    datagrams_sent += counts.datagrams_sent;
    datagrams_dropped += counts.datagrams_dropped;
    uninspected_datagrams += counts.uninspected_datagrams;
    payload_bytes_sent += counts.payload_bytes_sent;
    send_errors += counts.send_errors;
  }

  friend bool operator==(const ConsumerCounters&, const ConsumerCounters&) = default;
};

}  // namespace edgeflow::fanout
