#include "runtime/function_worker.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>

#include "common/clock.h"
#include "common/text_encoding.h"
#include "runtime/worker_frame.h"

namespace edgeflow::runtime {

namespace {

constexpr size_t kStderrTailLines = 20;
constexpr size_t kMaxContextKeyBytes = 512;
constexpr size_t kMaxWorkerBatch = 1024;  // the most a worker may announce (the protocol's bound)

bool IsValidPart(std::string_view part) {
  if (part.empty() || part.size() > 64) return false;
  return std::all_of(part.begin(), part.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
  });
}

// Members the protocol requires, read strictly: a wrong type is a protocol error.
Result<std::string> StringMember(const nlohmann::json& object, const char* name, bool required) {
  auto it = object.find(name);
  if (it == object.end()) {
    if (required) return Error(Status::InvalidArgument(std::string("missing \"") + name + "\""));
    return std::string();
  }
  if (!it->is_string()) {
    return Error(Status::InvalidArgument(std::string("\"") + name + "\" must be a string"));
  }
  return it->get<std::string>();
}

FrameLimits LimitsOf(const FunctionSpec& function) {
  FrameLimits limits;
  limits.max_blob_bytes = function.limits.max_payload_bytes;
  limits.max_total_blob_bytes = function.limits.max_payload_bytes * 4;
  return limits;
}

void IgnoreSigpipeOnce() {
  // A worker that dies closes its stdin; writing to it must fail with EPIPE, not kill the node.
  static std::once_flag once;
  std::call_once(once, [] { ::signal(SIGPIPE, SIG_IGN); });
}

}  // namespace

Result<std::unique_ptr<FunctionWorker>> FunctionWorker::Start(
    const PreparedCode& code, const FunctionSpec& function, const WorkerLaunchOptions& options,
    FunctionLog* log, std::chrono::milliseconds ready_timeout) {
  IgnoreSigpipeOnce();
  auto process = WorkerProcess::Start(code, function, options);
  if (!process) return Error(std::move(process.error()));
  std::unique_ptr<FunctionWorker> worker(
      new FunctionWorker(std::move(*process), function, options.instance_id, log));
  const auto deadline = std::chrono::steady_clock::now() + ready_timeout;
  auto frame = worker->reader_.Next(deadline);
  Status problem;
  if (!frame) {
    if (frame.error().Is(ErrorCode::kOutOfRange)) {
      problem = Status::Unavailable("the worker exited before it was ready");
    } else if (frame.error().Is(ErrorCode::kDeadlineExceeded)) {
      problem = Status::DeadlineExceeded("the worker did not send \"ready\" within " +
                                         std::to_string(ready_timeout.count()) + " ms");
    } else {
      problem = Status::InvalidArgument("protocol error before \"ready\": " +
                                        frame.error().message());
    }
  } else if (frame->type() != "ready") {
    problem = Status::InvalidArgument("the worker's first frame is \"" + frame->type() +
                                      "\", not \"ready\"");
  } else if (auto version = frame->header.find("protocol");
             version == frame->header.end() || !version->is_number_integer() ||
             version->get<int64_t>() != 1) {
    problem = Status::InvalidArgument("the worker speaks another protocol version (want 1)");
  } else if (auto batch = frame->header.find("batch"); batch != frame->header.end()) {
    if (!batch->is_number_unsigned() || batch->get<uint64_t>() < 1 ||
        batch->get<uint64_t>() > kMaxWorkerBatch) {
      problem = Status::InvalidArgument("\"ready\": \"batch\" must be an integer in 1.." +
                                        std::to_string(kMaxWorkerBatch));
    } else {
      worker->max_batch_ = batch->get<size_t>();
    }
  }
  if (!problem.ok()) {
    InvocationOutcome failed = worker->Fail(InvocationOutcome::Kind::kWorkerDied,
                                            problem.message(), true);
    return Error(Status(problem.code(), failed.message));
  }
  log->Append("runtime", "info", worker->instance_id_,
              "worker started (pid " + std::to_string(worker->pid()) + ")");
  return worker;
}

FunctionWorker::FunctionWorker(std::unique_ptr<WorkerProcess> process,
                               const FunctionSpec& function, std::string instance_id,
                               FunctionLog* log)
    : process_(std::move(process)),
      function_(function),
      instance_id_(std::move(instance_id)),
      log_(log),
      reader_(process_->stdout_fd(), LimitsOf(function)) {
  stderr_thread_ = std::thread([this] { PumpStderr(); });
}

FunctionWorker::~FunctionWorker() {
  stopping_.store(true, std::memory_order_release);
  process_->Kill();
  if (stderr_thread_.joinable()) stderr_thread_.join();
  process_->Wait(std::chrono::seconds(5));
}

void FunctionWorker::PumpStderr() {
  const int fd = process_->stderr_fd();
  std::string pending;
  char buf[4096];
  auto flush_line = [this](std::string line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!IsValidUtf8(line)) line = "[binary] " + Base64Encode(line);
    log_->Append("stderr", "info", instance_id_, line);
    std::lock_guard lock(stderr_mu_);
    stderr_tail_.push_back(std::move(line));
    if (stderr_tail_.size() > kStderrTailLines) stderr_tail_.erase(stderr_tail_.begin());
  };
  while (true) {
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, 200);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) {
      // Nothing to read: stop once the worker is being torn down (a grandchild that escaped
      // the kill could otherwise hold the pipe open forever).
      if (stopping_.load(std::memory_order_acquire)) break;
      continue;
    }
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      break;
    }
    if (n == 0) break;
    pending.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      flush_line(pending.substr(start, nl - start));
    }
    pending.erase(0, start);
    if (pending.size() > 8192) {  // a very long line without newline: log it in pieces
      flush_line(std::move(pending));
      pending.clear();
    }
  }
  if (!pending.empty()) flush_line(std::move(pending));
}

std::string FunctionWorker::RecentStderr() const {
  std::lock_guard lock(stderr_mu_);
  std::string out;
  const size_t from = stderr_tail_.size() > 5 ? stderr_tail_.size() - 5 : 0;
  for (size_t i = from; i < stderr_tail_.size(); ++i) {
    if (!out.empty()) out += " | ";
    out += stderr_tail_[i];
  }
  return out;
}

InvocationOutcome FunctionWorker::Fail(InvocationOutcome::Kind kind, std::string message,
                                       bool retryable) {
  usable_ = false;
  process_->Kill();
  if (auto status = process_->Wait(std::chrono::seconds(2))) {
    if (kind == InvocationOutcome::Kind::kWorkerDied || status->term_signal != SIGKILL) {
      message += " (" + status->ToString() + ")";
    }
  }
  // Let the stderr pump drain what the worker wrote before it died: it explains the failure.
  stopping_.store(true, std::memory_order_release);
  if (stderr_thread_.joinable()) stderr_thread_.join();
  if (std::string tail = RecentStderr(); !tail.empty()) message += "; stderr: " + tail;
  log_->Append("runtime", "error", instance_id_, message);
  InvocationOutcome outcome;
  outcome.kind = kind;
  outcome.retryable = retryable;
  outcome.message = std::move(message);
  return outcome;
}

InvocationOutcome FunctionWorker::RejectResult(std::string message) {
  // A result the spec does not allow is the function's bug, not the worker's state: the worker
  // stays, and the item is not retried (the function would answer the same).
  log_->Append("runtime", "error", instance_id_, message);
  InvocationOutcome outcome;
  outcome.kind = InvocationOutcome::Kind::kProtocolError;
  outcome.retryable = false;
  outcome.message = std::move(message);
  return outcome;
}

Status FunctionWorker::ServeContextRequest(const WorkerFrame& request, ContextAccess* context) {
  const std::string& type = request.type();
  auto req = request.header.find("req");
  if (req == request.header.end() || !req->is_number_integer()) {
    return Status::InvalidArgument("\"" + type + "\" needs an integer \"req\"");
  }
  auto key = StringMember(request.header, "key", true);
  if (!key) return Status::InvalidArgument("\"" + type + "\": " + key.error().message());
  if (key->empty() || key->size() > kMaxContextKeyBytes || !IsValidUtf8(*key)) {
    return Status::InvalidArgument("\"" + type + "\": a context key must be 1.." +
                                   std::to_string(kMaxContextKeyBytes) + " bytes of UTF-8");
  }
  WorkerFrame reply;
  reply.header["req"] = *req;
  if (type == "ctx_get") {
    reply.header["type"] = "ctx_value";
    auto value = context->Get(*key);
    if (!value) {
      reply.header["error"] = value.error().message();
    } else if (!value->has_value()) {
      reply.header["found"] = false;
    } else {
      reply.header["found"] = true;
      reply.header["blob"] = reply.AddBlob(std::move(**value));
    }
  } else {
    reply.header["type"] = "ctx_done";
    Status done;
    if (type == "ctx_put") {
      auto value = request.BlobOf(request.header);
      if (!value) return Status::InvalidArgument("\"ctx_put\": " + value.error().message());
      int64_t ttl_ms = 0;
      if (auto ttl = request.header.find("ttl_ms"); ttl != request.header.end()) {
        if (!ttl->is_number_integer() || ttl->get<int64_t>() < 0) {
          return Status::InvalidArgument("\"ctx_put\": \"ttl_ms\" must be a non-negative integer");
        }
        ttl_ms = ttl->get<int64_t>();
      }
      done = context->Put(*key, **value, ttl_ms);
    } else {
      done = context->Delete(*key);
      if (done.Is(ErrorCode::kNotFound)) done = Status::Ok();  // deleting nothing is fine
    }
    if (!done.ok()) reply.header["error"] = done.message();
  }
  return WriteAll(process_->stdin_fd(), EncodeWorkerFrame(std::move(reply)));
}

std::vector<InvocationOutcome> FunctionWorker::InvokeBatch(
    std::span<const Invocation> invocations, std::span<ContextAccess* const> contexts) {
  using Kind = InvocationOutcome::Kind;
  std::vector<InvocationOutcome> outcomes;
  if (invocations.empty()) return outcomes;
  outcomes.reserve(invocations.size());

  // The members an invocation has in `invoke` and in each entry of `invoke_batch`.
  WorkerFrame frame;
  std::vector<uint64_t> ids;
  auto describe = [&](const Invocation& invocation) {
    ids.push_back(next_invocation_id_++);
    nlohmann::json inputs = nlohmann::json::array();
    for (const InvocationInput& input : invocation.inputs) {
      inputs.push_back({{"name", input.name},
                        {"content_type", input.content_type},
                        {"channel", input.channel},
                        {"key", input.key},
                        {"blob", frame.AddBlob(input.data)}});
    }
    return nlohmann::json{{"id", ids.back()},
                          {"item_id", invocation.item_id},
                          {"stream", invocation.stream},
                          {"attempt", invocation.attempt},
                          {"trace_id", invocation.trace_id},
                          {"inputs", std::move(inputs)}};
  };
  if (invocations.size() == 1) {
    frame.header = describe(invocations[0]);
    frame.header["type"] = "invoke";
    frame.header["deadline_ms"] = SystemClock::Default()->NowMillis() +
                                  static_cast<int64_t>(invocations[0].timeout.count());
  } else {
    nlohmann::json entries = nlohmann::json::array();
    for (const Invocation& invocation : invocations) {
      nlohmann::json entry = describe(invocation);
      entry["timeout_ms"] = invocation.timeout.count();
      entries.push_back(std::move(entry));
    }
    frame.header["type"] = "invoke_batch";
    frame.header["invocations"] = std::move(entries);
  }
  frame.header["max_payload_bytes"] = function_.limits.max_payload_bytes;

  auto started = std::chrono::steady_clock::now();
  if (Status s = WriteAll(process_->stdin_fd(), EncodeWorkerFrame(std::move(frame))); !s.ok()) {
    outcomes.push_back(Fail(Kind::kWorkerDied, "the worker is gone: " + s.message(), true));
  } else {
    for (size_t i = 0; i < invocations.size() && usable_; ++i) {
      outcomes.push_back(AwaitReply(ids[i], invocations[i].timeout, started, contexts[i]));
      started = std::chrono::steady_clock::now();
    }
  }
  while (outcomes.size() < invocations.size()) {
    InvocationOutcome skipped;
    skipped.kind = Kind::kNotStarted;
    skipped.message = "not started: the worker failed on an earlier item of its batch";
    outcomes.push_back(std::move(skipped));
  }
  return outcomes;
}

InvocationOutcome FunctionWorker::AwaitReply(uint64_t id, std::chrono::milliseconds timeout,
                                             std::chrono::steady_clock::time_point started,
                                             ContextAccess* context) {
  using Kind = InvocationOutcome::Kind;
  const auto deadline = started + timeout;
  while (true) {
    auto frame = reader_.Next(deadline);
    if (!frame) {
      const Status& e = frame.error();
      if (e.Is(ErrorCode::kDeadlineExceeded)) {
        return Fail(Kind::kTimedOut,
                    "timed out after " + std::to_string(timeout.count()) +
                        " ms (limits.timeout_ms); the worker was killed",
                    true);
      }
      if (e.Is(ErrorCode::kOutOfRange) || e.Is(ErrorCode::kIoError)) {
        return Fail(Kind::kWorkerDied, "the worker exited during the invocation", true);
      }
      return Fail(Kind::kProtocolError, "protocol error: " + e.message(), false);
    }
    const std::string& type = frame->type();
    if (type == "log") {
      auto message = StringMember(frame->header, "message", true);
      if (!message) return Fail(Kind::kProtocolError, "protocol error: \"log\": " +
                                                          message.error().message(), false);
      auto level = StringMember(frame->header, "level", false);
      std::string lvl = level ? *level : "info";
      if (lvl != "debug" && lvl != "info" && lvl != "warn" && lvl != "error") lvl = "info";
      log_->Append("log", lvl, instance_id_, *message);
      continue;
    }
    if (type == "ctx_get" || type == "ctx_put" || type == "ctx_delete") {
      if (Status s = ServeContextRequest(*frame, context); !s.ok()) {
        if (s.Is(ErrorCode::kIoError)) {
          return Fail(Kind::kWorkerDied, "the worker is gone: " + s.message(), true);
        }
        return Fail(Kind::kProtocolError, "protocol error: " + s.message(), false);
      }
      continue;
    }
    if (type != "result" && type != "error") {
      return Fail(Kind::kProtocolError,
                  "protocol error: unexpected frame \"" + type + "\" during an invocation",
                  false);
    }
    auto echoed = frame->header.find("id");
    if (echoed == frame->header.end() || !echoed->is_number_unsigned() ||
        echoed->get<uint64_t>() != id) {
      return Fail(Kind::kProtocolError,
                  "protocol error: \"" + type + "\" does not carry the invocation's id " +
                      std::to_string(id),
                  false);
    }
    InvocationOutcome outcome;
    outcome.duration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - started);
    if (type == "error") {
      auto message = StringMember(frame->header, "message", false);
      outcome.kind = Kind::kFunctionError;
      outcome.message = message && !message->empty() ? *message : "the function failed";
      if (auto retry = frame->header.find("retry"); retry != frame->header.end()) {
        if (!retry->is_boolean()) {
          return Fail(Kind::kProtocolError, "protocol error: \"retry\" must be true or false",
                      false);
        }
        outcome.retryable = retry->get<bool>();
      }
      return outcome;
    }
    auto outputs = frame->header.find("outputs");
    if (outputs == frame->header.end() || !outputs->is_array()) {
      return Fail(Kind::kProtocolError, "protocol error: \"result\" needs an \"outputs\" array",
                  false);
    }
    std::vector<std::pair<std::string, std::string>> seen;  // (name, part)
    for (const nlohmann::json& entry : *outputs) {
      if (!entry.is_object()) {
        return Fail(Kind::kProtocolError, "protocol error: an output is not an object", false);
      }
      InvocationOutput output;
      auto name = StringMember(entry, "name", true);
      auto part = StringMember(entry, "part", false);
      auto content_type = StringMember(entry, "content_type", false);
      auto data = frame->BlobOf(entry);
      for (const Status* e : {name ? nullptr : &name.error(), part ? nullptr : &part.error(),
                              content_type ? nullptr : &content_type.error(),
                              data ? nullptr : &data.error()}) {
        if (e != nullptr) {
          return Fail(Kind::kProtocolError, "protocol error: output: " + e->message(), false);
        }
      }
      const bool declared =
          std::any_of(function_.outputs.begin(), function_.outputs.end(),
                      [&](const auto& declared_output) { return declared_output.first == *name; });
      if (!declared) {
        std::string names;
        for (const auto& [declared_name, channel] : function_.outputs) {
          names += names.empty() ? declared_name : ", " + declared_name;
        }
        return RejectResult("the function returned an unknown output \"" + *name +
                            "\" (declared: " + (names.empty() ? "none" : names) + ")");
      }
      if (!part->empty() && !IsValidPart(*part)) {
        return RejectResult("output \"" + *name + "\": part \"" + *part +
                            "\" is not 1..64 characters of [A-Za-z0-9_.-]");
      }
      if (std::find(seen.begin(), seen.end(), std::make_pair(*name, *part)) != seen.end()) {
        return RejectResult("output \"" + *name + "\" appears twice with the same part \"" +
                            *part + "\" (give each a distinct part)");
      }
      seen.emplace_back(*name, *part);
      output.name = std::move(*name);
      output.part = std::move(*part);
      output.content_type = std::move(*content_type);
      output.data = **data;
      outcome.outputs.push_back(std::move(output));
    }
    return outcome;
  }
}

bool FunctionWorker::CheckAlive() {
  if (!usable_) return false;
  if (auto status = process_->TryWait()) {
    usable_ = false;
    log_->Append("runtime", "warn", instance_id_,
                 "worker exited while idle (" + status->ToString() + "); starting another");
    return false;
  }
  return true;
}

void FunctionWorker::Shutdown(std::chrono::milliseconds grace) {
  if (usable_) {
    WorkerFrame shutdown;
    shutdown.header["type"] = "shutdown";
    if (WriteAll(process_->stdin_fd(), EncodeWorkerFrame(std::move(shutdown))).ok()) {
      process_->CloseStdin();
      process_->Wait(grace);
    }
  }
  usable_ = false;
  stopping_.store(true, std::memory_order_release);
  process_->Kill();
  if (stderr_thread_.joinable()) stderr_thread_.join();
  process_->Wait(std::chrono::seconds(2));
  log_->Append("runtime", "info", instance_id_, "worker stopped");
}

}  // namespace edgeflow::runtime
