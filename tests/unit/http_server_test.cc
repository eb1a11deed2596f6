// Tests of the HTTP front-end: a real HttpServer on a free loopback port over a real kv::Store in
// a per-test directory, driven by a Beast client (HttpTestClient).
#include "api/http_server.h"

#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "tests/unit/http_test_client.h"
#include "support/temp_dir.h"

namespace edgeflow::api {
namespace {

namespace http = boost::beast::http;
using test::HttpTestClient;
using test::SseEvent;
using Response = test::HttpResponseMessage;

constexpr int64_t kStart = 1'700'000'000'000;
constexpr size_t kMaxValue = 1 << 20;

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    OpenStore();
    StartServer(Config());
  }

  void TearDown() override {
    if (server_) server_->Stop();
    server_.reset();
    store_.reset();
  }

  HttpServerConfig Config() {
    HttpServerConfig config;
    config.listen = {"127.0.0.1", 0};
    config.io_threads = 2;
    config.max_key_bytes = 256;
    config.max_value_bytes = kMaxValue;
    config.max_header_bytes = 8 << 10;
    config.idle_timeout_seconds = 30;
    config.watch_keepalive_seconds = 1;
    return config;
  }

  void OpenStore(uint64_t changelog_max_entries = 10'000'000) {
    kv::StoreOptions options;
    options.dir = dir_.path() / "kv";
    options.clock = &clock_;
    options.max_value_bytes = 8 << 20;
    options.block_cache_bytes = 8 << 20;
    options.write_buffer_bytes = 4 << 20;
    options.changelog_max_entries = changelog_max_entries;
    auto opened = kv::Store::Open(std::move(options));
    ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
    store_ = std::move(*opened);
  }

  void StartServer(HttpServerConfig config) {
    if (server_) server_->Stop();
    server_.reset();
    registry_ = std::make_unique<metrics::Registry>();
    auto created = HttpServer::Create(std::move(config), store_.get(), registry_.get(),
                                      [] { return std::string(R"({"node_id":"test"})"); });
    ASSERT_TRUE(created.has_value()) << created.error().ToString();
    server_ = std::move(*created);
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    port_ = server_->bound_address().port;
    ASSERT_NE(port_, 0);
  }

  static nlohmann::json Json(const Response& res) {
    return nlohmann::json::parse(res.body(), nullptr, /*allow_exceptions=*/false);
  }
  static std::string ErrorCode(const Response& res) {
    auto j = Json(res);
    if (!j.is_object() || !j.contains("error")) return "<no JSON error: " + res.body() + ">";
    return j["error"]["code"].get<std::string>();
  }

  // The server keeps serving: a fresh connection gets a healthy answer.
  void ExpectHealthy() {
    HttpTestClient client(port_);
    ASSERT_TRUE(client.connected());
    Response res = client.Get("/healthz");
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body(), R"({"status":"ok"})");
  }

  std::string Put(HttpTestClient& client, const std::string& target, const std::string& value,
                  const std::map<std::string, std::string>& headers = {}) {
    Response res = client.Request(http::verb::put, target, value, headers);
    EXPECT_EQ(res.result_int(), 200u) << target << " " << res.body();
    return std::string(res[http::field::etag]);
  }

  test_support::TempDir dir_;
  ManualClock clock_{kStart};
  std::unique_ptr<kv::Store> store_;
  std::unique_ptr<metrics::Registry> registry_;
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
};

TEST_F(HttpServerTest, HealthMetricsAndNode) {
  HttpTestClient client(port_);
  ASSERT_TRUE(client.connected());
  Response health = client.Get("/healthz");
  EXPECT_EQ(health.result_int(), 200u);
  EXPECT_EQ(health[http::field::content_type], "application/json");
  EXPECT_EQ(health.body(), R"({"status":"ok"})");

  Response node = client.Get("/v1/node");
  EXPECT_EQ(node.result_int(), 200u);
  EXPECT_EQ(Json(node)["node_id"], "test");

  Response metrics = client.Get("/metrics");
  EXPECT_EQ(metrics.result_int(), 200u);
  EXPECT_EQ(metrics[http::field::content_type], "text/plain; version=0.0.4");
  EXPECT_NE(metrics.body().find(
                R"(edgeflow_http_requests_total{method="GET",route="healthz",code_class="2xx"} 1)"),
            std::string::npos);
  EXPECT_NE(metrics.body().find("edgeflow_http_connections 1"), std::string::npos);
  EXPECT_NE(metrics.body().find("edgeflow_watch_streams 0"), std::string::npos);
  EXPECT_NE(metrics.body().find(R"(edgeflow_http_request_duration_seconds_count{route="node"} 1)"),
            std::string::npos);

  Response head = client.Request(http::verb::head, "/healthz");
  EXPECT_EQ(head.result_int(), 200u);
  EXPECT_EQ(head[http::field::content_length], "15");
  EXPECT_TRUE(head.body().empty());
  // The connection is still in sync after the HEAD.
  EXPECT_EQ(client.Get("/healthz").result_int(), 200u);
}

TEST_F(HttpServerTest, PutGetHeadRoundTrip) {
  HttpTestClient client(port_);
  Response put = client.Request(http::verb::put, "/v1/kv/cam1/frame-1", "hello world",
                                {{"Content-Type", "text/plain"}});
  ASSERT_EQ(put.result_int(), 200u) << put.body();
  auto put_json = Json(put);
  std::string version = put_json["version"];
  EXPECT_EQ(version.size(), 33u);
  EXPECT_GE(put_json["seq"].get<uint64_t>(), 1u);
  EXPECT_EQ(put[http::field::etag], "\"" + version + "\"");

  Response get = client.Get("/v1/kv/cam1/frame-1");
  ASSERT_EQ(get.result_int(), 200u);
  EXPECT_EQ(get.body(), "hello world");
  EXPECT_EQ(get[http::field::content_type], "text/plain");
  EXPECT_EQ(get[http::field::etag], "\"" + version + "\"");
  EXPECT_EQ(get["EKV-Version"], version);
  EXPECT_EQ(get["EKV-Seq"], std::to_string(put_json["seq"].get<uint64_t>()));
  EXPECT_EQ(get.find("EKV-Expires-At"), get.end());

  Response head = client.Request(http::verb::head, "/v1/kv/cam1/frame-1");
  ASSERT_EQ(head.result_int(), 200u);
  EXPECT_EQ(head[http::field::content_length], "11");
  EXPECT_EQ(head["EKV-Version"], version);
  EXPECT_TRUE(head.body().empty());

  // POST is an alias of PUT; no Content-Type means application/octet-stream on the way out.
  Response post = client.Request(http::verb::post, "/v1/kv/cam1/frame-2", std::string("\0\1\2", 3));
  ASSERT_EQ(post.result_int(), 200u) << post.body();
  Response get2 = client.Get("/v1/kv/cam1/frame-2");
  EXPECT_EQ(get2.body(), std::string("\0\1\2", 3));
  EXPECT_EQ(get2[http::field::content_type], "application/octet-stream");

  // An empty value is a value.
  Response empty = client.Request(http::verb::put, "/v1/kv/cam1/empty", "");
  ASSERT_EQ(empty.result_int(), 200u) << empty.body();
  Response get_empty = client.Get("/v1/kv/cam1/empty");
  EXPECT_EQ(get_empty.result_int(), 200u);
  EXPECT_EQ(get_empty.body(), "");

  Response missing = client.Get("/v1/kv/cam1/nope");
  EXPECT_EQ(missing.result_int(), 404u);
  EXPECT_EQ(ErrorCode(missing), "NOT_FOUND");
  Response missing_head = client.Request(http::verb::head, "/v1/kv/cam1/nope");
  EXPECT_EQ(missing_head.result_int(), 404u);
  EXPECT_EQ(client.Get("/healthz").result_int(), 200u);
}

TEST_F(HttpServerTest, LargeValueRoundTrip) {
  std::string value(kMaxValue, 'x');
  for (size_t i = 0; i < value.size(); i += 997) value[i] = static_cast<char>(i % 251);
  HttpTestClient client(port_);
  Put(client, "/v1/kv/big/v", value);
  Response get = client.Get("/v1/kv/big/v");
  ASSERT_EQ(get.result_int(), 200u);
  EXPECT_TRUE(get.body() == value);
}

TEST_F(HttpServerTest, PercentEncodedKeysWithSlashes) {
  HttpTestClient client(port_);
  Put(client, "/v1/kv/ns/a%2Fb/c%20d%3F", "v1");
  // The same key, written with a literal '/'.
  Response get = client.Get("/v1/kv/ns/a/b/c%20d%3F");
  ASSERT_EQ(get.result_int(), 200u);
  EXPECT_EQ(get.body(), "v1");
  auto item = store_->Get("ns", "a/b/c d?");
  ASSERT_TRUE(item);
  EXPECT_EQ(item->value, "v1");
  // '+' is literal in paths.
  Put(client, "/v1/kv/ns/x+y", "plus");
  EXPECT_TRUE(store_->Get("ns", "x+y"));
  // Binary key bytes.
  Put(client, "/v1/kv/ns/%00%FF", "bin");
  EXPECT_TRUE(store_->Get("ns", std::string("\0\xff", 2)));

  Response list = client.Get("/v1/kv/ns");
  ASSERT_EQ(list.result_int(), 200u);
  auto items = Json(list)["items"];
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0]["key_b64"], "AP8=");  // "\0\xff" is not UTF-8
  EXPECT_FALSE(items[0].contains("key"));
  EXPECT_EQ(items[1]["key"], "a/b/c d?");
  EXPECT_EQ(items[2]["key"], "x+y");

  Response bad = client.Get("/v1/kv/ns/a%zz");
  EXPECT_EQ(bad.result_int(), 400u);
  EXPECT_EQ(ErrorCode(bad), "INVALID_ARGUMENT");
}

TEST_F(HttpServerTest, CompareAndSetAndCreateOnly) {
  HttpTestClient client(port_);
  std::string etag1 = Put(client, "/v1/kv/ns/k", "one");
  std::string etag2 = Put(client, "/v1/kv/ns/k", "two", {{"If-Match", etag1}});
  // etag1 was current, so the CAS above applied; now etag1 is stale.
  EXPECT_NE(etag1, etag2);
  Response stale = client.Request(http::verb::put, "/v1/kv/ns/k", "three", {{"If-Match", etag1}});
  EXPECT_EQ(stale.result_int(), 412u);
  EXPECT_EQ(ErrorCode(stale), "FAILED_PRECONDITION");
  EXPECT_EQ(client.Get("/v1/kv/ns/k").body(), "two");

  Response malformed =
      client.Request(http::verb::put, "/v1/kv/ns/k", "x", {{"If-Match", "\"nope\""}});
  EXPECT_EQ(malformed.result_int(), 400u);
  Response list_tags =
      client.Request(http::verb::put, "/v1/kv/ns/k", "x", {{"If-Match", etag2 + ", " + etag1}});
  EXPECT_EQ(list_tags.result_int(), 400u);

  // If-Match: * = replace only.
  Response absent = client.Request(http::verb::put, "/v1/kv/ns/absent", "x", {{"If-Match", "*"}});
  EXPECT_EQ(absent.result_int(), 412u);
  EXPECT_EQ(
      client.Request(http::verb::put, "/v1/kv/ns/k", "four", {{"If-Match", "*"}}).result_int(),
      200u);

  // If-None-Match: * = create only.
  Response exists = client.Request(http::verb::put, "/v1/kv/ns/k", "x", {{"If-None-Match", "*"}});
  EXPECT_EQ(exists.result_int(), 412u);
  EXPECT_EQ(
      client.Request(http::verb::put, "/v1/kv/ns/new", "x", {{"If-None-Match", "*"}}).result_int(),
      200u);
  EXPECT_EQ(
      client.Request(http::verb::put, "/v1/kv/ns/k", "x", {{"If-None-Match", etag2}}).result_int(),
      400u);
  EXPECT_EQ(
      client
          .Request(http::verb::put, "/v1/kv/ns/k", "x", {{"If-None-Match", "*"}, {"If-Match", "*"}})
          .result_int(),
      400u);

  // Conditional GET.
  Response current = client.Get("/v1/kv/ns/k");
  std::string etag = std::string(current[http::field::etag]);
  Response not_modified = client.Get("/v1/kv/ns/k", {{"If-None-Match", etag}});
  EXPECT_EQ(not_modified.result_int(), 304u);
  EXPECT_TRUE(not_modified.body().empty());
  EXPECT_EQ(not_modified[http::field::etag], etag);
  Response modified = client.Get("/v1/kv/ns/k", {{"If-None-Match", etag1}});
  EXPECT_EQ(modified.result_int(), 200u);
  EXPECT_EQ(modified.body(), "four");

  // Conditional DELETE.
  Response wrong = client.Request(http::verb::delete_, "/v1/kv/ns/k", "", {{"If-Match", etag1}});
  EXPECT_EQ(wrong.result_int(), 412u);
  Response right = client.Request(http::verb::delete_, "/v1/kv/ns/k", "", {{"If-Match", etag}});
  EXPECT_EQ(right.result_int(), 200u) << right.body();
  EXPECT_TRUE(Json(right).contains("version"));
  EXPECT_EQ(client.Get("/v1/kv/ns/k").result_int(), 404u);
}

TEST_F(HttpServerTest, DeleteAndMissingKeys) {
  HttpTestClient client(port_);
  Put(client, "/v1/kv/ns/k", "v");
  Response del = client.Request(http::verb::delete_, "/v1/kv/ns/k");
  ASSERT_EQ(del.result_int(), 200u);
  auto json = Json(del);
  EXPECT_TRUE(json["version"].is_string());
  EXPECT_TRUE(json["seq"].is_number_unsigned());
  EXPECT_EQ(client.Get("/v1/kv/ns/k").result_int(), 404u);
  Response again = client.Request(http::verb::delete_, "/v1/kv/ns/k");
  EXPECT_EQ(again.result_int(), 404u);
  EXPECT_EQ(ErrorCode(again), "NOT_FOUND");
}

TEST_F(HttpServerTest, TtlFromQueryAndHeader) {
  HttpTestClient client(port_);
  Put(client, "/v1/kv/ns/q?ttl=60", "v");
  Response get = client.Get("/v1/kv/ns/q");
  ASSERT_EQ(get.result_int(), 200u);
  EXPECT_EQ(get["EKV-Expires-At"], std::to_string(kStart + 60'000));

  Put(client, "/v1/kv/ns/h", "v", {{"EKV-TTL", "1.5"}});
  EXPECT_EQ(client.Get("/v1/kv/ns/h")["EKV-Expires-At"], std::to_string(kStart + 1'500));
  Put(client, "/v1/kv/ns/ms?ttl=250ms", "v");
  EXPECT_EQ(client.Get("/v1/kv/ns/ms")["EKV-Expires-At"], std::to_string(kStart + 250));

  clock_.Advance(std::chrono::seconds(2));
  EXPECT_EQ(client.Get("/v1/kv/ns/h").result_int(), 404u);
  EXPECT_EQ(client.Get("/v1/kv/ns/ms").result_int(), 404u);
  EXPECT_EQ(client.Get("/v1/kv/ns/q").result_int(), 200u);

  for (const char* bad :
       {"/v1/kv/ns/x?ttl=abc", "/v1/kv/ns/x?ttl=0", "/v1/kv/ns/x?ttl=-5", "/v1/kv/ns/x?ttl=5d"}) {
    Response res = client.Request(http::verb::put, bad, "v");
    EXPECT_EQ(res.result_int(), 400u) << bad;
    EXPECT_EQ(ErrorCode(res), "INVALID_ARGUMENT");
  }
  Response both = client.Request(http::verb::put, "/v1/kv/ns/x?ttl=5", "v", {{"EKV-TTL", "5"}});
  EXPECT_EQ(both.result_int(), 400u);
  EXPECT_EQ(client.Get("/v1/kv/ns/x").result_int(), 404u);
}

TEST_F(HttpServerTest, ListingWithPaging) {
  HttpTestClient client(port_);
  for (int i = 0; i < 25; ++i) {
    char key[16];
    std::snprintf(key, sizeof(key), "k%02d", i);
    Put(client, std::string("/v1/kv/list/") + key, std::string(i, 'v'),
        {{"Content-Type", "text/plain"}});
  }
  Put(client, "/v1/kv/list/other", "o");
  Put(client, "/v1/kv/elsewhere/k00", "x");

  std::vector<std::string> keys;
  std::string target = "/v1/kv/list?prefix=k&limit=10";
  int pages = 0;
  for (;;) {
    Response res = client.Get(target);
    ASSERT_EQ(res.result_int(), 200u) << res.body();
    auto json = Json(res);
    ++pages;
    for (const auto& item : json["items"]) {
      keys.push_back(item["key"]);
      EXPECT_EQ(item["content_type"], "text/plain");
      EXPECT_TRUE(item["version"].is_string());
      EXPECT_TRUE(item["seq"].is_number());
      EXPECT_TRUE(item["expires_at_ms"].is_null());
    }
    if (json["next"].is_null()) break;
    ASSERT_LE(pages, 5);
    // Alternate between the two spellings of the cursor.
    target = std::string("/v1/kv/list?prefix=k&limit=10&") +
             (pages % 2 ? "start_after=" : "cursor=") + json["next"].get<std::string>();
  }
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(keys.size(), 25u);
  EXPECT_EQ(keys.front(), "k00");
  EXPECT_EQ(keys.back(), "k24");
  auto k03 = Json(client.Get("/v1/kv/list?prefix=k03"))["items"];
  ASSERT_EQ(k03.size(), 1u);
  EXPECT_EQ(k03[0]["size"], 3);

  EXPECT_EQ(Json(client.Get("/v1/kv/list"))["items"].size(), 26u);
  EXPECT_EQ(Json(client.Get("/v1/kv/list?limit=99999"))["items"].size(), 26u);  // clamped
  EXPECT_EQ(Json(client.Get("/v1/kv/empty-ns"))["items"].size(), 0u);
  EXPECT_EQ(client.Get("/v1/kv/list?limit=0").result_int(), 400u);
  EXPECT_EQ(client.Get("/v1/kv/list?limit=ten").result_int(), 400u);
  EXPECT_EQ(client.Get("/v1/kv/list?start_after_b64=!!").result_int(), 400u);
  EXPECT_EQ(client.Get("/v1/kv/bad%20ns").result_int(), 400u);
}

TEST_F(HttpServerTest, KeepAliveAndPipelining) {
  HttpTestClient client(port_);
  for (int i = 0; i < 100; ++i) {
    std::string target = "/v1/kv/ka/key" + std::to_string((i / 2) % 10);
    if (i % 2 == 0) {
      Response put = client.Request(http::verb::put, target, "value" + std::to_string(i));
      ASSERT_EQ(put.result_int(), 200u) << i;
      ASSERT_TRUE(put.keep_alive());
    } else {
      Response get = client.Get(target);
      ASSERT_EQ(get.result_int(), 200u) << i;
      ASSERT_EQ(get.body(), "value" + std::to_string(i - 1));
    }
  }
  // Three requests in one write; the answers come back in order.
  ASSERT_TRUE(
      client.SendRaw("PUT /v1/kv/ka/p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                     "GET /v1/kv/ka/p HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /v1/kv/ka/missing HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(client.Read().result_int(), 200u);
  Response second = client.Read();
  EXPECT_EQ(second.result_int(), 200u);
  EXPECT_EQ(second.body(), "abc");
  EXPECT_EQ(client.Read().result_int(), 404u);

  // Connection: close is honoured.
  Response last = client.Get("/healthz", {{"Connection", "close"}});
  EXPECT_EQ(last.result_int(), 200u);
  EXPECT_FALSE(last.keep_alive());
  EXPECT_TRUE(client.WaitClosed());
}

TEST_F(HttpServerTest, ExpectContinue) {
  HttpTestClient client(port_);
  ASSERT_TRUE(
      client.SendRaw("PUT /v1/kv/ns/upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     "Content-Length: 5\r\n\r\n"));
  Response interim = client.Read();
  EXPECT_EQ(interim.result_int(), 100u);
  ASSERT_TRUE(client.SendRaw("12345"));
  Response final_response = client.Read();
  EXPECT_EQ(final_response.result_int(), 200u) << final_response.body();
  EXPECT_EQ(store_->Get("ns", "upload")->value, "12345");

  // Over the limit: refused at once, no 100, so the client never sends the body.
  ASSERT_TRUE(
      client.SendRaw("PUT /v1/kv/ns/huge HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     "Content-Length: " +
                     std::to_string(kMaxValue + 1) + "\r\n\r\n"));
  Response refused = client.Read();
  EXPECT_EQ(refused.result_int(), 413u);
  EXPECT_EQ(ErrorCode(refused), "RESOURCE_EXHAUSTED");
}

TEST_F(HttpServerTest, MalformedAndHostileRequests) {
  {
    HttpTestClient client(port_);
    ASSERT_TRUE(client.SendRaw("THIS IS NOT HTTP\r\n\r\n"));
    Response res = client.Read();
    EXPECT_EQ(res.result_int(), 400u);
    EXPECT_EQ(ErrorCode(res), "INVALID_ARGUMENT");
    EXPECT_TRUE(client.WaitClosed());
  }
  {
    HttpTestClient client(port_);
    ASSERT_TRUE(client.SendRaw("GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n"));
    Response res = client.Read();
    EXPECT_EQ(res.result_int(), 400u);
    EXPECT_TRUE(client.WaitClosed());
  }
  {
    HttpTestClient client(port_);
    ASSERT_TRUE(client.SendRaw(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(16 << 10, 'a') + "\r\n\r\n"));
    Response res = client.Read();
    EXPECT_EQ(res.result_int(), 431u);
    EXPECT_EQ(ErrorCode(res), "RESOURCE_EXHAUSTED");
  }
  {
    // Declared body over the limit: 413 before the body is sent (the server would otherwise
    // wait for a megabyte that never comes).
    HttpTestClient client(port_);
    ASSERT_TRUE(client.SendRaw("PUT /v1/kv/ns/big HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                               std::to_string(kMaxValue + 1) + "\r\n\r\npartial"));
    Response res = client.Read();
    EXPECT_EQ(res.result_int(), 413u);
    EXPECT_EQ(ErrorCode(res), "RESOURCE_EXHAUSTED");
  }
  {
    // A chunked body that grows past the limit.
    HttpTestClient client(port_);
    std::string chunk(64 << 10, 'c');
    std::string request =
        "PUT /v1/kv/ns/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    ASSERT_TRUE(client.SendRaw(request));
    for (size_t sent = 0; sent <= kMaxValue; sent += chunk.size()) {
      char size_line[32];
      std::snprintf(size_line, sizeof(size_line), "%zx\r\n", chunk.size());
      if (!client.SendRaw(size_line + chunk + "\r\n")) break;
    }
    Response res = client.Read();
    EXPECT_EQ(res.result_int(), 413u);
    EXPECT_FALSE(store_->Get("ns", "chunked"));
  }
  {
    // Bad chunk framing.
    HttpTestClient client(port_);
    ASSERT_TRUE(
        client.SendRaw("PUT /v1/kv/ns/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                       "\r\nzz\r\nabc\r\n0\r\n\r\n"));
    EXPECT_EQ(client.Read().result_int(), 400u);
  }
  {
    // A client that disconnects mid-body leaves nothing behind.
    HttpTestClient client(port_);
    ASSERT_TRUE(
        client.SendRaw("PUT /v1/kv/ns/half HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" +
                       std::string(50, 'h')));
    client.Close();
  }
  {
    HttpTestClient client(port_);
    Response res = client.Request(http::verb::put, "/v1/kv/ns/" + std::string(300, 'k'), "v");
    EXPECT_EQ(res.result_int(), 414u);
    EXPECT_EQ(ErrorCode(res), "RESOURCE_EXHAUSTED");
    res = client.Request(http::verb::put, "/v1/kv/bad%20ns/k", "v");
    EXPECT_EQ(res.result_int(), 400u);
    EXPECT_EQ(ErrorCode(res), "INVALID_ARGUMENT");
    res = client.Request(http::verb::put, "/v1/kv/" + std::string(65, 'n') + "/k", "v");
    EXPECT_EQ(res.result_int(), 400u);
    res = client.Request(http::verb::put, "/v1/kv/ns/", "v");
    EXPECT_EQ(res.result_int(), 400u);
    res = client.Request(http::verb::delete_, "/healthz");
    EXPECT_EQ(res.result_int(), 405u);
    EXPECT_EQ(res[http::field::allow], "GET, HEAD");
    EXPECT_EQ(ErrorCode(res), "METHOD_NOT_ALLOWED");
    res = client.Request(http::verb::patch, "/v1/kv/ns/k", "v");
    EXPECT_EQ(res.result_int(), 405u);
    EXPECT_EQ(res[http::field::allow], "GET, HEAD, PUT, POST, DELETE");
    res = client.Get("/no/such/path");
    EXPECT_EQ(res.result_int(), 404u);
    EXPECT_EQ(ErrorCode(res), "NOT_FOUND");
    res = client.Get("/v1/kv/ns/a%2");
    EXPECT_EQ(res.result_int(), 400u);
    // Errors above did not close this keep-alive connection.
    EXPECT_EQ(client.Get("/healthz").result_int(), 200u);
  }
  {
    HttpTestClient client(port_);
    static constexpr char kGarbage[] = "\0\1\2\3garbage\xff\xfe\r\n\r\n";
    ASSERT_TRUE(client.SendRaw(std::string(kGarbage, sizeof(kGarbage) - 1)));
    EXPECT_EQ(client.Read().result_int(), 400u);
  }
  {
    // Truncated request line, then hang-up.
    HttpTestClient client(port_);
    ASSERT_TRUE(client.SendRaw("GET /heal"));
    client.Close();
  }
  ExpectHealthy();
  // The aborted upload was never applied: wait until the server has seen every hang-up (only
  // the probing connection is left), then look.
  HttpTestClient probe(port_);
  for (int i = 0; i < 200; ++i) {
    Response m = probe.Get("/metrics");
    if (m.body().find("edgeflow_http_connections 1\n") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(store_->Get("ns", "half"));
  EXPECT_FALSE(store_->Get("ns", "big"));
  EXPECT_FALSE(store_->Get("ns", "c"));
}

TEST_F(HttpServerTest, WatchStreamsChangesInOrderAndResumes) {
  HttpTestClient watcher(port_);
  ASSERT_EQ(watcher.OpenEventStream("/v1/watch/cam"), 200u);
  EXPECT_EQ(watcher.event_stream_header()[http::field::content_type], "text/event-stream");

  HttpTestClient writer(port_);
  Put(writer, "/v1/kv/cam/a", "1", {{"Content-Type", "text/plain"}});
  Put(writer, "/v1/kv/other/x", "not watched");
  Put(writer, "/v1/kv/cam/b", "22");
  Put(writer, "/v1/kv/cam/%FF", "bin");
  ASSERT_EQ(writer.Request(http::verb::delete_, "/v1/kv/cam/a").result_int(), 200u);

  std::vector<SseEvent> events = watcher.ReadEvents(4);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].event, "put");
  EXPECT_EQ(events[1].event, "put");
  EXPECT_EQ(events[2].event, "put");
  EXPECT_EQ(events[3].event, "delete");
  uint64_t previous = 0;
  for (const auto& e : events) {
    uint64_t id = std::stoull(e.id);
    EXPECT_GT(id, previous);
    previous = id;
    auto data = nlohmann::json::parse(e.data);
    EXPECT_EQ(data["seq"].get<uint64_t>(), id);
    EXPECT_EQ(data["ns"], "cam");
    EXPECT_EQ(data["op"], e.event);
  }
  auto first = nlohmann::json::parse(events[0].data);
  EXPECT_EQ(first["key"], "a");
  EXPECT_EQ(first["size"], 1);
  EXPECT_EQ(first["content_type"], "text/plain");
  EXPECT_EQ(first["version"].get<std::string>().size(), 33u);
  EXPECT_TRUE(first["expires_at_ms"].is_null());
  EXPECT_EQ(nlohmann::json::parse(events[2].data)["key_b64"], "/w==");

  // Resume after the second event, as a reconnecting EventSource does.
  HttpTestClient resumed(port_);
  ASSERT_EQ(resumed.OpenEventStream("/v1/watch/cam", {{"Last-Event-ID", events[1].id}}), 200u);
  std::vector<SseEvent> rest = resumed.ReadEvents(2);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].id, events[2].id);
  EXPECT_EQ(rest[1].id, events[3].id);

  // from_seq replays history; prefix filters; "*" watches every namespace.
  HttpTestClient replay(port_);
  ASSERT_EQ(replay.OpenEventStream("/v1/watch/cam?from_seq=1&prefix=b"), 200u);
  std::vector<SseEvent> only_b = replay.ReadEvents(1);
  ASSERT_EQ(only_b.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(only_b[0].data)["key"], "b");
  HttpTestClient all(port_);
  ASSERT_EQ(all.OpenEventStream("/v1/watch/*?from_seq=1"), 200u);
  std::vector<SseEvent> everything = all.ReadEvents(5);
  ASSERT_EQ(everything.size(), 5u);
  EXPECT_EQ(nlohmann::json::parse(everything[1].data)["ns"], "other");

  // Live events keep flowing to the first watcher, and idle streams get keep-alive comments.
  Put(writer, "/v1/kv/cam/c", "3");
  std::vector<SseEvent> live = watcher.ReadEvents(1);
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(live[0].data)["key"], "c");

  Response metrics = writer.Get("/metrics");
  EXPECT_NE(metrics.body().find("edgeflow_watch_streams 4"), std::string::npos);
}

TEST_F(HttpServerTest, IdleWatchGetsKeepAliveComments) {
  HttpTestClient watcher(port_);
  ASSERT_EQ(watcher.OpenEventStream("/v1/watch/ns"), 200u);
  EXPECT_TRUE(watcher.WaitComment());  // watch_keepalive_seconds is 1 in these tests
  HttpTestClient writer(port_);
  Put(writer, "/v1/kv/ns/after-keepalive", "v");
  std::vector<SseEvent> events = watcher.ReadEvents(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(events[0].data)["key"], "after-keepalive");
}

TEST_F(HttpServerTest, WatchErrors) {
  HttpTestClient client(port_);
  Response bad_ns = client.Get("/v1/watch/bad%20ns");
  EXPECT_EQ(bad_ns.result_int(), 400u);
  Response bad_seq = client.Get("/v1/watch/ns?from_seq=abc");
  EXPECT_EQ(bad_seq.result_int(), 400u);
  Response bad_id = client.Get("/v1/watch/ns", {{"Last-Event-ID", "x"}});
  EXPECT_EQ(bad_id.result_int(), 400u);
  Response post = client.Request(http::verb::post, "/v1/watch/ns", "x");
  EXPECT_EQ(post.result_int(), 405u);
  EXPECT_EQ(client.Get("/healthz").result_int(), 200u);
}

TEST_F(HttpServerTest, WatchFromTrimmedLogIsGone) {
  server_->Stop();
  server_.reset();
  store_.reset();
  OpenStore(/*changelog_max_entries=*/5);
  StartServer(Config());
  HttpTestClient client(port_);
  for (int i = 0; i < 20; ++i) Put(client, "/v1/kv/ns/k" + std::to_string(i), "v");
  ASSERT_TRUE(store_->TrimChangeLog().ok());
  Response gone = client.Get("/v1/watch/ns?from_seq=1");
  EXPECT_EQ(gone.result_int(), 410u);
  EXPECT_EQ(ErrorCode(gone), "OUT_OF_RANGE");
  // A recent position still works.
  HttpTestClient watcher(port_);
  ASSERT_EQ(watcher.OpenEventStream("/v1/watch/ns?from_seq=" + std::to_string(store_->LastSeq())),
            200u);
  EXPECT_EQ(watcher.ReadEvents(1).size(), 1u);
}

TEST_F(HttpServerTest, StopEndsOpenWatchStreams) {
  std::vector<std::unique_ptr<HttpTestClient>> watchers;
  for (int i = 0; i < 20; ++i) {
    watchers.push_back(std::make_unique<HttpTestClient>(port_));
    ASSERT_EQ(watchers.back()->OpenEventStream("/v1/watch/ns"), 200u);
  }
  HttpTestClient idle(port_);
  ASSERT_EQ(idle.Get("/healthz").result_int(), 200u);
  server_->Stop();
  for (auto& w : watchers) EXPECT_TRUE(w->WaitStreamEnd());
  EXPECT_TRUE(idle.WaitClosed());
  HttpTestClient refused(port_);
  EXPECT_FALSE(refused.connected() && refused.Get("/healthz").result_int() == 200u);
}

TEST_F(HttpServerTest, MaxConnections) {
  HttpServerConfig config = Config();
  config.max_connections = 2;
  StartServer(config);
  HttpTestClient a(port_);
  HttpTestClient b(port_);
  ASSERT_EQ(a.Get("/healthz").result_int(), 200u);
  ASSERT_EQ(b.Get("/healthz").result_int(), 200u);
  HttpTestClient c(port_);
  Response refused = c.Read();
  EXPECT_EQ(refused.result_int(), 503u);
  EXPECT_EQ(ErrorCode(refused), "UNAVAILABLE");
  a.Close();
  // Once a slot is free, new connections are served again.
  bool served = false;
  for (int i = 0; i < 200 && !served; ++i) {
    HttpTestClient d(port_);
    served = d.Get("/healthz").result_int() == 200u;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(served);
}

TEST_F(HttpServerTest, ConcurrentClients) {
  constexpr int kThreads = 4;
  constexpr int kRequests = 50;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      HttpTestClient client(port_);
      for (int i = 0; i < kRequests; ++i) {
        std::string target = "/v1/kv/conc/t" + std::to_string(t) + "-" + std::to_string(i);
        if (client.Request(http::verb::put, target, "v").result_int() == 200u &&
            client.Get(target).body() == "v") {
          ++ok;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kRequests);
}

TEST(HttpServerCreateTest, RejectsBadConfig) {
  metrics::Registry registry;
  HttpServerConfig config;
  EXPECT_FALSE(HttpServer::Create(config, nullptr, &registry, nullptr));
  test_support::TempDir dir;
  kv::StoreOptions options;
  options.dir = dir.path() / "kv";
  auto store = kv::Store::Open(options);
  ASSERT_TRUE(store);
  config.io_threads = 0;
  EXPECT_FALSE(HttpServer::Create(config, store->get(), &registry, nullptr));
  config.io_threads = 1;
  config.idle_timeout_seconds = 0;
  EXPECT_FALSE(HttpServer::Create(config, store->get(), &registry, nullptr));
}

TEST(HttpServerCreateTest, PortInUseIsAClearError) {
  test_support::TempDir dir;
  kv::StoreOptions options;
  options.dir = dir.path() / "kv";
  auto store = kv::Store::Open(options);
  ASSERT_TRUE(store);
  metrics::Registry registry1, registry2;
  HttpServerConfig config;
  config.listen = {"127.0.0.1", 0};
  auto first = HttpServer::Create(config, store->get(), &registry1, nullptr);
  ASSERT_TRUE(first);
  ASSERT_TRUE((*first)->Start().ok());
  config.listen.port = (*first)->bound_address().port;
  auto second = HttpServer::Create(config, store->get(), &registry2, nullptr);
  ASSERT_TRUE(second);
  Status s = (*second)->Start();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("in use"), std::string::npos) << s.message();
  (*first)->Stop();
}

}  // namespace
}  // namespace edgeflow::api
