// DatagramDecider: the fan-out's decisions for one stream, in userspace: inspects each datagram
// (bpf/ts_dpi.h) and decides for every consumer what of it that consumer gets
// (bpf/drop_policy.h). The same C the eBPF program runs, called the same way, so the userspace
// replicator and the kernel decide identically on the same bytes.
//
// A datagram that is not 1..7 whole TS packets (EF_MAX_TS_PER_DATAGRAM, the kernel's bound) is
// not inspected: every consumer gets it whole, and it is counted as uninspected. Within a
// datagram, TS packets that do not parse are never dropped.
//
// Thread-compatible.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "fanout/bpf/drop_policy.h"
#include "fanout/bpf/ts_dpi.h"
#include "fanout/consumer_counters.h"

namespace edgeflow::fanout {

class DatagramDecider {
 public:
  explicit DatagramDecider(uint8_t codec = EF_CODEC_AUTO);

  // A consumer with `policy`; returns its index (indexes are not reused).
  size_t AddConsumer(const ef_consumer_policy& policy);
  void SetPolicy(size_t consumer, const ef_consumer_policy& policy);
  // From the next datagram on the consumer gets nothing and counts nothing.
  void RemoveConsumer(size_t consumer);
  bool active(size_t consumer) const { return consumers_[consumer].active; }
  // A copy that was composed for the consumer could not be sent.
  void CountSendError(size_t consumer) { ++consumers_[consumer].counters.send_errors; }
  size_t consumers() const { return consumers_.size(); }

  // Inspects one datagram and decides for every consumer.
  void Decide(std::span<const uint8_t> datagram);
  // For the last datagram: the TS packets consumer `i` gets (bit i = packet i), 0 when it gets
  // nothing; an uninspected datagram, which goes whole, is 1.
  uint32_t mask(size_t consumer) const { return consumers_[consumer].mask; }
  // What consumer `i` gets of `datagram` (the one last decided): empty when nothing (or when the
  // datagram was empty: mask() tells whether to send), else the
  // datagram with the TS packets it does not get made null packets (their 4-byte header
  // rewritten, as the kernel does; see EF_NULL_TS_HEADER_*).
  void Compose(size_t consumer, std::span<const uint8_t> datagram, std::vector<uint8_t>* out) const;

  ConsumerCounters counters(size_t consumer) const {
    ConsumerCounters sum;
    sum.Add(consumers_[consumer].counters);
    return sum;
  }
  uint64_t datagrams() const { return datagrams_; }
  uint64_t uninspected_datagrams() const { return uninspected_; }
  const ef_stream_state& stream() const { return stream_; }

 private:
  struct Consumer {
    ef_consumer_policy policy{};
    ef_consumer_state state{};
    bool active = true;
    uint32_t mask = 0;
    ef_consumer_counters counters{};
  };

  ef_stream_state stream_{};
  std::vector<Consumer> consumers_;
  ef_ts_verdict verdicts_[EF_MAX_TS_PER_DATAGRAM] = {};
  uint32_t packets_ = 0;  // TS packets in the last datagram (0: it was not inspected)
  uint64_t datagrams_ = 0;
  uint64_t uninspected_ = 0;
};

}  // namespace edgeflow::fanout
