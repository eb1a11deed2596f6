// The bwrap sandbox: the bubblewrap command line for one worker, and the check that bubblewrap
// works on this machine.
//
// What the worker sees (bwrap 0.8, Debian's bubblewrap):
//   --unshare-all            new user, pid, ipc, uts, cgroup, mount and network namespaces; the
//                            network namespace has only its own loopback device, so the worker
//                            reaches nothing outside, not even the host's 127.0.0.1
//   --share-net              only with `network: true`: the host's network
//   --die-with-parent        the sandbox dies with bwrap (which dies with the node)
//   --new-session            no controlling terminal (TIOCSTI injection)
//   --cap-drop ALL           as root, bwrap would otherwise keep every capability inside
//   /usr                     the host's, read-only; /bin /sbin /lib /lib32 /lib64 /libx32 as the
//                            host has them (symlinks into /usr on a merged-/usr Debian, else
//                            read-only binds)
//   /etc                     only what programs and interpreters need to start and that tells
//                            nothing about the host: /etc/alternatives (Debian's symlinks for
//                            awk, python, ...), the dynamic loader's cache and configuration,
//                            localtime, nsswitch.conf, ssl/certs and ssl/openssl.cnf (not
//                            ssl/private); with the network also the host's hosts, resolv.conf,
//                            host.conf and gai.conf. /etc/passwd and /etc/group are made for the
//                            worker and list only its own user (root or the node's) and nobody,
//                            so getpwuid() works (Python, many tools) without showing the host's
//                            accounts; without the network /etc/hosts is made too (localhost
//                            only), since the host's may name its addresses.
//   /proc, /dev              a new procfs (of the new pid namespace) and a minimal /dev
//   /tmp                     a private tmpfs, writable; HOME is /tmp
//   /code                    the code snapshot, read-only, the working directory
//   environment              exactly the worker's (--clearenv, then --setenv each variable),
//                            plus PWD=/code, which bwrap sets itself after --chdir
// Nothing else of the host exists in the sandbox (no /home, /root, /var, /run, /sys).
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace edgeflow::runtime {

inline constexpr const char* kBwrapCodeDir = "/code";

struct BwrapSpec {
  std::filesystem::path code_dir;  // host directory shown read-only at /code
  bool network = false;
  std::map<std::string, std::string> env;  // the worker's whole environment
  std::filesystem::path etc_dir;           // passwd, group, hosts made by WriteBwrapEtcFiles
  std::string program;                     // path inside the sandbox (ResolveCommand)
  std::vector<std::string> args;           // argv[1..]
};

// The arguments after "bwrap" for `spec`.
std::vector<std::string> BwrapArguments(const BwrapSpec& spec);

// The host path behind a path of the sandbox's view, or nullopt if the sandbox does not show it
// (for ResolveCommand).
std::optional<std::filesystem::path> BwrapViewToHost(const std::filesystem::path& code_dir,
                                                     const std::filesystem::path& sandbox_path);

// Writes the worker's passwd, group and hosts files into `dir` (created if missing).
Status WriteBwrapEtcFiles(const std::filesystem::path& dir);

// Whether bubblewrap is installed and starts a trivial sandbox here. The first answer is kept.
Status CheckBwrap();

}  // namespace edgeflow::runtime
