#include "channels/mosquitto_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <string>

namespace edgeflow::channels {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

BrokerConfig RenderableConfig() {
  BrokerConfig config;
  config.dir = "/var/lib/edgeflow/broker";
  config.listen = {"127.0.0.1", 18830};
  config.ws_listen = HostPort{"127.0.0.1", 18831};
  return config;
}

std::string RenderOrDie(const BrokerConfig& config) {
  Result<std::string> conf = RenderMosquittoConf(config);
  EXPECT_TRUE(conf.has_value()) << conf.error().ToString();
  return conf.value_or("");
}

// The error message of a config the renderer must refuse.
std::string RenderError(const BrokerConfig& config) {
  Result<std::string> conf = RenderMosquittoConf(config);
  EXPECT_FALSE(conf.has_value()) << "rendered:\n" << conf.value_or("");
  if (conf.has_value()) return "";
  EXPECT_EQ(conf.error().code(), ErrorCode::kInvalidArgument) << conf.error().ToString();
  return conf.error().message();
}

TEST(MosquittoConfigTest, RendersListenersWithWebsocketsOnTheirOwnListener) {
  const std::string conf = RenderOrDie(RenderableConfig());
  EXPECT_THAT(conf, HasSubstr("\nlistener 18830 127.0.0.1\n"));
  // `protocol` applies to the listener line right above it.
  EXPECT_THAT(conf, HasSubstr("\nlistener 18831 127.0.0.1\nprotocol websockets\n"));
  EXPECT_THAT(conf, HasSubstr("per_listener_settings false\n"));
  EXPECT_THAT(conf, HasSubstr("allow_anonymous true\n"));
}

TEST(MosquittoConfigTest, RendersNoWebsocketsListenerWhenNoneIsConfigured) {
  BrokerConfig config = RenderableConfig();
  config.ws_listen.reset();
  const std::string conf = RenderOrDie(config);
  EXPECT_THAT(conf, HasSubstr("\nlistener 18830 127.0.0.1\n"));
  EXPECT_THAT(conf, Not(HasSubstr("websockets")));
  EXPECT_THAT(conf, Not(HasSubstr("18831")));
}

TEST(MosquittoConfigTest, RendersIpv6ListenerHostWithoutBrackets) {
  BrokerConfig config = RenderableConfig();
  config.listen = {"::1", 18830};
  config.ws_listen = HostPort{"::1", 18831};
  const std::string conf = RenderOrDie(config);
  EXPECT_THAT(conf, HasSubstr("\nlistener 18830 ::1\n"));
  EXPECT_THAT(conf, HasSubstr("\nlistener 18831 ::1\nprotocol websockets\n"));
}

TEST(MosquittoConfigTest, RendersPersistenceLocationWithOneTrailingSlash) {
  BrokerConfig config = RenderableConfig();
  std::string conf = RenderOrDie(config);
  EXPECT_THAT(conf, HasSubstr("persistence true\n"));
  EXPECT_THAT(conf, HasSubstr("\npersistence_location /var/lib/edgeflow/broker/\n"));
  EXPECT_THAT(conf, HasSubstr("autosave_interval 5\n"));
  EXPECT_THAT(conf, HasSubstr("persistent_client_expiration 7d\n"));

  config.dir = "/var/lib/edgeflow/broker/";
  conf = RenderOrDie(config);
  EXPECT_THAT(conf, HasSubstr("\npersistence_location /var/lib/edgeflow/broker/\n"));
}

TEST(MosquittoConfigTest, RendersLimitsAndLogging) {
  const std::string conf = RenderOrDie(RenderableConfig());
  EXPECT_THAT(conf, HasSubstr("max_packet_size 67108864\n"));
  EXPECT_THAT(conf, HasSubstr("max_queued_messages 100000\n"));
  EXPECT_THAT(conf, HasSubstr("max_inflight_messages 100\n"));
  EXPECT_THAT(conf, HasSubstr("log_dest file /var/lib/edgeflow/broker/mosquitto.log\n"));
  // One type per line: Mosquitto 2.0.11 keeps only the first type of a `log_type a b` line.
  EXPECT_THAT(conf, HasSubstr("log_type error\nlog_type warning\nlog_type notice\n"
                              "log_type information\n"));
  EXPECT_THAT(conf, HasSubstr("connection_messages true\n"));
  EXPECT_THAT(conf, HasSubstr("log_timestamp true\n"));
}

TEST(MosquittoConfigTest, RunsAsTheEffectiveUser) {
  const passwd* user = getpwuid(geteuid());
  ASSERT_NE(user, nullptr);
  EXPECT_THAT(RenderOrDie(RenderableConfig()),
              HasSubstr("\nuser " + std::string(user->pw_name) + "\n"));
}

TEST(MosquittoConfigTest, OmitsExpirationWhenSessionsNeverExpire) {
  BrokerConfig config = RenderableConfig();
  config.persistent_client_expiration_days = 0;
  EXPECT_THAT(RenderOrDie(config), Not(HasSubstr("persistent_client_expiration")));
}

TEST(MosquittoConfigTest, AuthRefusesAnonymousClients) {
  BrokerConfig config = RenderableConfig();
  config.password_file = "/etc/edgeflow/mqtt.passwd";
  config.acl_file = "/etc/edgeflow/mqtt.acl";
  const std::string conf = RenderOrDie(config);
  EXPECT_THAT(conf, HasSubstr("allow_anonymous false\n"));
  EXPECT_THAT(conf, Not(HasSubstr("allow_anonymous true")));
  EXPECT_THAT(conf, HasSubstr("\npassword_file /etc/edgeflow/mqtt.passwd\n"));
  EXPECT_THAT(conf, HasSubstr("\nacl_file /etc/edgeflow/mqtt.acl\n"));
}

TEST(MosquittoConfigTest, RejectsAclWithoutPasswordFile) {
  BrokerConfig config = RenderableConfig();
  config.acl_file = "/etc/edgeflow/mqtt.acl";
  EXPECT_THAT(RenderError(config), HasSubstr("password_file"));
}

TEST(MosquittoConfigTest, RejectsDirWithNewline) {
  BrokerConfig config = RenderableConfig();
  config.dir = "/var/lib/edgeflow/broker\nlistener 1883 0.0.0.0";
  const std::string message = RenderError(config);
  EXPECT_THAT(message, HasSubstr("broker dir"));
  EXPECT_THAT(message, HasSubstr("control character"));
}

TEST(MosquittoConfigTest, RejectsPathsMosquittoWouldMisread) {
  BrokerConfig config = RenderableConfig();
  config.dir = "/var/lib/edge\tflow";  // Mosquitto: "Malformed UTF-8 in configuration"
  EXPECT_THAT(RenderError(config), HasSubstr("control character"));
  config.dir = "/var/lib/\xff\xfe";
  EXPECT_THAT(RenderError(config), HasSubstr("UTF-8"));
  config = RenderableConfig();
  config.password_file = "/etc/mqtt.passwd ";  // Mosquitto trims the trailing space
  EXPECT_THAT(RenderError(config), HasSubstr("space"));
  config = RenderableConfig();
  config.dir = "relative/broker";
  EXPECT_THAT(RenderError(config), HasSubstr("absolute"));
  config.dir.clear();
  EXPECT_THAT(RenderError(config), HasSubstr("dir is empty"));
}

TEST(MosquittoConfigTest, AcceptsSpacesAndNonAsciiInsidePaths) {
  BrokerConfig config = RenderableConfig();
  config.dir = "/srv/edge flow/br\xc3\xb6ker#1";
  EXPECT_THAT(RenderOrDie(config),
              HasSubstr("\npersistence_location /srv/edge flow/br\xc3\xb6ker#1/\n"));
}

TEST(MosquittoConfigTest, RejectsPortZeroInTheRendererOnly) {
  BrokerConfig config = RenderableConfig();
  config.listen.port = 0;
  EXPECT_TRUE(ValidateBrokerConfig(config).ok());
  EXPECT_THAT(RenderError(config), HasSubstr("port 0"));

  config = RenderableConfig();
  config.ws_listen->port = 0;
  EXPECT_THAT(RenderError(config), HasSubstr("port 0"));
}

TEST(MosquittoConfigTest, RejectsBadListeners) {
  BrokerConfig config = RenderableConfig();
  config.ws_listen = HostPort{"localhost", 18831};
  EXPECT_THAT(RenderError(config), HasSubstr("must be an IP address"));
  config.ws_listen = HostPort{"127.0.0.1", 18830};
  EXPECT_THAT(RenderError(config), HasSubstr("different ports"));
  config.ws_listen.reset();
  config.listen.host = "127.0.0.1 extra";
  EXPECT_THAT(RenderError(config), HasSubstr("not a host name"));
  config.listen.host.clear();
  EXPECT_THAT(RenderError(config), HasSubstr("needs a host"));
}

TEST(MosquittoConfigTest, RejectsValuesMosquittoRefuses) {
  BrokerConfig config = RenderableConfig();
  config.max_packet_bytes = 19;  // "Invalid max_packet_size value (19)"
  EXPECT_THAT(RenderError(config), HasSubstr("max_packet_bytes"));
  config.max_packet_bytes = size_t{1} << 32;  // Mosquitto would read it as 0
  EXPECT_THAT(RenderError(config), HasSubstr("max_packet_bytes"));

  config = RenderableConfig();
  config.max_inflight_messages = 65536;  // "max_inflight_messages must be <= 65535"
  EXPECT_THAT(RenderError(config), HasSubstr("max_inflight_messages"));

  config = RenderableConfig();
  config.max_queued_messages = size_t{3} << 30;
  EXPECT_THAT(RenderError(config), HasSubstr("max_queued_messages"));

  config = RenderableConfig();
  config.autosave_seconds = -1;
  EXPECT_THAT(RenderError(config), HasSubstr("autosave_seconds"));

  config = RenderableConfig();
  config.persistent_client_expiration_days = -1;
  EXPECT_THAT(RenderError(config), HasSubstr("persistent_client_expiration_days"));
}

}  // namespace
}  // namespace edgeflow::channels
