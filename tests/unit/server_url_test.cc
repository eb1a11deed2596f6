#include "client/server_url.h"

#include <gtest/gtest.h>

namespace edgeflow::client {
namespace {

TEST(ServerUrlTest, AcceptsTheUsualSpellings) {
  auto a = ServerUrl::Parse("http://127.0.0.1:7070");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 7070);
  auto b = ServerUrl::Parse("localhost");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->port, 7070);
  auto c = ServerUrl::Parse("http://[::1]:9000/");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->ToString(), "http://[::1]:9000");
  EXPECT_TRUE(ServerUrl::Parse("edge-node_1.example:80"));
}

TEST(ServerUrlTest, RejectsWhatCannotBeAServer) {
  for (const char* bad :
       {"", "http://", "https://127.0.0.1", "ftp://x", "http://h/path", "not a url", "http://h:0",
        "http://h:70000", "http://h:x", "::1:80", "http://[::1", "host\n:80", "http://h:"}) {
    auto r = ServerUrl::Parse(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_NE(r.error().message().find("invalid server URL"), std::string::npos) << bad;
    }
  }
}

}  // namespace
}  // namespace edgeflow::client
