#include "node/node_config.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

namespace edgeflow::node {
namespace {

TEST(NodeConfigTest, EmptyYamlKeepsDefaults) {
  NodeConfig config;
  ASSERT_TRUE(ParseConfigYaml("", "test.yaml", &config).ok());
  EXPECT_EQ(config.http.listen.ToString(), "127.0.0.1:7070");
  EXPECT_EQ(config.resp.listen.ToString(), "127.0.0.1:7379");
  EXPECT_FALSE(config.kv.sync_writes);
  FinalizeConfig(&config);
  EXPECT_GE(config.http.io_threads, 1u);  // automatic
  EXPECT_GE(config.resp.io_threads, 1u);
  EXPECT_EQ(config.resp.server_version, EDGEFLOW_VERSION);
  // Automatic record cache: sized from the machine's memory, never below 64 MiB.
  EXPECT_NE(config.kv.record_cache_bytes, NodeConfig::kAutomaticSize);
  EXPECT_GE(config.kv.record_cache_bytes, size_t{64} << 20);
}

TEST(NodeConfigTest, RecordCacheSizeIsAutoAByteCountOrOff) {
  NodeConfig config;
  ASSERT_TRUE(ParseConfigYaml("kv: {record_cache_bytes: 1048576}", "t.yaml", &config).ok());
  FinalizeConfig(&config);
  EXPECT_EQ(config.kv.record_cache_bytes, size_t{1} << 20);

  ASSERT_TRUE(ParseConfigYaml("kv: {record_cache_bytes: 0}", "t.yaml", &config).ok());
  FinalizeConfig(&config);
  EXPECT_EQ(config.kv.record_cache_bytes, 0u);

  ASSERT_TRUE(ParseConfigYaml("kv: {record_cache_bytes: auto}", "t.yaml", &config).ok());
  EXPECT_EQ(config.kv.record_cache_bytes, NodeConfig::kAutomaticSize);
  FinalizeConfig(&config);
  EXPECT_GE(config.kv.record_cache_bytes, size_t{64} << 20);
}

TEST(NodeConfigTest, ShippedExampleConfigParses) {
  NodeConfig config;
  Status s =
      LoadConfigFile(std::filesystem::path(EF_SOURCE_DIR) / "config/edgeflowd.yaml", &config);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(config.resp.default_namespace, "default");
  EXPECT_EQ(config.kv.max_value_bytes, size_t{64} << 20);
}

TEST(NodeConfigTest, ReadsEverySection) {
  NodeConfig config;
  Status s = ParseConfigYaml(R"(
data_dir: /srv/edge
log: {level: debug, format: json}
http: {listen: "0.0.0.0:8080", io_threads: 4}
resp: {listen: "[::1]:6380", default_namespace: cams}
kv: {sync_writes: true, max_key_bytes: 200, max_value_bytes: 1000, tombstone_retention_seconds: 60}
)",
                             "test.yaml", &config);
  ASSERT_TRUE(s.ok()) << s.ToString();
  FinalizeConfig(&config);
  EXPECT_EQ(config.data_dir, "/srv/edge");
  EXPECT_EQ(config.kv.dir, "/srv/edge/kv");
  EXPECT_EQ(config.log_level, log::Level::kDebug);
  EXPECT_EQ(config.log_format, log::Format::kJson);
  EXPECT_EQ(config.http.listen.port, 8080);
  EXPECT_EQ(config.http.io_threads, 4u);
  EXPECT_EQ(config.resp.listen.host, "::1");
  EXPECT_EQ(config.resp.default_namespace, "cams");
  EXPECT_TRUE(config.kv.sync_writes);
  EXPECT_EQ(config.kv.tombstone_retention_ms, 60'000);
  // Limits reach the front-ends.
  EXPECT_EQ(config.http.max_key_bytes, 200u);
  EXPECT_EQ(config.resp.max_value_bytes, 1000u);
}

TEST(NodeConfigTest, ReadsEveryMqttAndChannelsKey) {
  NodeConfig config;
  Status s = ParseConfigYaml(R"(
data_dir: /srv/edge
mqtt:
  enabled: false
  listen: "0.0.0.0:1884"
  ws_listen: "127.0.0.1:9001"
  external_broker: "mqtt://broker.lan"
  username: node-1
  password: s3cret
  mosquitto_binary: /opt/mosquitto/sbin/mosquitto
  password_file: /etc/edgeflow/passwd
  acl_file: /etc/edgeflow/acl
  max_packet_bytes: 1048576
  max_queued_messages: 500
  max_inflight_messages: 10
  autosave_seconds: 30
  persistent_client_expiration_days: 3
channels:
  tenant: site-7
  namespace: chan.data
  inline_max_bytes: 2048
  item_ttl_seconds: 120
  publish_timeout_ms: 750
  notify:
    - {namespace: cams, prefix: "front/", channel: "changes/front"}
    - {namespace: config, channel: config-changes}
)",
                             "test.yaml", &config);
  ASSERT_TRUE(s.ok()) << s.ToString();
  const MqttConfig& mqtt = config.mqtt;
  EXPECT_FALSE(mqtt.enabled);
  EXPECT_EQ(mqtt.broker.listen.ToString(), "0.0.0.0:1884");
  ASSERT_TRUE(mqtt.broker.ws_listen.has_value());
  EXPECT_EQ(mqtt.broker.ws_listen->ToString(), "127.0.0.1:9001");
  ASSERT_TRUE(mqtt.external_broker.has_value());
  EXPECT_EQ(mqtt.external_broker->ToString(), "broker.lan:1883");
  EXPECT_EQ(mqtt.username, "node-1");
  EXPECT_EQ(mqtt.password, "s3cret");
  EXPECT_EQ(mqtt.broker.mosquitto_binary, "/opt/mosquitto/sbin/mosquitto");
  EXPECT_EQ(mqtt.broker.password_file, std::filesystem::path("/etc/edgeflow/passwd"));
  EXPECT_EQ(mqtt.broker.acl_file, std::filesystem::path("/etc/edgeflow/acl"));
  EXPECT_EQ(mqtt.broker.max_packet_bytes, 1048576u);
  EXPECT_EQ(mqtt.broker.max_queued_messages, 500u);
  EXPECT_EQ(mqtt.broker.max_inflight_messages, 10);
  EXPECT_EQ(mqtt.broker.autosave_seconds, 30);
  EXPECT_EQ(mqtt.broker.persistent_client_expiration_days, 3);

  const channels::ChannelsConfig& ch = config.channels;
  EXPECT_EQ(ch.tenant, "site-7");
  EXPECT_EQ(ch.ns, "chan.data");
  EXPECT_EQ(ch.inline_max_bytes, 2048u);
  EXPECT_EQ(ch.item_ttl_ms, 120'000);
  EXPECT_EQ(ch.publish_timeout, std::chrono::milliseconds(750));
  ASSERT_EQ(config.notify.size(), 2u);
  EXPECT_EQ(config.notify[0].ns, "cams");
  EXPECT_EQ(config.notify[0].prefix, "front/");
  EXPECT_EQ(config.notify[0].channel, "changes/front");
  EXPECT_EQ(config.notify[1].ns, "config");
  EXPECT_EQ(config.notify[1].prefix, "");
  EXPECT_EQ(config.notify[1].channel, "config-changes");

  // The broker's directory and packet limit are derived, not configured.
  FinalizeConfig(&config);
  EXPECT_EQ(config.mqtt.broker.dir, std::filesystem::path("/srv/edge/mosquitto"));
  EXPECT_EQ(config.channels.max_packet_bytes, 1048576u);
}

TEST(NodeConfigTest, MqttAndChannelDefaults) {
  NodeConfig config;
  ASSERT_TRUE(ParseConfigYaml("data_dir: /d", "t.yaml", &config).ok());
  FinalizeConfig(&config);
  EXPECT_TRUE(config.mqtt.enabled);
  EXPECT_FALSE(config.mqtt.external_broker.has_value());
  EXPECT_TRUE(config.mqtt.broker.ws_listen.has_value());
  EXPECT_EQ(config.mqtt.broker.dir, std::filesystem::path("/d/mosquitto"));
  EXPECT_EQ(config.channels.max_packet_bytes, config.mqtt.broker.max_packet_bytes);
  EXPECT_EQ(config.channels.tenant, "default");
  EXPECT_TRUE(config.notify.empty());
}

TEST(NodeConfigTest, WebsocketsListenerCanBeTurnedOff) {
  NodeConfig config;
  ASSERT_TRUE(config.mqtt.broker.ws_listen.has_value());
  Status s = ParseConfigYaml("mqtt: {ws_listen: off}", "t.yaml", &config);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(config.mqtt.broker.ws_listen.has_value());
  // And back on by a later source (flags or another file).
  s = ParseConfigYaml("mqtt: {ws_listen: '127.0.0.1:7999'}", "t.yaml", &config);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(config.mqtt.broker.ws_listen.has_value());
  EXPECT_EQ(config.mqtt.broker.ws_listen->port, 7999);
}

TEST(NodeConfigTest, ParseBrokerUrl) {
  struct Good {
    const char* text;
    const char* host;
    uint16_t port;
  };
  for (const Good& g :
       {Good{"mqtt://broker.lan", "broker.lan", 1883},
        Good{"mqtt://broker.lan/", "broker.lan", 1883},
        Good{"mqtt://broker.lan:1884", "broker.lan", 1884}, Good{"host:1884", "host", 1884},
        Good{"10.0.0.5:1", "10.0.0.5", 1}, Good{"mqtt://[::1]:1885", "::1", 1885},
        Good{"mqtt://[::1]", "::1", 1883}, Good{"tcp://h:2000", "h", 2000}}) {
    auto parsed = ParseBrokerUrl(g.text);
    ASSERT_TRUE(parsed) << g.text << ": " << parsed.error().ToString();
    EXPECT_EQ(parsed->host, g.host) << g.text;
    EXPECT_EQ(parsed->port, g.port) << g.text;
  }
  for (const char* bad :
       {"mqtts://broker.lan", "mqtts://broker.lan:8883", "ssl://b:8883", "ws://b:9001",
        "wss://b:443", "mqtt://b:0", "b:0", "broker.lan", "mqtt://b:65536", "mqtt://b:port",
        "garbage", "mqtt://::1", "http://b:80", "mqtt://", "mqtt:///"}) {
    auto parsed = ParseBrokerUrl(bad);
    ASSERT_FALSE(parsed) << bad << " parsed as " << parsed->ToString();
    EXPECT_EQ(parsed.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseBrokerUrl("mqtts://b").error().message().find("only plain MQTT"),
            std::string::npos);
  EXPECT_NE(ParseBrokerUrl("mqtt://b:0").error().message().find("port"), std::string::npos);
}

// Only the ws:// and wss:// schemes are refused, not host names that begin with "ws".
TEST(NodeConfigTest, ExternalBrokerHostsMayBeginWithWs) {
  for (const char* text : {"mqtt://wsbroker.lan:1883", "ws01:1883", "mqtt://ws1"}) {
    auto parsed = ParseBrokerUrl(text);
    EXPECT_TRUE(parsed) << text << ": " << parsed.error().ToString();
  }
}

TEST(NodeConfigTest, ExternalBrokerIsParsedFromTheConfigFile) {
  NodeConfig config;
  Status s = ParseConfigYaml("mqtt: {external_broker: 'mqtt://[::1]:1885'}", "t.yaml", &config);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(config.mqtt.external_broker.has_value());
  EXPECT_EQ(config.mqtt.external_broker->ToString(), "[::1]:1885");
}

TEST(NodeConfigTest, InlineMaxBytesMustLeaveRoomForTheEnvelope) {
  // The largest inline size that fits: the packet limit less the envelope allowance.
  const std::string fits = "mqtt: {max_packet_bytes: 100000}\nchannels: {inline_max_bytes: " +
                           std::to_string(100000 - channels::kMessageOverheadBytes) + "}";
  NodeConfig config;
  Status s = ParseConfigYaml(fits, "t.yaml", &config);
  EXPECT_TRUE(s.ok()) << s.ToString();

  const std::string too_big = "mqtt: {max_packet_bytes: 100000}\nchannels: {inline_max_bytes: " +
                              std::to_string(100000 - channels::kMessageOverheadBytes + 1) + "}";
  NodeConfig config2;
  s = ParseConfigYaml(too_big, "t.yaml", &config2);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("channels.inline_max_bytes"), std::string::npos) << s.message();

  // The default inline size (64 KiB) does not fit in a small packet limit either.
  NodeConfig config3;
  s = ParseConfigYaml("mqtt: {max_packet_bytes: 65536}", "t.yaml", &config3);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("inline_max_bytes"), std::string::npos) << s.message();
  // A packet limit at or below the allowance leaves no room for any data.
  NodeConfig config4;
  s = ParseConfigYaml("mqtt: {max_packet_bytes: 4096}\nchannels: {inline_max_bytes: 0}", "t.yaml",
                      &config4);
  EXPECT_FALSE(s.ok());
}

TEST(NodeConfigTest, PublishTimeoutAndItemTtlBounds) {
  for (const char* good :
       {"channels: {publish_timeout_ms: 1}", "channels: {publish_timeout_ms: 600000}",
        "channels: {item_ttl_seconds: 0}"}) {
    NodeConfig config;
    Status s = ParseConfigYaml(good, "t.yaml", &config);
    EXPECT_TRUE(s.ok()) << good << ": " << s.ToString();
  }
  NodeConfig config;
  ASSERT_TRUE(ParseConfigYaml("channels: {item_ttl_seconds: 0}", "t.yaml", &config).ok());
  EXPECT_EQ(config.channels.item_ttl_ms, 0);  // 0 = published items never expire
}

struct BadConfig {
  const char* yaml;
  const char* expected_in_message;
};

class BadConfigTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigTest, IsRejectedWithAMessageNamingTheProblem) {
  NodeConfig config;
  Status s = ParseConfigYaml(GetParam().yaml, "bad.yaml", &config);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find(GetParam().expected_in_message), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("bad.yaml"), std::string::npos) << s.message();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadConfigTest,
    ::testing::Values(
        BadConfig{"nope: 1", "unknown config key 'nope'"},
        BadConfig{"http: {listen: 'localhost'}", "http.listen"},
        BadConfig{"http: {listen: '1.2.3.4:99999'}", "port out of range"},
        BadConfig{"http: {lisen: ':1'}", "http.lisen"},
        BadConfig{"kv: {sync_writes: maybe}", "kv.sync_writes"},
        BadConfig{"kv: {max_key_bytes: 0}", "max_key_bytes"},
        BadConfig{"log: {level: loud}", "log.level"},
        BadConfig{"resp: {default_namespace: 'a b'}", "default_namespace"},
        BadConfig{"http: [1, 2]", "must be a mapping"}, BadConfig{"- a\n- b", "top level"},
        BadConfig{"http: {listen: [unclosed", "invalid YAML"},
        BadConfig{"resp: {io_threads: 300}", "io_threads"},
        BadConfig{"kv: {record_cache_bytes: lots}", "kv.record_cache_bytes"},
        // mqtt: and channels:
        BadConfig{"mqtt: {enabled: perhaps}", "mqtt.enabled"},
        BadConfig{"mqtt: {listen: 'nohost'}", "mqtt.listen"},
        BadConfig{"mqtt: {ws_listen: 'localhost:9001'}", "must be an IP address"},
        BadConfig{"mqtt: {external_broker: 'mqtts://b:8883'}", "mqtt.external_broker"},
        BadConfig{"mqtt: {external_broker: 'b:0'}", "mqtt.external_broker"},
        BadConfig{"mqtt: {external_broker: 'nonsense'}", "mqtt.external_broker"},
        BadConfig{"mqtt: {password_file: relative/passwd}", "absolute path"},
        BadConfig{"mqtt: {acl_file: /etc/acl}", "acl_file"},
        BadConfig{"mqtt: {max_packet_bytes: 10}", "max_packet_bytes"},
        BadConfig{"mqtt: {max_inflight_messages: 70000}", "max_inflight_messages"},
        BadConfig{"mqtt: {autosave_seconds: -1}", "autosave_seconds"},
        BadConfig{"mqtt: {brokr: x}", "mqtt.brokr"},
        BadConfig{"mqtt: [1]", "mqtt must be a mapping"},
        BadConfig{"channels: {notify: [{namespace: a, channel: b, xyz: 1}]}",
                  "channels.notify[0].xyz"},
        BadConfig{"channels: {notify: [{namespace: a, channel: b}, "
                  "{namespace: c, chanel: d}]}",
                  "channels.notify[1].chanel"},
        BadConfig{"channels: {notify: {namespace: a, channel: b}}",
                  "channels.notify must be a list"},
        BadConfig{"channels: {notify: [[a, b]]}", "channels.notify[0]"},
        BadConfig{"channels: {notify: [{namespace: _edgeflow, channel: b}]}", "notify rule 1"},
        BadConfig{"channels: {notify: [{namespace: a, channel: 'x/#'}]}", "notify rule 1"},
        BadConfig{"channels: {tenant: 'a/b'}", "channels.tenant"},
        BadConfig{"channels: {tenant: ''}", "channels.tenant"},
        BadConfig{"channels: {namespace: 'a b'}", "channels.namespace"},
        BadConfig{"channels: {inline_max_bytes: 67104769}", "channels.inline_max_bytes"},
        BadConfig{"channels: {publish_timeout_ms: 0}", "publish_timeout_ms"},
        BadConfig{"channels: {publish_timeout_ms: 600001}", "publish_timeout_ms"},
        BadConfig{"channels: {publish_timeout_ms: -5}", "publish_timeout_ms"},
        BadConfig{"channels: {item_ttl_seconds: -1}", "channels.item_ttl_seconds"},
        BadConfig{"channels: {inline: 5}", "channels.inline"}));

TEST(NodeConfigTest, MissingFileIsAClearError) {
  NodeConfig config;
  Status s = LoadConfigFile("/nonexistent/edgeflowd.yaml", &config);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot read config file"), std::string::npos);
}

}  // namespace
}  // namespace edgeflow::node
