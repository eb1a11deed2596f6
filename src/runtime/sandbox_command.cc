#include "runtime/sandbox_command.h"

#include <unistd.h>

#include <system_error>

namespace edgeflow::runtime {
namespace {

namespace fs = std::filesystem;

bool IsExecutableFile(const fs::path& host_path) {
  std::error_code ec;
  return fs::is_regular_file(host_path, ec) && ::access(host_path.c_str(), X_OK) == 0;
}

}  // namespace

std::map<std::string, std::string> WorkerEnvironment(
    const std::map<std::string, std::string>& env) {
  std::map<std::string, std::string> result = env;
  result.try_emplace("PATH", kDefaultWorkerPath);
  result.try_emplace("HOME", "/tmp");
  result.try_emplace("LANG", "C.UTF-8");
  return result;
}

std::vector<std::string> EnvironmentEntries(const std::map<std::string, std::string>& env) {
  std::vector<std::string> entries;
  entries.reserve(env.size());
  for (const auto& [name, value] : env) entries.push_back(name + "=" + value);
  return entries;
}

Result<fs::path> ResolveCommand(const std::string& program, const fs::path& cwd,
                                const std::string& path_env, const ViewToHost& view_to_host) {
  if (program.empty()) return Error(Status::InvalidArgument("the command is empty"));
  if (program.find('/') != std::string::npos) {
    const fs::path view_path =
        (fs::path(program).is_absolute() ? fs::path(program) : cwd / program).lexically_normal();
    const std::optional<fs::path> host = view_to_host(view_path);
    std::error_code ec;
    if (!host.has_value() || !fs::exists(*host, ec)) {
      return Error(Status::NotFound("no such program: " + program + " (looked for " +
                                    view_path.string() + ")"));
    }
    // Not executable, a directory, ...: execve says exactly what is wrong.
    return view_path;
  }
  size_t start = 0;
  while (start <= path_env.size()) {
    size_t end = path_env.find(':', start);
    if (end == std::string::npos) end = path_env.size();
    fs::path dir = path_env.substr(start, end - start);
    if (dir.empty()) dir = ".";
    if (dir.is_relative()) dir = cwd / dir;
    const fs::path view_path = (dir / program).lexically_normal();
    const std::optional<fs::path> host = view_to_host(view_path);
    if (host.has_value() && IsExecutableFile(*host)) return view_path;
    start = end + 1;
  }
  return Error(Status::NotFound("command not found: " + program + " (PATH=" + path_env + ")"));
}

}  // namespace edgeflow::runtime
