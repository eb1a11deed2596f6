// Computation channels of a real edgeflowd: put-then-publish over HTTP, delivered through the
// node's managed Mosquitto to MQTT 5 subscribers (tests/support/mqtt_subscriber.h, which decodes
// the wire format independently of the product, and the real mosquitto_sub), data by reference,
// a broker killed between publishes, bad input, key-change notifications, channel statistics, and
// the broker's lifetime tied to the daemon's.
//
// Expected topics and references are spelled out here ("ef/default/ch/<channel>",
// "/v1/kv/<ns>/<key>") rather than computed with the product's helpers, so that a change of the
// wire contract fails these tests.
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/host_port.h"
#include "support/child_process.h"
#include "support/command_runner.h"
#include "support/daemon_test.h"
#include "support/mqtt_subscriber.h"

namespace edgeflow::test_support {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyClock = std::chrono::steady_clock;
using namespace std::string_literals;

// Bound for things that normally take milliseconds (a delivery, a stats update): generous, so
// that a loaded 2-core machine does not make the tests flaky, and only spent when they fail.
constexpr milliseconds kWait = seconds(10);

const std::regex kVersionPattern("[0-9a-f]{16}-[0-9a-f]{16}");

std::string Topic(std::string_view channel) { return "ef/default/ch/" + std::string(channel); }

std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>(rng());
  return out;
}

std::string ErrorCode(const HttpResponse& response) { return response.ErrorField("code"); }
std::string ErrorMessage(const HttpResponse& response) { return response.ErrorField("message"); }

// 'R', 'S', 'Z', ... from /proc/<pid>/stat, or 0 if there is no such process.
char ProcessState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return 0;
  // "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ')'.
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() ? stat[paren + 2] : 0;
}

std::string ProcessCommandLine(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  std::string cmdline = text.str();
  std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
  return cmdline;
}

class ChannelsTest : public DaemonTest {
 protected:
  // Starts edgeflowd with `yaml` as its config file (none if empty) plus `extra_args`. Flags keep
  // every listener on a loopback port 0 whatever the file says.
  std::unique_ptr<DaemonProcess> StartWithConfig(const std::string& yaml,
                                                 const std::vector<std::string>& extra_args = {}) {
    std::vector<std::string> args;
    if (!yaml.empty()) args = {"--config", WriteFile("edgeflowd.yaml", yaml).string()};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    return StartDaemon(args);
  }

  // A subscriber to the node's broker with the given filters (QoS 1 unless `options` says
  // otherwise). Records a failure and returns nullptr if it cannot subscribe.
  std::unique_ptr<MqttSubscriber> Subscribe(const DaemonProcess& daemon,
                                            std::vector<std::string> filters,
                                            MqttSubscriberOptions options = {}) {
    options.broker = daemon.listen().mqtt;
    options.filters = std::move(filters);
    auto subscriber = MqttSubscriber::Start(options);
    if (!subscriber.has_value()) {
      ADD_FAILURE() << subscriber.error().ToString();
      return nullptr;
    }
    return std::move(*subscriber);
  }

  static Result<HttpResponse> Publish(HttpClient& http, const std::string& channel,
                                      std::string_view data, const std::string& query = "",
                                      const HttpHeaders& headers = {}) {
    std::string target = "/v1/channels/" + channel + "/publish";
    if (!query.empty()) target += "?" + query;
    return http.Request("POST", target, data, headers);
  }

  // The "channels" object of GET /v1/node (null if the request failed).
  static nlohmann::json NodeChannels(HttpClient& http) {
    auto node = http.Get("/v1/node");
    if (!node.has_value() || node->status != 200) return nullptr;
    nlohmann::json json = node->Json();
    if (!json.is_object() || !json.contains("channels")) return nullptr;
    return json["channels"];
  }
};

// 1. Put-then-publish, inline: the QoS 1 subscriber gets the data as the payload and the full
// envelope, and the data is readable at the reference the envelope names.
TEST_F(ChannelsTest, InlinePublishReachesQos1SubscriberWithEnvelope) {
  auto daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  const std::string channel = "cams/front";
  auto subscriber = Subscribe(*daemon, {Topic(channel)});
  ASSERT_NE(subscriber, nullptr);
  auto http = Http(*daemon);

  const std::string data = "frame\0\x01\xfe\xff-0001"s;  // binary-safe end to end
  const std::string trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  const int64_t before_ms = NowMillis();
  EF_ASSERT_OK_AND_ASSIGN(auto r,
                          Publish(*http, channel, data, "",
                                  {{"Content-Type", "image/x-test"},
                                   {"traceparent", "00-" + trace_id + "-00f067aa0ba902b7-01"}}));
  const int64_t after_ms = NowMillis();
  ASSERT_EQ(r.status, 200) << r.Describe();
  const nlohmann::json body = r.Json();
  ASSERT_TRUE(body.is_object()) << r.body;
  const std::string item_id = body.value("item_id", "");
  const std::string version = body.value("version", "");
  ASSERT_FALSE(item_id.empty()) << r.body;
  EXPECT_EQ(body.value("channel", ""), channel) << r.body;
  EXPECT_EQ(body.value("topic", ""), Topic(channel)) << r.body;
  EXPECT_EQ(body.value("ns", ""), "channels") << r.body;
  EXPECT_EQ(body.value("key", ""), channel + "/" + item_id) << r.body;
  EXPECT_EQ(body.value("ref", ""), "/v1/kv/channels/cams/front/" + item_id) << r.body;
  EXPECT_TRUE(std::regex_match(version, kVersionPattern)) << r.body;
  EXPECT_GT(body.value("seq", 0ULL), 0ULL) << r.body;
  EXPECT_EQ(body.value("size", 0ULL), data.size()) << r.body;
  EXPECT_EQ(body.value("inline", false), true) << r.body;
  EXPECT_EQ(body.value("trace_id", ""), trace_id) << r.body;

  ASSERT_TRUE(subscriber->WaitForCount(1, kWait))
      << "no message on " << Topic(channel) << " within " << kWait.count() << " ms; "
      << subscriber->last_error();
  const std::vector<MqttReceived> messages = subscriber->Messages();
  ASSERT_EQ(messages.size(), 1u) << DescribeAll(messages);
  const MqttReceived& m = messages[0];
  EXPECT_EQ(m.topic, Topic(channel));
  EXPECT_EQ(m.qos, 1) << "put-then-publish must deliver with QoS 1";
  EXPECT_FALSE(m.retain);
  EXPECT_EQ(m.payload, data) << "inline data must be the payload, byte for byte";
  EXPECT_EQ(m.content_type, "image/x-test");
  EXPECT_EQ(m.correlation_data, item_id) << "correlation data carries the item id";
  EXPECT_EQ(m.Prop("ef-ref"), body.value("ref", ""));
  EXPECT_EQ(m.Prop("ef-version"), version);
  EXPECT_EQ(m.Prop("ef-size"), std::to_string(data.size()));
  EXPECT_EQ(m.Prop("ef-data"), "inline");
  EXPECT_EQ(m.Prop("ef-trace-id"), trace_id);
  EXPECT_EQ(m.UserProperty("ef-change"), nullptr) << "a publish is no key-change notification";
  const int64_t produced_at =
      std::stoll(m.UserProperty("ef-produced-at") != nullptr ? *m.UserProperty("ef-produced-at")
                                                             : std::string("0"));
  EXPECT_GE(produced_at, before_ms - 1000) << m.Describe();
  EXPECT_LE(produced_at, after_ms + 1000) << m.Describe();
  // The default item TTL is an hour, and a message must not outlive its data.
  ASSERT_TRUE(m.message_expiry_seconds.has_value()) << m.Describe();
  EXPECT_LE(*m.message_expiry_seconds, 3600u) << m.Describe();
  EXPECT_GE(*m.message_expiry_seconds, 3590u) << m.Describe();

  EF_ASSERT_OK_AND_ASSIGN(auto get, http->Get(m.Prop("ef-ref")));
  ASSERT_EQ(get.status, 200) << get.Describe();
  EXPECT_EQ(get.body, data);
  EXPECT_EQ(get.Header("EKV-Version"), version);
  EXPECT_EQ(get.Header("Content-Type"), "image/x-test");

  // Without a traceparent the node makes a trace id of its own.
  EF_ASSERT_OK_AND_ASSIGN(auto second, Publish(*http, channel, "second", "key=my-item-7"));
  ASSERT_EQ(second.status, 200) << second.Describe();
  EXPECT_EQ(second.Json().value("item_id", ""), "my-item-7") << second.body;
  EXPECT_EQ(second.Json().value("key", ""), "my-item-7") << second.body;
  ASSERT_TRUE(subscriber->WaitForCount(2, kWait)) << DescribeAll(subscriber->Messages());
  const MqttReceived m2 = subscriber->Messages()[1];
  EXPECT_EQ(m2.correlation_data, "my-item-7") << m2.Describe();
  EXPECT_EQ(m2.Prop("ef-ref"), "/v1/kv/channels/my-item-7") << m2.Describe();
  EXPECT_TRUE(std::regex_match(m2.Prop("ef-trace-id"), std::regex("[0-9a-f]{32}")))
      << m2.Describe();
  EXPECT_EQ(m2.Prop("ef-trace-id"), second.Json().value("trace_id", "")) << second.body;
}

// 2. By reference (claim check): explicitly with mode=ref, and automatically above
// channels.inline_max_bytes. The message has no payload; the reference yields exactly the data
// at the announced version.
TEST_F(ChannelsTest, LargeOrRefModeDataTravelsByReference) {
  constexpr size_t kInlineMax = 1024;
  auto daemon =
      StartWithConfig("channels:\n  inline_max_bytes: " + std::to_string(kInlineMax) + "\n");
  ASSERT_NE(daemon, nullptr);
  const std::string channel = "bulk/blobs";
  auto subscriber = Subscribe(*daemon, {Topic(channel)});
  ASSERT_NE(subscriber, nullptr);
  auto http = Http(*daemon);

  struct Case {
    std::string name;
    std::string data;
    std::string query;
    bool expect_inline;
  };
  const std::vector<Case> cases = {
      {"100 KB auto", RandomBytes(100 * 1024, 1), "", false},
      {"small mode=ref", "tiny but by reference", "mode=ref", false},
      {"exactly inline_max_bytes", RandomBytes(kInlineMax, 2), "", true},
      {"one byte above inline_max_bytes", RandomBytes(kInlineMax + 1, 3), "", false},
  };
  std::map<std::string, const Case*> by_item;
  std::map<std::string, std::string> version_of;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EF_ASSERT_OK_AND_ASSIGN(auto r, Publish(*http, channel, c.data, c.query));
    ASSERT_EQ(r.status, 200) << r.Describe();
    const nlohmann::json body = r.Json();
    EXPECT_EQ(body.value("inline", !c.expect_inline), c.expect_inline) << r.body;
    EXPECT_EQ(body.value("size", 0ULL), c.data.size()) << r.body;
    by_item[body.value("item_id", "")] = &c;
    version_of[body.value("item_id", "")] = body.value("version", "");
  }
  ASSERT_TRUE(subscriber->WaitForCount(cases.size(), kWait)) << DescribeAll(subscriber->Messages());

  for (const MqttReceived& m : subscriber->Messages()) {
    SCOPED_TRACE(m.Describe());
    ASSERT_TRUE(m.correlation_data.has_value());
    auto it = by_item.find(*m.correlation_data);
    ASSERT_NE(it, by_item.end()) << "a message for an item nobody published";
    const Case& c = *it->second;
    SCOPED_TRACE(c.name);
    EXPECT_EQ(m.Prop("ef-size"), std::to_string(c.data.size()));
    EXPECT_EQ(m.Prop("ef-version"), version_of[*m.correlation_data]);
    if (c.expect_inline) {
      EXPECT_EQ(m.Prop("ef-data"), "inline");
      EXPECT_EQ(m.payload, c.data);
    } else {
      EXPECT_EQ(m.Prop("ef-data"), "ref");
      EXPECT_TRUE(m.payload.empty()) << "a message by reference carries no payload";
    }
    EF_ASSERT_OK_AND_ASSIGN(auto get, http->Get(m.Prop("ef-ref")));
    ASSERT_EQ(get.status, 200) << get.Describe();
    EXPECT_TRUE(get.body == c.data)
        << "the reference yields " << get.body.size() << " bytes that differ from the "
        << c.data.size() << " published";
    EXPECT_EQ(get.Header("EKV-Version"), m.Prop("ef-version"));
  }
}

// 3. Any MQTT 5 client reads a channel without edgeflow's SDK: the real mosquitto_sub gets the
// payload and shows the envelope's user properties.
TEST_F(ChannelsTest, MosquittoSubReadsChannelAndEnvelope) {
  auto daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  const std::string channel = "plain/readers";
  const std::string client_id = "ef-test-mosquitto-sub-" + std::to_string(::getpid());
  // A persistent session (-c, -x) registered first with -E (exit once subscribed), so that the
  // publish cannot race the subscription: the broker queues the message for the second run.
  const std::string port = std::to_string(daemon->mqtt_port());
  const std::vector<std::string> common = {"-V", "5",  "-h",      "127.0.0.1", "-p",
                                           port, "-i", client_id, "-c",        "-x",
                                           "60", "-q", "1",       "-t",        Topic(channel)};
  std::vector<std::string> subscribe_args = common;
  subscribe_args.push_back("-E");
  CommandResult subscribed = RunCommand("mosquitto_sub", subscribe_args);
  ASSERT_EQ(subscribed.exit_code(), 0) << subscribed.Describe();

  auto http = Http(*daemon);
  EF_ASSERT_OK_AND_ASSIGN(auto r, Publish(*http, channel, "hello from edgeflow", "key=greeting-1",
                                          {{"Content-Type", "text/plain"}}));
  ASSERT_EQ(r.status, 200) << r.Describe();

  std::vector<std::string> receive_args = common;
  receive_args.insert(receive_args.end(), {"-C", "1", "-W", "10", "-F", "%t|%p|%C|%D|%P"});
  CommandResult received = RunCommand("mosquitto_sub", receive_args);
  ASSERT_EQ(received.exit_code(), 0) << received.Describe();
  const std::vector<std::string> lines = SplitLines(received.out);
  ASSERT_EQ(lines.size(), 1u) << received.Describe();
  const std::string& line = lines[0];
  EXPECT_TRUE(line.starts_with(Topic(channel) + "|hello from edgeflow|text/plain|greeting-1|"))
      << line;
  EXPECT_TRUE(Contains(line, "ef-ref:/v1/kv/channels/greeting-1")) << line;
  EXPECT_TRUE(Contains(line, "ef-data:inline")) << line;
  EXPECT_TRUE(Contains(line, "ef-version:" + r.Json().value("version", "?"))) << line;
  EXPECT_TRUE(Contains(line, "ef-size:19")) << line;
}

// 3'. A browser-like client reads a channel over MQTT-over-WebSockets (paho-mqtt with the
// websockets transport, as mqtt.js in a browser would).
TEST_F(ChannelsTest, WebSocketClientReadsChannel) {
  auto daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  ASSERT_NE(daemon->listen().mqtt_ws.port, 0) << "the node reports no websockets listener";
  const std::string channel = "browser/view";
  auto subscriber = ChildProcess::Spawn(
      "/usr/bin/python3",
      {EF_TEST_SOURCE_DIR "/integration/mqtt_ws_subscriber.py", "127.0.0.1",
       std::to_string(daemon->listen().mqtt_ws.port), Topic(channel), "1", "15"});
  ASSERT_TRUE(subscriber.has_value()) << subscriber.error().ToString();
  ASSERT_TRUE(
      (*subscriber)
          ->WaitForStdout([](const std::string& out) { return Contains(out, "subscribed\n"); },
                          std::chrono::seconds(15)))
      << "stderr: " << (*subscriber)->Stderr();

  auto http = Http(*daemon);
  EF_ASSERT_OK_AND_ASSIGN(auto r, Publish(*http, channel, "for the browser", "key=web-1",
                                          {{"Content-Type", "text/plain"}}));
  ASSERT_EQ(r.status, 200) << r.Describe();
  auto exit = (*subscriber)->Wait(std::chrono::seconds(20));
  ASSERT_TRUE(exit.has_value()) << "the websockets subscriber did not finish";
  EXPECT_EQ(exit->exit_code, 0) << exit->ToString() << " stderr: " << (*subscriber)->Stderr();
  const std::vector<std::string> lines = SplitLines((*subscriber)->Stdout());
  ASSERT_EQ(lines.size(), 2u) << (*subscriber)->Stdout();
  auto json = nlohmann::json::parse(lines[1], nullptr, false);
  ASSERT_TRUE(json.is_object()) << lines[1];
  EXPECT_EQ(json.value("topic", ""), Topic(channel));
  EXPECT_EQ(json.value("payload", ""), "for the browser");
  EXPECT_EQ(json.value("content_type", ""), "text/plain");
  EXPECT_EQ(json.value("correlation_data", ""), "web-1");
  EXPECT_EQ(json["user_properties"].value("ef-ref", ""), "/v1/kv/channels/web-1");
  EXPECT_EQ(json["user_properties"].value("ef-data", ""), "inline");
}

// 4. The broker is killed (SIGKILL) between publishes. The supervisor starts a new one; the node
// reconnects; a persistent-session QoS 1 subscriber ends with every item whose publish was
// acknowledged with 200 (duplicates allowed, no losses), and a 503 during the outage names the
// stored item.
TEST_F(ChannelsTest, PersistentSubscriberLosesNothingWhenBrokerIsKilled) {
  // autosave_seconds: 1 so that the broker soon writes the subscriber's session to disk (a kill
  // loses what was not saved yet). The publish timeout is shorter than the outage (restart
  // back-off plus the node's reconnect back-off), so the first publish after the kill usually
  // answers 503 and the retry path is taken.
  auto daemon =
      StartWithConfig("mqtt:\n  autosave_seconds: 1\nchannels:\n  publish_timeout_ms: 200\n");
  ASSERT_NE(daemon, nullptr);
  auto http = Http(*daemon);
  const std::string channel = "durable/items";
  MqttSubscriberOptions options;
  options.client_id = "ef-test-durable-subscriber";
  options.persistent_session = true;
  auto subscriber = Subscribe(*daemon, {Topic(channel)}, options);
  ASSERT_NE(subscriber, nullptr);
  const auto subscribed_at = std::filesystem::file_time_type::clock::now();

  std::map<std::string, std::string> acknowledged;  // item id -> data, for every 200
  auto publish_until_accepted = [&](const std::string& key, milliseconds timeout) {
    const std::string data = "data of " + key;
    const auto deadline = SteadyClock::now() + timeout;
    int unavailable = 0;
    for (;;) {
      EF_ASSERT_OK_AND_ASSIGN(auto r, Publish(*http, channel, data, "key=" + key));
      if (r.status == 200) {
        acknowledged[key] = data;
        return;
      }
      ASSERT_EQ(r.status, 503) << r.Describe();
      EXPECT_EQ(ErrorCode(r), "UNAVAILABLE") << r.body;
      EXPECT_TRUE(Contains(ErrorMessage(r), "stored at /v1/kv/channels/" + key)) << r.body;
      if (++unavailable == 1) {
        // The put is kept even though the announcement failed.
        EF_ASSERT_OK_AND_ASSIGN(auto get, http->Get("/v1/kv/channels/" + key));
        EXPECT_EQ(get.status, 200) << get.Describe();
        EXPECT_EQ(get.body, data);
      }
      ASSERT_LT(SteadyClock::now(), deadline)
          << "publishing " << key << " still fails " << timeout.count()
          << " ms after the broker was killed: " << r.Describe();
    }
  };
  auto has_all = [&](const std::vector<MqttReceived>& messages) {
    std::set<std::string> seen;
    for (const MqttReceived& m : messages) seen.insert(m.correlation_data.value_or(""));
    return std::all_of(acknowledged.begin(), acknowledged.end(),
                       [&](const auto& entry) { return seen.contains(entry.first); });
  };

  for (int i = 0; i < 5; ++i) {
    ASSERT_NO_FATAL_FAILURE(publish_until_accepted("before-" + std::to_string(i), kWait));
  }
  ASSERT_TRUE(subscriber->WaitFor(has_all, kWait)) << DescribeAll(subscriber->Messages());

  // Mosquitto saves its state every autosave interval; wait for a save that happened after the
  // subscription, or the kill would take the session (and what it should queue) with it.
  const std::filesystem::path db = temp_.Sub("data") / "mosquitto" / "mosquitto.db";
  ASSERT_TRUE(PollUntil(
      [&] {
        std::error_code ec;
        const auto written = std::filesystem::last_write_time(db, ec);
        return !ec && written > subscribed_at;
      },
      kWait))
      << db << " was not saved after the subscription";

  nlohmann::json before = NodeChannels(*http);
  ASSERT_TRUE(before.is_object()) << "GET /v1/node failed";
  const pid_t old_pid = before.value("broker_pid", 0);
  ASSERT_GT(old_pid, 0) << before.dump();
  EXPECT_EQ(old_pid, daemon->listen().broker_pid) << before.dump();
  EXPECT_TRUE(Contains(ProcessCommandLine(old_pid), "mosquitto")) << before.dump();
  ASSERT_EQ(::kill(old_pid, SIGKILL), 0);

  // Published right away, while the broker is down or coming back.
  for (int i = 0; i < 5; ++i) {
    ASSERT_NO_FATAL_FAILURE(publish_until_accepted("during-" + std::to_string(i), seconds(20)));
  }

  nlohmann::json after;
  ASSERT_TRUE(PollUntil(
      [&] {
        after = NodeChannels(*http);
        return after.is_object() && after.value("broker_pid", 0) != 0 &&
               after.value("broker_pid", 0) != old_pid && after.value("connected", false);
      },
      kWait))
      << "no new connected broker: " << after.dump();
  EXPECT_GE(after.value("broker_restarts", 0), 1) << after.dump();
  EXPECT_TRUE(Contains(ProcessCommandLine(after.value("broker_pid", 0)), "mosquitto"));

  for (int i = 0; i < 3; ++i) {
    const std::string key = "after-" + std::to_string(i);
    EF_ASSERT_OK_AND_ASSIGN(auto r, Publish(*http, channel, "data of " + key, "key=" + key));
    ASSERT_EQ(r.status, 200) << "the node reports a connected broker: " << r.Describe();
    acknowledged[key] = "data of " + key;
  }

  const bool complete = subscriber->WaitFor(has_all, seconds(15));
  const std::vector<MqttReceived> messages = subscriber->Messages();
  std::string missing;
  for (const auto& [key, data] : acknowledged) {
    if (ForItem(messages, key).empty()) missing += " " + key;
  }
  EXPECT_TRUE(complete) << "items acknowledged with 200 but never delivered:" << missing
                        << "\nsubscriber: sessions=" << subscriber->sessions()
                        << " last_session_present=" << subscriber->last_session_present()
                        << " last_error=" << subscriber->last_error() << "\n"
                        << DescribeAll(messages);
  // Duplicates are allowed, but each copy must be the item's data.
  for (const MqttReceived& m : messages) {
    auto it = acknowledged.find(m.correlation_data.value_or(""));
    if (it == acknowledged.end()) continue;  // an attempt answered 503 that got through anyway
    EXPECT_EQ(m.payload, it->second) << m.Describe();
  }
  EXPECT_GE(subscriber->sessions(), 2) << "the subscriber never reconnected to the new broker";
  EXPECT_TRUE(subscriber->last_session_present())
      << "the new broker did not restore the subscriber's persistent session";
}

// 5a. Publish requests the node must refuse before storing anything: bad channel names, bad
// parameters, and inline data larger than the broker's packet limit.
TEST_F(ChannelsTest, BadPublishRequestsAreRejected) {
  constexpr size_t kMaxPacket = 65536;
  auto daemon = StartWithConfig("mqtt:\n  max_packet_bytes: " + std::to_string(kMaxPacket) +
                                "\nchannels:\n  inline_max_bytes: 1024\n");
  ASSERT_NE(daemon, nullptr);
  auto http = Http(*daemon);

  struct NameCase {
    std::string path_part;  // as it appears in the request target
    std::string mentions;
  };
  const std::vector<NameCase> names = {
      {"a//b", "empty segment"},         {"a/", "empty segment"},
      {"a/+", "contains '+'"},           {"a/%2B/b", "contains '+'"},
      {"%23", "contains '#'"},           {"a/%23", "contains '#'"},
      {"a/../b", "'.' or '..' segment"}, {"./a", "'.' or '..' segment"},
      {"a%20b", "contains ' '"},         {std::string(300, 'x'), "longer than 200 bytes"},
  };
  for (const NameCase& c : names) {
    SCOPED_TRACE("channel " + c.path_part.substr(0, 40));
    EF_ASSERT_OK_AND_ASSIGN(auto r, Publish(*http, c.path_part, "data"));
    EXPECT_EQ(r.status, 400) << r.Describe();
    EXPECT_EQ(ErrorCode(r), "INVALID_ARGUMENT") << r.body;
    EXPECT_TRUE(Contains(ErrorMessage(r), c.mentions)) << r.body;
  }

  struct ParamCase {
    std::string query;
    std::string mentions;
  };
  const std::vector<ParamCase> params = {
      {"mode=bogus", "mode must be auto, inline or ref"},
      {"ttl=-1", "invalid ttl"},
      {"ttl=0", "must be positive"},
      {"ttl=soon", "invalid ttl"},
      {"ns=bad/ns", "invalid namespace"},
      {"ns=", "namespace must not be empty"},
      {"key=", "key must not be empty"},
  };
  int n = 0;
  for (const ParamCase& c : params) {
    SCOPED_TRACE(c.query);
    // Every case names a key, to check below that nothing was stored (unless the key is the
    // bad parameter itself).
    const std::string key = "rejected-" + std::to_string(++n);
    const std::string query = c.query.starts_with("key=") ? c.query : c.query + "&key=" + key;
    EF_ASSERT_OK_AND_ASSIGN(auto r, Publish(*http, "good/channel", "data", query));
    EXPECT_EQ(r.status, 400) << r.Describe();
    EXPECT_EQ(ErrorCode(r), "INVALID_ARGUMENT") << r.body;
    EXPECT_TRUE(Contains(ErrorMessage(r), c.mentions)) << r.body;
    EF_ASSERT_OK_AND_ASSIGN(auto get, http->Get("/v1/kv/channels/" + key));
    EXPECT_EQ(get.status, 404) << "a refused publish stored its data: " << get.Describe();
  }

  // Inline data must fit in one broker packet with room for the envelope (4096 bytes).
  const std::string too_big = RandomBytes(100 * 1024, 7);
  EF_ASSERT_OK_AND_ASSIGN(auto big, Publish(*http, "good/channel", too_big, "mode=inline&key=big"));
  EXPECT_EQ(big.status, 413) << big.Describe();
  EXPECT_EQ(ErrorCode(big), "RESOURCE_EXHAUSTED") << big.body;
  EXPECT_TRUE(Contains(ErrorMessage(big), "do not fit")) << big.body;
  EXPECT_TRUE(Contains(ErrorMessage(big), std::to_string(kMaxPacket))) << big.body;
  EF_ASSERT_OK_AND_ASSIGN(auto not_stored, http->Get("/v1/kv/channels/big"));
  EXPECT_EQ(not_stored.status, 404) << not_stored.Describe();

  // The same data in auto mode goes by reference; the largest inline payload the node accepts is
  // really delivered by the broker.
  auto subscriber = Subscribe(*daemon, {Topic("good/channel")});
  ASSERT_NE(subscriber, nullptr);
  EF_ASSERT_OK_AND_ASSIGN(auto by_ref, Publish(*http, "good/channel", too_big, "key=big-auto"));
  ASSERT_EQ(by_ref.status, 200) << by_ref.Describe();
  EXPECT_EQ(by_ref.Json().value("inline", true), false) << by_ref.body;
  const std::string largest_inline = RandomBytes(kMaxPacket - 4096, 8);
  EF_ASSERT_OK_AND_ASSIGN(auto edge,
                          Publish(*http, "good/channel", largest_inline, "mode=inline&key=edge"));
  ASSERT_EQ(edge.status, 200) << edge.Describe();
  ASSERT_TRUE(subscriber->WaitForCount(2, kWait)) << DescribeAll(subscriber->Messages());
  const std::vector<MqttReceived> edge_messages = ForItem(subscriber->Messages(), "edge");
  ASSERT_EQ(edge_messages.size(), 1u) << DescribeAll(subscriber->Messages());
  EXPECT_TRUE(edge_messages[0].payload == largest_inline) << edge_messages[0].Describe();
}

// 5a'. The config allows channels.inline_max_bytes up to mqtt.max_packet_bytes - 4096, but a key
// of 1024 bytes travels twice in the envelope, as correlation data and percent-encoded (up to 3
// bytes per byte) in ef-ref, so the envelope can take more than 4096 bytes. An auto-mode publish
// of that much data must then travel by reference, and a mode=inline one must be refused before
// anything is stored.
TEST_F(ChannelsTest, LargeEnvelopeDoesNotBreakPublishing) {
  constexpr size_t kMaxPacket = 65536;
  constexpr size_t kInlineMax = kMaxPacket - 4096;  // the largest value the node accepts
  auto daemon =
      StartWithConfig("mqtt:\n  max_packet_bytes: " + std::to_string(kMaxPacket) +
                      "\nchannels:\n  inline_max_bytes: " + std::to_string(kInlineMax) + "\n");
  ASSERT_NE(daemon, nullptr);
  auto http = Http(*daemon);
  const std::string data = RandomBytes(kInlineMax, 9);
  std::string encoded_key;  // 1024 spaces: the longest key, 3 bytes each in ef-ref
  for (int i = 0; i < 1024; ++i) encoded_key += "%20";

  EF_ASSERT_OK_AND_ASSIGN(auto automatic,
                          Publish(*http, "big/envelope", data, "key=" + encoded_key));
  EXPECT_EQ(automatic.status, 200) << "auto mode must fall back to a reference when the data "
                                      "does not fit inline: "
                                   << automatic.Describe();

  // The same with mode=inline (another key of the longest size, so that nothing is stored yet).
  const std::string other_key = "x" + encoded_key.substr(3);
  EF_ASSERT_OK_AND_ASSIGN(auto forced,
                          Publish(*http, "big/envelope", data, "mode=inline&key=" + other_key));
  EXPECT_EQ(forced.status, 413) << forced.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto stored, http->Get("/v1/kv/channels/" + other_key));
  EXPECT_EQ(stored.status, 404) << "a mode=inline publish that cannot be sent must be refused "
                                   "before the data is stored, as other oversized ones are";
}

// 5b. The broker is unreachable (an external broker on a port where nothing listens): publishing
// answers 503 within the publish timeout, names where the data is stored, and the data is there.
TEST_F(ChannelsTest, ExternalBrokerDownAnswers503AndKeepsTheDataThenWorksWhenUp) {
  auto port = PickFreePort("127.0.0.1");
  ASSERT_TRUE(port.has_value()) << port.error().ToString();
  auto daemon = StartWithConfig("channels:\n  publish_timeout_ms: 300\n",
                                {"--mqtt-broker", "mqtt://127.0.0.1:" + std::to_string(*port)});
  ASSERT_NE(daemon, nullptr);
  auto http = Http(*daemon);
  nlohmann::json channels = NodeChannels(*http);
  EXPECT_EQ(channels.value("connected", true), false) << channels.dump();
  EXPECT_EQ(channels.value("managed_broker", true), false) << channels.dump();
  EXPECT_EQ(channels.value("mqtt", ""), "127.0.0.1:" + std::to_string(*port)) << channels.dump();

  const auto start = SteadyClock::now();
  EF_ASSERT_OK_AND_ASSIGN(auto r,
                          Publish(*http, "outbox/orders", "order #1", "key=kept-while-down"));
  const auto took = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start);
  EXPECT_EQ(r.status, 503) << r.Describe();
  EXPECT_EQ(ErrorCode(r), "UNAVAILABLE") << r.body;
  EXPECT_TRUE(Contains(ErrorMessage(r), "stored at /v1/kv/channels/kept-while-down")) << r.body;
  EXPECT_TRUE(Contains(ErrorMessage(r), "publishing again is safe")) << r.body;
  EXPECT_LT(took, seconds(3)) << "publish_timeout_ms is 300";

  EF_ASSERT_OK_AND_ASSIGN(auto get, http->Get("/v1/kv/channels/kept-while-down"));
  EXPECT_EQ(get.status, 200) << "the put was lost: " << get.Describe();
  EXPECT_EQ(get.body, "order #1");

  // The external broker comes up (a plain Mosquitto the node does not manage): the node
  // connects on its own and channels work through it.
  auto broker = ChildProcess::Spawn("/usr/sbin/mosquitto", {"-p", std::to_string(*port)});
  ASSERT_TRUE(broker.has_value()) << broker.error().ToString();
  ASSERT_TRUE(PollUntil([&] { return NodeChannels(*http).value("connected", false); }, kWait))
      << "the node never connected to the external broker; mosquitto: " << (*broker)->Stderr();
  MqttSubscriberOptions options;
  options.broker = HostPort{"127.0.0.1", static_cast<uint16_t>(*port)};
  options.filters = {Topic("outbox/orders")};
  auto subscriber = MqttSubscriber::Start(options);
  ASSERT_TRUE(subscriber.has_value()) << subscriber.error().ToString();
  EF_ASSERT_OK_AND_ASSIGN(auto again,
                          Publish(*http, "outbox/orders", "order #2", "key=sent-when-back"));
  EXPECT_EQ(again.status, 200) << again.Describe();
  EXPECT_TRUE((*subscriber)
                  ->WaitFor(
                      [](const std::vector<MqttReceived>& got) {
                        return std::any_of(got.begin(), got.end(), [](const MqttReceived& m) {
                          return m.payload == "order #2";
                        });
                      },
                      kWait));
  (*subscriber)->Stop();
  (*broker)->Signal(SIGTERM);
  (*broker)->Finish(std::chrono::seconds(5));
}

// 5c. A reference outlives neither its TTL nor the message: after ?ttl= the item is gone.
TEST_F(ChannelsTest, ReferenceExpiresWithItsTtl) {
  auto daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  auto http = Http(*daemon);
  auto subscriber = Subscribe(*daemon, {Topic("short/lived")});
  ASSERT_NE(subscriber, nullptr);
  EF_ASSERT_OK_AND_ASSIGN(auto r, Publish(*http, "short/lived", "soon gone", "mode=ref&ttl=1"));
  ASSERT_EQ(r.status, 200) << r.Describe();
  const std::string ref = r.Json().value("ref", "");
  ASSERT_TRUE(subscriber->WaitForCount(1, kWait));
  EXPECT_EQ(subscriber->Messages()[0].message_expiry_seconds, 1u)
      << "the message must expire with its data: " << subscriber->Messages()[0].Describe();

  EF_ASSERT_OK_AND_ASSIGN(auto fresh, http->Get(ref));
  EXPECT_EQ(fresh.status, 200) << fresh.Describe();
  HttpResponse last;
  EXPECT_TRUE(PollUntil(
      [&] {
        auto get = http->Get(ref);
        if (get.has_value()) last = *get;
        return get.has_value() && get->status == 404;
      },
      seconds(5)))
      << "the item published with ttl=1 is still readable 5 s later: " << last.Describe();
  EXPECT_EQ(ErrorCode(last), "NOT_FOUND") << last.body;
}

// 6. Key-change notifications: writes of a watched namespace, over HTTP and RESP, are announced
// by reference with ef-change; other namespaces and other prefixes are not.
TEST_F(ChannelsTest, KeyChangesAreAnnounced) {
  auto daemon = StartWithConfig(
      "resp:\n"
      "  default_namespace: sensors\n"
      "channels:\n"
      "  notify:\n"
      "    - namespace: sensors\n"
      "      channel: changes/sensors\n"
      "    - namespace: sensors\n"
      "      prefix: hot/\n"
      "      channel: changes/hot\n");
  ASSERT_NE(daemon, nullptr);
  auto subscriber = Subscribe(*daemon, {Topic("changes/sensors"), Topic("changes/hot")});
  ASSERT_NE(subscriber, nullptr);
  auto http = Http(*daemon);
  auto resp = Resp(*daemon);
  ASSERT_NE(resp, nullptr);

  EF_ASSERT_OK_AND_ASSIGN(
      auto put, http->Put("/v1/kv/sensors/temp-1", "21.5", {{"Content-Type", "text/plain"}}));
  ASSERT_EQ(put.status, 200) << put.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto other, http->Put("/v1/kv/other/ignored", "x"));
  ASSERT_EQ(other.status, 200) << other.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto hot, http->Put("/v1/kv/sensors/hot/boiler", "90"));
  ASSERT_EQ(hot.status, 200) << hot.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto del, http->Delete("/v1/kv/sensors/temp-1"));
  ASSERT_EQ(del.status, 200) << del.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto set, resp->Command({"SET", "humidity", "40"}));
  ASSERT_TRUE(set.IsStatus("OK")) << set.ToString();
  // Changes are announced in commit order: once this last one is in, an announcement of the
  // other namespace would be too.
  EF_ASSERT_OK_AND_ASSIGN(auto last, http->Put("/v1/kv/sensors/zz-last", "end"));
  ASSERT_EQ(last.status, 200) << last.Describe();

  auto on = [](const std::vector<MqttReceived>& messages, const std::string& channel) {
    std::vector<MqttReceived> out;
    for (const MqttReceived& m : messages) {
      if (m.topic == Topic(channel)) out.push_back(m);
    }
    return out;
  };
  ASSERT_TRUE(subscriber->WaitFor(
      [&](const std::vector<MqttReceived>& messages) {
        return !ForItem(messages, "zz-last").empty() && !on(messages, "changes/hot").empty();
      },
      kWait))
      << DescribeAll(subscriber->Messages());
  const std::vector<MqttReceived> messages = subscriber->Messages();
  const std::vector<MqttReceived> sensors = on(messages, "changes/sensors");
  const std::vector<MqttReceived> hot_channel = on(messages, "changes/hot");

  struct Expected {
    std::string key;
    std::string change;
    std::string version;  // empty: not known from the write's answer
  };
  const std::vector<Expected> expected = {
      {"temp-1", "put", put.Json().value("version", "?")},
      {"hot/boiler", "put", hot.Json().value("version", "?")},
      {"temp-1", "delete", del.Json().value("version", "?")},
      {"humidity", "put", ""},
      {"zz-last", "put", last.Json().value("version", "?")},
  };
  ASSERT_EQ(sensors.size(), expected.size()) << DescribeAll(messages);
  for (size_t i = 0; i < expected.size(); ++i) {
    const MqttReceived& m = sensors[i];
    SCOPED_TRACE(m.Describe());
    EXPECT_EQ(m.qos, 1);
    EXPECT_EQ(m.correlation_data, expected[i].key);
    EXPECT_EQ(m.Prop("ef-change"), expected[i].change);
    EXPECT_EQ(m.Prop("ef-ref"), "/v1/kv/sensors/" + expected[i].key);
    EXPECT_EQ(m.Prop("ef-data"), "ref");
    EXPECT_TRUE(m.payload.empty());
    if (!expected[i].version.empty()) {
      EXPECT_EQ(m.Prop("ef-version"), expected[i].version);
    }
  }
  EXPECT_EQ(sensors[0].Prop("ef-size"), "4");
  EXPECT_EQ(sensors[0].content_type, "text/plain");

  // The RESP write is announced with the version EKV has for it.
  EF_ASSERT_OK_AND_ASSIGN(auto humidity, http->Get("/v1/kv/sensors/humidity"));
  ASSERT_EQ(humidity.status, 200) << humidity.Describe();
  EXPECT_EQ(humidity.body, "40");
  EXPECT_EQ(sensors[3].Prop("ef-version"), humidity.Header("EKV-Version"));

  ASSERT_EQ(hot_channel.size(), 1u)
      << "only hot/ keys go to changes/hot: " << DescribeAll(messages);
  EXPECT_EQ(hot_channel[0].correlation_data, "hot/boiler");
  EXPECT_EQ(hot_channel[0].Prop("ef-ref"), "/v1/kv/sensors/hot/boiler");
  for (const MqttReceived& m : messages) {
    EXPECT_FALSE(Contains(m.Prop("ef-ref"), "/other/"))
        << "announced a key of another namespace: " << m.Describe();
  }
}

// 7. GET /v1/channels lists what was published, with counts; one channel by name; 404 for a
// channel nothing was published on.
TEST_F(ChannelsTest, ChannelStatsListPublishedChannels) {
  auto daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  auto http = Http(*daemon);
  const std::string channel = "stats/demo";
  const int64_t before_ms = NowMillis();
  size_t bytes = 0;
  for (size_t size : {10, 20, 30}) {
    EF_ASSERT_OK_AND_ASSIGN(auto r, Publish(*http, channel, std::string(size, 's')));
    ASSERT_EQ(r.status, 200) << r.Describe();
    bytes += size;
  }

  // Counted through the node's own subscription, so shortly after the publishes.
  nlohmann::json list, entry;
  ASSERT_TRUE(PollUntil(
      [&] {
        auto r = http->Get("/v1/channels");
        if (!r.has_value() || r->status != 200) return false;
        list = r->Json();
        if (!list.is_object() || !list["channels"].is_array()) return false;
        for (const auto& c : list["channels"]) {
          if (c.value("name", "") == channel && c.value("messages", 0) >= 3) {
            entry = c;
            return true;
          }
        }
        return false;
      },
      kWait))
      << "GET /v1/channels does not count 3 messages on " << channel << ": " << list.dump();
  EXPECT_EQ(list.value("tenant", ""), "default") << list.dump();
  EXPECT_EQ(list.value("topic_prefix", ""), "ef/default/ch/") << list.dump();
  EXPECT_GT(list.value("rate_window_seconds", 0), 0) << list.dump();
  EXPECT_EQ(entry.value("topic", ""), Topic(channel)) << entry.dump();
  EXPECT_EQ(entry.value("messages", 0), 3) << entry.dump();
  EXPECT_EQ(entry.value("bytes", 0ULL), bytes) << entry.dump();
  EXPECT_GE(entry.value("last_message_ms", int64_t{0}), before_ms) << entry.dump();
  EXPECT_LE(entry.value("last_message_ms", int64_t{0}), NowMillis()) << entry.dump();

  // Rates leave out the current, partial second: they show in full once the second(s) of the
  // publishes are over, as 3 messages (60 bytes) over the window.
  const double window = list.value("rate_window_seconds", 10);
  nlohmann::json rated;
  ASSERT_TRUE(PollUntil(
      [&] {
        auto r = http->Get("/v1/channels/" + channel);
        if (!r.has_value() || r->status != 200) return false;
        rated = r->Json();
        return rated.is_object() && rated.value("messages_per_second", 0.0) >= 3 / window - 1e-9;
      },
      kWait))
      << "the rate of " << channel << " never reached 3 messages per window: " << rated.dump();
  EXPECT_DOUBLE_EQ(rated.value("messages_per_second", 0.0), 3 / window) << rated.dump();
  EXPECT_DOUBLE_EQ(rated.value("bytes_per_second", 0.0), static_cast<double>(bytes) / window)
      << rated.dump();

  EF_ASSERT_OK_AND_ASSIGN(auto one, http->Get("/v1/channels/" + channel));
  ASSERT_EQ(one.status, 200) << one.Describe();
  EXPECT_EQ(one.Json().value("name", ""), channel) << one.body;
  EXPECT_EQ(one.Json().value("messages", 0), 3) << one.body;

  EF_ASSERT_OK_AND_ASSIGN(auto unknown, http->Get("/v1/channels/never/published"));
  EXPECT_EQ(unknown.status, 404) << unknown.Describe();
  EXPECT_EQ(ErrorCode(unknown), "NOT_FOUND") << unknown.body;
  EXPECT_TRUE(Contains(ErrorMessage(unknown), "never/published")) << unknown.body;

  EF_ASSERT_OK_AND_ASSIGN(auto invalid, http->Get("/v1/channels/a//b"));
  EXPECT_EQ(invalid.status, 400) << invalid.Describe();

  // What other MQTT clients publish on a channel is counted too (the node sees it through its
  // subscription; its own messages it counts when the broker acknowledges them, exactly once).
  const std::string foreign = "stats/foreign";
  CommandResult sent = RunCommand(
      "mosquitto_pub", {"-V", "5", "-h", "127.0.0.1", "-p", std::to_string(daemon->mqtt_port()),
                        "-q", "1", "-t", Topic(foreign), "-m", "from another client"});
  ASSERT_EQ(sent.exit_code(), 0) << sent.Describe();
  nlohmann::json seen;
  ASSERT_TRUE(PollUntil(
      [&] {
        auto r = http->Get("/v1/channels/" + foreign);
        if (!r.has_value() || r->status != 200) return false;
        seen = r->Json();
        return seen.is_object() && seen.value("messages", 0) >= 1;
      },
      kWait))
      << "a message from mosquitto_pub on " << foreign << " was never counted";
  EXPECT_EQ(seen.value("messages", 0), 1) << seen.dump();
  EXPECT_EQ(seen.value("bytes", 0), 19) << seen.dump();
}

// 8. A node started with --no-mqtt runs no broker and refuses the channel routes with 503.
TEST_F(ChannelsTest, NoMqttAnswers503) {
  auto daemon = StartDaemon(std::vector<std::string>{"--no-mqtt"});
  ASSERT_NE(daemon, nullptr);
  EXPECT_EQ(daemon->listen().mqtt.port, 0);
  EXPECT_EQ(daemon->listen().broker_pid, 0);
  auto http = Http(*daemon);

  EF_ASSERT_OK_AND_ASSIGN(auto r, Publish(*http, "any/channel", "data", "key=not-published"));
  EXPECT_EQ(r.status, 503) << r.Describe();
  EXPECT_EQ(ErrorCode(r), "UNAVAILABLE") << r.body;
  EXPECT_TRUE(Contains(ErrorMessage(r), "channels are turned off")) << r.body;
  EF_ASSERT_OK_AND_ASSIGN(auto list, http->Get("/v1/channels"));
  EXPECT_EQ(list.status, 503) << list.Describe();

  EXPECT_EQ(NodeChannels(*http).value("enabled", true), false);
  // EKV itself is unaffected.
  EF_ASSERT_OK_AND_ASSIGN(auto put, http->Put("/v1/kv/default/still-works", "yes"));
  EXPECT_EQ(put.status, 200) << put.Describe();
}

// 9. The broker lives and dies with the daemon: a clean stop takes it down, and so does a
// SIGKILL of the daemon (the broker's parent-death signal).
TEST_F(ChannelsTest, BrokerStopsWithTheDaemon) {
  for (const int signo : {SIGTERM, SIGKILL}) {
    SCOPED_TRACE(signo == SIGTERM ? "SIGTERM" : "SIGKILL");
    auto daemon = StartDaemon({}, signo == SIGTERM ? "term-data" : "kill-data");
    ASSERT_NE(daemon, nullptr);
    const pid_t broker = daemon->listen().broker_pid;
    ASSERT_GT(broker, 0);
    ASSERT_TRUE(Contains(ProcessCommandLine(broker), "mosquitto"));

    if (signo == SIGTERM) {
      ExitStatus exit = daemon->Stop(SIGTERM);
      EXPECT_EQ(exit.exit_code, 0) << exit.ToString();
      // The daemon reaps its broker before it exits: no process is left, not even a zombie.
      EXPECT_TRUE(PollUntil([&] { return ProcessState(broker) == 0; }, kWait))
          << "broker " << broker << " still exists after the daemon stopped (state "
          << ProcessState(broker) << ")";
    } else {
      daemon->Kill();
      // Nobody reaps an orphan here if the container's init does not: a zombie has exited too.
      EXPECT_TRUE(PollUntil(
          [&] {
            const char state = ProcessState(broker);
            return state == 0 || state == 'Z';
          },
          kWait))
          << "broker " << broker << " still runs after the daemon was killed";
    }
  }
}

}  // namespace
}  // namespace edgeflow::test_support
