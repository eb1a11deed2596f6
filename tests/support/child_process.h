// ChildProcess: one child process started from the tests (the daemon, the CLI, redis tools), with
// its stdout and stderr captured in memory or sent to files. The object owns the process: if it is
// still running when the object goes away, it is killed with SIGKILL and reaped, so a failing test
// never leaves a daemon behind.
//
// Thread-safety: the output accessors and WaitForOutput may be called from any thread; Signal,
// Wait and Finish from one thread at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace edgeflow::test_support {

struct ChildOptions {
  std::filesystem::path cwd;          // empty = the test's working directory
  std::string stdin_data;             // written to the child's stdin, which is then closed
  std::filesystem::path stdout_path;  // set = append stdout to this file instead of capturing it
  std::filesystem::path stderr_path;  // likewise for stderr
};

// How a process ended.
struct ExitStatus {
  int exit_code = -1;   // -1 if it was ended by a signal
  int term_signal = 0;  // the signal that ended it, 0 if it exited
  std::string ToString() const;
};

class ChildProcess {
 public:
  // Starts `program` (looked up in PATH if it has no '/') with `args`. Fails if the program
  // cannot be executed at all.
  static Result<std::unique_ptr<ChildProcess>> Spawn(const std::string& program,
                                                     const std::vector<std::string>& args,
                                                     const ChildOptions& options = {});
  ~ChildProcess();

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }

  // Captured output so far (empty when sent to a file).
  std::string Stdout() const;
  std::string Stderr() const;

  // Waits until `done(stdout so far)` holds, the child closes its stdout, or the timeout passes.
  // Returns whether `done` held.
  bool WaitForStdout(const std::function<bool(const std::string&)>& done,
                     std::chrono::milliseconds timeout);

  // Sends a signal (ignored once the child has been reaped).
  void Signal(int signo);

  // Whether the child has not exited yet (reaps it if it has).
  bool IsRunning();

  // Waits up to `timeout` for the child to exit; nullopt if it is still running.
  std::optional<ExitStatus> Wait(std::chrono::milliseconds timeout);

  // Waits up to `grace` for the child to exit, then sends SIGTERM, then SIGKILL, and reaps it.
  // Returns how it ended and whether it had to be stopped.
  ExitStatus Finish(std::chrono::milliseconds grace, bool* had_to_stop = nullptr);

 private:
  ChildProcess() = default;
  void Pump();  // the thread that moves stdin/stdout/stderr bytes

  pid_t pid_ = -1;
  std::optional<ExitStatus> exit_;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  std::string stdin_data_;
  std::thread pump_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string out_;
  std::string err_;
  bool stdout_closed_ = false;
  bool stop_pump_ = false;
};

}  // namespace edgeflow::test_support
