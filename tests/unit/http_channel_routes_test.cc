// Tests of the routing of the channel resources (MatchRoute) and of the W3C traceparent parsing
// that POST /v1/channels/{ch}/publish uses. Both are pure functions: no server, no broker.
#include <gtest/gtest.h>

#include <string>

#include "api/http_params.h"
#include "api/http_router.h"

namespace edgeflow::api {
namespace {

RouteMatch Match(HttpMethod method, std::string_view target) {
  auto m = MatchRoute(method, target);
  EXPECT_TRUE(m) << target << ": " << m.error().ToString();
  return m ? *m : RouteMatch{};
}

TEST(ChannelRoutesTest, TheChannelListWithAndWithoutTrailingSlash) {
  for (const char* target : {"/v1/channels", "/v1/channels/", "/v1/channels?verbose=1"}) {
    RouteMatch m = Match(HttpMethod::kGet, target);
    EXPECT_EQ(m.route, HttpRoute::kChannelList) << target;
    EXPECT_TRUE(m.method_allowed) << target;
    EXPECT_EQ(m.allow, "GET, HEAD");
    EXPECT_TRUE(m.channel.empty());
  }
  EXPECT_EQ(Match(HttpMethod::kGet, "/v1/channels?verbose=1").query, "verbose=1");
  EXPECT_EQ(HttpRouteName(HttpRoute::kChannelList), "channel_list");
}

TEST(ChannelRoutesTest, AChannelNameMayContainSlashes) {
  RouteMatch m = Match(HttpMethod::kGet, "/v1/channels/a/b");
  EXPECT_EQ(m.route, HttpRoute::kChannel);
  EXPECT_EQ(m.channel, "a/b");
  m = Match(HttpMethod::kGet, "/v1/channels/cams/front/left");
  EXPECT_EQ(m.route, HttpRoute::kChannel);
  EXPECT_EQ(m.channel, "cams/front/left");
  m = Match(HttpMethod::kGet, "/v1/channels/x");
  EXPECT_EQ(m.route, HttpRoute::kChannel);
  EXPECT_EQ(m.channel, "x");
  EXPECT_EQ(HttpRouteName(HttpRoute::kChannel), "channel");
}

TEST(ChannelRoutesTest, APathEndingInPublishIsThePublishResourceOfTheChannelBeforeIt) {
  RouteMatch m = Match(HttpMethod::kPost, "/v1/channels/a/b/publish?key=k1&mode=ref");
  EXPECT_EQ(m.route, HttpRoute::kChannelPublish);
  EXPECT_EQ(m.channel, "a/b");
  EXPECT_EQ(m.query, "key=k1&mode=ref");
  EXPECT_EQ(HttpRouteName(HttpRoute::kChannelPublish), "channel_publish");

  // "publish" alone is a channel name, not a publish resource without a channel.
  m = Match(HttpMethod::kGet, "/v1/channels/publish");
  EXPECT_EQ(m.route, HttpRoute::kChannel);
  EXPECT_EQ(m.channel, "publish");
  // Channel "a/publish" publishes at .../a/publish/publish.
  m = Match(HttpMethod::kPost, "/v1/channels/a/publish/publish");
  EXPECT_EQ(m.route, HttpRoute::kChannelPublish);
  EXPECT_EQ(m.channel, "a/publish");
  m = Match(HttpMethod::kGet, "/v1/channels/a/publish");
  EXPECT_EQ(m.route, HttpRoute::kChannelPublish);
  EXPECT_EQ(m.channel, "a");
  // A suffix that only looks like "/publish" is part of the name.
  m = Match(HttpMethod::kGet, "/v1/channels/a/publisher");
  EXPECT_EQ(m.route, HttpRoute::kChannel);
  EXPECT_EQ(m.channel, "a/publisher");
  m = Match(HttpMethod::kGet, "/v1/channels/apublish");
  EXPECT_EQ(m.route, HttpRoute::kChannel);
  EXPECT_EQ(m.channel, "apublish");
}

TEST(ChannelRoutesTest, ChannelNamesArePercentDecoded) {
  RouteMatch m = Match(HttpMethod::kPost, "/v1/channels/a%2Fb/publish");
  EXPECT_EQ(m.route, HttpRoute::kChannelPublish);
  EXPECT_EQ(m.channel, "a/b");
  m = Match(HttpMethod::kGet, "/v1/channels/cam%2D1%2e2");
  EXPECT_EQ(m.route, HttpRoute::kChannel);
  EXPECT_EQ(m.channel, "cam-1.2");
  // The publish suffix is recognised on the path as sent: an encoded slash belongs to the name.
  m = Match(HttpMethod::kGet, "/v1/channels/a%2Fpublish");
  EXPECT_EQ(m.route, HttpRoute::kChannel);
  EXPECT_EQ(m.channel, "a/publish");
  // '+' is not a space in a path; names that are no valid channel names are still matched (the
  // handler rejects them with a message about the name).
  m = Match(HttpMethod::kGet, "/v1/channels/a+b");
  EXPECT_EQ(m.channel, "a+b");
  m = Match(HttpMethod::kGet, "/v1/channels/a%20b");
  EXPECT_EQ(m.channel, "a b");

  auto bad = MatchRoute(HttpMethod::kGet, "/v1/channels/%zz");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  bad = MatchRoute(HttpMethod::kPost, "/v1/channels/a%2/publish");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
}

TEST(ChannelRoutesTest, PathsNextToTheChannelResourcesAreNotFound) {
  for (const char* target : {"/v1/channel", "/v1/channelsx", "/v1/channels-x/a", "/v2/channels"}) {
    auto m = MatchRoute(HttpMethod::kGet, target);
    ASSERT_FALSE(m) << target;
    EXPECT_EQ(m.error().code(), ErrorCode::kNotFound) << target;
  }
}

TEST(ChannelRoutesTest, PublishTakesOnlyPostAndTheOthersOnlyGetAndHead) {
  struct Case {
    const char* target;
    std::string_view allow;
  };
  for (const Case& c : {Case{"/v1/channels", "GET, HEAD"}, Case{"/v1/channels/a/b", "GET, HEAD"},
                        Case{"/v1/channels/a/b/publish", "POST"}}) {
    const bool publish = c.allow == "POST";
    for (HttpMethod method : {HttpMethod::kGet, HttpMethod::kHead, HttpMethod::kPut,
                              HttpMethod::kPost, HttpMethod::kDelete, HttpMethod::kOther}) {
      RouteMatch m = Match(method, c.target);
      const bool expected = publish ? method == HttpMethod::kPost
                                    : method == HttpMethod::kGet || method == HttpMethod::kHead;
      EXPECT_EQ(m.method_allowed, expected) << c.target << " " << HttpMethodName(method);
      EXPECT_EQ(m.allow, c.allow) << c.target << " " << HttpMethodName(method);
    }
  }
}

constexpr std::string_view kTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";

TEST(TraceparentTest, TheTraceIdOfAValidHeader) {
  EXPECT_EQ(TraceIdFromTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            kTraceId);
  EXPECT_EQ(TraceIdFromTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
            kTraceId);
  // Upper-case hex is accepted and the id comes back in lower case.
  EXPECT_EQ(TraceIdFromTraceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"),
            kTraceId);
  EXPECT_EQ(TraceIdFromTraceparent("00-4bF92f3577B34da6a3CE929d0e0e4736-00f067aa0ba902b7-01"),
            kTraceId);
  // A later version may append fields after a '-'.
  EXPECT_EQ(TraceIdFromTraceparent(
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future-fields"),
            kTraceId);
  EXPECT_EQ(TraceIdFromTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-"),
            kTraceId);
}

TEST(TraceparentTest, MalformedHeadersAndTheAllZeroIdGiveNoTraceId) {
  const std::string valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  ASSERT_EQ(TraceIdFromTraceparent(valid), kTraceId);  // the cases below break one thing each
  for (const std::string& header : {
           std::string("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),  // all zero
           std::string(""),
           valid.substr(0, valid.size() - 1),  // flags one digit short
           std::string("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"),    // id 31
           std::string("00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01"),  // id 33
           std::string("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01"),    // parent 15
           std::string("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),   // separators
           std::string("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01"),
           std::string("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01"),
           valid + "x",  // suffix without a '-'
           valid + "1",
           std::string("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"),  // non-hex id
           std::string("00-4bf92f3577b34da6a3ce929d0e0e473 -00f067aa0ba902b7-01"),
           std::string("00-4bf92f3577b34da6a3ce929d0e0e473G-00f067aa0ba902b7-01"),
           std::string("00--4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"),
           std::string(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
       }) {
    EXPECT_EQ(TraceIdFromTraceparent(header), "") << "'" << header << "'";
  }
}

// The W3C trace-context rules make these headers invalid: a non-hex or all-zero parent id,
// non-hex flags, the version "ff", a non-hex version, a version-00 header longer than 55
// characters. A malformed header gives no trace id.
TEST(TraceparentTest, EveryFieldOfAVersion00HeaderIsChecked) {
  for (const char* header : {
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bx-01",    // non-hex parent id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // all-zero parent id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",    // non-hex flags
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version ff is invalid
           "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // non-hex version
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  // 00 has no more fields
       }) {
    EXPECT_EQ(TraceIdFromTraceparent(header), "") << header;
  }
}

}  // namespace
}  // namespace edgeflow::api
