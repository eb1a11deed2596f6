#include "fanout/datagram_decider.h"

namespace edgeflow::fanout {

DatagramDecider::DatagramDecider(uint8_t codec) { ef_stream_state_init(&stream_, codec); }

size_t DatagramDecider::AddConsumer(const ef_consumer_policy& policy) {
  Consumer& consumer = consumers_.emplace_back();
  consumer.policy = policy;
  return consumers_.size() - 1;
}

void DatagramDecider::SetPolicy(size_t consumer, const ef_consumer_policy& policy) {
  consumers_[consumer].policy = policy;
}

void DatagramDecider::RemoveConsumer(size_t consumer) {
  consumers_[consumer].active = false;
  consumers_[consumer].mask = 0;
}

void DatagramDecider::Decide(std::span<const uint8_t> datagram) {
  ++datagrams_;
  const size_t n = datagram.size() / EF_TS_PACKET_BYTES;
  if (datagram.empty() || datagram.size() % EF_TS_PACKET_BYTES != 0 || n > EF_MAX_TS_PER_DATAGRAM) {
    ++uninspected_;
    packets_ = 0;
    for (Consumer& consumer : consumers_) {
      if (!consumer.active) continue;
      consumer.mask = 1;  // "everything": Compose sends the datagram as it is
      ef_count_uninspected(&consumer.counters, datagram.size());
    }
    return;
  }
  packets_ = static_cast<uint32_t>(n);
  for (uint32_t i = 0; i < packets_; ++i) {
    verdicts_[i] = ef_inspect_ts_packet(&stream_, datagram.data() + i * EF_TS_PACKET_BYTES);
  }
  for (Consumer& consumer : consumers_) {
    if (!consumer.active) continue;
    consumer.mask = ef_decide_datagram(&consumer.policy, &consumer.state, verdicts_, packets_);
    ef_count_decision(&consumer.counters, verdicts_, packets_, consumer.mask);
  }
}

void DatagramDecider::Compose(size_t consumer, std::span<const uint8_t> datagram,
                              std::vector<uint8_t>* out) const {
  out->clear();
  const uint32_t mask = consumers_[consumer].mask;
  if (mask == 0) return;
  out->assign(datagram.begin(), datagram.end());
  for (uint32_t i = 0; i < packets_; ++i) {
    if ((mask & (1u << i)) != 0) continue;
    uint8_t* packet = out->data() + i * EF_TS_PACKET_BYTES;
    packet[0] = EF_NULL_TS_HEADER_0;
    packet[1] = EF_NULL_TS_HEADER_1;
    packet[2] = EF_NULL_TS_HEADER_2;
    packet[3] = EF_NULL_TS_HEADER_3;
  }
}

}  // namespace edgeflow::fanout
