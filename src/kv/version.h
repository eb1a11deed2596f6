// Version of a stored item: a hybrid logical clock timestamp plus the id of the node that made the
// write. Versions are totally ordered (timestamp first, then node id), which is what last-writer-
// wins replication between nodes needs.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace edgeflow::kv {

// A node id: 64 random bits made on a node's first start and kept in its data directory.
using NodeId = uint64_t;

struct Version {
  uint64_t hlc = 0;   // (physical milliseconds << 16) | logical counter; see HybridClock
  NodeId origin = 0;  // the node that made the write

  int64_t PhysicalMillis() const { return static_cast<int64_t>(hlc >> 16); }

  // 33 characters: 16 hex digits of hlc, '-', 16 hex digits of origin.
  std::string ToString() const;
  static Result<Version> Parse(std::string_view text);

  auto operator<=>(const Version&) const = default;
};

std::string NodeIdToString(NodeId id);  // 16 hex digits

}  // namespace edgeflow::kv
