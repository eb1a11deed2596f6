// TsPacer on hand-made streams whose PCRs are spelled out: each packet's time, between PCRs, across
// a wrap of the PCR base, discontinuities, jumps, a PCR PID named by the PMT, replays, and the
// bound on what waits for a PCR. Nothing sleeps: the pacer only computes.
#include "fanout/ts_pacer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "ts_test_bytes.h"

namespace edgeflow::fanout {
namespace {

using namespace std::chrono_literals;
using ts::test_bytes::AdaptationSpec;
using ts::test_bytes::BuildPacket;
using ts::test_bytes::BuildPatSection;
using ts::test_bytes::BuildPmtSection;
using ts::test_bytes::Bytes;
using ts::test_bytes::NonZeroFiller;
using ts::test_bytes::PsiPayload;

constexpr uint16_t kVideoPid = 0x100;
constexpr uint16_t kOtherPid = 0x200;
constexpr int64_t kTicksPerMs = 27'000;
constexpr uint64_t kPcrWrap = (uint64_t{1} << 33) * 300;

// An adaptation-only packet of `pid` carrying `pcr` (27 MHz ticks: base * 300 + extension).
Bytes PcrPacket(uint16_t pid, uint64_t pcr, bool discontinuity = false) {
  AdaptationSpec spec;
  spec.pcr_base = pcr / 300;
  spec.pcr_extension = static_cast<uint16_t>(pcr % 300);
  spec.discontinuity = discontinuity;
  return BuildPacket(pid, false, 0, {}, spec);
}

Bytes DataPacket(uint16_t pid = kVideoPid) {
  return BuildPacket(pid, false, 0, NonZeroFiller(184));
}

// Every time that is ready, in milliseconds (rounded to the nanosecond first, so exact).
std::vector<double> PopAllMs(TsPacer* pacer) {
  std::vector<double> out;
  while (pacer->ready()) {
    out.push_back(std::chrono::duration<double, std::milli>(pacer->PopReady()).count());
  }
  return out;
}

TEST(TsPacerTest, PacketsBeforeTheFirstPcrAreDueAtOnce) {
  TsPacer pacer;
  for (int i = 0; i < 3; ++i) pacer.Push(DataPacket());
  EXPECT_EQ(pacer.ready_count(), 3u);
  pacer.Push(PcrPacket(kVideoPid, 5'000 * kTicksPerMs));  // the clock starts anywhere
  EXPECT_EQ(PopAllMs(&pacer), (std::vector<double>{0, 0, 0, 0}));
  EXPECT_EQ(pacer.pcr_pid(), kVideoPid);
}

TEST(TsPacerTest, PacketsBetweenPcrsAreSpreadEvenlyByPosition) {
  TsPacer pacer;
  const uint64_t base = 1'000 * kTicksPerMs;
  pacer.Push(PcrPacket(kVideoPid, base));
  for (int i = 0; i < 9; ++i) pacer.Push(DataPacket());
  // They wait for the next PCR: their times depend on it.
  EXPECT_EQ(pacer.ready_count(), 1u);
  EXPECT_EQ(pacer.waiting(), 9u);
  pacer.Push(PcrPacket(kVideoPid, base + 100 * kTicksPerMs));
  EXPECT_EQ(pacer.waiting(), 0u);
  EXPECT_EQ(PopAllMs(&pacer), (std::vector<double>{0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100}));
  EXPECT_EQ(pacer.pcrs(), 2u);
  EXPECT_EQ(pacer.reanchors(), 0u);
}

TEST(TsPacerTest, SpeedDividesTimesAndZeroMeansAtOnce) {
  for (const double speed : {2.0, 0.5, 0.0}) {
    SCOPED_TRACE(speed);
    TsPacer pacer(speed);
    pacer.Push(PcrPacket(kVideoPid, 0));
    pacer.Push(DataPacket());
    pacer.Push(PcrPacket(kVideoPid, 40 * kTicksPerMs));
    const std::vector<double> times = PopAllMs(&pacer);
    if (speed == 0) {
      EXPECT_EQ(times, (std::vector<double>{0, 0, 0}));
    } else {
      EXPECT_EQ(times, (std::vector<double>{0, 20 / speed, 40 / speed}));
    }
  }
}

TEST(TsPacerTest, TheWrapOfThePcrBaseIsTheClockRunningOn) {
  TsPacer pacer;
  const uint64_t before_wrap = kPcrWrap - 10 * kTicksPerMs;  // 10 ms before 2^33 * 300
  pacer.Push(PcrPacket(kVideoPid, before_wrap));
  pacer.Push(DataPacket());
  pacer.Push(PcrPacket(kVideoPid, 30 * kTicksPerMs));  // 40 ms later, after the wrap
  EXPECT_EQ(PopAllMs(&pacer), (std::vector<double>{0, 20, 40}));
  EXPECT_EQ(pacer.reanchors(), 0u);
}

// 40 ms between PCRs, one data packet between: a rate of 20 ms per packet.
void PushSteadyPcrs(TsPacer* pacer, uint64_t first_pcr, int pcrs) {
  for (int i = 0; i < pcrs; ++i) {
    if (i > 0) pacer->Push(DataPacket());
    pacer->Push(PcrPacket(kVideoPid, first_pcr + static_cast<uint64_t>(i) * 40 * kTicksPerMs));
  }
}

TEST(TsPacerTest, ADiscontinuityStartsANewTimelineAtTheLastRateWithoutAPause) {
  TsPacer pacer;
  PushSteadyPcrs(&pacer, 0, 3);  // 0, 20, 40, 60, 80 ms
  pacer.Push(DataPacket());
  // The new clock happens to read 20 ms after the old one, which would be a plain step (100 ms);
  // the discontinuity_indicator says it is another clock: the timeline goes on at the rate.
  pacer.Push(PcrPacket(kVideoPid, 100 * kTicksPerMs, /*discontinuity=*/true));
  pacer.Push(DataPacket());
  pacer.Push(PcrPacket(kVideoPid, 140 * kTicksPerMs));
  EXPECT_EQ(PopAllMs(&pacer), (std::vector<double>{0, 20, 40, 60, 80, 100, 120, 140, 160}));
  EXPECT_EQ(pacer.reanchors(), 1u);
}

TEST(TsPacerTest, ADiscontinuityFlagBeforeThePcrMakesTheNextPcrANewTimeline) {
  TsPacer pacer;
  PushSteadyPcrs(&pacer, 0, 2);  // 0, 20, 40 ms
  // The flag in a packet of the PCR PID without a PCR: the next PCR is of the new clock, even if
  // it happens to look like a small step.
  AdaptationSpec flag_only;
  flag_only.discontinuity = true;
  pacer.Push(BuildPacket(kVideoPid, false, 0, NonZeroFiller(182), flag_only));
  pacer.Push(PcrPacket(kVideoPid, 50 * kTicksPerMs));
  EXPECT_EQ(PopAllMs(&pacer), (std::vector<double>{0, 20, 40, 60, 80}));
  EXPECT_EQ(pacer.reanchors(), 1u);
  // A discontinuity_indicator on another PID is about its continuity counter, not the clock.
  pacer.Push(BuildPacket(kOtherPid, false, 0, NonZeroFiller(182), flag_only));
  pacer.Push(PcrPacket(kVideoPid, 90 * kTicksPerMs));
  EXPECT_EQ(PopAllMs(&pacer), (std::vector<double>{100, 120}));
  EXPECT_EQ(pacer.reanchors(), 1u);
}

TEST(TsPacerTest, BackwardAndFarForwardJumpsStartNewTimelines) {
  TsPacer pacer;
  const uint64_t start = 60'000 * kTicksPerMs;
  PushSteadyPcrs(&pacer, start, 2);                           // 0, 20, 40 ms
  pacer.Push(DataPacket());
  pacer.Push(PcrPacket(kVideoPid, start - 5 * kTicksPerMs));  // back: a new timeline
  pacer.Push(DataPacket());
  pacer.Push(PcrPacket(kVideoPid, start + 35 * kTicksPerMs));  // on from there: 40 ms later
  pacer.Push(DataPacket());
  // 1.5 s ahead: a jump. 0.9 s ahead would still be the clock.
  pacer.Push(PcrPacket(kVideoPid, start + 1'535 * kTicksPerMs));
  pacer.Push(DataPacket());
  pacer.Push(PcrPacket(kVideoPid, start + 2'435 * kTicksPerMs));
  EXPECT_EQ(PopAllMs(&pacer),
            (std::vector<double>{0, 20, 40, 60, 80, 100, 120, 140, 160, 610, 1060}));
  EXPECT_EQ(pacer.reanchors(), 2u);
}

TEST(TsPacerTest, ThePmtsPcrPidIsTheClockOtherPcrsAreNot) {
  TsPacer pacer;
  pacer.Push(BuildPacket(0, true, 0, PsiPayload(BuildPatSection({{1, 0x1000}}))));
  pacer.Push(BuildPacket(0x1000, true, 0,
                         PsiPayload(BuildPmtSection(1, kOtherPid, {{0x1B, kVideoPid, {}}}))));
  // PCRs on the video PID that disagree with the program's clock are ignored.
  pacer.Push(PcrPacket(kVideoPid, 9'000 * kTicksPerMs));
  pacer.Push(PcrPacket(kOtherPid, 0));
  pacer.Push(PcrPacket(kVideoPid, 1 * kTicksPerMs));
  pacer.Push(PcrPacket(kOtherPid, 60 * kTicksPerMs));
  EXPECT_EQ(pacer.pcr_pid(), kOtherPid);
  EXPECT_EQ(PopAllMs(&pacer), (std::vector<double>{0, 0, 0, 0, 30, 60}));
  EXPECT_EQ(pacer.pcrs(), 2u);
}

TEST(TsPacerTest, WithoutAPmtTheFirstPidCarryingAPcrIsTheClock) {
  TsPacer pacer;
  pacer.Push(PcrPacket(kOtherPid, 0));
  pacer.Push(PcrPacket(kVideoPid, 500 * kTicksPerMs));
  pacer.Push(PcrPacket(kOtherPid, 20 * kTicksPerMs));
  EXPECT_EQ(pacer.pcr_pid(), kOtherPid);
  EXPECT_EQ(PopAllMs(&pacer), (std::vector<double>{0, 10, 20}));
}

TEST(TsPacerTest, PacketsThatDoNotParseKeepTheirPlace) {
  TsPacer pacer;
  pacer.Push(PcrPacket(kVideoPid, 0));
  Bytes garbage(188, 0x00);
  pacer.Push(garbage);
  pacer.Push(Bytes(10, 0x47));  // not even a packet's size
  pacer.Push(PcrPacket(kVideoPid, 30 * kTicksPerMs));
  EXPECT_EQ(PopAllMs(&pacer), (std::vector<double>{0, 10, 20, 30}));
}

TEST(TsPacerTest, FlushTimesTheRestAtTheLastRate) {
  TsPacer pacer;
  PushSteadyPcrs(&pacer, 0, 2);  // 0, 20, 40 ms: 20 ms per packet
  for (int i = 0; i < 3; ++i) pacer.Push(DataPacket());
  EXPECT_EQ(pacer.waiting(), 3u);
  pacer.Flush();
  EXPECT_EQ(PopAllMs(&pacer), (std::vector<double>{0, 20, 40, 60, 80, 100}));
}

TEST(TsPacerTest, BreakMakesAReplayContinueTheTimeline) {
  TsPacer pacer;
  for (int pass = 0; pass < 3; ++pass) {
    pacer.Push(DataPacket());  // before the file's first PCR
    PushSteadyPcrs(&pacer, 1'000 * kTicksPerMs, 2);
    pacer.Push(DataPacket());  // after its last
    pacer.Break();
  }
  const std::vector<double> times = PopAllMs(&pacer);
  ASSERT_EQ(times.size(), 15u);
  // One pass is five packets at 20 ms; the passes follow each other at that rate, no pause.
  for (size_t i = 1; i < times.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(times[i], i == 1 ? 0 : times[i - 1] + 20);
  }
  EXPECT_EQ(pacer.reanchors(), 0u);  // the caller's breaks are not the stream's
}

TEST(TsPacerTest, WhatWaitsForAPcrStaysBounded) {
  TsPacer pacer;
  PushSteadyPcrs(&pacer, 0, 2);  // 20 ms per packet
  const size_t more = TsPacer::kMaxWaiting + 100;
  for (size_t i = 0; i < more; ++i) pacer.Push(DataPacket());
  EXPECT_LE(pacer.waiting(), TsPacer::kMaxWaiting);
  pacer.Flush();
  const std::vector<double> times = PopAllMs(&pacer);
  ASSERT_EQ(times.size(), 3 + more);
  for (size_t i = 1; i < times.size(); ++i) ASSERT_EQ(times[i], times[i - 1] + 20) << i;
}

TEST(TsPacerTest, TimesNeverGoBack) {
  TsPacer pacer;
  // A PCR repeated, then one slightly behind within the same second (a broken muxer).
  pacer.Push(PcrPacket(kVideoPid, 100 * kTicksPerMs));
  pacer.Push(DataPacket());
  pacer.Push(PcrPacket(kVideoPid, 100 * kTicksPerMs));
  pacer.Push(DataPacket());
  pacer.Push(PcrPacket(kVideoPid, 140 * kTicksPerMs));
  pacer.Push(PcrPacket(kVideoPid, 139 * kTicksPerMs));
  pacer.Push(PcrPacket(kVideoPid, 180 * kTicksPerMs));
  const std::vector<double> times = PopAllMs(&pacer);
  ASSERT_EQ(times.size(), 7u);
  for (size_t i = 1; i < times.size(); ++i) EXPECT_GE(times[i], times[i - 1]) << i;
}

}  // namespace
}  // namespace edgeflow::fanout
