#include "runtime/sandbox_bwrap.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <mutex>
#include <system_error>

#include "common/atomic_file.h"
#include "runtime/sandbox_tool.h"

namespace edgeflow::runtime {
namespace {

namespace fs = std::filesystem;

// Top-level directories that hold programs and libraries: symlinks into /usr on a merged-/usr
// system, real directories on an older one.
constexpr const char* kSystemDirs[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};

// /etc entries every worker gets (see the header for why each).
constexpr const char* kEtcAlways[] = {
    "/etc/alternatives", "/etc/ld.so.cache",   "/etc/ld.so.conf", "/etc/ld.so.conf.d",
    "/etc/localtime",    "/etc/nsswitch.conf", "/etc/ssl/certs",  "/etc/ssl/openssl.cnf",
};
// ... and those only a worker with the network needs (name resolution).
constexpr const char* kEtcWithNetwork[] = {"/etc/hosts", "/etc/resolv.conf", "/etc/host.conf",
                                           "/etc/gai.conf"};

bool Exists(const fs::path& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

// The bwrap arguments that show the host's /usr and the system directories.
void AddSystemDirs(std::vector<std::string>* args) {
  args->insert(args->end(), {"--ro-bind", "/usr", "/usr"});
  for (const char* dir : kSystemDirs) {
    std::error_code ec;
    const fs::file_status status = fs::symlink_status(dir, ec);
    if (ec) continue;
    if (fs::is_symlink(status)) {
      const fs::path target = fs::read_symlink(dir, ec);
      if (!ec) args->insert(args->end(), {"--symlink", target.string(), dir});
    } else if (fs::is_directory(status)) {
      args->insert(args->end(), {"--ro-bind", dir, dir});
    }
  }
}

bool UnderOrAt(const fs::path& path, const fs::path& dir) {
  auto p = path.begin();
  for (auto d = dir.begin(); d != dir.end(); ++d, ++p) {
    if (p == path.end() || *p != *d) return false;
  }
  return true;
}

std::string UserName(uid_t uid) {
  if (uid == 0) return "root";
  passwd entry{};
  passwd* found = nullptr;
  char buffer[4096];
  if (::getpwuid_r(uid, &entry, buffer, sizeof buffer, &found) == 0 && found != nullptr) {
    return found->pw_name;
  }
  return "edgeflow";
}

std::string GroupName(gid_t gid) {
  if (gid == 0) return "root";
  group entry{};
  group* found = nullptr;
  char buffer[4096];
  if (::getgrgid_r(gid, &entry, buffer, sizeof buffer, &found) == 0 && found != nullptr) {
    return found->gr_name;
  }
  return "edgeflow";
}

}  // namespace

std::vector<std::string> BwrapArguments(const BwrapSpec& spec) {
  std::vector<std::string> args{"--unshare-all"};
  if (spec.network) args.push_back("--share-net");
  args.insert(args.end(), {"--die-with-parent", "--new-session", "--cap-drop", "ALL"});
  AddSystemDirs(&args);
  for (const char* entry : kEtcAlways) {
    if (Exists(entry)) args.insert(args.end(), {"--ro-bind", entry, entry});
  }
  if (spec.network) {
    for (const char* entry : kEtcWithNetwork) {
      if (Exists(entry)) args.insert(args.end(), {"--ro-bind", entry, entry});
    }
  }
  if (!spec.etc_dir.empty()) {
    args.insert(args.end(), {"--ro-bind", (spec.etc_dir / "passwd").string(), "/etc/passwd"});
    args.insert(args.end(), {"--ro-bind", (spec.etc_dir / "group").string(), "/etc/group"});
    if (!spec.network) {
      args.insert(args.end(), {"--ro-bind", (spec.etc_dir / "hosts").string(), "/etc/hosts"});
    }
  }
  args.insert(args.end(), {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"});
  args.insert(args.end(),
              {"--ro-bind", spec.code_dir.string(), kBwrapCodeDir, "--chdir", kBwrapCodeDir});
  args.push_back("--clearenv");
  for (const auto& [name, value] : spec.env) {
    args.insert(args.end(), {"--setenv", name, value});
  }
  // The program is an absolute path (ResolveCommand), so bwrap cannot take it for an option.
  args.push_back(spec.program);
  args.insert(args.end(), spec.args.begin(), spec.args.end());
  return args;
}

std::optional<fs::path> BwrapViewToHost(const fs::path& code_dir, const fs::path& sandbox_path) {
  const fs::path path = sandbox_path.lexically_normal();
  if (UnderOrAt(path, kBwrapCodeDir)) {
    return code_dir / path.lexically_relative(kBwrapCodeDir);
  }
  if (UnderOrAt(path, "/usr")) return path;
  for (const char* dir : kSystemDirs) {
    if (UnderOrAt(path, dir)) return path;  // the same symlink or bind as on the host
  }
  return std::nullopt;  // /tmp is empty at start; /etc, /proc, /dev hold no programs
}

Status WriteBwrapEtcFiles(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IoError("cannot create " + dir.string() + ": " + ec.message());
  const uid_t uid = ::getuid();
  const gid_t gid = ::getgid();
  const std::string user = UserName(uid);
  const std::string group = GroupName(gid);
  std::string passwd = user + ":x:" + std::to_string(uid) + ":" + std::to_string(gid) + ":" + user +
                       ":/tmp:/usr/sbin/nologin\n";
  std::string groups = group + ":x:" + std::to_string(gid) + ":\n";
  if (uid != 65534) passwd += "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
  if (gid != 65534) groups += "nogroup:x:65534:\n";
  EF_RETURN_IF_ERROR(WriteFileAtomically(dir / "passwd", passwd));
  EF_RETURN_IF_ERROR(WriteFileAtomically(dir / "group", groups));
  return WriteFileAtomically(dir / "hosts",
                             "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
}

Status CheckBwrap() {
  static std::mutex mu;
  static std::optional<Status> answer;
  std::lock_guard lock(mu);
  if (answer.has_value()) return *answer;
  answer = [] {
    auto bwrap = FindTool("bwrap", "bubblewrap");
    if (!bwrap) return Status::Unavailable("sandbox bwrap: " + bwrap.error().message());
    std::vector<std::string> args{"--unshare-all", "--die-with-parent", "--new-session",
                                  "--cap-drop", "ALL"};
    AddSystemDirs(&args);
    args.push_back("/usr/bin/true");
    auto run = RunToolChecked("bwrap", *bwrap, args, std::chrono::seconds(10));
    if (!run) {
      return Status::Unavailable(
          "sandbox bwrap: bubblewrap cannot create a sandbox on this machine (it needs user "
          "namespaces, or root): " +
          run.error().message());
    }
    return Status::Ok();
  }();
  return *answer;
}

}  // namespace edgeflow::runtime
