#include "channels/key_change_notifier.h"

#include <algorithm>
#include <charconv>

#include "channels/channel_name.h"
#include "channels/envelope.h"
#include "common/clock.h"
#include "common/log.h"

namespace edgeflow::channels {
namespace {

constexpr size_t kPageScan = 1000;
constexpr auto kSaveInterval = std::chrono::seconds(1);
constexpr auto kRetryDelay = std::chrono::milliseconds(200);
constexpr auto kPublishTimeout = std::chrono::seconds(2);

}  // namespace

Status ValidateNotifyRules(const std::vector<NotifyRule>& rules) {
  for (size_t i = 0; i < rules.size(); ++i) {
    const NotifyRule& rule = rules[i];
    const std::string where = "notify rule " + std::to_string(i + 1) + ": ";
    if (Status s = kv::ValidateNamespace(rule.ns); !s.ok()) {
      return Status::InvalidArgument(where + "namespace: " + s.message());
    }
    if (rule.ns == kv::kNodeStateNamespace) {
      return Status::InvalidArgument(where + "namespace '" + rule.ns +
                                     "' holds the node's own state and cannot be watched");
    }
    if (Status s = ValidateChannelName(rule.channel); !s.ok()) {
      return Status::InvalidArgument(where + s.message());
    }
  }
  return Status::Ok();
}

Result<std::unique_ptr<KeyChangeNotifier>> KeyChangeNotifier::Create(std::vector<NotifyRule> rules,
                                                                     std::string tenant,
                                                                     kv::Store* store,
                                                                     MqttClient* mqtt) {
  if (Status s = ValidateNotifyRules(rules); !s.ok()) return Error(std::move(s));
  if (Status s = ValidateTenant(tenant); !s.ok()) return Error(std::move(s));
  return std::unique_ptr<KeyChangeNotifier>(
      new KeyChangeNotifier(std::move(rules), std::move(tenant), store, mqtt));
}

KeyChangeNotifier::KeyChangeNotifier(std::vector<NotifyRule> rules, std::string tenant,
                                     kv::Store* store, MqttClient* mqtt)
    : tenant_(std::move(tenant)), store_(store), mqtt_(mqtt) {
  for (NotifyRule& rule : rules) {
    RuleState state;
    state.topic = ChannelTopic(tenant_, rule.channel);
    state.progress_key = "notify/" + rule.ns + "/" + rule.channel;
    state.rule = std::move(rule);
    rules_.push_back(std::move(state));
  }
}

KeyChangeNotifier::~KeyChangeNotifier() { Stop(); }

Status KeyChangeNotifier::Start() {
  if (thread_.joinable() || rules_.empty()) return Status::Ok();
  const uint64_t start_seq = store_->LastSeq() + 1;
  for (RuleState& state : rules_) {
    state.next_seq = start_seq;
    auto saved = store_->Get(kv::kNodeStateNamespace, state.progress_key);
    if (saved) {
      uint64_t seq = 0;
      const std::string& text = saved->value;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seq);
      if (ec == std::errc() && end == text.data() + text.size() && seq > 0) {
        state.next_seq = std::min(seq, start_seq);
      } else {
        log::Warn("bad saved notify position; starting at the newest change",
                  {{"key", state.progress_key}});
      }
    } else if (saved.error().Is(ErrorCode::kNotFound)) {
      state.unsaved = true;  // a new rule: record where it starts, so a restart resumes there
    } else {
      return saved.error();
    }
  }
  last_save_ = std::chrono::steady_clock::now();
  SaveProgress(/*force=*/true);
  {
    std::lock_guard lock(mu_);
    stop_ = false;
    committed_ = start_seq - 1;
  }
  listener_id_ = store_->AddCommitListener([this](uint64_t last_seq) {
    {
      std::lock_guard lock(mu_);
      committed_ = std::max(committed_, last_seq);
    }
    cv_.notify_one();
  });
  listening_ = true;
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void KeyChangeNotifier::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (listening_) {
    store_->RemoveCommitListener(listener_id_);
    listening_ = false;
  }
  SaveProgress(/*force=*/true);
}

bool KeyChangeNotifier::WaitFor(std::chrono::milliseconds delay) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, delay, [this] { return stop_; });
}

void KeyChangeNotifier::Run() {
  for (;;) {
    bool more = false;
    bool failed = false;
    for (RuleState& state : rules_) {
      bool rule_more = false;
      if (!Pump(state, &rule_more)) failed = true;
      more = more || rule_more;
    }
    SaveProgress(/*force=*/false);
    if (failed) {
      if (!WaitFor(kRetryDelay)) return;
      continue;
    }
    std::unique_lock lock(mu_);
    if (stop_) return;
    if (more) continue;
    // Caught up: sleep until a commit goes past every rule's position (or, to save positions
    // that are still pending, a second at most).
    const uint64_t lowest =
        std::min_element(rules_.begin(), rules_.end(), [](const auto& a, const auto& b) {
          return a.next_seq < b.next_seq;
        })->next_seq;
    cv_.wait_for(lock, kSaveInterval, [&] { return stop_ || committed_ >= lowest; });
    if (stop_) return;
  }
}

bool KeyChangeNotifier::Pump(RuleState& state, bool* more) {
  auto page = store_->ReadChanges(state.next_seq, state.rule.ns, state.rule.prefix, kPageScan);
  if (!page && page.error().Is(ErrorCode::kOutOfRange)) {
    const uint64_t oldest = store_->Stats().first_seq;
    const uint64_t resume = std::max(oldest, state.next_seq);
    skipped_.fetch_add(resume - state.next_seq, std::memory_order_relaxed);
    log::Warn("changes fell out of the change log before they were announced",
              {{"channel", state.rule.channel},
               {"from_seq", std::to_string(state.next_seq)},
               {"resume_seq", std::to_string(resume)}});
    state.next_seq = resume == state.next_seq ? resume + 1 : resume;
    state.unsaved = true;
    *more = true;
    return true;
  }
  if (!page) {
    log::Warn("cannot read the change log", {{"error", page.error().message()}});
    return false;
  }
  for (const kv::Change& change : page->changes) {
    Envelope envelope;
    envelope.item_id = change.key;
    envelope.content_type = change.content_type;
    envelope.ref = ItemRef{change.ns, change.key, change.version.ToString()};
    envelope.size = change.op == kv::ChangeOp::kPut ? change.size : 0;
    envelope.inline_data = false;
    envelope.produced_at_ms = change.version.PhysicalMillis();
    envelope.change =
        change.op == kv::ChangeOp::kPut ? Envelope::Change::kPut : Envelope::Change::kDelete;
    if (change.op == kv::ChangeOp::kPut && change.expires_at_ms > 0) {
      const int64_t left_ms = change.expires_at_ms - SystemClock::Default()->NowMillis();
      if (left_ms <= 0) {  // expired before it could be announced: nothing to read any more
        state.next_seq = change.seq + 1;
        continue;
      }
      envelope.expiry_seconds =
          static_cast<uint32_t>(std::clamp<int64_t>((left_ms + 999) / 1000, 1, UINT32_MAX));
    }
    MqttMessage message;
    message.topic = state.topic;
    message.qos = 1;
    WriteEnvelope(envelope, &message);
    if (Status s = mqtt_->Publish(message, kPublishTimeout); !s.ok()) {
      failures_.fetch_add(1, std::memory_order_relaxed);
      log::Warn("cannot announce a key change; retrying",
                {{"channel", state.rule.channel}, {"error", s.message()}});
      return false;
    }
    published_.fetch_add(1, std::memory_order_relaxed);
    state.next_seq = change.seq + 1;
    state.unsaved = true;
    {
      std::lock_guard lock(mu_);
      if (stop_) return true;
    }
  }
  state.next_seq = std::max(state.next_seq, page->next_seq);
  *more = state.next_seq <= store_->LastSeq();
  return true;
}

void KeyChangeNotifier::SaveProgress(bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_save_ < kSaveInterval) return;
  last_save_ = now;
  for (RuleState& state : rules_) {
    // A forced save (start, stop) records every rule: one that announced nothing still moved
    // past the changes it did not match, and must not see them again after a restart.
    if (!state.unsaved && !force) continue;
    auto written =
        store_->Put(kv::kNodeStateNamespace, state.progress_key, std::to_string(state.next_seq));
    if (written) {
      state.unsaved = false;
    } else {
      log::Warn("cannot save the notify position", {{"error", written.error().message()}});
    }
  }
}

}  // namespace edgeflow::channels
