// WorkerProcess: one running worker of an edge function, in its sandbox, with pipes to its stdin,
// stdout and stderr. The object owns the process (and, for `oci`, the runc container): when it
// goes away, or on Kill(), the whole sandbox is killed, reaped and its state removed, so a worker
// never outlives its function or the node (the child also gets SIGKILL if the node dies:
// PR_SET_PDEATHSIG; bwrap drops that signal as it changes credentials, so for `bwrap` a watchdog
// kills it when the node goes; for `oci` a watchdog removes the container, see
// runtime/sandbox_runc.h).
//
// Sandboxes (each sandbox_*.h says exactly what the worker sees):
//   process  a plain child process in its own process group, cwd = the code directory, rlimits.
//   bwrap    bubblewrap (sandbox_bwrap.h): new user/pid/ipc/uts/cgroup/mount namespaces and no
//            network (unless `network: true`), no capabilities, the host's /usr (and /lib*, /bin,
//            /sbin, /etc/alternatives links) read-only, a few harmless /etc files, the code
//            read-only at /code (the cwd), a private /tmp, /proc, /dev.
//   oci      runc (sandbox_oci.h, sandbox_runc.h): the function's image unpacked into an OCI
//            bundle (read-only rootfs), a private /tmp, cgroup limits for memory, CPU and pids,
//            no network unless asked.
// Environment: exactly `env:` plus PATH, HOME=/tmp and LANG=C.UTF-8 unless `env:` sets them
// (oci: the image's environment, then `env:`). The program is looked up before the worker starts,
// so that "command not found: x" is an error from Start(), not an exit status 127.
// Limits (process, bwrap): memory, CPU and pids by a cgroup per worker where the node can create
// one (sandbox_cgroup.h; needs root); otherwise memory by RLIMIT_AS only (logged once) and CPU and
// pids not at all (logged once). RLIMIT_NPROC is not used: it counts every process of the user,
// node threads included. Always RLIMIT_NOFILE 1024 and RLIMIT_CORE 0. oci: runc's cgroups.
//
// Exit statuses: bwrap and runc report a worker that was killed by signal n (e.g. by the OOM
// killer) as their own exit status 128+n; a worker killed by Kill() before that shows the signal.
//
// Requirements: Linux >= 5.4 (pidfd). Start() must be called from a thread that lives as long as
// the worker: the kernel sends the parent-death signal when the *thread* that forked exits. The
// node must ignore SIGPIPE (edgeflowd does): writing to a worker that died raises it.
//
// Kill(), and TryWait() once the worker has ended, clean up synchronously: for oci that runs
// `runc kill` / `runc delete` (tens of milliseconds).
//
// Thread-safety: one thread at a time per object; Kill(), TryWait() and Wait() may be called from
// any thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "runtime/pipeline_spec.h"

namespace edgeflow::runtime {

// A function's code, made ready to run (PrepareCode).
struct PreparedCode {
  SandboxKind sandbox = SandboxKind::kBwrap;
  std::filesystem::path code_dir;    // process, bwrap: a snapshot of the code directory
  std::filesystem::path bundle_dir;  // oci: an OCI runtime bundle (config.json + rootfs/)
};

// Snapshots the function's code into `work_dir` (which the node owns; created if missing), so
// that later edits to the user's directory do not change a deployed function:
//  - `code:` a directory (relative to `spec_dir`) is copied to work_dir/code;
//  - `image:` an OCI image layout directory or a `docker save` archive (relative to `spec_dir`)
//    is unpacked to an OCI bundle in work_dir/bundle (skopeo converts archives; umoci unpacks).
// Errors name the function and say what is missing (no such directory, not an image, runc or
// bwrap not installed, ...). Safe to call again for the same work_dir (replaces the snapshot).
Result<PreparedCode> PrepareCode(const FunctionSpec& function, const std::filesystem::path& spec_dir,
                                 const std::filesystem::path& work_dir);

// Whether this machine can run `kind` sandboxes: the tool is installed and a trivial sandbox
// starts. Unavailable with the reason otherwise (checked on deploy, so that a spec fails with a
// clear message rather than every worker failing).
Status CheckSandbox(SandboxKind kind);

struct WorkerLaunchOptions {
  std::string instance_id;             // unique on the node: [A-Za-z0-9_.-]{1,128}
  // Node-owned scratch, shared by all workers (bwrap, oci; created if missing):
  // <state_dir>/<instance_id>/ holds the worker's bundle (oci) or /etc files (bwrap) while it
  // runs, <state_dir>/runc is runc's state root.
  std::filesystem::path state_dir;
};

struct ExitStatus {
  int exit_code = -1;   // -1 if ended by a signal
  int term_signal = 0;  // the signal that ended it, 0 if it exited
  std::string ToString() const;  // "exit status 3", "killed by signal 9 (SIGKILL)"
};

class WorkerProcess {
 public:
  // Starts `function.command` with `function.env` in the sandbox of `code`. The command runs in
  // the code directory (/code in bwrap; the image's working directory, or /, in oci).
  static Result<std::unique_ptr<WorkerProcess>> Start(const PreparedCode& code,
                                                      const FunctionSpec& function,
                                                      const WorkerLaunchOptions& options);
  ~WorkerProcess();  // Kill() and reap
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  // The child the node started (process: the worker; bwrap: bwrap; oci: `runc run`), also after
  // it was reaped.
  pid_t pid() const;
  // The node's ends of the pipes (blocking, close-on-exec). -1 once closed.
  int stdin_fd() const;   // write requests here
  int stdout_fd() const;  // read replies here
  int stderr_fd() const;  // the worker's log lines
  void CloseStdin();      // the worker sees EOF

  // SIGKILL to the whole sandbox (process group, cgroup, bwrap, runc container), then reaps it
  // and removes its state; TryWait() and Wait() then give how it ended. Idempotent.
  void Kill();
  // Reaps the process if it has ended: its status, or nullopt while it runs. When the worker's
  // main process has ended, whatever it left running in its sandbox is killed first.
  std::optional<ExitStatus> TryWait();
  // Waits up to `timeout` for it to end; nullopt if it is still running.
  std::optional<ExitStatus> Wait(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  explicit WorkerProcess(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgeflow::runtime
