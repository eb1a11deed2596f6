#include "channels/channel_name.h"

#include <gtest/gtest.h>

#include <string>

namespace edgeflow::channels {
namespace {

TEST(ChannelNameTest, AcceptsSegmentsOfSafeCharacters) {
  for (const char* name : {"frames", "cams/front-door", "a.b_c-d/e/f", "V1/x"}) {
    EXPECT_TRUE(ValidateChannelName(name).ok()) << name;
  }
  EXPECT_TRUE(ValidateChannelName(std::string(kMaxChannelNameBytes, 'a')).ok());
}

TEST(ChannelNameTest, RejectsWildcardsEmptySegmentsAndOddBytesWithAReason) {
  struct Case {
    std::string name;
    std::string reason;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"", "empty"},
           {"a/+/b", "'+'"},
           {"a/#", "'#'"},
           {"/a", "empty segment"},
           {"a/", "empty segment"},
           {"a//b", "empty segment"},
           {"a/../b", "'..'"},
           {"has space", "' '"},
           {std::string("nul\0x", 5), "\\x00"},
           {"caf\xc3\xa9", "\\xc3"},
           {std::string(kMaxChannelNameBytes + 1, 'a'), "longer than"},
       }) {
    Status s = ValidateChannelName(c.name);
    ASSERT_FALSE(s.ok()) << c.name;
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(s.message().find(c.reason), std::string::npos) << s.message();
  }
}

TEST(ChannelNameTest, TopicsRoundTrip) {
  EXPECT_EQ(ChannelTopic("default", "cams/front"), "ef/default/ch/cams/front");
  EXPECT_EQ(AllChannelsFilter("t1"), "ef/t1/ch/#");
  EXPECT_EQ(ChannelOfTopic("default", "ef/default/ch/cams/front"), "cams/front");
  EXPECT_EQ(ChannelOfTopic("default", "ef/other/ch/cams"), std::nullopt);
  EXPECT_EQ(ChannelOfTopic("default", "ef/default/ch/"), std::nullopt);
  EXPECT_EQ(ChannelOfTopic("default", "ef/default/ch/a//b"), std::nullopt);
  EXPECT_FALSE(ValidateTenant("a/b").ok());
  EXPECT_TRUE(ValidateTenant("acme-1").ok());
}

}  // namespace
}  // namespace edgeflow::channels
