// The whole fan-out as deployed, on real packets through network namespaces: edgeflowd in an
// edge namespace (eBPF data path, its broker reachable from the sensor), streams and consumers
// added with the `edgeflow` CLI, and `edgeflow sensor` in a sensor namespace sending an ffmpeg
// camera stream at its real rate while it follows the quality the edge's QoC controller publishes.
//
// Two consumers need 1/2 and 1/4 of the differential pictures. The controller asks the sensor for
// the union, 1/2: the sensor's uplink carries no more, the edge passes all of it to the first
// consumer and half of it to the second, and both streams decode with ffmpeg without an error.
//
// Needs root (namespaces, eBPF) and ffmpeg with libx264; CI runs it as root (`ctest -L netns`).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "netns/fanout_netns.h"
#include "support/child_process.h"
#include "support/command_runner.h"
#include "support/net_namespace.h"
#include "support/temp_dir.h"
#include "ts/ts_analyzer.h"

namespace edgeflow::test_support {
namespace {

using Bytes = std::vector<uint8_t>;
using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr uint16_t kStreamPort = 5000;
constexpr uint16_t kConsumerPort = 6000;
constexpr uint16_t kBrokerPort = 18830;

constexpr char kNet[] = "10.78";
std::string Edge(size_t link) { return EdgeAddress(kNet, link); }
std::string Host(size_t link) { return SpokeAddress(kNet, link); }

Bytes ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class ControlledFanoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!HaveNetAdmin(&why)) {
      GTEST_SKIP() << "the controlled fan-out test needs root with CAP_NET_ADMIN (CI runs it as "
                      "root): "
                   << why;
    }
    file_ = dir_.path() / "camera.ts";
    const CommandResult encoded = EncodeCamera(file_, "2000k");
    ASSERT_EQ(encoded.exit_code(), 0)
        << "ffmpeg with libx264 is needed (scripts/setup installs it): " << encoded.Describe();

    for (auto* ns : {&edge_, &sensor_, &consumers_[0], &consumers_[1]}) {
      auto created = NetNamespace::Create();
      ASSERT_TRUE(created.has_value()) << created.error().ToString();
      *ns = std::move(*created);
    }
    const Status connected =
        ConnectToEdge(*edge_, {sensor_.get(), consumers_[0].get(), consumers_[1].get()}, kNet);
    ASSERT_TRUE(connected.ok()) << connected.ToString();

    // The node, in the edge namespace.
    data_ = dir_.path() / "data";
    auto daemon =
        edge_->Spawn(EDGEFLOWD_PATH,
                     {"--data-dir", data_.string(), "--http-listen", "127.0.0.1:0", "--resp-listen",
                      "127.0.0.1:0", "--mqtt-listen", Edge(0) + ":" + std::to_string(kBrokerPort),
                      "--mqtt-ws-listen", "off", "--fanout-datapath", "ebpf"},
                     ChildOptions{.stderr_path = dir_.path() / "edgeflowd.log"});
    ASSERT_TRUE(daemon.has_value()) << daemon.error().ToString();
    daemon_ = std::move(*daemon);
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    const std::filesystem::path listen_file = data_ / "edgeflowd.listen.json";
    while (!std::filesystem::exists(listen_file) && std::chrono::steady_clock::now() < deadline &&
           daemon_->IsRunning()) {
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(std::filesystem::exists(listen_file)) << DaemonLog();
    std::ifstream in(listen_file);
    server_ = "http://" + Json::parse(in).at("http").get<std::string>();
  }

  void TearDown() override {
    if (daemon_ && daemon_->IsRunning()) {
      daemon_->Signal(SIGTERM);
      EXPECT_TRUE(daemon_->Wait(30s).has_value()) << "edgeflowd did not stop";
    }
  }

  std::string DaemonLog() const {
    std::ifstream in(dir_.path() / "edgeflowd.log");
    std::stringstream text;
    text << in.rdbuf();
    return "edgeflowd's log:\n" + text.str();
  }

  // `edgeflow ARGS...` in the edge namespace, against the node; its stdout.
  std::string Cli(const std::vector<std::string>& args) {
    std::vector<std::string> all = {"--server", server_};
    all.insert(all.end(), args.begin(), args.end());
    auto cli = edge_->Spawn(EDGEFLOW_CLI_PATH, all);
    EXPECT_TRUE(cli.has_value());
    if (!cli.has_value()) return "";
    const auto exit = (*cli)->Wait(60s);
    EXPECT_TRUE(exit.has_value() && exit->exit_code == 0)
        << "edgeflow " << args[0] << " failed: " << (*cli)->Stderr() << "\n"
        << DaemonLog();
    return (*cli)->Stdout();
  }

  TempDir dir_;
  std::filesystem::path file_, data_;
  std::unique_ptr<NetNamespace> edge_, sensor_;
  std::unique_ptr<NetNamespace> consumers_[2];
  std::unique_ptr<ChildProcess> daemon_;
  std::string server_;
};

TEST_F(ControlledFanoutTest, TheSensorSendsOnlyWhatItsConsumersNeed) {
  Cli({"stream", "add", "cam1", "--listen", Edge(0) + ":" + std::to_string(kStreamPort)});
  Cli({"consumer", "add", "cam1", "c1", "--to", Host(1) + ":" + std::to_string(kConsumerPort),
       "--keep", "1/2"});
  Cli({"consumer", "add", "cam1", "c2", "--to", Host(2) + ":" + std::to_string(kConsumerPort),
       "--keep", "1/4"});
  std::vector<std::unique_ptr<ConsumerSocket>> receivers;
  for (auto& consumer : consumers_) {
    auto made = consumer->Run([] { return std::make_unique<ConsumerSocket>(kConsumerPort); });
    ASSERT_TRUE(made.has_value());
    receivers.push_back(std::move(*made));
  }

  // The sensor, at the file's real rate, following the control channel.
  auto sensor = sensor_->Spawn(
      EDGEFLOW_CLI_PATH,
      {"sensor", "--ts", file_.string(), "--to", Edge(0) + ":" + std::to_string(kStreamPort),
       "--id", "cam1", "--mqtt", Edge(0) + ":" + std::to_string(kBrokerPort), "--json"});
  ASSERT_TRUE(sensor.has_value());
  std::vector<Bytes> received(2);
  std::vector<std::thread> draining;
  for (size_t c = 0; c < 2; ++c) {
    draining.emplace_back([&, c] {
      for (const Bytes& datagram : receivers[c]->Drain(1500ms)) {
        received[c].insert(received[c].end(), datagram.begin(), datagram.end());
      }
    });
  }
  const auto sensor_exit = (*sensor)->Wait(60s);
  for (std::thread& t : draining) t.join();
  ASSERT_TRUE(sensor_exit.has_value() && sensor_exit->exit_code == 0)
      << (*sensor)->Stderr() << DaemonLog();

  // The sensor's last report (its final summary, the last line of its output).
  std::string out = (*sensor)->Stdout();
  while (!out.empty() && out.back() == '\n') out.pop_back();
  const Json report = Json::parse(out.substr(out.rfind('\n') + 1));
  ASSERT_EQ(report.at("quality").at("keep"), "1/2") << report.dump(2);
  EXPECT_EQ(report.at("quality").at("mode"), "frame");
  const uint64_t sent_bytes = report.at("bytes").at("sent").at("total").get<uint64_t>();
  EXPECT_EQ(report.at("packets").at("suppressed").at("reference").get<uint64_t>(), 0u);
  const uint64_t suppressed_differential =
      report.at("packets").at("suppressed").at("differential").get<uint64_t>();
  const uint64_t sent_differential =
      report.at("packets").at("sent").at("differential").get<uint64_t>();
  // About half of the differential pictures stayed home (to within a GOP: frame mode cuts
  // whole pictures, non-referenced ones first).
  ts::TsAnalyzer reference;
  const Bytes ts = ReadFile(file_);
  reference.PushAll(ts);
  reference.Finish();
  const uint64_t differential = reference.stats().packets_by_class[2];
  EXPECT_EQ(sent_differential + suppressed_differential, differential);
  EXPECT_GT(suppressed_differential, differential / 4);
  EXPECT_LT(suppressed_differential, differential * 3 / 4);
  EXPECT_LT(sent_bytes, ts.size());

  // The first consumer gets all the sensor sent; the second about half of its differential data.
  EXPECT_EQ(received[0].size(), sent_bytes) << DaemonLog();
  EXPECT_LT(received[1].size(), received[0].size());
  for (size_t c = 0; c < 2; ++c) {
    SCOPED_TRACE("consumer c" + std::to_string(c + 1));
    const std::filesystem::path copy = dir_.path() / ("c" + std::to_string(c + 1) + ".ts");
    std::ofstream(copy, std::ios::binary)
        .write(reinterpret_cast<const char*>(received[c].data()),
               static_cast<std::streamsize>(received[c].size()));
    const CommandResult decoded =
        RunCommand("ffmpeg", {"-v", "error", "-i", copy.string(), "-f", "null", "-"},
                   CommandOptions{.timeout = 120s});
    EXPECT_EQ(decoded.exit_code(), 0) << decoded.Describe();
    EXPECT_EQ(decoded.err, "") << "ffmpeg found errors in what the consumer received";
  }

  // The node's view: the plan, the sensor's report, and the consumers' counters.
  const Json stats = Json::parse(Cli({"stream", "stats", "cam1", "--json"}));
  EXPECT_EQ(stats.at("datapath"), "ebpf");
  EXPECT_EQ(stats.at("sensor").at("keep"), "1/2");
  EXPECT_TRUE(stats.at("sensor").at("last_report").is_object()) << stats.dump(2);
  ASSERT_EQ(stats.at("consumers").size(), 2u);
  EXPECT_EQ(stats.at("consumers")[0].at("residual"), "1/1");
  EXPECT_EQ(stats.at("consumers")[1].at("residual"), "1/2");
  EXPECT_EQ(stats.at("consumers")[0].at("send_errors"), 0);
  EXPECT_EQ(stats.at("ingress").at("malformed"), 0);
}

}  // namespace
}  // namespace edgeflow::test_support
