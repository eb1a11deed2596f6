// Edge functions on a real edgeflowd: pipelines deployed over HTTP and the CLI, Python functions
// (tests/integration/functions/*.py, written with sdk/python/edgeflow_function.py) run as warm
// workers in the `process` and `bwrap` sandboxes, triggered by channel messages and publishing
// their outputs on channels, received by the suite's own MQTT 5 subscriber
// (tests/support/mqtt_subscriber.h).
//
// What is proved: an output keeps its input's item id (correlation data) and trace id and carries
// ef-invoked-at; output parts get "<item id>.<part>" and large outputs travel by reference;
// chains deliver end to end (one stage in bwrap, whose confinement is checked from inside); joins
// of several inputs by item id, and what expires unjoined goes to the dead-letter channel;
// per-stream context; duplicates dropped within the dedupe window; every kind of misbehaving
// function (crash, hang, protocol garbage, unknown or oversized output, permanent and retried
// errors, oversized or vanished input) and a worker that cannot start, never gets ready or dies
// idle end on the dead-letter channel with the right kind, attempts and a clear error while the
// function keeps serving; plain MQTT triggers and malformed ones; spec errors with line numbers;
// pipelines, pending items, joins and attempt counts survive a restart and a kill -9; redeploys
// (also under load) and undeploy; scaling between concurrency.min and max; the CLI's deploy, ps,
// logs and undeploy.
//
// Expected topics, dead-letter payloads and EKV paths are spelled out here ("ef/default/ch/...",
// "dead-letter/<pipeline>/<function>", "/v1/kv/context/...") rather than computed with the
// product's helpers, so that a change of the contract fails these tests. Specs use short
// timeouts, windows and back-offs so that the failure paths take milliseconds, not minutes.
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/host_port.h"
#include "support/child_process.h"
#include "support/command_runner.h"
#include "support/daemon_test.h"
#include "support/mqtt_subscriber.h"

namespace edgeflow::test_support {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyClock = std::chrono::steady_clock;

// Bound for things that normally take milliseconds (a delivery, a worker start, a stats update):
// generous, so that a loaded 2-core machine does not make the tests flaky, and only spent when
// they fail.
constexpr milliseconds kWait = seconds(10);
// How long a test watches for something that must NOT happen (an output after undeploy, a second
// output of a duplicate). Only spent after a positive signal that the input was delivered.
constexpr milliseconds kQuiet = milliseconds(800);

constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";

std::string Topic(std::string_view channel) { return "ef/default/ch/" + std::string(channel); }

// The repository: the nearest directory at or above EF_TEST_SOURCE_DIR (the tests' source
// directory) that holds the Python SDK.
fs::path RepoRoot() {
  fs::path dir = fs::path(EF_TEST_SOURCE_DIR).lexically_normal();
  while (!dir.empty() && !fs::exists(dir / "sdk/python/edgeflow_function.py")) {
    if (dir == dir.parent_path()) break;
    dir = dir.parent_path();
  }
  return dir;
}

// `text` with every "$NAME" of `values` replaced by its value (longer names first, so that "$P"
// does not eat the start of "$PORT").
std::string Subst(std::string text, const std::map<std::string, std::string>& values) {
  std::vector<std::pair<std::string, std::string>> ordered(values.begin(), values.end());
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& [name, value] : ordered) {
    for (size_t at = text.find(name); at != std::string::npos;
         at = text.find(name, at + value.size())) {
      text.replace(at, name.size(), value);
    }
  }
  return text;
}

bool HasItem(const std::vector<MqttReceived>& messages, const std::string& item_id) {
  return !ForItem(messages, item_id).empty();
}

// 'R', 'S', 'Z', ... from /proc/<pid>/stat, or 0 if there is no such process.
char ProcessState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return 0;
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() ? stat[paren + 2] : 0;
}

bool ProcessGone(pid_t pid) {
  const char state = ProcessState(pid);
  return state == 0 || state == 'Z' || state == 'X';
}

// Whether bubblewrap can make a sandbox here (as the node's CheckBwrap does).
bool BwrapWorks(std::string* why) {
  auto run = RunCommand("bwrap", {"--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
                                  "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                                  "--symlink", "usr/bin", "/bin", "/usr/bin/true"});
  *why = run.Describe();
  return !run.spawn_failed && !run.timed_out && run.exit_code() == 0;
}

class FunctionsTest : public DaemonTest {
 protected:
  void SetUp() override {
    daemon_ = StartDaemon();
    ASSERT_NE(daemon_, nullptr);
    http_ = Http(*daemon_);
  }

  // A clean stop: the node stops its functions and its broker before the temporary directory
  // goes (a broker orphaned by SIGKILL would still be saving its state into it).
  void TearDown() override {
    if (daemon_ && daemon_->IsRunning()) {
      const ExitStatus status = daemon_->Stop(SIGTERM);
      EXPECT_EQ(status.exit_code, 0) << status.ToString();
    }
  }

  // Stops the daemon (SIGTERM, or SIGKILL when `crash`) and starts it again on the same data dir.
  void Restart(bool crash) {
    if (crash) {
      const pid_t broker = daemon_->listen().broker_pid;
      daemon_->Kill();
      // The broker follows its node (parent-death signal); the next one uses the same directory.
      EXPECT_TRUE(broker <= 0 || PollUntil([&] { return ProcessGone(broker); }, kWait))
          << "the broker (pid " << broker << ") outlived the killed node";
    } else {
      const ExitStatus status = daemon_->Stop(SIGTERM);
      EXPECT_EQ(status.exit_code, 0) << status.ToString();
    }
    http_.reset();
    daemon_ = StartDaemon();
    ASSERT_NE(daemon_, nullptr);
    http_ = Http(*daemon_);
  }

  // A code directory "<temp>/<name>" holding the Python SDK and the given test functions.
  fs::path CodeDir(const std::string& name, const std::vector<std::string>& functions) {
    const fs::path dir = temp_.Sub(name);
    fs::create_directories(dir);
    fs::copy_file(RepoRoot() / "sdk/python/edgeflow_function.py", dir / "edgeflow_function.py",
                  fs::copy_options::overwrite_existing);
    for (const std::string& f : functions) {
      fs::copy_file(RepoRoot() / "tests/integration/functions" / f, dir / f,
                    fs::copy_options::overwrite_existing);
      fs::permissions(dir / f, fs::perms::owner_read | fs::perms::owner_write |
                                   fs::perms::group_read | fs::perms::others_read);
    }
    return dir;
  }

  Result<HttpResponse> Deploy(const std::string& yaml, const std::string& query = "") {
    std::string target = "/v1/pipelines";
    if (!query.empty()) target += "?" + query;
    return http_->Request("POST", target, yaml, {{"Content-Type", "application/yaml"}});
  }

  // Deploys `yaml` and checks that the node took it (201, or 200 when it replaced a pipeline).
  ::testing::AssertionResult Deployed(const std::string& yaml) {
    auto r = Deploy(yaml);
    if (!r.has_value()) return ::testing::AssertionFailure() << r.error().ToString();
    if (r->status != 201 && r->status != 200) {
      return ::testing::AssertionFailure() << "deploy: " << r->Describe() << "\nspec:\n" << yaml;
    }
    return ::testing::AssertionSuccess();
  }

  Result<HttpResponse> Publish(const std::string& channel, std::string_view data,
                               const std::string& query = "", const HttpHeaders& headers = {}) {
    std::string target = "/v1/channels/" + channel + "/publish";
    if (!query.empty()) target += "?" + query;
    return http_->Request("POST", target, data, headers);
  }

  // Publishes and checks that the node accepted it.
  ::testing::AssertionResult Published(const std::string& channel, std::string_view data,
                                       const std::string& query) {
    auto r = Publish(channel, data, query);
    if (!r.has_value()) return ::testing::AssertionFailure() << r.error().ToString();
    if (r->status != 200) return ::testing::AssertionFailure() << "publish: " << r->Describe();
    return ::testing::AssertionSuccess();
  }

  std::unique_ptr<MqttSubscriber> Subscribe(std::vector<std::string> filters) {
    MqttSubscriberOptions options;
    options.broker = daemon_->listen().mqtt;
    options.filters = std::move(filters);
    auto subscriber = MqttSubscriber::Start(options);
    if (!subscriber.has_value()) {
      ADD_FAILURE() << subscriber.error().ToString();
      return nullptr;
    }
    return std::move(*subscriber);
  }

  // GET /v1/functions: the "functions" array (null if the request failed).
  nlohmann::json Functions() {
    auto r = http_->Get("/v1/functions");
    if (!r.has_value() || r->status != 200) return nullptr;
    nlohmann::json json = r->Json();
    if (!json.is_object() || !json.contains("functions")) return nullptr;
    return json["functions"];
  }

  // The figures of one function (an empty object if it is not listed).
  nlohmann::json Stats(const std::string& pipeline, const std::string& function) {
    const nlohmann::json list = Functions();
    if (list.is_array()) {
      for (const nlohmann::json& f : list) {
        if (f.value("pipeline", "") == pipeline && f.value("function", "") == function) return f;
      }
    }
    return nlohmann::json::object();
  }

  // Waits until the figures of the function satisfy `done`.
  template <typename Done>
  ::testing::AssertionResult WaitForStats(const std::string& pipeline, const std::string& function,
                                          Done done, milliseconds timeout = kWait) {
    nlohmann::json last;
    if (PollUntil(
            [&] {
              last = Stats(pipeline, function);
              return done(last);
            },
            timeout)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "figures of " << pipeline << "/" << function << " never matched; last: "
           << last.dump();
  }

  // The lines of the function's log (the node's ring), as JSON objects.
  std::vector<nlohmann::json> LogLines(const std::string& pipeline, const std::string& function) {
    auto r = http_->Get("/v1/pipelines/" + pipeline + "/functions/" + function + "/logs?limit=5000");
    if (!r.has_value() || r->status != 200) return {};
    const nlohmann::json body = r->Json();
    if (!body.is_object() || !body.contains("lines") || !body["lines"].is_array()) return {};
    return body["lines"].get<std::vector<nlohmann::json>>();
  }

  static std::string DescribeLog(const std::vector<nlohmann::json>& lines) {
    std::string out;
    for (const nlohmann::json& line : lines) out += "\n  " + line.dump();
    return out;
  }

  // Waits for a log line whose message contains `part` (and whose source is `source`, if given).
  ::testing::AssertionResult WaitForLog(const std::string& pipeline, const std::string& function,
                                        const std::string& part, const std::string& source = "") {
    std::vector<nlohmann::json> lines;
    if (PollUntil(
            [&] {
              lines = LogLines(pipeline, function);
              return std::any_of(lines.begin(), lines.end(), [&](const nlohmann::json& line) {
                return line.value("message", "").find(part) != std::string::npos &&
                       (source.empty() || line.value("source", "") == source);
              });
            },
            kWait)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "no log line of " << pipeline << "/" << function
                                         << " contains \"" << part << "\" (source \"" << source
                                         << "\"); the log:" << DescribeLog(lines);
  }

  // The pids of the function's workers, from its "worker started (pid N)" log lines.
  std::vector<pid_t> WorkerPids(const std::string& pipeline, const std::string& function) {
    std::vector<pid_t> pids;
    for (const nlohmann::json& line : LogLines(pipeline, function)) {
      const std::string message = line.value("message", "");
      const std::string marker = "worker started (pid ";
      if (const size_t at = message.find(marker); at != std::string::npos) {
        pids.push_back(static_cast<pid_t>(std::atoi(message.c_str() + at + marker.size())));
      }
    }
    return pids;
  }

  // Waits for a message about `item_id` on the subscriber; returns it (a failure if none came).
  static ::testing::AssertionResult WaitForItem(const MqttSubscriber& subscriber,
                                                const std::string& item_id,
                                                milliseconds timeout = kWait) {
    if (subscriber.WaitFor(
            [&](const std::vector<MqttReceived>& messages) { return HasItem(messages, item_id); },
            timeout)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "no message for item " << item_id << " within "
                                         << timeout.count() << " ms; got "
                                         << DescribeAll(subscriber.Messages());
  }

  // The dead-letter message about `item_id`, parsed (null if there is none or it is not JSON).
  static nlohmann::json Letter(const MqttSubscriber& subscriber, const std::string& item_id) {
    for (const MqttReceived& m : ForItem(subscriber.Messages(), item_id)) {
      nlohmann::json json = nlohmann::json::parse(m.payload, nullptr, false);
      if (json.is_object()) return json;
    }
    return nullptr;
  }

  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<HttpClient> http_;
};

// A one-function spec in the process sandbox; $CODE, $P and the channels are substituted.
const char* kUpperSpec = R"(pipeline: $P
functions:
  upper:
    code: $CODE
    command: [/usr/bin/python3, upper.py]
    sandbox: process
    inputs: {in: $IN}
    outputs: {out: $OUT}
)";

// 1. One function: the output is the transformed input, with the input's item id as correlation
// data, its trace id and the invocation's start time; the figures and the log say so.
TEST_F(FunctionsTest, OneFunctionTransformsAnItemAndKeepsItsIdentity) {
  const fs::path code = CodeDir("upper", {"upper.py"});
  const std::string spec =
      Subst(kUpperSpec, {{"$CODE", code.string()}, {"$P", "p1"}, {"$IN", "t1/in"}, {"$OUT", "t1/out"}});
  EF_ASSERT_OK_AND_ASSIGN(auto deployed, Deploy(spec));
  ASSERT_EQ(deployed.status, 201) << deployed.Describe();
  nlohmann::json body = deployed.Json();
  EXPECT_EQ(body.value("pipeline", ""), "p1") << deployed.body;
  EXPECT_EQ(body.value("replaced", true), false) << deployed.body;
  EXPECT_EQ(body["functions"], nlohmann::json::array({"upper"})) << deployed.body;

  auto out = Subscribe({Topic("t1/out")});
  ASSERT_NE(out, nullptr);
  const int64_t before_ms = NowMillis();
  EF_ASSERT_OK_AND_ASSIGN(
      auto published,
      Publish("t1/in", "hello edge", "key=item-1",
              {{"Content-Type", "text/plain"},
               {"traceparent", std::string("00-") + kTraceId + "-00f067aa0ba902b7-01"}}));
  ASSERT_EQ(published.status, 200) << published.Describe();
  ASSERT_EQ(published.Json().value("item_id", ""), "item-1") << published.body;

  ASSERT_TRUE(WaitForItem(*out, "item-1"));
  const int64_t after_ms = NowMillis();
  const std::vector<MqttReceived> messages = out->Messages();
  ASSERT_EQ(messages.size(), 1u) << DescribeAll(messages);
  const MqttReceived& m = messages[0];
  EXPECT_EQ(m.topic, Topic("t1/out"));
  EXPECT_EQ(m.payload, "HELLO EDGE");
  EXPECT_EQ(m.correlation_data.value_or("<none>"), "item-1") << m.Describe();
  EXPECT_EQ(m.content_type, "text/plain") << m.Describe();
  EXPECT_EQ(m.Prop("ef-trace-id"), kTraceId) << m.Describe();
  ASSERT_NE(m.UserProperty("ef-invoked-at"), nullptr) << m.Describe();
  const int64_t invoked_at = std::atoll(m.UserProperty("ef-invoked-at")->c_str());
  EXPECT_GE(invoked_at, before_ms) << m.Describe();
  EXPECT_LE(invoked_at, after_ms) << m.Describe();

  EXPECT_TRUE(WaitForStats("p1", "upper", [](const nlohmann::json& f) {
    return f.value("done", 0) == 1 && f.value("workers", 0) >= 1 && f.value("failed", 1) == 0 &&
           f.value("in_flight", 1) == 0;
  }));
  EXPECT_TRUE(WaitForLog("p1", "upper", "worker started", "runtime"));
  EXPECT_TRUE(WaitForLog("p1", "upper", "upper handled item item-1 (input in, attempt 1)", "log"));

  EF_ASSERT_OK_AND_ASSIGN(auto listed, http_->Get("/v1/pipelines"));
  ASSERT_EQ(listed.status, 200) << listed.Describe();
  ASSERT_EQ(listed.Json()["pipelines"].size(), 1u) << listed.body;
  EXPECT_EQ(listed.Json()["pipelines"][0].value("name", ""), "p1") << listed.body;
  EF_ASSERT_OK_AND_ASSIGN(auto one, http_->Get("/v1/pipelines/p1"));
  ASSERT_EQ(one.status, 200) << one.Describe();
  EXPECT_EQ(one.Json().value("spec", ""), spec) << one.body;
}

// 2. A chain: A's output channel is B's input; B runs in bubblewrap. The item keeps its id and
// trace id through both stages.
TEST_F(FunctionsTest, ChainOfTwoFunctionsOneInBwrapDeliversEndToEnd) {
  if (::geteuid() != 0) {
    std::string why;
    if (!BwrapWorks(&why)) {
      GTEST_SKIP() << "bubblewrap cannot create a sandbox for this (non-root) user, so the bwrap "
                      "stage cannot run here: "
                   << why;
    }
  }
  const fs::path code = CodeDir("chain", {"upper.py", "probe.py"});
  const std::string spec = Subst(R"(pipeline: chain
functions:
  a:
    code: $CODE
    command: [/usr/bin/python3, upper.py]
    sandbox: process
    env: {PREFIX: "a:"}
    inputs: {in: t2/in}
    outputs: {out: t2/mid}
  b:
    code: $CODE
    command: [/usr/bin/python3, upper.py]
    sandbox: bwrap
    env: {PREFIX: "b:"}
    inputs: {in: t2/mid}
    outputs: {out: t2/out}
  probe:
    code: $CODE
    command: [/usr/bin/python3, probe.py]
    sandbox: bwrap
    env: {PORT: "$PORT", HOST_DIR: "$HOST"}
    inputs: {in: t2/probe}
    outputs: {out: t2/probed}
)",
                                 {{"$CODE", code.string()},
                                  {"$PORT", std::to_string(daemon_->http_port())},
                                  {"$HOST", temp_.path().string()}});
  ASSERT_TRUE(Deployed(spec));
  auto out = Subscribe({Topic("t2/out"), Topic("t2/mid")});
  ASSERT_NE(out, nullptr);
  EF_ASSERT_OK_AND_ASSIGN(
      auto published,
      Publish("t2/in", "chained", "key=c-1",
              {{"traceparent", std::string("00-") + kTraceId + "-00f067aa0ba902b7-01"}}));
  ASSERT_EQ(published.status, 200) << published.Describe();

  ASSERT_TRUE(out->WaitFor(
      [](const std::vector<MqttReceived>& messages) {
        return std::any_of(messages.begin(), messages.end(),
                           [](const MqttReceived& m) { return m.topic == Topic("t2/out"); });
      },
      kWait))
      << DescribeAll(out->Messages());
  std::map<std::string, MqttReceived> by_topic;
  for (const MqttReceived& m : out->Messages()) by_topic.emplace(m.topic, m);
  const MqttReceived& mid = by_topic[Topic("t2/mid")];
  const MqttReceived& end = by_topic[Topic("t2/out")];
  EXPECT_EQ(mid.payload, "a:CHAINED");
  EXPECT_EQ(end.payload, "b:A:CHAINED");
  EXPECT_EQ(mid.correlation_data.value_or("<none>"), "c-1") << mid.Describe();
  EXPECT_EQ(end.correlation_data.value_or("<none>"), "c-1") << end.Describe();
  EXPECT_EQ(end.Prop("ef-trace-id"), kTraceId) << end.Describe();
  EXPECT_NE(end.UserProperty("ef-invoked-at"), nullptr) << end.Describe();
  EXPECT_TRUE(WaitForStats("chain", "b", [](const nlohmann::json& f) {
    return f.value("done", 0) == 1 && f.value("failed", 1) == 0;
  }));

  // What a bwrap worker sees: its code read-only at /code, /usr read-only, a private /tmp, no
  // network (not even the node on loopback), none of the host's other files, only its env.
  auto probed = Subscribe({Topic("t2/probed")});
  ASSERT_NE(probed, nullptr);
  ASSERT_TRUE(Published("t2/probe", "look", "key=probe-1"));
  ASSERT_TRUE(WaitForItem(*probed, "probe-1"));
  const nlohmann::json seen = nlohmann::json::parse(probed->Messages()[0].payload, nullptr, false);
  ASSERT_TRUE(seen.is_object()) << probed->Messages()[0].payload;
  EXPECT_EQ(seen.value("cwd", ""), "/code") << seen.dump();
  EXPECT_EQ(seen["files"], nlohmann::json({"edgeflow_function.py", "probe.py", "upper.py"}))
      << seen.dump();
  EXPECT_EQ(seen.value("code_writable", true), false) << seen.dump();
  EXPECT_EQ(seen.value("usr_writable", true), false) << seen.dump();
  EXPECT_EQ(seen.value("tmp_writable", false), true) << seen.dump();
  EXPECT_EQ(seen.value("node_reachable", true), false) << seen.dump();
  EXPECT_EQ(seen.value("host_dir_visible", true), false) << seen.dump();
  // bwrap's --chdir also sets PWD (to /code); everything else is env: plus PATH, HOME, LANG.
  nlohmann::json env = seen["env"];
  if (env.is_array()) {
    env.erase(std::remove(env.begin(), env.end(), nlohmann::json("PWD")), env.end());
  }
  EXPECT_EQ(env, nlohmann::json({"HOME", "HOST_DIR", "LANG", "PATH", "PORT"})) << seen.dump();
}

// 3. Joins: the inputs of one item id are handed over together, in either order and interleaved
// with other items; an item whose other input never comes expires to the dead-letter channel.
TEST_F(FunctionsTest, JoinMatchesInputsByItemIdAndExpiresTheUnjoined) {
  const fs::path code = CodeDir("join", {"join.py"});
  ASSERT_TRUE(Deployed(Subst(R"(pipeline: pj
functions:
  fuse:
    code: $CODE
    command: [/usr/bin/python3, join.py]
    sandbox: process
    inputs: {frame: t3/frames, coords: t3/coords}
    outputs: {out: t3/out}
    join: {window_ms: 800}
)",
                             {{"$CODE", code.string()}})));
  auto out = Subscribe({Topic("t3/out"), Topic("dead-letter/pj/fuse")});
  ASSERT_NE(out, nullptr);

  // A: coords first, then its frame. B: a frame only. C and D interleaved.
  ASSERT_TRUE(Published("t3/coords", "coords-A", "key=A"));
  ASSERT_TRUE(Published("t3/frames", "frame-A", "key=A"));
  ASSERT_TRUE(Published("t3/frames", "frame-B", "key=B"));
  ASSERT_TRUE(Published("t3/frames", "frame-C", "key=C"));
  ASSERT_TRUE(Published("t3/coords", "coords-D", "key=D"));
  ASSERT_TRUE(Published("t3/frames", "frame-D", "key=D"));
  ASSERT_TRUE(Published("t3/coords", "coords-C", "key=C"));

  ASSERT_TRUE(out->WaitFor(
      [](const std::vector<MqttReceived>& messages) {
        return HasItem(messages, "A") && HasItem(messages, "B") && HasItem(messages, "C") &&
               HasItem(messages, "D");
      },
      kWait))
      << DescribeAll(out->Messages());
  for (const std::string& id : std::vector<std::string>{"A", "C", "D"}) {
    const std::vector<MqttReceived> joined = ForItem(out->Messages(), id);
    ASSERT_EQ(joined.size(), 1u) << id << ": " << DescribeAll(joined);
    EXPECT_EQ(joined[0].topic, Topic("t3/out"));
    const nlohmann::json both = nlohmann::json::parse(joined[0].payload, nullptr, false);
    EXPECT_EQ(both, nlohmann::json({{"coords", "coords-" + id}, {"frame", "frame-" + id}}))
        << joined[0].payload;
  }
  const std::vector<MqttReceived> expired = ForItem(out->Messages(), "B");
  ASSERT_EQ(expired.size(), 1u) << DescribeAll(expired);
  EXPECT_EQ(expired[0].topic, Topic("dead-letter/pj/fuse"));
  nlohmann::json letter = Letter(*out, "B");
  ASSERT_TRUE(letter.is_object()) << expired[0].payload;
  EXPECT_EQ(letter.value("pipeline", ""), "pj") << letter.dump();
  EXPECT_EQ(letter.value("function", ""), "fuse") << letter.dump();
  EXPECT_EQ(letter.value("item_id", ""), "B") << letter.dump();
  EXPECT_EQ(letter.value("kind", ""), "join_expired") << letter.dump();
  EXPECT_TRUE(Contains(letter.value("error", ""), "missing inputs: coords")) << letter.dump();
  ASSERT_TRUE(letter["inputs"].is_array()) << letter.dump();
  ASSERT_EQ(letter["inputs"].size(), 1u) << letter.dump();
  EXPECT_EQ(letter["inputs"][0].value("name", ""), "frame") << letter.dump();
  EXPECT_EQ(letter["inputs"][0].value("channel", ""), "t3/frames") << letter.dump();
  EXPECT_GT(letter.value("at_ms", int64_t{0}), 0) << letter.dump();

  EXPECT_TRUE(WaitForStats("pj", "fuse", [](const nlohmann::json& f) {
    return f.value("expired_unjoined", 0) == 1 && f.value("joining", 1) == 0 &&
           f.value("done", 0) == 3 && f.value("failed", 0) == 1;
  }));
}

// 4. Context per stream key: a counter keeps one count per stream, readable over EKV's HTTP API.
TEST_F(FunctionsTest, ContextIsKeptPerStreamKey) {
  const fs::path code = CodeDir("counter", {"counter.py"});
  ASSERT_TRUE(Deployed(Subst(R"(pipeline: pc
functions:
  count:
    code: $CODE
    command: [/usr/bin/python3, counter.py]
    sandbox: process
    inputs: {in: t4/in}
    outputs: {out: t4/out}
    context: {per_key: true}
)",
                             {{"$CODE", code.string()}})));
  auto out = Subscribe({Topic("t4/out")});
  ASSERT_NE(out, nullptr);
  const std::vector<std::pair<std::string, std::string>> items = {
      {"s1", "a"}, {"s2", "b"}, {"s1", "c"}, {"s1", "d"}, {"s2", "e"}};
  for (const auto& [stream, data] : items) {
    ASSERT_TRUE(Published("t4/in", data, "key=k-" + data + "&stream=" + stream));
  }
  ASSERT_TRUE(out->WaitForCount(items.size(), kWait)) << DescribeAll(out->Messages());
  std::map<std::string, std::string> by_item;
  for (const MqttReceived& m : out->Messages()) {
    by_item[m.correlation_data.value_or("?")] = m.payload;
    EXPECT_EQ(m.Prop("ef-stream"), m.payload.substr(0, 2)) << m.Describe();
  }
  EXPECT_EQ(by_item, (std::map<std::string, std::string>{{"k-a", "s1:1:a"},
                                                         {"k-b", "s2:1:b"},
                                                         {"k-c", "s1:2:c"},
                                                         {"k-d", "s1:3:d"},
                                                         {"k-e", "s2:2:e"}}));
  EF_ASSERT_OK_AND_ASSIGN(auto s1, http_->Get("/v1/kv/context/pc/count/s/s1/count"));
  EXPECT_EQ(s1.status, 200) << s1.Describe();
  EXPECT_EQ(s1.body, "3");
  EF_ASSERT_OK_AND_ASSIGN(auto s2, http_->Get("/v1/kv/context/pc/count/s/s2/count"));
  EXPECT_EQ(s2.status, 200) << s2.Describe();
  EXPECT_EQ(s2.body, "2");
  // Nothing was kept function-wide.
  EF_ASSERT_OK_AND_ASSIGN(auto wide, http_->Get("/v1/kv/context/pc/count/f/count"));
  EXPECT_EQ(wide.status, 404) << wide.Describe();
}

// 5. The same item id twice (the same ?key=): one invocation, one output, a duplicate counted.
TEST_F(FunctionsTest, DuplicateItemIdIsProcessedOnce) {
  const fs::path code = CodeDir("upper", {"upper.py"});
  ASSERT_TRUE(Deployed(Subst(
      kUpperSpec, {{"$CODE", code.string()}, {"$P", "pd"}, {"$IN", "t5/in"}, {"$OUT", "t5/out"}})));
  auto out = Subscribe({Topic("t5/out")});
  ASSERT_NE(out, nullptr);
  ASSERT_TRUE(Published("t5/in", "once", "key=dup-1"));
  ASSERT_TRUE(Published("t5/in", "twice", "key=dup-1"));
  ASSERT_TRUE(WaitForItem(*out, "dup-1"));
  ASSERT_TRUE(WaitForStats("pd", "upper", [](const nlohmann::json& f) {
    return f.value("duplicates", 0) >= 1 && f.value("done", 0) == 1;
  }));
  // The duplicate was dropped (counted above): no second output may come.
  EXPECT_FALSE(out->WaitForCount(2, kQuiet)) << DescribeAll(out->Messages());
  const std::vector<MqttReceived> messages = out->Messages();
  ASSERT_EQ(messages.size(), 1u) << DescribeAll(messages);
  EXPECT_EQ(messages[0].payload, "ONCE");
  EXPECT_EQ(Stats("pd", "upper").value("done", 0), 1) << Stats("pd", "upper").dump();
}

// dedupe_window_ms bounds how long a done item id is remembered: after it, the id is new again.
TEST_F(FunctionsTest, DedupeWindowExpires) {
  const fs::path code = CodeDir("upper", {"upper.py"});
  ASSERT_TRUE(Deployed(Subst(kUpperSpec + std::string("    dedupe_window_ms: 300\n"),
                             {{"$CODE", code.string()}, {"$P", "pdw"}, {"$IN", "t5w/in"},
                              {"$OUT", "t5w/out"}})));
  auto out = Subscribe({Topic("t5w/out")});
  ASSERT_NE(out, nullptr);
  ASSERT_TRUE(Published("t5w/in", "one", "key=dw-1"));
  ASSERT_TRUE(WaitForItem(*out, "dw-1"));
  ASSERT_TRUE(Published("t5w/in", "dropped", "key=dw-1"));
  ASSERT_TRUE(WaitForStats("pdw", "upper", [](const nlohmann::json& f) {
    return f.value("duplicates", 0) == 1;
  }));
  std::this_thread::sleep_for(milliseconds(500));  // past the 300 ms window
  ASSERT_TRUE(Published("t5w/in", "two", "key=dw-1"));
  ASSERT_TRUE(out->WaitForCount(2, kWait)) << DescribeAll(out->Messages());
  EXPECT_EQ(out->Messages()[1].payload, "TWO") << DescribeAll(out->Messages());
  // The node counts an item done when the broker acknowledges its output, which may come after
  // a subscriber already has it.
  EXPECT_TRUE(WaitForStats("pdw", "upper", [](const nlohmann::json& f) {
    return f.value("done", 0) == 2;
  })) << Stats("pdw", "upper").dump();
}

// 6. Every way a function can fail ends on the dead-letter channel with its kind, attempts and a
// clear error; the function keeps serving good items after each.
TEST_F(FunctionsTest, MisbehavingFunctionsGoToDeadLetterAndTheFunctionKeepsServing) {
  const fs::path code = CodeDir("misbehave", {"misbehave.py"});
  ASSERT_TRUE(Deployed(Subst(R"(pipeline: pb
functions:
  bad:
    code: $CODE
    command: [/usr/bin/python3, misbehave.py]
    sandbox: process
    env: {BIG_BYTES: "2000"}
    inputs: {in: t6/in}
    outputs: {out: t6/out}
    limits: {timeout_ms: 1500, max_payload_bytes: 1000}
    retry: {attempts: 2, backoff_ms: 20, backoff_max_ms: 50}
)",
                             {{"$CODE", code.string()}})));
  auto out = Subscribe({Topic("t6/out"), Topic("dead-letter/pb/bad")});
  ASSERT_NE(out, nullptr);

  const std::vector<std::string> bad = {"crash", "hang",      "garbage", "unknown",
                                        "big",   "permanent", "fail",    "toolarge"};
  for (const std::string& what : bad) {
    const std::string data = what == "toolarge" ? "ok:" + std::string(1500, 'x') : what + ":";
    ASSERT_TRUE(Published("t6/in", data, "key=bad-" + what));
    ASSERT_TRUE(Published("t6/in", "after-" + what, "key=good-" + what));
  }
  for (const std::string& what : bad) {
    EXPECT_TRUE(WaitForItem(*out, "bad-" + what));
    EXPECT_TRUE(WaitForItem(*out, "good-" + what));
  }
  const std::vector<MqttReceived> messages = out->Messages();
  for (const std::string& what : bad) {
    const std::vector<MqttReceived> good = ForItem(messages, "good-" + what);
    ASSERT_EQ(good.size(), 1u) << DescribeAll(good);
    EXPECT_EQ(good[0].topic, Topic("t6/out"));
    EXPECT_EQ(good[0].payload, "ok:after-" + what);
    const std::vector<MqttReceived> letters = ForItem(messages, "bad-" + what);
    ASSERT_EQ(letters.size(), 1u) << DescribeAll(letters);
    EXPECT_EQ(letters[0].topic, Topic("dead-letter/pb/bad")) << letters[0].Describe();
  }

  struct Expected {
    std::string kind;
    int attempts;
    std::vector<std::string> error_parts;
  };
  const std::map<std::string, Expected> expected = {
      {"crash", {"worker_died", 2, {"exit status 3", "misbehave: crashing on purpose"}}},
      {"hang", {"timed_out", 2, {"timed out after 1500 ms"}}},
      {"garbage", {"protocol_error", 1, {"protocol error", "header length"}}},
      {"unknown", {"protocol_error", 1, {"unknown output \"nope\"", "declared: out"}}},
      {"big", {"protocol_error", 1, {"2000 bytes", "max_payload_bytes"}}},
      {"permanent", {"function_error", 1, {"cannot parse this item (permanent)"}}},
      {"fail", {"function_error", 2, {"RuntimeError: failing on purpose, attempt 2"}}},
      {"toolarge", {"function_error", 1, {"input \"in\"", "1503 bytes", "max_payload_bytes (1000)"}}},
  };
  for (const auto& [what, want] : expected) {
    SCOPED_TRACE(what);
    nlohmann::json letter = Letter(*out, "bad-" + what);
    ASSERT_TRUE(letter.is_object()) << DescribeAll(ForItem(messages, "bad-" + what));
    EXPECT_EQ(letter.value("pipeline", ""), "pb") << letter.dump();
    EXPECT_EQ(letter.value("function", ""), "bad") << letter.dump();
    EXPECT_EQ(letter.value("kind", ""), want.kind) << letter.dump();
    EXPECT_EQ(letter.value("attempts", 0), want.attempts) << letter.dump();
    for (const std::string& part : want.error_parts) {
      EXPECT_TRUE(Contains(letter.value("error", ""), part)) << letter.dump();
    }
    ASSERT_TRUE(letter["inputs"].is_array() && letter["inputs"].size() == 1) << letter.dump();
    EXPECT_EQ(letter["inputs"][0].value("name", ""), "in") << letter.dump();
    EXPECT_EQ(letter["inputs"][0].value("channel", ""), "t6/in") << letter.dump();
    EXPECT_EQ(letter["inputs"][0].value("ref", ""), "/v1/kv/channels/bad-" + what) << letter.dump();
  }

  // A failure that goes away on a retry is no failure.
  ASSERT_TRUE(Published("t6/in", "flaky:", "key=flaky-1"));
  ASSERT_TRUE(WaitForItem(*out, "flaky-1"));
  const std::vector<MqttReceived> flaky = ForItem(out->Messages(), "flaky-1");
  ASSERT_EQ(flaky.size(), 1u) << DescribeAll(flaky);
  EXPECT_EQ(flaky[0].topic, Topic("t6/out"));
  EXPECT_EQ(flaky[0].payload, "ok:flaky:");
  EXPECT_TRUE(WaitForLog("pb", "bad", "item flaky-1 attempt 1 failed: RuntimeError: flaky on attempt 1",
                         "runtime"));

  EXPECT_TRUE(WaitForStats("pb", "bad", [&](const nlohmann::json& f) {
    return f.value("failed", 0) == static_cast<int>(bad.size()) &&
           f.value("done", 0) == static_cast<int>(bad.size()) + 1 &&
           f.value("in_flight", 1) == 0 && f.value("queued", 1) == 0 &&
           f.value("retries", 0) == 4 &&  // crash, hang, fail, flaky
           // crash x2, hang x2, garbage, big: workers that had to be replaced
           f.value("worker_failures", 0) >= 6;
  }));
  EF_ASSERT_OK_AND_ASSIGN(auto node, http_->Get("/v1/node"));
  EXPECT_EQ(node.status, 200) << node.Describe();
  EXPECT_TRUE(daemon_->IsRunning());
}

// 7. A worker that cannot start: its items go to the dead-letter channel with the reason, and
// the node carries on.
TEST_F(FunctionsTest, WorkerThatFailsToStartSendsItemsToDeadLetter) {
  const fs::path code = CodeDir("nostart", {"notexec.py"});
  ASSERT_TRUE(Deployed(Subst(R"yaml(pipeline: ps
functions:
  missing:
    code: $CODE
    command: [no-such-program-for-edgeflow-tests, x]
    sandbox: process
    inputs: {in: t7/a}
    retry: {attempts: 2, backoff_ms: 20}
  notexec:
    code: $CODE
    command: [./notexec.py]
    sandbox: process
    inputs: {in: t7/b}
    retry: {attempts: 2, backoff_ms: 20}
  exits:
    code: $CODE
    command: [/usr/bin/python3, -c, "import sys; print('no model file', file=sys.stderr); sys.exit(5)"]
    sandbox: process
    inputs: {in: t7/c}
    retry: {attempts: 1}
    dead_letter: t7/dead
  chatty:
    code: $CODE
    command: [/usr/bin/python3, -c, "import time; print('hello', flush=True); time.sleep(30)"]
    sandbox: process
    inputs: {in: t7/d}
    retry: {attempts: 1}
)yaml",
                             {{"$CODE", code.string()}})));
  auto out = Subscribe({Topic("dead-letter/ps/#"), Topic("t7/dead")});
  ASSERT_NE(out, nullptr);
  ASSERT_TRUE(Published("t7/a", "x", "key=m-1"));
  ASSERT_TRUE(Published("t7/b", "x", "key=n-1"));
  ASSERT_TRUE(Published("t7/c", "x", "key=e-1"));
  ASSERT_TRUE(Published("t7/d", "x", "key=c-1"));
  ASSERT_TRUE(WaitForItem(*out, "m-1"));
  ASSERT_TRUE(WaitForItem(*out, "n-1"));
  ASSERT_TRUE(WaitForItem(*out, "e-1"));
  ASSERT_TRUE(WaitForItem(*out, "c-1"));

  // A worker that exits before "ready": its exit status and last stderr lines, on the
  // dead-letter channel the spec names.
  const std::vector<MqttReceived> exited = ForItem(out->Messages(), "e-1");
  ASSERT_EQ(exited.size(), 1u) << DescribeAll(exited);
  EXPECT_EQ(exited[0].topic, Topic("t7/dead")) << exited[0].Describe();
  nlohmann::json exits = Letter(*out, "e-1");
  EXPECT_EQ(exits.value("kind", ""), "worker_died") << exits.dump();
  EXPECT_EQ(exits.value("attempts", 0), 1) << exits.dump();
  for (const char* part : {"worker failed to start", "exited before it was ready",
                           "exit status 5", "no model file"}) {
    EXPECT_TRUE(Contains(exits.value("error", ""), part)) << exits.dump();
  }
  // A worker that writes something else than frames on stdout before "ready".
  nlohmann::json chatty = Letter(*out, "c-1");
  EXPECT_EQ(chatty.value("kind", ""), "worker_died") << chatty.dump();
  EXPECT_TRUE(Contains(chatty.value("error", ""), "worker failed to start")) << chatty.dump();
  EXPECT_TRUE(Contains(chatty.value("error", ""), "protocol error before \"ready\""))
      << chatty.dump();

  nlohmann::json missing = Letter(*out, "m-1");
  ASSERT_TRUE(missing.is_object()) << DescribeAll(out->Messages());
  EXPECT_EQ(missing.value("function", ""), "missing") << missing.dump();
  EXPECT_EQ(missing.value("kind", ""), "worker_died") << missing.dump();
  EXPECT_EQ(missing.value("attempts", 0), 2) << missing.dump();
  EXPECT_TRUE(Contains(missing.value("error", ""), "worker failed to start")) << missing.dump();
  EXPECT_TRUE(Contains(missing.value("error", ""),
                       "command not found: no-such-program-for-edgeflow-tests"))
      << missing.dump();

  nlohmann::json notexec = Letter(*out, "n-1");
  ASSERT_TRUE(notexec.is_object()) << DescribeAll(out->Messages());
  EXPECT_EQ(notexec.value("function", ""), "notexec") << notexec.dump();
  EXPECT_EQ(notexec.value("kind", ""), "worker_died") << notexec.dump();
  EXPECT_TRUE(Contains(notexec.value("error", ""), "worker failed to start")) << notexec.dump();
  EXPECT_TRUE(Contains(notexec.value("error", ""), "cannot execute")) << notexec.dump();
  EXPECT_TRUE(Contains(notexec.value("error", ""), "Permission denied")) << notexec.dump();

  EXPECT_TRUE(WaitForStats("ps", "missing", [](const nlohmann::json& f) {
    return f.value("failed", 0) == 1 && f.value("workers", 1) == 0 &&
           f.value("worker_failures", 0) >= 2 &&
           f.value("last_error", "").find("worker failed to start") != std::string::npos;
  }));
  EXPECT_TRUE(WaitForLog("ps", "missing", "worker failed to start", "runtime"));
  EF_ASSERT_OK_AND_ASSIGN(auto node, http_->Get("/v1/node"));
  EXPECT_EQ(node.status, 200) << node.Describe();
  EXPECT_TRUE(daemon_->IsRunning());
  // The node still publishes and serves other pipelines.
  const fs::path good = CodeDir("upper", {"upper.py"});
  ASSERT_TRUE(Deployed(Subst(
      kUpperSpec, {{"$CODE", good.string()}, {"$P", "pok"}, {"$IN", "t7/in"}, {"$OUT", "t7/out"}})));
  auto ok = Subscribe({Topic("t7/out")});
  ASSERT_NE(ok, nullptr);
  ASSERT_TRUE(Published("t7/in", "fine", "key=ok-1"));
  EXPECT_TRUE(WaitForItem(*ok, "ok-1"));
}

// 8. Deploy errors: every spec problem with its line; relative code without ?dir; missing code
// directory; unknown pipelines. Nothing is left half-deployed.
TEST_F(FunctionsTest, DeployErrorsAreReportedPrecisely) {
  // Line 3: a cycle f -> g -> f; line 8: a typo'd key; line 9: g has no command.
  const std::string broken = R"(pipeline: bad
functions:
  f:
    code: /tmp
    command: [x]
    inputs: {in: t8/a}
    outputs: {out: t8/b}
    colour: blue
  g:
    code: /tmp
    inputs: {in: t8/b}
    outputs: {out: t8/a}
)";
  EF_ASSERT_OK_AND_ASSIGN(auto r, Deploy(broken, "source=broken.yaml"));
  ASSERT_EQ(r.status, 400) << r.Describe();
  EXPECT_EQ(r.ErrorField("code"), "INVALID_ARGUMENT") << r.body;
  const std::string message = r.ErrorField("message");
  EXPECT_TRUE(Contains(message, "3 problems")) << r.body;
  EXPECT_TRUE(Contains(message, "broken.yaml:8:5: functions.f.colour: unknown key 'colour'"))
      << r.body;
  nlohmann::json problems = r.Json()["problems"];
  ASSERT_TRUE(problems.is_array()) << r.body;
  ASSERT_EQ(problems.size(), 3u) << r.body;
  EXPECT_EQ(problems[0].value("line", 0), 3) << problems.dump();
  EXPECT_EQ(problems[0].value("path", ""), "functions.f") << problems.dump();
  EXPECT_TRUE(Contains(problems[0].value("message", ""), "f -> g -> f")) << problems.dump();
  EXPECT_TRUE(Contains(problems[0].value("message", ""), "allow_cycle")) << problems.dump();
  EXPECT_EQ(problems[1].value("line", 0), 8) << problems.dump();
  EXPECT_EQ(problems[1].value("column", 0), 5) << problems.dump();
  EXPECT_EQ(problems[1].value("path", ""), "functions.f.colour") << problems.dump();
  EXPECT_TRUE(Contains(problems[1].value("message", ""), "unknown key")) << problems.dump();
  EXPECT_EQ(problems[2].value("line", 0), 9) << problems.dump();
  EXPECT_EQ(problems[2].value("path", ""), "functions.g.command") << problems.dump();
  EXPECT_TRUE(Contains(problems[2].value("message", ""), "is required")) << problems.dump();

  // Not YAML at all, and nothing: a problem with its place, and one without.
  EF_ASSERT_OK_AND_ASSIGN(auto garbled, Deploy("pipeline: x\nfunctions: [unclosed\n"));
  EXPECT_EQ(garbled.status, 400) << garbled.Describe();
  ASSERT_TRUE(garbled.Json()["problems"].is_array()) << garbled.body;
  ASSERT_EQ(garbled.Json()["problems"].size(), 1u) << garbled.body;
  EXPECT_GT(garbled.Json()["problems"][0].value("line", 0), 0) << garbled.body;
  EXPECT_TRUE(Contains(garbled.Json()["problems"][0].value("message", ""), "invalid YAML"))
      << garbled.body;
  EF_ASSERT_OK_AND_ASSIGN(auto empty, Deploy(""));
  EXPECT_EQ(empty.status, 400) << empty.Describe();
  EXPECT_TRUE(Contains(empty.ErrorField("message"), "the spec is empty")) << empty.body;

  const fs::path code = CodeDir("upper", {"upper.py"});
  const std::string relative = R"(pipeline: rel
functions:
  f:
    code: ./upper
    command: [/usr/bin/python3, upper.py]
    sandbox: process
    inputs: {in: t8/in}
)";
  EF_ASSERT_OK_AND_ASSIGN(auto no_dir, Deploy(relative));
  EXPECT_EQ(no_dir.status, 400) << no_dir.Describe();
  EXPECT_EQ(no_dir.ErrorField("code"), "INVALID_ARGUMENT") << no_dir.body;
  EXPECT_TRUE(Contains(no_dir.ErrorField("message"), "relative path")) << no_dir.body;
  EXPECT_TRUE(Contains(no_dir.ErrorField("message"), "?dir=")) << no_dir.body;
  EF_ASSERT_OK_AND_ASSIGN(auto relative_dir, Deploy(relative, "dir=somewhere"));
  EXPECT_EQ(relative_dir.status, 400) << relative_dir.Describe();
  EXPECT_TRUE(Contains(relative_dir.ErrorField("message"), "absolute")) << relative_dir.body;

  const std::string missing_dir = temp_.Sub("no-such-code").string();
  EF_ASSERT_OK_AND_ASSIGN(
      auto missing, Deploy(Subst(R"(pipeline: miss
functions:
  f:
    code: $CODE
    command: [/usr/bin/python3, upper.py]
    sandbox: process
    inputs: {in: t8/in}
)",
                                 {{"$CODE", missing_dir}})));
  EXPECT_EQ(missing.status, 404) << missing.Describe();
  EXPECT_EQ(missing.ErrorField("code"), "NOT_FOUND") << missing.body;
  EXPECT_TRUE(Contains(missing.ErrorField("message"), missing_dir)) << missing.body;

  EF_ASSERT_OK_AND_ASSIGN(auto undeploy, http_->Delete("/v1/pipelines/nope"));
  EXPECT_EQ(undeploy.status, 404) << undeploy.Describe();
  EXPECT_EQ(undeploy.ErrorField("code"), "NOT_FOUND") << undeploy.body;
  EF_ASSERT_OK_AND_ASSIGN(auto get, http_->Get("/v1/pipelines/nope"));
  EXPECT_EQ(get.status, 404) << get.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto logs, http_->Get("/v1/pipelines/nope/functions/f/logs"));
  EXPECT_EQ(logs.status, 404) << logs.Describe();
  for (const char* query : {"limit=0", "limit=5001", "limit=x", "since=-1"}) {
    EF_ASSERT_OK_AND_ASSIGN(auto bad_logs,
                            http_->Get(std::string("/v1/pipelines/nope/functions/f/logs?") + query));
    EXPECT_EQ(bad_logs.status, 400) << query << ": " << bad_logs.Describe();
  }

  // None of the refused deploys left anything behind; the relative spec deploys with ?dir.
  EF_ASSERT_OK_AND_ASSIGN(auto listed, http_->Get("/v1/pipelines"));
  EXPECT_EQ(listed.Json()["pipelines"], nlohmann::json::array()) << listed.body;
  EF_ASSERT_OK_AND_ASSIGN(auto with_dir, Deploy(relative, "dir=" + temp_.path().string()));
  EXPECT_EQ(with_dir.status, 201) << with_dir.Describe();
}

// 9a. Deployed pipelines survive a clean restart of the node.
TEST_F(FunctionsTest, PipelineSurvivesRestart) {
  const fs::path code = CodeDir("upper", {"upper.py"});
  ASSERT_TRUE(Deployed(Subst(
      kUpperSpec, {{"$CODE", code.string()}, {"$P", "pr"}, {"$IN", "t9/in"}, {"$OUT", "t9/out"}})));
  {
    auto out = Subscribe({Topic("t9/out")});
    ASSERT_NE(out, nullptr);
    ASSERT_TRUE(Published("t9/in", "before", "key=r-1"));
    ASSERT_TRUE(WaitForItem(*out, "r-1"));
  }
  // The user's code directory is gone: the node runs its own snapshot.
  fs::remove_all(code);
  ASSERT_NO_FATAL_FAILURE(Restart(/*crash=*/false));

  EF_ASSERT_OK_AND_ASSIGN(auto listed, http_->Get("/v1/pipelines"));
  ASSERT_EQ(listed.status, 200) << listed.Describe();
  ASSERT_EQ(listed.Json()["pipelines"].size(), 1u) << listed.body;
  EXPECT_EQ(listed.Json()["pipelines"][0].value("name", ""), "pr") << listed.body;
  auto out = Subscribe({Topic("t9/out")});
  ASSERT_NE(out, nullptr);
  ASSERT_TRUE(Published("t9/in", "after", "key=r-2"));
  ASSERT_TRUE(WaitForItem(*out, "r-2"));
  EXPECT_EQ(ForItem(out->Messages(), "r-2")[0].payload, "AFTER");
  // Items done before the restart are still known within the dedupe window.
  ASSERT_TRUE(Published("t9/in", "before again", "key=r-1"));
  EXPECT_TRUE(WaitForStats("pr", "upper", [](const nlohmann::json& f) {
    return f.value("duplicates", 0) == 1 && f.value("done", 0) == 1;
  }));
  EXPECT_FALSE(HasItem(out->Messages(), "r-1")) << DescribeAll(out->Messages());
}

// 9b. At least once across a crash: an item in flight when the node is killed runs again after
// the restart, and its output arrives. The worker does not outlive the node.
TEST_F(FunctionsTest, ItemInFlightAtKillIsRecoveredAfterRestart) {
  const fs::path code = CodeDir("slow", {"slow.py"});
  ASSERT_TRUE(Deployed(Subst(R"(pipeline: pk
functions:
  slow:
    code: $CODE
    command: [/usr/bin/python3, slow.py]
    sandbox: process
    env: {SLEEP_MS: "1500"}
    inputs: {in: t9k/in}
    outputs: {out: t9k/out}
)",
                             {{"$CODE", code.string()}})));
  ASSERT_TRUE(Published("t9k/in", "precious", "key=k-1"));
  ASSERT_TRUE(WaitForStats("pk", "slow", [](const nlohmann::json& f) {
    return f.value("in_flight", 0) == 1;
  }));
  ASSERT_TRUE(WaitForLog("pk", "slow", "slow: sleeping for item k-1", "log"));
  const std::vector<pid_t> workers = WorkerPids("pk", "slow");
  ASSERT_FALSE(workers.empty());

  ASSERT_NO_FATAL_FAILURE(Restart(/*crash=*/true));
  for (pid_t pid : workers) {
    EXPECT_TRUE(PollUntil([&] { return ProcessGone(pid); }, kWait))
        << "worker " << pid << " outlived the killed node (state " << ProcessState(pid) << ")";
  }
  auto out = Subscribe({Topic("t9k/out")});
  ASSERT_NE(out, nullptr);
  ASSERT_TRUE(WaitForItem(*out, "k-1"));
  const std::vector<MqttReceived> messages = out->Messages();
  EXPECT_EQ(messages[0].payload, "done:precious");
  EXPECT_TRUE(WaitForStats("pk", "slow", [](const nlohmann::json& f) {
    return f.value("done", 0) == 1 && f.value("in_flight", 1) == 0;
  }));
  EXPECT_TRUE(WaitForLog("pk", "slow", "recovered 1 pending items after a restart", "runtime"));
}

// 10. Undeploy: the function stops consuming, its workers end, and deploying again starts clean.
TEST_F(FunctionsTest, UndeployStopsTheFunctionAndRedeployWorks) {
  const fs::path code = CodeDir("upper", {"upper.py"});
  const std::string spec =
      Subst(kUpperSpec, {{"$CODE", code.string()}, {"$P", "pu"}, {"$IN", "t10/in"}, {"$OUT", "t10/out"}});
  ASSERT_TRUE(Deployed(spec));
  auto out = Subscribe({Topic("t10/out"), Topic("t10/in")});
  ASSERT_NE(out, nullptr);
  ASSERT_TRUE(Published("t10/in", "first", "key=u-1"));
  ASSERT_TRUE(out->WaitFor(
      [](const std::vector<MqttReceived>& messages) {
        return std::count_if(messages.begin(), messages.end(),
                             [](const MqttReceived& m) { return m.topic == Topic("t10/out"); }) == 1;
      },
      kWait))
      << DescribeAll(out->Messages());
  const std::vector<pid_t> workers = WorkerPids("pu", "upper");
  ASSERT_FALSE(workers.empty());

  EF_ASSERT_OK_AND_ASSIGN(auto removed, http_->Delete("/v1/pipelines/pu"));
  ASSERT_EQ(removed.status, 200) << removed.Describe();
  EXPECT_EQ(removed.Json().value("undeployed", false), true) << removed.body;
  EXPECT_EQ(Functions(), nlohmann::json::array());
  EF_ASSERT_OK_AND_ASSIGN(auto listed, http_->Get("/v1/pipelines"));
  EXPECT_EQ(listed.Json()["pipelines"], nlohmann::json::array()) << listed.body;
  for (pid_t pid : workers) {
    EXPECT_TRUE(PollUntil([&] { return ProcessGone(pid); }, kWait)) << "worker " << pid;
  }

  // The input is still delivered on the broker (we see it), but nothing computes on it.
  ASSERT_TRUE(Published("t10/in", "nobody", "key=u-2"));
  auto count_on = [&](const std::string& topic) {
    const std::vector<MqttReceived> messages = out->Messages();
    return std::count_if(messages.begin(), messages.end(),
                         [&](const MqttReceived& m) { return m.topic == Topic(topic); });
  };
  ASSERT_TRUE(PollUntil([&] { return count_on("t10/in") == 2; }, kWait))
      << DescribeAll(out->Messages());
  EXPECT_FALSE(out->WaitFor(
      [](const std::vector<MqttReceived>& messages) {
        return std::count_if(messages.begin(), messages.end(), [](const MqttReceived& m) {
                 return m.topic == Topic("t10/out");
               }) > 1;
      },
      kQuiet))
      << DescribeAll(out->Messages());

  // Deploying again starts clean: the item id u-1 is not remembered as done.
  EF_ASSERT_OK_AND_ASSIGN(auto again, Deploy(spec));
  ASSERT_EQ(again.status, 201) << again.Describe();
  EXPECT_EQ(again.Json().value("replaced", true), false) << again.body;
  ASSERT_TRUE(Published("t10/in", "second", "key=u-1"));
  ASSERT_TRUE(out->WaitFor(
      [](const std::vector<MqttReceived>& messages) {
        return std::any_of(messages.begin(), messages.end(), [](const MqttReceived& m) {
          return m.topic == Topic("t10/out") && m.payload == "SECOND";
        });
      },
      kWait))
      << DescribeAll(out->Messages());
  EXPECT_TRUE(WaitForStats("pu", "upper", [](const nlohmann::json& f) {
    return f.value("done", 0) == 1 && f.value("duplicates", 1) == 0;
  }));
}

// 11. The CLI: deploy (code relative to the spec's directory, not the working directory), ps,
// logs, undeploy, and a spec error with its lines.
TEST_F(FunctionsTest, CliDeploysListsShowsLogsAndUndeploys) {
  const fs::path specs = temp_.Sub("specs");
  fs::create_directories(specs);
  CodeDir("specs/fn", {"upper.py"});
  {
    std::ofstream spec(specs / "spec.yaml");
    spec << R"(pipeline: cli
functions:
  upper:
    code: ./fn
    command: [/usr/bin/python3, upper.py]
    sandbox: process
    inputs: {in: t11/in}
    outputs: {out: t11/out}
)";
  }
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", daemon_->http_url()});
    CommandOptions options;
    options.cwd = temp_.path();  // "./fn" is not here: only the spec's directory has it
    return RunCommand(CliBinary(), args, options);
  };

  auto deploy = cli({"deploy", "specs/spec.yaml"});
  ASSERT_EQ(deploy.exit_code(), 0) << deploy.Describe();
  EXPECT_TRUE(Contains(deploy.out, "deployed pipeline cli (upper)")) << deploy.Describe();

  auto out = Subscribe({Topic("t11/out")});
  ASSERT_NE(out, nullptr);
  auto pub = cli({"pub", "t11/in", "from the cli", "--key", "cli-1", "--stream", "s"});
  ASSERT_EQ(pub.exit_code(), 0) << pub.Describe();
  ASSERT_TRUE(WaitForItem(*out, "cli-1"));
  EXPECT_EQ(out->Messages()[0].payload, "FROM THE CLI");
  EXPECT_EQ(out->Messages()[0].Prop("ef-stream"), "s") << out->Messages()[0].Describe();
  ASSERT_TRUE(WaitForStats("cli", "upper", [](const nlohmann::json& f) {
    return f.value("done", 0) == 1;
  }));

  auto ps = cli({"ps"});
  ASSERT_EQ(ps.exit_code(), 0) << ps.Describe();
  const std::vector<std::string> rows = SplitLines(ps.out);
  ASSERT_GE(rows.size(), 2u) << ps.Describe();
  EXPECT_TRUE(Contains(rows[0], "FUNCTION")) << ps.Describe();
  EXPECT_EQ(rows[1].rfind("cli/upper", 0), 0u) << ps.Describe();
  auto ps_json = cli({"ps", "--json"});
  ASSERT_EQ(ps_json.exit_code(), 0) << ps_json.Describe();
  nlohmann::json listed = nlohmann::json::parse(ps_json.out, nullptr, false);
  ASSERT_TRUE(listed.is_object()) << ps_json.Describe();
  ASSERT_EQ(listed["functions"].size(), 1u) << ps_json.out;
  EXPECT_EQ(listed["functions"][0].value("done", 0), 1) << ps_json.out;

  auto logs = cli({"logs", "upper"});
  ASSERT_EQ(logs.exit_code(), 0) << logs.Describe();
  EXPECT_TRUE(Contains(logs.out, "worker started")) << logs.Describe();
  EXPECT_TRUE(Contains(logs.out, "upper handled item cli-1")) << logs.Describe();
  auto logs_json = cli({"logs", "cli/upper", "-n", "1", "--json"});
  ASSERT_EQ(logs_json.exit_code(), 0) << logs_json.Describe();
  EXPECT_EQ(SplitLines(logs_json.out).size(), 1u) << logs_json.Describe();
  auto follow = cli({"logs", "upper", "-f", "-W", "0.5"});
  EXPECT_EQ(follow.exit_code(), 0) << follow.Describe();
  EXPECT_TRUE(Contains(follow.out, "upper handled item cli-1")) << follow.Describe();
  auto no_such = cli({"logs", "nosuchfunction"});
  EXPECT_EQ(no_such.exit_code(), 1) << no_such.Describe();

  auto undeploy = cli({"undeploy", "cli"});
  EXPECT_EQ(undeploy.exit_code(), 0) << undeploy.Describe();
  EXPECT_TRUE(Contains(undeploy.out, "undeployed pipeline cli")) << undeploy.Describe();
  auto again = cli({"undeploy", "cli"});
  EXPECT_EQ(again.exit_code(), 1) << again.Describe();
  EXPECT_TRUE(Contains(again.err, "no pipeline \"cli\"")) << again.Describe();

  // A spec with problems: refused by the node, every problem printed with its line.
  {
    std::ofstream bad(specs / "bad.yaml");
    bad << R"(pipeline: clibad
functions:
  f:
    code: ./fn
    inputs: {in: t11/x}
    colour: blue
)";
  }
  auto refused = cli({"deploy", "specs/bad.yaml"});
  EXPECT_EQ(refused.exit_code(), 1) << refused.Describe();
  EXPECT_TRUE(Contains(refused.err, "specs/bad.yaml:3:3: functions.f.command: is required"))
      << refused.Describe();
  EXPECT_TRUE(Contains(refused.err, "specs/bad.yaml:6:5: functions.f.colour: unknown key"))
      << refused.Describe();
  EXPECT_EQ(Functions(), nlohmann::json::array());
}

// A join whose inputs travel by reference (claim check, as large frames do): each input must be
// handed over with the data that was published for it. With ?key= the item id is also the EKV
// key; two inputs published under one key in one namespace overwrite each other in EKV (which
// keeps one version), so the runtime refuses to hand the function the same bytes twice and says
// why. In distinct namespaces the same key joins correctly.
TEST_F(FunctionsTest, JoinedInputsByReferenceKeepTheirOwnData) {
  const fs::path code = CodeDir("join", {"join.py"});
  ASSERT_TRUE(Deployed(Subst(R"(pipeline: pjr
functions:
  fuse:
    code: $CODE
    command: [/usr/bin/python3, join.py]
    sandbox: process
    inputs: {frame: t12/frames, coords: t12/coords}
    outputs: {out: t12/out}
    join: {window_ms: 5000}
)",
                             {{"$CODE", code.string()}})));
  auto out = Subscribe({Topic("t12/out"), Topic("dead-letter/pjr/fuse")});
  ASSERT_NE(out, nullptr);
  ASSERT_TRUE(Published("t12/frames", "frame-R", "key=R&mode=ref"));
  ASSERT_TRUE(Published("t12/coords", "coords-R", "key=R&mode=ref"));
  ASSERT_TRUE(WaitForItem(*out, "R"));
  std::vector<MqttReceived> messages = ForItem(out->Messages(), "R");
  ASSERT_EQ(messages.size(), 1u) << DescribeAll(messages);
  EXPECT_EQ(messages[0].topic, Topic("dead-letter/pjr/fuse")) << messages[0].payload;
  const nlohmann::json letter = nlohmann::json::parse(messages[0].payload, nullptr, false);
  EXPECT_TRUE(Contains(letter.value("error", std::string()), "were stored under the same key"))
      << messages[0].payload;
  EXPECT_EQ(letter.value("attempts", 0), 1) << messages[0].payload;

  ASSERT_TRUE(Published("t12/frames", "frame-S", "key=S&mode=ref&ns=frames"));
  ASSERT_TRUE(Published("t12/coords", "coords-S", "key=S&mode=ref&ns=faces"));
  ASSERT_TRUE(WaitForItem(*out, "S"));
  messages = ForItem(out->Messages(), "S");
  ASSERT_EQ(messages.size(), 1u) << DescribeAll(messages);
  EXPECT_EQ(messages[0].topic, Topic("t12/out")) << messages[0].payload;
  EXPECT_EQ(nlohmann::json::parse(messages[0].payload, nullptr, false),
            nlohmann::json({{"coords", "coords-S"}, {"frame", "frame-S"}}))
      << messages[0].payload;
}

// An item split into parts: each part gets the item id "<item_id>.<part>"; parts too large to
// travel inline go by reference, and the next function reads them from EKV.
TEST_F(FunctionsTest, OutputPartsGetTheirOwnIdsAndLargeDataTravelsByReference) {
  const fs::path code = CodeDir("split", {"split.py", "upper.py"});
  ASSERT_TRUE(Deployed(Subst(R"(pipeline: psplit
functions:
  split:
    code: $CODE
    command: [/usr/bin/python3, split.py]
    sandbox: process
    inputs: {in: t13/in}
    outputs: {out: t13/parts}
  upper:
    code: $CODE
    command: [/usr/bin/python3, upper.py]
    sandbox: process
    inputs: {in: t13/parts}
    outputs: {out: t13/out}
)",
                             {{"$CODE", code.string()}})));
  auto out = Subscribe({Topic("t13/parts"), Topic("t13/out")});
  ASSERT_NE(out, nullptr);
  constexpr size_t kBig = 100'000;  // above the node's inline limit (64 KiB)
  ASSERT_TRUE(Published("t13/in", "2:" + std::to_string(kBig), "key=S"));
  ASSERT_TRUE(Published("t13/in", "1:5", "key=T"));
  ASSERT_TRUE(out->WaitForCount(6, kWait)) << DescribeAll(out->Messages());

  std::map<std::pair<std::string, std::string>, MqttReceived> got;  // (topic, item id)
  for (const MqttReceived& m : out->Messages()) got[{m.topic, m.correlation_data.value_or("")}] = m;
  ASSERT_EQ(got.size(), 6u) << DescribeAll(out->Messages());
  for (const auto& [id, letter] : std::vector<std::pair<std::string, char>>{{"S.p0", 'A'},
                                                                            {"S.p1", 'B'}}) {
    SCOPED_TRACE(id);
    ASSERT_TRUE(got.contains({Topic("t13/out"), id})) << DescribeAll(out->Messages());
    const MqttReceived& m = got[{Topic("t13/out"), id}];
    EXPECT_EQ(m.Prop("ef-data"), "ref") << m.Describe();
    EXPECT_EQ(m.Prop("ef-size"), std::to_string(kBig)) << m.Describe();
    EXPECT_EQ(m.Prop("ef-ref"), "/v1/kv/channels/t13/out/" + id) << m.Describe();
    EF_ASSERT_OK_AND_ASSIGN(auto data, http_->Get(m.Prop("ef-ref")));
    ASSERT_EQ(data.status, 200) << data.Describe();
    EXPECT_EQ(data.body, std::string(kBig, letter));
  }
  ASSERT_TRUE(got.contains({Topic("t13/out"), "T.p0"})) << DescribeAll(out->Messages());
  EXPECT_EQ((got[{Topic("t13/out"), "T.p0"}].payload), "AAAAA");
  EXPECT_TRUE(WaitForStats("psplit", "upper", [](const nlohmann::json& f) {
    return f.value("done", 0) == 3 && f.value("failed", 1) == 0;
  }));
}

// Triggers from plain MQTT clients (no envelope) are computed on; a message whose envelope is
// malformed is rejected to the dead-letter channel.
TEST_F(FunctionsTest, PlainMqttTriggersWorkAndMalformedOnesAreRejected) {
  const fs::path code = CodeDir("tracer", {"tracer.py"});
  ASSERT_TRUE(Deployed(Subst(R"(pipeline: pm
functions:
  trace:
    code: $CODE
    command: [/usr/bin/python3, tracer.py]
    sandbox: process
    inputs: {in: t14/in}
    outputs: {out: t14/out}
)",
                             {{"$CODE", code.string()}})));
  auto out = Subscribe({Topic("t14/out"), Topic("dead-letter/pm/trace")});
  ASSERT_NE(out, nullptr);
  const HostPort broker = daemon_->listen().mqtt;
  auto mqtt_pub = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"-V", "mqttv5", "-h", broker.host, "-p",
                                     std::to_string(broker.port), "-q", "1",
                                     "-t", Topic("t14/in")};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCommand("mosquitto_pub", args);
  };
  auto bad = mqtt_pub({"-m", "hello", "-D", "publish", "correlation-data", "bad-1", "-D",
                       "publish", "user-property", "ef-data", "sideways"});
  if (bad.spawn_failed) GTEST_SKIP() << "mosquitto_pub is not installed: " << bad.Describe();
  ASSERT_EQ(bad.exit_code(), 0) << bad.Describe();
  auto plain = mqtt_pub({"-m", "plain data"});
  ASSERT_EQ(plain.exit_code(), 0) << plain.Describe();

  ASSERT_TRUE(WaitForItem(*out, "bad-1"));
  nlohmann::json letter = Letter(*out, "bad-1");
  ASSERT_TRUE(letter.is_object()) << DescribeAll(out->Messages());
  EXPECT_EQ(letter.value("kind", ""), "rejected") << letter.dump();
  EXPECT_TRUE(Contains(letter.value("error", ""), "ef-data")) << letter.dump();
  EXPECT_TRUE(Contains(letter.value("error", ""), "input \"in\"")) << letter.dump();

  ASSERT_TRUE(out->WaitFor(
      [](const std::vector<MqttReceived>& messages) {
        return std::any_of(messages.begin(), messages.end(),
                           [](const MqttReceived& m) { return m.topic == Topic("t14/out"); });
      },
      kWait))
      << DescribeAll(out->Messages());
  MqttReceived result;
  for (const MqttReceived& m : out->Messages()) {
    if (m.topic == Topic("t14/out")) result = m;
  }
  nlohmann::json seen = nlohmann::json::parse(result.payload, nullptr, false);
  ASSERT_TRUE(seen.is_object()) << result.payload;
  EXPECT_EQ(seen.value("data", ""), "plain data") << seen.dump();
  // The node gave the item an id (13 hex digits of time, 8 random) and the output keeps it.
  const std::string id = seen.value("item_id", "");
  EXPECT_EQ(id.size(), 21u) << seen.dump();
  EXPECT_EQ(result.correlation_data.value_or("<none>"), id) << result.Describe();
  // The invocation's trace id is a W3C trace id (docs/function-protocol.md: "32 hex digits"),
  // and it is the one the output carries.
  const std::string trace = seen.value("trace_id", "");
  EXPECT_EQ(trace.size(), 32u) << "invoke frame trace_id \"" << trace << "\"";
  EXPECT_EQ(result.Prop("ef-trace-id"), trace) << result.Describe();

  EXPECT_TRUE(WaitForStats("pm", "trace", [](const nlohmann::json& f) {
    return f.value("rejected", 0) == 1 && f.value("done", 0) == 1 && f.value("failed", 0) == 1;
  }));
}

// Deploying a pipeline of the same name again replaces it: 200 with replaced, a function that
// stays keeps its context, a function that is gone disappears.
TEST_F(FunctionsTest, RedeployReplacesThePipelineAndKeepsContext) {
  const fs::path code = CodeDir("counter", {"counter.py", "upper.py"});
  const std::string counter = R"(pipeline: prd
functions:
  count:
    code: $CODE
    command: [/usr/bin/python3, counter.py]
    sandbox: process
    env: {VERSION: "$V"}
    inputs: {in: t15/in}
    outputs: {out: t15/out}
)";
  const std::string extra = R"(  other:
    code: $CODE
    command: [/usr/bin/python3, upper.py]
    sandbox: process
    inputs: {in: t15/other}
)";
  ASSERT_TRUE(Deployed(Subst(counter + extra, {{"$CODE", code.string()}, {"$V", "1"}})));
  auto out = Subscribe({Topic("t15/out")});
  ASSERT_NE(out, nullptr);
  ASSERT_TRUE(Published("t15/in", "a", "key=rd-1"));
  ASSERT_TRUE(Published("t15/in", "b", "key=rd-2"));
  ASSERT_TRUE(out->WaitForCount(2, kWait)) << DescribeAll(out->Messages());

  EF_ASSERT_OK_AND_ASSIGN(auto replaced,
                          Deploy(Subst(counter, {{"$CODE", code.string()}, {"$V", "2"}})));
  ASSERT_EQ(replaced.status, 200) << replaced.Describe();
  EXPECT_EQ(replaced.Json().value("replaced", false), true) << replaced.body;
  const nlohmann::json functions = Functions();
  ASSERT_TRUE(functions.is_array() && functions.size() == 1) << functions.dump();
  EXPECT_EQ(functions[0].value("function", ""), "count") << functions.dump();
  EF_ASSERT_OK_AND_ASSIGN(auto spec, http_->Get("/v1/pipelines/prd"));
  EXPECT_TRUE(Contains(spec.Json().value("spec", ""), "VERSION: \"2\"")) << spec.body;

  ASSERT_TRUE(Published("t15/in", "c", "key=rd-3"));
  ASSERT_TRUE(WaitForItem(*out, "rd-3"));
  EXPECT_EQ(ForItem(out->Messages(), "rd-3")[0].payload, ":3:c");

  // A replacement that cannot be deployed leaves the running version alone.
  EF_ASSERT_OK_AND_ASSIGN(
      auto refused,
      Deploy(Subst(counter, {{"$CODE", temp_.Sub("no-such-code").string()}, {"$V", "3"}})));
  EXPECT_EQ(refused.status, 404) << refused.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto still, http_->Get("/v1/pipelines/prd"));
  EXPECT_TRUE(Contains(still.Json().value("spec", ""), "VERSION: \"2\"")) << still.body;
  ASSERT_TRUE(Published("t15/in", "d", "key=rd-4"));
  ASSERT_TRUE(WaitForItem(*out, "rd-4"));
  EXPECT_EQ(ForItem(out->Messages(), "rd-4")[0].payload, ":4:d");
}

// A join half done when the node restarts completes after it: the first input is kept durably.
TEST_F(FunctionsTest, JoinInProgressSurvivesRestart) {
  const fs::path code = CodeDir("join", {"join.py"});
  ASSERT_TRUE(Deployed(Subst(R"(pipeline: pjs
functions:
  fuse:
    code: $CODE
    command: [/usr/bin/python3, join.py]
    sandbox: process
    inputs: {frame: t16/frames, coords: t16/coords}
    outputs: {out: t16/out}
    join: {window_ms: 20000}
)",
                             {{"$CODE", code.string()}})));
  ASSERT_TRUE(Published("t16/frames", "frame-J", "key=J"));
  ASSERT_TRUE(WaitForStats("pjs", "fuse", [](const nlohmann::json& f) {
    return f.value("joining", 0) == 1;
  }));
  ASSERT_NO_FATAL_FAILURE(Restart(/*crash=*/false));
  EXPECT_TRUE(WaitForStats("pjs", "fuse", [](const nlohmann::json& f) {
    return f.value("joining", 0) == 1;
  }));
  auto out = Subscribe({Topic("t16/out"), Topic("dead-letter/pjs/fuse")});
  ASSERT_NE(out, nullptr);
  ASSERT_TRUE(Published("t16/coords", "coords-J", "key=J"));
  ASSERT_TRUE(WaitForItem(*out, "J"));
  const std::vector<MqttReceived> messages = ForItem(out->Messages(), "J");
  ASSERT_EQ(messages.size(), 1u) << DescribeAll(messages);
  EXPECT_EQ(messages[0].topic, Topic("t16/out"));
  EXPECT_EQ(nlohmann::json::parse(messages[0].payload, nullptr, false),
            nlohmann::json({{"coords", "coords-J"}, {"frame", "frame-J"}}))
      << messages[0].payload;
}


// Scaling: items waiting while every worker is busy get more workers, up to concurrency.max;
// idle workers above concurrency.min retire, down to min and no further.
TEST_F(FunctionsTest, WorkersScaleUpWithBacklogAndBackDownToMin) {
  daemon_->Stop(SIGTERM);
  http_.reset();
  daemon_ = StartDaemon(
      {"--config", WriteFile("edgeflowd.yaml", "functions:\n  idle_timeout_ms: 300\n").string()},
      "data-scaling");
  ASSERT_NE(daemon_, nullptr);
  http_ = Http(*daemon_);
  const fs::path code = CodeDir("slow", {"slow.py"});
  ASSERT_TRUE(Deployed(Subst(R"(pipeline: pw
functions:
  slow:
    code: $CODE
    command: [/usr/bin/python3, slow.py]
    sandbox: process
    env: {SLEEP_MS: "1000", EXIT_MS: "700"}
    concurrency: {min: 1, max: 3}
    inputs: {in: t17/in}
    outputs: {out: t17/out}
)",
                             {{"$CODE", code.string()}})));
  auto out = Subscribe({Topic("t17/out")});
  ASSERT_NE(out, nullptr);
  for (const char* key : {"w-1", "w-2", "w-3"}) {
    ASSERT_TRUE(Published("t17/in", key, std::string("key=") + key));
  }
  EXPECT_TRUE(WaitForStats("pw", "slow", [](const nlohmann::json& f) {
    return f.value("in_flight", 0) == 3 && f.value("busy_workers", 0) == 3 &&
           f.value("workers", 0) == 3;
  }));
  ASSERT_TRUE(out->WaitForCount(3, kWait)) << DescribeAll(out->Messages());

  // Two of the three retire (300 ms idle, then 700 ms to exit); one stays, however long it is
  // idle.
  auto stopped = [&] {
    const std::vector<nlohmann::json> lines = LogLines("pw", "slow");
    return std::count_if(lines.begin(), lines.end(), [](const nlohmann::json& line) {
      return line.value("message", "") == "worker stopped";
    });
  };
  EXPECT_TRUE(PollUntil([&] { return stopped() >= 2; }, kWait))
      << DescribeLog(LogLines("pw", "slow"));
  // Longer than an idle timeout plus an exit: a third retirement would show by then.
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_EQ(stopped(), 2) << DescribeLog(LogLines("pw", "slow"));
  const nlohmann::json stats = Stats("pw", "slow");
  EXPECT_EQ(stats.value("workers", 0), 1) << stats.dump();
  EXPECT_EQ(stats.value("min_workers", 0), 1) << stats.dump();
  EXPECT_EQ(stats.value("max_workers", 0), 3) << stats.dump();
}


// Items queued for a quick function go to its worker several at a time (invoke_batch). A worker
// that dies on one item of a batch costs that item an attempt and nothing else: the items after
// it were never started, so they run once each, on the next worker, as their first attempt. The
// batch is made deterministic by a graceful restart: the six items queued behind a slow one stay
// pending, and the restarted node finds all six ready at once.
TEST_F(FunctionsTest, ACrashInABatchCostsOnlyItsOwnItemAnAttempt) {
  const fs::path code = CodeDir("misbehave", {"misbehave.py"});
  ASSERT_TRUE(Deployed(Subst(R"(pipeline: pbt
functions:
  quick:
    code: $CODE
    command: [/usr/bin/python3, misbehave.py]
    sandbox: process
    concurrency: {min: 1, max: 1}
    inputs: {in: t21/in}
    outputs: {out: t21/out}
    retry: {attempts: 2, backoff_ms: 20, backoff_max_ms: 50}
)",
                             {{"$CODE", code.string()}})));
  ASSERT_TRUE(Published("t21/in", "sleep:1000", "key=b0-head"));
  ASSERT_TRUE(WaitForStats("pbt", "quick", [](const nlohmann::json& f) {
    return f.value("in_flight", 0) == 1;
  }));
  const std::vector<std::string> keys = {"b1", "b2", "b3-crash", "b4", "b5", "b6"};
  for (const std::string& key : keys) {
    ASSERT_TRUE(Published("t21/in", key == "b3-crash" ? "crash:" : "attempt:", "key=" + key));
  }
  ASSERT_TRUE(WaitForStats("pbt", "quick", [](const nlohmann::json& f) {
    return f.value("queued", 0) == 6;
  }));
  ASSERT_NO_FATAL_FAILURE(Restart(/*crash=*/false));
  // The recovered items may be done before a subscriber could be: their outputs and the dead
  // letter are read from EKV, and `done` counts each successful invocation once.
  EXPECT_TRUE(WaitForStats("pbt", "quick", [](const nlohmann::json& f) {
    // The first batch held all six; the three after the crash went again, together or not.
    return f.value("done", 0) == 5 && f.value("failed", 0) == 1 && f.value("batched", 0) >= 6 &&
           f.value("in_flight", 1) == 0 && f.value("queued", 1) == 0;
  })) << Stats("pbt", "quick").dump();
  for (const std::string& key : keys) {
    if (key == "b3-crash") continue;
    EF_ASSERT_OK_AND_ASSIGN(auto output, http_->Get("/v1/kv/channels/t21/out/" + key));
    EXPECT_EQ(output.status, 200) << key << ": " << output.Describe();
    EXPECT_EQ(output.body, "attempt=1") << key;
  }
  EF_ASSERT_OK_AND_ASSIGN(auto stored_letter,
                          http_->Get("/v1/kv/channels/dead-letter/pbt/quick/b3-crash"));
  ASSERT_EQ(stored_letter.status, 200) << stored_letter.Describe();
  const nlohmann::json letter = stored_letter.Json();
  EXPECT_EQ(letter.value("kind", ""), "worker_died") << letter.dump();
  EXPECT_EQ(letter.value("attempts", 0), 2) << letter.dump();
  EXPECT_TRUE(WaitForLog("pbt", "quick", "3 items of a batch were not started", "runtime"));
}

// The attempt count of an item waiting for its retry survives a restart of the node: the retry
// after the restart is attempt 2, not a fresh attempt 1.
TEST_F(FunctionsTest, RetryCountSurvivesRestart) {
  const fs::path code = CodeDir("misbehave", {"misbehave.py"});
  const std::string spec = Subst(R"(pipeline: prr
functions:
  bad:
    code: $CODE
    command: [/usr/bin/python3, misbehave.py]
    sandbox: process
    inputs: {in: t18/in}
    outputs: {out: t18/out}
    retry: {attempts: 3, backoff_ms: 60000, backoff_max_ms: 60000}
)",
                                 {{"$CODE", code.string()}});
  ASSERT_TRUE(Deployed(spec));
  ASSERT_TRUE(Published("t18/in", "flaky:", "key=rr-1"));
  ASSERT_TRUE(WaitForLog("prr", "bad", "item rr-1 attempt 1 failed", "runtime"));
  ASSERT_NO_FATAL_FAILURE(Restart(/*crash=*/false));
  auto out = Subscribe({Topic("t18/out")});
  ASSERT_NE(out, nullptr);
  // misbehave.py fails "flaky" on attempt 1 only: an output proves the recovered run is attempt 2.
  ASSERT_TRUE(WaitForItem(*out, "rr-1"));
  EXPECT_EQ(out->Messages()[0].payload, "ok:flaky:");
  EXPECT_TRUE(WaitForStats("prr", "bad", [](const nlohmann::json& f) {
    return f.value("done", 0) == 1 && f.value("retries", 1) == 0 && f.value("failed", 1) == 0;
  }));
}

// An input by reference whose data is gone by the time the function gets to it: the item goes to
// the dead-letter channel saying so, without retries.
TEST_F(FunctionsTest, InputWhoseDataIsGoneGoesToDeadLetter) {
  const fs::path code = CodeDir("slow", {"slow.py"});
  ASSERT_TRUE(Deployed(Subst(R"(pipeline: pg
functions:
  slow:
    code: $CODE
    command: [/usr/bin/python3, slow.py]
    sandbox: process
    env: {SLEEP_MS: "800"}
    inputs: {in: t19/in}
    outputs: {out: t19/out}
)",
                             {{"$CODE", code.string()}})));
  auto out = Subscribe({Topic("t19/out"), Topic("dead-letter/pg/slow")});
  ASSERT_NE(out, nullptr);
  ASSERT_TRUE(Published("t19/in", "first", "key=g-1"));
  ASSERT_TRUE(WaitForLog("pg", "slow", "slow: sleeping for item g-1", "log"));
  ASSERT_TRUE(Published("t19/in", "second", "key=g-2&mode=ref"));  // queued behind g-1
  EF_ASSERT_OK_AND_ASSIGN(auto deleted, http_->Delete("/v1/kv/channels/g-2"));
  ASSERT_EQ(deleted.status, 200) << deleted.Describe();
  ASSERT_TRUE(WaitForItem(*out, "g-1"));
  ASSERT_TRUE(WaitForItem(*out, "g-2"));
  nlohmann::json letter = Letter(*out, "g-2");
  ASSERT_TRUE(letter.is_object()) << DescribeAll(out->Messages());
  EXPECT_EQ(letter.value("attempts", 0), 1) << letter.dump();
  EXPECT_TRUE(Contains(letter.value("error", ""), "/v1/kv/channels/g-2 is gone")) << letter.dump();
}

// Replacing a pipeline while items keep arriving: every item published during the redeploy is
// computed (delivery is at least once; the node's trigger session is persistent).
TEST_F(FunctionsTest, RedeployUnderLoadLosesNoItems) {
  const fs::path code = CodeDir("slow", {"slow.py"});
  // Workers that take a while to exit (700 ms) make the switch-over take that long.
  const std::string spec = R"(pipeline: pl
functions:
  pass:
    code: $CODE
    command: [/usr/bin/python3, slow.py]
    sandbox: process
    env: {SLEEP_MS: "0", EXIT_MS: "700", VERSION: "$V"}
    inputs: {in: t20/in}
    outputs: {out: t20/out}
)";
  ASSERT_TRUE(Deployed(Subst(spec, {{"$CODE", code.string()}, {"$V", "1"}})));
  auto out = Subscribe({Topic("t20/out")});
  ASSERT_NE(out, nullptr);

  constexpr int kItems = 40;
  std::atomic<int> published{0};
  std::string publish_error;
  std::thread producer([&] {
    auto http = Http(*daemon_);
    for (int i = 0; i < kItems; ++i) {
      auto r = http->Request("POST", "/v1/channels/t20/in/publish?key=l-" + std::to_string(i),
                             "x" + std::to_string(i));
      if (!r.has_value() || r->status != 200) {
        publish_error = r.has_value() ? r->Describe() : r.error().ToString();
        return;
      }
      ++published;
      std::this_thread::sleep_for(milliseconds(50));
    }
  });
  ASSERT_TRUE(PollUntil([&] { return published.load() >= 5; }, kWait));
  auto replaced = Deploy(Subst(spec, {{"$CODE", code.string()}, {"$V", "2"}}));
  producer.join();
  ASSERT_TRUE(replaced.has_value()) << replaced.error().ToString();
  ASSERT_EQ(replaced->status, 200) << replaced->Describe();
  ASSERT_EQ(published.load(), kItems) << publish_error;

  out->WaitFor(
      [&](const std::vector<MqttReceived>& messages) {
        std::set<std::string> ids;
        for (const MqttReceived& m : messages) ids.insert(m.correlation_data.value_or(""));
        return ids.size() >= kItems;
      },
      kWait);
  std::set<std::string> ids;
  for (const MqttReceived& m : out->Messages()) ids.insert(m.correlation_data.value_or(""));
  std::string missing;
  for (int i = 0; i < kItems; ++i) {
    if (!ids.contains("l-" + std::to_string(i))) missing += " l-" + std::to_string(i);
  }
  EXPECT_TRUE(missing.empty()) << "no output for" << missing << " (of " << kItems
                               << " items published during the redeploy)";
}


// A worker that died while idle (between invocations) is replaced before the next item is handed
// to it: the item is not charged an attempt for a worker it never reached.
TEST_F(FunctionsTest, WorkerThatDiedIdleIsReplacedWithoutFailingTheNextItem) {
  const fs::path code = CodeDir("idle_exit", {"idle_exit.py"});
  ASSERT_TRUE(Deployed(Subst(R"(pipeline: pi
functions:
  f:
    code: $CODE
    command: [/usr/bin/python3, idle_exit.py]
    sandbox: process
    env: {EXIT_AFTER_MS: "100"}
    inputs: {in: t21/in}
    outputs: {out: t21/out}
    retry: {attempts: 1}
)",
                             {{"$CODE", code.string()}})));
  auto out = Subscribe({Topic("t21/out"), Topic("dead-letter/pi/f")});
  ASSERT_NE(out, nullptr);
  ASSERT_TRUE(Published("t21/in", "one", "key=i-1"));
  ASSERT_TRUE(WaitForItem(*out, "i-1"));
  const std::vector<pid_t> workers = WorkerPids("pi", "f");
  ASSERT_EQ(workers.size(), 1u);
  ASSERT_TRUE(PollUntil([&] { return ProcessGone(workers[0]); }, kWait));

  ASSERT_TRUE(Published("t21/in", "two", "key=i-2"));
  ASSERT_TRUE(WaitForItem(*out, "i-2"));
  const std::vector<MqttReceived> second = ForItem(out->Messages(), "i-2");
  ASSERT_EQ(second.size(), 1u) << DescribeAll(second);
  EXPECT_EQ(second[0].topic, Topic("t21/out")) << second[0].Describe() << " " << second[0].payload;
  EXPECT_EQ(second[0].payload, "TWO");
}

// A worker that never says "ready" is given up after functions.ready_timeout_ms, and its items go
// to the dead-letter channel saying so.
TEST_F(FunctionsTest, WorkerThatNeverSaysReadyIsGivenUp) {
  daemon_->Stop(SIGTERM);
  http_.reset();
  daemon_ = StartDaemon(
      {"--config", WriteFile("edgeflowd.yaml", "functions:\n  ready_timeout_ms: 300\n").string()},
      "data-ready");
  ASSERT_NE(daemon_, nullptr);
  http_ = Http(*daemon_);
  const fs::path code = CodeDir("silent", {});
  ASSERT_TRUE(Deployed(Subst(R"(pipeline: pn
functions:
  silent:
    code: $CODE
    command: [/usr/bin/sleep, "60"]
    sandbox: process
    inputs: {in: t22/in}
    retry: {attempts: 1}
)",
                             {{"$CODE", code.string()}})));
  auto out = Subscribe({Topic("dead-letter/pn/silent")});
  ASSERT_NE(out, nullptr);
  ASSERT_TRUE(Published("t22/in", "x", "key=s-1"));
  ASSERT_TRUE(WaitForItem(*out, "s-1"));
  nlohmann::json letter = Letter(*out, "s-1");
  EXPECT_EQ(letter.value("kind", ""), "worker_died") << letter.dump();
  EXPECT_TRUE(Contains(letter.value("error", ""), "did not send \"ready\" within 300 ms"))
      << letter.dump();
  EXPECT_TRUE(WaitForStats("pn", "silent", [](const nlohmann::json& f) {
    return f.value("workers", 1) == 0 && f.value("failed", 0) == 1;
  }));
}

}  // namespace
}  // namespace edgeflow::test_support
