// DatagramDecider on what a network can send: datagrams that are not whole TS packets, too many
// packets for one decision, packets without a sync byte. None is dropped for a policy, each is
// counted, and what is sent is the datagram as it came.
#include "fanout/datagram_decider.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace edgeflow::fanout {
namespace {

ef_consumer_policy DropAllDifferential(uint8_t mode) {
  ef_consumer_policy p{};
  p.keep_num = 0;
  p.keep_den = 1;
  p.mode = mode;
  return p;
}

std::vector<uint8_t> TsPackets(size_t n, uint16_t pid = 0x100) {
  std::vector<uint8_t> out(n * EF_TS_PACKET_BYTES, 0xAA);
  for (size_t i = 0; i < n; ++i) {
    uint8_t* p = out.data() + i * EF_TS_PACKET_BYTES;
    p[0] = EF_TS_SYNC_BYTE;
    p[1] = static_cast<uint8_t>(pid >> 8);
    p[2] = static_cast<uint8_t>(pid);
    p[3] = 0x10;
  }
  return out;
}

TEST(DatagramDeciderTest, WhatIsNotWholeTsPacketsGoesWholeAndIsCounted) {
  DatagramDecider decider;
  const size_t frame = decider.AddConsumer(DropAllDifferential(EF_DROP_FRAME));
  const size_t packet = decider.AddConsumer(DropAllDifferential(EF_DROP_PACKET));
  std::vector<uint8_t> copy;
  const std::vector<std::vector<uint8_t>> odd = {
      std::vector<uint8_t>(512, 0x47),  // the paper's 512-byte packets: not TS-aligned
      std::vector<uint8_t>(187, 0x47),  // truncated
      TsPackets(8),                     // more than one decision covers
      {},                               // empty
  };
  for (const auto& datagram : odd) {
    decider.Decide(datagram);
    for (size_t c : {frame, packet}) {
      EXPECT_NE(decider.mask(c), 0u);
      decider.Compose(c, datagram, &copy);
      EXPECT_EQ(copy, datagram);
    }
  }
  EXPECT_EQ(decider.uninspected_datagrams(), odd.size());
  EXPECT_EQ(decider.counters(frame).datagrams_sent, odd.size());
  EXPECT_EQ(decider.counters(frame).datagrams_dropped, 0u);
}

TEST(DatagramDeciderTest, PacketsWithoutSyncByteAreNeverDropped) {
  DatagramDecider decider;
  const size_t c = decider.AddConsumer(DropAllDifferential(EF_DROP_PACKET));
  // A P picture starts (and its first datagram, which has a PES start, is a unit like any other).
  std::vector<uint8_t> start = TsPackets(1);
  start[1] = 0x41;
  const uint8_t pes[] = {0, 0, 1, 0xE0, 0, 0, 0x80, 0, 0, 0, 0, 0, 1, 0x09, 0xF0,
                         0, 0, 0, 1, 0x41, 0b11000000};
  std::copy(std::begin(pes), std::end(pes), start.data() + 4);
  decider.Decide(start);
  ASSERT_EQ(decider.stream().frame_class, EF_CLASS_DIFFERENTIAL);
  // The rest of the picture: dropped whole, unless one packet of it is not TS.
  const std::vector<uint8_t> rest = TsPackets(7);
  decider.Decide(rest);
  EXPECT_EQ(decider.mask(c), 0u);
  std::vector<uint8_t> damaged = rest;
  damaged[3 * EF_TS_PACKET_BYTES] = 0x00;  // the fourth packet lost its sync byte
  decider.Decide(damaged);
  EXPECT_EQ(decider.mask(c), 0x7Fu);
  EXPECT_EQ(decider.counters(c).sent_packets[EF_CLASS_OTHER], 1u);
  EXPECT_EQ(decider.counters(c).sent_packets[EF_CLASS_DIFFERENTIAL], 6u);
  EXPECT_EQ(decider.uninspected_datagrams(), 0u);
}

TEST(DatagramDeciderTest, DroppedPacketsOfAKeptDatagramBecomeNullPackets) {
  DatagramDecider decider;
  const size_t c = decider.AddConsumer(DropAllDifferential(EF_DROP_FRAME));
  // A B picture nothing references starts in the second packet (PES start, AUD, B slice with
  // nal_ref_idc 0), after a PAT.
  std::vector<uint8_t> datagram = TsPackets(2);
  uint8_t* pat = datagram.data();
  pat[1] = 0x40;  // PID 0, payload_unit_start
  pat[2] = 0x00;
  uint8_t* video = datagram.data() + EF_TS_PACKET_BYTES;
  video[1] = 0x41;  // payload_unit_start, PID 0x100
  const uint8_t pes[] = {0, 0, 1, 0xE0, 0, 0, 0x80, 0, 0, 0, 0, 0, 1, 0x09, 0xF0,
                         0, 0, 0, 1, 0x01, 0b10100000};
  std::copy(std::begin(pes), std::end(pes), video + 4);
  decider.Decide(datagram);
  ASSERT_EQ(decider.mask(c), 0x1u);
  std::vector<uint8_t> copy;
  decider.Compose(c, datagram, &copy);
  ASSERT_EQ(copy.size(), datagram.size());
  EXPECT_TRUE(std::equal(copy.begin(), copy.begin() + EF_TS_PACKET_BYTES, datagram.begin()));
  const uint8_t* null_packet = copy.data() + EF_TS_PACKET_BYTES;
  EXPECT_EQ(null_packet[0], EF_TS_SYNC_BYTE);
  EXPECT_EQ(((null_packet[1] & 0x1F) << 8) | null_packet[2], 0x1FFF);
  EXPECT_EQ(decider.counters(c).dropped_packets[EF_CLASS_DIFFERENTIAL], 1u);
  EXPECT_EQ(decider.counters(c).sent_packets[EF_CLASS_OTHER], 1u);
}

}  // namespace
}  // namespace edgeflow::fanout
