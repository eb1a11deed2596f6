// FunctionLog: the recent log of one function, as `edgeflow logs` shows it: what its workers wrote
// on stderr, the `log` frames of the protocol, and the runtime's own events about the function
// (worker started, exited, killed after a timeout, invocation failed, item dead-lettered).
//
// A bounded ring (the newest `capacity` lines) with a sequence number per line, so a reader that
// follows the log asks for the lines after the last one it saw, and learns how many it missed
// when the ring overtook it. Lines are also written to the node's log at debug level.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace edgeflow::runtime {

struct FunctionLogLine {
  uint64_t seq = 0;   // 1, 2, 3, ... per function
  int64_t at_ms = 0;  // Unix milliseconds
  std::string source;  // "stderr", "log" (a protocol log frame) or "runtime"
  std::string level;   // "debug" | "info" | "warn" | "error"
  std::string worker;  // the worker's instance id, "" for function-wide events
  std::string message;
};

class FunctionLog {
 public:
  // `name` is "<pipeline>/<function>" (for the node's log).
  FunctionLog(std::string name, size_t capacity = 2000);

  void Append(std::string_view source, std::string_view level, std::string_view worker,
              std::string_view message);

  struct Page {
    std::vector<FunctionLogLine> lines;
    uint64_t next_seq = 0;  // ask for lines from here next time
    uint64_t missed = 0;    // lines after `from_seq` that the ring had already dropped
  };
  // Lines with seq >= from_seq (1 = from the oldest kept), at most `limit`.
  Page Read(uint64_t from_seq, size_t limit) const;
  // The last `count` lines (for `logs` without --follow).
  Page Tail(size_t count) const;

 private:
  const std::string name_;
  const size_t capacity_;
  mutable std::mutex mu_;
  std::deque<FunctionLogLine> lines_;  // GUARDED_BY(mu_)
  uint64_t next_seq_ = 1;              // GUARDED_BY(mu_)
};

}  // namespace edgeflow::runtime
