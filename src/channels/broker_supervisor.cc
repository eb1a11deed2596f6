#include "channels/broker_supervisor.h"

#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

#include "common/atomic_file.h"
#include "common/log.h"

namespace edgeflow::channels {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How often a broker that is not healthy yet is probed.
constexpr milliseconds kHealthProbeInterval{50};
// How long one probe's TCP connect may take; the broker is local, so this is generous.
constexpr milliseconds kConnectTimeout{250};
// Lines of each output file quoted in error messages.
constexpr size_t kQuotedOutputLines = 8;
// Only the end of a long output file is read to find those lines.
constexpr uintmax_t kMaxOutputBytesRead = 64 << 10;
// The child reports a failed exec with this exit code, after writing errno to the exec pipe.
constexpr int kExecFailedExitCode = 127;

// The one owner of a file descriptor.
class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() { Reset(); }
  ScopedFd(ScopedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// Moves `fd` above stdin/stdout/stderr (keeping O_CLOEXEC). A daemon may run with fd 0, 1 or 2
// closed, so a fresh descriptor can land there, and the child's dup2() onto 0..2 would then
// clobber it (or, for dup2(fd, fd), keep its close-on-exec flag).
ScopedFd AboveStdio(int fd) {
  if (fd < 0 || fd > 2) return ScopedFd(fd);
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int saved_errno = errno;
  close(fd);
  errno = saved_errno;
  return ScopedFd(moved);
}

std::string Errno(int error) { return std::strerror(error); }

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int signo = WTERMSIG(status);
    return "killed by signal " + std::to_string(signo) + " (" + strsignal(signo) + ")";
  }
  return "wait status " + std::to_string(status);
}

// Reaps `pid` (blocking) and describes how it ended.
std::string Reap(pid_t pid) {
  int status = 0;
  pid_t rc;
  do {
    rc = waitpid(pid, &status, 0);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return "exit status unknown (waitpid: " + Errno(errno) + ")";
  return DescribeWaitStatus(status);
}

// Whether `fd` became readable within `timeout`.
bool WaitReadable(int fd, milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (true) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now()).count();
    pollfd pfd{fd, POLLIN, 0};
    int rc = poll(&pfd, 1, static_cast<int>(std::max<int64_t>(left, 0)));
    if (rc > 0) return true;
    if (rc == 0 || errno != EINTR) return false;
  }
}

// The child side of the fork: only async-signal-safe calls, since the parent has threads whose
// locks (malloc, logging) may be held by nobody in the copy.
// Child side: tells the parent why the broker could not be started, and exits.
[[noreturn]] void ReportChildErrorAndExit(int exec_error_fd) {
  int error = errno;
  (void)!write(exec_error_fd, &error, sizeof error);
  _exit(kExecFailedExitCode);
}

[[noreturn]] void ExecBroker(const char* binary, char* const argv[], int input_fd, int output_fd,
                             int exec_error_fd, pid_t parent) {
  // edgeflowd blocks TERM/INT/HUP in every thread and ignores PIPE; both survive exec, and the
  // broker must see SIGTERM.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  for (int signo = 1; signo < NSIG; ++signo) sigaction(signo, &default_action, nullptr);

  if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) ReportChildErrorAndExit(exec_error_fd);
  // The parent may have died before prctl(): then no signal would ever come.
  if (getppid() != parent) _exit(1);

  if (dup2(input_fd, STDIN_FILENO) < 0 || dup2(output_fd, STDOUT_FILENO) < 0 ||
      dup2(output_fd, STDERR_FILENO) < 0) {
    ReportChildErrorAndExit(exec_error_fd);
  }
  // Descriptors edgeflowd opened without O_CLOEXEC (sockets, RocksDB files) must not leak into
  // the broker. Everything but the exec pipe goes.
  if (exec_error_fd > 3) close_range(3, static_cast<unsigned>(exec_error_fd) - 1, 0);
  if (close_range(static_cast<unsigned>(exec_error_fd) + 1, ~0U, 0) != 0) {
    for (int fd = exec_error_fd + 1; fd < 65536; ++fd) close(fd);
  }
  execv(binary, argv);
  ReportChildErrorAndExit(exec_error_fd);
}

// Inodes of the TCP sockets listening on `port` (IPv4 and IPv6), from /proc/net/tcp{,6}:
//   sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
std::set<uint64_t> ListeningSocketInodes(uint16_t port) {
  constexpr std::string_view kListenState = "0A";
  std::set<uint64_t> inodes;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout;
      uint64_t inode = 0;
      if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
            timeout >> inode)) {
        continue;
      }
      const size_t colon = local.rfind(':');
      unsigned local_port = 0;
      if (colon == std::string::npos ||
          std::from_chars(local.data() + colon + 1, local.data() + local.size(), local_port, 16)
                  .ec != std::errc()) {
        continue;
      }
      if (state == kListenState && local_port == port && inode != 0) inodes.insert(inode);
    }
  }
  return inodes;
}

// Whether process `pid` holds a socket listening on `port`. True when /proc does not let us look
// (another user's process): the TCP connect is then the only check.
bool OwnsListeningSocket(pid_t pid, uint16_t port) {
  const std::set<uint64_t> inodes = ListeningSocketInodes(port);
  if (inodes.empty()) return false;
  const std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* dir = opendir(fd_dir.c_str());
  if (dir == nullptr) return errno == EACCES || errno == EPERM;
  bool owned = false;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    char target[64];
    const std::string link = fd_dir + "/" + entry->d_name;
    const ssize_t length = readlink(link.c_str(), target, sizeof target - 1);
    if (length <= 0) continue;
    std::string_view text(target, static_cast<size_t>(length));
    constexpr std::string_view kPrefix = "socket:[";
    if (!text.starts_with(kPrefix) || !text.ends_with(']')) continue;
    text = text.substr(kPrefix.size(), text.size() - kPrefix.size() - 1);
    uint64_t inode = 0;
    if (std::from_chars(text.data(), text.data() + text.size(), inode).ec == std::errc() &&
        inodes.contains(inode)) {
      owned = true;
      break;
    }
  }
  closedir(dir);
  return owned;
}

bool CanConnect(const HostPort& address, milliseconds timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* addresses = nullptr;
  const std::string port = std::to_string(address.port);
  if (getaddrinfo(address.host.c_str(), port.c_str(), &hints, &addresses) != 0) return false;
  bool connected = false;
  for (addrinfo* a = addresses; a != nullptr && !connected; a = a->ai_next) {
    ScopedFd fd(
        socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd.valid()) continue;
    if (connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) {
      connected = true;
      break;
    }
    if (errno != EINPROGRESS) continue;
    pollfd pfd{fd.get(), POLLOUT, 0};
    if (poll(&pfd, 1, static_cast<int>(timeout.count())) != 1) continue;
    int error = 0;
    socklen_t length = sizeof error;
    connected = getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0;
  }
  freeaddrinfo(addresses);
  return connected;
}

// The last `max_lines` non-empty lines written to `path` after byte `offset`.
std::vector<std::string> TailLines(const std::filesystem::path& path, uintmax_t offset,
                                   size_t max_lines) {
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec || size <= offset) return {};
  const uintmax_t start = std::max(offset, size - std::min(size, kMaxOutputBytesRead));
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(start));
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.push_back(std::move(line));
  }
  if (lines.size() > max_lines) lines.erase(lines.begin(), lines.end() - max_lines);
  return lines;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) {
    if (!out.empty()) out += " | ";
    out += line;
  }
  return out;
}

}  // namespace

struct BrokerSupervisor::Child {
  pid_t pid = 0;
  ScopedFd pidfd;  // readable once the child has exited
};

Result<std::unique_ptr<BrokerSupervisor>> BrokerSupervisor::Create(BrokerConfig config) {
  // Relative paths would be resolved by the broker against whatever its working directory is;
  // pin them to the one the node was started in.
  std::error_code ec;
  for (std::filesystem::path* path : {&config.mosquitto_binary, &config.dir}) {
    if (!path->empty() && path->is_relative()) *path = std::filesystem::absolute(*path, ec);
  }
  for (std::optional<std::filesystem::path>* path : {&config.password_file, &config.acl_file}) {
    if (path->has_value() && !(*path)->empty() && (*path)->is_relative()) {
      **path = std::filesystem::absolute(**path, ec);
    }
  }
  if (ec)
    return Error(Status::InvalidArgument("cannot make broker paths absolute: " + ec.message()));
  if (Status valid = ValidateBrokerConfig(config); !valid.ok()) return Error(std::move(valid));
  if (config.start_timeout <= milliseconds::zero() || config.stop_timeout < milliseconds::zero() ||
      config.restart_backoff_initial <= milliseconds::zero() ||
      config.restart_backoff_max < config.restart_backoff_initial) {
    return Error(Status::InvalidArgument(
        "broker supervision timings must be positive, with restart_backoff_max >= "
        "restart_backoff_initial"));
  }
  return std::unique_ptr<BrokerSupervisor>(new BrokerSupervisor(std::move(config)));
}

BrokerSupervisor::BrokerSupervisor(BrokerConfig config)
    : config_(std::move(config)),
      conf_path_(config_.dir / kMosquittoConfFileName),
      log_path_(config_.dir / kMosquittoLogFileName),
      stdout_path_(config_.dir / kMosquittoStdoutFileName) {}

BrokerSupervisor::~BrokerSupervisor() { Stop(); }

Status BrokerSupervisor::Start() {
  {
    std::lock_guard lock(mu_);
    if (started_ || stop_requested_) {
      return Status::FailedPrecondition("the broker supervisor was already started");
    }
    started_ = true;
  }
  const std::string binary = config_.mosquitto_binary.string();
  if (access(binary.c_str(), X_OK) != 0) {
    return Status::Unavailable("cannot run the MQTT broker '" + binary + "': " + Errno(errno) +
                               " (install the mosquitto package or set the broker's "
                               "mosquitto_binary)");
  }
  for (const auto& [field, path] :
       {std::pair{"password_file", config_.password_file}, {"acl_file", config_.acl_file}}) {
    if (path.has_value() && access(path->c_str(), R_OK) != 0) {
      return Status::Unavailable(std::string("cannot read the broker ") + field + " '" +
                                 path->string() + "': " + Errno(errno));
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(config_.dir, ec);
  if (ec) {
    return Status::IoError("cannot create the broker directory '" + config_.dir.string() +
                           "': " + ec.message());
  }

  // Port 0 is resolved once, so that a restarted broker comes back on the same ports.
  BrokerConfig resolved = config_;
  std::vector<HostPort*> unresolved;
  if (resolved.listen.port == 0) unresolved.push_back(&resolved.listen);
  if (resolved.ws_listen.has_value() && resolved.ws_listen->port == 0) {
    unresolved.push_back(&*resolved.ws_listen);
  }
  if (!unresolved.empty()) {
    std::vector<std::string> hosts;
    for (const HostPort* address : unresolved) hosts.push_back(address->host);
    Result<std::vector<uint16_t>> ports = PickFreePorts(hosts);
    if (!ports) return ports.error();
    for (size_t i = 0; i < unresolved.size(); ++i) unresolved[i]->port = (*ports)[i];
  }
  Result<std::string> conf = RenderMosquittoConf(resolved);
  if (!conf) return conf.error();
  {
    std::lock_guard lock(mu_);
    config_ = resolved;
  }

  // A crash never leaves the broker a truncated config.
  if (Status s = WriteFileAtomically(conf_path_, *conf); !s.ok()) return s;

  argv_ = {binary, "-c", conf_path_.string()};
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return Status::IoError("eventfd: " + Errno(errno));
  try {
    thread_ = std::thread(&BrokerSupervisor::Supervise, this);
  } catch (const std::system_error& e) {
    return Status::Unavailable(std::string("cannot start the broker supervising thread: ") +
                               e.what());
  }

  std::string failure;
  pid_t running_pid = 0;
  {
    std::unique_lock lock(mu_);
    const bool settled = cv_.wait_for(lock, config_.start_timeout,
                                      [this] { return healthy_ || start_failure_.has_value(); });
    if (healthy_) {
      running_pid = pid_;
    } else if (settled) {
      failure = *start_failure_;
    } else {
      failure = "it did not accept connections on its own listener " + config_.listen.ToString() +
                " within " + std::to_string(config_.start_timeout.count()) + " ms";
    }
  }
  if (running_pid != 0) {
    log::Info("MQTT broker running",
              {{"mqtt", resolved.listen.ToString()},
               {"ws", resolved.ws_listen ? resolved.ws_listen->ToString() : "none"},
               {"pid", static_cast<int>(running_pid)},
               {"dir", resolved.dir.string()}});
    return Status::Ok();
  }
  Stop();
  return Status::Unavailable("the MQTT broker did not start: " + failure + "; " +
                             RecentBrokerOutput(kQuotedOutputLines));
}

void BrokerSupervisor::Stop() noexcept {
  {
    std::lock_guard lock(mu_);
    stop_requested_ = true;
  }
  cv_.notify_all();
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  if (wake_fd_ >= 0) close(wake_fd_);
  wake_fd_ = -1;
}

HostPort BrokerSupervisor::mqtt_address() const {
  std::lock_guard lock(mu_);
  return config_.listen;
}

std::optional<HostPort> BrokerSupervisor::ws_address() const {
  std::lock_guard lock(mu_);
  return config_.ws_listen;
}

pid_t BrokerSupervisor::pid() const {
  std::lock_guard lock(mu_);
  return pid_;
}

uint64_t BrokerSupervisor::restarts() const {
  std::lock_guard lock(mu_);
  return restarts_;
}

bool BrokerSupervisor::healthy() const {
  std::lock_guard lock(mu_);
  return healthy_;
}

bool BrokerSupervisor::StopRequested() const {
  std::lock_guard lock(mu_);
  return stop_requested_;
}

bool BrokerSupervisor::WaitForBackoff(milliseconds delay) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, delay, [this] { return stop_requested_; });
}

void BrokerSupervisor::Supervise() {
  milliseconds backoff = config_.restart_backoff_initial;
  bool ever_healthy = false;
  auto fail_start = [this](std::string why) {
    {
      std::lock_guard lock(mu_);
      start_failure_ = std::move(why);
    }
    cv_.notify_all();
  };
  while (!StopRequested()) {
    Result<Child> child = Launch();
    if (!child) {
      if (!ever_healthy) return fail_start(child.error().message());
      log::Error("cannot restart the MQTT broker",
                 {{"error", child.error().message()}, {"retry_in_ms", int64_t{backoff.count()}}});
    } else {
      const pid_t pid = child->pid;
      {
        std::lock_guard lock(mu_);
        pid_ = pid;
      }
      std::optional<std::string> exit = Watch(*child, &ever_healthy, &backoff);
      {
        std::lock_guard lock(mu_);
        pid_ = 0;
        healthy_ = false;
      }
      if (!exit.has_value()) return;  // Stop() ended it
      if (!ever_healthy) return fail_start("mosquitto exited during start-up (" + *exit + ")");
      log::Warn("MQTT broker exited; restarting it", {{"pid", static_cast<int>(pid)},
                                                      {"reason", *exit},
                                                      {"restart_in_ms", int64_t{backoff.count()}},
                                                      {"last_output", RecentBrokerOutput(3)}});
    }
    if (!WaitForBackoff(backoff)) return;
    backoff = std::min(backoff * 2, config_.restart_backoff_max);
    std::lock_guard lock(mu_);
    ++restarts_;
  }
}

Result<BrokerSupervisor::Child> BrokerSupervisor::Launch() {
  {
    std::error_code log_error, stdout_error;
    const uintmax_t log_size = std::filesystem::file_size(log_path_, log_error);
    const uintmax_t stdout_size = std::filesystem::file_size(stdout_path_, stdout_error);
    std::lock_guard lock(mu_);
    log_offset_ = log_error ? 0 : log_size;
    stdout_offset_ = stdout_error ? 0 : stdout_size;
  }
  // Everything the child needs is prepared here: after fork() it may not allocate.
  ScopedFd output =
      AboveStdio(open(stdout_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!output.valid()) {
    return Error(Status::IoError("cannot open '" + stdout_path_.string() + "': " + Errno(errno)));
  }
  ScopedFd input = AboveStdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!input.valid()) return Error(Status::IoError("cannot open /dev/null: " + Errno(errno)));
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return Error(Status::IoError("pipe2: " + Errno(errno)));
  ScopedFd exec_error_read = AboveStdio(pipe_fds[0]);
  ScopedFd exec_error_write = AboveStdio(pipe_fds[1]);
  if (!exec_error_read.valid() || !exec_error_write.valid()) {
    return Error(Status::IoError("fcntl: " + Errno(errno)));
  }
  std::vector<char*> argv;
  for (std::string& arg : argv_) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid < 0) return Error(Status::Unavailable("cannot fork the MQTT broker: " + Errno(errno)));
  if (pid == 0) {
    ExecBroker(argv_[0].c_str(), argv.data(), input.get(), output.get(), exec_error_write.get(),
               parent);
  }
  exec_error_write.Reset();
  // The pipe closes without data when execv() succeeds (O_CLOEXEC).
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(exec_error_read.get(), &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    Reap(pid);
    return Error(Status::Unavailable("cannot execute '" + argv_[0] + "': " + Errno(child_errno)));
  }
  ScopedFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid()) {
    const int error = errno;
    kill(pid, SIGKILL);
    Reap(pid);
    return Error(
        Status::Unavailable("pidfd_open (Linux >= 5.3 is needed to supervise the MQTT "
                            "broker): " +
                            Errno(error)));
  }
  log::Debug("MQTT broker launched", {{"pid", static_cast<int>(pid)}, {"binary", argv_[0]}});
  return Child{pid, std::move(pidfd)};
}

std::optional<std::string> BrokerSupervisor::Watch(Child& child, bool* ever_healthy,
                                                   milliseconds* backoff) {
  bool healthy = false;
  bool backoff_reset = false;
  SteadyClock::time_point healthy_since;
  while (true) {
    // A healthy broker is only waited on; the timeout just bounds when the back-off resets.
    const milliseconds timeout = healthy ? milliseconds(1000) : kHealthProbeInterval;
    pollfd fds[2] = {{child.pidfd.get(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, static_cast<int>(timeout.count())) < 0 && errno != EINTR) {
      log::Error("poll on the MQTT broker failed", {{"error", Errno(errno)}});
      std::this_thread::sleep_for(timeout);  // do not spin
    }
    if (StopRequested()) {
      Terminate(child);
      return std::nullopt;
    }
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) return Reap(child.pid);
    if (!healthy) {
      if (!ProbeHealth(child.pid)) continue;
      healthy = true;
      healthy_since = SteadyClock::now();
      {
        std::lock_guard lock(mu_);
        healthy_ = true;
      }
      cv_.notify_all();
      if (*ever_healthy) {
        log::Info("MQTT broker healthy again", {{"pid", static_cast<int>(child.pid)}});
      }
      *ever_healthy = true;
    } else if (!backoff_reset &&
               SteadyClock::now() - healthy_since >= config_.restart_backoff_reset_after) {
      *backoff = config_.restart_backoff_initial;
      backoff_reset = true;
    }
  }
}

void BrokerSupervisor::Terminate(Child& child) {
  // The child is not reaped yet, so its pid cannot have been reused.
  kill(child.pid, SIGTERM);
  if (!WaitReadable(child.pidfd.get(), config_.stop_timeout)) {
    log::Warn("MQTT broker did not stop in time; killing it",
              {{"pid", static_cast<int>(child.pid)},
               {"waited_ms", int64_t{config_.stop_timeout.count()}}});
    kill(child.pid, SIGKILL);
  }
  const std::string how = Reap(child.pid);
  log::Info("MQTT broker stopped", {{"pid", static_cast<int>(child.pid)}, {"exit", how}});
}

bool BrokerSupervisor::ProbeHealth(pid_t pid) const {
  // config_ is only written by Start() before the supervising thread exists.
  if (!OwnsListeningSocket(pid, config_.listen.port)) return false;
  if (config_.ws_listen.has_value() && !OwnsListeningSocket(pid, config_.ws_listen->port)) {
    return false;
  }
  return CanConnect(config_.listen, kConnectTimeout);
}

std::string BrokerSupervisor::RecentBrokerOutput(size_t max_lines) const {
  uintmax_t log_offset, stdout_offset;
  {
    std::lock_guard lock(mu_);
    log_offset = log_offset_;
    stdout_offset = stdout_offset_;
  }
  const std::string log_lines = JoinLines(TailLines(log_path_, log_offset, max_lines));
  const std::string stdout_lines = JoinLines(TailLines(stdout_path_, stdout_offset, max_lines));
  if (log_lines.empty() && stdout_lines.empty()) {
    return "the broker wrote nothing to " + log_path_.string() + " or " + stdout_path_.string();
  }
  std::string out;
  if (!log_lines.empty()) out += log_path_.string() + ": " + log_lines;
  if (!log_lines.empty() && !stdout_lines.empty()) out += "; ";
  if (!stdout_lines.empty()) out += stdout_path_.string() + ": " + stdout_lines;
  return out;
}

}  // namespace edgeflow::channels
