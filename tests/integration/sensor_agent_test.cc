// `edgeflow sensor`, the real binary, against a real edgeflowd: the sensor finds the node's broker,
// takes the retained quality of its control channel before it sends a byte, suppresses what that
// quality says (its reports on the report channel and a UDP receiver both show it), follows a new
// quality while it runs, ignores and counts a bad one, and stops on SIGINT with its summary. Also
// what it does without a node, and with bad arguments.
//
// Topics are spelled out ("ef/<tenant>/ch/_fanout/<id>/...") rather than computed with the
// product's helpers, so that a change of the wire contract fails here. The quality is published
// with the real mosquitto_pub; the reports are read with the tests' own MQTT decoder.
#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fanout/sensor_quality.h"
#include "fanout/sensor_sender.h"
#include "support/child_process.h"
#include "support/command_runner.h"
#include "support/daemon_test.h"
#include "support/mqtt_subscriber.h"
#include "support/udp_receiver.h"

namespace edgeflow::test_support {
namespace {

using namespace std::chrono_literals;

constexpr auto kWait = 20s;

std::string QualityTopic(const std::string& id, const std::string& tenant = "default") {
  return "ef/" + tenant + "/ch/_fanout/" + id + "/quality";
}
std::string ReportTopic(const std::string& id, const std::string& tenant = "default") {
  return "ef/" + tenant + "/ch/_fanout/" + id + "/report";
}

// The reports among received messages, parsed.
std::vector<nlohmann::json> Reports(const std::vector<MqttReceived>& messages) {
  std::vector<nlohmann::json> out;
  for (const MqttReceived& m : messages) {
    auto report = nlohmann::json::parse(m.payload, nullptr, false);
    if (report.is_object()) out.push_back(std::move(report));
  }
  return out;
}

uint64_t At(const nlohmann::json& report, const std::string& group, const std::string& way,
            const std::string& klass) {
  return report.value(group, nlohmann::json::object())
      .value(way, nlohmann::json::object())
      .value(klass, uint64_t{0});
}

std::string Keep(const nlohmann::json& report) {
  return report.value("quality", nlohmann::json::object()).value("keep", std::string("?"));
}

class SensorAgentTest : public DaemonTest {
 protected:
  // A 3-second H.264 stream, made once for the suite.
  static void SetUpTestSuite() {
    dir_ = new TempDir("edgeflow-sensor-agent-");
    const CommandResult encoded = RunCommand(
        "ffmpeg",
        {"-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "3", "-c:v",
         "libx264", "-g", "30", "-bf", "2", "-f", "mpegts", File().string()},
        {.timeout = std::chrono::seconds(120)});
    encode_error_ = new std::string(encoded.exit_code() == 0 ? "" : encoded.Describe());
  }
  static void TearDownTestSuite() {
    delete encode_error_;
    delete dir_;
  }
  void SetUp() override {
    ASSERT_EQ(*encode_error_, "") << "ffmpeg (scripts/setup installs it) failed";
  }

  static std::filesystem::path File() { return dir_->Sub("camera.ts"); }
  static uint64_t FileBytes() { return std::filesystem::file_size(File()); }

  // mosquitto_pub, retained, QoS 1; an empty message clears the retained one.
  static void PublishQuality(uint16_t mqtt_port, const std::string& topic,
                             const std::string& message) {
    std::vector<std::string> args = {"-V", "5", "-h", "127.0.0.1", "-p",
                                     std::to_string(mqtt_port), "-q", "1", "-r", "-t", topic};
    if (message.empty()) {
      args.push_back("-n");  // a zero-length message
    } else {
      args.insert(args.end(), {"-m", message});
    }
    const CommandResult sent = RunCommand("mosquitto_pub", args);
    ASSERT_EQ(sent.exit_code(), 0) << sent.Describe();
  }

  std::unique_ptr<MqttSubscriber> SubscribeReports(uint16_t mqtt_port, const std::string& topic) {
    MqttSubscriberOptions options;
    options.broker = HostPort{"127.0.0.1", mqtt_port};
    options.filters = {topic};
    options.qos = 1;
    auto subscriber = MqttSubscriber::Start(options);
    EXPECT_TRUE(subscriber.has_value()) << subscriber.error().ToString();
    return subscriber ? std::move(*subscriber) : nullptr;
  }

  std::unique_ptr<ChildProcess> StartSensor(const std::vector<std::string>& args) {
    auto child = ChildProcess::Spawn(CliBinary(), args);
    EXPECT_TRUE(child.has_value()) << child.error().ToString();
    return child ? std::move(*child) : nullptr;
  }

  static TempDir* dir_;
  static std::string* encode_error_;
};

TempDir* SensorAgentTest::dir_ = nullptr;
std::string* SensorAgentTest::encode_error_ = nullptr;

TEST_F(SensorAgentTest, AppliesTheQualityOfItsControlChannelAndFollowsChanges) {
  auto daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  const uint16_t mqtt_port = daemon->mqtt_port();
  // Set before the sensor starts: it must apply it before its first datagram.
  PublishQuality(mqtt_port, QualityTopic("cam1"), R"({"keep":"0/1","mode":"frame"})");
  auto reports = SubscribeReports(mqtt_port, ReportTopic("cam1"));
  ASSERT_NE(reports, nullptr);
  UdpReceiver receiver;
  ASSERT_NE(receiver.port(), 0);

  auto sensor = StartSensor({"--server", daemon->http_url(), "sensor", "--ts", File().string(),
                             "--to", "127.0.0.1:" + std::to_string(receiver.port()), "--id",
                             "cam1", "--loop", "--speed", "2", "--report-interval", "0.2",
                             "--json"});
  ASSERT_NE(sensor, nullptr);
  auto describe = [&] { return "stderr:\n" + sensor->Stderr() + "\nstdout:\n" + sensor->Stdout(); };

  // 1. Differential data is suppressed from the first datagram on. (Frame mode at 0/1 still
  // lets the odd referenced picture through, so that what is sent decodes; see drop_policy.h.)
  ASSERT_TRUE(reports->WaitFor(
      [](const std::vector<MqttReceived>& m) {
        const auto parsed = Reports(m);
        return !parsed.empty() && At(parsed.back(), "packets", "suppressed", "differential") > 0;
      },
      kWait))
      << DescribeAll(reports->Messages()) << describe();
  {
    const std::vector<nlohmann::json> first = Reports(reports->Messages());
    for (const nlohmann::json& report : first) {
      EXPECT_EQ(Keep(report), "0/1") << report.dump();
      EXPECT_LE(4 * At(report, "packets", "sent", "differential"),
                At(report, "packets", "suppressed", "differential"))
          << report.dump();
      EXPECT_EQ(report.value("sensor", ""), "cam1");
      EXPECT_FALSE(report.value("final", true));
    }
    const nlohmann::json& last = first.back();
    EXPECT_GT(At(last, "packets", "sent", "reference"), 0u) << last.dump();
    EXPECT_EQ(At(last, "packets", "suppressed", "reference"), 0u) << last.dump();
    EXPECT_EQ(At(last, "bytes", "suppressed", "differential"),
              188 * At(last, "packets", "suppressed", "differential"));
    EXPECT_EQ(last["control"].value("messages", 0), 1) << last.dump();
  }
  EXPECT_GT(receiver.bytes(), 0u);

  // 2. A new quality while it runs: differential data flows again.
  PublishQuality(mqtt_port, QualityTopic("cam1"), R"({"keep":"1/1","mode":"frame"})");
  ASSERT_TRUE(reports->WaitFor(
      [](const std::vector<MqttReceived>& m) {
        const auto parsed = Reports(m);
        return !parsed.empty() && Keep(parsed.back()) == "1/1" &&
               At(parsed.back(), "packets", "sent", "differential") > 0;
      },
      kWait))
      << DescribeAll(reports->Messages()) << describe();

  // 3. A bad message is counted and changes nothing.
  PublishQuality(mqtt_port, QualityTopic("cam1"), R"({"keep":"3/2"})");
  ASSERT_TRUE(reports->WaitFor(
      [](const std::vector<MqttReceived>& m) {
        const auto parsed = Reports(m);
        return !parsed.empty() &&
               parsed.back().value("control", nlohmann::json::object()).value("rejected", 0) == 1;
      },
      kWait))
      << DescribeAll(reports->Messages()) << describe();
  EXPECT_EQ(Keep(Reports(reports->Messages()).back()), "1/1");
  EXPECT_TRUE(Contains(sensor->Stderr(), "ignored a quality message"));

  // 4. SIGINT: a clean stop, the summary on stdout, the last report final.
  sensor->Signal(SIGINT);
  const auto exit = sensor->Wait(kWait);
  ASSERT_TRUE(exit.has_value()) << describe();
  EXPECT_EQ(exit->exit_code, 0) << exit->ToString() << describe();
  const std::vector<std::string> lines = SplitLines(sensor->Stdout());
  ASSERT_GE(lines.size(), 3u) << describe();  // interval lines with --json, then the summary
  const auto summary = nlohmann::json::parse(lines.back(), nullptr, false);
  ASSERT_TRUE(summary.is_object()) << lines.back();
  EXPECT_TRUE(summary.value("final", false)) << lines.back();
  EXPECT_EQ(summary.value("send_errors", 1), 0) << lines.back();
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    const auto line = nlohmann::json::parse(lines[i], nullptr, false);
    EXPECT_TRUE(line.is_object() && !line.value("final", true)) << lines[i];
  }
  ASSERT_TRUE(reports->WaitFor(
      [](const std::vector<MqttReceived>& m) {
        const auto parsed = Reports(m);
        return !parsed.empty() && parsed.back().value("final", false);
      },
      kWait))
      << DescribeAll(reports->Messages());
  // What the receiver got is exactly what the sensor says it sent, and less than the stream.
  receiver.Settle();
  const uint64_t sent = At(summary, "bytes", "sent", "total");
  const uint64_t suppressed = At(summary, "bytes", "suppressed", "total");
  EXPECT_EQ(receiver.bytes(), sent);
  EXPECT_GT(suppressed, 0u);
  EXPECT_EQ(summary.value("quality_changes", 0), 2) << lines.back();
  for (const MqttReceived& m : reports->Messages()) {
    EXPECT_FALSE(m.retain) << "reports are not retained";
  }
}

// Sent as fast as possible, one pass: exactly what the sender's own code gives with the retained
// quality from the very first datagram (a quality that came late would change the counts).
TEST_F(SensorAgentTest, TheRetainedQualityHoldsFromTheFirstDatagram) {
  auto daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  PublishQuality(daemon->mqtt_port(), QualityTopic("cam5"), R"({"keep":"1/3","mode":"packet"})");
  UdpReceiver receiver;
  CommandOptions options;
  options.timeout = 60s;
  const CommandResult run = RunCommand(
      CliBinary(),
      {"--server", daemon->http_url(), "sensor", "--ts", File().string(), "--to",
       "127.0.0.1:" + std::to_string(receiver.port()), "--id", "cam5", "--speed", "0"},
      options);
  ASSERT_EQ(run.exit_code(), 0) << run.Describe();
  const auto summary = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_TRUE(summary.is_object()) << run.Describe();
  EXPECT_EQ(Keep(summary), "1/3");

  UdpReceiver reference_receiver;
  fanout::SensorSenderOptions reference;
  reference.ts_file = File();
  reference.destination = HostPort{"127.0.0.1", reference_receiver.port()};
  reference.speed = 0;
  reference.quality = fanout::FullQuality();
  ASSERT_TRUE(fanout::ParseDropMode("packet", &reference.quality).ok());
  ASSERT_TRUE(fanout::ParseKeepFraction("1/3", &reference.quality).ok());
  auto sender = fanout::SensorSender::Create(reference);
  ASSERT_TRUE(sender.has_value()) << sender.error().ToString();
  ASSERT_TRUE((*sender)->Run().ok());
  const fanout::SensorCounters want = (*sender)->counters();
  const char* classes[] = {"unknown", "reference", "differential", "other"};
  for (size_t k = 0; k < EF_CLASS_COUNT; ++k) {
    SCOPED_TRACE(classes[k]);
    EXPECT_EQ(At(summary, "packets", "sent", classes[k]), want.packets_sent[k]);
    EXPECT_EQ(At(summary, "packets", "suppressed", classes[k]), want.packets_suppressed[k]);
  }
  EXPECT_GT(want.packets_suppressed[EF_CLASS_DIFFERENTIAL], 0u);
  receiver.Settle();
  EXPECT_EQ(receiver.bytes(), want.bytes_sent);
}

TEST_F(SensorAgentTest, AGivenBrokerAndTenantAndAWithdrawnQuality) {
  auto daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  const uint16_t mqtt_port = daemon->mqtt_port();
  PublishQuality(mqtt_port, QualityTopic("cam2", "site7"), R"({"keep":0.5,"mode":"packet"})");
  auto reports = SubscribeReports(mqtt_port, ReportTopic("cam2", "site7"));
  ASSERT_NE(reports, nullptr);
  UdpReceiver receiver;
  // No node at --server: --mqtt names the broker.
  auto sensor = StartSensor({"--server", "http://127.0.0.1:1", "sensor", "--ts", File().string(),
                             "--to", "127.0.0.1:" + std::to_string(receiver.port()), "--id",
                             "cam2", "--mqtt", "127.0.0.1:" + std::to_string(mqtt_port),
                             "--tenant", "site7", "--keep", "1/4", "--loop", "--duration", "30",
                             "--report-interval", "0.2"});
  ASSERT_NE(sensor, nullptr);
  ASSERT_TRUE(reports->WaitFor(
      [](const std::vector<MqttReceived>& m) {
        const auto parsed = Reports(m);
        return !parsed.empty() && Keep(parsed.back()) == "1/2" &&
               parsed.back()["quality"].value("mode", "") == "packet";
      },
      kWait))
      << DescribeAll(reports->Messages()) << sensor->Stderr();
  // Clearing the retained quality brings back --keep.
  PublishQuality(mqtt_port, QualityTopic("cam2", "site7"), "");
  ASSERT_TRUE(reports->WaitFor(
      [](const std::vector<MqttReceived>& m) {
        const auto parsed = Reports(m);
        return !parsed.empty() && Keep(parsed.back()) == "1/4" &&
               parsed.back()["quality"].value("mode", "") == "frame";
      },
      kWait))
      << DescribeAll(reports->Messages()) << sensor->Stderr();
  // Without --json, a human line per interval on stderr.
  EXPECT_TRUE(Contains(sensor->Stderr(), "cam2: "));
  EXPECT_TRUE(Contains(sensor->Stderr(), "Mbit/s"));
  sensor->Signal(SIGTERM);
  const auto exit = sensor->Wait(kWait);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 0) << sensor->Stderr();
  const auto summary = nlohmann::json::parse(sensor->Stdout(), nullptr, false);
  ASSERT_TRUE(summary.is_object()) << sensor->Stdout();
  EXPECT_TRUE(summary.value("final", false));
}

TEST_F(SensorAgentTest, WithoutAControlChannelItSendsAtTheGivenQualityAndEnds) {
  UdpReceiver receiver;
  CommandOptions options;
  options.timeout = 60s;
  const CommandResult run = RunCommand(
      CliBinary(),
      {"--server", "http://127.0.0.1:1", "sensor", "--ts", File().string(), "--to",
       "127.0.0.1:" + std::to_string(receiver.port()), "--id", "cam3", "--no-control", "--keep",
       "1/2", "--speed", "0", "--loop", "2"},
      options);
  ASSERT_EQ(run.exit_code(), 0) << run.Describe();
  const auto summary = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_TRUE(summary.is_object()) << run.Describe();
  EXPECT_TRUE(summary.value("final", false));
  EXPECT_EQ(summary.value("passes", 0), 2);
  EXPECT_EQ(Keep(summary), "1/2");
  EXPECT_FALSE(summary.contains("control"));
  const uint64_t sent = At(summary, "bytes", "sent", "total");
  const uint64_t suppressed = At(summary, "bytes", "suppressed", "total");
  EXPECT_EQ(sent + suppressed, 2 * FileBytes());
  EXPECT_GT(suppressed, 0u);
  receiver.Settle();
  EXPECT_EQ(receiver.bytes(), sent);
}

TEST_F(SensorAgentTest, RefusesToStartWithoutWhatItNeeds) {
  const std::string to = "127.0.0.1:9";
  // The node, which names the broker, is not there.
  const CommandResult no_node = RunCommand(
      CliBinary(), {"--server", "http://127.0.0.1:1", "--timeout", "5", "sensor", "--ts",
                    File().string(), "--to", to, "--id", "cam4"});
  EXPECT_EQ(no_node.exit_code(), 2) << no_node.Describe();
  EXPECT_TRUE(Contains(no_node.err, "--no-control")) << no_node.Describe();

  // Bad usage: 64, before anything is sent.
  const std::vector<std::vector<std::string>> bad = {
      {"sensor", "--to", to, "--id", "cam4"},                                  // no --ts
      {"sensor", "--ts", File().string(), "--to", "nowhere", "--id", "cam4"},  // no port
      {"sensor", "--ts", File().string(), "--to", to, "--id", "a/b"},
      {"sensor", "--ts", File().string(), "--to", to, "--id", "cam#"},
      {"sensor", "--ts", File().string(), "--to", to, "--id", "cam4", "--keep", "3/2"},
      {"sensor", "--ts", File().string(), "--to", to, "--id", "cam4", "--mode", "both"},
      {"sensor", "--ts", File().string(), "--to", to, "--id", "cam4", "--loop", "0"},
      {"sensor", "--ts", File().string(), "--to", to, "--id", "cam4", "--speed", "-1"},
      {"sensor", "--ts", dir_->Sub("missing.ts").string(), "--to", to, "--id", "cam4",
       "--no-control"},
  };
  for (const auto& args : bad) {
    const CommandResult run = RunCommand(CliBinary(), args);
    EXPECT_EQ(run.exit_code(), 64) << run.Describe();
    EXPECT_EQ(run.out, "") << run.Describe();
  }
}

}  // namespace
}  // namespace edgeflow::test_support
