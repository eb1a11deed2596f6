#include "runtime/sandbox_tool.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "runtime/sandbox_fd.h"
#include "runtime/sandbox_spawn.h"

namespace edgeflow::runtime {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kSystemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr size_t kMaxCapturedBytes = 1 << 20;

std::vector<std::string> ToolEnvironment() {
  std::vector<std::string> env{std::string("PATH=") + kSystemPath, "LC_ALL=C"};
  for (const char* name : {"HOME", "TMPDIR"}) {
    if (const char* value = std::getenv(name); value != nullptr) {
      env.push_back(std::string(name) + "=" + value);
    }
  }
  return env;
}

int MillisLeft(SteadyClock::time_point deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now()).count();
  return static_cast<int>(std::max<int64_t>(left, 0));
}

}  // namespace

Result<std::string> FindTool(std::string_view name, std::string_view debian_package) {
  std::string dirs = kSystemPath;
  size_t start = 0;
  while (start < dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string candidate = dirs.substr(start, end - start) + "/" + std::string(name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return Error(Status::NotFound(std::string(name) + " is not installed (looked in " + kSystemPath +
                                "; Debian package " + std::string(debian_package) + ")"));
}

bool ToolResult::succeeded() const {
  return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
}

std::string TrimForMessage(std::string_view text, size_t max_chars) {
  const auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  if (text.size() <= max_chars) return std::string(text);
  return "..." + std::string(text.substr(text.size() - max_chars));
}

Result<ToolResult> RunTool(const std::string& program, const std::vector<std::string>& args,
                           milliseconds timeout) {
  auto out_pipe = MakePipe();
  if (!out_pipe) return Error(out_pipe.error());
  auto err_pipe = MakePipe();
  if (!err_pipe) return Error(err_pipe.error());
  SpawnRequest request;
  request.program = program;
  request.argv.push_back(program);
  request.argv.insert(request.argv.end(), args.begin(), args.end());
  request.env = ToolEnvironment();
  request.stdout_fd = out_pipe->write.get();
  request.stderr_fd = err_pipe->write.get();
  auto pid = SpawnProcess(request);
  if (!pid) return Error(pid.error());
  out_pipe->write.Reset();
  err_pipe->write.Reset();
  UniqueFd pidfd = OpenPidfd(*pid);

  ToolResult result;
  const auto deadline = SteadyClock::now() + timeout;
  UniqueFd* fds[2] = {&out_pipe->read, &err_pipe->read};
  std::string* sinks[2] = {&result.out, &result.err};
  bool exited = false;
  bool timed_out = false;
  // A grandchild that keeps the pipes open must not hold us past the tool's own exit for long.
  SteadyClock::time_point drain_deadline = SteadyClock::time_point::max();
  while (fds[0]->valid() || fds[1]->valid()) {
    pollfd pfds[3];
    int count = 0;
    for (UniqueFd* fd : fds) {
      if (fd->valid()) pfds[count++] = {fd->get(), POLLIN, 0};
    }
    const int pidfd_index = !exited && pidfd.valid() ? count : -1;
    if (pidfd_index >= 0) pfds[count++] = {pidfd.get(), POLLIN, 0};
    const auto wait_until = std::min(deadline, drain_deadline);
    const int rc = ::poll(pfds, static_cast<nfds_t>(count), MillisLeft(wait_until));
    if (rc < 0 && errno != EINTR) break;
    if (rc == 0) {
      timed_out = SteadyClock::now() >= deadline;
      break;
    }
    if (pidfd_index >= 0 && pfds[pidfd_index].revents != 0) {
      exited = true;
      drain_deadline = SteadyClock::now() + milliseconds(200);
    }
    int index = 0;
    for (int i = 0; i < 2; ++i) {
      if (!fds[i]->valid()) continue;
      const pollfd& p = pfds[index++];
      if (p.revents == 0) continue;
      char buffer[16384];
      const ssize_t n = ::read(fds[i]->get(), buffer, sizeof buffer);
      if (n > 0) {
        if (sinks[i]->size() < kMaxCapturedBytes) sinks[i]->append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fds[i]->Reset();
      }
    }
  }
  // Both pipes closed, but the tool may still be running.
  if (!timed_out && !exited && pidfd.valid()) {
    pollfd p{pidfd.get(), POLLIN, 0};
    int rc;
    do {
      rc = ::poll(&p, 1, MillisLeft(deadline));
    } while (rc < 0 && errno == EINTR);
    timed_out = rc == 0;
  }
  if (timed_out) {
    ::kill(-*pid, SIGKILL);
    ReapProcess(*pid);
    return Error(
        Status::Unavailable(program + " did not finish within " + std::to_string(timeout.count()) +
                            " ms" + (result.err.empty() ? "" : ": " + TrimForMessage(result.err))));
  }
  result.wait_status = ReapProcess(*pid);
  return result;
}

Result<ToolResult> RunToolChecked(std::string_view what, const std::string& program,
                                  const std::vector<std::string>& args, milliseconds timeout) {
  auto result = RunTool(program, args, timeout);
  if (!result) {
    return Error(
        Status(result.error().code(), std::string(what) + ": " + result.error().message()));
  }
  if (!result->succeeded()) {
    const std::string& words = result->err.empty() ? result->out : result->err;
    return Error(Status::Unavailable(std::string(what) + " failed (" +
                                     DescribeWaitStatus(result->wait_status) + ")" +
                                     (words.empty() ? "" : ": " + TrimForMessage(words))));
  }
  return result;
}

}  // namespace edgeflow::runtime
