// Start-up, readiness, shutdown and configuration errors of the real edgeflowd.
#include <signal.h>

#include <filesystem>
#include <regex>
#include <string>

#include "support/command_runner.h"
#include "support/daemon_test.h"
#include "support/raw_connection.h"

namespace edgeflow::test_support {
namespace {

class DaemonLifecycleTest : public DaemonTest {
 protected:
  // Runs edgeflowd to completion (it is expected to refuse to start) with its data dir in the
  // temp dir, so that nothing is ever created in the test's working directory.
  CommandResult RunDaemonExpectingExit(std::vector<std::string> args) {
    // The broker gets a free port too: a fixed one may belong to another node on this machine.
    args.insert(args.begin(), {"--data-dir", temp_.Sub("refused-data").string(), "--mqtt-listen",
                               "127.0.0.1:0", "--mqtt-ws-listen", "off"});
    CommandOptions options;
    options.cwd = temp_.path();
    options.timeout = std::chrono::seconds(20);
    return RunCommand(DaemonBinary(), args, options);
  }
};

TEST_F(DaemonLifecycleTest, WritesListenFileAndServesHealth) {
  auto daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  const ListenInfo& info = daemon->listen();
  EXPECT_EQ(info.pid, daemon->pid());
  EXPECT_TRUE(std::regex_match(info.node_id, std::regex("[0-9a-f]{16}"))) << info.node_id;
  EXPECT_EQ(info.http.host, "127.0.0.1");
  EXPECT_EQ(info.resp.host, "127.0.0.1");
  EXPECT_NE(info.http.port, 0);
  EXPECT_NE(info.resp.port, 0);
  EXPECT_NE(info.http.port, info.resp.port);

  auto http = Http(*daemon);
  EF_ASSERT_OK_AND_ASSIGN(auto health, http->Get("/healthz"));
  EXPECT_EQ(health.status, 200) << health.Describe();

  EF_ASSERT_OK_AND_ASSIGN(auto node, http->Get("/v1/node"));
  ASSERT_EQ(node.status, 200) << node.Describe();
  auto json = node.Json();
  ASSERT_TRUE(json.is_object()) << node.body;
  ASSERT_TRUE(json.contains("node_id")) << node.body;
  EXPECT_EQ(json["node_id"], info.node_id);

  auto resp = Resp(*daemon);
  ASSERT_NE(resp, nullptr);
  EF_ASSERT_OK_AND_ASSIGN(auto pong, resp->Command({"PING"}));
  EXPECT_TRUE(pong.IsStatus("PONG")) << pong.ToString();
}

TEST_F(DaemonLifecycleTest, SigtermStopsCleanlyAndNodeIdSurvivesRestart) {
  std::string node_id;
  {
    auto daemon = StartDaemon();
    ASSERT_NE(daemon, nullptr);
    node_id = daemon->listen().node_id;
    auto http = Http(*daemon);
    EF_ASSERT_OK_AND_ASSIGN(auto put, http->Put("/v1/kv/default/kept", "across-restart"));
    ASSERT_EQ(put.status, 200) << put.Describe();
    http->Close();

    ExitStatus exit = daemon->Stop(SIGTERM);
    EXPECT_EQ(exit.exit_code, 0) << exit.ToString();
    EXPECT_EQ(exit.term_signal, 0) << exit.ToString();
    EXPECT_FALSE(std::filesystem::exists(daemon->listen_file()))
        << "the listen file must be removed on a clean stop";
  }
  auto again = StartDaemon();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->listen().node_id, node_id) << "node id changed across a restart";
  auto http = Http(*again);
  EF_ASSERT_OK_AND_ASSIGN(auto get, http->Get("/v1/kv/default/kept"));
  EXPECT_EQ(get.status, 200) << get.Describe();
  EXPECT_EQ(get.body, "across-restart");
}

TEST_F(DaemonLifecycleTest, SigintStopsCleanly) {
  auto daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  // An open idle connection of each kind must not hold up the stop.
  auto http = Http(*daemon);
  EF_ASSERT_OK_AND_ASSIGN(auto health, http->Get("/healthz"));
  auto resp = Resp(*daemon);
  ASSERT_NE(resp, nullptr);

  ExitStatus exit = daemon->Stop(SIGINT);
  EXPECT_EQ(exit.exit_code, 0) << exit.ToString();
  EXPECT_FALSE(std::filesystem::exists(daemon->listen_file()));
}

TEST_F(DaemonLifecycleTest, StopsCleanlyWithAnOpenWatchStream) {
  auto daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  auto raw = RawConnection::Connect(daemon->http_port());
  ASSERT_TRUE(raw.has_value()) << raw.error().ToString();
  ASSERT_TRUE(raw->Send("GET /v1/watch/default HTTP/1.1\r\nHost: x\r\n\r\n").ok());
  std::string header =
      raw->ReadUntil([](const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; },
                     std::chrono::seconds(10));
  EXPECT_TRUE(Contains(header, " 200 "));

  ExitStatus exit = daemon->Stop(SIGTERM);
  EXPECT_EQ(exit.exit_code, 0) << exit.ToString();
  bool closed = false;
  raw->ReadUntilClosed(std::chrono::seconds(5), &closed);
  EXPECT_TRUE(closed) << "the watch stream must be closed when the daemon stops";
}

TEST_F(DaemonLifecycleTest, UnknownConfigKeyIsRejected) {
  auto top = WriteFile("top.yaml", "data_dir: ./d\nbogus_setting: 1\n");
  auto r = RunDaemonExpectingExit({"--config", top.string()});
  EXPECT_EQ(r.exit_code(), 2) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "bogus_setting")) << r.Describe();

  auto nested = WriteFile("nested.yaml", "http:\n  listen: \"127.0.0.1:0\"\n  lisen: x\n");
  r = RunDaemonExpectingExit({"--config", nested.string()});
  EXPECT_EQ(r.exit_code(), 2) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "lisen")) << r.Describe();
}

TEST_F(DaemonLifecycleTest, BadConfigValuesAreRejected) {
  struct Case {
    const char* yaml;
    const char* mentions;
  };
  const Case cases[] = {
      {"http:\n  listen: \"not-an-address\"\n", "http.listen"},
      {"resp:\n  listen: \"127.0.0.1:70000\"\n", "resp.listen"},
      {"log:\n  level: loud\n", "log.level"},
      {"kv:\n  sync_writes: maybe\n", "sync_writes"},
      {"kv:\n  max_value_bytes: -5\n", "max_value_bytes"},
      {"http: [1, 2\n", "YAML"},
      {"- just\n- a list\n", "mapping"},
  };
  int index = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.yaml);
    auto path = WriteFile("bad" + std::to_string(index++) + ".yaml", c.yaml);
    auto r = RunDaemonExpectingExit({"--config", path.string()});
    EXPECT_EQ(r.exit_code(), 2) << r.Describe();
    EXPECT_TRUE(Contains(r.err, c.mentions)) << r.Describe();
  }
}

TEST_F(DaemonLifecycleTest, UnreadableConfigFileIsRejected) {
  auto missing = temp_.Sub("does-not-exist.yaml");
  auto r = RunDaemonExpectingExit({"--config", missing.string()});
  EXPECT_EQ(r.exit_code(), 2) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "does-not-exist.yaml")) << r.Describe();

  std::filesystem::create_directory(temp_.Sub("a-directory.yaml"));
  r = RunDaemonExpectingExit({"--config", temp_.Sub("a-directory.yaml").string()});
  EXPECT_EQ(r.exit_code(), 2) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "a-directory.yaml")) << r.Describe();

  if (::geteuid() != 0) {  // root reads files whatever their mode
    auto locked = WriteFile("locked.yaml", "data_dir: ./d\n");
    std::filesystem::permissions(locked, std::filesystem::perms::none);
    r = RunDaemonExpectingExit({"--config", locked.string()});
    EXPECT_EQ(r.exit_code(), 2) << r.Describe();
    EXPECT_TRUE(Contains(r.err, "locked.yaml")) << r.Describe();
  }
}

TEST_F(DaemonLifecycleTest, BadFlagsAreRejected) {
  const std::vector<std::vector<std::string>> cases = {
      {"--log-level", "loud"},
      {"--log-format", "xml"},
      {"--http-listen", "nonsense"},
      {"--resp-listen", "127.0.0.1:99999"},
      {"--no-such-flag"},
      {"--max-value-bytes", "lots"},
      {"--max-key-bytes", "99999999"},  // over the limit a config file would refuse too
      {"--max-value-bytes", "4294967296"},
  };
  for (const auto& args : cases) {
    SCOPED_TRACE(args.front());
    auto r = RunDaemonExpectingExit(args);
    EXPECT_EQ(r.exit_code(), 2) << r.Describe();
    EXPECT_FALSE(r.err.empty()) << "a rejected flag needs a message on stderr";
  }
}

TEST_F(DaemonLifecycleTest, PortInUseFailsWithClearMessage) {
  HeldPort held;
  ASSERT_TRUE(held.ok());
  const std::string taken = "127.0.0.1:" + std::to_string(held.port());

  auto r = RunDaemonExpectingExit({"--http-listen", taken, "--resp-listen", "127.0.0.1:0"});
  EXPECT_NE(r.exit_code(), 0) << r.Describe();
  EXPECT_FALSE(r.timed_out) << r.Describe();
  EXPECT_TRUE(Contains(r.err, std::to_string(held.port()))) << r.Describe();
  EXPECT_TRUE(Contains(r.err, "in use")) << r.Describe();
  EXPECT_FALSE(std::filesystem::exists(temp_.Sub("refused-data") / "edgeflowd.listen.json"));

  r = RunDaemonExpectingExit({"--http-listen", "127.0.0.1:0", "--resp-listen", taken});
  EXPECT_NE(r.exit_code(), 0) << r.Describe();
  EXPECT_FALSE(r.timed_out) << r.Describe();
  EXPECT_TRUE(Contains(r.err, std::to_string(held.port()))) << r.Describe();
}

TEST_F(DaemonLifecycleTest, FlagsOverrideConfigFile) {
  // The config names a port that is taken, and a data dir; the flags replace the HTTP address but
  // not the data dir. Starting at all proves the flag won; the listen file's place proves the
  // config's data dir was used.
  HeldPort held;
  ASSERT_TRUE(held.ok());
  auto config =
      WriteFile("node.yaml", "data_dir: " + temp_.Sub("from-config").string() +
                                 "\nhttp:\n  listen: \"127.0.0.1:" + std::to_string(held.port()) +
                                 "\"\nresp:\n  listen: \"127.0.0.1:0\"\n"
                                 "mqtt:\n  listen: \"127.0.0.1:0\"\n  ws_listen: \"off\"\n"
                                 "log:\n  level: warn\n");
  DaemonOptions options;
  options.data_dir = temp_.Sub("from-config");
  options.pass_data_dir = false;
  options.pass_loopback_listen = false;
  options.cwd = temp_.path();
  options.log_path = temp_.Sub("override1.log");
  options.extra_args = {"--config", config.string(), "--http-listen", "127.0.0.1:0"};
  {
    auto daemon = StartDaemon(options);
    ASSERT_NE(daemon, nullptr);
    EXPECT_NE(daemon->http_port(), held.port());
    auto http = Http(*daemon);
    EF_ASSERT_OK_AND_ASSIGN(auto health, http->Get("/healthz"));
    EXPECT_EQ(health.status, 200);
    EXPECT_EQ(daemon->Stop().exit_code, 0);
  }

  // Now --data-dir beats the config's data_dir.
  options.data_dir = temp_.Sub("from-flag");
  options.pass_data_dir = true;
  options.log_path = temp_.Sub("override2.log");
  auto daemon = StartDaemon(options);
  ASSERT_NE(daemon, nullptr);
  EXPECT_TRUE(std::filesystem::exists(temp_.Sub("from-flag") / "edgeflowd.listen.json"));
  EXPECT_FALSE(std::filesystem::exists(temp_.Sub("from-config") / "edgeflowd.listen.json"));
}

TEST_F(DaemonLifecycleTest, DefaultDataDirIsRelativeToWorkingDirectory) {
  DaemonOptions options;
  options.data_dir = temp_.Sub("data");  // where ./data lands when cwd is the temp dir
  options.pass_data_dir = false;
  options.cwd = temp_.path();
  auto daemon = StartDaemon(options);
  ASSERT_NE(daemon, nullptr);
  EXPECT_TRUE(std::filesystem::exists(temp_.Sub("data") / "edgeflowd.listen.json"));
}

}  // namespace
}  // namespace edgeflow::test_support
