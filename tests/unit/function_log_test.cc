#include "runtime/function_log.h"

#include <gtest/gtest.h>

namespace edgeflow::runtime {
namespace {

TEST(FunctionLogTest, TailAndFollowBySequenceNumber) {
  FunctionLog log("p/f", 5);
  for (int i = 1; i <= 3; ++i) log.Append("stderr", "info", "w1", "line " + std::to_string(i));
  FunctionLog::Page tail = log.Tail(2);
  ASSERT_EQ(tail.lines.size(), 2u);
  EXPECT_EQ(tail.lines[0].message, "line 2");
  EXPECT_EQ(tail.lines[1].seq, 3u);
  EXPECT_EQ(tail.next_seq, 4u);
  EXPECT_TRUE(log.Read(tail.next_seq, 10).lines.empty());
  log.Append("runtime", "error", "", "worker died");
  FunctionLog::Page next = log.Read(tail.next_seq, 10);
  ASSERT_EQ(next.lines.size(), 1u);
  EXPECT_EQ(next.lines[0].source, "runtime");
  EXPECT_EQ(next.next_seq, 5u);
}

TEST(FunctionLogTest, AReaderOvertakenByTheRingLearnsHowManyLinesItMissed) {
  FunctionLog log("p/f", 3);
  for (int i = 1; i <= 10; ++i) log.Append("stderr", "info", "", std::to_string(i));
  FunctionLog::Page page = log.Read(2, 100);
  EXPECT_EQ(page.missed, 6u);  // 2..7 are gone; 8, 9, 10 remain
  ASSERT_EQ(page.lines.size(), 3u);
  EXPECT_EQ(page.lines.front().message, "8");
}

TEST(FunctionLogTest, CutsRunawayLines) {
  FunctionLog log("p/f", 3);
  log.Append("stderr", "info", "", std::string(100000, 'x'));
  FunctionLog::Page page = log.Tail(1);
  ASSERT_EQ(page.lines.size(), 1u);
  EXPECT_LT(page.lines[0].message.size(), 10000u);
  EXPECT_TRUE(page.lines[0].message.ends_with("[cut]"));
}

}  // namespace
}  // namespace edgeflow::runtime
