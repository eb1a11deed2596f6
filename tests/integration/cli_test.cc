// The `edgeflow` command-line client against a real edgeflowd.
#include <signal.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/host_port.h"
#include "support/command_runner.h"
#include "support/daemon_test.h"

namespace edgeflow::test_support {
namespace {

class CliTest : public DaemonTest {
 protected:
  void SetUp() override {
    daemon_ = StartDaemon();
    ASSERT_NE(daemon_, nullptr);
    http_ = Http(*daemon_);
  }

  std::vector<std::string> WithServer(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--server", daemon_->http_url()});
    return args;
  }

  CommandResult Cli(std::vector<std::string> args, const std::string& stdin_data = "") {
    CommandOptions options;
    options.stdin_data = stdin_data;
    options.timeout = std::chrono::seconds(20);
    return RunCommand(CliBinary(), WithServer(std::move(args)), options);
  }

 public:
  // For helpers outside the fixture.
  CommandResult RunCli(std::vector<std::string> args) { return Cli(std::move(args)); }

 protected:
  std::unique_ptr<ChildProcess> StartCli(std::vector<std::string> args) {
    auto child = ChildProcess::Spawn(CliBinary(), WithServer(std::move(args)));
    EXPECT_TRUE(child.has_value()) << child.error().ToString();
    return child.has_value() ? std::move(*child) : nullptr;
  }

  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<HttpClient> http_;
};

// The first column of each line of a table.
std::vector<std::string> FirstColumn(const std::string& text) {
  std::vector<std::string> words;
  for (const auto& line : SplitLines(text)) words.push_back(line.substr(0, line.find(' ')));
  return words;
}

TEST_F(CliTest, HealthAndNode) {
  auto health = Cli({"health"});
  EXPECT_EQ(health.exit_code(), 0) << health.Describe();
  EXPECT_TRUE(Contains(health.out, "ok")) << health.Describe();

  auto node = Cli({"node"});
  EXPECT_EQ(node.exit_code(), 0) << node.Describe();
  EXPECT_TRUE(Contains(node.out, daemon_->listen().node_id)) << node.Describe();
}

TEST_F(CliTest, PutGetDelete) {
  auto put = Cli({"kv", "put", "app", "greeting", "hello there"});
  ASSERT_EQ(put.exit_code(), 0) << put.Describe();
  auto put_json = nlohmann::json::parse(put.out, nullptr, false);
  ASSERT_TRUE(put_json.is_object()) << put.out;
  EXPECT_TRUE(put_json.contains("version")) << put.out;
  EXPECT_GT(put_json.value("seq", uint64_t{0}), 0u) << put.out;

  auto get = Cli({"kv", "get", "app", "greeting"});
  EXPECT_EQ(get.exit_code(), 0) << get.Describe();
  EXPECT_EQ(get.out, "hello there") << "get prints the raw value, nothing added";

  EF_ASSERT_OK_AND_ASSIGN(auto http_get, http_->Get("/v1/kv/app/greeting"));
  EXPECT_EQ(http_get.body, "hello there");

  auto meta = Cli({"kv", "get", "app", "greeting", "--meta"});
  EXPECT_EQ(meta.exit_code(), 0) << meta.Describe();
  auto meta_json = nlohmann::json::parse(meta.out, nullptr, false);
  ASSERT_TRUE(meta_json.is_object()) << meta.out;
  EXPECT_EQ(meta_json.value("version", ""), put_json.value("version", "x"));
  EXPECT_EQ(meta_json.value("size", uint64_t{0}), 11u);

  // Keys with '/' and spaces go through percent-encoding.
  auto odd = Cli({"kv", "put", "app", "dir/sub key", "v"});
  EXPECT_EQ(odd.exit_code(), 0) << odd.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto odd_get, http_->Get("/v1/kv/app/dir/sub%20key"));
  EXPECT_EQ(odd_get.status, 200) << odd_get.Describe();

  auto del = Cli({"kv", "del", "app", "greeting"});
  EXPECT_EQ(del.exit_code(), 0) << del.Describe();
  auto gone = Cli({"kv", "get", "app", "greeting"});
  EXPECT_EQ(gone.exit_code(), 1) << gone.Describe();
  EXPECT_TRUE(Contains(gone.err, "not found")) << gone.Describe();
  EXPECT_EQ(gone.out, "");
  auto del_again = Cli({"kv", "del", "app", "greeting"});
  EXPECT_EQ(del_again.exit_code(), 1) << del_again.Describe();
}

TEST_F(CliTest, PutFromStdinAndFile) {
  const std::string binary = std::string("line one\nline two\n\0\x01\xff end", 24);
  auto put = Cli({"kv", "put", "app", "from-stdin", "-"}, binary);
  ASSERT_EQ(put.exit_code(), 0) << put.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto get, http_->Get("/v1/kv/app/from-stdin"));
  EXPECT_EQ(get.body, binary) << "stdin must be stored byte for byte";
  auto cli_get = Cli({"kv", "get", "app", "from-stdin"});
  EXPECT_EQ(cli_get.out, binary);

  // A larger value through stdin (1 MiB).
  std::string big(1 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 1000) big[i] = static_cast<char>('a' + i % 26);
  auto put_big = Cli({"kv", "put", "app", "big", "-"}, big);
  ASSERT_EQ(put_big.exit_code(), 0) << put_big.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto get_big, http_->Get("/v1/kv/app/big"));
  EXPECT_TRUE(get_big.body == big);

  auto file = WriteFile("value.bin", binary);
  auto put_file = Cli({"kv", "put", "app", "from-file", "-f", file.string()});
  ASSERT_EQ(put_file.exit_code(), 0) << put_file.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto get_file, http_->Get("/v1/kv/app/from-file"));
  EXPECT_EQ(get_file.body, binary);

  auto out_path = temp_.Sub("out.bin");
  auto get_to_file = Cli({"kv", "get", "app", "from-file", "-o", out_path.string()});
  EXPECT_EQ(get_to_file.exit_code(), 0) << get_to_file.Describe();
  std::ifstream in(out_path, std::ios::binary);
  std::string written((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(written, binary);

  // Contradicting or missing input is a usage error, not a server error.
  auto both = Cli({"kv", "put", "app", "k", "v", "-f", file.string()});
  EXPECT_NE(both.exit_code(), 0) << both.Describe();
  EXPECT_NE(both.exit_code(), 2) << both.Describe();
  auto missing_file = Cli({"kv", "put", "app", "k", "-f", temp_.Sub("nope").string()});
  EXPECT_NE(missing_file.exit_code(), 0) << missing_file.Describe();
  EXPECT_TRUE(Contains(missing_file.err, "nope")) << missing_file.Describe();
}

TEST_F(CliTest, PutOptions) {
  auto ttl = Cli({"kv", "put", "app", "temp", "v", "--ttl", "100"});
  ASSERT_EQ(ttl.exit_code(), 0) << ttl.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto get, http_->Get("/v1/kv/app/temp"));
  EXPECT_FALSE(get.Header("EKV-Expires-At").empty());

  auto first = Cli({"kv", "put", "app", "once", "v1", "--if-absent"});
  EXPECT_EQ(first.exit_code(), 0) << first.Describe();
  auto second = Cli({"kv", "put", "app", "once", "v2", "--if-absent"});
  EXPECT_EQ(second.exit_code(), 1) << second.Describe();
  EXPECT_TRUE(Contains(second.err, "precondition")) << second.Describe();

  const std::string version = nlohmann::json::parse(first.out, nullptr, false).value("version", "");
  auto cas = Cli({"kv", "put", "app", "once", "v3", "--if-version", version});
  EXPECT_EQ(cas.exit_code(), 0) << cas.Describe();
  auto stale = Cli({"kv", "put", "app", "once", "v4", "--if-version", version});
  EXPECT_EQ(stale.exit_code(), 1) << stale.Describe();
  auto bad_version = Cli({"kv", "put", "app", "once", "v5", "--if-version", "nonsense"});
  EXPECT_EQ(bad_version.exit_code(), 1) << bad_version.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto final_get, http_->Get("/v1/kv/app/once"));
  EXPECT_EQ(final_get.body, "v3");

  auto bad_ns = Cli({"kv", "put", "bad ns", "k", "v"});
  EXPECT_EQ(bad_ns.exit_code(), 1) << bad_ns.Describe();
  EXPECT_FALSE(bad_ns.err.empty());
}

TEST_F(CliTest, List) {
  for (const char* key : {"a1", "a2", "a3", "b1"}) {
    EF_ASSERT_OK_AND_ASSIGN(auto put, http_->Put(std::string("/v1/kv/lst/") + key, "value"));
    ASSERT_EQ(put.status, 200);
  }
  auto ls = Cli({"kv", "ls", "lst", "a"});
  ASSERT_EQ(ls.exit_code(), 0) << ls.Describe();
  EXPECT_EQ(FirstColumn(ls.out), (std::vector<std::string>{"KEY", "a1", "a2", "a3"})) << ls.out;

  auto json = Cli({"kv", "ls", "lst", "--json"});
  ASSERT_EQ(json.exit_code(), 0) << json.Describe();
  auto items = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_TRUE(items.is_array()) << json.out;
  EXPECT_EQ(items.size(), 4u);

  // Paging: one key per request, all pages followed.
  auto all = Cli({"kv", "ls", "lst", "--limit", "1", "--all"});
  ASSERT_EQ(all.exit_code(), 0) << all.Describe();
  EXPECT_EQ(FirstColumn(all.out), (std::vector<std::string>{"KEY", "a1", "a2", "a3", "b1"}))
      << all.out;
  // Without --all the first page comes with a hint on stderr.
  auto first_page = Cli({"kv", "ls", "lst", "--limit", "2"});
  ASSERT_EQ(first_page.exit_code(), 0) << first_page.Describe();
  EXPECT_EQ(SplitLines(first_page.out).size(), 3u) << first_page.out;
  EXPECT_FALSE(first_page.err.empty());

  auto empty = Cli({"kv", "ls", "nothing-here"});
  EXPECT_EQ(empty.exit_code(), 0) << empty.Describe();
  EXPECT_EQ(SplitLines(empty.out).size(), 1u) << empty.out;
}

TEST_F(CliTest, WatchFromSequence) {
  EF_ASSERT_OK_AND_ASSIGN(auto marker, http_->Put("/v1/kv/wns/marker", "m"));
  const uint64_t seq = marker.Json().value("seq", uint64_t{0});
  ASSERT_GT(seq, 0u);
  for (const char* key : {"w1", "w2", "w3"}) {
    EF_ASSERT_OK_AND_ASSIGN(auto put, http_->Put(std::string("/v1/kv/wns/") + key, "v"));
  }
  EF_ASSERT_OK_AND_ASSIGN(auto del, http_->Delete("/v1/kv/wns/w2"));
  EF_ASSERT_OK_AND_ASSIGN(auto other, http_->Put("/v1/kv/elsewhere/w9", "v"));

  // The watch runs until stopped: bounded by a timeout, as a user would end it with Ctrl-C.
  CommandOptions options;
  options.timeout = std::chrono::seconds(3);
  auto watch = RunCommand(
      CliBinary(), WithServer({"kv", "watch", "wns", "w", "--from-seq", std::to_string(seq)}),
      options);
  EXPECT_TRUE(watch.timed_out) << "watch should keep running: " << watch.Describe();
  auto lines = SplitLines(watch.out);
  ASSERT_EQ(lines.size(), 4u) << watch.Describe();
  EXPECT_TRUE(Contains(lines[0], " put wns/w1")) << lines[0];
  EXPECT_TRUE(Contains(lines[1], " put wns/w2")) << lines[1];
  EXPECT_TRUE(Contains(lines[2], " put wns/w3")) << lines[2];
  EXPECT_TRUE(Contains(lines[3], " delete wns/w2")) << lines[3];
  uint64_t last = seq;
  for (const auto& line : lines) {
    uint64_t line_seq = std::strtoull(line.c_str(), nullptr, 10);
    EXPECT_GT(line_seq, last) << line;
    last = line_seq;
  }
}

TEST_F(CliTest, WatchSeesLiveWrites) {
  auto watch = StartCli({"kv", "watch", "live", "--json"});
  ASSERT_NE(watch, nullptr);
  // The watch may connect after a given write; keep writing probes (bounded) until one shows.
  bool seen = false;
  for (int i = 0; i < 50 && !seen; ++i) {
    EF_ASSERT_OK_AND_ASSIGN(auto put, http_->Put("/v1/kv/live/probe" + std::to_string(i), "p"));
    seen = watch->WaitForStdout(
        [](const std::string& out) { return out.find("probe") != std::string::npos; },
        std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(seen) << "watch printed nothing; stderr: " << watch->Stderr();
  for (int i = 0; i < 3; ++i) {
    EF_ASSERT_OK_AND_ASSIGN(auto put, http_->Put("/v1/kv/live/after" + std::to_string(i), "a"));
  }
  EXPECT_TRUE(watch->WaitForStdout(
      [](const std::string& out) { return out.find("after2") != std::string::npos; },
      std::chrono::seconds(10)))
      << watch->Stdout();
  watch->Signal(SIGINT);
  ExitStatus exit = watch->Finish(std::chrono::seconds(10));
  EXPECT_TRUE(exit.term_signal == SIGINT || exit.exit_code == 0 || exit.exit_code == 130)
      << exit.ToString();

  std::vector<std::string> after;
  for (const auto& line : SplitLines(watch->Stdout())) {
    auto json = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(json.is_object()) << "--json prints one JSON object per line: " << line;
    std::string key = json.value("key", "");
    if (key.starts_with("after")) after.push_back(key);
  }
  EXPECT_EQ(after, (std::vector<std::string>{"after0", "after1", "after2"}));
}

TEST_F(CliTest, ReportsWhenTheDaemonStops) {
  auto watch = StartCli({"kv", "watch", "gone"});
  ASSERT_NE(watch, nullptr);
  // Let the watch connect (probe writes, bounded), then stop the daemon under it.
  bool seen = false;
  for (int i = 0; i < 50 && !seen; ++i) {
    EF_ASSERT_OK_AND_ASSIGN(auto put, http_->Put("/v1/kv/gone/p" + std::to_string(i), "p"));
    seen = watch->WaitForStdout(
        [](const std::string& out) { return out.find("gone/p") != std::string::npos; },
        std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(seen) << watch->Stderr();
  http_->Close();
  EXPECT_EQ(daemon_->Stop().exit_code, 0);
  auto exit = watch->Wait(std::chrono::seconds(15));
  ASSERT_TRUE(exit.has_value()) << "watch kept running after the daemon stopped";
  EXPECT_EQ(exit->exit_code, 2) << exit->ToString() << " stderr: " << watch->Stderr();
  EXPECT_FALSE(watch->Stderr().empty());
}

// Publishes `data` on `channel` with `extra` flags until `sub` prints `expected` (the subscriber
// may not have subscribed yet when the first publications go out), bounded in count and time.
bool PublishUntilSeen(CliTest* test, ChildProcess* sub, const std::string& channel,
                      const std::string& data, const std::vector<std::string>& extra,
                      const std::string& expected);

TEST_F(CliTest, PubPrintsTheItemIdAndStoresTheData) {
  auto pub = Cli({"pub", "cams/front", "frame-1", "--key", "f1", "--content-type", "text/plain"});
  ASSERT_EQ(pub.exit_code(), 0) << pub.Describe();
  EXPECT_EQ(pub.out, "f1\n");
  EXPECT_TRUE(Contains(pub.err, "inline")) << pub.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto stored, http_->Get("/v1/kv/channels/f1"));
  EXPECT_EQ(stored.body, "frame-1");

  auto by_ref = Cli({"pub", "cams/front", "-", "--mode", "ref", "--json"}, "from stdin");
  ASSERT_EQ(by_ref.exit_code(), 0) << by_ref.Describe();
  auto json = nlohmann::json::parse(by_ref.out, nullptr, false);
  ASSERT_TRUE(json.is_object()) << by_ref.out;
  EXPECT_FALSE(json.value("inline", true));
  EF_ASSERT_OK_AND_ASSIGN(auto ref, http_->Get(json.value("ref", std::string("/none"))));
  EXPECT_EQ(ref.body, "from stdin");
}

TEST_F(CliTest, SubPrintsInlineAndReferencedData) {
  auto sub = StartCli({"sub", "cams/+", "-v"});
  ASSERT_NE(sub, nullptr);
  ASSERT_TRUE(PublishUntilSeen(this, sub.get(), "cams/front", "inline-data", {},
                               "cams/front inline-data\n"))
      << sub->Stderr();
  // By reference the message carries no data: the CLI reads it from EKV.
  ASSERT_TRUE(PublishUntilSeen(this, sub.get(), "cams/back", "referenced-data", {"--mode", "ref"},
                               "cams/back referenced-data\n"))
      << sub->Stderr();
  sub->Signal(SIGTERM);
  sub->Finish(std::chrono::seconds(5));
}

TEST_F(CliTest, SubJsonCountAndWait) {
  auto sub = StartCli({"sub", "jobs", "--json", "-n", "1", "-W", "20"});
  ASSERT_NE(sub, nullptr);
  ASSERT_TRUE(PublishUntilSeen(this, sub.get(), "jobs", "job-data", {"--key", "job-7"}, "job-7"))
      << sub->Stderr();
  auto exit = sub->Wait(std::chrono::seconds(10));
  ASSERT_TRUE(exit.has_value()) << "sub -n 1 kept running after its message";
  EXPECT_EQ(exit->exit_code, 0) << sub->Stderr();
  auto json = nlohmann::json::parse(SplitLines(sub->Stdout()).at(0), nullptr, false);
  ASSERT_TRUE(json.is_object()) << sub->Stdout();
  EXPECT_EQ(json.value("item_id", ""), "job-7");
  EXPECT_EQ(json.value("data", ""), "job-data");
  EXPECT_EQ(json.value("channel", ""), "jobs");
  EXPECT_EQ(json.value("ref", ""), "/v1/kv/channels/job-7");

  // Nothing arrives: -W ends the wait, and the shortfall is an error.
  auto idle = Cli({"sub", "quiet", "-n", "1", "-W", "0.5"});
  EXPECT_EQ(idle.exit_code(), 1) << idle.Describe();
  EXPECT_TRUE(Contains(idle.err, "0 of 1")) << idle.Describe();
}

TEST_F(CliTest, SubReportsAReferenceWhoseItemIsGone) {
  // A persistent session keeps the message while the subscriber is away; the item it names is
  // deleted before the subscriber comes back to read it.
  auto first = Cli({"sub", "gone", "--session", "cli-gone", "-W", "0.3"});
  ASSERT_EQ(first.exit_code(), 0) << first.Describe();
  auto pub = Cli({"pub", "gone", "short-lived", "--key", "g1", "--mode", "ref"});
  ASSERT_EQ(pub.exit_code(), 0) << pub.Describe();
  auto del = Cli({"kv", "del", "channels", "g1"});
  ASSERT_EQ(del.exit_code(), 0) << del.Describe();

  auto back = Cli({"sub", "gone", "--session", "cli-gone", "--json", "-n", "1", "-W", "10"});
  EXPECT_EQ(back.exit_code(), 0) << back.Describe();
  auto json = nlohmann::json::parse(back.out, nullptr, false);
  ASSERT_TRUE(json.is_object()) << back.Describe();
  EXPECT_EQ(json.value("item_id", ""), "g1");
  EXPECT_FALSE(json.contains("data")) << back.out;
  EXPECT_TRUE(Contains(json.value("error", ""), "expired or deleted")) << back.out;
  EXPECT_TRUE(Contains(back.err, "g1")) << back.Describe();
}

TEST_F(CliTest, ChannelsListsRates) {
  for (int i = 0; i < 3; ++i) {
    auto pub = Cli({"pub", "metrics/cpu", std::to_string(i)});
    ASSERT_EQ(pub.exit_code(), 0) << pub.Describe();
  }
  // The node counts messages through its own subscription: wait for it to see all three.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  CommandResult list;
  do {
    list = Cli({"channels", "--json"});
    ASSERT_EQ(list.exit_code(), 0) << list.Describe();
    auto json = nlohmann::json::parse(list.out, nullptr, false);
    ASSERT_TRUE(json.is_object()) << list.out;
    bool counted = false;
    for (const auto& channel : json["channels"]) {
      counted = counted ||
                (channel.value("name", "") == "metrics/cpu" && channel.value("messages", 0) == 3);
    }
    if (counted) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_LT(std::chrono::steady_clock::now(), deadline) << list.out;
  auto table = Cli({"channels"});
  EXPECT_EQ(table.exit_code(), 0) << table.Describe();
  EXPECT_EQ(FirstColumn(table.out), (std::vector<std::string>{"CHANNEL", "metrics/cpu"}));
}

TEST_F(CliTest, ChannelErrorsAreClear) {
  auto bad_name = Cli({"pub", "a//b", "x"});
  EXPECT_EQ(bad_name.exit_code(), 64) << bad_name.Describe();
  EXPECT_TRUE(Contains(bad_name.err, "empty segment")) << bad_name.Describe();
  auto bad_pattern = Cli({"sub", "a/#/b"});
  EXPECT_EQ(bad_pattern.exit_code(), 64) << bad_pattern.Describe();
  EXPECT_TRUE(Contains(bad_pattern.err, "'#'")) << bad_pattern.Describe();
  auto bad_mode = Cli({"pub", "a", "x", "--mode", "sideways"});
  EXPECT_NE(bad_mode.exit_code(), 0) << bad_mode.Describe();
  auto reserved = Cli({"pub", "a", "x", "--ns", "_edgeflow"});
  EXPECT_EQ(reserved.exit_code(), 64) << reserved.Describe();
  EXPECT_TRUE(Contains(reserved.err, "read-only")) << reserved.Describe();
}

TEST_F(CliTest, ChannelsOffIsReported) {
  http_.reset();
  daemon_.reset();
  DaemonOptions options;
  options.data_dir = temp_.Sub("no-mqtt");
  options.extra_args = {"--no-mqtt"};
  daemon_ = StartDaemon(options);
  ASSERT_NE(daemon_, nullptr);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"pub", "a", "x"}, std::vector<std::string>{"sub", "a"},
        std::vector<std::string>{"channels"}}) {
    auto r = Cli(args);
    EXPECT_EQ(r.exit_code(), 2) << r.Describe();
    EXPECT_TRUE(Contains(r.err, "turned off")) << r.Describe();
  }
}

bool PublishUntilSeen(CliTest* test, ChildProcess* sub, const std::string& channel,
                      const std::string& data, const std::vector<std::string>& extra,
                      const std::string& expected) {
  for (int i = 0; i < 50; ++i) {
    std::vector<std::string> args = {"pub", channel, data};
    args.insert(args.end(), extra.begin(), extra.end());
    if (test->RunCli(args).exit_code() != 0) return false;
    if (sub->WaitForStdout(
            [&](const std::string& out) { return out.find(expected) != std::string::npos; },
            std::chrono::milliseconds(200))) {
      return true;
    }
  }
  return false;
}

class CliWithoutDaemonTest : public ::testing::Test {};

TEST_F(CliWithoutDaemonTest, CannotConnectIsReportedWithExitCode2) {
  auto port = PickFreePort("127.0.0.1");
  ASSERT_TRUE(port.has_value()) << port.error().ToString();
  const std::string server = "http://127.0.0.1:" + std::to_string(*port);
  const std::vector<std::vector<std::string>> commands = {
      {"health"},
      {"node"},
      {"kv", "get", "ns", "k"},
      {"kv", "put", "ns", "k", "v"},
      {"kv", "del", "ns", "k"},
      {"kv", "ls", "ns"},
      {"kv", "watch", "ns"},
      {"pub", "ch", "v"},
      {"sub", "ch"},
      {"channels"},
  };
  for (auto args : commands) {
    SCOPED_TRACE(args.size() > 1 ? args[1] : args[0]);
    args.insert(args.begin(), {"--server", server});
    CommandOptions options;
    options.timeout = std::chrono::seconds(20);
    auto r = RunCommand(CliBinary(), args, options);
    EXPECT_EQ(r.exit_code(), 2) << r.Describe();
    EXPECT_FALSE(r.timed_out) << r.Describe();
    EXPECT_TRUE(Contains(r.err, "cannot connect")) << r.Describe();
    EXPECT_TRUE(Contains(r.err, std::to_string(*port))) << r.Describe();
  }
}

TEST_F(CliWithoutDaemonTest, BadUsageIsNotAConnectionError) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"kv", "put", "ns"}, std::vector<std::string>{"kv"},
        std::vector<std::string>{"--server", "http://127.0.0.1:99999", "health"},
        std::vector<std::string>{"--server", "https://127.0.0.1:7070", "health"},
        std::vector<std::string>{"kv", "frobnicate"}}) {
    auto r = RunCommand(CliBinary(), args);
    EXPECT_NE(r.exit_code(), 0) << r.Describe();
    EXPECT_NE(r.exit_code(), 2) << r.Describe();
    EXPECT_FALSE(r.err.empty()) << r.Describe();
  }
}

}  // namespace
}  // namespace edgeflow::test_support
