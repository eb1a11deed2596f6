// Tests of the Boost-free request-target decoding, routing and parameter parsing of the HTTP API.
#include "common/url_codec.h"

#include <string>

#include <gtest/gtest.h>

#include "api/http_json.h"
#include "api/http_params.h"
#include "api/http_router.h"

namespace edgeflow::api {
namespace {

TEST(PercentDecodeTest, DecodesEscapesAndKeepsOtherBytes) {
  EXPECT_EQ(*PercentDecode("a%2Fb%20c", false), "a/b c");
  EXPECT_EQ(*PercentDecode("%41%62%7e", false), "Ab~");
  EXPECT_EQ(*PercentDecode("plain", false), "plain");
  EXPECT_EQ(*PercentDecode("", false), "");
  EXPECT_EQ(*PercentDecode("%00x", false), std::string("\0x", 2));
  EXPECT_EQ(*PercentDecode("%ff%FE", false), "\xff\xfe");
}

TEST(PercentDecodeTest, PlusIsSpaceOnlyInQueries) {
  EXPECT_EQ(*PercentDecode("a+b", false), "a+b");
  EXPECT_EQ(*PercentDecode("a+b", true), "a b");
  EXPECT_EQ(*PercentDecode("a%2Bb", true), "a+b");
}

TEST(PercentDecodeTest, RejectsMalformedEscapes) {
  for (const char* bad : {"%", "%4", "a%", "%zz", "%4g", "%g4", "ab%2"}) {
    auto r = PercentDecode(bad, false);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(PercentEncodeTest, RoundTripsAnyBytes) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (bool keep_slash : {false, true}) {
    std::string encoded = PercentEncode(all, keep_slash);
    EXPECT_EQ(encoded.find_first_of(" ?#\r\n"), std::string::npos);
    auto decoded = PercentDecode(encoded, false);
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, all);
  }
  EXPECT_EQ(PercentEncode("a/b c", true), "a/b%20c");
  EXPECT_EQ(PercentEncode("a/b c", false), "a%2Fb%20c");
}

TEST(SplitTargetTest, OriginForm) {
  auto parts = SplitTarget("/v1/kv/ns/key?prefix=a&limit=2");
  ASSERT_TRUE(parts);
  EXPECT_EQ(parts->path, "/v1/kv/ns/key");
  EXPECT_EQ(parts->query, "prefix=a&limit=2");
  parts = SplitTarget("/x?");
  ASSERT_TRUE(parts);
  EXPECT_EQ(parts->path, "/x");
  EXPECT_EQ(parts->query, "");
  parts = SplitTarget("/a?b?c");
  ASSERT_TRUE(parts);
  EXPECT_EQ(parts->query, "b?c");
}

TEST(SplitTargetTest, AbsoluteForm) {
  auto parts = SplitTarget("http://host:7070/healthz?x=1");
  ASSERT_TRUE(parts);
  EXPECT_EQ(parts->path, "/healthz");
  EXPECT_EQ(parts->query, "x=1");
  parts = SplitTarget("HTTP://host");
  ASSERT_TRUE(parts);
  EXPECT_EQ(parts->path, "/");
  parts = SplitTarget("http://host?q");
  ASSERT_TRUE(parts);
  EXPECT_EQ(parts->path, "/");
  EXPECT_EQ(parts->query, "q");
}

TEST(SplitTargetTest, RejectsOtherForms) {
  for (const char* bad :
       {"", "*", "host:80", "ftp://x/y", "http:///x", "/a b", "/a\tb", "/a#frag", "/\x7f"}) {
    EXPECT_FALSE(SplitTarget(bad)) << bad;
  }
}

TEST(QueryParamsTest, ParsesDecodesAndKeepsFirstOccurrence) {
  auto q = QueryParams::Parse("a=1&b=x+y%21&&flag&a=2&=v&e=");
  ASSERT_TRUE(q);
  EXPECT_EQ(*q->Get("a"), "1");
  EXPECT_EQ(*q->Get("b"), "x y!");
  EXPECT_EQ(*q->Get("flag"), "");
  EXPECT_EQ(*q->Get(""), "v");
  EXPECT_EQ(*q->Get("e"), "");
  EXPECT_FALSE(q->Has("missing"));
  EXPECT_EQ(q->all().size(), 6u);
}

TEST(QueryParamsTest, RejectsBadEscapes) {
  EXPECT_FALSE(QueryParams::Parse("a=%zz"));
  EXPECT_FALSE(QueryParams::Parse("%=1"));
  EXPECT_TRUE(QueryParams::Parse(""));
}

TEST(MatchRouteTest, FixedRoutes) {
  auto m = MatchRoute(HttpMethod::kGet, "/healthz");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route, HttpRoute::kHealthz);
  EXPECT_TRUE(m->method_allowed);
  EXPECT_EQ(MatchRoute(HttpMethod::kHead, "/metrics")->route, HttpRoute::kMetrics);
  EXPECT_EQ(MatchRoute(HttpMethod::kGet, "/v1/node")->route, HttpRoute::kNode);
  auto bad_method = MatchRoute(HttpMethod::kPut, "/healthz");
  ASSERT_TRUE(bad_method);
  EXPECT_FALSE(bad_method->method_allowed);
  EXPECT_EQ(bad_method->allow, "GET, HEAD");
}

TEST(MatchRouteTest, KvItemKeyIsTheDecodedRestOfThePath) {
  auto m = MatchRoute(HttpMethod::kPut, "/v1/kv/cam.1/a/b%2Fc%20d+e?ttl=5");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route, HttpRoute::kKvItem);
  EXPECT_EQ(m->ns, "cam.1");
  EXPECT_EQ(m->key, "a/b/c d+e");
  EXPECT_EQ(m->query, "ttl=5");
  EXPECT_TRUE(m->method_allowed);

  m = MatchRoute(HttpMethod::kGet, "/v1/kv/ns/../x/./y");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->key, "../x/./y");  // keys are opaque: no dot-segment removal

  m = MatchRoute(HttpMethod::kDelete, "/v1/kv/ns/");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route, HttpRoute::kKvItem);
  EXPECT_EQ(m->key, "");  // rejected later as an empty key

  m = MatchRoute(HttpMethod::kOther, "/v1/kv/ns/k");
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->method_allowed);
  EXPECT_EQ(m->allow, "GET, HEAD, PUT, POST, DELETE");
}

TEST(MatchRouteTest, ListAndWatch) {
  auto m = MatchRoute(HttpMethod::kGet, "/v1/kv/ns?prefix=a");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route, HttpRoute::kKvList);
  EXPECT_EQ(m->ns, "ns");
  EXPECT_FALSE(MatchRoute(HttpMethod::kPut, "/v1/kv/ns")->method_allowed);

  m = MatchRoute(HttpMethod::kGet, "/v1/watch/ns?from_seq=3");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route, HttpRoute::kWatch);
  EXPECT_EQ(m->ns, "ns");
  EXPECT_EQ(m->query, "from_seq=3");
  EXPECT_EQ(MatchRoute(HttpMethod::kGet, "/v1/watch/%2A")->ns, "*");
  EXPECT_FALSE(MatchRoute(HttpMethod::kPost, "/v1/watch/ns")->method_allowed);
}

TEST(MatchRouteTest, UnknownPathsAreNotFoundAndBadTargetsInvalid) {
  for (const char* path : {"/", "/v1", "/v1/kv", "/v1/kv/", "/v1/watch/", "/v1/watch/a/b",
                           "/healthz/", "/HEALTHZ", "/v2/kv/ns/k"}) {
    auto m = MatchRoute(HttpMethod::kGet, path);
    ASSERT_FALSE(m) << path;
    EXPECT_EQ(m.error().code(), ErrorCode::kNotFound) << path;
  }
  for (const char* target : {"/v1/kv/n%zz/k", "/v1/kv/ns/k%", "*", "/a b"}) {
    auto m = MatchRoute(HttpMethod::kGet, target);
    ASSERT_FALSE(m) << target;
    EXPECT_EQ(m.error().code(), ErrorCode::kInvalidArgument) << target;
  }
}

TEST(HttpMethodTest, ParsesAndNames) {
  EXPECT_EQ(ParseHttpMethod("GET"), HttpMethod::kGet);
  EXPECT_EQ(ParseHttpMethod("get"), HttpMethod::kOther);
  EXPECT_EQ(ParseHttpMethod("PATCH"), HttpMethod::kOther);
  EXPECT_EQ(HttpMethodName(HttpMethod::kDelete), "DELETE");
  EXPECT_EQ(HttpRouteName(HttpRoute::kKvItem), "kv_item");
}

TEST(ParseTtlTest, AcceptsSecondsFractionsAndUnits) {
  EXPECT_EQ(*ParseTtlMillis("30"), 30'000);
  EXPECT_EQ(*ParseTtlMillis("1.5"), 1'500);
  EXPECT_EQ(*ParseTtlMillis("250ms"), 250);
  EXPECT_EQ(*ParseTtlMillis("10s"), 10'000);
  EXPECT_EQ(*ParseTtlMillis("5m"), 300'000);
  EXPECT_EQ(*ParseTtlMillis("2h"), 7'200'000);
  EXPECT_EQ(*ParseTtlMillis("0.0001"), 1);  // rounded up, never to 0
  EXPECT_EQ(*ParseTtlMillis(".5"), 500);
}

TEST(ParseTtlTest, RejectsNonsense) {
  for (const char* bad : {"", "0", "0ms", "-1", "+1", "abc", "1x", "ms", "1e3", "inf", "nan", " 1",
                          "1 ", "1..2", "1.5.2", "999999999999999999999h"}) {
    auto r = ParseTtlMillis(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(ParseUnsignedTest, Decimal) {
  EXPECT_EQ(*ParseUnsigned("0", "x"), 0u);
  EXPECT_EQ(*ParseUnsigned("18446744073709551615", "x"), UINT64_MAX);
  for (const char* bad : {"", "-1", "+1", "1a", " 1", "18446744073709551616", "0x10"}) {
    EXPECT_FALSE(ParseUnsigned(bad, "limit")) << bad;
  }
}

TEST(EntityTagTest, StarQuotedBareAndWeak) {
  auto c = ParseEntityTagCondition("*");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->any);
  c = ParseEntityTagCondition(" \"abc\" ");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->any);
  EXPECT_EQ(c->tag, "abc");
  EXPECT_EQ(ParseEntityTagCondition("abc")->tag, "abc");
  EXPECT_EQ(ParseEntityTagCondition("W/\"abc\"")->tag, "abc");
  for (const char* bad : {"", "\"\"", "\"a\", \"b\"", "\"a", "a\"b"}) {
    EXPECT_FALSE(ParseEntityTagCondition(bad)) << bad;
  }
}

TEST(HttpJsonTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain/key"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // > U+10FFFF
}

TEST(HttpJsonTest, Base64RoundTrip) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("\xff\xfe"), "//4=");
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  EXPECT_EQ(*Base64Decode(Base64Encode(all)), all);
  for (const char* bad : {"Zg=", "Z===", "Zm9v!A==", "====", "Zg==Zg=="}) {
    EXPECT_FALSE(Base64Decode(bad)) << bad;
  }
}

TEST(HttpJsonTest, ErrorBodyAndKeyField) {
  EXPECT_EQ(ErrorBody("NOT_FOUND", "no such key"),
            R"({"error":{"code":"NOT_FOUND","message":"no such key"}})");
  // Invalid UTF-8 in a message must not make serialisation throw.
  EXPECT_NO_THROW(ErrorBody("X", "bad \xff byte"));
  nlohmann::json j;
  SetKeyField(&j, "k/1");
  EXPECT_EQ(j["key"], "k/1");
  nlohmann::json b;
  SetKeyField(&b, "\xff");
  EXPECT_FALSE(b.contains("key"));
  EXPECT_EQ(b["key_b64"], "/w==");
  EXPECT_EQ(HttpStatusFor(ErrorCode::kOutOfRange), 410u);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kFailedPrecondition), 412u);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kIoError), 500u);
}

}  // namespace
}  // namespace edgeflow::api
