// Tests of ChannelMonitor: counts, rates over the sliding window (driven by a ManualClock, so no
// test sleeps or depends on real time), the channel limit and concurrent recording.
#include "channels/channel_monitor.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "channels/channel_name.h"

namespace edgeflow::channels {
namespace {

using namespace std::chrono_literals;

// A whole second plus 500 ms, so that advancing by whole seconds keeps "now" in mid-second and
// the current (excluded) second is never ambiguous.
constexpr int64_t kStart = 1'700'000'000'500;

std::string Topic(std::string_view name) { return ChannelTopic("default", name); }

TEST(ChannelMonitorTest, CountsMessagesAndBytesPerChannel) {
  ManualClock clock(kStart);
  ChannelMonitor monitor("default", &clock);
  monitor.Record(Topic("cams/front"), 100);
  monitor.Record(Topic("cams/front"), 50);
  clock.Advance(250ms);
  monitor.Record(Topic("cams/front"), 0);  // an empty payload is still a message
  monitor.Record(Topic("sensors"), 7);

  auto front = monitor.Get("cams/front");
  ASSERT_TRUE(front);
  EXPECT_EQ(front->name, "cams/front");
  EXPECT_EQ(front->messages, 3u);
  EXPECT_EQ(front->bytes, 150u);
  EXPECT_EQ(front->last_message_ms, kStart + 250);
  auto sensors = monitor.Get("sensors");
  ASSERT_TRUE(sensors);
  EXPECT_EQ(sensors->messages, 1u);
  EXPECT_EQ(sensors->bytes, 7u);
  EXPECT_EQ(monitor.untracked_messages(), 0u);
  EXPECT_EQ(monitor.tenant(), "default");
}

TEST(ChannelMonitorTest, IgnoresOtherTenantsAndCountsInvalidNamesAsUntracked) {
  ManualClock clock(kStart);
  ChannelMonitor monitor("default", &clock);
  // Not under ef/default/ch/: not this node's channels at all, so not even untracked.
  monitor.Record(ChannelTopic("other", "cams"), 10);
  monitor.Record("ef/default/chx/cams", 10);
  monitor.Record("sensors/temp", 10);
  monitor.Record("", 10);
  EXPECT_EQ(monitor.untracked_messages(), 0u);
  EXPECT_TRUE(monitor.List().empty());

  // Under the prefix but not a channel name a node would accept: counted, never listed.
  monitor.Record(Topic(""), 1);           // the bare prefix
  monitor.Record(Topic("a//b"), 1);       // empty segment
  monitor.Record(Topic("a/../b"), 1);     // dot segment
  monitor.Record(Topic("a b"), 1);        // a character outside the name alphabet
  monitor.Record(Topic("trailing/"), 1);  // empty last segment
  monitor.Record(Topic(std::string(kMaxChannelNameBytes + 1, 'x')), 1);
  EXPECT_EQ(monitor.untracked_messages(), 6u);
  EXPECT_TRUE(monitor.List().empty());
  EXPECT_FALSE(monitor.Get("a b"));
}

TEST(ChannelMonitorTest, RateCoversTheLastTenWholeSecondsAndLeavesOutTheCurrentOne) {
  ManualClock clock(kStart);
  ChannelMonitor monitor("default", &clock);
  for (int i = 0; i < 20; ++i) monitor.Record(Topic("c"), 100);
  // Everything so far happened in the current second, which the window leaves out.
  auto stats = monitor.Get("c");
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->messages, 20u);
  EXPECT_DOUBLE_EQ(stats->messages_per_second, 0.0);
  EXPECT_DOUBLE_EQ(stats->bytes_per_second, 0.0);

  // One second later that second is complete: 20 messages over a 10 s window.
  clock.Advance(1s);
  stats = monitor.Get("c");
  EXPECT_DOUBLE_EQ(stats->messages_per_second, 2.0);
  EXPECT_DOUBLE_EQ(stats->bytes_per_second, 200.0);

  // A second burst 5 s later: both seconds are in the window once the second has passed.
  clock.Advance(4s);
  for (int i = 0; i < 10; ++i) monitor.Record(Topic("c"), 10);
  clock.Advance(1s);
  stats = monitor.Get("c");
  EXPECT_DOUBLE_EQ(stats->messages_per_second, 3.0);
  EXPECT_DOUBLE_EQ(stats->bytes_per_second, 210.0);

  // The first burst was in second kStart/1000. It is the oldest second in the window while "now"
  // is 10 seconds later, and ages out one second after that.
  clock.Set(kStart + 10'000);
  stats = monitor.Get("c");
  EXPECT_DOUBLE_EQ(stats->messages_per_second, 3.0);
  clock.Set(kStart + 11'000);
  stats = monitor.Get("c");
  EXPECT_DOUBLE_EQ(stats->messages_per_second, 1.0);
  EXPECT_DOUBLE_EQ(stats->bytes_per_second, 10.0);

  // Long after: the rate is 0 but the totals since the start remain.
  clock.Advance(1h);
  stats = monitor.Get("c");
  EXPECT_DOUBLE_EQ(stats->messages_per_second, 0.0);
  EXPECT_EQ(stats->messages, 30u);
  EXPECT_EQ(stats->bytes, 2100u);
}

// The buckets are a ring indexed by second: a bucket reused for a later second must start from
// zero, not add to what the second 11 seconds earlier left in it.
TEST(ChannelMonitorTest, AReusedBucketDoesNotCarryOldCounts) {
  ManualClock clock(kStart);
  ChannelMonitor monitor("default", &clock);
  for (int second = 0; second < 40; ++second) {
    for (int i = 0; i <= second % 3; ++i) monitor.Record(Topic("ring"), 1);
    clock.Advance(1s);
  }
  // Seconds 30..39 are in the window; second s recorded (s % 3) + 1 messages.
  uint64_t expected = 0;
  for (int second = 30; second < 40; ++second) expected += second % 3 + 1;
  auto stats = monitor.Get("ring");
  ASSERT_TRUE(stats);
  EXPECT_DOUBLE_EQ(stats->messages_per_second, static_cast<double>(expected) / 10);
}

TEST(ChannelMonitorTest, ChannelsBeyondTheLimitAreOnlyCountedAsUntracked) {
  ManualClock clock(kStart);
  ChannelMonitor monitor("default", &clock, /*max_channels=*/2);
  monitor.Record(Topic("one"), 1);
  monitor.Record(Topic("two"), 1);
  monitor.Record(Topic("three"), 1);
  monitor.Record(Topic("three"), 1);
  monitor.Record(Topic("four"), 1);
  EXPECT_EQ(monitor.untracked_messages(), 3u);
  EXPECT_FALSE(monitor.Get("three"));
  EXPECT_EQ(monitor.List().size(), 2u);

  // Channels already tracked keep counting at the limit.
  monitor.Record(Topic("one"), 5);
  auto one = monitor.Get("one");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->messages, 2u);
  EXPECT_EQ(one->bytes, 6u);
  EXPECT_EQ(monitor.untracked_messages(), 3u);
}

TEST(ChannelMonitorTest, ListIsOrderedByNameAndGetOfAnUnknownChannelIsEmpty) {
  ManualClock clock(kStart);
  ChannelMonitor monitor("site-7", &clock);
  for (const char* name : {"zeta", "alpha/b", "alpha", "Beta", "alpha.x", "m/n/o"}) {
    monitor.Record(ChannelTopic("site-7", name), 1);
  }
  std::vector<std::string> names;
  for (const ChannelStats& stats : monitor.List()) names.push_back(stats.name);
  // Byte order: upper case before lower case, '.' and '/' before letters.
  EXPECT_EQ(names,
            (std::vector<std::string>{"Beta", "alpha", "alpha.x", "alpha/b", "m/n/o", "zeta"}));
  EXPECT_FALSE(monitor.Get("nothing-here").has_value());
  EXPECT_FALSE(monitor.Get("alpha/").has_value());
  EXPECT_FALSE(monitor.Get("").has_value());
}

TEST(ChannelMonitorTest, ConcurrentRecordsAreAllCounted) {
  ManualClock clock(kStart);
  ChannelMonitor monitor("default", &clock, /*max_channels=*/3);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Every thread races on the shared channel and on creating channels near the limit.
        monitor.Record(Topic("shared"), 2);
        monitor.Record(Topic("own-" + std::to_string(t)), 1);
        if (i % 100 == 0) monitor.List();  // readers contend with writers too
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  auto shared = monitor.Get("shared");
  ASSERT_TRUE(shared);
  EXPECT_EQ(shared->messages, uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(shared->bytes, uint64_t{2} * kThreads * kPerThread);
  // Every thread records "shared" first, so it is always tracked; then two of the four
  // per-thread channels fit. Whether a channel is tracked is decided by its first message, so
  // each per-thread channel is counted whole, either tracked or untracked.
  const std::vector<ChannelStats> all = monitor.List();
  ASSERT_EQ(all.size(), 3u);
  for (const ChannelStats& stats : all) {
    if (stats.name != "shared") {
      EXPECT_EQ(stats.messages, uint64_t{kPerThread}) << stats.name;
    }
  }
  EXPECT_EQ(monitor.untracked_messages(), uint64_t{kThreads - 2} * kPerThread);
}

}  // namespace
}  // namespace edgeflow::channels
