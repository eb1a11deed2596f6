// FunctionWorker: one warm worker of an edge function, and the node's side of the worker
// protocol with it (docs/function-protocol.md). It starts the process in its sandbox, waits for
// `ready`, then runs invocations: sends `invoke` (or `invoke_batch`, to a worker that takes
// batches), serves the worker's context requests and log frames, and returns the outcomes. The worker's stderr goes to the function's log
// line by line, from a thread of its own (so a chatty worker never blocks on a full pipe).
//
// A worker that breaks the protocol, times out or dies is marked unusable and must be replaced;
// the outcome says which happened, so the caller can decide between a retry and the dead-letter
// channel.
//
// Thread-safety: InvokeBatch() and Shutdown() from one thread (the worker's slot); the rest from
// any.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "runtime/function_log.h"
#include "runtime/pipeline_spec.h"
#include "runtime/worker_frame_reader.h"
#include "runtime/worker_process.h"

namespace edgeflow::runtime {

struct InvocationInput {
  std::string name;
  std::string content_type;
  std::string channel;
  std::string key;  // where the data is in EKV, "" for data that came inline only
  std::string data;
};

struct Invocation {
  std::string item_id;
  std::string stream;
  std::string trace_id;
  uint32_t attempt = 1;
  std::vector<InvocationInput> inputs;
  std::chrono::milliseconds timeout{30'000};
};

struct InvocationOutput {
  std::string name;  // one of the function's declared outputs (checked)
  std::string part;  // "" or [A-Za-z0-9_.-]{1,64} (checked)
  std::string content_type;
  std::string data;
};

struct InvocationOutcome {
  enum class Kind {
    kResult,         // the function returned outputs
    kFunctionError,  // the function reported an error (`error` frame)
    kProtocolError,  // the worker broke the protocol (garbage, unknown output, oversized data)
    kTimedOut,       // no reply within the timeout; the worker was killed
    kWorkerDied,     // the worker exited or could not be started
    kNotStarted,     // an earlier invocation of its batch left the worker unusable: not attempted
  };
  Kind kind = Kind::kResult;
  bool retryable = true;  // false: skip the remaining attempts
  std::string message;    // for everything but kResult
  std::vector<InvocationOutput> outputs;
  std::chrono::microseconds duration{0};
};

// The context the worker reads and writes (kept in EKV by the runner).
class ContextAccess {
 public:
  virtual ~ContextAccess() = default;
  virtual Result<std::optional<std::string>> Get(std::string_view key) = 0;
  virtual Status Put(std::string_view key, std::string_view value, int64_t ttl_ms) = 0;
  virtual Status Delete(std::string_view key) = 0;
};

class FunctionWorker {
 public:
  // Starts the worker and waits (up to `ready_timeout`) for its `ready` frame. The error says why
  // it did not come up (exec failure, exit status, garbage instead of `ready`, time-out) and
  // includes the last lines it wrote on stderr.
  static Result<std::unique_ptr<FunctionWorker>> Start(const PreparedCode& code,
                                                       const FunctionSpec& function,
                                                       const WorkerLaunchOptions& options,
                                                       FunctionLog* log,
                                                       std::chrono::milliseconds ready_timeout);
  ~FunctionWorker();  // kills the worker if Shutdown() was not called
  FunctionWorker(const FunctionWorker&) = delete;
  FunctionWorker& operator=(const FunctionWorker&) = delete;

  // Runs the invocations in order, in one `invoke_batch` frame (at most max_batch() of them; one
  // goes as `invoke`). `contexts[i]` serves the context requests of `invocations[i]`. One outcome
  // per invocation; those after one that left the worker unusable are kNotStarted. Each
  // invocation's timeout counts from the end of the one before it.
  std::vector<InvocationOutcome> InvokeBatch(std::span<const Invocation> invocations,
                                             std::span<ContextAccess* const> contexts);
  // How many invocations the worker takes in one frame (its `ready` said; 1 without batches).
  size_t max_batch() const { return max_batch_; }

  // False once the worker broke the protocol, timed out or died: replace it.
  bool usable() const { return usable_; }
  // Whether the worker still runs (a worker may die between invocations); false also marks it
  // unusable and logs how it ended.
  bool CheckAlive();
  const std::string& instance_id() const { return instance_id_; }
  pid_t pid() const { return process_->pid(); }

  // Kills the worker now, from any thread (the node is stopping): an InvokeBatch() in progress
  // returns kWorkerDied.
  void Abort() { process_->Kill(); }

  // Asks the worker to exit (`shutdown`), waits up to `grace`, then kills it.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  FunctionWorker(std::unique_ptr<WorkerProcess> process, const FunctionSpec& function,
                 std::string instance_id, FunctionLog* log);
  void PumpStderr();
  // The outcome for a dead or broken worker: kills it, adds its exit status and recent stderr.
  InvocationOutcome Fail(InvocationOutcome::Kind kind, std::string message, bool retryable);
  // The outcome for a well-formed result that breaks the function's spec (unknown output, bad
  // or repeated part): logged, not retried; the worker stays usable.
  InvocationOutcome RejectResult(std::string message);
  Status ServeContextRequest(const struct WorkerFrame& request, ContextAccess* context);
  // Reads frames until the reply to invocation `id` (serving context requests and log frames),
  // for at most `timeout` from `started`.
  InvocationOutcome AwaitReply(uint64_t id, std::chrono::milliseconds timeout,
                               std::chrono::steady_clock::time_point started,
                               ContextAccess* context);
  std::string RecentStderr() const;

  std::unique_ptr<WorkerProcess> process_;
  const FunctionSpec& function_;
  const std::string instance_id_;
  FunctionLog* const log_;
  std::thread stderr_thread_;
  std::atomic<bool> stopping_{false};
  WorkerFrameReader reader_;
  size_t max_batch_ = 1;
  bool usable_ = true;
  uint64_t next_invocation_id_ = 1;
  mutable std::mutex stderr_mu_;
  std::vector<std::string> stderr_tail_;  // GUARDED_BY(stderr_mu_): the last few lines
};

}  // namespace edgeflow::runtime
