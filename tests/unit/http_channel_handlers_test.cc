// Tests of the channel resources of the HTTP front-end: a real HttpServer on a free loopback port
// with a real ChannelPublisher (over a real store and a real Mosquitto, as in
// channel_publisher_test) and a ChannelMonitor on a ManualClock, driven by HttpTestClient.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/http_server.h"
#include "channels/broker_supervisor.h"
#include "channels/channel_monitor.h"
#include "channels/channel_name.h"
#include "channels/channel_publisher.h"
#include "channels/envelope.h"
#include "common/clock.h"
#include "support/mqtt_inbox.h"
#include "support/temp_dir.h"
#include "tests/unit/http_test_client.h"

namespace edgeflow::api {
namespace {

using Inbox = test_support::MqttInbox;

namespace http = boost::beast::http;
using namespace std::chrono_literals;
using channels::MqttMessage;
using test::HttpTestClient;
using Response = test::HttpResponseMessage;

constexpr int64_t kMonitorStart = 1'700'000'000'500;
constexpr const char* kTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

nlohmann::json Json(const Response& res) {
  return nlohmann::json::parse(res.body(), nullptr, /*allow_exceptions=*/false);
}

std::string ErrorCode(const Response& res) {
  auto j = Json(res);
  if (!j.is_object() || !j.contains("error")) return "<no JSON error: " + res.body() + ">";
  return j["error"]["code"].get<std::string>();
}

HttpServerConfig ServerConfig() {
  HttpServerConfig config;
  config.listen = {"127.0.0.1", 0};
  config.io_threads = 1;
  config.write_threads = 1;
  config.idle_timeout_seconds = 30;
  return config;
}

kv::StoreOptions StoreOptions(const std::filesystem::path& dir) {
  kv::StoreOptions options;
  options.dir = dir;
  options.block_cache_bytes = 8 << 20;
  options.write_buffer_bytes = 4 << 20;
  options.record_cache_bytes = 1 << 20;
  return options;
}

class HttpChannelHandlersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    channels::BrokerConfig broker;
    broker.dir = dir_.Sub("mqtt");
    broker.listen = HostPort{"127.0.0.1", 0};
    broker.ws_listen.reset();
    auto supervisor = channels::BrokerSupervisor::Create(broker);
    ASSERT_TRUE(supervisor) << supervisor.error().ToString();
    broker_ = std::move(*supervisor);
    Status started = broker_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();

    auto store = kv::Store::Open(StoreOptions(dir_.Sub("kv")));
    ASSERT_TRUE(store) << store.error().ToString();
    store_ = std::move(*store);

    publisher_client_ = Client("edgeflowd-test", nullptr);
    ASSERT_TRUE(publisher_client_->WaitConnected(5s));
    channels::ChannelsConfig config;
    config.inline_max_bytes = 1000;
    config.publish_timeout = 5s;
    publisher_ = std::make_unique<channels::ChannelPublisher>(
        config, store_.get(), publisher_client_.get(), SystemClock::Default());
    monitor_ = std::make_unique<channels::ChannelMonitor>("default", &monitor_clock_);

    auto server = HttpServer::Create(ServerConfig(), store_.get(), &registry_, nullptr,
                                     HttpServices{publisher_.get(), monitor_.get()});
    ASSERT_TRUE(server) << server.error().ToString();
    server_ = std::move(*server);
    started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    port_ = server_->bound_address().port;
  }

  void TearDown() override {
    if (server_) server_->Stop();
  }

  std::unique_ptr<channels::MqttClient> Client(const std::string& id, Inbox* inbox) {
    channels::MqttClientOptions options;
    options.broker = broker_->mqtt_address();
    options.client_id = id;
    auto client = channels::MqttClient::Create(options);
    EXPECT_TRUE(client) << client.error().ToString();
    if (inbox != nullptr) {
      (*client)->SetMessageHandler([inbox](const MqttMessage& m) { inbox->Add(m); });
    }
    EXPECT_TRUE((*client)->Start().ok());
    return std::move(*client);
  }

  std::unique_ptr<channels::MqttClient> Subscriber(const std::string& channel, Inbox* inbox) {
    auto client = Client("sub", inbox);
    EXPECT_TRUE(client->WaitConnected(5s));
    EXPECT_TRUE(client->Subscribe(channels::ChannelTopic("default", channel), 1).ok());
    return client;
  }

  Response Post(HttpTestClient& client, const std::string& target, std::string body,
                const std::map<std::string, std::string>& headers = {}) {
    return client.Request(http::verb::post, target, std::move(body), headers);
  }

  test_support::TempDir dir_;
  std::unique_ptr<channels::BrokerSupervisor> broker_;
  std::unique_ptr<kv::Store> store_;
  std::unique_ptr<channels::MqttClient> publisher_client_;
  std::unique_ptr<channels::ChannelPublisher> publisher_;
  ManualClock monitor_clock_{kMonitorStart};
  std::unique_ptr<channels::ChannelMonitor> monitor_;
  metrics::Registry registry_;
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
};

TEST_F(HttpChannelHandlersTest, PublishStoresTheDataAnnouncesItAndDescribesBoth) {
  Inbox inbox;
  auto subscriber = Subscriber("cams/front", &inbox);
  HttpTestClient client(port_);
  ASSERT_TRUE(client.connected());
  Response res =
      Post(client, "/v1/channels/cams/front/publish", "hello", {{"Content-Type", "text/plain"}});
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  EXPECT_EQ(res[http::field::content_type], "application/json");
  const nlohmann::json body = Json(res);
  ASSERT_TRUE(body.is_object()) << res.body();
  EXPECT_EQ(body["channel"], "cams/front");
  EXPECT_EQ(body["topic"], "ef/default/ch/cams/front");
  const std::string item_id = body["item_id"];
  EXPECT_EQ(item_id.size(), 21u);  // a new id: time + random
  EXPECT_EQ(body["ns"], "channels");
  EXPECT_EQ(body["key"], "cams/front/" + item_id);
  EXPECT_EQ(body["ref"], "/v1/kv/channels/cams/front/" + item_id);
  EXPECT_EQ(body["size"], 5);
  EXPECT_EQ(body["inline"], true);
  const std::string trace_id = body["trace_id"];
  EXPECT_EQ(trace_id.size(), 32u);
  EXPECT_EQ(trace_id.find_first_not_of("0123456789abcdef"), std::string::npos) << trace_id;

  // The data is in EKV, at the version and sequence number the response names.
  auto stored = store_->Get("channels", "cams/front/" + item_id);
  ASSERT_TRUE(stored) << stored.error().ToString();
  EXPECT_EQ(stored->value, "hello");
  EXPECT_EQ(stored->meta.content_type, "text/plain");
  EXPECT_EQ(body["version"], stored->meta.version.ToString());
  EXPECT_EQ(body["seq"], stored->meta.seq);
  EXPECT_GT(stored->meta.expires_at_ms, 0);  // the node's default item TTL

  // And the subscriber got the announcement the response describes.
  auto got = inbox.WaitFor(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "hello");
  EXPECT_EQ(got[0].content_type, "text/plain");
  auto envelope = channels::ReadEnvelope(got[0]);
  ASSERT_TRUE(envelope) << envelope.error().ToString();
  EXPECT_EQ(envelope->item_id, item_id);
  EXPECT_EQ(envelope->trace_id, trace_id);
  ASSERT_TRUE(envelope->ref);
  EXPECT_EQ(envelope->ref->version, body["version"].get<std::string>());
}

TEST_F(HttpChannelHandlersTest, KeyNamespaceTtlAndModeComeFromTheQuery) {
  Inbox inbox;
  auto subscriber = Subscriber("c", &inbox);
  HttpTestClient client(port_);
  ASSERT_TRUE(client.connected());

  const int64_t before = SystemClock::Default()->NowMillis();
  Response res = Post(client, "/v1/channels/c/publish?key=dir%2Fk1&ns=other&ttl=90s", "one");
  const int64_t after = SystemClock::Default()->NowMillis();
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  nlohmann::json body = Json(res);
  EXPECT_EQ(body["key"], "dir/k1");
  EXPECT_EQ(body["item_id"], "dir/k1");  // a given key is the item id too
  EXPECT_EQ(body["ns"], "other");
  EXPECT_EQ(body["ref"], "/v1/kv/other/dir/k1");
  auto meta = store_->Head("other", "dir/k1");
  ASSERT_TRUE(meta) << meta.error().ToString();
  EXPECT_GE(meta->expires_at_ms, before + 90'000);
  EXPECT_LE(meta->expires_at_ms, after + 90'000);

  res = Post(client, "/v1/channels/c/publish?key=forever&ttl=none", "two");
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  meta = store_->Head("channels", "forever");
  ASSERT_TRUE(meta) << meta.error().ToString();
  EXPECT_EQ(meta->expires_at_ms, 0);

  // Small enough to travel inline, but sent by reference as asked.
  res = Post(client, "/v1/channels/c/publish?key=claim&mode=ref", "three");
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  EXPECT_EQ(Json(res)["inline"], false);
  res = Post(client, "/v1/channels/c/publish?key=claim2&mode=reference", "four");
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  EXPECT_EQ(Json(res)["inline"], false);
  // Above the inline threshold (1000 bytes here) auto mode sends a reference, inline mode does not.
  res = Post(client, "/v1/channels/c/publish?key=big&mode=inline", std::string(2000, 'b'));
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  EXPECT_EQ(Json(res)["inline"], true);

  auto got = inbox.WaitFor(5);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0].payload, "one");
  EXPECT_EQ(got[1].payload, "two");
  EXPECT_EQ(got[1].message_expiry_seconds, 0u);  // no TTL: the message does not expire either
  EXPECT_TRUE(got[2].payload.empty());
  auto claim = channels::ReadEnvelope(got[2]);
  ASSERT_TRUE(claim);
  EXPECT_FALSE(claim->inline_data);
  EXPECT_EQ(claim->size, 5u);
  EXPECT_TRUE(got[3].payload.empty());
  EXPECT_EQ(got[4].payload.size(), 2000u);
}

TEST_F(HttpChannelHandlersTest, TheTraceparentTraceIdTravelsWithTheMessage) {
  Inbox inbox;
  auto subscriber = Subscriber("traced", &inbox);
  HttpTestClient client(port_);
  ASSERT_TRUE(client.connected());
  Response res = Post(client, "/v1/channels/traced/publish", "x", {{"traceparent", kTraceparent}});
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  EXPECT_EQ(Json(res)["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");

  // A malformed header starts a new trace instead of failing the request.
  res = Post(client, "/v1/channels/traced/publish", "y", {{"traceparent", "00-not-a-trace"}});
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  const std::string fresh = Json(res)["trace_id"];
  EXPECT_EQ(fresh.size(), 32u);
  EXPECT_NE(fresh, "4bf92f3577b34da6a3ce929d0e0e4736");

  auto got = inbox.WaitFor(2);
  ASSERT_EQ(got.size(), 2u);
  auto first = channels::ReadEnvelope(got[0]);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  auto second = channels::ReadEnvelope(got[1]);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->trace_id, fresh);
}

TEST_F(HttpChannelHandlersTest, BadPublishRequestsAre400AndStoreNothing) {
  HttpTestClient client(port_);
  ASSERT_TRUE(client.connected());
  const uint64_t seq_before = store_->LastSeq();
  for (const char* target : {
           "/v1/channels/a+b/publish",   // '+' is an MQTT wildcard
           "/v1/channels/a%23/publish",  // and so is '#'
           "/v1/channels/a%20b/publish",
           "/v1/channels/a//b/publish",    // empty segment
           "/v1/channels/a/../b/publish",  // dot segment
           "/v1/channels/c/publish?mode=sideways",
           "/v1/channels/c/publish?ttl=abc",
           "/v1/channels/c/publish?ttl=0",
           "/v1/channels/c/publish?ttl=-5",
           "/v1/channels/c/publish?ttl=",
           "/v1/channels/c/publish?ns=a%20b",
           "/v1/channels/c/publish?ns=",
           "/v1/channels/c/publish?key=",
           "/v1/channels/c/publish?key=%zz",
       }) {
    Response res = Post(client, target, "data");
    EXPECT_EQ(res.result_int(), 400u) << target << " " << res.body();
    EXPECT_EQ(ErrorCode(res), "INVALID_ARGUMENT") << target;
  }
  EXPECT_EQ(store_->LastSeq(), seq_before);  // rejected before anything was stored
  // The connection stays usable after the errors.
  EXPECT_EQ(Post(client, "/v1/channels/c/publish", "ok").result_int(), 200u);
}

TEST_F(HttpChannelHandlersTest, ListAndGetReportWhatTheMonitorSaw) {
  monitor_->Record(channels::ChannelTopic("default", "cams/front"), 100);
  monitor_->Record(channels::ChannelTopic("default", "cams/front"), 100);
  monitor_->Record(channels::ChannelTopic("default", "cams/front"), 100);
  monitor_->Record(channels::ChannelTopic("default", "b"), 1);
  monitor_->Record(channels::ChannelTopic("default", "a//b"), 1);  // no channel name: untracked
  monitor_clock_.Advance(1s);  // the recorded second is complete: it counts in the rate

  HttpTestClient client(port_);
  ASSERT_TRUE(client.connected());
  Response res = client.Get("/v1/channels");
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  nlohmann::json body = Json(res);
  EXPECT_EQ(body["tenant"], "default");
  EXPECT_EQ(body["topic_prefix"], "ef/default/ch/");
  EXPECT_EQ(body["rate_window_seconds"], 10);
  EXPECT_EQ(body["untracked_messages"], 1);
  ASSERT_TRUE(body["channels"].is_array());
  ASSERT_EQ(body["channels"].size(), 2u);
  EXPECT_EQ(body["channels"][0]["name"], "b");
  const nlohmann::json& front = body["channels"][1];
  EXPECT_EQ(front["name"], "cams/front");
  EXPECT_EQ(front["topic"], "ef/default/ch/cams/front");
  EXPECT_EQ(front["messages"], 3);
  EXPECT_EQ(front["bytes"], 300);
  EXPECT_DOUBLE_EQ(front["messages_per_second"].get<double>(), 0.3);
  EXPECT_DOUBLE_EQ(front["bytes_per_second"].get<double>(), 30.0);
  EXPECT_EQ(front["last_message_ms"], kMonitorStart);

  EXPECT_EQ(client.Get("/v1/channels/").result_int(), 200u);
  Response head = client.Request(http::verb::head, "/v1/channels");
  EXPECT_EQ(head.result_int(), 200u);
  EXPECT_TRUE(head.body().empty());

  res = client.Get("/v1/channels/cams/front");
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  EXPECT_EQ(Json(res), front);
  res = client.Get("/v1/channels/cams%2Ffront");
  EXPECT_EQ(res.result_int(), 200u) << res.body();

  res = client.Get("/v1/channels/never-used");
  EXPECT_EQ(res.result_int(), 404u) << res.body();
  EXPECT_EQ(ErrorCode(res), "NOT_FOUND");
  res = client.Get("/v1/channels/a+b");
  EXPECT_EQ(res.result_int(), 400u) << res.body();
  EXPECT_EQ(ErrorCode(res), "INVALID_ARGUMENT");
}

TEST_F(HttpChannelHandlersTest, WrongMethodsAre405WithAllow) {
  HttpTestClient client(port_);
  ASSERT_TRUE(client.connected());
  Response res = client.Request(http::verb::put, "/v1/channels/c/publish", "data");
  EXPECT_EQ(res.result_int(), 405u);
  EXPECT_EQ(res[http::field::allow], "POST");
  EXPECT_EQ(ErrorCode(res), "METHOD_NOT_ALLOWED");
  res = client.Get("/v1/channels/c/publish");
  EXPECT_EQ(res.result_int(), 405u);
  EXPECT_EQ(res[http::field::allow], "POST");
  res = client.Request(http::verb::post, "/v1/channels", "data");
  EXPECT_EQ(res.result_int(), 405u);
  EXPECT_EQ(res[http::field::allow], "GET, HEAD");
  res = client.Request(http::verb::delete_, "/v1/channels/c");
  EXPECT_EQ(res.result_int(), 405u);
  EXPECT_EQ(res[http::field::allow], "GET, HEAD");
  EXPECT_EQ(store_->LastSeq(), 0u);  // the PUT and POST stored nothing
}

// A node with channels off (mqtt.enabled: false) has no publisher or monitor: the routes exist
// but answer 503, so clients can tell "off here" from "no such resource".
TEST(HttpChannelsOffTest, EveryChannelRouteAnswers503) {
  test_support::TempDir dir;
  auto store = kv::Store::Open(StoreOptions(dir.Sub("kv")));
  ASSERT_TRUE(store) << store.error().ToString();
  metrics::Registry registry;
  auto server = HttpServer::Create(ServerConfig(), store->get(), &registry, nullptr);
  ASSERT_TRUE(server) << server.error().ToString();
  ASSERT_TRUE((*server)->Start().ok());
  {
    HttpTestClient client((*server)->bound_address().port);
    ASSERT_TRUE(client.connected());
    for (auto [method, target] :
         {std::pair{http::verb::get, "/v1/channels"}, std::pair{http::verb::get, "/v1/channels/c"},
          std::pair{http::verb::post, "/v1/channels/c/publish"}}) {
      Response res = client.Request(method, target, method == http::verb::post ? "data" : "");
      EXPECT_EQ(res.result_int(), 503u) << target << " " << res.body();
      EXPECT_EQ(ErrorCode(res), "UNAVAILABLE") << target;
      EXPECT_NE(res.body().find("mqtt.enabled"), std::string::npos) << res.body();
    }
    EXPECT_EQ((*store)->LastSeq(), 0u);
    // The rest of the API works.
    EXPECT_EQ(client.Get("/healthz").result_int(), 200u);
  }
  (*server)->Stop();
}

}  // namespace
}  // namespace edgeflow::api
