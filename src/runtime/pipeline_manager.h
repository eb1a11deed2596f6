// PipelineManager: the pipelines deployed on this node.
//
// Deploy(spec) validates the spec fully (every problem, with its line), checks that each
// function's sandbox works on this machine, snapshots each function's code into the node's data
// directory (so later edits of the user's files do not change what runs), starts a
// FunctionRunner per function and subscribes to its input channels, then records the pipeline in
// EKV. Deploying a pipeline of the same name again replaces it: functions that remain keep their
// pending items and context; functions that are gone lose their pending items (not their
// context, which is user data in the `context` namespace).
//
// Triggers come from one MQTT connection of the node ("fn") with a persistent session: while the
// node is down the broker keeps the QoS 1 messages of every input channel, and a restarted node
// resumes them. Start() redeploys what EKV records, from the snapshots.
//
// On disk (docs/architecture.md, "Edge functions: state in EKV"):
//   _edgeflow  pipelines/<name>    {"name", "spec" (the YAML), "code_dir", "deployed_at_ms"}
//   <functions_dir>/<name>/<deployed_at_ms>/<function>/{code,bundle}   the code snapshots
//
// Thread-safety: all methods may be called from any thread; deploys are serialized.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "channels/channel_publisher.h"
#include "channels/mqtt_client.h"
#include "common/status.h"
#include "kv/store.h"
#include "runtime/function_runner.h"
#include "runtime/pipeline_spec_parser.h"

namespace edgeflow::runtime {

struct PipelineManagerOptions {
  kv::Store* store = nullptr;
  channels::ChannelPublisher* publisher = nullptr;
  channels::MqttClientOptions trigger_client;  // broker address, client id (persistent session)
  std::string tenant = "default";              // channel topics: ef/<tenant>/ch/<channel>
  std::filesystem::path functions_dir;         // code snapshots and worker state
  RunnerOptions runner;                        // store, publisher and state_dir are filled in
};

struct DeployResult {
  std::string pipeline;
  bool replaced = false;
  std::vector<std::string> functions;
  int64_t deployed_at_ms = 0;
};

struct PipelineInfo {
  std::string name;
  int64_t deployed_at_ms = 0;
  std::string spec;  // the YAML as deployed
  std::vector<FunctionStats> functions;
};

class PipelineManager {
 public:
  static Result<std::unique_ptr<PipelineManager>> Create(PipelineManagerOptions options);
  ~PipelineManager();
  PipelineManager(const PipelineManager&) = delete;
  PipelineManager& operator=(const PipelineManager&) = delete;

  // Connects the trigger client and redeploys the pipelines recorded in EKV. A pipeline that
  // cannot be started again (its snapshot is gone, its sandbox no longer works) is logged and
  // left recorded, so that it can be inspected and deployed again.
  Status Start();
  void Stop();

  // `spec_text` is the YAML; relative code paths are resolved against `spec_dir`. Errors:
  // InvalidArgument with every spec problem (one per line, "<source>:<line>:<col>: ..."),
  // Unavailable when a sandbox cannot run here, NotFound for missing code.
  Result<DeployResult> Deploy(std::string_view spec_text, const std::filesystem::path& spec_dir,
                              std::string_view source = "pipeline.yaml");
  // Stops the pipeline's functions and removes it (and its pending items). NotFound if unknown.
  Status Undeploy(std::string_view pipeline);

  std::vector<PipelineInfo> List() const;
  Result<PipelineInfo> Get(std::string_view pipeline) const;
  // Lines of the function's log: the last `limit` (tail), or those from `from_seq` on (follow).
  // NotFound for an unknown pipeline or function.
  Result<FunctionLog::Page> ReadLog(std::string_view pipeline, std::string_view function,
                                    std::optional<uint64_t> from_seq, size_t limit) const;

  bool trigger_connected() const { return trigger_ && trigger_->connected(); }

 private:
  struct Deployed {
    std::string name;
    std::string spec_text;
    int64_t deployed_at_ms = 0;
    std::filesystem::path code_root;  // <functions_dir>/<name>/<deployed_at_ms>
    std::vector<std::unique_ptr<FunctionRunner>> runners;
  };
  struct Route {
    FunctionRunner* runner;
    size_t input_index;
  };

  explicit PipelineManager(PipelineManagerOptions options);
  // Creates and starts the runners of `spec` from code already in `code_root`.
  Result<std::unique_ptr<Deployed>> Launch(const PipelineSpec& spec, std::string spec_text,
                                           int64_t deployed_at_ms,
                                           const std::filesystem::path& code_root);
  // Route changes under mu_ (exclusive); each returns the topics it added or emptied, for
  // UpdateSubscriptions, which talks to the broker and so must run without mu_ (the MQTT network
  // thread may be waiting for mu_ in OnTrigger).
  std::vector<std::string> AddRoutesLocked(Deployed* deployed);
  std::vector<std::string> RemoveRoutesLocked(Deployed* deployed);
  void UpdateSubscriptions(const std::vector<std::string>& gone,
                           const std::vector<std::string>& added);
  void OnTrigger(const channels::MqttMessage& message);
  Status Record(const Deployed& deployed);
  static PipelineInfo InfoOf(const Deployed& deployed);

  const PipelineManagerOptions options_;
  std::unique_ptr<channels::MqttClient> trigger_;

  std::mutex deploy_mu_;  // serializes Deploy/Undeploy/Start/Stop
  mutable std::shared_mutex mu_;
  std::map<std::string, std::unique_ptr<Deployed>, std::less<>> pipelines_;  // GUARDED_BY(mu_)
  std::map<std::string, std::vector<Route>, std::less<>> routes_;  // GUARDED_BY(mu_): by topic
  bool started_ = false;  // GUARDED_BY(deploy_mu_)
};

}  // namespace edgeflow::runtime
