// The fan-out's decision code (bpf/ts_dpi.h, bpf/drop_policy.h through DatagramDecider) on
// whatever a network can send. The input is a sequence of datagrams, each a 2-byte length (big
// endian) and that many bytes, decided for four consumers (both modes, keep 1/2 and 0/1), which
// must never crash and always hold to the invariants every data path relies on:
//  - a consumer's mask names only TS packets of the datagram (uninspected datagrams: mask 1);
//  - a copy is empty or exactly the datagram's size, with only whole 188-byte packets changed,
//    and only their 4-byte header, and only into a null packet header;
//  - reference pictures and non-video packets are never dropped (the counters say so).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "fanout/datagram_decider.h"
#include "fanout/qoc_plan.h"

namespace {

// Says which invariant broke before aborting (libFuzzer then keeps the input).
#define CHECK(condition)                                                              \
  do {                                                                                \
    if (!(condition)) {                                                               \
      std::fprintf(stderr, "invariant broken: %s (line %d)\n", #condition, __LINE__); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (false)

ef_consumer_policy Policy(uint32_t num, uint32_t den, uint8_t mode) {
  return edgeflow::fanout::PolicyOf({num, den}, static_cast<ef_drop_mode>(mode));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using edgeflow::fanout::ConsumerCounters;
  using edgeflow::fanout::DatagramDecider;
  DatagramDecider decider(size > 0 ? data[0] % 3 : EF_CODEC_AUTO);
  decider.AddConsumer(Policy(1, 2, EF_DROP_FRAME));
  decider.AddConsumer(Policy(0, 1, EF_DROP_FRAME));
  decider.AddConsumer(Policy(1, 2, EF_DROP_PACKET));
  decider.AddConsumer(Policy(0, 1, EF_DROP_PACKET));
  std::vector<uint8_t> copy;
  size_t at = size > 0 ? 1 : 0;
  while (at + 2 <= size) {
    const size_t length =
        std::min<size_t>(static_cast<size_t>(data[at] << 8 | data[at + 1]), size - at - 2);
    const std::span<const uint8_t> datagram(data + at + 2, length);
    at += 2 + length;
    decider.Decide(datagram);
    const bool inspected = !datagram.empty() && datagram.size() % EF_TS_PACKET_BYTES == 0 &&
                           datagram.size() / EF_TS_PACKET_BYTES <= EF_MAX_TS_PER_DATAGRAM;
    const uint32_t all = inspected ? (1u << (datagram.size() / EF_TS_PACKET_BYTES)) - 1 : 1;
    for (size_t c = 0; c < decider.consumers(); ++c) {
      const uint32_t mask = decider.mask(c);
      CHECK((mask & ~all) == 0);
      decider.Compose(c, datagram, &copy);
      // Nothing, or the datagram's size (an empty datagram is sent empty, as the kernel does).
      CHECK(copy.size() == (mask == 0 ? 0 : datagram.size()));
      for (size_t i = 0; i < copy.size(); ++i) {
        if (copy[i] == datagram[i]) continue;
        // Only a null packet's header may differ.
        CHECK(inspected && i % EF_TS_PACKET_BYTES < 4 &&
              (mask & (1u << (i / EF_TS_PACKET_BYTES))) == 0);
      }
    }
  }
  for (size_t c = 0; c < decider.consumers(); ++c) {
    const ConsumerCounters counters = decider.counters(c);
    CHECK(counters.dropped_packets[EF_CLASS_REFERENCE] == 0);
    CHECK(counters.dropped_packets[EF_CLASS_UNKNOWN] == 0);
    CHECK(counters.dropped_packets[EF_CLASS_OTHER] == 0);
  }
  return 0;
}
