// Routing of the stream fan-out's resources (MatchRoute): pure, no server.
#include <gtest/gtest.h>

#include "api/http_router.h"

namespace edgeflow::api {
namespace {

TEST(StreamRoutesTest, StreamListTakesGetAndPost) {
  for (const char* target : {"/v1/streams", "/v1/streams/"}) {
    auto list = MatchRoute(HttpMethod::kGet, target);
    ASSERT_TRUE(list.has_value()) << target;
    EXPECT_EQ(list->route, HttpRoute::kStreamList) << target;
    EXPECT_TRUE(list->method_allowed);
  }
  auto add = MatchRoute(HttpMethod::kPost, "/v1/streams");
  ASSERT_TRUE(add.has_value());
  EXPECT_TRUE(add->method_allowed);
  auto head = MatchRoute(HttpMethod::kHead, "/v1/streams");
  ASSERT_TRUE(head.has_value());
  EXPECT_TRUE(head->method_allowed);
  auto del = MatchRoute(HttpMethod::kDelete, "/v1/streams");
  ASSERT_TRUE(del.has_value());
  EXPECT_FALSE(del->method_allowed);
  EXPECT_EQ(del->allow, "GET, HEAD, POST");
}

TEST(StreamRoutesTest, OneStreamIsReadAndDeleted) {
  auto get = MatchRoute(HttpMethod::kGet, "/v1/streams/cam%2D1?x=1");
  ASSERT_TRUE(get.has_value());
  EXPECT_EQ(get->route, HttpRoute::kStream);
  EXPECT_EQ(get->stream, "cam-1");
  EXPECT_EQ(get->query, "x=1");
  EXPECT_TRUE(get->method_allowed);
  auto del = MatchRoute(HttpMethod::kDelete, "/v1/streams/cam1");
  ASSERT_TRUE(del.has_value());
  EXPECT_TRUE(del->method_allowed);
  auto put = MatchRoute(HttpMethod::kPut, "/v1/streams/cam1");
  ASSERT_TRUE(put.has_value());
  EXPECT_FALSE(put->method_allowed);
  EXPECT_EQ(put->allow, "GET, HEAD, DELETE");
}

TEST(StreamRoutesTest, ConsumersAreAddedWithPostOnly) {
  for (const char* target : {"/v1/streams/cam1/consumers", "/v1/streams/cam1/consumers/"}) {
    auto add = MatchRoute(HttpMethod::kPost, target);
    ASSERT_TRUE(add.has_value()) << target;
    EXPECT_EQ(add->route, HttpRoute::kStreamConsumers) << target;
    EXPECT_EQ(add->stream, "cam1");
    EXPECT_TRUE(add->consumer.empty());
    EXPECT_TRUE(add->method_allowed);
  }
  auto get = MatchRoute(HttpMethod::kGet, "/v1/streams/cam1/consumers");
  ASSERT_TRUE(get.has_value());
  EXPECT_FALSE(get->method_allowed);
  EXPECT_EQ(get->allow, "POST");
}

TEST(StreamRoutesTest, OneConsumerIsReadChangedAndDeleted) {
  for (HttpMethod method :
       {HttpMethod::kGet, HttpMethod::kHead, HttpMethod::kPut, HttpMethod::kDelete}) {
    auto one = MatchRoute(method, "/v1/streams/cam1/consumers/det.a");
    ASSERT_TRUE(one.has_value()) << HttpMethodName(method);
    EXPECT_EQ(one->route, HttpRoute::kStreamConsumer);
    EXPECT_EQ(one->stream, "cam1");
    EXPECT_EQ(one->consumer, "det.a");
    EXPECT_TRUE(one->method_allowed) << HttpMethodName(method);
  }
  auto post = MatchRoute(HttpMethod::kPost, "/v1/streams/cam1/consumers/det");
  ASSERT_TRUE(post.has_value());
  EXPECT_FALSE(post->method_allowed);
  EXPECT_EQ(post->allow, "GET, HEAD, PUT, DELETE");
  // Names are decoded; what is a valid name is the service's business.
  auto encoded = MatchRoute(HttpMethod::kPut, "/v1/streams/c%20am/consumers/a%2Fb");
  ASSERT_TRUE(encoded.has_value());
  EXPECT_EQ(encoded->stream, "c am");
  EXPECT_EQ(encoded->consumer, "a/b");
}

TEST(StreamRoutesTest, RouteNamesForMetrics) {
  EXPECT_EQ(HttpRouteName(HttpRoute::kStreamList), "stream_list");
  EXPECT_EQ(HttpRouteName(HttpRoute::kStream), "stream");
  EXPECT_EQ(HttpRouteName(HttpRoute::kStreamConsumers), "stream_consumers");
  EXPECT_EQ(HttpRouteName(HttpRoute::kStreamConsumer), "stream_consumer");
  EXPECT_EQ(static_cast<size_t>(HttpRoute::kUnknown) + 1, kHttpRouteCount);
}

TEST(StreamRoutesTest, MalformedPathsNameNoResource) {
  for (const char* target :
       {"/v1/streams//", "/v1/streams//consumers", "/v1/streams/cam1/", "/v1/streams/cam1/x",
        "/v1/streams/cam1/consumer", "/v1/streams/cam1/consumers//",
        "/v1/streams/cam1/consumers/a/b", "/v1/streams/cam1/consumers/a/", "/v1/streamsx"}) {
    auto m = MatchRoute(HttpMethod::kGet, target);
    ASSERT_FALSE(m.has_value()) << target << " matched route "
                                << HttpRouteName(m ? m->route : HttpRoute::kUnknown);
    EXPECT_TRUE(m.error().Is(ErrorCode::kNotFound)) << target;
  }
  auto bad_escape = MatchRoute(HttpMethod::kGet, "/v1/streams/%zz");
  ASSERT_FALSE(bad_escape.has_value());
  EXPECT_TRUE(bad_escape.error().Is(ErrorCode::kInvalidArgument));
  auto bad_consumer = MatchRoute(HttpMethod::kGet, "/v1/streams/s/consumers/%G0");
  ASSERT_FALSE(bad_consumer.has_value());
  EXPECT_TRUE(bad_consumer.error().Is(ErrorCode::kInvalidArgument));
}

}  // namespace
}  // namespace edgeflow::api
