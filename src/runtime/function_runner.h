// FunctionRunner: everything the node does for one deployed function.
//
//  - Triggers: Offer() takes each message of the function's input channels (from the node's
//    QoS 1 persistent subscription), drops duplicates (an item id already pending, or finished
//    within dedupe_window), stores the item durably (pending_item.h), and for several inputs
//    holds it until every input of that item id has arrived (join), within join_window; what
//    expires unjoined is counted, logged and sent to the dead-letter channel.
//  - Workers: between min_workers and max_workers warm workers (FunctionWorker), one thread
//    ("slot") each; a slot is added while items wait and every worker is busy, and retired after
//    it has been idle for `idle_timeout` (down to min_workers). A worker that dies, hangs or
//    breaks the protocol is replaced, with back-off when it keeps failing.
//  - Invocation: inputs resolved (inline data, or read from EKV by reference), the function
//    called, its outputs put into EKV and published on the output channels (item id kept, with
//    `.part` for several parts), then the item is marked done. A failure is retried per the retry
//    policy (exponential back-off), then the item goes to the dead-letter channel with the error.
//  - Context: the function's ctx get/put/delete, in EKV (namespace `context`).
//  - Figures for `edgeflow ps` (Stats) and a log for `edgeflow logs` (log()).
//
// Delivery is at least once: a node that dies mid-invocation runs the item again after restart
// (Start() recovers pending items), and its outputs may then be published twice, with the same
// item ids, which downstream functions drop as duplicates.
//
// Lifecycle: Create -> Start -> Stop (idempotent). Thread-safety: Offer() from one thread at a
// time (the MQTT network thread); Stats() and log() from any.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <expected>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "channels/channel_publisher.h"
#include "channels/mqtt_message.h"
#include "common/status.h"
#include "kv/store.h"
#include "runtime/function_log.h"
#include "runtime/function_worker.h"
#include "runtime/latency_window.h"
#include "runtime/pending_item.h"
#include "runtime/pipeline_spec.h"
#include "runtime/worker_process.h"

namespace edgeflow::runtime {

inline constexpr std::string_view kContextNamespace = "context";

struct RunnerOptions {
  kv::Store* store = nullptr;
  channels::ChannelPublisher* publisher = nullptr;
  std::filesystem::path state_dir;  // node-owned scratch for this function's workers
  std::chrono::milliseconds idle_timeout{30'000};   // a worker above min_workers retires after
  std::chrono::milliseconds ready_timeout{30'000};  // a worker must say `ready` within
  std::chrono::milliseconds stop_grace{2'000};      // in-flight invocations at Stop()
  size_t max_joining = 10'000;  // items waiting for a join; beyond, the oldest expire early
};

struct FunctionStats {
  std::string pipeline;
  std::string function;
  uint32_t workers = 0;       // running worker processes
  uint32_t busy_workers = 0;  // of them, invoking now
  uint32_t min_workers = 0;
  uint32_t max_workers = 0;
  uint64_t queued = 0;   // ready items waiting for a worker, and retries waiting for their time
  uint64_t joining = 0;  // items still waiting for inputs
  uint64_t in_flight = 0;
  uint64_t done = 0;
  uint64_t failed = 0;  // sent to the dead-letter channel (failures, expired joins, rejects)
  uint64_t retries = 0;
  uint64_t duplicates = 0;
  uint64_t expired_unjoined = 0;
  uint64_t rejected = 0;  // malformed trigger messages
  uint64_t worker_starts = 0;
  uint64_t worker_failures = 0;  // crashed, timed out, broke the protocol, failed to start
  uint64_t batched = 0;  // items sent to their worker in an `invoke_batch` with others
  uint64_t latency_p50_us = 0;   // item ready (all inputs in) -> outputs published
  uint64_t latency_p99_us = 0;
  uint64_t exec_p50_us = 0;  // the invocation alone
  uint64_t exec_p99_us = 0;
  std::string last_error;
};

class FunctionRunner {
 public:
  static Result<std::unique_ptr<FunctionRunner>> Create(std::string pipeline, FunctionSpec spec,
                                                        PreparedCode code, RunnerOptions options);
  ~FunctionRunner();
  FunctionRunner(const FunctionRunner&) = delete;
  FunctionRunner& operator=(const FunctionRunner&) = delete;

  // Recovers the function's pending items from EKV and starts min_workers workers.
  Status Start();
  // Stops accepting, gives in-flight invocations stop_grace, then kills the workers. Pending
  // items stay in EKV for the next Start().
  void Stop();
  // Stop() and remove the function's pending items and outcomes (undeploy).
  void StopAndPurge();

  // A message of the input `input_index` (index into spec().inputs).
  void Offer(size_t input_index, const channels::MqttMessage& message);

  const FunctionSpec& spec() const { return spec_; }
  const std::string& pipeline() const { return pipeline_; }
  FunctionLog& log() { return log_; }
  const FunctionLog& log() const { return log_; }
  FunctionStats Stats() const;

 private:
  struct Slot {
    std::thread thread;
    bool exited = false;
    bool retiring = false;  // leaving after an idle spell; no longer counts as a worker
    FunctionWorker* worker = nullptr;  // GUARDED_BY(mu_) for Abort at Stop
  };

  FunctionRunner(std::string pipeline, FunctionSpec spec, PreparedCode code, RunnerOptions options);
  Status Recover();
  void SupervisorLoop();
  void SlotLoop(Slot* slot);
  void AddSlotLocked();
  size_t LiveSlotsLocked() const;  // REQUIRES: mu_ held
  // An item was added to ready_: wakes a slot, and the supervisor when a worker should be added.
  void WakeForReadyLocked();  // REQUIRES: mu_ held
  void ExpireJoinsLocked(int64_t now_ms, std::vector<PendingItem>* expired);
  struct ReadyItem;
  // The items a slot takes from ready_ for its next frame to its worker (at least one).
  std::vector<ReadyItem> TakeBatchLocked(size_t worker_batch);  // REQUIRES: mu_ held
  // The invocation of a ready item (inputs resolved), or why it cannot run.
  std::expected<Invocation, InvocationOutcome> PrepareInvocation(const PendingItem& item) const;
  // Runs `batch` on the slot's `worker` (already started) and handles every outcome.
  void ExecuteBatch(std::vector<ReadyItem> batch, std::unique_ptr<FunctionWorker>* worker);
  struct Succeeded {
    PendingItem item;
    std::chrono::steady_clock::time_point ready_at;
    std::vector<InvocationOutput> outputs;
    int64_t invoked_at_ms = 0;
  };
  // Stores and announces the outputs of items whose invocations returned them.
  void PublishOutputs(std::vector<Succeeded> succeeded);
  void FinishAsync(PendingItem item);
  struct OutcomeCommit;
  std::unique_ptr<OutcomeCommit> MakeOutcomeCommit(const std::string& item_id,
                                                   std::string_view state,
                                                   std::string_view error) const;
  // After an item's outcome was committed (or failed to be): logs a failure, ends a join.
  void Finished(const std::string& item_id, const Status& recorded);
  // Callbacks of asynchronous announcements and commits still to come (Stop waits for them).
  void BeginOutstanding();
  void EndOutstanding();
  void HandleFailure(PendingItem item, const InvocationOutcome& outcome,
                     std::chrono::steady_clock::time_point ready_at);
  void DeadLetter(const PendingItem& item, std::string_view kind, std::string_view error);
  void Finish(const PendingItem& item, std::string_view state, std::string_view error);
  void NoteError(const std::string& error);
  void NoteDuplicate(const std::string& item_id, const std::string& why);
  std::string NextInstanceId();

  const std::string pipeline_;
  const FunctionSpec spec_;
  const PreparedCode code_;
  const RunnerOptions options_;
  FunctionLog log_;

  mutable std::mutex mu_;
  // Idle slots wait on ready_cv_ alone, so that the one wake-up a new item makes goes to a slot
  // that can take it (not to a slot waiting out a back-off, or to Stop()).
  std::condition_variable ready_cv_;       // ready_ has items, or stopping
  std::condition_variable work_cv_;        // a slot or an announcement finished, or stopping
  std::condition_variable supervisor_cv_;  // wake the supervisor
  bool stopping_ = false;                  // GUARDED_BY(mu_)
  bool started_ = false;                   // GUARDED_BY(mu_)
  struct ReadyItem {
    PendingItem item;
    std::chrono::steady_clock::time_point ready_at;
  };
  std::deque<ReadyItem> ready_;                                        // GUARDED_BY(mu_)
  std::multimap<std::chrono::steady_clock::time_point, ReadyItem> delayed_;  // GUARDED_BY(mu_)
  std::map<std::string, PendingItem> joining_;  // GUARDED_BY(mu_): multi-input, by item id
  std::set<std::string> active_;  // GUARDED_BY(mu_): multi-input items joined, not finished
  struct FailedPublish {
    PendingItem item;
    InvocationOutcome outcome;
    std::chrono::steady_clock::time_point ready_at;
  };
  std::deque<FailedPublish> failed_publishes_;  // GUARDED_BY(mu_): for the supervisor
  uint64_t outstanding_ = 0;                    // GUARDED_BY(mu_)
  std::list<Slot> slots_;         // GUARDED_BY(mu_)
  uint32_t busy_slots_ = 0;       // GUARDED_BY(mu_)
  std::string last_error_;        // GUARDED_BY(mu_)
  std::thread supervisor_;
  uint64_t next_instance_ = 1;  // GUARDED_BY(mu_)

  std::atomic<uint64_t> done_{0}, failed_{0}, retries_{0}, duplicates_{0}, expired_{0},
      rejected_{0}, worker_starts_{0}, worker_failures_{0}, in_flight_{0}, batched_{0};
  LatencyWindow latency_;
  LatencyWindow exec_latency_;
  std::atomic<uint64_t> typical_exec_us_{0};  // moving average of invocation times
};

}  // namespace edgeflow::runtime
