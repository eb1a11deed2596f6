// Parsing and validation of pipeline specs (YAML).
//
//   pipeline: face-augment            # [A-Za-z0-9_.-], 1..64 characters
//   functions:                        # a mapping: function name -> function (order is kept)
//     detect:
//       code: ./detect                # a directory, relative to the spec's directory ...
//       # image: ./detect.tar         # ... or an OCI layout / `docker save` archive (not both)
//       command: [python3, detect.py] # required: argv (a list of strings)
//       sandbox: bwrap                # process | bwrap | oci            (default bwrap)
//       network: false                # keep the host network in the sandbox
//       env: {MODEL: small}
//       inputs:  {frame: cams/front}  # required, at least one: input name -> channel
//       outputs: {faces: faces/front} # output name -> channel (none: a sink)
//       join: {window_ms: 10000}      # several inputs: all of one item id within the window
//       concurrency: {min: 1, max: 2} # warm workers, scaled by backlog between min and max
//       limits: {memory_mb: 256, cpus: 1.0, pids: 64, timeout_ms: 30000, max_payload_bytes: N}
//       retry: {attempts: 3, backoff_ms: 100, backoff_max_ms: 5000}
//       dead_letter: dead/detect      # default dead-letter/<pipeline>/<function>
//       dedupe_window_ms: 60000
//       context: {per_key: false}
//       allow_cycle: false            # true: this function may feed its own inputs (give such
//                                     # outputs a part: an item id it has seen is a duplicate)
//
// Numbers are whole and bounded: memory_mb and pids 1..1048576, concurrency.min 0..1024 and max
// 1..1024, timeouts and windows in ms 1..86400000, retry.attempts 1..100. Keys repeated in a
// mapping are problems too (paths of list elements read "functions.f.command[1]").
// Names of functions, inputs and outputs: [A-Za-z0-9_-], 1..64 characters. Channels follow the
// channel name rules (channels/channel_name.h). Validation is complete: every problem is reported,
// each with its line and column and the dotted path of the key ("functions.detect.limits.cpus"),
// not only the first. Problems found: YAML syntax, unknown keys (typos), wrong types, values out of
// range, a missing command or code, code and image both given, duplicate input or output names,
// bad channel names, and cycles — a function whose outputs reach its own inputs, directly or
// through other functions, unless a function on the cycle sets allow_cycle.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "runtime/pipeline_spec.h"

namespace edgeflow::runtime {

struct SpecProblem {
  int line = 0;  // 1-based; 0 when the problem has no place (e.g. an empty document)
  int column = 0;
  std::string path;  // dotted key path, "" for the document
  std::string message;

  // "<source>:<line>:<column>: <path>: <message>"; without ":<line>:<column>" when the problem
  // has no place, and without "<path>: " when it concerns the whole document.
  std::string ToString(std::string_view source) const;
};

struct SpecParseResult {
  PipelineSpec spec;                  // meaningful only when problems is empty
  std::vector<SpecProblem> problems;  // in document order
  bool ok() const { return problems.empty(); }
  // InvalidArgument listing every problem (one per line), or Ok.
  Status ToStatus(std::string_view source) const;
};

// Parses and validates `yaml_text`. Never throws; every problem is in the result.
SpecParseResult ParsePipelineSpec(std::string_view yaml_text);

}  // namespace edgeflow::runtime
