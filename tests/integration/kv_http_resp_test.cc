// The same data seen through both front-ends of a real edgeflowd: HTTP and the Redis protocol
// (hiredis and the real redis-cli).
#include <algorithm>
#include <chrono>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/command_runner.h"
#include "support/daemon_test.h"
#include "support/prometheus_text.h"
#include "support/sse_client.h"

namespace edgeflow::test_support {
namespace {

std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    uint64_t word = rng();
    for (size_t j = 0; j < 8 && i + j < size; ++j) out[i + j] = static_cast<char>(word >> (8 * j));
  }
  return out;
}

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class KvHttpRespTest : public DaemonTest {
 protected:
  void SetUp() override {
    daemon_ = StartDaemon();
    ASSERT_NE(daemon_, nullptr);
    http_ = Http(*daemon_);
    resp_ = Resp(*daemon_);
    ASSERT_NE(resp_, nullptr);
  }

  // Runs the real redis-cli against the daemon.
  CommandResult RedisCli(std::vector<std::string> args, const std::string& stdin_data = "") {
    args.insert(args.begin(), {"-h", "127.0.0.1", "-p", std::to_string(daemon_->resp_port())});
    CommandOptions options;
    options.stdin_data = stdin_data;
    options.timeout = std::chrono::seconds(20);
    return RunCommand("redis-cli", args, options);
  }

  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<RespClient> resp_;
};

TEST_F(KvHttpRespTest, HttpWriteIsReadableOverResp) {
  EF_ASSERT_OK_AND_ASSIGN(auto put, http_->Put("/v1/kv/default/greeting", "hello world"));
  ASSERT_EQ(put.status, 200) << put.Describe();
  auto json = put.Json();
  ASSERT_TRUE(json.is_object()) << put.body;
  EXPECT_TRUE(std::regex_match(json.value("version", ""), std::regex("[0-9a-f]{16}-[0-9a-f]{16}")))
      << put.body;
  EXPECT_GT(json.value("seq", 0ULL), 0ULL) << put.body;

  EF_ASSERT_OK_AND_ASSIGN(auto get, resp_->Command({"GET", "greeting"}));
  EXPECT_EQ(get.type, RespReply::Type::kString) << get.ToString();
  EXPECT_EQ(get.str, "hello world");

  auto cli = RedisCli({"GET", "greeting"});
  EXPECT_EQ(cli.exit_code(), 0) << cli.Describe();
  EXPECT_EQ(cli.out, "hello world\n") << cli.Describe();

  // Binary-safe both ways: NUL, CR LF and high bytes.
  const std::string binary = std::string("a\0b\r\n$3\r\n\xff\xfe", 11);
  EF_ASSERT_OK_AND_ASSIGN(auto put_bin, http_->Put("/v1/kv/default/bin%00key", binary));
  ASSERT_EQ(put_bin.status, 200) << put_bin.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto get_bin, resp_->Command({"GET", std::string("bin\0key", 7)}));
  EXPECT_EQ(get_bin.str, binary) << get_bin.ToString();
}

TEST_F(KvHttpRespTest, RespWriteIsReadableOverHttp) {
  EF_ASSERT_OK_AND_ASSIGN(auto set, resp_->Command({"SET", "color", "blue"}));
  ASSERT_TRUE(set.IsStatus("OK")) << set.ToString();
  EF_ASSERT_OK_AND_ASSIGN(auto get, http_->Get("/v1/kv/default/color"));
  ASSERT_EQ(get.status, 200) << get.Describe();
  EXPECT_EQ(get.body, "blue");
  const std::string version = get.Header("EKV-Version");
  EXPECT_TRUE(std::regex_match(version, std::regex("[0-9a-f]{16}-[0-9a-f]{16}"))) << version;
  EXPECT_EQ(get.Header("ETag"), "\"" + version + "\"");
  EXPECT_TRUE(std::regex_match(get.Header("EKV-Seq"), std::regex("[1-9][0-9]*")))
      << get.Header("EKV-Seq");

  auto cli = RedisCli({"SET", "shape", "round"});
  EXPECT_EQ(cli.exit_code(), 0) << cli.Describe();
  EXPECT_EQ(cli.out, "OK\n") << cli.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto shape, http_->Get("/v1/kv/default/shape"));
  EXPECT_EQ(shape.status, 200) << shape.Describe();
  EXPECT_EQ(shape.body, "round");

  EF_ASSERT_OK_AND_ASSIGN(auto mset, resp_->Command({"MSET", "m1", "one", "m2", "two"}));
  ASSERT_TRUE(mset.IsStatus("OK")) << mset.ToString();
  EF_ASSERT_OK_AND_ASSIGN(auto m2, http_->Get("/v1/kv/default/m2"));
  EXPECT_EQ(m2.body, "two");
  EF_ASSERT_OK_AND_ASSIGN(auto mget, resp_->Command({"MGET", "m1", "nope", "m2"}));
  ASSERT_EQ(mget.elements.size(), 3u) << mget.ToString();
  EXPECT_EQ(mget.elements[0].str, "one");
  EXPECT_TRUE(mget.elements[1].is_nil());
  EXPECT_EQ(mget.elements[2].str, "two");

  EF_ASSERT_OK_AND_ASSIGN(auto del, resp_->Command({"DEL", "m1", "nope"}));
  EXPECT_EQ(del.integer, 1) << del.ToString();
  EF_ASSERT_OK_AND_ASSIGN(auto gone, http_->Get("/v1/kv/default/m1"));
  EXPECT_EQ(gone.status, 404) << gone.Describe();
  EXPECT_EQ(gone.Json()["error"]["code"], "NOT_FOUND") << gone.body;

  // And an HTTP delete is seen over RESP.
  EF_ASSERT_OK_AND_ASSIGN(auto http_del, http_->Delete("/v1/kv/default/m2"));
  EXPECT_EQ(http_del.status, 200) << http_del.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto exists, resp_->Command({"EXISTS", "m2", "color"}));
  EXPECT_EQ(exists.integer, 1) << exists.ToString();
}

TEST_F(KvHttpRespTest, TtlIsSeenFromBothSides) {
  EF_ASSERT_OK_AND_ASSIGN(auto put, http_->Put("/v1/kv/default/login-token?ttl=100", "token"));
  ASSERT_EQ(put.status, 200) << put.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto ttl, resp_->Command({"TTL", "login-token"}));
  EXPECT_GE(ttl.integer, 1) << ttl.ToString();
  EXPECT_LE(ttl.integer, 100) << ttl.ToString();

  EF_ASSERT_OK_AND_ASSIGN(auto set, resp_->Command({"SET", "cache", "v", "EX", "200"}));
  ASSERT_TRUE(set.IsStatus("OK")) << set.ToString();
  EF_ASSERT_OK_AND_ASSIGN(auto get, http_->Get("/v1/kv/default/cache"));
  ASSERT_EQ(get.status, 200) << get.Describe();
  const std::string expires = get.Header("EKV-Expires-At");
  ASSERT_FALSE(expires.empty()) << "an item with a TTL must report EKV-Expires-At";
  // Wall-clock sanity only (the daemon and the test share a clock): well in the future, and not
  // beyond the 200 s asked for.
  const int64_t expires_ms = std::stoll(expires);
  EXPECT_GT(expires_ms, NowMillis() + 100'000);
  EXPECT_LE(expires_ms, NowMillis() + 201'000);

  EF_ASSERT_OK_AND_ASSIGN(auto plain, resp_->Command({"SET", "plain", "v"}));
  EF_ASSERT_OK_AND_ASSIGN(auto no_ttl, resp_->Command({"TTL", "plain"}));
  EXPECT_EQ(no_ttl.integer, -1) << no_ttl.ToString();
  EF_ASSERT_OK_AND_ASSIGN(auto missing_ttl, resp_->Command({"TTL", "never-set"}));
  EXPECT_EQ(missing_ttl.integer, -2) << missing_ttl.ToString();
  EF_ASSERT_OK_AND_ASSIGN(auto plain_http, http_->Get("/v1/kv/default/plain"));
  EXPECT_FALSE(plain_http.HasHeader("EKV-Expires-At"));

  // EXPIRE from RESP shows up over HTTP.
  EF_ASSERT_OK_AND_ASSIGN(auto expire, resp_->Command({"EXPIRE", "plain", "300"}));
  EXPECT_EQ(expire.integer, 1) << expire.ToString();
  EF_ASSERT_OK_AND_ASSIGN(auto expiring, http_->Head("/v1/kv/default/plain"));
  EXPECT_EQ(expiring.status, 200);
  EXPECT_FALSE(expiring.Header("EKV-Expires-At").empty());

  // A short TTL set over RESP makes the item disappear from HTTP (polled, bounded).
  EF_ASSERT_OK_AND_ASSIGN(auto short_set, resp_->Command({"SET", "brief", "v", "PX", "300"}));
  ASSERT_TRUE(short_set.IsStatus("OK")) << short_set.ToString();
  int status = 0;
  for (int i = 0; i < 200 && status != 404; ++i) {
    EF_ASSERT_OK_AND_ASSIGN(auto r, http_->Get("/v1/kv/default/brief"));
    status = r.status;
    if (status != 404) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(status, 404) << "an expired item must disappear";
  EF_ASSERT_OK_AND_ASSIGN(auto brief, resp_->Command({"GET", "brief"}));
  EXPECT_TRUE(brief.is_nil()) << brief.ToString();
}

TEST_F(KvHttpRespTest, ScanMatchesWithRedisCli) {
  EF_ASSERT_OK_AND_ASSIGN(
      auto mset, resp_->Command({"MSET", "p1", "a", "p2", "b", "pz", "c", "q1", "d", "xp", "e"}));
  ASSERT_TRUE(mset.IsStatus("OK")) << mset.ToString();
  // Also some written over HTTP, and more than one SCAN page's worth.
  for (int i = 0; i < 30; ++i) {
    EF_ASSERT_OK_AND_ASSIGN(auto put, http_->Put("/v1/kv/default/page" + std::to_string(i), "v"));
    ASSERT_EQ(put.status, 200) << put.Describe();
  }
  auto cli = RedisCli({"--scan", "--pattern", "p*"});
  ASSERT_EQ(cli.exit_code(), 0) << cli.Describe();
  auto lines = SplitLines(cli.out);
  std::set<std::string> seen(lines.begin(), lines.end());
  EXPECT_EQ(seen.size(), lines.size()) << "SCAN returned a key twice: " << cli.out;
  std::set<std::string> expected = {"p1", "p2", "pz"};
  for (int i = 0; i < 30; ++i) expected.insert("page" + std::to_string(i));
  EXPECT_EQ(seen, expected) << cli.out;

  // The same through hiredis with a small COUNT, following the cursor (bounded).
  std::set<std::string> scanned;
  std::string cursor = "0";
  int rounds = 0;
  do {
    EF_ASSERT_OK_AND_ASSIGN(auto page,
                            resp_->Command({"SCAN", cursor, "MATCH", "p?", "COUNT", "2"}));
    ASSERT_EQ(page.elements.size(), 2u) << page.ToString();
    cursor = page.elements[0].str;
    for (const auto& key : page.elements[1].elements) scanned.insert(key.str);
  } while (cursor != "0" && ++rounds < 1000);
  EXPECT_EQ(cursor, "0") << "SCAN did not finish";
  EXPECT_EQ(scanned, (std::set<std::string>{"p1", "p2", "pz"}));
}

TEST_F(KvHttpRespTest, SelectMapsToNamespaces) {
  EF_ASSERT_OK_AND_ASSIGN(auto sel3, resp_->Command({"SELECT", "3"}));
  ASSERT_TRUE(sel3.IsStatus("OK")) << sel3.ToString();
  EF_ASSERT_OK_AND_ASSIGN(auto set3, resp_->Command({"SET", "a", "in-db3"}));
  ASSERT_TRUE(set3.IsStatus("OK")) << set3.ToString();
  EF_ASSERT_OK_AND_ASSIGN(auto db3, http_->Get("/v1/kv/db3/a"));
  EXPECT_EQ(db3.status, 200) << db3.Describe();
  EXPECT_EQ(db3.body, "in-db3");
  EF_ASSERT_OK_AND_ASSIGN(auto default_a, http_->Get("/v1/kv/default/a"));
  EXPECT_EQ(default_a.status, 404) << "SELECT 3 must not write to the default namespace";

  EF_ASSERT_OK_AND_ASSIGN(auto named, resp_->Command({"SELECT", "sensors"}));
  ASSERT_TRUE(named.IsStatus("OK")) << named.ToString();
  EF_ASSERT_OK_AND_ASSIGN(auto set_named, resp_->Command({"SET", "t1", "21.5"}));
  EF_ASSERT_OK_AND_ASSIGN(auto sensors, http_->Get("/v1/kv/sensors/t1"));
  EXPECT_EQ(sensors.status, 200) << sensors.Describe();
  EXPECT_EQ(sensors.body, "21.5");

  EF_ASSERT_OK_AND_ASSIGN(auto put5, http_->Put("/v1/kv/db5/c", "from-http"));
  ASSERT_EQ(put5.status, 200) << put5.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto sel5, resp_->Command({"SELECT", "5"}));
  EF_ASSERT_OK_AND_ASSIGN(auto get5, resp_->Command({"GET", "c"}));
  EXPECT_EQ(get5.str, "from-http") << get5.ToString();

  EF_ASSERT_OK_AND_ASSIGN(auto sel0, resp_->Command({"SELECT", "0"}));
  EF_ASSERT_OK_AND_ASSIGN(auto get0, resp_->Command({"GET", "c"}));
  EXPECT_TRUE(get0.is_nil()) << get0.ToString();

  auto cli = RedisCli({"-n", "3", "GET", "a"});
  EXPECT_EQ(cli.exit_code(), 0) << cli.Describe();
  EXPECT_EQ(cli.out, "in-db3\n") << cli.Describe();

  EF_ASSERT_OK_AND_ASSIGN(auto bad, resp_->Command({"SELECT", "no spaces allowed"}));
  EXPECT_TRUE(bad.is_error()) << bad.ToString();
}

TEST_F(KvHttpRespTest, FiveMegabyteValueRoundTrips) {
  const std::string big = RandomBytes(5 << 20, 42);
  EF_ASSERT_OK_AND_ASSIGN(auto put, http_->Put("/v1/kv/default/big-http", big));
  ASSERT_EQ(put.status, 200) << put.Describe();
  EF_ASSERT_OK_AND_ASSIGN(auto get, resp_->Command({"GET", "big-http"}));
  ASSERT_EQ(get.type, RespReply::Type::kString);
  EXPECT_EQ(get.str.size(), big.size());
  EXPECT_TRUE(get.str == big) << "value read over RESP differs from the one written over HTTP";

  const std::string other = RandomBytes(5 << 20, 7);
  EF_ASSERT_OK_AND_ASSIGN(auto set, resp_->Command({"SET", "big-resp", other}));
  ASSERT_TRUE(set.IsStatus("OK")) << set.ToString();
  EF_ASSERT_OK_AND_ASSIGN(auto http_get, http_->Get("/v1/kv/default/big-resp"));
  ASSERT_EQ(http_get.status, 200) << http_get.Describe();
  EXPECT_EQ(http_get.body.size(), other.size());
  EXPECT_TRUE(http_get.body == other) << "value read over HTTP differs from the one set over RESP";
  EF_ASSERT_OK_AND_ASSIGN(auto head, http_->Head("/v1/kv/default/big-resp"));
  EXPECT_EQ(head.Header("Content-Length"), std::to_string(other.size()));
}

TEST_F(KvHttpRespTest, WatchSeesRespWritesInOrder) {
  EF_ASSERT_OK_AND_ASSIGN(auto marker, http_->Put("/v1/kv/default/marker", "m"));
  ASSERT_EQ(marker.status, 200) << marker.Describe();
  const uint64_t start_seq = marker.Json().value("seq", 0ULL);
  ASSERT_GT(start_seq, 0u);

  SseClient watch;
  const std::string target = "/v1/watch/default?prefix=w-&from_seq=" + std::to_string(start_seq);
  ASSERT_TRUE(watch.Open("127.0.0.1", daemon_->http_port(), target).ok());

  constexpr int kWrites = 20;
  for (int i = 0; i < kWrites; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "w-%02d", i);
    EF_ASSERT_OK_AND_ASSIGN(auto set, resp_->Command({"SET", key, "v" + std::to_string(i)}));
    ASSERT_TRUE(set.IsStatus("OK")) << set.ToString();
    // Writes outside the prefix must not show up.
    EF_ASSERT_OK_AND_ASSIGN(auto other, resp_->Command({"SET", "x-" + std::to_string(i), "v"}));
  }
  EF_ASSERT_OK_AND_ASSIGN(auto del, resp_->Command({"DEL", "w-03"}));
  ASSERT_EQ(del.integer, 1);

  auto events = watch.WaitForEvents(kWrites + 1, std::chrono::seconds(20));
  ASSERT_EQ(events.size(), static_cast<size_t>(kWrites + 1)) << "watch stream ended early";
  uint64_t last_seq = start_seq;
  for (int i = 0; i <= kWrites; ++i) {
    SCOPED_TRACE("event " + std::to_string(i) + ": " + events[i].data);
    const bool is_delete = i == kWrites;
    EXPECT_EQ(events[i].event, is_delete ? "delete" : "put");
    const uint64_t seq = std::stoull(events[i].id);
    EXPECT_GT(seq, last_seq) << "event ids must increase";
    last_seq = seq;
    auto data = nlohmann::json::parse(events[i].data, nullptr, false);
    ASSERT_TRUE(data.is_object());
    char key[16];
    std::snprintf(key, sizeof key, "w-%02d", is_delete ? 3 : i);
    EXPECT_EQ(data.value("key", ""), key);
    if (data.contains("seq")) {
      EXPECT_EQ(data["seq"].get<uint64_t>(), seq);
    }
  }
}

TEST_F(KvHttpRespTest, MetricsCountersMove) {
  EF_ASSERT_OK_AND_ASSIGN(auto before_res, http_->Get("/metrics"));
  ASSERT_EQ(before_res.status, 200) << before_res.Describe();
  auto before = PrometheusText::Parse(before_res.body);
  ASSERT_TRUE(before.Has("edgeflow_http_requests_total")) << before_res.body;

  constexpr int kOps = 25;
  for (int i = 0; i < kOps; ++i) {
    EF_ASSERT_OK_AND_ASSIGN(auto put, http_->Put("/v1/kv/default/metric" + std::to_string(i), "v"));
    ASSERT_EQ(put.status, 200);
    EF_ASSERT_OK_AND_ASSIGN(auto set, resp_->Command({"SET", "rmetric" + std::to_string(i), "v"}));
    EF_ASSERT_OK_AND_ASSIGN(auto get, resp_->Command({"GET", "rmetric" + std::to_string(i)}));
  }
  EF_ASSERT_OK_AND_ASSIGN(auto after_res, http_->Get("/metrics"));
  ASSERT_EQ(after_res.status, 200);
  auto after = PrometheusText::Parse(after_res.body);

  EXPECT_GE(after.Sum("edgeflow_http_requests_total") - before.Sum("edgeflow_http_requests_total"),
            kOps)
      << after_res.body;
  EXPECT_GE(after.Sum("edgeflow_kv_last_seq") - before.Sum("edgeflow_kv_last_seq"), 2 * kOps)
      << after_res.body;
  // The RESP front-end counts its commands too, whatever the exact series are called.
  double resp_before = 0;
  double resp_after = 0;
  for (const auto& [name, value] : before.Families("edgeflow_resp_")) {
    if (name.ends_with("_total")) resp_before += value;
  }
  for (const auto& [name, value] : after.Families("edgeflow_resp_")) {
    if (name.ends_with("_total")) resp_after += value;
  }
  EXPECT_GE(resp_after - resp_before, 2 * kOps) << "no edgeflow_resp_*_total counter moved:\n"
                                                << after_res.body;
}

}  // namespace
}  // namespace edgeflow::test_support
