// RespScanCursors: the node-wide table behind SCAN cursors.
//
// Redis clients treat a SCAN cursor as an integer (redis-py runs int() on it), while a store
// listing resumes after a key. So every page of a scan that is not the last gets a fresh random
// 63-bit id, remembered here with the scan's position; the client sends the id back to go on.
// The table is bounded: the least recently used entries beyond `capacity` are dropped, and so is
// any entry unused for `ttl_ms`; a client that comes back later gets an error and starts again.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>

#include "common/clock.h"

namespace edgeflow::api {

struct ScanPosition {
  std::string ns;
  std::string pattern;   // MATCH pattern; empty = all keys
  std::string last_key;  // resume after this key
};

class RespScanCursors {
 public:
  RespScanCursors(size_t capacity, int64_t ttl_ms, const Clock* clock);

  // Remembers `position` and returns its new cursor id (never 0).
  uint64_t Add(ScanPosition position);
  // Removes and returns the position of `cursor`, if it is still known.
  std::optional<ScanPosition> Take(uint64_t cursor);

 private:
  struct Entry {
    uint64_t id;
    int64_t last_used_ms;
    ScanPosition position;
  };
  void EvictLocked(int64_t now_ms);

  const size_t capacity_;
  const int64_t ttl_ms_;
  const Clock* clock_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // GUARDED_BY(mu_); most recently used at the front
  std::unordered_map<uint64_t, std::list<Entry>::iterator> by_id_;  // GUARDED_BY(mu_)
  std::mt19937_64 rng_;                                             // GUARDED_BY(mu_)
};

}  // namespace edgeflow::api
