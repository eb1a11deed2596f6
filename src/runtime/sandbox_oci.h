// The oci sandbox's image side: unpacking a function's image into an OCI runtime bundle, and the
// runtime configuration (config.json) of one worker.
//
// Images: an OCI image layout directory (with index.json; the tag "latest", or the only tag) or a
// `docker save` archive, which skopeo first converts into a layout. `umoci unpack` then makes the
// bundle: rootfs/ plus a config.json that carries the image's user, environment and working
// directory. All workers of a function share that rootfs, read-only.
//
// A worker's config (BuildOciConfig) keeps from the image: process.user, process.env,
// process.cwd; and sets:
//   process      args = the function's command; env = the image's plus the function's (the
//                function wins; PATH added if neither has one); terminal false; no capabilities;
//                noNewPrivileges; RLIMIT_NOFILE 1024, RLIMIT_CORE 0
//   root         the shared rootfs (absolute path), read-only
//   mounts       runc's default set (`runc spec`: /proc, /dev tmpfs, /dev/pts, /dev/shm,
//                /dev/mqueue, /sys read-only, /sys/fs/cgroup read-only) plus a private tmpfs /tmp
//                (mode 1777; its pages count against the memory limit); with the network also
//                the host's /etc/resolv.conf and /etc/hosts, read-only
//   namespaces   pid, ipc, uts, mount, and network unless `network: true`
//   resources    memory.limit (and swap = the same, i.e. no swap, where cgroup v1 accounts swap),
//                cpu quota/period (period 100 ms), pids.limit; all devices denied but runc's
//                defaults (/dev/null, zero, full, random, urandom, tty, ptmx)
//   cgroupsPath  /edgeflow/<instance>, next to the process and bwrap workers' groups
//   maskedPaths, readonlyPaths   as `runc spec`
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "runtime/pipeline_spec.h"

namespace edgeflow::runtime {

// The tag to unpack from an OCI layout's index.json: "latest" if present, else the only one.
Result<std::string> ChooseImageTag(std::string_view index_json);

// Unpacks `image` (a layout directory or a docker archive file) into `bundle_dir`, which must not
// exist. `scratch_dir` holds the converted layout of an archive (replaced if present).
Status UnpackOciImage(const std::filesystem::path& image, const std::filesystem::path& scratch_dir,
                      const std::filesystem::path& bundle_dir);

struct OciWorkerConfig {
  std::filesystem::path rootfs;            // absolute
  std::vector<std::string> args;           // the command
  std::map<std::string, std::string> env;  // the function's env
  bool network = false;
  FunctionLimits limits;
  bool limit_swap = false;  // cgroup v1 with swap accounting (memsw)
  std::string cgroups_path;
};

// The config.json of one worker, from the bundle's config (`image_config`, may be empty).
nlohmann::json BuildOciConfig(const nlohmann::json& image_config, const OciWorkerConfig& worker);

// Whether the cgroup v1 memory hierarchy accounts swap (so that swap can be limited too).
bool CgroupV1AccountsSwap();

}  // namespace edgeflow::runtime
