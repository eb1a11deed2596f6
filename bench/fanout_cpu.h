// CPU accounting for the fan-out benchmark.
//
// Where the work of a packet is done: a veth hands a frame to the receiving side's backlog on the
// same CPU, and the softirq that processes it (the edge's tc program, the bridge, the UDP
// receive, a consumer's drop) runs when the sending thread re-enables bottom halves, in that
// thread's context, or else in ksoftirqd. So "our" CPU time is this process's (all its threads:
// sender, replicator, and the softirqs run in their context) plus the ksoftirqd threads'; both
// are exact run times from the scheduler (CLOCK_PROCESS_CPUTIME_ID, /proc/PID/schedstat), and
// other processes on the machine do not enter them. The machine-wide busy time of /proc/stat is
// sampled too, for comparison: it is what a reader of `top` would see, other load included.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/status.h"

namespace edgeflow::bench {

using Clock = std::chrono::steady_clock;

struct CpuSample {
  Clock::time_point at;
  double process_seconds = 0;    // this process, all threads, dead ones included
  double ksoftirqd_seconds = 0;  // all ksoftirqd/N threads
  uint64_t busy_ticks = 0;       // /proc/stat "cpu": user+nice+system+irq+softirq+steal
};

// What happened between two samples.
struct CpuUsage {
  double wall_seconds = 0;
  double attributed_seconds = 0;    // this process + ksoftirqd
  double machine_busy_seconds = 0;  // every CPU's busy time (/proc/stat), any process
  double attributed_cores() const {
    return wall_seconds > 0 ? attributed_seconds / wall_seconds : 0;
  }
  double machine_cores() const {
    return wall_seconds > 0 ? machine_busy_seconds / wall_seconds : 0;
  }
};

class CpuMeter {
 public:
  CpuMeter();  // finds the ksoftirqd threads
  CpuSample Sample() const;
  CpuUsage Between(const CpuSample& start, const CpuSample& end) const;
  size_t ksoftirqd_threads() const { return ksoftirqd_.size(); }

 private:
  std::vector<pid_t> ksoftirqd_;
  double seconds_per_tick_;
};

// The kernel's run-time statistics of BPF programs (run_time_ns, run_cnt), which it keeps only
// while someone holds the file descriptor of bpf_enable_stats(BPF_STATS_RUN_TIME): they cost two
// clock reads per program run, so they are on only while the eBPF lines are measured.
class BpfRunTimeStats {
 public:
  static Result<std::unique_ptr<BpfRunTimeStats>> Enable();
  ~BpfRunTimeStats();
  BpfRunTimeStats(const BpfRunTimeStats&) = delete;
  BpfRunTimeStats& operator=(const BpfRunTimeStats&) = delete;

 private:
  explicit BpfRunTimeStats(int fd) : fd_(fd) {}
  int fd_;
};

struct BpfProgramTime {
  uint64_t run_time_ns = 0;  // total time the program ran, helpers (clone, redirect) included
  uint64_t run_count = 0;

  // What ran between `before` and this reading.
  BpfProgramTime Since(const BpfProgramTime& before) const {
    return {.run_time_ns = run_time_ns - before.run_time_ns,
            .run_count = run_count - before.run_count};
  }
};
Result<BpfProgramTime> ReadProgramTime(int prog_fd);

}  // namespace edgeflow::bench
