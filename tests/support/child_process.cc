#include "support/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace edgeflow::test_support {
namespace {

// Writes to a pipe whose reader has gone must fail with EPIPE instead of killing the test binary.
void IgnoreSigpipeOnce() {
  static std::once_flag once;
  std::call_once(once, [] { ::signal(SIGPIPE, SIG_IGN); });
}

// PATH lookup happens in the parent: between fork and exec only async-signal-safe calls are
// allowed, and the test binary has threads.
std::string ResolveProgram(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return program;  // execv will fail with ENOENT and the caller gets a clear error
}

void CloseFd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

ExitStatus DecodeWaitStatus(int status) {
  ExitStatus out;
  if (WIFEXITED(status)) {
    out.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out.term_signal = WTERMSIG(status);
  }
  return out;
}

int OpenOutputFile(const std::filesystem::path& path) {
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

}  // namespace

std::string ExitStatus::ToString() const {
  if (term_signal != 0) {
    return "killed by signal " + std::to_string(term_signal) + " (" + strsignal(term_signal) + ")";
  }
  return "exit code " + std::to_string(exit_code);
}

Result<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(const std::string& program,
                                                          const std::vector<std::string>& args,
                                                          const ChildOptions& options) {
  IgnoreSigpipeOnce();
  const std::string resolved = ResolveProgram(program);
  std::vector<std::string> argv_storage;
  argv_storage.push_back(program);
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  auto sys_error = [&](const char* what) {
    return Error(
        Status::IoError(std::string(what) + " for '" + program + "': " + std::strerror(errno)));
  };
  int in_pipe[2] = {-1, -1};
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  int exec_pipe[2] = {-1, -1};
  int out_file = -1;
  int err_file = -1;
  auto close_all = [&] {
    for (int* fd : {&in_pipe[0], &in_pipe[1], &out_pipe[0], &out_pipe[1], &err_pipe[0],
                    &err_pipe[1], &exec_pipe[0], &exec_pipe[1], &out_file, &err_file}) {
      CloseFd(fd);
    }
  };
  if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    auto e = sys_error("pipe");
    close_all();
    return e;
  }
  if (options.stdout_path.empty()) {
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
      auto e = sys_error("pipe");
      close_all();
      return e;
    }
  } else if ((out_file = OpenOutputFile(options.stdout_path)) < 0) {
    auto e = sys_error("open stdout file");
    close_all();
    return e;
  }
  if (options.stderr_path.empty()) {
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
      auto e = sys_error("pipe");
      close_all();
      return e;
    }
  } else if ((err_file = OpenOutputFile(options.stderr_path)) < 0) {
    auto e = sys_error("open stderr file");
    close_all();
    return e;
  }
  const std::string cwd = options.cwd.string();

  pid_t pid = ::fork();
  if (pid < 0) {
    auto e = sys_error("fork");
    close_all();
    return e;
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    int out_target = out_file >= 0 ? out_file : out_pipe[1];
    int err_target = err_file >= 0 ? err_file : err_pipe[1];
    if (::dup2(in_pipe[0], 0) < 0 || ::dup2(out_target, 1) < 0 || ::dup2(err_target, 2) < 0) {
      int e = errno;
      (void)!::write(exec_pipe[1], &e, sizeof e);
      ::_exit(127);
    }
    // Descriptors the test binary opened without O_CLOEXEC (sockets, a port held on purpose)
    // must not leak into the child.
    const auto keep = static_cast<unsigned>(exec_pipe[1]);
    if (keep < 3) {
      ::close_range(3, ~0U, 0);
    } else {
      if (keep > 3) ::close_range(3, keep - 1, 0);
      ::close_range(keep + 1, ~0U, 0);
    }
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
      int e = errno;
      (void)!::write(exec_pipe[1], &e, sizeof e);
      ::_exit(127);
    }
    ::execv(resolved.c_str(), argv.data());
    int e = errno;
    (void)!::write(exec_pipe[1], &e, sizeof e);
    ::_exit(127);
  }

  // Parent.
  CloseFd(&in_pipe[0]);
  CloseFd(&out_pipe[1]);
  CloseFd(&err_pipe[1]);
  CloseFd(&exec_pipe[1]);
  CloseFd(&out_file);
  CloseFd(&err_file);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  CloseFd(&exec_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    close_all();
    return Error(Status::IoError("cannot run '" + program + "' (" + resolved +
                                 "): " + std::strerror(child_errno)));
  }

  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->pid_ = pid;
  child->stdin_fd_ = in_pipe[1];
  child->stdout_fd_ = out_pipe[0];
  child->stderr_fd_ = err_pipe[0];
  child->stdin_data_ = options.stdin_data;
  child->stdout_closed_ = child->stdout_fd_ < 0;
  for (int fd : {child->stdin_fd_, child->stdout_fd_, child->stderr_fd_}) {
    if (fd >= 0) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  if (child->stdin_data_.empty()) CloseFd(&child->stdin_fd_);
  child->pump_ = std::thread([c = child.get()] { c->Pump(); });
  return child;
}

ChildProcess::~ChildProcess() {
  if (!exit_.has_value() && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exit_ = DecodeWaitStatus(status);
  }
  {
    std::lock_guard lock(mu_);
    stop_pump_ = true;
  }
  if (pump_.joinable()) pump_.join();
  CloseFd(&stdin_fd_);
  CloseFd(&stdout_fd_);
  CloseFd(&stderr_fd_);
}

void ChildProcess::Pump() {
  size_t stdin_written = 0;
  char buffer[65536];
  // Reads what is available on `*fd` into `sink`; closes the fd on EOF or error.
  auto drain = [&](int* fd, std::string* sink, bool is_stdout) {
    for (;;) {
      ssize_t n = ::read(*fd, buffer, sizeof buffer);
      if (n > 0) {
        std::lock_guard lock(mu_);
        sink->append(buffer, static_cast<size_t>(n));
        cv_.notify_all();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      CloseFd(fd);
      if (is_stdout) {
        std::lock_guard lock(mu_);
        stdout_closed_ = true;
        cv_.notify_all();
      }
      return;
    }
  };
  for (;;) {
    bool stopping;
    {
      std::lock_guard lock(mu_);
      stopping = stop_pump_;
    }
    if (stopping) {
      // The child is gone: whatever it wrote is already in the pipes.
      if (stdout_fd_ >= 0) drain(&stdout_fd_, &out_, true);
      if (stderr_fd_ >= 0) drain(&stderr_fd_, &err_, false);
      break;
    }
    pollfd fds[3];
    int count = 0;
    int in_idx = -1, out_idx = -1, err_idx = -1;
    if (stdin_fd_ >= 0) {
      in_idx = count;
      fds[count++] = {stdin_fd_, POLLOUT, 0};
    }
    if (stdout_fd_ >= 0) {
      out_idx = count;
      fds[count++] = {stdout_fd_, POLLIN, 0};
    }
    if (stderr_fd_ >= 0) {
      err_idx = count;
      fds[count++] = {stderr_fd_, POLLIN, 0};
    }
    if (count == 0) break;
    int ready = ::poll(fds, static_cast<nfds_t>(count), 100);
    if (ready <= 0) continue;
    if (in_idx >= 0 && fds[in_idx].revents != 0) {
      ssize_t n = ::write(stdin_fd_, stdin_data_.data() + stdin_written,
                          stdin_data_.size() - stdin_written);
      if (n > 0) stdin_written += static_cast<size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || stdin_written == stdin_data_.size()) {
        CloseFd(&stdin_fd_);
      }
    }
    if (out_idx >= 0 && fds[out_idx].revents != 0) drain(&stdout_fd_, &out_, true);
    if (err_idx >= 0 && fds[err_idx].revents != 0) drain(&stderr_fd_, &err_, false);
  }
  std::lock_guard lock(mu_);
  stdout_closed_ = true;
  cv_.notify_all();
}

std::string ChildProcess::Stdout() const {
  std::lock_guard lock(mu_);
  return out_;
}

std::string ChildProcess::Stderr() const {
  std::lock_guard lock(mu_);
  return err_;
}

bool ChildProcess::WaitForStdout(const std::function<bool(const std::string&)>& done,
                                 std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return done(out_) || stdout_closed_; });
  return done(out_);
}

void ChildProcess::Signal(int signo) {
  if (!exit_.has_value() && pid_ > 0) ::kill(pid_, signo);
}

bool ChildProcess::IsRunning() { return !Wait(std::chrono::milliseconds(0)).has_value(); }

std::optional<ExitStatus> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  if (exit_.has_value()) return exit_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_ = DecodeWaitStatus(status);
      return exit_;
    }
    if (r < 0 && errno != EINTR) {
      // Not our child any more (should not happen); report it as gone rather than hang.
      exit_ = ExitStatus{};
      return exit_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

ExitStatus ChildProcess::Finish(std::chrono::milliseconds grace, bool* had_to_stop) {
  bool stopped = false;
  auto status = Wait(grace);
  if (!status.has_value()) {
    stopped = true;
    Signal(SIGTERM);
    status = Wait(std::chrono::seconds(5));
  }
  if (!status.has_value()) {
    Signal(SIGKILL);
    status = Wait(std::chrono::seconds(30));
  }
  if (had_to_stop != nullptr) *had_to_stop = stopped;
  {
    std::lock_guard lock(mu_);
    stop_pump_ = true;
  }
  if (pump_.joinable()) pump_.join();
  return status.value_or(ExitStatus{});
}

}  // namespace edgeflow::test_support
