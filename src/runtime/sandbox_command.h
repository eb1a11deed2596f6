// A worker's environment and the lookup of its program, shared by the sandboxes.
//
// The environment is exactly the function's `env:` plus PATH=/usr/local/bin:/usr/bin:/bin,
// HOME=/tmp (the one writable directory in every sandbox) and LANG=C.UTF-8 (present in every
// Debian libc; interpreters then read and write UTF-8), each unless `env:` sets it. Nothing of the
// node's environment reaches a worker.
//
// The program (command[0]) is looked up before the worker starts, so that a typo is a clear error
// at deploy time ("command not found: pyhton3") rather than an exit status 127 later. The lookup
// works on the sandbox's view of the file system (the host for `process`, /usr and /code for
// `bwrap`), through a function that maps a path of that view to the host path behind it.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace edgeflow::runtime {

inline constexpr const char* kDefaultWorkerPath = "/usr/local/bin:/usr/bin:/bin";

// The function's env with the defaults above added.
std::map<std::string, std::string> WorkerEnvironment(const std::map<std::string, std::string>& env);
// "NAME=value" entries, for execve.
std::vector<std::string> EnvironmentEntries(const std::map<std::string, std::string>& env);

// Maps a path of the sandbox's view to the host path that shows it, or nullopt if the sandbox
// does not show that path.
using ViewToHost =
    std::function<std::optional<std::filesystem::path>(const std::filesystem::path&)>;

// The path (in the sandbox's view) that `program` names:
//  - with a '/': as is if absolute, else relative to `cwd` (the code directory);
//  - without: the first executable file of that name in the directories of `path_env` (relative
//    entries are relative to `cwd`).
// NotFound "command not found: NAME (PATH=...)" or "no such program: ./x (looked for /code/x)".
Result<std::filesystem::path> ResolveCommand(const std::string& program,
                                             const std::filesystem::path& cwd,
                                             const std::string& path_env,
                                             const ViewToHost& view_to_host);

}  // namespace edgeflow::runtime
