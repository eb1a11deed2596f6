// The stream fan-out through the real edgeflowd's HTTP API and the real `edgeflow` CLI, on the
// userspace data path (fanout.datapath: userspace) so that it runs anywhere: a stream on a
// loopback port, consumers on loopback UDP sockets, the sensor's quality on its retained control
// topic following the consumers' needs, a hand-made MPEG-TS stream reaching every consumer and
// counted in the stream's statistics; bad requests answered with clear errors while the daemon
// keeps serving; the fan-out's config keys and flags.
//
// Topics and JSON fields are spelled out rather than computed with the product's helpers, so that
// a change of the wire contract fails here. The TS packets come from the tests' own builders
// (unit/ts_test_bytes.h), which share no code with the product.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <initializer_list>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/command_runner.h"
#include "support/daemon_test.h"
#include "support/mqtt_subscriber.h"
#include "support/udp_receiver.h"
#include "unit/ts_test_bytes.h"

namespace edgeflow::test_support {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using ts::test_bytes::Bytes;

constexpr auto kWait = 10s;
constexpr const char* kUserspaceConfig = "fanout:\n  datapath: userspace\n";

std::string QualityTopic(const std::string& stream) {
  return "ef/default/ch/_fanout/" + stream + "/quality";
}
std::string ReportTopic(const std::string& stream) {
  return "ef/default/ch/_fanout/" + stream + "/report";
}

// A UDP port on 127.0.0.1 that was free a moment ago (for the stream's listen address, which the
// daemon binds).
uint16_t FreeUdpPort() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
  }
  ::close(fd);
  return port;
}

// Sends each datagram to 127.0.0.1:port, a little apart so that the receiving socket's buffer
// never matters.
void SendDatagrams(uint16_t port, const std::vector<Bytes>& datagrams) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (const Bytes& d : datagrams) {
    ::sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    std::this_thread::sleep_for(1ms);
  }
  ::close(fd);
}

// A small H.264 transport stream as a sensor sends it: at most 7 TS packets per datagram, a new
// datagram at every picture, with the count of TS packets of each class.
struct HandMadeStream {
  std::vector<Bytes> datagrams;
  uint64_t reference_packets = 0;
  uint64_t differential_packets = 0;
  uint64_t other_packets = 0;
  Bytes Joined() const {
    Bytes out;
    for (const Bytes& d : datagrams) ts::test_bytes::Append(&out, d);
    return out;
  }
};

HandMadeStream MakeStream(int gops, int p_pictures_per_gop) {
  namespace tb = ts::test_bytes;
  constexpr uint16_t kPmtPid = 0x100;
  constexpr uint16_t kVideoPid = 0x101;
  HandMadeStream out;
  tb::StreamBuilder builder;
  size_t first = 0;
  // The packets added since the last unit, in datagrams of at most 7.
  auto close_unit = [&](uint64_t* class_count) {
    const auto& packets = builder.packets();
    *class_count += packets.size() - first;
    while (first < packets.size()) {
      Bytes datagram;
      for (size_t i = 0; i < 7 && first < packets.size(); ++i, ++first) {
        tb::Append(&datagram, packets[first]);
      }
      out.datagrams.push_back(std::move(datagram));
    }
  };
  builder.AddPsi(0, tb::BuildPatSection({{1, kPmtPid}}));
  builder.AddPsi(kPmtPid, tb::BuildPmtSection(1, kVideoPid, {{0x1B, kVideoPid, {}}}));
  close_unit(&out.other_packets);
  uint64_t pts = 90000;
  for (int g = 0; g < gops; ++g) {
    const Bytes idr = tb::Concat({tb::h264::Aud(0), tb::h264::Sps(), tb::h264::Pps(),
                                  tb::h264::Slice(tb::h264::kIdr, 7, 1000)});
    builder.AddPes(kVideoPid, tb::BuildPes(idr, pts), /*random_access=*/true);
    close_unit(&out.reference_packets);
    for (int p = 0; p < p_pictures_per_gop; ++p) {
      pts += 3000;
      const Bytes picture =
          tb::Concat({tb::h264::Aud(1), tb::h264::Slice(tb::h264::kSlice, 5, 400)});
      builder.AddPes(kVideoPid, tb::BuildPes(picture, pts));
      close_unit(&out.differential_packets);
    }
    pts += 3000;
  }
  return out;
}

uint64_t At(const Json& object, std::initializer_list<const char*> path) {
  const Json* at = &object;
  for (const char* key : path) {
    if (!at->is_object() || !at->contains(key)) return ~uint64_t{0};
    at = &(*at)[key];
  }
  return at->is_number_unsigned() ? at->get<uint64_t>() : ~uint64_t{0};
}

// The words of a line (runs of characters other than spaces).
std::vector<std::string> Words(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

// The consumer called `name` in a stream's status, or null.
Json ConsumerIn(const Json& stream, const std::string& name) {
  for (const Json& c : stream.value("consumers", Json::array())) {
    if (c.value("name", "") == name) return c;
  }
  return nullptr;
}

class StreamApiTest : public DaemonTest {
 protected:
  // edgeflowd on the userspace data path, plus `extra_args`.
  void StartNode(std::vector<std::string> extra_args = {}) {
    std::vector<std::string> args = {"--config",
                                     WriteFile("edgeflowd.yaml", kUserspaceConfig).string()};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    daemon_ = StartDaemon(args);
    ASSERT_NE(daemon_, nullptr);
    http_ = Http(*daemon_);
  }

  Result<HttpResponse> Send(std::string_view method, const std::string& target,
                            const std::string& body = "") {
    return http_->Request(method, target, body, {{"Content-Type", "application/json"}});
  }

  // POST /v1/streams for a stream on 127.0.0.1 at a free port; returns the port (0 on failure,
  // with the test failed).
  uint16_t AddStream(const std::string& name, const std::string& codec = "auto") {
    const uint16_t port = FreeUdpPort();
    const Json body = {
        {"name", name}, {"listen", "127.0.0.1:" + std::to_string(port)}, {"codec", codec}};
    auto res = Send("POST", "/v1/streams", body.dump());
    if (!res) {
      ADD_FAILURE() << res.error().ToString();
      return 0;
    }
    if (res->status != 201) {
      ADD_FAILURE() << res->Describe();
      return 0;
    }
    return port;
  }

  Json GetStream(const std::string& name) {
    auto res = http_->Get("/v1/streams/" + name);
    if (!res || res->status != 200) {
      ADD_FAILURE() << (res ? res->Describe() : res.error().ToString());
      return nullptr;
    }
    return res->Json();
  }

  CommandResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", daemon_->http_url()});
    return RunCommand(CliBinary(), args, {.timeout = std::chrono::seconds(20)});
  }

  std::unique_ptr<MqttSubscriber> SubscribeQuality(const std::string& stream) {
    MqttSubscriberOptions options;
    options.broker = daemon_->listen().mqtt;
    options.filters = {QualityTopic(stream)};
    auto subscriber = MqttSubscriber::Start(options);
    if (!subscriber) {
      ADD_FAILURE() << subscriber.error().ToString();
      return nullptr;
    }
    return std::move(*subscriber);
  }

  // Publishes a sensor's report (with the real mosquitto_pub) saying that it applies `keep`, and
  // waits until the stream's status shows it. The edge's data path then drops only need / keep
  // of what arrives; until a sensor reports, it takes the sensor for one that sends everything.
  void ReportSensorQuality(const std::string& stream, const std::string& keep) {
    const Json report = {
        {"sensor", stream}, {"final", false}, {"quality", {{"keep", keep}, {"mode", "frame"}}}};
    const CommandResult sent = RunCommand(
        "mosquitto_pub", {"-V", "5", "-h", "127.0.0.1", "-p", std::to_string(daemon_->mqtt_port()),
                          "-q", "1", "-t", ReportTopic(stream), "-m", report.dump()});
    ASSERT_EQ(sent.exit_code(), 0) << sent.Describe();
    Json status;
    ASSERT_TRUE(PollUntil(
        [&] {
          status = GetStream(stream);
          return status["sensor"]["last_report"] == report;
        },
        kWait))
        << status.dump();
    EXPECT_GT(At(status, {"sensor", "last_report_ms"}), 0u) << status.dump();
  }

  // Whether the newest message on the quality topic comes to be {"keep": keep, "mode": mode}.
  static bool QualityBecomes(const MqttSubscriber& subscriber, const std::string& keep,
                             const std::string& mode) {
    return subscriber.WaitFor(
        [&](const std::vector<MqttReceived>& messages) {
          if (messages.empty()) return false;
          const Json quality = Json::parse(messages.back().payload, nullptr, false);
          return quality.is_object() && quality.value("keep", "") == keep &&
                 quality.value("mode", "") == mode;
        },
        kWait);
  }

  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<HttpClient> http_;
};

TEST_F(StreamApiTest, ConsumersGetTheStreamAndTheSensorIsAskedForTheUnionOfTheirNeeds) {
  ASSERT_NO_FATAL_FAILURE(StartNode());
  const uint16_t port = AddStream("cam1", "h264");
  ASSERT_NE(port, 0);
  const Json added = GetStream("cam1");
  EXPECT_EQ(added.value("datapath", ""), "userspace") << added.dump();
  EXPECT_EQ(added.value("listen", ""), "127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(added.value("codec", ""), "h264");
  EXPECT_TRUE(added["sensor"]["last_report"].is_null()) << added.dump();

  auto quality = SubscribeQuality("cam1");
  ASSERT_NE(quality, nullptr);
  UdpReceiver first, second;
  ASSERT_NE(first.port(), 0);
  ASSERT_NE(second.port(), 0);

  EF_ASSERT_OK_AND_ASSIGN(auto add_first,
                          Send("POST", "/v1/streams/cam1/consumers",
                               Json{{"name", "full"},
                                    {"address", "127.0.0.1:" + std::to_string(first.port())},
                                    {"keep", "1"}}
                                   .dump()));
  ASSERT_EQ(add_first.status, 201) << add_first.Describe();
  EXPECT_EQ(add_first.Json().value("keep", ""), "1/1") << add_first.body;
  EXPECT_EQ(add_first.Json().value("mode", ""), "frame") << add_first.body;  // the default
  EXPECT_EQ(add_first.Header("Location"), "/v1/streams/cam1/consumers/full");
  EF_ASSERT_OK_AND_ASSIGN(auto add_second,
                          Send("POST", "/v1/streams/cam1/consumers",
                               Json{{"name", "half"},
                                    {"address", "127.0.0.1:" + std::to_string(second.port())},
                                    {"keep", "1/2"}}
                                   .dump()));
  ASSERT_EQ(add_second.status, 201) << add_second.Describe();
  // The sensor sends everything the first needs; the edge halves the second's share.
  EXPECT_EQ(add_second.Json().value("residual", ""), "1/2") << add_second.body;
  EXPECT_TRUE(QualityBecomes(*quality, "1/1", "frame")) << DescribeAll(quality->Messages());

  // A new subscriber gets the quality at once: it is retained.
  auto late = SubscribeQuality("cam1");
  ASSERT_NE(late, nullptr);
  ASSERT_TRUE(late->WaitForCount(1, kWait));
  EXPECT_TRUE(late->Messages().front().retain);
  EXPECT_EQ(Json::parse(late->Messages().front().payload, nullptr, false),
            Json({{"keep", "1/1"}, {"mode", "frame"}}))
      << late->Messages().front().payload;

  // Both need half: the sensor sends half and the edge drops nothing more.
  EF_ASSERT_OK_AND_ASSIGN(auto second_need, Send("PUT", "/v1/streams/cam1/consumers/half",
                                                 R"({"keep": "1/2", "mode": "packet"})"));
  ASSERT_EQ(second_need.status, 200) << second_need.Describe();
  EXPECT_EQ(second_need.Json().value("mode", ""), "packet") << second_need.body;
  EF_ASSERT_OK_AND_ASSIGN(auto first_need,
                          Send("PUT", "/v1/streams/cam1/consumers/full", R"({"keep": "0.5"})"));
  ASSERT_EQ(first_need.status, 200) << first_need.Describe();
  EXPECT_EQ(first_need.Json().value("keep", ""), "1/2") << first_need.body;
  EXPECT_EQ(first_need.Json().value("mode", ""), "frame") << "a PUT without mode keeps it";
  EXPECT_EQ(first_need.Json().value("residual", ""), "1/1") << first_need.body;
  // One consumer is in frame mode, so the sensor cuts whole pictures.
  EXPECT_TRUE(QualityBecomes(*quality, "1/2", "frame")) << DescribeAll(quality->Messages());
  Json stream = GetStream("cam1");
  EXPECT_EQ(stream["sensor"].value("keep", ""), "1/2") << stream.dump();
  EXPECT_EQ(stream["sensor"].value("mode", ""), "frame") << stream.dump();
  EXPECT_EQ(ConsumerIn(stream, "full").value("residual", ""), "1/1") << stream.dump();
  EXPECT_EQ(ConsumerIn(stream, "half").value("residual", ""), "1/1") << stream.dump();
  EF_ASSERT_OK_AND_ASSIGN(auto one, http_->Get("/v1/streams/cam1/consumers/half"));
  ASSERT_EQ(one.status, 200) << one.Describe();
  EXPECT_EQ(one.Json().value("keep", ""), "1/2");

  // The sensor says it follows, so what arrives is already what both need: it goes whole to both
  // (the stream here is not cut at all, which the edge cannot tell).
  ASSERT_NO_FATAL_FAILURE(ReportSensorQuality("cam1", "1/2"));
  const HandMadeStream ts = MakeStream(/*gops=*/2, /*p_pictures_per_gop=*/4);
  ASSERT_GT(ts.differential_packets, 0u);
  SendDatagrams(port, ts.datagrams);
  const size_t count = ts.datagrams.size();
  ASSERT_TRUE(PollUntil([&] { return first.Received().size() >= count; }, kWait))
      << first.Received().size() << " of " << count;
  ASSERT_TRUE(PollUntil([&] { return second.Received().size() >= count; }, kWait))
      << second.Received().size() << " of " << count;
  EXPECT_EQ(UdpReceiver::Joined(first.Settle()), ts.Joined());
  EXPECT_EQ(UdpReceiver::Joined(second.Settle()), ts.Joined());

  ASSERT_TRUE(PollUntil(
      [&] {
        stream = GetStream("cam1");
        return At(stream, {"ingress", "datagrams"}) == count &&
               At(ConsumerIn(stream, "half"), {"datagrams_sent"}) == count;
      },
      kWait))
      << stream.dump();
  EXPECT_GT(At(stream, {"ingress", "bytes"}), 0u);
  for (const char* name : {"full", "half"}) {
    const Json c = ConsumerIn(stream, name);
    EXPECT_EQ(At(c, {"datagrams_sent"}), count) << c.dump();
    EXPECT_EQ(At(c, {"datagrams_dropped"}), 0u) << c.dump();
    EXPECT_EQ(At(c, {"sent", "packets", "reference"}), ts.reference_packets) << c.dump();
    EXPECT_EQ(At(c, {"sent", "packets", "differential"}), ts.differential_packets) << c.dump();
    EXPECT_EQ(At(c, {"sent", "packets", "other"}), ts.other_packets) << c.dump();
    EXPECT_EQ(At(c, {"sent", "bytes", "reference"}), ts.reference_packets * 188) << c.dump();
    EXPECT_EQ(At(c, {"dropped", "packets", "differential"}), 0u) << c.dump();
    EXPECT_EQ(At(c, {"payload_bytes_sent"}), ts.Joined().size()) << c.dump();
    EXPECT_EQ(At(c, {"send_errors"}), 0u) << c.dump();
  }

  // The list has it too; removing a consumer and the stream empties it.
  EF_ASSERT_OK_AND_ASSIGN(auto list, http_->Get("/v1/streams"));
  ASSERT_EQ(list.status, 200) << list.Describe();
  EXPECT_EQ(list.Json().value("datapath", ""), "userspace");
  ASSERT_EQ(list.Json()["streams"].size(), 1u) << list.body;
  EF_ASSERT_OK_AND_ASSIGN(auto rm_consumer, Send("DELETE", "/v1/streams/cam1/consumers/half"));
  EXPECT_EQ(rm_consumer.status, 200) << rm_consumer.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto gone_consumer, http_->Get("/v1/streams/cam1/consumers/half"));
  EXPECT_EQ(gone_consumer.status, 404) << gone_consumer.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto rm_stream, Send("DELETE", "/v1/streams/cam1"));
  EXPECT_EQ(rm_stream.status, 200) << rm_stream.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto empty, http_->Get("/v1/streams"));
  EXPECT_TRUE(empty.Json()["streams"].empty()) << empty.body;
}

TEST_F(StreamApiTest, CliAddsListsShowsAndChangesStreamsAndConsumers) {
  ASSERT_NO_FATAL_FAILURE(StartNode());
  const std::string listen = "127.0.0.1:" + std::to_string(FreeUdpPort());
  auto add = Cli({"stream", "add", "cam2", "--listen", listen, "--codec", "h264"});
  ASSERT_EQ(add.exit_code(), 0) << add.Describe();
  EXPECT_TRUE(Contains(add.out, "added stream cam2 on " + listen));
  UdpReceiver a, b;
  auto consumer_a = Cli(
      {"consumer", "add", "cam2", "a", "--to", "127.0.0.1:" + std::to_string(a.port()), "--json"});
  ASSERT_EQ(consumer_a.exit_code(), 0) << consumer_a.Describe();
  const Json a_status = Json::parse(consumer_a.out, nullptr, false);
  EXPECT_EQ(a_status.value("keep", ""), "1/1") << consumer_a.out;
  EXPECT_EQ(a_status.value("mode", ""), "frame") << consumer_a.out;
  auto consumer_b =
      Cli({"consumer", "add", "cam2", "b", "--to", "127.0.0.1:" + std::to_string(b.port()),
           "--keep", "1/4", "--mode", "packet"});
  ASSERT_EQ(consumer_b.exit_code(), 0) << consumer_b.Describe();
  EXPECT_TRUE(Contains(consumer_b.out, "keep 1/4 packet"));

  auto ls = Cli({"stream", "ls"});
  ASSERT_EQ(ls.exit_code(), 0) << ls.Describe();
  const auto lines = SplitLines(ls.out);
  ASSERT_EQ(lines.size(), 2u) << ls.out;
  EXPECT_TRUE(lines[0].starts_with("STREAM")) << ls.out;
  EXPECT_TRUE(lines[1].starts_with("cam2")) << ls.out;
  EXPECT_TRUE(Contains(lines[1], listen));
  EXPECT_TRUE(Contains(lines[1], "userspace"));
  EXPECT_TRUE(Contains(lines[1], "1/1 frame"));
  auto ls_json = Cli({"stream", "ls", "--json"});
  ASSERT_EQ(ls_json.exit_code(), 0) << ls_json.Describe();
  EXPECT_EQ(Json::parse(ls_json.out, nullptr, false)["streams"][0].value("name", ""), "cam2")
      << ls_json.out;

  // The first's need goes to 1/2: the sensor is asked for 1/2, b's residual becomes 1/2.
  auto policy = Cli({"policy", "set", "cam2", "a", "--keep", "1/2"});
  ASSERT_EQ(policy.exit_code(), 0) << policy.Describe();
  EXPECT_TRUE(Contains(policy.out, "keep 1/2 frame"));
  EXPECT_TRUE(Contains(policy.out, "the sensor is asked for 1/2 frame"));
  ASSERT_NO_FATAL_FAILURE(ReportSensorQuality("cam2", "1/2"));
  auto stats_json = Cli({"stream", "stats", "cam2", "--json"});
  ASSERT_EQ(stats_json.exit_code(), 0) << stats_json.Describe();
  const Json stats = Json::parse(stats_json.out, nullptr, false);
  ASSERT_TRUE(stats.is_object()) << stats_json.out;
  EXPECT_EQ(stats["sensor"].value("keep", ""), "1/2") << stats_json.out;
  EXPECT_EQ(ConsumerIn(stats, "a").value("residual", ""), "1/1") << stats_json.out;
  EXPECT_EQ(ConsumerIn(stats, "b").value("residual", ""), "1/2") << stats_json.out;
  EXPECT_EQ(ConsumerIn(stats, "b").value("mode", ""), "packet") << stats_json.out;

  // Something to count, then the human form: the stream's line and a table row per consumer.
  const HandMadeStream ts = MakeStream(1, 2);
  SendDatagrams(static_cast<uint16_t>(std::stoi(listen.substr(listen.rfind(':') + 1))),
                ts.datagrams);
  ASSERT_TRUE(PollUntil([&] { return a.Received().size() >= ts.datagrams.size(); }, kWait));
  ASSERT_TRUE(PollUntil(
      [&] {
        return At(ConsumerIn(GetStream("cam2"), "a"), {"datagrams_sent"}) == ts.datagrams.size();
      },
      kWait));
  auto human = Cli({"stream", "stats", "cam2"});
  ASSERT_EQ(human.exit_code(), 0) << human.Describe();
  const auto rows = SplitLines(human.out);
  ASSERT_EQ(rows.size(), 4u) << human.out;
  EXPECT_TRUE(Contains(rows[0], "datapath userspace"));
  EXPECT_TRUE(Contains(rows[0], "sensor 1/2 frame"));
  EXPECT_TRUE(Contains(rows[0], "ingress " + std::to_string(ts.datagrams.size()) + " datagrams"));
  EXPECT_TRUE(Contains(rows[0], "reference " + std::to_string(ts.reference_packets)));
  EXPECT_TRUE(rows[1].starts_with("CONSUMER")) << human.out;
  // Aligned: every row of the table is as long as the header (the last column is right-aligned).
  EXPECT_EQ(rows[2].size(), rows[1].size()) << human.out;
  EXPECT_EQ(rows[3].size(), rows[1].size()) << human.out;
  // CONSUMER NEED RESIDUAL MODE SENT-REF SENT-DIFF DROP-REF DROP-DIFF DGRAMS-SENT DGRAMS-DROP
  // ERRORS
  const std::string n = std::to_string(ts.datagrams.size());
  const std::string ref = std::to_string(ts.reference_packets);
  const std::string diff = std::to_string(ts.differential_packets);
  EXPECT_EQ(Words(rows[2]), (std::vector<std::string>{"a", "1/2", "1/1", "frame", ref, diff, "0",
                                                      "0", n, "0", "0"}))
      << human.out;
  ASSERT_EQ(Words(rows[3]).size(), 11u) << human.out;
  EXPECT_EQ(Words(rows[3])[0], "b") << human.out;
  EXPECT_EQ(Words(rows[3])[3], "packet") << human.out;

  // -w refreshes until stopped; with --json one object per line.
  auto watched = RunCommand(
      CliBinary(),
      {"--server", daemon_->http_url(), "stream", "stats", "cam2", "--json", "-w", "0.2"},
      {.timeout = std::chrono::milliseconds(1500)});
  EXPECT_TRUE(watched.timed_out) << watched.Describe();
  const auto screens = SplitLines(watched.out);
  EXPECT_GE(screens.size(), 2u) << watched.out;
  for (const std::string& line : screens) {
    EXPECT_TRUE(Json::parse(line, nullptr, false).is_object()) << line;
  }

  // Refusals: exit 1 with the node's message; bad usage: 64 before anything is sent.
  auto duplicate = Cli({"consumer", "add", "cam2", "a", "--to", "127.0.0.1:9"});
  EXPECT_EQ(duplicate.exit_code(), 1) << duplicate.Describe();
  auto unknown = Cli({"stream", "stats", "nosuch"});
  EXPECT_EQ(unknown.exit_code(), 1) << unknown.Describe();
  EXPECT_TRUE(Contains(unknown.err, "nosuch"));
  auto bad_keep = Cli({"policy", "set", "cam2", "a", "--keep", "3/2"});
  EXPECT_EQ(bad_keep.exit_code(), 64) << bad_keep.Describe();
  EXPECT_TRUE(Contains(bad_keep.err, "greater than 1"));
  auto bad_to = Cli({"consumer", "add", "cam2", "c", "--to", "somewhere"});
  EXPECT_EQ(bad_to.exit_code(), 64) << bad_to.Describe();
  auto nothing = Cli({"policy", "set", "cam2", "a"});
  EXPECT_EQ(nothing.exit_code(), 64) << nothing.Describe();

  auto rm_consumer = Cli({"consumer", "rm", "cam2", "b"});
  EXPECT_EQ(rm_consumer.exit_code(), 0) << rm_consumer.Describe();
  auto rm_again = Cli({"consumer", "rm", "cam2", "b"});
  EXPECT_EQ(rm_again.exit_code(), 1) << rm_again.Describe();
  auto rm_stream = Cli({"stream", "rm", "cam2"});
  EXPECT_EQ(rm_stream.exit_code(), 0) << rm_stream.Describe();
  auto empty = Cli({"stream", "ls"});
  EXPECT_EQ(SplitLines(empty.out).size(), 1u) << empty.out;
}

TEST_F(StreamApiTest, BadRequestsGetClearErrorsAndTheDaemonKeepsServing) {
  ASSERT_NO_FATAL_FAILURE(StartNode());
  const uint16_t port = AddStream("cam3");
  ASSERT_NE(port, 0);
  struct Bad {
    std::string method;
    std::string target;
    std::string body;
    int status;
    std::string code;
    std::string message_part;
  };
  const std::string consumers = "/v1/streams/cam3/consumers";
  const std::vector<Bad> cases = {
      {"POST", "/v1/streams", "not json", 400, "INVALID_ARGUMENT", "not JSON"},
      {"POST", "/v1/streams", "", 400, "INVALID_ARGUMENT", "not JSON"},
      {"POST", "/v1/streams", "[1, 2]", 400, "INVALID_ARGUMENT", "JSON object"},
      {"POST", "/v1/streams", R"({"listen": "127.0.0.1:5"})", 400, "INVALID_ARGUMENT",
       "missing field \"name\""},
      {"POST", "/v1/streams", R"({"name": 7, "listen": "127.0.0.1:5"})", 400, "INVALID_ARGUMENT",
       "\"name\" must be a string"},
      {"POST", "/v1/streams", R"({"name": "x", "listen": "127.0.0.1:5", "lsten": 1})", 400,
       "INVALID_ARGUMENT", "unknown field \"lsten\""},
      {"POST", "/v1/streams", R"({"name": "x", "listen": "camera.local:5"})", 400,
       "INVALID_ARGUMENT", "not an IPv4 address"},
      {"POST", "/v1/streams", R"({"name": "x", "listen": "127.0.0.1"})", 400, "INVALID_ARGUMENT",
       "listen"},
      {"POST", "/v1/streams", R"({"name": "x", "listen": "127.0.0.1:5", "codec": "vp9"})", 400,
       "INVALID_ARGUMENT", "codec"},
      {"POST", "/v1/streams", R"({"name": "a/b", "listen": "127.0.0.1:5"})", 400,
       "INVALID_ARGUMENT", "name"},
      {"POST", "/v1/streams", R"({"name": ")" + std::string(100000, 'n') + R"(", "listen": "x"})",
       413, "RESOURCE_EXHAUSTED", "too large"},
      {"POST", "/v1/streams", R"({"name": ")" + std::string(5000, 'n') + R"(", "listen": "x"})",
       400, "INVALID_ARGUMENT", "too long"},
      // Deeply nested, within the size limit.
      {"POST", "/v1/streams", std::string(8000, '[') + std::string(8000, ']'), 400,
       "INVALID_ARGUMENT", "JSON object"},
      {"POST", "/v1/streams",
       R"({"name": "cam3", "listen": "127.0.0.1:)" + std::to_string(FreeUdpPort()) + R"("})", 409,
       "ALREADY_EXISTS", "cam3"},
      {"POST", consumers, R"({"name": "c", "address": "127.0.0.1:9", "keep": "3/2"})", 400,
       "INVALID_ARGUMENT", "3/2"},
      {"POST", consumers, R"({"name": "c", "address": "127.0.0.1:9", "keep": 0.5})", 400,
       "INVALID_ARGUMENT", "\"keep\" must be a string"},
      {"POST", consumers, R"({"name": "c", "address": "127.0.0.1:9", "mode": "fast"})", 400,
       "INVALID_ARGUMENT", "mode"},
      {"POST", consumers, R"({"name": "c", "address": "127.0.0.1:9", "mac": "aa:bb"})", 400,
       "INVALID_ARGUMENT", "Ethernet address"},
      {"POST", consumers, R"({"name": "c", "address": "[::1]:9"})", 400, "INVALID_ARGUMENT",
       "IPv4"},
      {"POST", consumers, R"({"name": "c"})", 400, "INVALID_ARGUMENT", "missing field \"address\""},
      {"POST", "/v1/streams/nosuch/consumers", R"({"name": "c", "address": "127.0.0.1:9"})", 404,
       "NOT_FOUND", "nosuch"},
      {"PUT", "/v1/streams/cam3/consumers/nosuch", R"({"keep": "1/2"})", 404, "NOT_FOUND",
       "nosuch"},
      {"PUT", "/v1/streams/cam3/consumers/nosuch", R"({})", 400, "INVALID_ARGUMENT",
       "nothing to change"},
      {"GET", "/v1/streams/nosuch", "", 404, "NOT_FOUND", "nosuch"},
      {"DELETE", "/v1/streams/nosuch", "", 404, "NOT_FOUND", "nosuch"},
      {"DELETE", "/v1/streams/cam3/consumers/nosuch", "", 404, "NOT_FOUND", "nosuch"},
      {"PATCH", "/v1/streams/cam3", "", 405, "METHOD_NOT_ALLOWED", "GET, HEAD, DELETE"},
      {"GET", "/v1/streams/cam3/bogus", "", 404, "NOT_FOUND", "/v1/streams"},
  };
  for (const Bad& c : cases) {
    SCOPED_TRACE(c.method + " " + c.target + " " + c.body.substr(0, 80));
    auto res = Send(c.method, c.target, c.body);
    if (!res) {
      // A 413 may close the connection before the whole body is sent.
      http_ = Http(*daemon_);
      ASSERT_EQ(c.status, 413) << res.error().ToString();
      continue;
    }
    EXPECT_EQ(res->status, c.status) << res->Describe();
    EXPECT_EQ(res->ErrorField("code"), c.code) << res->Describe();
    EXPECT_TRUE(Contains(res->ErrorField("message"), c.message_part)) << res->Describe();
    if (res->Header("Connection") == "close") http_ = Http(*daemon_);
  }

  // Still serving, and nothing of the above was half-done.
  EF_ASSERT_OK_AND_ASSIGN(auto health, http_->Get("/healthz"));
  EXPECT_EQ(health.status, 200);
  const Json stream = GetStream("cam3");
  EXPECT_TRUE(stream["consumers"].empty()) << stream.dump();
  EF_ASSERT_OK_AND_ASSIGN(auto list, http_->Get("/v1/streams"));
  EXPECT_EQ(list.Json()["streams"].size(), 1u) << list.body;
  EF_ASSERT_OK_AND_ASSIGN(auto good,
                          Send("POST", consumers, R"({"name": "c", "address": "127.0.0.1:9"})"));
  EXPECT_EQ(good.status, 201) << good.Describe();
  // The same name twice is refused.
  EF_ASSERT_OK_AND_ASSIGN(auto again,
                          Send("POST", consumers, R"({"name": "c", "address": "127.0.0.1:10"})"));
  EXPECT_EQ(again.status, 409) << again.Describe();
  EXPECT_TRUE(daemon_->IsRunning());
}

TEST_F(StreamApiTest, StreamsAndConsumersSurviveARestart) {
  ASSERT_NO_FATAL_FAILURE(StartNode());
  const uint16_t port = AddStream("cam4");
  ASSERT_NE(port, 0);
  EF_ASSERT_OK_AND_ASSIGN(
      auto added,
      Send("POST", "/v1/streams/cam4/consumers",
           R"({"name": "c", "address": "127.0.0.1:9", "keep": "1/3", "mode": "packet"})"));
  ASSERT_EQ(added.status, 201) << added.Describe();
  http_.reset();
  EXPECT_EQ(daemon_->Stop().exit_code, 0);
  daemon_.reset();

  ASSERT_NO_FATAL_FAILURE(StartNode());
  const Json stream = GetStream("cam4");
  EXPECT_EQ(stream.value("listen", ""), "127.0.0.1:" + std::to_string(port)) << stream.dump();
  const Json c = ConsumerIn(stream, "c");
  EXPECT_EQ(c.value("keep", ""), "1/3") << stream.dump();
  EXPECT_EQ(c.value("mode", ""), "packet") << stream.dump();
  EXPECT_EQ(stream["sensor"].value("keep", ""), "1/3") << stream.dump();
}

TEST_F(StreamApiTest, FanoutConfigKeysAndFlags) {
  // Off: the routes answer 503 and the node says so.
  auto off = StartDaemon({"--no-fanout"}, "off");
  ASSERT_NE(off, nullptr);
  auto off_http = Http(*off);
  EF_ASSERT_OK_AND_ASSIGN(auto refused, off_http->Get("/v1/streams"));
  EXPECT_EQ(refused.status, 503) << refused.Describe();
  EXPECT_TRUE(Contains(refused.ErrorField("message"), "fanout.enabled"));
  EF_ASSERT_OK_AND_ASSIGN(auto off_node, off_http->Get("/v1/node"));
  EXPECT_EQ(off_node.Json()["fanout"], Json({{"enabled", false}, {"datapath", nullptr}}))
      << off_node.body;
  auto off_cli = RunCommand(CliBinary(), {"--server", off->http_url(), "stream", "ls"});
  EXPECT_EQ(off_cli.exit_code(), 2) << off_cli.Describe();  // 503: unavailable
  off_http.reset();
  off->Stop();

  // The default, auto, starts whoever runs it: eBPF as root, the userspace replicator otherwise.
  auto automatic = StartDaemon({}, "auto");
  ASSERT_NE(automatic, nullptr);
  auto auto_http = Http(*automatic);
  EF_ASSERT_OK_AND_ASSIGN(auto auto_node, auto_http->Get("/v1/node"));
  EXPECT_EQ(auto_node.Json()["fanout"]["datapath"], ::geteuid() == 0 ? "ebpf" : "userspace")
      << auto_node.body;
  auto_http.reset();
  automatic->Stop();

  // Bad values are configuration errors (exit 2) that name the key or flag.
  CommandOptions options;
  options.timeout = std::chrono::seconds(20);
  const std::string data = temp_.Sub("bad").string();
  auto bad_flag =
      RunCommand(DaemonBinary(), {"--data-dir", data, "--fanout-datapath", "xdp"}, options);
  EXPECT_EQ(bad_flag.exit_code(), 2) << bad_flag.Describe();
  EXPECT_TRUE(Contains(bad_flag.err, "--fanout-datapath"));
  auto bad_key = RunCommand(
      DaemonBinary(),
      {"--data-dir", data, "--config", WriteFile("bad.yaml", "fanout: {datapath: xdp}\n").string()},
      options);
  EXPECT_EQ(bad_key.exit_code(), 2) << bad_key.Describe();
  EXPECT_TRUE(Contains(bad_key.err, "fanout.datapath"));
  auto unknown_key = RunCommand(
      DaemonBinary(),
      {"--data-dir", data, "--config", WriteFile("typo.yaml", "fanout: {enable: true}\n").string()},
      options);
  EXPECT_EQ(unknown_key.exit_code(), 2) << unknown_key.Describe();
  EXPECT_TRUE(Contains(unknown_key.err, "fanout.enable"));

  // ebpf without the privileges to load it: the node refuses to start, and says why.
  if (::geteuid() != 0) {
    auto ebpf = RunCommand(
        DaemonBinary(),
        {"--data-dir", data, "--fanout-datapath", "ebpf", "--http-listen", "127.0.0.1:0",
         "--resp-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--mqtt-ws-listen", "off"},
        options);
    EXPECT_EQ(ebpf.exit_code(), 1) << ebpf.Describe();
    EXPECT_TRUE(Contains(ebpf.err, "stream fan-out"));
  }
}

}  // namespace
}  // namespace edgeflow::test_support
