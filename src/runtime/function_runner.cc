#include "runtime/function_runner.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "channels/channel_name.h"
#include "common/clock.h"
#include "common/log.h"

namespace edgeflow::runtime {

namespace {

using Clock = std::chrono::steady_clock;

// The most items one slot takes at once for a worker that takes batches: enough to pay a worker
// round trip once for many small items, few enough that an item does not wait long behind others.
constexpr size_t kMaxItemsPerBatch = 16;
// Above this typical invocation time, items go to workers one at a time (see TakeBatchLocked).
constexpr uint64_t kBatchOnlyBelowExecUs = 1000;

int64_t NowMillis() { return SystemClock::Default()->NowMillis(); }

uint64_t MicrosSince(Clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
}

// The function's context in EKV: one key space per function, or per stream key.
class EkvContext final : public ContextAccess {
 public:
  EkvContext(kv::Store* store, std::string prefix) : store_(store), prefix_(std::move(prefix)) {}

  Result<std::optional<std::string>> Get(std::string_view key) override {
    auto item = store_->Get(kContextNamespace, prefix_ + std::string(key));
    if (!item) {
      if (item.error().Is(ErrorCode::kNotFound)) return std::optional<std::string>();
      return Error(item.error());
    }
    return std::optional<std::string>(std::string(item->value));
  }
  Status Put(std::string_view key, std::string_view value, int64_t ttl_ms) override {
    kv::PutOptions options;
    if (ttl_ms > 0) options.ttl_ms = ttl_ms;
    auto written = store_->Put(kContextNamespace, prefix_ + std::string(key), value, options);
    return written ? Status::Ok() : written.error();
  }
  Status Delete(std::string_view key) override {
    auto deleted = store_->Delete(kContextNamespace, prefix_ + std::string(key));
    return deleted ? Status::Ok() : deleted.error();
  }

 private:
  kv::Store* const store_;
  const std::string prefix_;
};

std::string ContextPrefix(std::string_view pipeline, const FunctionSpec& spec,
                          std::string_view stream) {
  std::string prefix = std::string(pipeline) + "/" + spec.name + "/";
  if (spec.context_per_key && !stream.empty()) return prefix + "s/" + std::string(stream) + "/";
  return prefix + "f/";
}

// The first error of a batch: the commit's, or an operation's (a delete of what is gone already
// is fine: the record was never written, or expired).
Status FirstFailure(const Result<std::vector<Result<kv::WriteResult>>>& applied) {
  if (!applied) return applied.error();
  for (const Result<kv::WriteResult>& op : *applied) {
    if (!op && !op.error().Is(ErrorCode::kNotFound)) return op.error();
  }
  return Status::Ok();
}

std::string OutputItemId(std::string_view item_id, std::string_view part) {
  return part.empty() ? std::string(item_id) : std::string(item_id) + "." + std::string(part);
}

}  // namespace

Result<std::unique_ptr<FunctionRunner>> FunctionRunner::Create(std::string pipeline,
                                                               FunctionSpec spec,
                                                               PreparedCode code,
                                                               RunnerOptions options) {
  if (options.store == nullptr || options.publisher == nullptr) {
    return Error(Status::Internal("a function runner needs the store and the publisher"));
  }
  return std::unique_ptr<FunctionRunner>(new FunctionRunner(
      std::move(pipeline), std::move(spec), std::move(code), std::move(options)));
}

FunctionRunner::FunctionRunner(std::string pipeline, FunctionSpec spec, PreparedCode code,
                               RunnerOptions options)
    : pipeline_(std::move(pipeline)),
      spec_(std::move(spec)),
      code_(std::move(code)),
      options_(std::move(options)),
      log_(pipeline_ + "/" + spec_.name) {}

FunctionRunner::~FunctionRunner() { Stop(); }

Status FunctionRunner::Start() {
  {
    std::lock_guard lock(mu_);
    if (started_) return Status::Ok();
  }
  EF_RETURN_IF_ERROR(Recover());
  std::lock_guard lock(mu_);
  started_ = true;
  stopping_ = false;
  for (uint32_t i = 0; i < spec_.min_workers; ++i) AddSlotLocked();
  supervisor_ = std::thread([this] { SupervisorLoop(); });
  return Status::Ok();
}

Status FunctionRunner::Recover() {
  const std::string prefix = ItemPrefix(pipeline_, spec_.name);
  std::string after;
  size_t recovered = 0;
  while (true) {
    auto page = options_.store->List(kv::kNodeStateNamespace, prefix, after, 1000);
    if (!page) return page.error();
    for (const kv::ListEntry& entry : page->entries) {
      after = entry.key;
      auto item = options_.store->Get(kv::kNodeStateNamespace, entry.key);
      if (!item) continue;  // gone since the listing
      if (DecodeItemOutcome(item->value)) continue;  // finished; kept for the dedupe window
      auto pending = DecodePendingItem(item->value);
      if (!pending) {
        log_.Append("runtime", "error", "", "dropping an unreadable pending item " + entry.key +
                                                ": " + pending.error().message());
        if (auto deleted = options_.store->Delete(kv::kNodeStateNamespace, entry.key); !deleted) {
          deleted.error().IgnoreError();  // it stays unreadable; the next start reports it again
        }
        continue;
      }
      ++recovered;
      std::lock_guard lock(mu_);
      const bool complete = std::all_of(
          spec_.inputs.begin(), spec_.inputs.end(),
          [&](const auto& input) { return pending->Find(input.first) != nullptr; });
      if (complete) {
        if (spec_.inputs.size() > 1) active_.insert(pending->item_id);
        ready_.push_back({std::move(*pending), Clock::now()});
      } else {
        std::string id = pending->item_id;
        joining_.emplace(std::move(id), std::move(*pending));
      }
    }
    if (page->next_start_after.empty()) break;
    after = page->next_start_after;
  }
  if (recovered > 0) {
    log_.Append("runtime", "info", "",
                "recovered " + std::to_string(recovered) + " pending items after a restart");
  }
  return Status::Ok();
}

void FunctionRunner::Stop() {
  std::list<Slot> slots;
  {
    std::unique_lock lock(mu_);
    if (!started_) return;
    started_ = false;
    stopping_ = true;
    ready_cv_.notify_all();
    work_cv_.notify_all();
    supervisor_cv_.notify_all();
    // In-flight invocations get a grace period to finish; then their workers are killed (the
    // items stay pending in EKV and run again after the next start).
    work_cv_.wait_for(lock, options_.stop_grace, [this] { return busy_slots_ == 0; });
    for (Slot& slot : slots_) {
      if (slot.worker != nullptr) slot.worker->Abort();
    }
  }
  if (supervisor_.joinable()) supervisor_.join();
  {
    std::lock_guard lock(mu_);
    slots.splice(slots.end(), slots_);
  }
  for (Slot& slot : slots) {
    if (slot.thread.joinable()) slot.thread.join();
  }
  std::unique_lock lock(mu_);
  // Announcements and commits in flight call back into this runner: wait for them (each ends by
  // the publish timeout at the latest). Items whose announcement failed stay pending in EKV.
  work_cv_.wait(lock, [this] { return outstanding_ == 0; });
  failed_publishes_.clear();
  ready_.clear();
  delayed_.clear();
  joining_.clear();
  active_.clear();
}

void FunctionRunner::StopAndPurge() {
  Stop();
  const std::string prefix = FunctionStatePrefix(pipeline_, spec_.name);
  std::string after;
  while (true) {
    auto page = options_.store->List(kv::kNodeStateNamespace, prefix, after, 1000);
    if (!page) break;
    for (const kv::ListEntry& entry : page->entries) {
      if (auto deleted = options_.store->Delete(kv::kNodeStateNamespace, entry.key); !deleted) {
        deleted.error().IgnoreError();  // gone already, or expired
      }
    }
    if (page->next_start_after.empty()) break;
    after = page->next_start_after;
  }
}

void FunctionRunner::NoteDuplicate(const std::string& item_id, const std::string& why) {
  // Logged, but not every one: a producer that repeats itself must not flood the log. A function
  // on a cycle that keeps its input's item id lands here too (its outputs need a part).
  const uint64_t n = ++duplicates_;
  if (n <= 10 || n % 1000 == 0) {
    log_.Append("runtime", "info", "",
                "dropped a repeated delivery of item " + item_id + " (" + why + "; " +
                    std::to_string(n) + " duplicates so far)");
  }
}

void FunctionRunner::NoteError(const std::string& error) {
  std::lock_guard lock(mu_);
  last_error_ = error;
}

std::string FunctionRunner::NextInstanceId() {
  std::lock_guard lock(mu_);
  return pipeline_ + "." + spec_.name + "." + std::to_string(NowMillis()) + "." +
         std::to_string(next_instance_++);
}

void FunctionRunner::Offer(size_t input_index, const channels::MqttMessage& message) {
  if (input_index >= spec_.inputs.size()) return;
  const auto& [input_name, channel] = spec_.inputs[input_index];
  const int64_t now = NowMillis();
  auto envelope = channels::ReadEnvelope(message);
  if (!envelope) {
    ++rejected_;
    PendingItem item;
    item.item_id = message.correlation_data.empty() ? channels::NewItemId(now)
                                                    : message.correlation_data;
    const std::string error =
        "input \"" + input_name + "\": malformed channel message: " + envelope.error().message();
    log_.Append("runtime", "warn", "", error + " (item " + item.item_id + ")");
    DeadLetter(item, "rejected", error);
    return;
  }
  if (envelope->change == channels::Envelope::Change::kDelete) {
    // A key-change notification of a delete announces no data: there is nothing to compute on.
    return;
  }
  TriggerInput trigger;
  trigger.input = input_name;
  trigger.channel = channel;
  trigger.payload = message.payload;
  trigger.arrived_at_ms = now;
  trigger.envelope = std::move(*envelope);
  std::string item_id = trigger.envelope.item_id;
  if (item_id.empty()) item_id = channels::NewItemId(now);  // a plain MQTT client sent no id
  // The item's trace starts here when its producer did not start one.
  if (trigger.envelope.trace_id.empty()) trigger.envelope.trace_id = channels::NewTraceId();

  kv::Store* store = options_.store;
  const std::string pending_key = ItemKey(pipeline_, spec_.name, item_id);

  if (spec_.inputs.size() == 1) {
    // The pending record goes into the store's next group commit, with the other triggers, outputs
    // and outcomes queued meanwhile; the item is ready once it is in. (The MQTT library has acked
    // the message already, before this callback: the record narrows that window, it cannot close
    // it.)
    struct Intake {
      PendingItem item;
      std::string key, record;
      kv::WriteOp op;
    };
    auto intake = std::make_shared<Intake>();
    intake->item.item_id = item_id;
    intake->item.first_arrival_ms = now;
    intake->item.inputs.push_back(std::move(trigger));
    intake->key = pending_key;
    intake->record = EncodePendingItem(intake->item);
    intake->op.kind = kv::WriteOp::Kind::kPut;
    intake->op.ns = kv::kNodeStateNamespace;
    intake->op.key = intake->key;
    intake->op.value = intake->record;
    intake->op.put.condition = kv::PutCondition::kIfAbsent;
    BeginOutstanding();
    store->ApplyAsync({&intake->op, 1}, [this, intake](auto applied) {
      Status stored = !applied               ? applied.error()
                      : (*applied)[0].has_value() ? Status::Ok()
                                                  : (*applied)[0].error();
      if (stored.Is(ErrorCode::kFailedPrecondition) || stored.Is(ErrorCode::kAlreadyExists)) {
        NoteDuplicate(intake->item.item_id,
                      "it is queued, running, or finished within the dedupe window");
      } else if (!stored.ok()) {
        // The store refuses writes: running the item without a durable record would make a
        // loss silent; the broker keeps nothing either (the message was acknowledged). Say so.
        ++rejected_;
        const std::string error =
            "cannot store item " + intake->item.item_id + ": " + stored.message();
        NoteError(error);
        log_.Append("runtime", "error", "", error);
      } else {
        std::lock_guard lock(mu_);
        // When stopping, the item is pending in EKV: the next start runs it.
        if (!stopping_) {
          ready_.push_back({std::move(intake->item), Clock::now()});
          WakeForReadyLocked();
        }
      }
      EndOutstanding();
    });
    return;
  }

  // Several inputs: join by item id.
  std::lock_guard lock(mu_);
  if (stopping_) return;
  if (active_.contains(item_id)) {
    NoteDuplicate(item_id, "it is joined and queued or running");
    return;
  }
  // An item neither joining nor active has no record, or one of an outcome: finished within the
  // dedupe window (recovery loads every pending record into joining_ or active_).
  if (!joining_.contains(item_id) && store->Head(kv::kNodeStateNamespace, pending_key)) {
    NoteDuplicate(item_id, "it finished within the dedupe window");
    return;
  }
  auto [it, inserted] = joining_.try_emplace(item_id);
  PendingItem& item = it->second;
  if (inserted) {
    item.item_id = item_id;
    item.first_arrival_ms = now;
  } else if (item.Find(input_name) != nullptr) {
    NoteDuplicate(item_id, "input \"" + input_name + "\" of it arrived already");
    return;
  }
  item.inputs.push_back(std::move(trigger));
  auto stored = store->Put(kv::kNodeStateNamespace, pending_key, EncodePendingItem(item));
  if (!stored) {
    ++rejected_;
    last_error_ = "cannot store item " + item_id + ": " + stored.error().message();
    log_.Append("runtime", "error", "", last_error_);
    item.inputs.pop_back();
    if (item.inputs.empty()) joining_.erase(it);
    return;
  }
  const bool complete =
      std::all_of(spec_.inputs.begin(), spec_.inputs.end(),
                  [&](const auto& input) { return item.Find(input.first) != nullptr; });
  if (complete) {
    active_.insert(item_id);
    ready_.push_back({std::move(item), Clock::now()});
    joining_.erase(it);
    WakeForReadyLocked();
  }
}

void FunctionRunner::WakeForReadyLocked() {
  ready_cv_.notify_one();
  // The supervisor adds a worker only when every live one is busy: no wake-up per item otherwise.
  const size_t live = LiveSlotsLocked();
  if (live < spec_.max_workers && ready_.size() > live - busy_slots_) supervisor_cv_.notify_one();
}

size_t FunctionRunner::LiveSlotsLocked() const {
  return static_cast<size_t>(std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) {
    return !s.exited && !s.retiring;
  }));
}

void FunctionRunner::AddSlotLocked() {
  slots_.emplace_back();
  Slot* slot = &slots_.back();
  slot->thread = std::thread([this, slot] { SlotLoop(slot); });
}

void FunctionRunner::ExpireJoinsLocked(int64_t now_ms, std::vector<PendingItem>* expired) {
  const int64_t window = spec_.join_window.count();
  for (auto it = joining_.begin(); it != joining_.end();) {
    if (now_ms - it->second.first_arrival_ms >= window) {
      expired->push_back(std::move(it->second));
      it = joining_.erase(it);
    } else {
      ++it;
    }
  }
  // A bounded buffer: the items that waited longest make room (they are reported like expired
  // ones, with their own reason).
  while (joining_.size() > options_.max_joining) {
    auto oldest = std::min_element(joining_.begin(), joining_.end(), [](const auto& a, const auto& b) {
      return a.second.first_arrival_ms < b.second.first_arrival_ms;
    });
    oldest->second.failed_attempts = UINT32_MAX;  // marks "evicted" for the message below
    expired->push_back(std::move(oldest->second));
    joining_.erase(oldest);
  }
}

void FunctionRunner::SupervisorLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    supervisor_cv_.wait_for(lock, std::chrono::milliseconds(50));
    if (stopping_) break;
    // Items whose outputs could not be announced: retried like any failure.
    while (!failed_publishes_.empty()) {
      FailedPublish failed = std::move(failed_publishes_.front());
      failed_publishes_.pop_front();
      lock.unlock();
      HandleFailure(std::move(failed.item), failed.outcome, failed.ready_at);
      lock.lock();
    }
    // Retries whose time has come.
    const auto now = Clock::now();
    while (!delayed_.empty() && delayed_.begin()->first <= now) {
      ready_.push_back(std::move(delayed_.begin()->second));
      delayed_.erase(delayed_.begin());
      ready_cv_.notify_one();
    }
    // Scale up: every item waiting should find a worker, up to max_workers.
    const size_t live = LiveSlotsLocked();
    const size_t idle = live - busy_slots_;
    if (ready_.size() > idle) {
      const size_t wanted = std::min<size_t>(spec_.max_workers, busy_slots_ + ready_.size());
      for (size_t n = live; n < wanted; ++n) AddSlotLocked();
    }
    // Reap slots that retired.
    for (auto it = slots_.begin(); it != slots_.end();) {
      if (it->exited) {
        std::thread t = std::move(it->thread);
        it = slots_.erase(it);
        lock.unlock();
        if (t.joinable()) t.join();
        lock.lock();
      } else {
        ++it;
      }
    }
    // Joins that ran out of time.
    if (!joining_.empty()) {
      std::vector<PendingItem> expired;
      ExpireJoinsLocked(NowMillis(), &expired);
      if (!expired.empty()) {
        lock.unlock();
        for (PendingItem& item : expired) {
          std::string arrived, missing;
          for (const auto& [name, channel] : spec_.inputs) {
            std::string& list = item.Find(name) != nullptr ? arrived : missing;
            list += list.empty() ? name : ", " + name;
          }
          const bool evicted = item.failed_attempts == UINT32_MAX;
          item.failed_attempts = 0;
          const std::string error =
              (evicted ? "evicted from a full join buffer (" +
                             std::to_string(options_.max_joining) + " items)"
                       : "join window of " + std::to_string(spec_.join_window.count()) +
                             " ms expired") +
              "; missing inputs: " + missing + " (arrived: " + arrived + ")";
          ++expired_;
          log_.Append("runtime", "warn", "", "item " + item.item_id + ": " + error);
          DeadLetter(item, "join_expired", error);
          Finish(item, "expired", error);
        }
        lock.lock();
      }
    }
  }
}

void FunctionRunner::SlotLoop(Slot* slot) {
  std::unique_ptr<FunctionWorker> worker;
  std::chrono::milliseconds backoff{100};
  Clock::time_point next_start{};
  auto start_worker = [&]() -> Status {
    if (Clock::now() < next_start) {
      std::unique_lock lock(mu_);
      work_cv_.wait_until(lock, next_start, [this] { return stopping_; });
      if (stopping_) return Status::Unavailable("the function is stopping");
    }
    ++worker_starts_;
    auto started = FunctionWorker::Start(code_, spec_, {NextInstanceId(), options_.state_dir},
                                         &log_, options_.ready_timeout);
    if (!started) {
      ++worker_failures_;
      next_start = Clock::now() + backoff;
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(30));
      const std::string error = "worker failed to start: " + started.error().message();
      log_.Append("runtime", "error", "", error);
      NoteError(error);
      return Status(started.error().code(), error);
    }
    worker = std::move(*started);
    std::lock_guard lock(mu_);
    slot->worker = worker.get();
    return Status::Ok();
  };
  // Warm start: min_workers are ready before the first item arrives.
  if (Status s = start_worker(); !s.ok()) {
    s.IgnoreError();  // logged; the first item tries again (and fails visibly if it still cannot)
  }
  auto healthy_since = Clock::now();

  std::unique_lock lock(mu_);
  while (true) {
    const bool got = ready_cv_.wait_for(lock, options_.idle_timeout,
                                       [this] { return stopping_ || !ready_.empty(); });
    if (stopping_) break;
    if (!got) {
      if (LiveSlotsLocked() > spec_.min_workers) {
        slot->retiring = true;  // counted out now, before its worker's shutdown lets others look
        break;                  // idle above the minimum: retire
      }
      continue;
    }
    std::vector<ReadyItem> batch = TakeBatchLocked(worker ? worker->max_batch() : 1);
    const size_t taken = batch.size();
    ++busy_slots_;
    lock.unlock();

    in_flight_ += taken;
    // A worker that died while idle is replaced before the items reach it, so they do not pay
    // an attempt for it.
    if (worker && !worker->CheckAlive()) ++worker_failures_;
    if (!worker || !worker->usable()) {
      if (worker) {
        std::lock_guard guard(mu_);
        slot->worker = nullptr;
      }
      worker.reset();
      if (Status s = start_worker(); !s.ok()) {
        in_flight_ -= taken;
        bool stopping;
        {
          std::lock_guard guard(mu_);
          stopping = stopping_;
        }
        if (!stopping) {
          InvocationOutcome outcome;
          outcome.kind = InvocationOutcome::Kind::kWorkerDied;
          outcome.message = s.message();
          for (ReadyItem& next : batch) HandleFailure(std::move(next.item), outcome, next.ready_at);
        }
        lock.lock();
        --busy_slots_;
        work_cv_.notify_all();
        continue;
      }
    }
    ExecuteBatch(std::move(batch), &worker);
    in_flight_ -= taken;
    if (worker->usable()) {
      // A worker that stays healthy for a while earns a fresh back-off.
      if (Clock::now() - healthy_since > std::chrono::seconds(60)) {
        backoff = std::chrono::milliseconds(100);
      }
    } else {
      healthy_since = Clock::now();
      {
        std::lock_guard guard(mu_);
        slot->worker = nullptr;
      }
      worker.reset();  // killed and reaped; the next item starts a new one
    }
    lock.lock();
    --busy_slots_;
    work_cv_.notify_all();  // Stop() may be waiting for in-flight invocations
  }
  slot->worker = nullptr;
  lock.unlock();
  if (worker) worker->Shutdown(std::chrono::seconds(2));
  lock.lock();
  slot->exited = true;
}

std::vector<FunctionRunner::ReadyItem> FunctionRunner::TakeBatchLocked(size_t worker_batch) {
  // Batches pay off for quick functions only: a round trip to the worker costs tens of
  // microseconds, nothing next to a function that runs for milliseconds, whose items are better
  // spread over workers as they free up.
  if (typical_exec_us_.load(std::memory_order_relaxed) >= kBatchOnlyBelowExecUs) worker_batch = 1;
  // This slot's share of what waits, as if every worker the function may have took one (so a
  // backlog still makes the supervisor add workers); no more than the worker takes in one frame,
  // and within one frame's blob limit; always at least one item.
  const size_t workers = std::max<size_t>({1, LiveSlotsLocked(), spec_.max_workers});
  const size_t share = (ready_.size() + workers - 1) / workers;
  const size_t limit = std::max<size_t>(1, std::min({worker_batch, kMaxItemsPerBatch, share}));
  const uint64_t max_bytes = 4 * spec_.limits.max_payload_bytes;
  std::vector<ReadyItem> batch;
  uint64_t bytes = 0;
  while (!ready_.empty() && batch.size() < limit) {
    uint64_t size = 0;
    for (const TriggerInput& input : ready_.front().item.inputs) {
      size += input.envelope.inline_data ? input.payload.size() : input.envelope.size;
    }
    if (!batch.empty() && bytes + size > max_bytes) break;
    bytes += size;
    batch.push_back(std::move(ready_.front()));
    ready_.pop_front();
  }
  return batch;
}

std::expected<Invocation, InvocationOutcome> FunctionRunner::PrepareInvocation(
    const PendingItem& item) const {
  InvocationOutcome failure;
  failure.kind = InvocationOutcome::Kind::kFunctionError;
  failure.retryable = false;

  // Inputs, in the order the spec declares them.
  Invocation invocation;
  invocation.item_id = item.item_id;
  invocation.attempt = item.failed_attempts + 1;
  invocation.timeout = spec_.limits.timeout;
  for (const auto& [name, channel] : spec_.inputs) {
    const TriggerInput* trigger = item.Find(name);
    if (trigger == nullptr) continue;  // unreachable: only complete items are ready
    if (invocation.trace_id.empty()) invocation.trace_id = trigger->envelope.trace_id;
    if (invocation.stream.empty()) invocation.stream = trigger->envelope.stream;
    InvocationInput input;
    input.name = name;
    input.channel = channel;
    input.content_type = trigger->envelope.content_type;
    if (trigger->envelope.ref) input.key = trigger->envelope.ref->key;
    const uint64_t size = trigger->envelope.inline_data ? trigger->payload.size()
                                                        : trigger->envelope.size;
    if (size > spec_.limits.max_payload_bytes) {
      failure.message = "input \"" + name + "\" is " + std::to_string(size) +
                        " bytes, over limits.max_payload_bytes (" +
                        std::to_string(spec_.limits.max_payload_bytes) + ")";
      return std::unexpected(std::move(failure));
    }
    if (!trigger->envelope.inline_data) {
      // Two inputs of one item stored under one key: the later put replaced the earlier data,
      // and EKV keeps one version; handing the function the same bytes twice would be wrong.
      for (const TriggerInput& other : item.inputs) {
        if (&other != trigger && !other.envelope.inline_data && other.envelope.ref &&
            other.envelope.ref->ns == trigger->envelope.ref->ns &&
            other.envelope.ref->key == trigger->envelope.ref->key) {
          failure.message = "inputs \"" + other.input + "\" and \"" + name +
                            "\" were stored under the same key " +
                            channels::RefPath(*trigger->envelope.ref) +
                            ", so one replaced the other; publish them with distinct keys or "
                            "namespaces";
          return std::unexpected(std::move(failure));
        }
      }
    }
    if (trigger->envelope.inline_data) {
      input.data = trigger->payload;
    } else {
      const channels::ItemRef& ref = *trigger->envelope.ref;
      auto stored = options_.store->Get(ref.ns, ref.key);
      if (!stored) {
        failure.message = "input \"" + name + "\": " +
                          (stored.error().Is(ErrorCode::kNotFound)
                               ? "the item at " + channels::RefPath(ref) +
                                     " is gone (expired or deleted)"
                               : "cannot read " + channels::RefPath(ref) + ": " +
                                     stored.error().message());
        failure.retryable = !stored.error().Is(ErrorCode::kNotFound);
        return std::unexpected(std::move(failure));
      }
      input.data = std::move(stored->value);
    }
    invocation.inputs.push_back(std::move(input));
  }
  return invocation;
}

void FunctionRunner::ExecuteBatch(std::vector<ReadyItem> batch,
                                  std::unique_ptr<FunctionWorker>* worker) {
  std::vector<ReadyItem> items;
  std::vector<Invocation> invocations;
  std::vector<EkvContext> contexts;
  items.reserve(batch.size());
  invocations.reserve(batch.size());
  contexts.reserve(batch.size());
  for (ReadyItem& ready : batch) {
    auto invocation = PrepareInvocation(ready.item);
    if (!invocation) {
      HandleFailure(std::move(ready.item), invocation.error(), ready.ready_at);
      continue;
    }
    contexts.emplace_back(options_.store,
                          ContextPrefix(pipeline_, spec_, invocation->stream));
    invocations.push_back(std::move(*invocation));
    items.push_back(std::move(ready));
  }
  if (invocations.empty()) return;
  std::vector<ContextAccess*> context_of;
  for (EkvContext& context : contexts) context_of.push_back(&context);

  if (invocations.size() > 1) batched_ += invocations.size();
  int64_t invoked_at_ms = NowMillis();
  std::vector<InvocationOutcome> outcomes = (*worker)->InvokeBatch(invocations, context_of);
  if (!(*worker)->usable()) ++worker_failures_;
  bool stopping;
  {
    std::lock_guard lock(mu_);
    stopping = stopping_;
  }
  std::vector<ReadyItem> not_started;
  std::vector<Succeeded> succeeded;
  for (size_t i = 0; i < items.size(); ++i) {
    InvocationOutcome& outcome = outcomes[i];
    if (outcome.kind == InvocationOutcome::Kind::kNotStarted) {
      not_started.push_back(std::move(items[i]));
      continue;
    }
    const int64_t started_at_ms = invoked_at_ms;
    invoked_at_ms += outcome.duration.count() / 1000;  // the next one started when this ended
    // Killed by Stop(): the item stays pending and runs after the next start.
    if (stopping && outcome.kind != InvocationOutcome::Kind::kResult) continue;
    const auto took_us = static_cast<uint64_t>(outcome.duration.count());
    exec_latency_.Add(took_us);
    // A moving average over about the last eight invocations (slots race on it; it is a hint).
    const uint64_t typical = typical_exec_us_.load(std::memory_order_relaxed);
    typical_exec_us_.store(typical - typical / 8 + took_us / 8, std::memory_order_relaxed);
    if (outcome.kind != InvocationOutcome::Kind::kResult) {
      HandleFailure(std::move(items[i].item), outcome, items[i].ready_at);
      continue;
    }
    succeeded.push_back(
        {std::move(items[i].item), items[i].ready_at, std::move(outcome.outputs), started_at_ms});
  }
  if (!succeeded.empty()) PublishOutputs(std::move(succeeded));
  if (!not_started.empty()) {
    // Not attempted: back to the front of the queue, in order, without counting an attempt.
    log_.Append("runtime", "info", "",
                std::to_string(not_started.size()) +
                    " items of a batch were not started (the worker failed on an earlier one); "
                    "they run on the next worker without losing an attempt");
    std::lock_guard lock(mu_);
    if (stopping_) return;  // pending in EKV: the next start runs them
    for (auto it = not_started.rbegin(); it != not_started.rend(); ++it) {
      ready_.push_front(std::move(*it));
    }
    WakeForReadyLocked();
  }
}

void FunctionRunner::PublishOutputs(std::vector<Succeeded> succeeded) {
  // Every output of every item is stored in one commit and announced without waiting; an item is
  // finished when the broker has acknowledged each of its announcements, so the worker can take
  // the next items meanwhile.
  struct Tracker {
    std::mutex mu;
    PendingItem item;
    Clock::time_point ready_at;
    size_t remaining = 0;
    std::string error;  // GUARDED_BY(mu): the first failure
  };
  auto complete = [this](const std::shared_ptr<Tracker>& tracker) {
    std::string error;
    {
      std::lock_guard lock(tracker->mu);
      error = tracker->error;
    }
    if (error.empty()) {
      ++done_;
      latency_.Add(MicrosSince(tracker->ready_at));
      FinishAsync(std::move(tracker->item));
    } else {
      InvocationOutcome failure;
      failure.kind = InvocationOutcome::Kind::kFunctionError;
      failure.retryable = true;
      failure.message = std::move(error);
      // Retries and dead letters block on the store and the broker: not on this thread (the
      // MQTT network thread, when the last ack completes the item).
      std::lock_guard lock(mu_);
      failed_publishes_.push_back(
          {std::move(tracker->item), std::move(failure), tracker->ready_at});
      supervisor_cv_.notify_one();
    }
    --in_flight_;
    EndOutstanding();
  };
  std::vector<channels::PublishRequest> requests;
  std::vector<channels::ChannelPublisher::PublishCallback> callbacks;
  for (Succeeded& success : succeeded) {
    auto tracker = std::make_shared<Tracker>();
    tracker->item = std::move(success.item);
    tracker->ready_at = success.ready_at;
    tracker->remaining = success.outputs.size();
    BeginOutstanding();
    ++in_flight_;
    if (success.outputs.empty()) {
      complete(tracker);
      continue;
    }
    const TriggerInput& first = tracker->item.inputs.front();
    for (InvocationOutput& output : success.outputs) {
      auto declared = std::find_if(spec_.outputs.begin(), spec_.outputs.end(),
                                   [&](const auto& o) { return o.first == output.name; });
      channels::PublishRequest& request = requests.emplace_back();
      request.channel = declared != spec_.outputs.end() ? declared->second : output.name;
      request.data = output.data;  // `succeeded` keeps it alive until PublishAllAsync returns
      request.item_id = OutputItemId(tracker->item.item_id, output.part);
      request.content_type = output.content_type;
      request.trace_id = first.envelope.trace_id;
      request.stream = first.envelope.stream;
      request.invoked_at_ms = success.invoked_at_ms;
      callbacks.emplace_back([tracker, complete, name = output.name,
                              channel = request.channel](Result<channels::PublishResult> published) {
        bool last;
        {
          std::lock_guard lock(tracker->mu);
          if (!published && tracker->error.empty()) {
            tracker->error = "publishing output \"" + name + "\" on channel \"" + channel +
                             "\": " + published.error().message();
          }
          last = --tracker->remaining == 0;
        }
        if (last) complete(tracker);
      });
    }
  }
  if (!requests.empty()) options_.publisher->PublishAllAsync(requests, callbacks);
}

void FunctionRunner::BeginOutstanding() {
  std::lock_guard lock(mu_);
  ++outstanding_;
}

void FunctionRunner::EndOutstanding() {
  std::lock_guard lock(mu_);
  if (--outstanding_ == 0) work_cv_.notify_all();
}

// An item's final writes: its pending record goes, its outcome stays for the dedupe window (and
// without a dedupe window there is no outcome to keep). Owns the bytes its operations point to.
// An item's final write: its record becomes its outcome, kept for the dedupe window (without a
// dedupe window there is nothing to keep, and the record goes). Owns the bytes its operation
// points to.
struct FunctionRunner::OutcomeCommit {
  std::string item_id, key, value;
  kv::WriteOp op;
  std::span<const kv::WriteOp> operations() const { return {&op, 1}; }
};

std::unique_ptr<FunctionRunner::OutcomeCommit> FunctionRunner::MakeOutcomeCommit(
    const std::string& item_id, std::string_view state, std::string_view error) const {
  auto commit = std::make_unique<OutcomeCommit>();
  commit->item_id = item_id;
  commit->key = ItemKey(pipeline_, spec_.name, item_id);
  commit->op.ns = kv::kNodeStateNamespace;
  commit->op.key = commit->key;
  if (spec_.dedupe_window.count() > 0) {
    commit->value = EncodeItemOutcome({std::string(state), NowMillis(), std::string(error)});
    commit->op.kind = kv::WriteOp::Kind::kPut;
    commit->op.value = commit->value;
    commit->op.put.ttl_ms = spec_.dedupe_window.count();
  } else {
    commit->op.kind = kv::WriteOp::Kind::kDelete;
  }
  return commit;
}

void FunctionRunner::Finished(const std::string& item_id, const Status& recorded) {
  if (!recorded.ok()) {
    log_.Append("runtime", "error", "",
                "cannot record the outcome of item " + item_id + ": " + recorded.message() +
                    " (it may run again after a restart)");
  }
  if (spec_.inputs.size() > 1) {
    std::lock_guard lock(mu_);
    active_.erase(item_id);
  }
}

void FunctionRunner::FinishAsync(PendingItem item) {
  // In the store's next group commit; nobody waits for it (a crash before that commit runs the
  // item again: at least once).
  std::shared_ptr<OutcomeCommit> commit = MakeOutcomeCommit(item.item_id, "done", "");
  BeginOutstanding();
  options_.store->ApplyAsync(commit->operations(), [this, commit](auto applied) {
    Finished(commit->item_id, FirstFailure(applied));
    EndOutstanding();
  });
}

void FunctionRunner::HandleFailure(PendingItem item, const InvocationOutcome& outcome,
                                   Clock::time_point ready_at) {
  ++item.failed_attempts;
  NoteError(outcome.message);
  if (outcome.retryable && item.failed_attempts < spec_.retry.attempts) {
    ++retries_;
    auto delay = spec_.retry.backoff;
    for (uint32_t i = 1; i < item.failed_attempts && delay < spec_.retry.backoff_max; ++i) {
      delay *= 2;
    }
    delay = std::min(delay, spec_.retry.backoff_max);
    log_.Append("runtime", "warn", "",
                "item " + item.item_id + " attempt " + std::to_string(item.failed_attempts) +
                    " failed: " + outcome.message + "; retrying in " +
                    std::to_string(delay.count()) + " ms");
    // The attempt count survives a restart of the node.
    if (auto stored = options_.store->Put(kv::kNodeStateNamespace,
                                          ItemKey(pipeline_, spec_.name, item.item_id),
                                          EncodePendingItem(item));
        !stored) {
      stored.error().IgnoreError();  // the item is still pending; it only forgets an attempt
    }
    std::lock_guard lock(mu_);
    if (stopping_) return;
    delayed_.emplace(Clock::now() + delay, ReadyItem{std::move(item), ready_at});
    supervisor_cv_.notify_one();
    return;
  }
  std::string kind;
  switch (outcome.kind) {
    case InvocationOutcome::Kind::kFunctionError: kind = "function_error"; break;
    case InvocationOutcome::Kind::kProtocolError: kind = "protocol_error"; break;
    case InvocationOutcome::Kind::kTimedOut: kind = "timed_out"; break;
    case InvocationOutcome::Kind::kWorkerDied: kind = "worker_died"; break;
    case InvocationOutcome::Kind::kResult: kind = "result"; break;
    case InvocationOutcome::Kind::kNotStarted: kind = "not_started"; break;
  }
  log_.Append("runtime", "error", "",
              "item " + item.item_id + " failed after " + std::to_string(item.failed_attempts) +
                  (item.failed_attempts == 1 ? " attempt: " : " attempts: ") + outcome.message +
                  "; sent to " + spec_.dead_letter_channel);
  DeadLetter(item, kind, outcome.message);
  Finish(item, "failed", outcome.message);
}

void FunctionRunner::DeadLetter(const PendingItem& item, std::string_view kind,
                                std::string_view error) {
  ++failed_;
  nlohmann::json inputs = nlohmann::json::array();
  for (const TriggerInput& t : item.inputs) {
    nlohmann::json input = {{"name", t.input}, {"channel", t.channel}};
    if (t.envelope.ref) input["ref"] = channels::RefPath(*t.envelope.ref);
    inputs.push_back(std::move(input));
  }
  const nlohmann::json letter = {{"pipeline", pipeline_},
                                 {"function", spec_.name},
                                 {"item_id", item.item_id},
                                 {"kind", kind},
                                 {"error", error},
                                 {"attempts", item.failed_attempts},
                                 {"inputs", std::move(inputs)},
                                 {"at_ms", NowMillis()}};
  channels::PublishRequest request;
  request.channel = spec_.dead_letter_channel;
  const std::string data = letter.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  request.data = data;
  request.item_id = item.item_id;
  request.content_type = "application/json";
  if (!item.inputs.empty()) {
    request.trace_id = item.inputs.front().envelope.trace_id;
    request.stream = item.inputs.front().envelope.stream;
  }
  if (auto published = options_.publisher->Publish(request); !published) {
    log_.Append("runtime", "error", "",
                "cannot publish item " + item.item_id + " to the dead-letter channel " +
                    spec_.dead_letter_channel + ": " + published.error().message());
  }
}

void FunctionRunner::Finish(const PendingItem& item, std::string_view state,
                            std::string_view error) {
  const auto commit = MakeOutcomeCommit(item.item_id, state, error);
  Finished(item.item_id, FirstFailure(options_.store->Apply(commit->operations())));
}

FunctionStats FunctionRunner::Stats() const {
  FunctionStats stats;
  stats.pipeline = pipeline_;
  stats.function = spec_.name;
  stats.min_workers = spec_.min_workers;
  stats.max_workers = spec_.max_workers;
  {
    std::lock_guard lock(mu_);
    for (const Slot& slot : slots_) {
      if (slot.worker != nullptr) ++stats.workers;
    }
    stats.busy_workers = busy_slots_;
    stats.queued = ready_.size() + delayed_.size();
    stats.joining = joining_.size();
    stats.last_error = last_error_;
  }
  stats.in_flight = in_flight_.load();
  stats.done = done_.load();
  stats.failed = failed_.load();
  stats.retries = retries_.load();
  stats.duplicates = duplicates_.load();
  stats.expired_unjoined = expired_.load();
  stats.rejected = rejected_.load();
  stats.worker_starts = worker_starts_.load();
  stats.worker_failures = worker_failures_.load();
  stats.batched = batched_.load();
  stats.latency_p50_us = latency_.Quantile(0.50);
  stats.latency_p99_us = latency_.Quantile(0.99);
  stats.exec_p50_us = exec_latency_.Quantile(0.50);
  stats.exec_p99_us = exec_latency_.Quantile(0.99);
  return stats;
}

}  // namespace edgeflow::runtime
