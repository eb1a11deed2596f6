// Routing of the edge-function resources (MatchRoute): pure, no server.
#include <gtest/gtest.h>

#include "api/http_router.h"

namespace edgeflow::api {
namespace {

TEST(FunctionRoutesTest, PipelinesListDeployAndOnePipeline) {
  auto list = MatchRoute(HttpMethod::kPost, "/v1/pipelines?dir=%2Ftmp");
  ASSERT_TRUE(list.has_value());
  EXPECT_EQ(list->route, HttpRoute::kPipelineList);
  EXPECT_TRUE(list->method_allowed);
  EXPECT_EQ(list->query, "dir=%2Ftmp");
  auto one = MatchRoute(HttpMethod::kDelete, "/v1/pipelines/face%2Daugment");
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->route, HttpRoute::kPipeline);
  EXPECT_EQ(one->pipeline, "face-augment");
  EXPECT_TRUE(one->method_allowed);
  auto put = MatchRoute(HttpMethod::kPut, "/v1/pipelines/p");
  ASSERT_TRUE(put.has_value());
  EXPECT_FALSE(put->method_allowed);
  EXPECT_EQ(put->allow, "GET, HEAD, DELETE");
}

TEST(FunctionRoutesTest, LogsAndFunctionList) {
  auto logs = MatchRoute(HttpMethod::kGet, "/v1/pipelines/p/functions/detect/logs?since=4");
  ASSERT_TRUE(logs.has_value());
  EXPECT_EQ(logs->route, HttpRoute::kFunctionLogs);
  EXPECT_EQ(logs->pipeline, "p");
  EXPECT_EQ(logs->function, "detect");
  EXPECT_EQ(logs->query, "since=4");
  auto ps = MatchRoute(HttpMethod::kGet, "/v1/functions");
  ASSERT_TRUE(ps.has_value());
  EXPECT_EQ(ps->route, HttpRoute::kFunctionList);
  EXPECT_EQ(HttpRouteName(HttpRoute::kFunctionLogs), "function_logs");
}

TEST(FunctionRoutesTest, MalformedPathsNameNoResource) {
  for (const char* target :
       {"/v1/pipelines//", "/v1/pipelines/p/functions", "/v1/pipelines/p/functions//logs",
        "/v1/pipelines/p/functions/a/b/logs", "/v1/pipelines/p/x", "/v1/pipelines/p/functions/f"}) {
    auto m = MatchRoute(HttpMethod::kGet, target);
    ASSERT_FALSE(m.has_value()) << target;
    EXPECT_TRUE(m.error().Is(ErrorCode::kNotFound)) << target;
  }
  EXPECT_FALSE(MatchRoute(HttpMethod::kGet, "/v1/pipelines/%zz").has_value());
}

}  // namespace
}  // namespace edgeflow::api
