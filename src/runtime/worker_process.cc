#include "runtime/worker_process.h"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <system_error>

#include "common/atomic_file.h"
#include "common/log.h"
#include "runtime/sandbox_bwrap.h"
#include "runtime/sandbox_cgroup.h"
#include "runtime/sandbox_command.h"
#include "runtime/sandbox_fd.h"
#include "runtime/sandbox_oci.h"
#include "runtime/sandbox_runc.h"
#include "runtime/sandbox_spawn.h"
#include "runtime/sandbox_tool.h"

namespace edgeflow::runtime {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// bwrap runs two processes of its own in the worker's cgroup: the outer one (our child) and the
// sandbox's pid 1, which reaps for the command.
constexpr uint32_t kBwrapOwnProcesses = 2;
// How long `runc run` may take to create the container (cold page cache on a slow device).
constexpr milliseconds kContainerStartTimeout{15'000};
// How long runc gets to notice that `runc kill` ended the container before it is killed itself.
constexpr milliseconds kRuncExitGrace{2'000};
constexpr rlim_t kMaxOpenFiles = 1024;


Status InFunction(const FunctionSpec& function, const Status& status) {
  return Status(status.code(), "function '" + function.name + "': " + status.message());
}

bool ValidInstanceId(std::string_view id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

fs::path AbsoluteUnder(const fs::path& base, const fs::path& path) {
  std::error_code ec;
  const fs::path joined = path.is_absolute() ? path : base / path;
  fs::path absolute = fs::absolute(joined, ec);
  return (ec ? joined : absolute).lexically_normal();
}

// Puts `fresh` in place of `target` (which may not exist yet); the old content is removed.
Status ReplaceDirectory(const fs::path& fresh, const fs::path& target) {
  std::error_code ec;
  fs::path old = target;
  old += ".old";
  fs::remove_all(old, ec);
  if (fs::exists(target, ec)) {
    fs::rename(target, old, ec);
    if (ec) return Status::IoError("cannot move " + target.string() + " aside: " + ec.message());
  }
  fs::rename(fresh, target, ec);
  if (ec) return Status::IoError("cannot rename " + fresh.string() + ": " + ec.message());
  fs::remove_all(old, ec);
  return Status::Ok();
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

// Waits up to `timeout` for the process behind `pidfd` to end (without reaping it).
bool WaitEnded(int pidfd, milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    if (ChildHasEnded(pidfd)) return true;
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) return false;
    pollfd p{pidfd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
}

// RLIMIT_NOFILE and RLIMIT_CORE for every worker, RLIMIT_AS when no cgroup limits memory. Never
// above the node's own hard limits, which an unprivileged child could not raise.
std::vector<ResourceLimit> WorkerRlimits(const FunctionLimits& limits, bool memory_by_cgroup) {
  const auto capped = [](int resource, rlim_t value) {
    rlimit current{};
    if (::getrlimit(resource, &current) == 0 && current.rlim_max != RLIM_INFINITY) {
      value = std::min(value, current.rlim_max);
    }
    return ResourceLimit{resource, value};
  };
  std::vector<ResourceLimit> rlimits{capped(RLIMIT_NOFILE, kMaxOpenFiles),
                                     ResourceLimit{RLIMIT_CORE, 0}};
  if (!memory_by_cgroup) {
    static std::atomic<bool> logged{false};
    if (!logged.exchange(true)) {
      log::Warn(
          "worker memory is limited by RLIMIT_AS (address space) only: no memory cgroup could be "
          "created for workers (the node needs root, or a delegated cgroup)");
    }
    rlimits.push_back(capped(RLIMIT_AS, static_cast<rlim_t>(limits.memory_bytes)));
  }
  return rlimits;
}

}  // namespace

std::string ExitStatus::ToString() const {
  if (term_signal != 0) {
    const char* abbrev = ::sigabbrev_np(term_signal);
    return "killed by signal " + std::to_string(term_signal) +
           (abbrev != nullptr ? " (SIG" + std::string(abbrev) + ")" : std::string());
  }
  return "exit status " + std::to_string(exit_code);
}

Result<PreparedCode> PrepareCode(const FunctionSpec& function, const fs::path& spec_dir,
                                 const fs::path& work_dir) {
  std::error_code ec;
  const fs::path work = AbsoluteUnder(fs::current_path(ec), work_dir);
  fs::create_directories(work, ec);
  if (ec) {
    return Error(InFunction(function, Status::IoError("cannot create the work directory " +
                                                      work.string() + ": " + ec.message())));
  }

  if (function.sandbox == SandboxKind::kOci) {
    if (function.image.empty()) {
      return Error(InFunction(
          function, Status::InvalidArgument("sandbox oci runs an image: give image: (an OCI "
                                            "image layout or a docker save archive), not code:")));
    }
    if (auto runc = FindTool("runc", "runc"); !runc) {
      return Error(
          InFunction(function, Status::Unavailable("sandbox oci: " + runc.error().message())));
    }
    const fs::path image = AbsoluteUnder(spec_dir, function.image);
    const fs::path fresh = work / "bundle.new";
    fs::remove_all(fresh, ec);
    if (Status unpacked = UnpackOciImage(image, work, fresh); !unpacked.ok()) {
      fs::remove_all(fresh, ec);
      return Error(InFunction(function, unpacked));
    }
    if (Status replaced = ReplaceDirectory(fresh, work / "bundle"); !replaced.ok()) {
      return Error(InFunction(function, replaced));
    }
    return PreparedCode{SandboxKind::kOci, {}, work / "bundle"};
  }

  if (function.code_dir.empty()) {
    return Error(InFunction(
        function,
        Status::InvalidArgument(std::string("sandbox ") + SandboxKindName(function.sandbox) +
                                " runs a code directory: give code:, not image: "
                                "(images need sandbox: oci)")));
  }
  if (function.sandbox == SandboxKind::kBwrap) {
    if (auto bwrap = FindTool("bwrap", "bubblewrap"); !bwrap) {
      return Error(
          InFunction(function, Status::Unavailable("sandbox bwrap: " + bwrap.error().message())));
    }
  }
  const fs::path source = AbsoluteUnder(spec_dir, function.code_dir);
  if (!fs::is_directory(source, ec)) {
    return Error(
        InFunction(function, Status::NotFound("no such code directory: " + source.string())));
  }
  const fs::path fresh = work / "code.new";
  fs::remove_all(fresh, ec);
  // Symlinks are followed: the snapshot must hold what they point to (a vendored SDK linked from
  // elsewhere), since the sandbox shows the worker only the snapshot.
  fs::copy(source, fresh, fs::copy_options::recursive, ec);
  if (ec) {
    fs::remove_all(fresh, ec);
    return Error(InFunction(function, Status::IoError("cannot copy the code directory " +
                                                      source.string() + ": " + ec.message())));
  }
  if (Status replaced = ReplaceDirectory(fresh, work / "code"); !replaced.ok()) {
    return Error(InFunction(function, replaced));
  }
  return PreparedCode{function.sandbox, work / "code", {}};
}

Status CheckSandbox(SandboxKind kind) {
  switch (kind) {
    case SandboxKind::kProcess:
      return Status::Ok();
    case SandboxKind::kBwrap:
      return CheckBwrap();
    case SandboxKind::kOci:
      return CheckOci();
  }
  return Status::InvalidArgument("unknown sandbox kind");
}

// $1: the pid of bwrap. Killing bwrap is enough: --die-with-parent gives the sandbox's processes
// a parent-death signal set after bwrap's credential changes, so they follow it.
constexpr const char* kBwrapWatchdogScript = R"(read -r verdict
[ "$verdict" = done ] || kill -KILL "$1"
)";

struct WorkerProcess::Impl {
  SandboxKind kind = SandboxKind::kProcess;
  std::string instance_id;
  pid_t pid = -1;
  UniqueFd pidfd;
  UniqueFd stdin_fd;
  UniqueFd stdout_fd;
  UniqueFd stderr_fd;
  WorkerCgroup cgroup;                       // process, bwrap
  std::unique_ptr<RuncContainer> container;  // oci
  fs::path instance_dir;                     // bwrap: its /etc files
  // bwrap: bwrap changes its credentials as it sets the sandbox up, which clears the parent-death
  // signal it inherited, so a node that dies would leave it (and the worker) running. A small
  // watchdog that reads a pipe only the node holds kills it on EOF (see StartBwrapWatchdog).
  UniqueFd lifeline;
  pid_t watchdog = -1;

  std::mutex mu;
  std::optional<ExitStatus> exit;  // GUARDED_BY(mu)
  bool released = false;           // GUARDED_BY(mu): the sandbox's state is gone

  ~Impl() {
    std::lock_guard lock(mu);
    KillLocked();
  }

  // REQUIRES: mu held. The main process has ended (a zombie) or was never started.
  void KillRestLocked() {
    // The leader is not reaped yet, so the process group id is still ours.
    if (pid > 0) ::kill(-pid, SIGKILL);
    cgroup.KillAll();
  }

  // bwrap: starts the watchdog (see `lifeline`).
  Status StartBwrapWatchdog() {
    auto pipe = MakePipe();
    if (!pipe) return pipe.error();
    SpawnRequest request;
    request.program = "/bin/sh";
    request.argv = {"sh", "-c", kBwrapWatchdogScript, "edgeflow-bwrap-watchdog",
                    std::to_string(pid)};
    request.env = {"PATH=/usr/bin:/bin"};
    request.stdin_fd = pipe->read.get();
    // It must outlive the node, and not be killed with the worker's process group.
    request.die_with_parent = false;
    request.new_process_group = true;
    auto spawned = SpawnProcess(request);
    if (!spawned) {
      return Status(spawned.error().code(),
                    "cannot start the sandbox's watchdog: " + spawned.error().message());
    }
    watchdog = *spawned;
    lifeline = std::move(pipe->write);
    return Status::Ok();
  }

  // REQUIRES: mu held. After the main process was reaped (or never started).
  void ReleaseLocked() {
    if (released) return;
    released = true;
    if (watchdog > 0) {
      (void)!::write(lifeline.get(), "done\n", 5);
      lifeline.Reset();
      ReapProcess(watchdog);
      watchdog = -1;
    }
    cgroup.Remove();
    if (container) container->Delete();
    if (!instance_dir.empty()) {
      std::error_code ec;
      fs::remove_all(instance_dir, ec);
    }
  }

  // REQUIRES: mu held.
  std::optional<ExitStatus> TryWaitLocked() {
    if (exit.has_value()) return exit;
    if (pid <= 0 || !ChildHasEnded(pidfd.get())) return std::nullopt;
    KillRestLocked();
    exit = DecodeWaitStatus(ReapProcess(pid));
    ReleaseLocked();
    return exit;
  }

  // REQUIRES: mu held.
  void KillLocked() {
    if (exit.has_value() || pid <= 0) {
      ReleaseLocked();
      return;
    }
    if (container) {
      // runc then sees its container end, reports it and removes it itself.
      container->Kill();
      WaitEnded(pidfd.get(), kRuncExitGrace);
    }
    ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
    KillRestLocked();
    exit = DecodeWaitStatus(ReapProcess(pid));
    ReleaseLocked();
  }
};

WorkerProcess::WorkerProcess(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WorkerProcess::~WorkerProcess() = default;  // Impl's destructor kills and reaps

Result<std::unique_ptr<WorkerProcess>> WorkerProcess::Start(const PreparedCode& code,
                                                            const FunctionSpec& function,
                                                            const WorkerLaunchOptions& options) {
  const auto fail = [&](const Status& status) { return Error(InFunction(function, status)); };
  if (function.command.empty() || function.command[0].empty()) {
    return fail(Status::InvalidArgument("the command is empty"));
  }
  if (!ValidInstanceId(options.instance_id)) {
    return fail(Status::InvalidArgument("bad worker instance id '" + options.instance_id +
                                        "' (expected [A-Za-z0-9_.-]{1,128})"));
  }
  if (code.sandbox != SandboxKind::kProcess && options.state_dir.empty()) {
    return fail(Status::InvalidArgument("no state directory for the worker"));
  }
  auto impl = std::make_unique<Impl>();
  impl->kind = code.sandbox;
  impl->instance_id = options.instance_id;
  const std::map<std::string, std::string> env = WorkerEnvironment(function.env);
  const std::string& path_env = env.find("PATH")->second;  // WorkerEnvironment always sets it
  std::error_code ec;
  const fs::path state_dir = options.state_dir.empty()
                                 ? fs::path()
                                 : AbsoluteUnder(fs::current_path(ec), options.state_dir);
  const CgroupLimits cgroup_limits{function.limits.memory_bytes, function.limits.cpus,
                                   function.limits.pids};

  SpawnRequest request;
  switch (code.sandbox) {
    case SandboxKind::kProcess: {
      auto program = ResolveCommand(function.command[0], code.code_dir, path_env,
                                    [](const fs::path& p) { return std::optional<fs::path>(p); });
      if (!program) return fail(program.error());
      impl->cgroup = WorkerCgroup::Create(options.instance_id, cgroup_limits);
      request.program = program->string();
      request.argv = function.command;
      request.env = EnvironmentEntries(env);
      request.cwd = code.code_dir;
      request.rlimits = WorkerRlimits(function.limits, impl->cgroup.limits_memory());
      request.cgroup_procs_fds = impl->cgroup.procs_fds();
      break;
    }
    case SandboxKind::kBwrap: {
      auto bwrap = FindTool("bwrap", "bubblewrap");
      if (!bwrap) return fail(bwrap.error());
      auto program =
          ResolveCommand(function.command[0], kBwrapCodeDir, path_env,
                         [&](const fs::path& p) { return BwrapViewToHost(code.code_dir, p); });
      if (!program) return fail(program.error());
      impl->instance_dir = state_dir / options.instance_id;
      if (Status written = WriteBwrapEtcFiles(impl->instance_dir); !written.ok()) {
        return fail(written);
      }
      BwrapSpec spec;
      spec.code_dir = code.code_dir;
      spec.network = function.network;
      spec.env = env;
      spec.etc_dir = impl->instance_dir;
      spec.program = program->string();
      spec.args.assign(function.command.begin() + 1, function.command.end());
      CgroupLimits limits = cgroup_limits;
      limits.pids += kBwrapOwnProcesses;
      impl->cgroup = WorkerCgroup::Create(options.instance_id, limits);
      request.program = *bwrap;
      request.argv = BwrapArguments(spec);
      request.argv.insert(request.argv.begin(), "bwrap");
      request.env = EnvironmentEntries(env);
      request.cwd = "/";
      request.rlimits = WorkerRlimits(function.limits, impl->cgroup.limits_memory());
      request.cgroup_procs_fds = impl->cgroup.procs_fds();
      break;
    }
    case SandboxKind::kOci: {
      auto runc = FindTool("runc", "runc");
      if (!runc) return fail(runc.error());
      const std::string base_text = ReadWholeFile(code.bundle_dir / "config.json");
      const nlohmann::json base = nlohmann::json::parse(base_text, nullptr, false);
      if (!base.is_object()) {
        return fail(Status::Corruption("the bundle " + code.bundle_dir.string() +
                                       " has no readable config.json"));
      }
      auto container = RuncContainer::Prepare(*runc, state_dir / "runc",
                                              state_dir / options.instance_id, options.instance_id);
      if (!container) return fail(container.error());
      impl->container = std::move(*container);
      OciWorkerConfig worker;
      worker.rootfs = code.bundle_dir / "rootfs";
      worker.args = function.command;
      worker.env = function.env;
      worker.network = function.network;
      worker.limits = function.limits;
      worker.limit_swap = CgroupV1AccountsSwap();
      worker.cgroups_path = "/edgeflow/" + options.instance_id;
      std::string config;
      try {
        config = BuildOciConfig(base, worker).dump(2);
      } catch (const nlohmann::json::exception& e) {
        return fail(Status::InvalidArgument(
            std::string("the command or env cannot be written to config.json: ") + e.what()));
      }
      if (Status written =
              WriteFileAtomically(impl->container->bundle_dir() / "config.json", config);
          !written.ok()) {
        return fail(written);
      }
      request.argv = impl->container->RunArguments();
      request.program = request.argv.front();
      request.argv.front() = "runc";
      // runc's own environment; the container's comes from config.json.
      request.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
      request.cwd = "/";
      break;
    }
  }

  auto stdin_pipe = MakePipe();
  if (!stdin_pipe) return fail(stdin_pipe.error());
  auto stdout_pipe = MakePipe();
  if (!stdout_pipe) return fail(stdout_pipe.error());
  auto stderr_pipe = MakePipe();
  if (!stderr_pipe) return fail(stderr_pipe.error());
  request.stdin_fd = stdin_pipe->read.get();
  request.stdout_fd = stdout_pipe->write.get();
  request.stderr_fd = stderr_pipe->write.get();
  request.new_process_group = true;
  request.die_with_parent = true;
  auto pid = SpawnProcess(request);
  if (!pid) return fail(pid.error());  // Impl's destructor removes the cgroup and the state
  // Only the worker holds these ends now: its exit is our EOF.
  stdin_pipe->read.Reset();
  stdout_pipe->write.Reset();
  stderr_pipe->write.Reset();
  impl->pid = *pid;
  impl->pidfd = OpenPidfd(*pid);
  if (!impl->pidfd.valid()) {
    const int error = errno;
    ::kill(-*pid, SIGKILL);
    ::kill(*pid, SIGKILL);
    impl->exit = DecodeWaitStatus(ReapProcess(*pid));
    return fail(Status::Unavailable(std::string("pidfd_open (Linux >= 5.4 is needed): ") +
                                    std::strerror(error)));
  }
  impl->stdin_fd = std::move(stdin_pipe->write);
  impl->stdout_fd = std::move(stdout_pipe->read);
  impl->stderr_fd = std::move(stderr_pipe->read);
  if (impl->kind == SandboxKind::kBwrap) {
    if (Status watched = impl->StartBwrapWatchdog(); !watched.ok()) return fail(watched);
  }

  if (impl->container) {
    if (Status started = impl->container->WaitStarted(impl->pidfd.get(), kContainerStartTimeout);
        !started.ok()) {
      return fail(started);  // Impl's destructor kills and reaps runc and removes the container
    }
  }
  log::Debug("worker started", {{"function", function.name},
                                {"instance", options.instance_id},
                                {"sandbox", SandboxKindName(code.sandbox)},
                                {"pid", static_cast<int>(*pid)}});
  return std::unique_ptr<WorkerProcess>(new WorkerProcess(std::move(impl)));
}

pid_t WorkerProcess::pid() const { return impl_->pid; }
int WorkerProcess::stdin_fd() const { return impl_->stdin_fd.get(); }
int WorkerProcess::stdout_fd() const { return impl_->stdout_fd.get(); }
int WorkerProcess::stderr_fd() const { return impl_->stderr_fd.get(); }
void WorkerProcess::CloseStdin() { impl_->stdin_fd.Reset(); }

void WorkerProcess::Kill() {
  std::lock_guard lock(impl_->mu);
  impl_->KillLocked();
}

std::optional<ExitStatus> WorkerProcess::TryWait() {
  std::lock_guard lock(impl_->mu);
  return impl_->TryWaitLocked();
}

std::optional<ExitStatus> WorkerProcess::Wait(milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    if (auto status = TryWait(); status.has_value()) return status;
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) return std::nullopt;
    // Readable once the process has ended; the pidfd lives as long as the object.
    pollfd p{impl_->pidfd.get(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
}

}  // namespace edgeflow::runtime
