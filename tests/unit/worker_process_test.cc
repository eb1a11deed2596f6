// Workers in each sandbox, started for real: bubblewrap, runc, umoci and skopeo as installed,
// cgroups when the tests run as root. Tests that need root skip with a message otherwise; CI runs
// them as root. The oci tests build a tiny image once per test binary (sh, cat, env, sleep, bash
// and their shared libraries copied from the host into an umoci-made layout).
#include "runtime/worker_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/sandbox_bwrap.h"
#include "runtime/sandbox_cgroup.h"
#include "runtime/sandbox_command.h"
#include "runtime/sandbox_fd.h"
#include "runtime/sandbox_oci.h"
#include "runtime/sandbox_tool.h"
#include "support/temp_dir.h"

namespace edgeflow::runtime {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using std::chrono::milliseconds;
using test_support::TempDir;

bool IsRoot() { return ::geteuid() == 0; }

// Reads `fd` until `done(text so far)` holds, EOF, or `timeout`; returns what was read.
std::string ReadUntil(int fd, const std::function<bool(const std::string&)>& done,
                      milliseconds timeout, bool* eof = nullptr) {
  std::string text;
  if (eof != nullptr) *eof = false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done(text)) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buffer[4096];
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (eof != nullptr) *eof = true;
      break;
    }
    text.append(buffer, static_cast<size_t>(n));
  }
  return text;
}

std::string ReadUntilContains(int fd, std::string_view needle, milliseconds timeout = 5s) {
  return ReadUntil(
      fd, [&](const std::string& text) { return text.find(needle) != std::string::npos; }, timeout);
}

std::string ReadToEof(int fd, milliseconds timeout = 5s, bool* eof = nullptr) {
  return ReadUntil(
      fd, [](const std::string&) { return false; }, timeout, eof);
}

void WriteAll(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    ASSERT_GT(n, 0) << std::strerror(errno);
    text.remove_prefix(static_cast<size_t>(n));
  }
}

std::set<std::string> Lines(const std::string& text) {
  std::set<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.insert(line);
  }
  return lines;
}

bool EndedBySigkill(const ExitStatus& status) {
  // bwrap and runc report a killed child as their own exit status 128+9.
  return status.term_signal == SIGKILL || status.exit_code == 128 + SIGKILL;
}

// Whether a process with `arg` among its arguments exists (zombies have no arguments).
bool ProcessWithArgumentExists(const std::string& arg) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    // The process may end while it is read: no std::ifstream, which would throw.
    const std::string cmdline = ReadWholeFile(entry.path() / "cmdline");
    size_t start = 0;
    while (start < cmdline.size()) {
      size_t end = cmdline.find('\0', start);
      if (end == std::string::npos) end = cmdline.size();
      if (cmdline.compare(start, end - start, arg) == 0) return true;
      start = end + 1;
    }
  }
  return false;
}

bool WaitFor(const std::function<bool()>& condition, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// A TCP listener on the host's 127.0.0.1.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0 && ::listen(fd_, 8) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~Listener() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// ---- the oci test image ----

Status RunChecked(std::string_view what, const std::string& program,
                  const std::vector<std::string>& args) {
  auto run = RunToolChecked(what, program, args, 60s);
  return run ? Status::Ok() : run.error();
}

// Where `host` goes in a rootfs that has the host's top-level symlinks (/lib64 -> usr/lib64).
fs::path InRootfs(const fs::path& rootfs, const fs::path& host) {
  auto it = host.begin();
  ++it;  // "/"
  fs::path top = fs::path("/") / *it;
  fs::path rest;
  for (++it; it != host.end(); ++it) rest /= *it;
  std::error_code ec;
  if (fs::is_symlink(top, ec)) {
    const fs::path target = fs::read_symlink(top, ec);
    top = target.is_absolute() ? target : fs::path("/") / target;
  }
  return rootfs / (top / rest).relative_path();
}

Status CopyIntoRootfs(const fs::path& rootfs, const fs::path& host) {
  const fs::path target = InRootfs(rootfs, host);
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  fs::copy_file(host, target, fs::copy_options::overwrite_existing, ec);  // follows symlinks
  if (ec) return Status::IoError("copy " + host.string() + ": " + ec.message());
  return Status::Ok();
}

// EF_RETURN_IF_ERROR for functions that return a Result.
#define RETURN_IF_FAILED(expr)                \
  do {                                        \
    ::edgeflow::Status failed_ = (expr);      \
    if (!failed_.ok()) return Error(failed_); \
  } while (false)

Result<fs::path> BuildTestImage(const fs::path& dir) {
  auto umoci = FindTool("umoci", "umoci");
  if (!umoci) return Error(umoci.error());
  const fs::path layout = dir / "layout";
  const fs::path unpacked = dir / "unpacked";
  const std::string image = layout.string() + ":latest";
  RETURN_IF_FAILED(RunChecked("umoci init", *umoci, {"init", "--layout", layout.string()}));
  RETURN_IF_FAILED(RunChecked("umoci new", *umoci, {"new", "--image", image}));
  RETURN_IF_FAILED(
      RunChecked("umoci unpack", *umoci, {"unpack", "--image", image, unpacked.string()}));
  const fs::path rootfs = unpacked / "rootfs";
  std::error_code ec;
  for (const char* top : {"/bin", "/sbin", "/lib", "/lib64"}) {
    if (fs::is_symlink(top, ec)) {
      fs::create_symlink(fs::read_symlink(top, ec), rootfs / fs::path(top).relative_path(), ec);
    }
  }
  for (const char* program : {"sh", "cat", "env", "sleep", "bash"}) {
    const fs::path host = fs::path("/usr/bin") / program;
    RETURN_IF_FAILED(CopyIntoRootfs(rootfs, host));
    auto ldd = RunToolChecked("ldd", "/usr/bin/ldd", {host.string()}, 10s);
    if (!ldd) return Error(ldd.error());
    std::istringstream lines(ldd->out);
    std::string token;
    while (lines >> token) {
      if (token.starts_with('/')) RETURN_IF_FAILED(CopyIntoRootfs(rootfs, token));
    }
  }
  RETURN_IF_FAILED(
      RunChecked("umoci repack", *umoci, {"repack", "--image", image, unpacked.string()}));
  RETURN_IF_FAILED(RunChecked("umoci config", *umoci,
                              {"config", "--image", image, "--config.env=EF_IMAGE_VAR=image"}));
  return layout;
}

// Built once per test binary, removed at exit.
const Result<fs::path>& TestImage() {
  static std::unique_ptr<TempDir> dir;
  static std::optional<Result<fs::path>> layout;
  if (!layout.has_value()) {
    dir = std::make_unique<TempDir>("edgeflow-wp-image-");
    layout = BuildTestImage(dir->path());
  }
  return *layout;
}


std::string NextInstanceId() {
  static int counter = 0;
  return "wp-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// ---- every sandbox ----

class WorkerProcessSandboxTest : public ::testing::TestWithParam<SandboxKind> {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);
    kind_ = GetParam();
    if (kind_ == SandboxKind::kBwrap) {
      const Status check = CheckSandbox(SandboxKind::kBwrap);
      if (!check.ok() && !IsRoot()) GTEST_SKIP() << "bwrap cannot run here: " << check.ToString();
      ASSERT_TRUE(check.ok()) << check.ToString();
    }
    if (kind_ == SandboxKind::kOci) {
      if (!IsRoot()) GTEST_SKIP() << "oci workers need root (runc and cgroups)";
      const Status check = CheckSandbox(SandboxKind::kOci);
      ASSERT_TRUE(check.ok()) << check.ToString();
      ASSERT_TRUE(TestImage().has_value()) << TestImage().error().ToString();
      image_ = *TestImage();
    } else {
      fs::create_directories(dir_.Sub("src"));
      std::ofstream(dir_.Sub("src") / "run.sh") << "#!/bin/sh\necho \"run.sh $*\"\n";
      fs::permissions(dir_.Sub("src") / "run.sh",
                      fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
    }
    auto prepared = PrepareCode(Function({"true"}), dir_.path(), dir_.Sub("work"));
    ASSERT_TRUE(prepared.has_value()) << prepared.error().ToString();
    code_ = *prepared;
  }

  FunctionSpec Function(std::vector<std::string> command) const {
    FunctionSpec function;
    function.name = "wp";
    function.sandbox = kind_;
    function.command = std::move(command);
    if (kind_ == SandboxKind::kOci) {
      function.image = image_.string();
    } else {
      function.code_dir = "src";
    }
    function.limits.memory_bytes = 128 << 20;
    return function;
  }

  Result<std::unique_ptr<WorkerProcess>> Start(const FunctionSpec& function) {
    return WorkerProcess::Start(code_, function, {NextInstanceId(), dir_.Sub("state")});
  }

  SandboxKind kind_ = SandboxKind::kProcess;
  TempDir dir_{"edgeflow-wp-"};
  fs::path image_;
  PreparedCode code_;
};

TEST_P(WorkerProcessSandboxTest, EchoesStdinAndCapturesStderr) {
  auto worker = Start(Function({"sh", "-c", "echo to-stderr >&2; exec cat"}));
  ASSERT_TRUE(worker.has_value()) << worker.error().ToString();
  EXPECT_GT((*worker)->pid(), 0);
  WriteAll((*worker)->stdin_fd(), "hello worker\n");
  EXPECT_EQ(ReadUntilContains((*worker)->stdout_fd(), "\n"), "hello worker\n");
  EXPECT_EQ(ReadUntilContains((*worker)->stderr_fd(), "\n"), "to-stderr\n");
  // EOF on stdin ends cat, and so the worker.
  (*worker)->CloseStdin();
  EXPECT_EQ((*worker)->stdin_fd(), -1);
  auto status = (*worker)->Wait(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->exit_code, 0) << status->ToString();
  EXPECT_EQ(status->term_signal, 0);
}

TEST_P(WorkerProcessSandboxTest, ReportsTheExitStatus) {
  auto worker = Start(Function({"sh", "-c", "exit 3"}));
  ASSERT_TRUE(worker.has_value()) << worker.error().ToString();
  auto status = (*worker)->Wait(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->exit_code, 3);
  EXPECT_EQ(status->ToString(), "exit status 3");
  // Reaped once; asking again gives the same answer.
  EXPECT_EQ((*worker)->TryWait()->exit_code, 3);
}

TEST_P(WorkerProcessSandboxTest, KillEndsTheWorkerAndReportsHow) {
  auto worker = Start(Function({"cat"}));
  ASSERT_TRUE(worker.has_value()) << worker.error().ToString();
  EXPECT_FALSE((*worker)->TryWait().has_value());
  EXPECT_FALSE((*worker)->Wait(50ms).has_value());
  (*worker)->Kill();
  auto status = (*worker)->TryWait();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(EndedBySigkill(*status)) << status->ToString();
  (*worker)->Kill();  // idempotent
  EXPECT_EQ((*worker)->Wait(0ms)->ToString(), status->ToString());
  bool eof = false;
  ReadToEof((*worker)->stdout_fd(), 2s, &eof);
  EXPECT_TRUE(eof);
  if (kind_ != SandboxKind::kProcess) {
    // The per-instance state is gone with the worker.
    EXPECT_TRUE(fs::is_empty(dir_.Sub("state")) ||
                (fs::exists(dir_.Sub("state") / "runc") &&
                 std::distance(fs::directory_iterator(dir_.Sub("state")), {}) == 1));
  }
}

TEST_P(WorkerProcessSandboxTest, ACommandThatIsNotFoundIsAStartError) {
  auto worker = Start(Function({"no-such-program-xyz", "arg"}));
  ASSERT_FALSE(worker.has_value());
  EXPECT_EQ(worker.error().code(), ErrorCode::kNotFound) << worker.error().ToString();
  EXPECT_NE(worker.error().message().find("no-such-program-xyz"), std::string::npos)
      << worker.error().ToString();
  EXPECT_NE(worker.error().message().find("function 'wp'"), std::string::npos);
  if (kind_ != SandboxKind::kOci) {
    EXPECT_NE(worker.error().message().find("command not found: no-such-program-xyz"),
              std::string::npos)
        << worker.error().ToString();
    auto relative = Start(Function({"./missing.sh"}));
    ASSERT_FALSE(relative.has_value());
    EXPECT_NE(relative.error().message().find("no such program: ./missing.sh"), std::string::npos)
        << relative.error().ToString();
  } else {
    EXPECT_NE(worker.error().message().find("executable file not found"), std::string::npos)
        << worker.error().ToString();
  }
  // Nothing is left behind.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_.Sub("state"), ec)) {
    EXPECT_EQ(entry.path().filename(), "runc") << entry.path();
  }
}

TEST_P(WorkerProcessSandboxTest, RunsTheCodeDirectoryOrImage) {
  if (kind_ == SandboxKind::kOci) {
    auto worker = Start(Function({"sh", "-c", "pwd; ls; echo done"}));
    ASSERT_TRUE(worker.has_value()) << worker.error().ToString();
    // No ls in the image: a clean "not found" from sh, and the image's working directory.
    EXPECT_EQ(ReadUntilContains((*worker)->stdout_fd(), "done\n"), "/\ndone\n");
    return;
  }
  auto worker = Start(Function({"./run.sh", "a", "b"}));
  ASSERT_TRUE(worker.has_value()) << worker.error().ToString();
  EXPECT_EQ(ReadToEof((*worker)->stdout_fd()), "run.sh a b\n");
  auto pwd = Start(Function({"pwd"}));
  ASSERT_TRUE(pwd.has_value()) << pwd.error().ToString();
  EXPECT_EQ(ReadToEof((*pwd)->stdout_fd()),
            (kind_ == SandboxKind::kBwrap ? std::string("/code") : code_.code_dir.string()) + "\n");
}

TEST_P(WorkerProcessSandboxTest, EnvironmentIsExactlyTheFunctionsPlusDefaults) {
  FunctionSpec function = Function({"env"});
  function.env = {{"A", "1"}, {"B", "two words"}, {"LANG", "C"}};
  ::setenv("EF_NODE_SECRET", "must-not-leak", 1);
  auto worker = Start(function);
  ::unsetenv("EF_NODE_SECRET");
  ASSERT_TRUE(worker.has_value()) << worker.error().ToString();
  const std::set<std::string> env = Lines(ReadToEof((*worker)->stdout_fd()));
  if (kind_ == SandboxKind::kOci) {
    // The image's environment (umoci's defaults and EF_IMAGE_VAR) plus the function's; runc adds
    // HOME from the image's passwd (there is none: "/").
    const std::set<std::string> expected{
        "A=1",
        "B=two words",
        "LANG=C",
        "EF_IMAGE_VAR=image",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "TERM=xterm",
        "HOME=/"};
    EXPECT_EQ(env, expected);
  } else {
    std::set<std::string> expected{"A=1", "B=two words", "LANG=C", "HOME=/tmp",
                                   "PATH=/usr/local/bin:/usr/bin:/bin"};
    if (kind_ == SandboxKind::kBwrap) expected.insert("PWD=/code");  // bwrap sets it (--chdir)
    EXPECT_EQ(env, expected);
  }
}

TEST_P(WorkerProcessSandboxTest, KillReachesEveryProcessOfTheWorker) {
  // A background loop holds stdout: EOF proves that it is dead too.
  auto worker = Start(Function({"sh", "-c", "(while :; do echo tick; sleep 0.05; done) & wait"}));
  ASSERT_TRUE(worker.has_value()) << worker.error().ToString();
  EXPECT_NE(ReadUntilContains((*worker)->stdout_fd(), "tick"), "");
  (*worker)->Kill();
  bool eof = false;
  ReadToEof((*worker)->stdout_fd(), 3s, &eof);
  EXPECT_TRUE(eof) << "a process of the worker survived Kill()";

  if (kind_ == SandboxKind::kProcess && IsRoot()) {
    // A child that left the process group (setsid) is still in the worker's cgroup.
    auto escaped = Start(
        Function({"sh", "-c", "setsid sh -c 'while :; do echo tick; sleep 0.05; done' & wait"}));
    ASSERT_TRUE(escaped.has_value()) << escaped.error().ToString();
    EXPECT_NE(ReadUntilContains((*escaped)->stdout_fd(), "tick"), "");
    (*escaped)->Kill();
    ReadToEof((*escaped)->stdout_fd(), 3s, &eof);
    EXPECT_TRUE(eof) << "a setsid child escaped Kill()";
  }
}

TEST_P(WorkerProcessSandboxTest, WhatTheWorkerLeavesRunningDiesWithIt) {
  // The worker's main process exits (when told to) while its background child runs on; the
  // child must not outlive it.
  auto worker = Start(
      Function({"sh", "-c", "(while :; do echo tick; sleep 0.05; done) & read line; exit 0"}));
  ASSERT_TRUE(worker.has_value()) << worker.error().ToString();
  EXPECT_NE(ReadUntilContains((*worker)->stdout_fd(), "tick"), "");
  WriteAll((*worker)->stdin_fd(), "exit\n");
  auto status = (*worker)->Wait(5s);
  ASSERT_TRUE(status.has_value());
  bool eof = false;
  ReadToEof((*worker)->stdout_fd(), 3s, &eof);
  EXPECT_TRUE(eof);
}

TEST_P(WorkerProcessSandboxTest, MemoryLimitKillsTheWorker) {
  // Doubling a shell string 28 times needs 256 MiB; the limit is 32 MiB.
  FunctionSpec function = Function(
      {"sh", "-c", "i=0; s=x; while [ $i -lt 28 ]; do s=$s$s; i=$((i+1)); done; echo survived"});
  function.limits.memory_bytes = 32 << 20;
  auto worker = Start(function);
  ASSERT_TRUE(worker.has_value()) << worker.error().ToString();
  auto status = (*worker)->Wait(10s);
  ASSERT_TRUE(status.has_value()) << "the worker is still running";
  if (IsRoot()) {
    EXPECT_TRUE(EndedBySigkill(*status)) << "not the cgroup's OOM kill: " << status->ToString();
  } else {
    // RLIMIT_AS: the shell's allocation fails and it exits with an error.
    EXPECT_NE(status->exit_code, 0) << status->ToString();
  }
  EXPECT_EQ(ReadToEof((*worker)->stdout_fd(), 1s).find("survived"), std::string::npos);
}

TEST_P(WorkerProcessSandboxTest, PidsLimitBoundsForks) {
  if (!IsRoot()) GTEST_SKIP() << "the pids limit needs a cgroup (root)";
  FunctionSpec function = Function(
      {"sh", "-c", "i=0; while [ $i -lt 50 ]; do sleep 5 & i=$((i+1)); done; echo spawned all"});
  function.limits.pids = 8;
  auto worker = Start(function);
  ASSERT_TRUE(worker.has_value()) << worker.error().ToString();
  auto status = (*worker)->Wait(5s);
  ASSERT_TRUE(status.has_value()) << "the worker is still running";
  EXPECT_NE(status->exit_code, 0) << status->ToString();
  EXPECT_EQ(ReadToEof((*worker)->stdout_fd(), 1s).find("spawned all"), std::string::npos);
  EXPECT_NE(ReadToEof((*worker)->stderr_fd(), 1s).find("fork"), std::string::npos);
}

TEST_P(WorkerProcessSandboxTest, TheWorkerDiesWithTheNode) {
  // A forked child plays the node: it starts a worker and dies without stopping it.
  const std::string marker = "7777." + std::to_string(::getpid()) + std::to_string(int(kind_));
  const std::string id = NextInstanceId();
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  const pid_t node = ::fork();
  ASSERT_GE(node, 0);
  if (node == 0) {
    ::close(ready[0]);
    auto worker = WorkerProcess::Start(
        code_, Function({"sh", "-c", "echo up; exec sleep " + marker}), {id, dir_.Sub("state")});
    if (!worker.has_value()) ::_exit(2);
    char c;
    if (::read((*worker)->stdout_fd(), &c, 1) != 1) ::_exit(3);
    (void)!::write(ready[1], "x", 1);
    ::_exit(0);  // no destructors: the worker is not stopped
  }
  ::close(ready[1]);
  char c;
  EXPECT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(node, &status, 0), node);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the node side failed: " << status;
  // Bounded generously: the kill is immediate, but a loaded 2-core machine may take a while to
  // schedule the dying processes' exits.
  EXPECT_TRUE(WaitFor([&] { return !ProcessWithArgumentExists(marker); }, 15s))
      << "the worker outlived the node";
  if (kind_ != SandboxKind::kOci && IsRoot()) {
    // Nobody removes the cgroups of a dead node's workers; they must be empty, though.
    for (const CgroupMount& mount : ParseCgroupMounts(ReadWholeFile("/proc/self/mountinfo"))) {
      const fs::path group = mount.mount_point / "edgeflow" / id;
      if (!fs::exists(group)) continue;
      EXPECT_TRUE(WaitFor([&] { return ::rmdir(group.c_str()) == 0; }, 2s))
          << group << " still has processes";
    }
  }
  if (kind_ == SandboxKind::kOci) {
    // The watchdog removed the container and its bundle too.
    EXPECT_TRUE(WaitFor(
        [&] {
          std::error_code ec;
          for (const auto& entry : fs::directory_iterator(dir_.Sub("state"), ec)) {
            if (entry.path().filename() != "runc") return false;
          }
          for (const auto& entry : fs::directory_iterator(dir_.Sub("state") / "runc", ec)) {
            (void)entry;
            return false;
          }
          return true;
        },
        5s));
  }
}

// What only the isolating sandboxes promise (the process sandbox has the host's file system and
// network, by design).
class WorkerProcessIsolationTest : public WorkerProcessSandboxTest {};

TEST_P(WorkerProcessIsolationTest, FilesAreReadOnlyButTmpIsPrivateAndWritable) {
  // The test's own directory is in the host's /tmp.
  ASSERT_TRUE(dir_.path().string().starts_with("/tmp/")) << "TMPDIR is not /tmp";
  const std::string code = kind_ == SandboxKind::kBwrap ? "/code" : "";
  const std::string script =
      "echo x > " + code + "/new-file || echo write-refused; " + "[ -e " + dir_.path().string() +
      " ] && echo host-tmp-visible; " + "[ -e /root ] && echo root-visible; " +
      "[ -e /home ] && echo home-visible; " + "echo private > /tmp/f && cat /tmp/f";
  auto worker = Start(Function({"sh", "-c", script}));
  ASSERT_TRUE(worker.has_value()) << worker.error().ToString();
  EXPECT_EQ(ReadToEof((*worker)->stdout_fd()), "write-refused\nprivate\n");
  EXPECT_NE(ReadToEof((*worker)->stderr_fd()).find("Read-only file system"), std::string::npos);
  EXPECT_FALSE(fs::exists(code_.code_dir / "new-file"));
}

TEST_P(WorkerProcessIsolationTest, NoNetworkUnlessAsked) {
  Listener listener;
  ASSERT_GT(listener.port(), 0);
  const std::string script =
      "tail=$(cat /proc/net/dev | { read a; read b; while read name rest; do printf '%s ' "
      "\"$name\"; done; }); echo \"$tail\"; "
      "if exec 3<>/dev/tcp/127.0.0.1/" +
      std::to_string(listener.port()) + "; then echo connected; else echo refused; fi";
  auto isolated = Start(Function({"bash", "-c", script}));
  ASSERT_TRUE(isolated.has_value()) << isolated.error().ToString();
  EXPECT_EQ(ReadToEof((*isolated)->stdout_fd()), "lo: \nrefused\n");

  FunctionSpec with_network = Function({"bash", "-c", script});
  with_network.network = true;
  auto connected = Start(with_network);
  ASSERT_TRUE(connected.has_value()) << connected.error().ToString();
  const std::string out = ReadToEof((*connected)->stdout_fd());
  EXPECT_NE(out.find("connected\n"), std::string::npos) << out;
}

INSTANTIATE_TEST_SUITE_P(WorkerProcess, WorkerProcessSandboxTest,
                         ::testing::Values(SandboxKind::kProcess, SandboxKind::kBwrap,
                                           SandboxKind::kOci),
                         [](const auto& p) { return std::string(SandboxKindName(p.param)); });
INSTANTIATE_TEST_SUITE_P(WorkerProcess, WorkerProcessIsolationTest,
                         ::testing::Values(SandboxKind::kBwrap, SandboxKind::kOci),
                         [](const auto& p) { return std::string(SandboxKindName(p.param)); });

// ---- preparing code, checks, and the pieces ----

TEST(WorkerProcessTest, ExitStatusToString) {
  EXPECT_EQ((ExitStatus{3, 0}).ToString(), "exit status 3");
  EXPECT_EQ((ExitStatus{-1, 9}).ToString(), "killed by signal 9 (SIGKILL)");
  EXPECT_EQ((ExitStatus{-1, 15}).ToString(), "killed by signal 15 (SIGTERM)");
}

TEST(WorkerProcessTest, PrepareCodeSnapshotsTheDirectory) {
  TempDir dir("edgeflow-wp-");
  fs::create_directories(dir.Sub("src/sub"));
  std::ofstream(dir.Sub("src/sub/data.txt")) << "v1";
  fs::create_symlink("sub/data.txt", dir.Sub("src/link"));
  // A file linked from outside the code directory (a vendored SDK) is copied, not linked.
  std::ofstream(dir.Sub("shared.py")) << "sdk";
  fs::create_symlink(dir.Sub("shared.py"), dir.Sub("src/sdk.py"));
  FunctionSpec function;
  function.name = "snap";
  function.sandbox = SandboxKind::kProcess;
  function.code_dir = "src";
  function.command = {"cat", "link"};
  auto prepared = PrepareCode(function, dir.path(), dir.Sub("work"));
  ASSERT_TRUE(prepared.has_value()) << prepared.error().ToString();
  EXPECT_EQ(prepared->code_dir, dir.Sub("work") / "code");
  EXPECT_FALSE(fs::is_symlink(prepared->code_dir / "sdk.py"));
  EXPECT_EQ(ReadWholeFile(prepared->code_dir / "sdk.py"), "sdk");

  std::ofstream(dir.Sub("src/sub/data.txt")) << "v2";  // edits after deploy do not count
  auto worker = WorkerProcess::Start(*prepared, function, {NextInstanceId(), {}});
  ASSERT_TRUE(worker.has_value()) << worker.error().ToString();
  EXPECT_EQ(ReadToEof((*worker)->stdout_fd()), "v1");

  // Preparing again replaces the snapshot.
  auto again = PrepareCode(function, dir.path(), dir.Sub("work"));
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  EXPECT_EQ(ReadWholeFile(again->code_dir / "sub/data.txt"), "v2");
  EXPECT_FALSE(fs::exists(dir.Sub("work") / "code.new"));
  EXPECT_FALSE(fs::exists(dir.Sub("work") / "code.old"));
}

TEST(WorkerProcessTest, PrepareCodeErrorsNameTheFunctionAndWhatIsMissing) {
  TempDir dir("edgeflow-wp-");
  FunctionSpec function;
  function.name = "broken";
  function.sandbox = SandboxKind::kProcess;
  function.code_dir = "nowhere";
  function.command = {"true"};
  auto missing = PrepareCode(function, dir.path(), dir.Sub("work"));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().message(),
            "function 'broken': no such code directory: " + (dir.path() / "nowhere").string());

  function.sandbox = SandboxKind::kOci;
  function.code_dir.clear();
  function.image = "img";
  fs::create_directories(dir.Sub("img"));
  auto not_image = PrepareCode(function, dir.path(), dir.Sub("work"));
  ASSERT_FALSE(not_image.has_value());
  EXPECT_EQ(not_image.error().code(), ErrorCode::kInvalidArgument) << not_image.error().ToString();
  EXPECT_NE(not_image.error().message().find("not an OCI image layout (it has no index.json)"),
            std::string::npos)
      << not_image.error().ToString();

  function.image = "missing.tar";
  auto no_file = PrepareCode(function, dir.path(), dir.Sub("work"));
  ASSERT_FALSE(no_file.has_value());
  EXPECT_EQ(no_file.error().code(), ErrorCode::kNotFound) << no_file.error().ToString();

  function.sandbox = SandboxKind::kBwrap;
  auto image_without_oci = PrepareCode(function, dir.path(), dir.Sub("work"));
  ASSERT_FALSE(image_without_oci.has_value());
  EXPECT_NE(image_without_oci.error().message().find("images need sandbox: oci"),
            std::string::npos);
}

TEST(WorkerProcessTest, CheckSandbox) {
  EXPECT_TRUE(CheckSandbox(SandboxKind::kProcess).ok());
  if (!IsRoot()) GTEST_SKIP() << "bwrap and oci are checked as root";
  const Status bwrap = CheckSandbox(SandboxKind::kBwrap);
  EXPECT_TRUE(bwrap.ok()) << bwrap.ToString();
  const Status oci = CheckSandbox(SandboxKind::kOci);
  EXPECT_TRUE(oci.ok()) << oci.ToString();
}

TEST(WorkerProcessTest, StartRefusesBadInstanceIds) {
  FunctionSpec function;
  function.name = "f";
  function.command = {"true"};
  PreparedCode code{SandboxKind::kProcess, "/", {}};
  for (const std::string& id :
       std::vector<std::string>{"", "..", "a/b", std::string(129, 'a'), "a b"}) {
    auto worker = WorkerProcess::Start(code, function, {id, "/tmp"});
    ASSERT_FALSE(worker.has_value()) << id;
    EXPECT_EQ(worker.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(WorkerProcessTest, ExecFailuresReachStart) {
  TempDir dir("edgeflow-wp-");
  std::ofstream(dir.Sub("no-exec.sh")) << "#!/bin/sh\n";
  std::ofstream(dir.Sub("bad-interpreter.sh")) << "#!/no/such/interpreter\n";
  fs::permissions(dir.Sub("bad-interpreter.sh"), fs::perms::owner_all);
  FunctionSpec function;
  function.name = "f";
  function.sandbox = SandboxKind::kProcess;
  PreparedCode code{SandboxKind::kProcess, dir.path(), {}};
  function.command = {"./bad-interpreter.sh"};
  auto bad = WorkerProcess::Start(code, function, {NextInstanceId(), {}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("the interpreter on its #! line"), std::string::npos)
      << bad.error().ToString();
  if (!IsRoot()) {  // root may execute files without an x bit
    function.command = {"./no-exec.sh"};
    auto denied = WorkerProcess::Start(code, function, {NextInstanceId(), {}});
    ASSERT_FALSE(denied.has_value());
    EXPECT_NE(denied.error().message().find("Permission denied"), std::string::npos);
  }
  PreparedCode gone{SandboxKind::kProcess, dir.Sub("gone"), {}};
  function.command = {"/bin/true"};
  auto no_dir = WorkerProcess::Start(gone, function, {NextInstanceId(), {}});
  ASSERT_FALSE(no_dir.has_value());
  EXPECT_NE(no_dir.error().message().find("cannot change to the directory"), std::string::npos)
      << no_dir.error().ToString();
}

TEST(WorkerProcessTest, ResolveCommand) {
  const ViewToHost host = [](const fs::path& p) { return std::optional<fs::path>(p); };
  auto sh = ResolveCommand("sh", "/", "/nonexistent:/usr/bin", host);
  ASSERT_TRUE(sh.has_value());
  EXPECT_EQ(*sh, "/usr/bin/sh");
  auto missing = ResolveCommand("no-such-xyz", "/", "/usr/bin:/bin", host);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().message(), "command not found: no-such-xyz (PATH=/usr/bin:/bin)");
  auto relative = ResolveCommand("bin/sh", "/usr", "", host);
  ASSERT_TRUE(relative.has_value());
  EXPECT_EQ(*relative, "/usr/bin/sh");
  // bwrap's view: /code is the code directory, /home does not exist.
  const ViewToHost bwrap = [](const fs::path& p) { return BwrapViewToHost("/usr/share", p); };
  EXPECT_EQ(BwrapViewToHost("/srv/code", "/code/a/b"), fs::path("/srv/code/a/b"));
  EXPECT_EQ(BwrapViewToHost("/srv/code", "/home/x"), std::nullopt);
  EXPECT_FALSE(ResolveCommand("sh", "/code", "/home/user/bin", bwrap).has_value());
  EXPECT_TRUE(ResolveCommand("sh", "/code", "/home/user/bin:/bin", bwrap).has_value());
}

TEST(WorkerProcessTest, BwrapArguments) {
  BwrapSpec spec;
  spec.code_dir = "/srv/code";
  spec.env = {{"A", "1"}};
  spec.program = "/usr/bin/python3";
  spec.args = {"main.py"};
  const std::vector<std::string> args = BwrapArguments(spec);
  const auto has = [&](std::vector<std::string> sequence) {
    return std::search(args.begin(), args.end(), sequence.begin(), sequence.end()) != args.end();
  };
  EXPECT_EQ(args.front(), "--unshare-all");
  EXPECT_FALSE(has({"--share-net"}));
  EXPECT_TRUE(has({"--die-with-parent", "--new-session", "--cap-drop", "ALL"}));
  EXPECT_TRUE(has({"--ro-bind", "/usr", "/usr"}));
  EXPECT_TRUE(has({"--ro-bind", "/srv/code", "/code", "--chdir", "/code"}));
  EXPECT_TRUE(has({"--tmpfs", "/tmp"}));
  EXPECT_TRUE(has({"--clearenv", "--setenv", "A", "1", "/usr/bin/python3", "main.py"}));
  EXPECT_FALSE(has({"/etc/resolv.conf"}));
  spec.network = true;
  const std::vector<std::string> with_network = BwrapArguments(spec);
  EXPECT_NE(std::find(with_network.begin(), with_network.end(), "--share-net"), with_network.end());
}

TEST(WorkerProcessTest, ChooseImageTag) {
  const auto index = [](std::vector<std::string> tags) {
    nlohmann::json manifests = nlohmann::json::array();
    for (const auto& tag : tags) {
      manifests.push_back(
          {{"digest", "sha256:x"}, {"annotations", {{"org.opencontainers.image.ref.name", tag}}}});
    }
    return nlohmann::json{{"schemaVersion", 2}, {"manifests", manifests}}.dump();
  };
  EXPECT_EQ(ChooseImageTag(index({"v1", "latest"})).value_or(""), "latest");
  EXPECT_EQ(ChooseImageTag(index({"v1"})).value_or(""), "v1");
  EXPECT_FALSE(ChooseImageTag(index({})).has_value());
  auto several = ChooseImageTag(index({"v1", "v2"}));
  ASSERT_FALSE(several.has_value());
  EXPECT_NE(several.error().message().find("v1, v2"), std::string::npos);
  EXPECT_FALSE(ChooseImageTag("not json").has_value());
}

TEST(WorkerProcessTest, ParseCgroupMounts) {
  const std::string mountinfo =
      "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:5 - cgroup cgroup "
      "rw,cpu,cpuacct\n"
      "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
      "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
      "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
      "90 35 0:32 / /mnt/again rw,relatime - cgroup cgroup rw,memory\n";
  const std::vector<CgroupMount> mounts = ParseCgroupMounts(mountinfo);
  ASSERT_EQ(mounts.size(), 5u);
  EXPECT_EQ(mounts[0].mount_point, "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(mounts[0].controllers, std::vector<std::string>{"cpu"});
  EXPECT_EQ(mounts[1].controllers, std::vector<std::string>{"memory"});
  EXPECT_TRUE(mounts[3].controllers.empty());
  EXPECT_TRUE(mounts[4].v2);
  EXPECT_EQ(mounts[4].mount_point, "/sys/fs/cgroup/unified");
}

TEST(WorkerProcessTest, CgroupLimitsAreWrittenAndRemoved) {
  if (!IsRoot()) GTEST_SKIP() << "cgroups need root";
  const std::string id = NextInstanceId();
  WorkerCgroup cgroup = WorkerCgroup::Create(id, {64 << 20, 0.5, 10});
  ASSERT_TRUE(cgroup.limits_memory());
  EXPECT_TRUE(cgroup.limits_cpu());
  EXPECT_TRUE(cgroup.limits_pids());
  const std::vector<fs::path> dirs = cgroup.dirs();
  ASSERT_FALSE(dirs.empty());
  std::map<std::string, std::string> values;
  for (const fs::path& dir : dirs) {
    EXPECT_EQ(dir.filename(), id);
    for (const char* file :
         {"memory.limit_in_bytes", "memory.max", "cpu.cfs_quota_us", "cpu.max", "pids.max"}) {
      std::ifstream in(dir / file);
      std::string value;
      if (std::getline(in, value)) values[file] = value;
    }
  }
  if (values.contains("memory.limit_in_bytes")) {
    EXPECT_EQ(values["memory.limit_in_bytes"], std::to_string(64 << 20));
    EXPECT_EQ(values["cpu.cfs_quota_us"], "50000");
  } else {
    EXPECT_EQ(values["memory.max"], std::to_string(64 << 20));
    EXPECT_EQ(values["cpu.max"], "50000 100000");
  }
  EXPECT_EQ(values["pids.max"], "10");
  cgroup.Remove();
  for (const fs::path& dir : dirs) EXPECT_FALSE(fs::exists(dir)) << dir;
}

TEST(WorkerProcessTest, OciConfig) {
  const nlohmann::json image = {{"process",
                                 {{"user", {{"uid", 1000}, {"gid", 1000}}},
                                  {"env", {"PATH=/app/bin:/usr/bin", "MODE=image", "KEEP=1"}},
                                  {"cwd", "/app"}}}};
  OciWorkerConfig worker;
  worker.rootfs = "/var/lib/edgeflow/f/bundle/rootfs";
  worker.args = {"python3", "main.py"};
  worker.env = {{"MODE", "function"}, {"EXTRA", "x"}};
  worker.limits.memory_bytes = 64 << 20;
  worker.limits.cpus = 0.5;
  worker.limits.pids = 16;
  worker.cgroups_path = "/edgeflow/w1";
  const nlohmann::json config = BuildOciConfig(image, worker);
  EXPECT_EQ(config["process"]["args"], worker.args);
  EXPECT_EQ(config["process"]["terminal"], false);
  EXPECT_EQ(config["process"]["cwd"], "/app");
  EXPECT_EQ(config["process"]["user"]["uid"], 1000);
  EXPECT_EQ(
      config["process"]["env"],
      (std::vector<std::string>{"PATH=/app/bin:/usr/bin", "MODE=function", "KEEP=1", "EXTRA=x"}));
  EXPECT_FALSE(config["process"].contains("capabilities"));
  EXPECT_EQ(config["root"]["path"], worker.rootfs.string());
  EXPECT_EQ(config["root"]["readonly"], true);
  EXPECT_EQ(config["linux"]["cgroupsPath"], "/edgeflow/w1");
  EXPECT_EQ(config["linux"]["resources"]["memory"]["limit"], 64 << 20);
  EXPECT_FALSE(config["linux"]["resources"]["memory"].contains("swap"));
  EXPECT_EQ(config["linux"]["resources"]["cpu"]["quota"], 50000);
  EXPECT_EQ(config["linux"]["resources"]["cpu"]["period"], 100000);
  EXPECT_EQ(config["linux"]["resources"]["pids"]["limit"], 16);
  const auto namespaces = [](const nlohmann::json& c) {
    std::set<std::string> types;
    for (const auto& ns : c["linux"]["namespaces"]) types.insert(ns["type"].get<std::string>());
    return types;
  };
  EXPECT_EQ(namespaces(config), (std::set<std::string>{"pid", "ipc", "uts", "mount", "network"}));
  bool has_tmp = false;
  for (const auto& mount : config["mounts"]) has_tmp |= mount["destination"] == "/tmp";
  EXPECT_TRUE(has_tmp);

  worker.network = true;
  worker.limit_swap = true;
  const nlohmann::json networked = BuildOciConfig(nlohmann::json::object(), worker);
  EXPECT_EQ(namespaces(networked), (std::set<std::string>{"pid", "ipc", "uts", "mount"}));
  EXPECT_EQ(networked["process"]["cwd"], "/");
  EXPECT_EQ(networked["linux"]["resources"]["memory"]["swap"], 64 << 20);
  EXPECT_EQ(networked["process"]["env"][2], "PATH=/usr/local/bin:/usr/bin:/bin");
}

TEST(WorkerProcessTest, OciRunsADockerSaveArchive) {
  if (!IsRoot()) GTEST_SKIP() << "oci workers need root (runc and cgroups)";
  ::signal(SIGPIPE, SIG_IGN);
  ASSERT_TRUE(TestImage().has_value()) << TestImage().error().ToString();
  auto skopeo = FindTool("skopeo", "skopeo");
  ASSERT_TRUE(skopeo.has_value()) << skopeo.error().ToString();
  TempDir dir("edgeflow-wp-");
  const fs::path archive = dir.Sub("image.tar");
  auto saved = RunToolChecked(
      "skopeo copy", *skopeo,
      {"--insecure-policy", "copy", "--quiet", "oci:" + TestImage()->string() + ":latest",
       "docker-archive:" + archive.string() + ":edgeflow/test:latest"},
      30s);
  ASSERT_TRUE(saved.has_value()) << saved.error().ToString();

  FunctionSpec function;
  function.name = "archived";
  function.sandbox = SandboxKind::kOci;
  function.image = "image.tar";
  function.command = {"cat"};
  auto prepared = PrepareCode(function, dir.path(), dir.Sub("work"));
  ASSERT_TRUE(prepared.has_value()) << prepared.error().ToString();
  EXPECT_TRUE(fs::exists(prepared->bundle_dir / "rootfs" / "usr" / "bin" / "cat"));
  auto worker = WorkerProcess::Start(*prepared, function, {NextInstanceId(), dir.Sub("state")});
  ASSERT_TRUE(worker.has_value()) << worker.error().ToString();
  WriteAll((*worker)->stdin_fd(), "from the archive\n");
  EXPECT_EQ(ReadUntilContains((*worker)->stdout_fd(), "\n"), "from the archive\n");
  (*worker)->CloseStdin();
  auto status = (*worker)->Wait(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->exit_code, 0);
}

}  // namespace
}  // namespace edgeflow::runtime
