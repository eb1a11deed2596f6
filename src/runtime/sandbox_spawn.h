// SpawnProcess: fork + exec of one program with exactly the stdio, environment, process group,
// resource limits and cgroups asked for, and nothing else inherited from the node.
//
// The child:
//  - resets its signal mask and every signal disposition (edgeflowd blocks TERM/INT/HUP and
//    ignores PIPE; a blocked or ignored signal would survive exec);
//  - leads a new process group (so that the whole group can be killed at once);
//  - gets SIGKILL when the node dies (PR_SET_PDEATHSIG). The kernel sends it when the *thread*
//    that forked exits, so spawn from threads that live as long as the child should;
//  - joins the cgroups given as open cgroup.procs files before exec, so that no process of the
//    worker ever runs outside its limits;
//  - keeps only descriptors 0, 1 and 2 (close_range);
//  - changes to `cwd`, applies the rlimits and execs with the given environment (no PATH search).
//
// A failure of any of these steps in the child reaches the caller as an error Status through a
// close-on-exec pipe ("cannot execute /x/run.sh: Permission denied"), so a caller never has to
// guess from an exit status 127. Thread-safe: everything the child needs is prepared before
// fork(), and the child makes only async-signal-safe calls.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"

namespace edgeflow::runtime {

struct ResourceLimit {
  int resource = 0;  // RLIMIT_*
  rlim_t value = 0;  // soft and hard limit
};

struct SpawnRequest {
  std::string program;            // the executable's path, run as is
  std::vector<std::string> argv;  // argv[0] included; empty = {program}
  std::vector<std::string> env;   // "NAME=value": exactly this environment
  std::filesystem::path cwd;      // empty = the node's working directory
  int stdin_fd = -1;              // the child's standard streams; -1 = /dev/null
  int stdout_fd = -1;
  int stderr_fd = -1;
  bool new_process_group = true;
  bool die_with_parent = true;  // PR_SET_PDEATHSIG(SIGKILL)
  std::vector<ResourceLimit> rlimits;
  std::vector<int> cgroup_procs_fds;  // cgroup.procs files open for writing: joined before exec
};

// Starts the program and returns its pid once exec has succeeded (the caller must reap it), or
// the step that failed with the reason.
Result<pid_t> SpawnProcess(const SpawnRequest& request);

// Reaps `pid`, waiting for it; returns the raw wait status (0 if it cannot be reaped).
int ReapProcess(pid_t pid);

// Whether the child behind `pidfd` has ended, without reaping it (so that its pid, and the id of
// the process group it leads, stay reserved until ReapProcess). True if it was reaped already.
bool ChildHasEnded(int pidfd);

// "exit status 3", "killed by signal 9 (SIGKILL)" for a raw wait status.
std::string DescribeWaitStatus(int status);

}  // namespace edgeflow::runtime
