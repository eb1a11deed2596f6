#include "runtime/sandbox_runc.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <system_error>

#include "common/atomic_file.h"
#include "common/log.h"
#include "runtime/sandbox_oci.h"
#include "runtime/sandbox_spawn.h"
#include "runtime/sandbox_tool.h"

namespace edgeflow::runtime {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using std::chrono::milliseconds;

constexpr milliseconds kRuncCommandTimeout{10'000};
constexpr const char* kPidFile = "container.pid";
constexpr const char* kLogFile = "runc.log";

// $1 runc, $2 runc root, $3 container id, $4 instance directory. See the header.
constexpr const char* kWatchdogScript = R"(runc=$1 root=$2 id=$3 dir=$4
cleanup() {
  "$runc" --root "$root" kill "$id" KILL
  "$runc" --root "$root" delete --force "$id"
  rm -rf -- "$dir"
  exit 0
}
trap cleanup HUP INT TERM
read -r verdict
[ "$verdict" = done ] || cleanup
)";

}  // namespace

Result<std::unique_ptr<RuncContainer>> RuncContainer::Prepare(std::string runc, fs::path root,
                                                              fs::path instance_dir,
                                                              std::string id) {
  std::unique_ptr<RuncContainer> container(new RuncContainer());
  container->runc_ = std::move(runc);
  container->root_ = std::move(root);
  container->instance_dir_ = std::move(instance_dir);
  container->id_ = std::move(id);
  container->deleted_ = true;  // nothing of ours to clean up yet

  std::error_code ec;
  // runc keeps a container's state in <root>/<id>; one is left there if a node died with a
  // container whose watchdog could not finish.
  if (fs::exists(container->root_ / container->id_, ec)) {
    auto deleted =
        RunTool(container->runc_,
                {"--root", container->root_.string(), "delete", "--force", container->id_},
                kRuncCommandTimeout);
    if (!deleted || !deleted->succeeded()) {
      log::Warn("cannot delete a container left by an earlier run",
                {{"id", container->id_},
                 {"error", deleted ? TrimForMessage(deleted->err) : deleted.error().message()}});
    }
  }
  fs::remove_all(container->instance_dir_, ec);
  fs::create_directories(container->instance_dir_, ec);
  if (ec) {
    return Error(Status::IoError("cannot create " + container->instance_dir_.string() + ": " +
                                 ec.message()));
  }
  container->deleted_ = false;  // from here on, Delete() removes the instance directory
  fs::create_directories(container->root_, ec);
  if (ec) {
    return Error(
        Status::IoError("cannot create " + container->root_.string() + ": " + ec.message()));
  }

  auto lifeline = MakePipe();
  if (!lifeline) return Error(lifeline.error());
  SpawnRequest request;
  request.program = "/bin/sh";
  request.argv = {"sh",
                  "-c",
                  kWatchdogScript,
                  "edgeflow-runc-watchdog",
                  container->runc_,
                  container->root_.string(),
                  container->id_,
                  container->instance_dir_.string()};
  request.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
  request.stdin_fd = lifeline->read.get();
  // It must outlive the node, and not be killed with the worker's process group.
  request.die_with_parent = false;
  request.new_process_group = true;
  auto pid = SpawnProcess(request);
  if (!pid) {
    return Error(Status(pid.error().code(),
                        "cannot start the container's watchdog: " + pid.error().message()));
  }
  container->watchdog_pid_ = *pid;
  container->lifeline_ = std::move(lifeline->write);
  return container;
}

std::vector<std::string> RuncContainer::RunArguments() const {
  return {runc_,
          "--root",
          root_.string(),
          "--log",
          (instance_dir_ / kLogFile).string(),
          "--log-format",
          "json",
          "run",
          "--bundle",
          instance_dir_.string(),
          "--pid-file",
          (instance_dir_ / kPidFile).string(),
          id_};
}

std::string RuncContainer::LastLoggedError() const {
  // {"level":"error","msg":"runc run failed: ...","time":"..."}, one per line.
  const std::string text = ReadWholeFile(instance_dir_ / kLogFile);
  std::istringstream lines(text);
  std::string line;
  std::string message;
  while (std::getline(lines, line)) {
    const json entry = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!entry.is_object()) continue;
    const auto level = entry.find("level");
    const auto msg = entry.find("msg");
    if (level == entry.end() || msg == entry.end() || !level->is_string() || !msg->is_string()) {
      continue;
    }
    const std::string l = level->get<std::string>();
    if (l == "error" || l == "fatal") message = msg->get<std::string>();
  }
  if (message.empty()) message = TrimForMessage(text, 1000);
  return message;
}

Status RuncContainer::WaitStarted(int runc_pidfd, milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const fs::path pid_file = instance_dir_ / kPidFile;
  for (;;) {
    std::error_code ec;
    if (fs::exists(pid_file, ec)) return Status::Ok();
    if (ChildHasEnded(runc_pidfd)) {
      // runc may have written the pid file just before the container's process ended.
      if (fs::exists(pid_file, ec)) return Status::Ok();
      const std::string reason = LastLoggedError();
      const ErrorCode code = reason.find("executable file not found") != std::string::npos ||
                                     reason.find("no such file or directory") != std::string::npos
                                 ? ErrorCode::kNotFound
                                 : ErrorCode::kUnavailable;
      return Status(code, "runc could not start the container" +
                              (reason.empty() ? std::string() : ": " + reason));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Unavailable("the container did not start within " +
                                 std::to_string(timeout.count()) + " ms");
    }
    pollfd p{runc_pidfd, POLLIN, 0};
    ::poll(&p, 1, 2);
  }
}

void RuncContainer::Kill() {
  if (deleted_) return;
  auto killed =
      RunTool(runc_, {"--root", root_.string(), "kill", id_, "KILL"}, kRuncCommandTimeout);
  if (!killed) log::Warn("runc kill failed", {{"id", id_}, {"error", killed.error().message()}});
  // A non-zero exit means the container is gone already; nothing to report.
}

void RuncContainer::Delete() {
  if (deleted_) return;
  deleted_ = true;
  std::error_code ec;
  // `runc run` deletes the container itself when its process ends normally.
  if (fs::exists(root_ / id_, ec)) {
    auto deleted =
        RunTool(runc_, {"--root", root_.string(), "delete", "--force", id_}, kRuncCommandTimeout);
    if (!deleted || !deleted->succeeded()) {
      log::Warn("runc delete failed",
                {{"id", id_},
                 {"error", deleted ? TrimForMessage(deleted->err) : deleted.error().message()}});
    }
  }
  fs::remove_all(instance_dir_, ec);
  if (ec) {
    log::Warn("cannot remove a worker's bundle directory",
              {{"dir", instance_dir_.string()}, {"error", ec.message()}});
  }
  if (watchdog_pid_ > 0) {
    (void)!::write(lifeline_.get(), "done\n", 5);
    lifeline_.Reset();
    ReapProcess(watchdog_pid_);
    watchdog_pid_ = -1;
  }
}

Status CheckOci() {
  static std::mutex mu;
  static std::optional<Status> answer;
  std::lock_guard lock(mu);
  if (answer.has_value()) return *answer;
  answer = []() -> Status {
    auto runc = FindTool("runc", "runc");
    if (!runc) return Status::Unavailable("sandbox oci: " + runc.error().message());
    auto umoci = FindTool("umoci", "umoci");
    if (!umoci) return Status::Unavailable("sandbox oci: " + umoci.error().message());

    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/edgeflow-oci-check-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      return Status::IoError("sandbox oci: cannot create a directory from " + pattern + ": " +
                             std::strerror(errno));
    }
    const fs::path dir = pattern;
    struct RemoveDir {
      fs::path path;
      ~RemoveDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
      }
    } remove_dir{dir};

    // A rootfs that shows the host's /usr, with /bin, /lib64, ... as the host has them.
    const fs::path rootfs = dir / "rootfs";
    std::error_code ec;
    fs::create_directories(rootfs / "usr", ec);
    OciWorkerConfig worker;
    worker.rootfs = rootfs;
    worker.args = {"/usr/bin/true"};
    worker.limits.memory_bytes = 64 << 20;
    worker.limits.cpus = 1;
    worker.limits.pids = 16;
    worker.limit_swap = CgroupV1AccountsSwap();
    static std::atomic<int> counter{0};
    const std::string id =
        "edgeflow-check-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    worker.cgroups_path = "/edgeflow/" + id;
    json config = BuildOciConfig(json::object(), worker);
    config["mounts"].push_back({{"destination", "/usr"},
                                {"type", "bind"},
                                {"source", "/usr"},
                                {"options", {"rbind", "ro", "nosuid", "nodev"}}});
    for (const char* system_dir : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
      const fs::file_status status = fs::symlink_status(system_dir, ec);
      if (ec) continue;
      const fs::path in_rootfs = rootfs / fs::path(system_dir).relative_path();
      if (fs::is_symlink(status)) {
        fs::create_symlink(fs::read_symlink(system_dir, ec), in_rootfs, ec);
      } else if (fs::is_directory(status)) {
        config["mounts"].push_back({{"destination", system_dir},
                                    {"type", "bind"},
                                    {"source", system_dir},
                                    {"options", {"rbind", "ro", "nosuid", "nodev"}}});
      }
    }
    std::string config_text;
    try {
      config_text = config.dump(2);
    } catch (const json::exception& e) {  // a path that is not UTF-8
      return Status::Unavailable(std::string("sandbox oci: cannot write config.json: ") + e.what());
    }
    EF_RETURN_IF_ERROR(WriteFileAtomically(dir / "config.json", config_text));
    auto run =
        RunToolChecked("runc run", *runc,
                       {"--root", (dir / "state").string(), "run", "--bundle", dir.string(), id},
                       std::chrono::seconds(20));
    if (!run) {
      // Whatever state it left must go with the directory.
      auto deleted = RunTool(*runc, {"--root", (dir / "state").string(), "delete", "--force", id},
                             kRuncCommandTimeout);
      if (!deleted) deleted.error().IgnoreError();  // best effort: the directory goes anyway
      return Status::Unavailable("sandbox oci: runc cannot run a container on this machine: " +
                                 run.error().message());
    }
    return Status::Ok();
  }();
  return *answer;
}

}  // namespace edgeflow::runtime
