// WorkerCgroup: the cgroups that hold one worker (process and bwrap sandboxes; runc makes its own
// for oci), with its memory, CPU and pids limits.
//
// For each controller (memory, cpu, pids) the group goes where the controller is: the cgroup2
// hierarchy if the controller is available there, else the cgroup v1 hierarchy that has it (a
// "hybrid" host, e.g. v1 at /sys/fs/cgroup/{memory,cpu,pids} and a controller-less cgroup2 at
// /sys/fs/cgroup/unified). The group is `<hierarchy>/edgeflow/<instance_id>`, at the top of the
// hierarchy rather than under the node's own cgroup: the function's limits are then exactly those
// of its spec, and on cgroup2 a group below the node's (which has processes in it) could not
// enable controllers for children anyway ("no internal processes"). runc is given the same path
// (cgroupsPath "/edgeflow/<id>"), so all workers of a node are found in one place. Creating
// groups there needs root (or a delegated hierarchy); where a controller cannot be used, the
// limit is missing and the reason is logged once per process (the caller falls back to RLIMIT_AS
// for memory).
//
// The child joins the groups itself before exec (SpawnRequest::cgroup_procs_fds), so that nothing
// the worker runs escapes them. Remove() (also run by the destructor) kills every process left in
// the groups and removes them.
//
// Thread-safety: one thread at a time per object.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/sandbox_fd.h"

namespace edgeflow::runtime {

struct CgroupLimits {
  uint64_t memory_bytes = 0;  // 0 = no limit
  double cpus = 0;            // CPU time share (1.0 = one core); 0 = no limit
  uint32_t pids = 0;          // 0 = no limit
};

// One cgroup hierarchy, as /proc/self/mountinfo lists it.
struct CgroupMount {
  std::filesystem::path mount_point;
  bool v2 = false;
  std::vector<std::string> controllers;  // v1: from the mount options (e.g. "memory")
};

// The cgroup mounts in the text of /proc/self/mountinfo; the first mount of each hierarchy.
std::vector<CgroupMount> ParseCgroupMounts(std::string_view mountinfo);

class WorkerCgroup {
 public:
  // Never fails: controllers that cannot be used are left out (see limits_memory() etc.).
  static WorkerCgroup Create(std::string_view instance_id, const CgroupLimits& limits);
  WorkerCgroup() = default;
  ~WorkerCgroup() { Remove(); }
  WorkerCgroup(WorkerCgroup&&) noexcept = default;
  WorkerCgroup& operator=(WorkerCgroup&& other) noexcept {
    if (this != &other) {
      Remove();
      groups_ = std::move(other.groups_);
      memory_ = other.memory_;
      cpu_ = other.cpu_;
      pids_ = other.pids_;
    }
    return *this;
  }

  bool limits_memory() const { return memory_; }
  bool limits_cpu() const { return cpu_; }
  bool limits_pids() const { return pids_; }
  bool empty() const { return groups_.empty(); }

  // cgroup.procs of each group, open for writing (close-on-exec), for SpawnRequest.
  std::vector<int> procs_fds() const;
  // The group directories (for logs and tests).
  std::vector<std::filesystem::path> dirs() const;

  // SIGKILL to every process in the groups, until they are empty (bounded).
  void KillAll();
  // KillAll(), then removes the groups. Idempotent.
  void Remove();

 private:
  struct Group {
    std::filesystem::path dir;
    bool v2 = false;
    UniqueFd procs;
  };
  // The group in `mount` (created on first use).
  Group* GroupIn(const CgroupMount& mount, std::string_view instance_id, std::string* reason);

  std::vector<Group> groups_;
  bool memory_ = false;
  bool cpu_ = false;
  bool pids_ = false;
};

}  // namespace edgeflow::runtime
