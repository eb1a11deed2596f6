#include "runtime/sandbox_spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/sandbox_fd.h"

namespace edgeflow::runtime {
namespace {

// The step of the child's set-up that failed; sent to the parent with errno.
enum class ChildStep : int {
  kProcessGroup = 1,
  kParentDeathSignal,
  kJoinCgroup,
  kStdio,
  kCloseDescriptors,
  kChangeDirectory,
  kResourceLimit,
  kExec,
};

struct ChildFailure {
  ChildStep step;
  int error;
};

// Child side: reports the failed step to the parent and exits. Async-signal-safe.
[[noreturn]] void FailChild(int error_fd, ChildStep step) {
  const ChildFailure failure{step, errno};
  (void)!::write(error_fd, &failure, sizeof failure);
  ::_exit(127);
}

// Child side of the fork: async-signal-safe calls only, since other threads of the node may hold
// locks (malloc, logging) that nobody would release in the copy.
[[noreturn]] void RunChild(const SpawnRequest& request, const char* program, char* const* argv,
                           char* const* envp, const char* cwd, int null_fd, int error_fd,
                           pid_t parent) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  for (int signo = 1; signo < NSIG; ++signo) ::sigaction(signo, &default_action, nullptr);

  if (request.new_process_group && ::setpgid(0, 0) != 0) {
    FailChild(error_fd, ChildStep::kProcessGroup);
  }
  if (request.die_with_parent) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) FailChild(error_fd, ChildStep::kParentDeathSignal);
    // The node may have died before prctl(): then no signal would ever come.
    if (::getppid() != parent) ::_exit(127);
  }
  // "0" is the writing process itself (cgroup v1 and v2).
  for (int fd : request.cgroup_procs_fds) {
    if (::write(fd, "0", 1) != 1) FailChild(error_fd, ChildStep::kJoinCgroup);
  }
  const int in = request.stdin_fd >= 0 ? request.stdin_fd : null_fd;
  const int out = request.stdout_fd >= 0 ? request.stdout_fd : null_fd;
  const int err = request.stderr_fd >= 0 ? request.stderr_fd : null_fd;
  // The sources are all above 2 (AboveStdio), so no dup2 overwrites a later source.
  if (::dup2(in, STDIN_FILENO) < 0 || ::dup2(out, STDOUT_FILENO) < 0 ||
      ::dup2(err, STDERR_FILENO) < 0) {
    FailChild(error_fd, ChildStep::kStdio);
  }
  // Descriptors the node opened without O_CLOEXEC (sockets, RocksDB files) must not reach the
  // worker. Everything but the error pipe goes; the error pipe closes at exec.
  const auto keep = static_cast<unsigned>(error_fd);
  if (keep > 3 && ::close_range(3, keep - 1, 0) != 0) {
    FailChild(error_fd, ChildStep::kCloseDescriptors);
  }
  if (::close_range(keep + 1, ~0U, 0) != 0) FailChild(error_fd, ChildStep::kCloseDescriptors);
  if (cwd != nullptr && ::chdir(cwd) != 0) FailChild(error_fd, ChildStep::kChangeDirectory);
  for (const ResourceLimit& limit : request.rlimits) {
    const rlimit value{limit.value, limit.value};
    if (::setrlimit(limit.resource, &value) != 0) FailChild(error_fd, ChildStep::kResourceLimit);
  }
  ::execve(program, argv, envp);
  FailChild(error_fd, ChildStep::kExec);
}

std::string DescribeFailure(const SpawnRequest& request, const ChildFailure& failure) {
  const std::string reason = std::strerror(failure.error);
  switch (failure.step) {
    case ChildStep::kProcessGroup:
      return "cannot start a new process group for " + request.program + ": " + reason;
    case ChildStep::kParentDeathSignal:
      return "cannot set the parent-death signal for " + request.program + ": " + reason;
    case ChildStep::kJoinCgroup:
      return "cannot move " + request.program + " into its cgroup: " + reason;
    case ChildStep::kStdio:
      return "cannot set up the standard streams of " + request.program + ": " + reason;
    case ChildStep::kCloseDescriptors:
      return "cannot close inherited descriptors before running " + request.program + ": " + reason;
    case ChildStep::kChangeDirectory:
      return "cannot change to the directory " + request.cwd.string() + ": " + reason;
    case ChildStep::kResourceLimit:
      return "cannot set the resource limits of " + request.program + ": " + reason;
    case ChildStep::kExec:
      break;
  }
  std::string message = "cannot execute " + request.program + ": " + reason;
  // ENOENT for a file that exists: the interpreter on its #! line (or its ELF loader) is missing.
  std::error_code ec;
  if (failure.error == ENOENT && std::filesystem::exists(request.program, ec)) {
    message += " (the file exists: the interpreter on its #! line or its loader is missing)";
  }
  return message;
}

}  // namespace

int ReapProcess(pid_t pid) {
  int status = 0;
  pid_t rc;
  do {
    rc = ::waitpid(pid, &status, 0);
  } while (rc < 0 && errno == EINTR);
  return rc == pid ? status : 0;
}

bool ChildHasEnded(int pidfd) {
  siginfo_t info{};
  if (::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return errno != EINTR;  // ECHILD: reaped already
  }
  return info.si_pid != 0;
}

std::string DescribeWaitStatus(int status) {
  if (WIFSIGNALED(status)) {
    const int signo = WTERMSIG(status);
    const char* abbrev = ::sigabbrev_np(signo);
    return "killed by signal " + std::to_string(signo) +
           (abbrev != nullptr ? " (SIG" + std::string(abbrev) + ")" : std::string());
  }
  return "exit status " + std::to_string(WEXITSTATUS(status));
}

Result<pid_t> SpawnProcess(const SpawnRequest& request) {
  // Everything the child uses is built here: after fork() it may not allocate.
  std::vector<std::string> argv_storage = request.argv;
  if (argv_storage.empty()) argv_storage.push_back(request.program);
  std::vector<char*> argv;
  for (std::string& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage = request.env;
  std::vector<char*> envp;
  for (std::string& entry : env_storage) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const std::string cwd = request.cwd.string();

  UniqueFd null_fd;
  if (request.stdin_fd < 0 || request.stdout_fd < 0 || request.stderr_fd < 0) {
    null_fd = AboveStdio(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (!null_fd.valid()) {
      return Error(Status::IoError(std::string("cannot open /dev/null: ") + std::strerror(errno)));
    }
  }
  auto error_pipe = MakePipe();
  if (!error_pipe) return Error(error_pipe.error());
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    return Error(
        Status::Unavailable("cannot fork to run " + request.program + ": " + std::strerror(errno)));
  }
  if (pid == 0) {
    RunChild(request, request.program.c_str(), argv.data(), envp.data(),
             cwd.empty() ? nullptr : cwd.c_str(), null_fd.get(), error_pipe->write.get(), parent);
  }
  error_pipe->write.Reset();
  // The pipe closes without data when execve() succeeds (O_CLOEXEC).
  ChildFailure failure{};
  ssize_t n;
  do {
    n = ::read(error_pipe->read.get(), &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    ReapProcess(pid);
    const ErrorCode code = failure.step == ChildStep::kExec && failure.error == ENOENT
                               ? ErrorCode::kNotFound
                               : ErrorCode::kUnavailable;
    return Error(Status(code, DescribeFailure(request, failure)));
  }
  return pid;
}

}  // namespace edgeflow::runtime
