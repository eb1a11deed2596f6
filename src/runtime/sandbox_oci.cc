#include "runtime/sandbox_oci.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <system_error>

#include "runtime/sandbox_cgroup.h"
#include "runtime/sandbox_command.h"
#include "runtime/sandbox_fd.h"
#include "runtime/sandbox_tool.h"

namespace edgeflow::runtime {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Unpacking or converting a large image takes a while on a slow edge device's storage.
constexpr std::chrono::minutes kImageToolTimeout{10};
constexpr uint64_t kCpuPeriodUs = 100'000;

// skopeo and umoci take "transport:path:tag" / "path:tag", so a path with ':' is ambiguous.
Status CheckToolPath(const fs::path& path) {
  if (path.string().find(':') != std::string::npos) {
    return Status::InvalidArgument("the path " + path.string() +
                                   " contains ':', which skopeo and umoci cannot take");
  }
  return Status::Ok();
}

json Mount(std::string destination, std::string type, std::string source,
           std::vector<std::string> options = {}) {
  json mount = {{"destination", std::move(destination)},
                {"type", std::move(type)},
                {"source", std::move(source)}};
  if (!options.empty()) mount["options"] = std::move(options);
  return mount;
}

// The image's "NAME=value" list with the function's variables put over it.
std::vector<std::string> MergeEnvironment(const json& image_env,
                                          const std::map<std::string, std::string>& env) {
  std::vector<std::pair<std::string, std::string>> merged;
  if (image_env.is_array()) {
    for (const json& entry : image_env) {
      if (!entry.is_string()) continue;
      const std::string text = entry.get<std::string>();
      const size_t eq = text.find('=');
      if (eq == std::string::npos || eq == 0) continue;
      merged.emplace_back(text.substr(0, eq), text.substr(eq + 1));
    }
  }
  const auto set = [&](const std::string& name, const std::string& value, bool override) {
    for (auto& [n, v] : merged) {
      if (n == name) {
        if (override) v = value;
        return;
      }
    }
    merged.emplace_back(name, value);
  };
  for (const auto& [name, value] : env) set(name, value, true);
  // runc looks the program up in the container's PATH.
  set("PATH", kDefaultWorkerPath, false);
  std::vector<std::string> entries;
  for (const auto& [name, value] : merged) entries.push_back(name + "=" + value);
  return entries;
}

}  // namespace

Result<std::string> ChooseImageTag(std::string_view index_json) {
  const json index = json::parse(index_json, nullptr, /*allow_exceptions=*/false);
  if (!index.is_object() || !index.contains("manifests") || !index["manifests"].is_array()) {
    return Error(Status::InvalidArgument("index.json is not an OCI image index"));
  }
  std::vector<std::string> tags;
  for (const json& manifest : index["manifests"]) {
    if (!manifest.is_object() || !manifest.contains("annotations")) continue;
    const json& annotations = manifest["annotations"];
    if (!annotations.is_object()) continue;
    const auto name = annotations.find("org.opencontainers.image.ref.name");
    if (name != annotations.end() && name->is_string()) tags.push_back(name->get<std::string>());
  }
  if (std::find(tags.begin(), tags.end(), "latest") != tags.end()) return std::string("latest");
  if (tags.size() == 1) return tags.front();
  if (tags.empty()) return Error(Status::InvalidArgument("the image has no tagged manifest"));
  std::string list;
  for (const std::string& tag : tags) list += (list.empty() ? "" : ", ") + tag;
  return Error(Status::InvalidArgument("the image has several tags and none is 'latest': " + list));
}

Status UnpackOciImage(const fs::path& image, const fs::path& scratch_dir,
                      const fs::path& bundle_dir) {
  std::error_code ec;
  fs::path layout;
  if (fs::is_directory(image, ec)) {
    if (!fs::exists(image / "index.json", ec)) {
      return Status::InvalidArgument(image.string() +
                                     " is not an OCI image layout (it has no index.json)");
    }
    layout = image;
  } else if (fs::is_regular_file(image, ec)) {
    auto skopeo = FindTool("skopeo", "skopeo");
    if (!skopeo) return skopeo.error();
    EF_RETURN_IF_ERROR(CheckToolPath(image));
    EF_RETURN_IF_ERROR(CheckToolPath(scratch_dir));
    layout = scratch_dir / "image";
    fs::remove_all(layout, ec);
    fs::create_directories(scratch_dir, ec);
    // The archive is a local file the deployer gave us; signature policies concern registries.
    auto copied = RunToolChecked(
        "skopeo copy (converting " + image.string() + " from a docker save archive)", *skopeo,
        {"--insecure-policy", "copy", "--quiet", "docker-archive:" + image.string(),
         "oci:" + layout.string() + ":latest"},
        kImageToolTimeout);
    if (!copied) return copied.error();
  } else {
    return Status::NotFound("no such image: " + image.string());
  }
  auto tag = ChooseImageTag(ReadWholeFile(layout / "index.json"));
  if (!tag) {
    return Status::InvalidArgument(image.string() + ": " + tag.error().message());
  }
  auto umoci = FindTool("umoci", "umoci");
  if (!umoci) return umoci.error();
  EF_RETURN_IF_ERROR(CheckToolPath(layout));
  std::vector<std::string> args{"unpack"};
  // Without root, umoci cannot chown the files to the image's owners.
  if (::geteuid() != 0) args.push_back("--rootless");
  args.insert(args.end(), {"--image", layout.string() + ":" + *tag, bundle_dir.string()});
  auto unpacked =
      RunToolChecked("umoci unpack of " + image.string(), *umoci, args, kImageToolTimeout);
  if (!unpacked) return unpacked.error();
  return Status::Ok();
}

json BuildOciConfig(const json& image_config, const OciWorkerConfig& worker) {
  const json empty = json::object();
  const json& image_process = image_config.is_object() && image_config.contains("process") &&
                                      image_config["process"].is_object()
                                  ? image_config["process"]
                                  : empty;

  json process = json::object();
  process["terminal"] = false;
  process["user"] = image_process.contains("user") && image_process["user"].is_object()
                        ? image_process["user"]
                        : json{{"uid", 0}, {"gid", 0}};
  process["args"] = worker.args;
  process["env"] =
      MergeEnvironment(image_process.contains("env") ? image_process["env"] : json(), worker.env);
  process["cwd"] = image_process.contains("cwd") && image_process["cwd"].is_string() &&
                           !image_process["cwd"].get<std::string>().empty()
                       ? image_process["cwd"]
                       : json("/");
  process["rlimits"] = json::array({
      {{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}},
      {{"type", "RLIMIT_CORE"}, {"hard", 0}, {"soft", 0}},
  });
  process["noNewPrivileges"] = true;

  json mounts = json::array({
      Mount("/proc", "proc", "proc"),
      Mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      Mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      Mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      Mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      Mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      Mount("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}),
      Mount("/tmp", "tmpfs", "tmpfs",
            {"nosuid", "nodev", "mode=1777", "size=" + std::to_string(worker.limits.memory_bytes)}),
  });
  if (worker.network) {
    for (const char* file : {"/etc/resolv.conf", "/etc/hosts"}) {
      std::error_code ec;
      if (fs::exists(file, ec)) mounts.push_back(Mount(file, "bind", file, {"rbind", "ro"}));
    }
  }

  json namespaces =
      json::array({{{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}}, {{"type", "mount"}}});
  if (!worker.network) namespaces.push_back({{"type", "network"}});

  const auto limit = static_cast<int64_t>(worker.limits.memory_bytes);
  json memory = {{"limit", limit}};
  if (worker.limit_swap) memory["swap"] = limit;  // memory + swap: no swap at all
  const auto quota = std::max<int64_t>(
      1000, static_cast<int64_t>(std::llround(worker.limits.cpus * kCpuPeriodUs)));
  json resources = {
      {"devices", json::array({{{"allow", false}, {"access", "rwm"}}})},
      {"memory", memory},
      {"cpu", {{"quota", quota}, {"period", kCpuPeriodUs}}},
      {"pids", {{"limit", worker.limits.pids}}},
  };

  json linux = {
      {"resources", resources},
      {"cgroupsPath", worker.cgroups_path},
      {"namespaces", namespaces},
      {"maskedPaths",
       {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
        "/proc/scsi"}},
      {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
  };

  return json{
      {"ociVersion", "1.0.2"},
      {"process", process},
      {"root", {{"path", worker.rootfs.string()}, {"readonly", true}}},
      {"hostname", "edgeflow"},
      {"mounts", mounts},
      {"linux", linux},
  };
}

bool CgroupV1AccountsSwap() {
  for (const CgroupMount& mount : ParseCgroupMounts(ReadWholeFile("/proc/self/mountinfo"))) {
    if (mount.v2) continue;
    if (std::find(mount.controllers.begin(), mount.controllers.end(), "memory") !=
        mount.controllers.end()) {
      std::error_code ec;
      return fs::exists(mount.mount_point / "memory.memsw.limit_in_bytes", ec);
    }
  }
  return false;
}

}  // namespace edgeflow::runtime
