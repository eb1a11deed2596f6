#include "runtime/pipeline_manager.h"

#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "channels/channel_name.h"
#include "common/clock.h"
#include "common/log.h"

namespace edgeflow::runtime {

namespace {

constexpr std::string_view kPipelinePrefix = "pipelines/";

std::string PipelineKey(std::string_view name) { return std::string(kPipelinePrefix) + std::string(name); }

// Where a function's code snapshot lives (PrepareCode writes code/ or bundle/ below it).
std::filesystem::path FunctionDir(const std::filesystem::path& code_root,
                                  const FunctionSpec& function) {
  return code_root / function.name;
}

PreparedCode SnapshotOf(const std::filesystem::path& code_root, const FunctionSpec& function) {
  PreparedCode code;
  code.sandbox = function.sandbox;
  code.code_dir = FunctionDir(code_root, function) / "code";
  code.bundle_dir = FunctionDir(code_root, function) / "bundle";
  return code;
}

void RemoveTree(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) log::Warn("cannot remove a code snapshot", {{"dir", dir.string()}, {"error", ec.message()}});
}

}  // namespace

Result<std::unique_ptr<PipelineManager>> PipelineManager::Create(PipelineManagerOptions options) {
  if (options.store == nullptr || options.publisher == nullptr) {
    return Error(Status::Internal("the pipeline manager needs the store and the publisher"));
  }
  if (options.functions_dir.empty()) {
    return Error(Status::InvalidArgument("the pipeline manager needs a functions directory"));
  }
  std::error_code ec;
  std::filesystem::create_directories(options.functions_dir, ec);
  if (ec) {
    return Error(Status::IoError("cannot create " + options.functions_dir.string() + ": " +
                                 ec.message()));
  }
  options.runner.store = options.store;
  options.runner.publisher = options.publisher;
  std::unique_ptr<PipelineManager> manager(new PipelineManager(std::move(options)));
  channels::MqttClientOptions client = manager->options_.trigger_client;
  client.persistent_session = true;
  auto trigger = channels::MqttClient::Create(std::move(client));
  if (!trigger) return Error(std::move(trigger.error()));
  manager->trigger_ = std::move(*trigger);
  PipelineManager* self = manager.get();
  manager->trigger_->SetMessageHandler(
      [self](const channels::MqttMessage& message) { self->OnTrigger(message); });
  return manager;
}

PipelineManager::PipelineManager(PipelineManagerOptions options) : options_(std::move(options)) {}

PipelineManager::~PipelineManager() { Stop(); }

Status PipelineManager::Start() {
  std::lock_guard deploy(deploy_mu_);
  if (started_) return Status::Ok();
  // Runners first, then the connection: messages the broker kept for the node's session arrive
  // as soon as it connects, and each must find its function.
  std::string after;
  while (true) {
    auto page = options_.store->List(kv::kNodeStateNamespace, kPipelinePrefix, after, 1000);
    if (!page) return page.error();
    for (const kv::ListEntry& entry : page->entries) {
      auto item = options_.store->Get(kv::kNodeStateNamespace, entry.key);
      if (!item) continue;
      const nlohmann::json record = nlohmann::json::parse(item->value, nullptr, false);
      if (record.is_discarded() || !record.is_object() || !record.contains("spec") ||
          !record["spec"].is_string() || !record.contains("code_dir") ||
          !record["code_dir"].is_string()) {
        log::Error("an unreadable pipeline record", {{"key", entry.key}});
        continue;
      }
      const std::string spec_text = record["spec"].get<std::string>();
      SpecParseResult parsed = ParsePipelineSpec(spec_text);
      if (!parsed.ok()) {
        log::Error("a recorded pipeline no longer parses",
                   {{"key", entry.key}, {"error", parsed.ToStatus(entry.key).message()}});
        continue;
      }
      const int64_t deployed_at = record.value("deployed_at_ms", int64_t{0});
      auto launched = Launch(parsed.spec, spec_text, deployed_at,
                             record["code_dir"].get<std::string>());
      if (!launched) {
        log::Error("cannot start a deployed pipeline again",
                   {{"pipeline", parsed.spec.name}, {"error", launched.error().message()}});
        continue;
      }
      Deployed* deployed = launched->get();
      std::vector<std::string> topics;
      {
        std::unique_lock lock(mu_);
        topics = AddRoutesLocked(deployed);
        pipelines_[deployed->name] = std::move(*launched);
      }
      UpdateSubscriptions({}, topics);
      log::Info("pipeline started", {{"pipeline", deployed->name},
                                     {"functions", static_cast<uint64_t>(deployed->runners.size())}});
    }
    if (page->next_start_after.empty()) break;
    after = page->next_start_after;
  }
  EF_RETURN_IF_ERROR(trigger_->Start());
  if (!trigger_->WaitConnected(std::chrono::seconds(10))) {
    log::Warn("the functions' MQTT connection is not up yet; triggers wait for it",
              {{"broker", options_.trigger_client.broker.ToString()}});
  }
  started_ = true;
  return Status::Ok();
}

void PipelineManager::Stop() {
  std::lock_guard deploy(deploy_mu_);
  if (trigger_) trigger_->Stop();
  std::map<std::string, std::unique_ptr<Deployed>, std::less<>> pipelines;
  {
    std::unique_lock lock(mu_);
    pipelines.swap(pipelines_);
    routes_.clear();
  }
  for (auto& [name, deployed] : pipelines) {
    for (auto& runner : deployed->runners) runner->Stop();
  }
  started_ = false;
}

Result<std::unique_ptr<PipelineManager::Deployed>> PipelineManager::Launch(
    const PipelineSpec& spec, std::string spec_text, int64_t deployed_at_ms,
    const std::filesystem::path& code_root) {
  auto deployed = std::make_unique<Deployed>();
  deployed->name = spec.name;
  deployed->spec_text = std::move(spec_text);
  deployed->deployed_at_ms = deployed_at_ms;
  deployed->code_root = code_root;
  for (const FunctionSpec& function : spec.functions) {
    RunnerOptions runner_options = options_.runner;
    runner_options.state_dir = FunctionDir(code_root, function) / "state";
    std::error_code ec;
    std::filesystem::create_directories(runner_options.state_dir, ec);
    if (ec) {
      return Error(Status::IoError("cannot create " + runner_options.state_dir.string() + ": " +
                                   ec.message()));
    }
    const PreparedCode code = SnapshotOf(code_root, function);
    const auto& snapshot = code.sandbox == SandboxKind::kOci ? code.bundle_dir : code.code_dir;
    if (!std::filesystem::exists(snapshot, ec)) {
      return Error(Status::NotFound("function \"" + function.name + "\": its code snapshot " +
                                    snapshot.string() + " is missing"));
    }
    auto runner = FunctionRunner::Create(spec.name, function, code, runner_options);
    if (!runner) return Error(std::move(runner.error()));
    deployed->runners.push_back(std::move(*runner));
  }
  for (size_t i = 0; i < deployed->runners.size(); ++i) {
    if (Status s = deployed->runners[i]->Start(); !s.ok()) {
      for (size_t j = 0; j < i; ++j) deployed->runners[j]->Stop();
      return Error(Status(s.code(), "function \"" + deployed->runners[i]->spec().name +
                                        "\": " + s.message()));
    }
  }
  return deployed;
}

std::vector<std::string> PipelineManager::AddRoutesLocked(Deployed* deployed) {
  std::vector<std::string> new_topics;
  for (auto& runner : deployed->runners) {
    const FunctionSpec& spec = runner->spec();
    for (size_t i = 0; i < spec.inputs.size(); ++i) {
      const std::string topic = channels::ChannelTopic(options_.tenant, spec.inputs[i].second);
      auto& routes = routes_[topic];
      if (routes.empty()) new_topics.push_back(topic);
      routes.push_back({runner.get(), i});
    }
  }
  return new_topics;
}

std::vector<std::string> PipelineManager::RemoveRoutesLocked(Deployed* deployed) {
  std::vector<std::string> gone;
  for (auto it = routes_.begin(); it != routes_.end();) {
    std::erase_if(it->second, [&](const Route& route) {
      return std::any_of(deployed->runners.begin(), deployed->runners.end(),
                         [&](const auto& runner) { return runner.get() == route.runner; });
    });
    if (it->second.empty()) {
      gone.push_back(it->first);
      it = routes_.erase(it);
    } else {
      ++it;
    }
  }
  return gone;
}

void PipelineManager::UpdateSubscriptions(const std::vector<std::string>& gone,
                                          const std::vector<std::string>& added) {
  std::set<std::string> still_routed;
  {
    std::shared_lock lock(mu_);
    for (const auto& [topic, routes] : routes_) still_routed.insert(topic);
  }
  for (const std::string& topic : gone) {
    if (still_routed.contains(topic)) continue;  // the new version reads it too
    if (Status s = trigger_->Unsubscribe(topic); !s.ok()) {
      log::Warn("cannot unsubscribe", {{"topic", topic}, {"error", s.message()}});
    }
  }
  for (const std::string& topic : added) {
    if (Status s = trigger_->Subscribe(topic, 1); !s.ok()) {
      // Registered anyway: the client subscribes again on its next connect.
      log::Warn("cannot subscribe a function input yet", {{"topic", topic}, {"error", s.message()}});
    }
  }
}

void PipelineManager::OnTrigger(const channels::MqttMessage& message) {
  std::shared_lock lock(mu_);
  auto it = routes_.find(message.topic);
  if (it == routes_.end()) return;  // a subscription of an undeployed pipeline, still draining
  for (const Route& route : it->second) route.runner->Offer(route.input_index, message);
}

Status PipelineManager::Record(const Deployed& deployed) {
  const nlohmann::json record = {{"name", deployed.name},
                                 {"spec", deployed.spec_text},
                                 {"code_dir", deployed.code_root.string()},
                                 {"deployed_at_ms", deployed.deployed_at_ms}};
  kv::PutOptions options;
  options.content_type = "application/json";
  auto written = options_.store->Put(kv::kNodeStateNamespace, PipelineKey(deployed.name),
                                     record.dump(-1, ' ', false,
                                                 nlohmann::json::error_handler_t::replace),
                                     options);
  return written ? Status::Ok() : written.error();
}

Result<DeployResult> PipelineManager::Deploy(std::string_view spec_text,
                                             const std::filesystem::path& spec_dir,
                                             std::string_view source) {
  SpecParseResult parsed = ParsePipelineSpec(spec_text);
  if (!parsed.ok()) return Error(parsed.ToStatus(source));
  const PipelineSpec& spec = parsed.spec;
  for (const FunctionSpec& function : spec.functions) {
    if (Status s = CheckSandbox(function.sandbox); !s.ok()) {
      return Error(Status(s.code(), "function \"" + function.name + "\" (line " +
                                        std::to_string(function.line) + "): " + s.message()));
    }
  }
  std::lock_guard deploy(deploy_mu_);
  const int64_t deployed_at = std::max<int64_t>(SystemClock::Default()->NowMillis(), 1);
  const std::filesystem::path code_root =
      options_.functions_dir / spec.name / std::to_string(deployed_at);
  for (const FunctionSpec& function : spec.functions) {
    auto prepared = PrepareCode(function, spec_dir, FunctionDir(code_root, function));
    if (!prepared) {
      RemoveTree(code_root);
      // The message names the function already.
      return Error(Status(prepared.error().code(), prepared.error().message() + " (spec line " +
                                                       std::to_string(function.line) + ")"));
    }
  }

  // The pipeline changes hands while triggers wait (OnTrigger takes mu_ shared): a message the
  // MQTT library has acknowledged must reach the old version (which stores it as pending before
  // it stops) or the new one (which recovers what the old one left), never neither.
  std::unique_ptr<Deployed> old;
  std::vector<std::string> gone, added;
  bool replaced = false;
  Result<std::unique_ptr<Deployed>> launched = Error(Status::Internal("not launched"));
  {
    std::unique_lock lock(mu_);
    if (auto it = pipelines_.find(spec.name); it != pipelines_.end()) {
      old = std::move(it->second);
      pipelines_.erase(it);
      replaced = true;
      gone = RemoveRoutesLocked(old.get());
      // Functions that remain hand their pending items (in EKV) to their successors.
      for (auto& runner : old->runners) {
        if (spec.Find(runner->spec().name) != nullptr) {
          runner->Stop();
        } else {
          runner->StopAndPurge();
        }
      }
    }
    launched = Launch(spec, std::string(spec_text), deployed_at, code_root);
    if (launched) {
      if (Status s = Record(**launched); !s.ok()) {
        for (auto& runner : (*launched)->runners) runner->Stop();
        launched = Error(Status(s.code(), "cannot record the pipeline: " + s.message()));
      }
    }
    if (!launched && old) {
      // Put the previous version back rather than leave the pipeline down.
      for (auto& runner : old->runners) {
        if (Status s = runner->Start(); !s.ok()) s.IgnoreError();
      }
      added = AddRoutesLocked(old.get());
      pipelines_[spec.name] = std::move(old);
    } else if (launched) {
      added = AddRoutesLocked(launched->get());
      pipelines_[spec.name] = std::move(*launched);
    }
  }
  UpdateSubscriptions(gone, added);
  if (!launched) {
    RemoveTree(code_root);
    return Error(std::move(launched.error()));
  }
  DeployResult result;
  result.pipeline = spec.name;
  result.replaced = replaced;
  result.deployed_at_ms = deployed_at;
  for (const FunctionSpec& function : spec.functions) result.functions.push_back(function.name);
  if (old) RemoveTree(old->code_root);
  log::Info("pipeline deployed", {{"pipeline", spec.name},
                                  {"functions", static_cast<uint64_t>(spec.functions.size())},
                                  {"replaced", result.replaced ? "true" : "false"}});
  return result;
}

Status PipelineManager::Undeploy(std::string_view pipeline) {
  std::lock_guard deploy(deploy_mu_);
  std::unique_ptr<Deployed> deployed;
  std::vector<std::string> gone;
  {
    std::unique_lock lock(mu_);
    auto it = pipelines_.find(pipeline);
    if (it == pipelines_.end()) {
      return Status::NotFound("no pipeline \"" + std::string(pipeline) + "\" is deployed");
    }
    deployed = std::move(it->second);
    pipelines_.erase(it);
    gone = RemoveRoutesLocked(deployed.get());
  }
  UpdateSubscriptions(gone, {});
  for (auto& runner : deployed->runners) runner->StopAndPurge();
  auto removed = options_.store->Delete(kv::kNodeStateNamespace, PipelineKey(pipeline));
  if (!removed && !removed.error().Is(ErrorCode::kNotFound)) return removed.error();
  RemoveTree(options_.functions_dir / std::string(pipeline));
  log::Info("pipeline undeployed", {{"pipeline", std::string(pipeline)}});
  return Status::Ok();
}

PipelineInfo PipelineManager::InfoOf(const Deployed& deployed) {
  PipelineInfo info;
  info.name = deployed.name;
  info.deployed_at_ms = deployed.deployed_at_ms;
  info.spec = deployed.spec_text;
  for (const auto& runner : deployed.runners) info.functions.push_back(runner->Stats());
  return info;
}

std::vector<PipelineInfo> PipelineManager::List() const {
  std::shared_lock lock(mu_);
  std::vector<PipelineInfo> out;
  for (const auto& [name, deployed] : pipelines_) out.push_back(InfoOf(*deployed));
  return out;
}

Result<PipelineInfo> PipelineManager::Get(std::string_view pipeline) const {
  std::shared_lock lock(mu_);
  auto it = pipelines_.find(pipeline);
  if (it == pipelines_.end()) {
    return Error(Status::NotFound("no pipeline \"" + std::string(pipeline) + "\" is deployed"));
  }
  return InfoOf(*it->second);
}

Result<FunctionLog::Page> PipelineManager::ReadLog(std::string_view pipeline,
                                                   std::string_view function,
                                                   std::optional<uint64_t> from_seq,
                                                   size_t limit) const {
  std::shared_lock lock(mu_);
  auto it = pipelines_.find(pipeline);
  if (it == pipelines_.end()) {
    return Error(Status::NotFound("no pipeline \"" + std::string(pipeline) + "\" is deployed"));
  }
  for (auto& runner : it->second->runners) {
    if (runner->spec().name == function) {
      return from_seq ? runner->log().Read(*from_seq, limit) : runner->log().Tail(limit);
    }
  }
  return Error(Status::NotFound("pipeline \"" + std::string(pipeline) + "\" has no function \"" +
                                std::string(function) + "\""));
}

}  // namespace edgeflow::runtime
