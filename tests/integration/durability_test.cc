// The kill -9 test: whatever edgeflowd acknowledged before it was killed must be there after a
// restart on the same data directory, and the change log's sequence must carry on after it.
//
// Several HTTP and RESP clients write (and delete) their own keys while the daemon is killed with
// SIGKILL. Each client records every acknowledged operation, plus the one operation it had sent
// without an answer when the daemon died; that one may or may not have been applied.
//
// Without --sync-writes the WAL is not fsync'd, but a process crash (unlike a power loss) keeps
// what was written to the page cache, so nothing acknowledged may be lost in that mode either.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/daemon_test.h"

namespace edgeflow::test_support {
namespace {

constexpr int kHttpWriters = 4;
constexpr int kRespWriters = 2;
constexpr int kMaxOpsPerWriter = 5000;
// The daemon is killed once a writer got this far, or after kWriteTime, whichever comes first,
// so that the kill always lands while every writer is still busy.
constexpr int kKillAfterOps = kMaxOpsPerWriter * 4 / 5;
constexpr auto kWriteTime = std::chrono::milliseconds(1500);

struct PendingOp {
  std::string key;
  std::string value;  // for a put: the new value; for a delete: the value it had
  bool is_delete = false;
};

// What one writer knows about its own keys. Only its thread touches it until it is joined.
struct WriterLog {
  std::map<std::string, std::string> live;  // acknowledged puts not deleted since
  std::map<std::string, uint64_t> put_seq;  // HTTP only: the seq each put was answered with
  std::set<std::string> deleted;            // acknowledged deletes
  std::optional<PendingOp> in_flight;       // sent, never answered
  uint64_t max_acked_seq = 0;               // HTTP only
  int acked = 0;
  std::atomic<int> progress{0};
  std::string stopped_by;  // the error that ended the writer
};

std::string ValueFor(int writer, int i) {
  // Sizes vary from ~20 to ~600 bytes so that group commits mix small and larger records.
  std::string value = "w" + std::to_string(writer) + "-op" + std::to_string(i) + "-";
  value.append(static_cast<size_t>((i * 37) % 600), static_cast<char>('a' + i % 26));
  return value;
}

// Every fifth operation deletes the key written three operations earlier (if that put was
// acknowledged); the others put a fresh key.
template <typename DoPut, typename DoDelete>
void RunWriter(int writer, WriterLog* log, const std::atomic<bool>& stop, DoPut do_put,
               DoDelete do_delete) {
  for (int i = 0; i < kMaxOpsPerWriter && !stop.load(); ++i) {
    PendingOp op;
    if (i % 5 == 4) {
      std::string victim = "k" + std::to_string(writer) + "-" + std::to_string(i - 3);
      auto it = log->live.find(victim);
      if (it == log->live.end()) continue;
      op = {victim, it->second, true};
    } else {
      op = {"k" + std::to_string(writer) + "-" + std::to_string(i), ValueFor(writer, i), false};
    }
    log->in_flight = op;
    std::string error;
    uint64_t seq = 0;
    bool ok =
        op.is_delete ? do_delete(op.key, &seq, &error) : do_put(op.key, op.value, &seq, &error);
    if (!ok) {
      log->stopped_by = error;
      return;  // the daemon is gone: in_flight stays recorded
    }
    log->in_flight.reset();
    ++log->acked;
    log->max_acked_seq = std::max(log->max_acked_seq, seq);
    if (op.is_delete) {
      log->live.erase(op.key);
      log->deleted.insert(op.key);
    } else {
      log->live[op.key] = op.value;
      if (seq != 0) log->put_seq[op.key] = seq;
    }
    log->progress.store(i + 1);
  }
  log->stopped_by = "finished";
}

void HttpWriter(int writer, uint16_t port, WriterLog* log, const std::atomic<bool>& stop) {
  HttpClient http("127.0.0.1", port, std::chrono::seconds(20));
  auto seq_of = [](const HttpResponse& r) { return r.Json().value("seq", uint64_t{0}); };
  RunWriter(
      writer, log, stop,
      [&](const std::string& key, const std::string& value, uint64_t* seq, std::string* error) {
        auto r = http.Put("/v1/kv/default/" + key, value);
        if (!r.has_value()) {
          *error = r.error().ToString();
          return false;
        }
        if (r->status != 200) {
          *error = r->Describe();
          return false;
        }
        *seq = seq_of(*r);
        return true;
      },
      [&](const std::string& key, uint64_t* seq, std::string* error) {
        auto r = http.Delete("/v1/kv/default/" + key);
        if (!r.has_value()) {
          *error = r.error().ToString();
          return false;
        }
        if (r->status != 200) {
          *error = r->Describe();
          return false;
        }
        *seq = seq_of(*r);
        return true;
      });
}

void RespWriter(int writer, uint16_t port, WriterLog* log, const std::atomic<bool>& stop) {
  auto client = RespClient::Connect("127.0.0.1", port, std::chrono::seconds(20));
  if (!client.has_value()) {
    log->stopped_by = client.error().ToString();
    return;
  }
  RespClient& resp = **client;
  RunWriter(
      writer, log, stop,
      [&](const std::string& key, const std::string& value, uint64_t*, std::string* error) {
        auto r = resp.Command({"SET", key, value});
        if (!r.has_value()) {
          *error = r.error().ToString();
          return false;
        }
        if (!r->IsStatus("OK")) {
          *error = r->ToString();
          return false;
        }
        return true;
      },
      [&](const std::string& key, uint64_t*, std::string* error) {
        auto r = resp.Command({"DEL", key});
        if (!r.has_value()) {
          *error = r.error().ToString();
          return false;
        }
        if (r->type != RespReply::Type::kInteger || r->integer != 1) {
          *error = "DEL answered " + r->ToString();
          return false;
        }
        return true;
      });
}

class DurabilityTest : public DaemonTest, public ::testing::WithParamInterface<bool> {};

TEST_P(DurabilityTest, AcknowledgedWritesSurviveKill9) {
  const bool sync_writes = GetParam();
  std::vector<std::string> args;
  if (sync_writes) args.push_back("--sync-writes");
  auto daemon = StartDaemon(args);
  ASSERT_NE(daemon, nullptr);

  std::vector<std::unique_ptr<WriterLog>> logs;
  for (int i = 0; i < kHttpWriters + kRespWriters; ++i)
    logs.push_back(std::make_unique<WriterLog>());
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < kHttpWriters + kRespWriters; ++w) {
    if (w < kHttpWriters) {
      writers.emplace_back(HttpWriter, w, daemon->http_port(), logs[w].get(), std::cref(stop));
    } else {
      writers.emplace_back(RespWriter, w, daemon->resp_port(), logs[w].get(), std::cref(stop));
    }
  }

  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    int most = 0;
    for (const auto& log : logs) most = std::max(most, log->progress.load());
    if (most >= kKillAfterOps || std::chrono::steady_clock::now() - start >= kWriteTime) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  daemon->Kill();
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_FALSE(daemon->IsRunning());

  int acked = 0;
  int in_flight = 0;
  uint64_t max_acked_seq = 0;
  for (size_t w = 0; w < logs.size(); ++w) {
    const WriterLog& log = *logs[w];
    acked += log.acked;
    in_flight += log.in_flight.has_value() ? 1 : 0;
    max_acked_seq = std::max(max_acked_seq, log.max_acked_seq);
    EXPECT_GT(log.acked, 0) << "writer " << w << " got nothing acknowledged: " << log.stopped_by;
  }
  ::testing::Test::RecordProperty("acknowledged_ops", acked);
  ::testing::Test::RecordProperty("in_flight_at_kill", in_flight);
  std::printf("acknowledged ops before kill -9: %d, unanswered at kill: %d, max acked seq: %llu\n",
              acked, in_flight, static_cast<unsigned long long>(max_acked_seq));
  ASSERT_GT(max_acked_seq, 0u);

  // The listen file of the killed daemon is stale; DaemonProcess waits for the new one.
  auto restarted = StartDaemon(args);
  ASSERT_NE(restarted, nullptr);
  EXPECT_EQ(restarted->listen().node_id, daemon->listen().node_id);
  auto resp = Resp(*restarted);
  ASSERT_NE(resp, nullptr);
  auto http = Http(*restarted);

  int lost = 0;
  int resurrected = 0;
  for (size_t w = 0; w < logs.size(); ++w) {
    const WriterLog& log = *logs[w];
    // Check live keys in MGET batches.
    // The key of an unanswered delete is still in `live` (only acknowledged operations are
    // recorded); it is checked below with the other unanswered operations.
    std::vector<std::pair<std::string, std::string>> live;
    for (const auto& entry : log.live) {
      if (log.in_flight.has_value() && log.in_flight->key == entry.first) continue;
      live.push_back(entry);
    }
    for (size_t i = 0; i < live.size(); i += 200) {
      std::vector<std::string> cmd = {"MGET"};
      for (size_t j = i; j < std::min(live.size(), i + 200); ++j) cmd.push_back(live[j].first);
      EF_ASSERT_OK_AND_ASSIGN(auto reply, resp->Command(cmd));
      ASSERT_EQ(reply.elements.size(), cmd.size() - 1) << reply.ToString();
      for (size_t j = 0; j < reply.elements.size(); ++j) {
        const auto& [key, value] = live[i + j];
        if (reply.elements[j].is_nil() || reply.elements[j].str != value) {
          if (++lost <= 10) {
            ADD_FAILURE() << "acknowledged put of " << key << " lost after kill -9: got "
                          << reply.elements[j].ToString() << " (writer " << w << " unanswered op: "
                          << (log.in_flight.has_value() ? log.in_flight->key : "none")
                          << ", stopped by: " << log.stopped_by << ")";
          }
        }
      }
    }
    std::vector<std::string> deleted(log.deleted.begin(), log.deleted.end());
    for (size_t i = 0; i < deleted.size(); i += 200) {
      std::vector<std::string> cmd = {"MGET"};
      for (size_t j = i; j < std::min(deleted.size(), i + 200); ++j) cmd.push_back(deleted[j]);
      EF_ASSERT_OK_AND_ASSIGN(auto reply, resp->Command(cmd));
      ASSERT_EQ(reply.elements.size(), cmd.size() - 1) << reply.ToString();
      for (size_t j = 0; j < reply.elements.size(); ++j) {
        if (!reply.elements[j].is_nil() && ++resurrected <= 10) {
          ADD_FAILURE() << "acknowledged delete of " << deleted[i + j]
                        << " undone after kill -9: got " << reply.elements[j].ToString();
        }
      }
    }
    // The unanswered operation: applied entirely or not at all.
    if (log.in_flight.has_value()) {
      const PendingOp& op = *log.in_flight;
      EF_ASSERT_OK_AND_ASSIGN(auto reply, resp->Command({"GET", op.key}));
      const bool absent = reply.is_nil();
      const bool has_value = reply.type == RespReply::Type::kString && reply.str == op.value;
      EXPECT_TRUE(absent || has_value)
          << "unanswered " << (op.is_delete ? "delete" : "put") << " of " << op.key
          << " left a value that is neither before nor after: " << reply.ToString();
    }
    // HTTP puts: the item keeps the seq its write was acknowledged with (sampled).
    int sampled = 0;
    for (const auto& [key, seq] : log.put_seq) {
      if (!log.live.contains(key)) continue;
      if (log.in_flight.has_value() && log.in_flight->key == key) continue;
      if (++sampled > 50) break;
      EF_ASSERT_OK_AND_ASSIGN(auto head, http->Head("/v1/kv/default/" + key));
      ASSERT_EQ(head.status, 200) << key << ": " << head.Describe();
      EXPECT_EQ(head.Header("EKV-Seq"), std::to_string(seq)) << key;
    }
  }
  EXPECT_EQ(lost, 0) << "acknowledged puts lost";
  EXPECT_EQ(resurrected, 0) << "acknowledged deletes undone";

  // The change log carries on after the highest acknowledged sequence number.
  EF_ASSERT_OK_AND_ASSIGN(auto put, http->Put("/v1/kv/default/after-restart", "x"));
  ASSERT_EQ(put.status, 200) << put.Describe();
  EXPECT_GT(put.Json().value("seq", uint64_t{0}), max_acked_seq);

  // The restarted daemon still stops cleanly.
  http->Close();
  EXPECT_EQ(restarted->Stop().exit_code, 0);
}

INSTANTIATE_TEST_SUITE_P(WalModes, DurabilityTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& param_info) {
                           return param_info.param ? std::string("SyncWrites")
                                                   : std::string("NoSync");
                         });

}  // namespace
}  // namespace edgeflow::test_support
