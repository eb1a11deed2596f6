// PipelineSpec: a deployed pipeline as its YAML spec declares it (see pipeline_spec_parser.h for
// the format). Plain data: the parser fills it and has checked every field; the runtime reads it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace edgeflow::runtime {

// How a function's workers are isolated.
enum class SandboxKind {
  kProcess,  // a plain child process (development)
  kBwrap,    // bubblewrap: new namespaces, read-only /usr, private /tmp, no network unless asked
  kOci,      // runc with an OCI bundle, cgroup limits
};

// "process", "bwrap" or "oci", as specs spell them.
constexpr const char* SandboxKindName(SandboxKind kind) {
  switch (kind) {
    case SandboxKind::kProcess:
      return "process";
    case SandboxKind::kBwrap:
      return "bwrap";
    case SandboxKind::kOci:
      return "oci";
  }
  return "unknown";
}

struct FunctionLimits {
  uint64_t memory_bytes = 256ull << 20;
  double cpus = 1.0;  // CPU time share (1.0 = one core)
  uint32_t pids = 64;
  std::chrono::milliseconds timeout{30'000};  // one invocation
  uint64_t max_payload_bytes = 64ull << 20;   // one input or output
};

struct RetryPolicy {
  uint32_t attempts = 3;  // invocations in all, including the first
  std::chrono::milliseconds backoff{100};
  std::chrono::milliseconds backoff_max{5'000};
};

struct FunctionSpec {
  std::string name;
  int line = 0;  // where the function is declared in the spec (1-based), for messages

  // The code: a directory (relative paths are relative to the spec file), or an OCI image (an
  // OCI layout or `docker save` archive). Exactly one is set.
  std::string code_dir;
  std::string image;
  std::vector<std::string> command;  // argv, run in the code's directory
  std::map<std::string, std::string> env;
  SandboxKind sandbox = SandboxKind::kBwrap;
  bool network = false;  // bwrap/oci: keep the host network

  // Named inputs and outputs: name -> channel. Several inputs are joined by item id.
  std::vector<std::pair<std::string, std::string>> inputs;
  std::vector<std::pair<std::string, std::string>> outputs;
  std::chrono::milliseconds join_window{10'000};  // inputs of one item must arrive within this

  uint32_t min_workers = 1;
  uint32_t max_workers = 1;
  FunctionLimits limits;
  RetryPolicy retry;
  std::string dead_letter_channel;  // default: "dead-letter/<pipeline>/<function>"
  std::chrono::milliseconds dedupe_window{60'000};
  bool context_per_key = false;  // context kept per stream key rather than per function
  // A function may feed (directly or through others) one of its own inputs only when it says so.
  bool allow_cycle = false;
};

struct PipelineSpec {
  std::string name;
  std::vector<FunctionSpec> functions;  // in the order of the spec

  const FunctionSpec* Find(std::string_view function) const {
    for (const FunctionSpec& f : functions) {
      if (f.name == function) return &f;
    }
    return nullptr;
  }
};

}  // namespace edgeflow::runtime
