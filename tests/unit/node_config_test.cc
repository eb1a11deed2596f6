#include "node/node_config.h"

#include <fstream>

#include <gtest/gtest.h>


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
  Status s = LoadConfigFile(std::filesystem::path(EF_SOURCE_DIR) / "config/edgeflowd.yaml",
                            &config);
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
    ::testing::Values(BadConfig{"nope: 1", "unknown config key 'nope'"},
                      BadConfig{"http: {listen: 'localhost'}", "http.listen"},
                      BadConfig{"http: {listen: '1.2.3.4:99999'}", "port out of range"},
                      BadConfig{"http: {lisen: ':1'}", "http.lisen"},
                      BadConfig{"kv: {sync_writes: maybe}", "kv.sync_writes"},
                      BadConfig{"kv: {max_key_bytes: 0}", "max_key_bytes"},
                      BadConfig{"log: {level: loud}", "log.level"},
                      BadConfig{"resp: {default_namespace: 'a b'}", "default_namespace"},
                      BadConfig{"http: [1, 2]", "must be a mapping"},
                      BadConfig{"- a\n- b", "top level"},
                      BadConfig{"http: {listen: [unclosed", "invalid YAML"},
                      BadConfig{"resp: {io_threads: 300}", "io_threads"},
                      BadConfig{"kv: {record_cache_bytes: lots}", "kv.record_cache_bytes"}));

TEST(NodeConfigTest, MissingFileIsAClearError) {
  NodeConfig config;
  Status s = LoadConfigFile("/nonexistent/edgeflowd.yaml", &config);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot read config file"), std::string::npos);
}

}  // namespace
}  // namespace edgeflow::node
