#include "support/net_namespace.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/command_runner.h"

namespace edgeflow::test_support {
namespace {

constexpr const char* kNamespacePrefix = "eft-";
constexpr const char* kVethPrefix = "ev";
// Linux's IFNAMSIZ is 16 with the terminating NUL.
constexpr size_t kMaxInterfaceName = 15;
// "ev" + pid (at most 7 digits: pid_max is at most 2^22) + "-" + n + "a" must stay within 15
// characters, so n has at most 4 digits. Wrapping would only collide with a pair of the same
// process that is 10,000 pairs old and still alive.
constexpr uint32_t kVethNumbers = 10000;

constexpr int kCapNetAdmin = 12;
constexpr int kCapSysAdmin = 21;

std::atomic<uint32_t> next_number{1};

uint32_t NextNumber() { return next_number.fetch_add(1, std::memory_order_relaxed); }

std::string CommandLine(const std::string& netns, const std::vector<std::string>& args) {
  std::string line = "ip";
  if (!netns.empty()) line += " -n " + netns;
  for (const std::string& arg : args) line += " " + arg;
  return line;
}

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// The effective capability set from /proc/self/status (CapEff, hexadecimal).
std::optional<uint64_t> EffectiveCapabilities() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    const size_t start = line.find_first_not_of(" \t", 7);
    if (start == std::string::npos) return std::nullopt;
    uint64_t caps = 0;
    const char* end = line.data() + line.size();
    if (std::from_chars(line.data() + start, end, caps, 16).ec != std::errc()) return std::nullopt;
    return caps;
  }
  return std::nullopt;
}

std::string ProbeNetAdmin() {
  if (::geteuid() != 0) {
    return "the test runs as uid " + std::to_string(::geteuid()) + ", not root";
  }
  const std::optional<uint64_t> caps = EffectiveCapabilities();
  if (!caps.has_value()) return "cannot read the capabilities in /proc/self/status";
  if ((*caps & (uint64_t{1} << kCapNetAdmin)) == 0) return "CAP_NET_ADMIN is not effective";
  if ((*caps & (uint64_t{1} << kCapSysAdmin)) == 0) {
    return "CAP_SYS_ADMIN is not effective (ip netns add mounts the namespace)";
  }
  const CommandResult version = RunCommand("ip", {"-V"});
  if (version.spawn_failed || version.exit_code() != 0) {
    return "the ip command (iproute2) cannot run: " + version.Describe();
  }
  const std::string probe = std::string(kNamespacePrefix) + std::to_string(::getpid()) + "-probe";
  auto added = RunIp("", {"netns", "add", probe});
  if (!added.has_value()) return "cannot add a network namespace: " + added.error().message();
  auto deleted = RunIp("", {"netns", "del", probe});
  if (!deleted.has_value())
    return "cannot delete a network namespace: " + deleted.error().message();
  return "";
}

// A string member of a JSON object from `ip -j`, or "" (json::value would throw on a member of
// another type, and the output of a future iproute2 is not ours to trust).
std::string StringField(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return "";
  const auto found = object.find(key);
  return found != object.end() && found->is_string() ? found->get<std::string>() : "";
}

// The pid in "<prefix><pid>-..." names, or 0.
pid_t OwnerPid(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return 0;
  const char* begin = name.data() + prefix.size();
  const char* end = name.data() + name.size();
  long pid = 0;
  auto [rest, ec] = std::from_chars(begin, end, pid);
  if (ec != std::errc() || rest == begin || rest == end || *rest != '-' || pid <= 0) return 0;
  return static_cast<pid_t>(pid);
}

bool IsDead(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// Removes what test processes that no longer exist left behind (killed by a CTest timeout before
// their destructors ran): root-namespace ends of their veth pairs, then their namespaces. Best
// effort and quiet: another test process may be sweeping at the same time.
void SweepLeftovers() {
  if (auto links = RunIp("", {"-j", "link", "show"}); links.has_value()) {
    const auto parsed = nlohmann::json::parse(*links, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_array()) {
      for (const auto& link : parsed) {
        const std::string name = StringField(link, "ifname");
        const pid_t owner = OwnerPid(name, kVethPrefix);
        // Quiet: another test process may be removing the same leftovers.
        if (owner > 0 && IsDead(owner)) (void)RunIp("", {"link", "del", name});
      }
    }
  }
  if (auto namespaces = RunIp("", {"netns", "list"}); namespaces.has_value()) {
    for (const std::string& line : SplitLines(*namespaces)) {
      const std::string name = line.substr(0, line.find(' '));  // "NAME (id: 3)"
      const pid_t owner = OwnerPid(name, kNamespacePrefix);
      if (owner > 0 && IsDead(owner)) (void)RunIp("", {"netns", "del", name});
    }
  }
}

Result<nlohmann::json> ShowLink(const std::string& netns, const std::string& interface) {
  auto out = RunIp(netns, {"-j", "link", "show", "dev", interface});
  if (!out.has_value()) return Error(out.error());
  auto parsed = nlohmann::json::parse(*out, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_array() || parsed.size() != 1 || !parsed[0].is_object()) {
    return Error(Status::Internal("unexpected output of " +
                                  CommandLine(netns, {"-j", "link", "show", "dev", interface}) +
                                  ": " + *out));
  }
  return parsed[0];
}

bool HasFlag(const nlohmann::json& link, const std::string& flag) {
  const auto flags = link.find("flags");
  if (flags == link.end() || !flags->is_array()) return false;
  for (const auto& f : *flags) {
    if (f.is_string() && f.get<std::string>() == flag) return true;
  }
  return false;
}

// Why an interface is not ready yet, or "" when it is (or is down on purpose).
std::string NotReadyBecause(const nlohmann::json& link) {
  if (!HasFlag(link, "UP")) return "";
  if (!HasFlag(link, "LOWER_UP")) return "no carrier";
  const std::string operstate = StringField(link, "operstate");
  if (operstate != "UP" && operstate != "UNKNOWN") return "operstate " + operstate;
  // find() on something that is not an object finds nothing; it does not throw.
  const auto info = link.find("linkinfo");
  if (info != link.end() && StringField(*info, "info_slave_kind") == "bridge") {
    const auto data = info->find("info_slave_data");
    const std::string state = data != info->end() ? StringField(*data, "state") : "";
    if (state != "forwarding") return "bridge port " + (state.empty() ? "state unknown" : state);
  }
  return "";
}

}  // namespace

bool HaveNetAdmin(std::string* why) {
  static std::once_flag once;
  static std::string missing;
  std::call_once(once, [] { missing = ProbeNetAdmin(); });
  if (why != nullptr) *why = missing;
  return missing.empty();
}

Result<std::string> RunIp(const std::string& netns, const std::vector<std::string>& args) {
  std::vector<std::string> full;
  if (!netns.empty()) full = {"-n", netns};
  full.insert(full.end(), args.begin(), args.end());
  const CommandResult result = RunCommand("ip", full);
  if (result.spawn_failed) {
    return Error(Status::Unavailable("cannot run `" + CommandLine(netns, args) +
                                     "` (is iproute2 installed?): " + result.err));
  }
  if (result.timed_out || result.exit_code() != 0) {
    return Error(
        Status::IoError("`" + CommandLine(netns, args) + "` failed, " + result.status.ToString() +
                        (result.timed_out ? " (timed out)" : "") + ": " + Trimmed(result.err)));
  }
  return result.out;
}

std::string FormatMac(const MacAddress& mac) {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return text;
}

Result<std::unique_ptr<NetNamespace>> NetNamespace::Create() {
  static std::once_flag swept;
  std::call_once(swept, SweepLeftovers);
  std::string name = std::string(kNamespacePrefix) + std::to_string(::getpid()) + "-" +
                     std::to_string(NextNumber());
  auto added = RunIp("", {"netns", "add", name});
  if (!added.has_value()) return Error(added.error());
  // From here on the destructor removes the namespace, whatever fails next.
  std::unique_ptr<NetNamespace> netns(new NetNamespace(std::move(name)));
  if (Status up = netns->SetUp("lo"); !up.ok()) return Error(std::move(up));
  return netns;
}

NetNamespace::~NetNamespace() {
  for (const std::string& link : owned_links_) {
    auto deleted = Ip({"link", "del", link});
    // Gone already when the namespace of the other end was deleted first: that took the pair.
    if (!deleted.has_value() &&
        deleted.error().message().find("Cannot find device") == std::string::npos) {
      std::fprintf(stderr, "NetNamespace: %s\n", deleted.error().ToString().c_str());
    }
  }
  auto deleted = RunIp("", {"netns", "del", name_});
  if (!deleted.has_value()) {
    std::fprintf(stderr, "NetNamespace: %s\n", deleted.error().ToString().c_str());
  }
}

Result<VethPair> NetNamespace::AddVethPair(const NetNamespace* peer) {
  const std::string base = std::string(kVethPrefix) + std::to_string(::getpid()) + "-" +
                           std::to_string(NextNumber() % kVethNumbers);
  VethPair pair{base + "a", base + "b", peer != nullptr ? peer->name() : ""};
  if (pair.local.size() > kMaxInterfaceName) {
    return Error(Status::Internal("interface name " + pair.local + " is too long"));
  }
  // Created from the root namespace with each end placed where it belongs, in one step, so that
  // a failure leaves nothing behind. The root namespace is named by this process's pid: the
  // calling thread may be one that entered another namespace.
  auto added =
      RunIp("", {"link", "add", pair.local, "netns", name_, "type", "veth", "peer", "name",
                 pair.peer, "netns", peer != nullptr ? peer->name() : std::to_string(::getpid())});
  if (!added.has_value()) return Error(added.error());
  owned_links_.push_back(pair.local);
  return pair;
}

Status NetNamespace::AddBridge(const std::string& bridge, const std::vector<std::string>& members) {
  auto added = Ip({"link", "add", bridge, "type", "bridge", "stp_state", "0"});
  if (!added.has_value()) return added.error();
  for (const std::string& member : members) {
    auto enslaved = Ip({"link", "set", member, "master", bridge});
    if (!enslaved.has_value()) return enslaved.error();
    EF_RETURN_IF_ERROR(SetUp(member));
  }
  return SetUp(bridge);
}

Status NetNamespace::AddAddress(const std::string& interface, const std::string& cidr) {
  std::vector<std::string> args = {"addr", "add", cidr};
  if (cidr.find(':') == std::string::npos) {
    args.insert(args.end(), {"brd", "+"});
  }
  args.insert(args.end(), {"dev", interface});
  auto added = Ip(args);
  return added.has_value() ? Status::Ok() : added.error();
}

Status NetNamespace::SetUp(const std::string& interface) {
  auto up = Ip({"link", "set", interface, "up"});
  return up.has_value() ? Status::Ok() : up.error();
}

Status NetNamespace::WaitForLinks(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto out = Ip({"-j", "-d", "link", "show"});
    if (!out.has_value()) return out.error();
    const auto links = nlohmann::json::parse(*out, nullptr, /*allow_exceptions=*/false);
    if (!links.is_array()) return Status::Internal("unexpected output of ip -j link show: " + *out);
    std::string waiting;
    for (const auto& link : links) {
      if (!link.is_object()) continue;
      const std::string why = NotReadyBecause(link);
      if (!why.empty()) waiting += " " + StringField(link, "ifname") + " (" + why + ")";
    }
    if (waiting.empty()) return Status::Ok();
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::DeadlineExceeded("links of " + name_ + " not ready after " +
                                      std::to_string(timeout.count()) + " ms:" + waiting);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<int> NetNamespace::Ifindex(const std::string& interface) {
  auto link = ShowLink(name_, interface);
  if (!link.has_value()) return Error(link.error());
  const auto index = link->find("ifindex");
  if (index == link->end() || !index->is_number_integer()) {
    return Error(Status::Internal("no ifindex for " + interface + " in " + name_));
  }
  return index->get<int>();
}

Result<MacAddress> NetNamespace::Mac(const std::string& interface) {
  auto link = ShowLink(name_, interface);
  if (!link.has_value()) return Error(link.error());
  const std::string text = StringField(*link, "address");
  MacAddress mac{};
  unsigned parts[6];
  char trailing = 0;
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &parts[0], &parts[1], &parts[2],
                  &parts[3], &parts[4], &parts[5], &trailing) != 6) {
    return Error(
        Status::Internal("unexpected address '" + text + "' for " + interface + " in " + name_));
  }
  for (size_t i = 0; i < mac.size(); ++i) mac[i] = static_cast<uint8_t>(parts[i]);
  return mac;
}

Status NetNamespace::RunInside(const std::function<void()>& body) {
  const std::string path = "/run/netns/" + name_;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError("cannot open " + path + ": " + std::strerror(errno));
  int setns_errno = 0;
  // A thread of its own: setns changes the namespace of the calling thread only, and a thread
  // from a pool would carry the namespace into unrelated work afterwards.
  std::thread inside([&] {
    if (::setns(fd, CLONE_NEWNET) != 0) {
      setns_errno = errno;
      return;
    }
    body();
  });
  inside.join();
  ::close(fd);
  if (setns_errno != 0) {
    return Status::IoError("cannot enter network namespace " + name_ + ": " +
                           std::strerror(setns_errno));
  }
  return Status::Ok();
}

Result<std::unique_ptr<ChildProcess>> NetNamespace::Spawn(const std::string& program,
                                                          const std::vector<std::string>& args,
                                                          const ChildOptions& options) {
  std::vector<std::string> full = {"netns", "exec", name_, program};
  full.insert(full.end(), args.begin(), args.end());
  return ChildProcess::Spawn("ip", full, options);
}

}  // namespace edgeflow::test_support
