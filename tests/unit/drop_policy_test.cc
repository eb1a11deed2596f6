// The fan-out's per-consumer choices (src/fanout/bpf/drop_policy.h): exact ratios from the credit
// accumulator, whole datagrams in packet mode, and in frame mode whole pictures chosen so that
// what a consumer gets still decodes (nothing after a dropped referenced picture until the next
// reference one), with the consumer's ratio kept over time.
#include "fanout/bpf/drop_policy.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fanout/qoc_plan.h"

namespace edgeflow::fanout {
namespace {

ef_consumer_policy Policy(uint32_t num, uint32_t den, uint8_t mode) {
  return PolicyOf({num, den}, static_cast<ef_drop_mode>(mode));
}

ef_ts_verdict Verdict(uint8_t klass, bool frame_start = false, bool referenced = true) {
  return ef_ts_verdict{1, klass, static_cast<uint8_t>(frame_start),
                       static_cast<uint8_t>(referenced)};
}

TEST(DropPolicyTest, TheAccumulatorKeepsExactlyTheRatio) {
  for (auto [num, den] : std::vector<std::pair<uint32_t, uint32_t>>{
           {1, 2}, {1, 3}, {2, 3}, {3, 7}, {0, 5}, {5, 5}, {9, 4}, {1, 1000}}) {
    const ef_consumer_policy p = Policy(num, den, EF_DROP_PACKET);
    ef_consumer_state c{};
    std::string pattern;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < den * 6; ++i) {
      const int keep = ef_credit_keep(&p, &c);
      kept += static_cast<uint32_t>(keep);
      if (i < den) pattern += keep ? 'k' : '.';
      // At every point the count is within one unit of the ratio: no bursts.
      const double target = static_cast<double>(i + 1) * std::min(num, den) / den;
      EXPECT_LE(std::abs(static_cast<double>(kept) - target), 1.0) << num << "/" << den;
    }
    EXPECT_EQ(kept, std::min(num, den) * 6) << num << "/" << den << " " << pattern;
    // The same again makes the same choices.
    ef_consumer_state again{};
    std::string pattern_again;
    for (uint32_t i = 0; i < den; ++i) pattern_again += ef_credit_keep(&p, &again) ? 'k' : '.';
    EXPECT_EQ(pattern_again, pattern);
  }
  const ef_consumer_policy everything = Policy(0, 0, EF_DROP_PACKET);
  ef_consumer_state c{};
  EXPECT_EQ(ef_credit_keep(&everything, &c), 1);
}

TEST(DropPolicyTest, ANewPolicyKeepsItsRatioFromTheStart) {
  // The policy changes at run time; the accumulator is the consumer's and stays. Credit left from
  // a policy with a larger denominator must not turn into a burst of kept units.
  ef_consumer_state c{};
  const ef_consumer_policy fine = Policy(999, 1000, EF_DROP_PACKET);
  for (int i = 0; i < 500; ++i) ef_credit_keep(&fine, &c);
  const ef_consumer_policy half = Policy(1, 2, EF_DROP_PACKET);
  uint32_t kept = 0;
  for (int i = 0; i < 10; ++i) kept += static_cast<uint32_t>(ef_credit_keep(&half, &c));
  EXPECT_EQ(kept, 5u);
}

TEST(DropPolicyTest, PacketModeDropsOnlyWholeDifferentialDatagrams) {
  const ef_consumer_policy half = Policy(1, 2, EF_DROP_PACKET);
  ef_consumer_state c{};
  const ef_ts_verdict diff[7] = {Verdict(EF_CLASS_DIFFERENTIAL), Verdict(EF_CLASS_DIFFERENTIAL),
                                 Verdict(EF_CLASS_DIFFERENTIAL), Verdict(EF_CLASS_DIFFERENTIAL),
                                 Verdict(EF_CLASS_DIFFERENTIAL), Verdict(EF_CLASS_DIFFERENTIAL),
                                 Verdict(EF_CLASS_DIFFERENTIAL)};
  uint32_t sent = 0;
  for (int i = 0; i < 10; ++i) {
    const uint32_t mask = ef_decide_datagram(&half, &c, diff, 7);
    EXPECT_TRUE(mask == 0 || mask == 0x7F) << mask;
    sent += mask == 0x7F;
  }
  EXPECT_EQ(sent, 5u);
  // Anything else in the datagram makes it go whole, and does not count as a unit.
  for (uint8_t other : {EF_CLASS_REFERENCE, EF_CLASS_OTHER, EF_CLASS_UNKNOWN}) {
    ef_ts_verdict mixed[3] = {Verdict(EF_CLASS_DIFFERENTIAL), Verdict(other),
                              Verdict(EF_CLASS_DIFFERENTIAL)};
    EXPECT_EQ(ef_decide_datagram(&half, &c, mixed, 3), 0x7u);
  }
  ef_ts_verdict invalid[2] = {Verdict(EF_CLASS_DIFFERENTIAL), ef_ts_verdict{0, EF_CLASS_OTHER, 0, 1}};
  EXPECT_EQ(ef_decide_datagram(&half, &c, invalid, 2), 0x3u);
  EXPECT_EQ(ef_decide_datagram(&half, &c, diff, 0), 0u);
}

// A stream of pictures: I, then (P ref, B ref, B non-ref) groups, as x264 makes with B-pyramid.
struct Picture {
  uint8_t klass;
  bool referenced;
};

std::vector<Picture> Gops(int gops, int groups_per_gop) {
  std::vector<Picture> out;
  for (int g = 0; g < gops; ++g) {
    out.push_back({EF_CLASS_REFERENCE, true});
    for (int i = 0; i < groups_per_gop; ++i) {
      out.push_back({EF_CLASS_DIFFERENTIAL, true});
      out.push_back({EF_CLASS_DIFFERENTIAL, true});
      out.push_back({EF_CLASS_DIFFERENTIAL, false});
    }
  }
  return out;
}

TEST(DropPolicyTest, FrameModeKeepsWhatIsLeftDecodableAndTheRatioOverTime) {
  const std::vector<Picture> stream = Gops(40, 10);  // 40 GOPs of 31 pictures
  for (auto [num, den] : std::vector<std::pair<uint32_t, uint32_t>>{
           {1, 1}, {9, 10}, {3, 4}, {2, 3}, {1, 2}, {1, 4}, {1, 10}, {0, 1}}) {
    SCOPED_TRACE(std::to_string(num) + "/" + std::to_string(den));
    const ef_consumer_policy p = Policy(num, den, EF_DROP_FRAME);
    ef_consumer_state c{};
    uint32_t differential = 0, kept_differential = 0;
    bool lost_a_reference = false;  // a referenced picture of this GOP was dropped
    for (size_t i = 0; i < stream.size(); ++i) {
      const Picture& picture = stream[i];
      ef_ts_verdict v[2] = {Verdict(picture.klass, true, picture.referenced),
                            Verdict(picture.klass, false, picture.referenced)};
      const uint32_t mask = ef_decide_datagram(&p, &c, v, 2);
      ASSERT_TRUE(mask == 0 || mask == 0x3) << "a picture split: " << mask << " at " << i;
      const bool kept = mask == 0x3;
      if (picture.klass == EF_CLASS_REFERENCE) {
        ASSERT_TRUE(kept) << i;
        lost_a_reference = false;
        continue;
      }
      ++differential;
      kept_differential += kept;
      // Decodable: after a dropped referenced picture nothing more of the GOP is sent.
      ASSERT_FALSE(kept && lost_a_reference) << "picture " << i << " needs a dropped one";
      if (!kept && picture.referenced) lost_a_reference = true;
    }
    const double target = static_cast<double>(differential) * num / den;
    // Within one GOP's worth of differential pictures of the target.
    EXPECT_NEAR(kept_differential, target, 30.0) << kept_differential << " of " << differential;
  }
}

TEST(DropPolicyTest, FrameModeDropsDisposablePicturesBeforeReferencedOnes) {
  // A loss that the non-referenced pictures alone can absorb (a third of them here): no GOP tail
  // is ever dropped, so every referenced picture arrives.
  const std::vector<Picture> stream = Gops(10, 10);
  const ef_consumer_policy p = Policy(4, 5, EF_DROP_FRAME);
  ef_consumer_state c{};
  uint32_t dropped = 0;
  for (const Picture& picture : stream) {
    ef_ts_verdict v = Verdict(picture.klass, true, picture.referenced);
    const bool kept = ef_decide_datagram(&p, &c, &v, 1) != 0;
    if (picture.referenced) {
      EXPECT_TRUE(kept);
    }
    dropped += !kept;
  }
  EXPECT_NEAR(dropped, 10 * 30 / 5, 2);
}

TEST(DropPolicyTest, FrameModeReplacesOnlyTheDroppedPicturesPacketsInAMixedDatagram) {
  const ef_consumer_policy nothing = Policy(0, 1, EF_DROP_FRAME);  // drop every differential
  ef_consumer_state c{};
  // The end of a reference picture, the PAT, and the start of a P picture in one datagram.
  ef_ts_verdict first[3] = {Verdict(EF_CLASS_REFERENCE, true), Verdict(EF_CLASS_OTHER),
                            Verdict(EF_CLASS_DIFFERENTIAL, true, false)};
  EXPECT_EQ(ef_decide_datagram(&nothing, &c, first, 3), 0x3u);
  // The rest of that P picture: not sent at all.
  ef_ts_verdict rest[2] = {Verdict(EF_CLASS_DIFFERENTIAL), Verdict(EF_CLASS_DIFFERENTIAL)};
  EXPECT_EQ(ef_decide_datagram(&nothing, &c, rest, 2), 0u);
}

TEST(DropPolicyTest, AConsumerAddedMidPictureGetsThatPicture) {
  const ef_consumer_policy nothing = Policy(0, 1, EF_DROP_FRAME);
  ef_consumer_state c{};
  ef_ts_verdict middle[2] = {Verdict(EF_CLASS_DIFFERENTIAL), Verdict(EF_CLASS_DIFFERENTIAL)};
  EXPECT_EQ(ef_decide_datagram(&nothing, &c, middle, 2), 0x3u);
  ef_ts_verdict next[1] = {Verdict(EF_CLASS_DIFFERENTIAL, true, false)};
  EXPECT_EQ(ef_decide_datagram(&nothing, &c, next, 1), 0u);
}

}  // namespace
}  // namespace edgeflow::fanout
