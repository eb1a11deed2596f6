#include "runtime/sandbox_cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>
#include <thread>

#include "common/log.h"

namespace edgeflow::runtime {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kCpuPeriodUs = 100'000;
constexpr uint64_t kMinCpuQuotaUs = 1'000;  // the kernel refuses less

std::string Errno(int error) { return std::strerror(error); }

// Writes `value` to a cgroup control file; "" on success, else the reason.
std::string WriteControl(const fs::path& path, std::string_view value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return "cannot open " + path.string() + ": " + Errno(errno);
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return "cannot write '" + std::string(value) + "' to " + path.string() + ": " + Errno(errno);
  }
  return "";
}

bool HasWord(std::string_view list, std::string_view word) {
  size_t start = 0;
  while (start < list.size()) {
    size_t end = list.find_first_of(" \n", start);
    if (end == std::string_view::npos) end = list.size();
    if (list.substr(start, end - start) == word) return true;
    start = end + 1;
  }
  return false;
}

// Logs once per process and controller that a limit is not enforced by a cgroup.
void LogControllerUnavailable(std::string_view controller, const std::string& reason) {
  static std::atomic<bool> logged[3];
  const int index = controller == "memory" ? 0 : controller == "cpu" ? 1 : 2;
  if (logged[index].exchange(true)) return;
  log::Warn("worker cgroup controller unavailable; the limit is not enforced by a cgroup",
            {{"controller", controller}, {"reason", reason}});
}

// Removes an empty group directory, waiting a little for exiting processes to leave it.
bool RemoveGroupDir(const fs::path& dir) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

bool Exists(const fs::path& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

// SIGKILL to every process listed in `dir`/cgroup.procs until it is empty; true once empty.
bool KillProcessesIn(const fs::path& dir, bool v2) {
  if (v2 && Exists(dir / "cgroup.kill")) {
    // Linux >= 5.14: the kernel kills the whole group, including processes forked meanwhile.
    WriteControl(dir / "cgroup.kill", "1");
  }
  for (int round = 0; round < 200; ++round) {
    if (!Exists(dir)) return true;
    std::istringstream procs(ReadWholeFile(dir / "cgroup.procs"));
    bool any = false;
    pid_t pid;
    while (procs >> pid) {
      any = true;
      ::kill(pid, SIGKILL);
    }
    if (!any) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

}  // namespace

std::vector<CgroupMount> ParseCgroupMounts(std::string_view mountinfo) {
  // 35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
  std::vector<CgroupMount> mounts;
  std::vector<std::string> seen_sources;  // "type:superoptions:device", one per hierarchy
  std::istringstream lines{std::string(mountinfo)};
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string id, parent, device, root, mount_point, options;
    if (!(fields >> id >> parent >> device >> root >> mount_point >> options)) continue;
    std::string field;
    while (fields >> field && field != "-") {
    }
    std::string type, source, super_options;
    if (!(fields >> type >> source >> super_options)) continue;
    if (type != "cgroup" && type != "cgroup2") continue;
    const std::string key = type + ":" + super_options + ":" + device;
    if (std::find(seen_sources.begin(), seen_sources.end(), key) != seen_sources.end()) continue;
    seen_sources.push_back(key);
    CgroupMount mount;
    // mountinfo escapes blanks in paths as \040; cgroup mount points do not have any in practice.
    mount.mount_point = mount_point;
    mount.v2 = type == "cgroup2";
    if (!mount.v2) {
      std::istringstream opts(super_options);
      std::string opt;
      while (std::getline(opts, opt, ',')) {
        if (opt == "memory" || opt == "cpu" || opt == "pids") mount.controllers.push_back(opt);
      }
    }
    mounts.push_back(std::move(mount));
  }
  return mounts;
}

WorkerCgroup::Group* WorkerCgroup::GroupIn(const CgroupMount& mount, std::string_view instance_id,
                                           std::string* reason) {
  const fs::path parent = mount.mount_point / "edgeflow";
  for (Group& group : groups_) {
    if (group.dir.parent_path() == parent) return &group;
  }
  if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) {
    *reason = "cannot create " + parent.string() + ": " + Errno(errno);
    return nullptr;
  }
  fs::path dir = parent / std::string(instance_id);
  for (int attempt = 1; ::mkdir(dir.c_str(), 0755) != 0; ++attempt) {
    if (errno != EEXIST) {
      *reason = "cannot create " + dir.string() + ": " + Errno(errno);
      return nullptr;
    }
    // An empty group is left over from a node that died (its workers died with it) and can go.
    // One with processes may belong to another node on this host: never touch it, use another
    // name.
    if (::rmdir(dir.c_str()) == 0) continue;
    if (attempt > 16) {
      *reason = "cannot create a group for " + std::string(instance_id) + " in " + parent.string() +
                ": the names are taken";
      return nullptr;
    }
    dir = parent / (std::string(instance_id) + "-" + std::to_string(attempt));
  }
  Group group;
  group.dir = dir;
  group.v2 = mount.v2;
  group.procs = UniqueFd(::open((dir / "cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  if (!group.procs.valid()) {
    *reason = "cannot open " + (dir / "cgroup.procs").string() + ": " + Errno(errno);
    RemoveGroupDir(dir);
    return nullptr;
  }
  groups_.push_back(std::move(group));
  return &groups_.back();
}

WorkerCgroup WorkerCgroup::Create(std::string_view instance_id, const CgroupLimits& limits) {
  WorkerCgroup cgroup;
  const std::vector<CgroupMount> mounts = ParseCgroupMounts(ReadWholeFile("/proc/self/mountinfo"));
  const CgroupMount* v2 = nullptr;
  std::string v2_controllers;
  for (const CgroupMount& mount : mounts) {
    if (mount.v2) {
      v2 = &mount;
      v2_controllers = ReadWholeFile(mount.mount_point / "cgroup.controllers");
      break;
    }
  }

  // Each controller: where it is, then the group there, then its limits.
  const auto set_up = [&](std::string_view controller,
                          const std::vector<std::pair<std::string, std::string>>& v1_files,
                          const std::vector<std::pair<std::string, std::string>>& v2_files) {
    std::string reason;
    const CgroupMount* mount = nullptr;
    if (v2 != nullptr && HasWord(v2_controllers, controller)) {
      mount = v2;
    } else {
      for (const CgroupMount& m : mounts) {
        if (!m.v2 && std::find(m.controllers.begin(), m.controllers.end(), controller) !=
                         m.controllers.end()) {
          mount = &m;
          break;
        }
      }
    }
    if (mount == nullptr) {
      LogControllerUnavailable(
          controller, "no cgroup hierarchy has the " + std::string(controller) + " controller");
      return false;
    }
    if (mount->v2) {
      // The controller must be enabled for the children of the root and of edgeflow/.
      const std::string enable = "+" + std::string(controller);
      reason = WriteControl(mount->mount_point / "cgroup.subtree_control", enable);
      if (reason.empty()) {
        const fs::path parent = mount->mount_point / "edgeflow";
        if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) {
          reason = "cannot create " + parent.string() + ": " + Errno(errno);
        } else {
          reason = WriteControl(parent / "cgroup.subtree_control", enable);
        }
      }
      if (!reason.empty()) {
        LogControllerUnavailable(controller, reason);
        return false;
      }
    }
    Group* group = cgroup.GroupIn(*mount, instance_id, &reason);
    if (group == nullptr) {
      LogControllerUnavailable(controller, reason);
      return false;
    }
    for (const auto& [file, value] : mount->v2 ? v2_files : v1_files) {
      reason = WriteControl(group->dir / file, value);
      if (!reason.empty()) {
        LogControllerUnavailable(controller, reason);
        return false;
      }
    }
    return true;
  };

  if (limits.memory_bytes > 0) {
    const std::string bytes = std::to_string(limits.memory_bytes);
    cgroup.memory_ = set_up("memory", {{"memory.limit_in_bytes", bytes}}, {{"memory.max", bytes}});
    if (cgroup.memory_) {
      // Swap must not extend the limit. v1 has memsw only with swap accounting; v2 only with
      // swap configured in the kernel. Without either, there is no swap to limit.
      for (const Group& group : cgroup.groups_) {
        if (!group.v2 && Exists(group.dir / "memory.memsw.limit_in_bytes")) {
          WriteControl(group.dir / "memory.memsw.limit_in_bytes", bytes);
        } else if (group.v2 && Exists(group.dir / "memory.swap.max")) {
          WriteControl(group.dir / "memory.swap.max", "0");
        }
      }
    }
  }
  if (limits.cpus > 0) {
    const auto quota = std::max<uint64_t>(
        kMinCpuQuotaUs, static_cast<uint64_t>(std::llround(limits.cpus * kCpuPeriodUs)));
    cgroup.cpu_ = set_up("cpu",
                         {{"cpu.cfs_period_us", std::to_string(kCpuPeriodUs)},
                          {"cpu.cfs_quota_us", std::to_string(quota)}},
                         {{"cpu.max", std::to_string(quota) + " " + std::to_string(kCpuPeriodUs)}});
  }
  if (limits.pids > 0) {
    const std::string pids = std::to_string(limits.pids);
    cgroup.pids_ = set_up("pids", {{"pids.max", pids}}, {{"pids.max", pids}});
  }
  return cgroup;
}

std::vector<int> WorkerCgroup::procs_fds() const {
  std::vector<int> fds;
  for (const Group& group : groups_) fds.push_back(group.procs.get());
  return fds;
}

std::vector<std::filesystem::path> WorkerCgroup::dirs() const {
  std::vector<std::filesystem::path> dirs;
  for (const Group& group : groups_) dirs.push_back(group.dir);
  return dirs;
}

void WorkerCgroup::KillAll() {
  for (const Group& group : groups_) {
    if (!KillProcessesIn(group.dir, group.v2)) {
      log::Warn("processes keep appearing in a worker cgroup", {{"cgroup", group.dir.string()}});
    }
  }
}

void WorkerCgroup::Remove() {
  if (groups_.empty()) return;
  KillAll();
  for (Group& group : groups_) {
    group.procs.Reset();
    if (!RemoveGroupDir(group.dir)) {
      log::Warn("cannot remove a worker cgroup",
                {{"cgroup", group.dir.string()}, {"error", Errno(errno)}});
    }
  }
  groups_.clear();
}

}  // namespace edgeflow::runtime
