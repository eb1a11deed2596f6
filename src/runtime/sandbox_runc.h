// RuncContainer: one oci worker's container as runc sees it: its id, its state under the node's
// runc root, its per-instance bundle directory, and a watchdog that removes the container if the
// node dies.
//
// The worker is `runc run` in the foreground, a child of the node with the worker's pipes as its
// stdio: with terminal false and not detached, runc hands those descriptors to the container's
// process, and exits with its exit status (128+n when it was killed by signal n). runc writes the
// container's pid file only once the process runs, which is how Start() knows that the container
// started or, if runc exits first, reads why not from runc's log (JSON lines) rather than from a
// late exit status.
//
// Why a watchdog: the container's process is runc's child, not the node's, and runc sets no
// parent-death signal for it, so when the node dies (SIGKILL, OOM kill) and runc with it, the
// container would keep running (checked with runc 1.1.5). The watchdog is a small `sh` started
// per container, in its own process group, reading a pipe whose other end only the node holds.
// Delete() writes "done" to it and it exits. If the pipe reaches EOF without that (the node
// died), or if the watchdog is sent HUP/INT/TERM (e.g. by systemd stopping the node's whole
// service), it runs `runc kill <id> KILL`, `runc delete --force <id>` and removes the instance
// directory.
//
// A container id must not be reused while the watchdog of an earlier container with that id may
// still be cleaning up (the node's ids carry a timestamp).
//
// Thread-safety: one thread at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "runtime/sandbox_fd.h"

namespace edgeflow::runtime {

class RuncContainer {
 public:
  // Removes what an earlier node left under `id` (a stopped or orphaned container, an old
  // instance directory), creates `instance_dir` and starts the watchdog.
  static Result<std::unique_ptr<RuncContainer>> Prepare(std::string runc,
                                                        std::filesystem::path root,
                                                        std::filesystem::path instance_dir,
                                                        std::string id);
  ~RuncContainer() { Delete(); }
  RuncContainer(const RuncContainer&) = delete;
  RuncContainer& operator=(const RuncContainer&) = delete;

  const std::string& runc() const { return runc_; }
  const std::filesystem::path& bundle_dir() const { return instance_dir_; }
  // argv of `runc run` in the foreground, for SpawnProcess; config.json must be in bundle_dir().
  std::vector<std::string> RunArguments() const;

  // After `runc run` was spawned (`runc_pidfd`): Ok once the container's process runs; the error
  // runc logged if runc exits before that; Unavailable after `timeout`. Does not reap runc.
  Status WaitStarted(int runc_pidfd, std::chrono::milliseconds timeout) const;

  // `runc kill <id> KILL`; errors (e.g. the container already ended) are ignored.
  void Kill();
  // `runc delete --force <id>`, removes the instance directory and dismisses the watchdog.
  // Idempotent.
  void Delete();

 private:
  RuncContainer() = default;
  std::string LastLoggedError() const;

  std::string runc_;
  std::filesystem::path root_;
  std::filesystem::path instance_dir_;
  std::string id_;
  UniqueFd lifeline_;  // the watchdog's stdin
  pid_t watchdog_pid_ = -1;
  bool deleted_ = false;
};

// Whether runc and umoci are installed and runc runs a trivial container here (a read-only bind
// of the host's /usr, with memory, CPU and pids limits). The first answer is kept.
Status CheckOci();

}  // namespace edgeflow::runtime
