// NetNamespace: a network namespace of its own for a test, with veth pairs, bridges and
// addresses, so that fan-out tests send real packets through the real kernel (tc programs,
// bridges, UDP sockets) without touching the machine's own interfaces.
//
// Everything is done with iproute2's `ip` (and `ip netns exec` for child processes); every exit
// status is checked and an error carries the command line and what `ip` wrote to stderr. It
// needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN: `ip netns add` mounts the namespace on
// /run/netns); HaveNetAdmin() tells whether that is there, for a GTEST_SKIP with the reason.
//
// Names: a namespace is `eft-<pid>-<n>`; interfaces get `ev<pid>-<n>a` / `ev<pid>-<n>b`
// (at most 15 characters, the kernel's limit), unique on the machine while the process lives,
// so that the end of a pair left in the root namespace names the test process that made it.
// A test binary killed before its destructors ran (a CTest timeout) leaves namespaces and links
// behind; the first NetNamespace a later test process creates removes those of dead processes.
//
// Thread-compatible: one thread sets a namespace up; Run() may be called from several threads.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/status.h"
#include "support/child_process.h"

namespace edgeflow::test_support {

// Whether this process can create network namespaces and links: root, CAP_NET_ADMIN and
// CAP_SYS_ADMIN effective, `ip` installed, and a probe namespace can really be added (a
// container may forbid it even to root). If not, `*why` says what is missing. Probed once per
// process.
bool HaveNetAdmin(std::string* why);

// Runs `ip ARGS...`, or `ip -n NETNS ARGS...` when `netns` is not empty; stdout on success.
// An error names the command line, its exit status and its stderr.
Result<std::string> RunIp(const std::string& netns, const std::vector<std::string>& args);

using MacAddress = std::array<uint8_t, 6>;
std::string FormatMac(const MacAddress& mac);  // "02:00:5e:10:00:01"

class NetNamespace;

// A veth pair made by NetNamespace::AddVethPair: two interfaces joined like a cable.
struct VethPair {
  std::string local;           // the end in the namespace that made the pair
  std::string peer;            // the other end
  std::string peer_namespace;  // the namespace the peer is in; empty = the root namespace
};

class NetNamespace {
 public:
  // Adds a fresh namespace and brings its loopback interface up. Fails with the `ip` error, e.g.
  // without privileges (check HaveNetAdmin first to skip instead).
  static Result<std::unique_ptr<NetNamespace>> Create();

  // Deletes the links this object made (so that a peer end in another namespace, the root one
  // included, disappears at once rather than whenever the kernel gets to it), then the
  // namespace. Processes still running in the namespace keep it alive: stopping them first (the
  // ChildProcess from Spawn) is the caller's job, and so is closing sockets made with Run, which
  // also hold it. Failures are printed to stderr, not fatal.
  ~NetNamespace();

  NetNamespace(const NetNamespace&) = delete;
  NetNamespace& operator=(const NetNamespace&) = delete;

  const std::string& name() const { return name_; }

  // A veth pair with one end here and the other in `peer` (nullptr: the root namespace, where
  // the test process itself runs). Both ends start down, without addresses.
  Result<VethPair> AddVethPair(const NetNamespace* peer = nullptr);

  // A Linux bridge `bridge` (any name: it is local to this namespace) with `members` (interfaces
  // of this namespace) as its ports, everything set up. STP is off, so a port forwards as soon
  // as it has a carrier (WaitForLinks). Frames to unknown or broadcast destinations are flooded
  // to every port.
  Status AddBridge(const std::string& bridge, const std::vector<std::string>& members);

  // `ip addr add CIDR dev INTERFACE` here ("10.1.0.1/24"; IPv4 gets the subnet's broadcast
  // address, so that a datagram to x.y.z.255 reaches every host of the subnet).
  Status AddAddress(const std::string& interface, const std::string& cidr);
  Status SetUp(const std::string& interface);

  // Waits until every interface here that is up has a carrier and is operationally up, and
  // every bridge port is forwarding: a veth has no carrier until both ends are up (so set the
  // other end up too, wherever it is; a bridge needs a port that is), and a frame sent before
  // that is lost. DeadlineExceeded names the interfaces still waiting and why.
  Status WaitForLinks(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // An interface of this namespace, as the namespace sees it (its index is per namespace).
  Result<int> Ifindex(const std::string& interface);
  Result<MacAddress> Mac(const std::string& interface);

  // Runs `fn` in this namespace, on a new thread that has entered it (setns(CLONE_NEWNET)), and
  // waits for it. A socket is bound to the namespace it is created in, for its whole life: a
  // socket made inside `fn` stays in this namespace after `fn` returned and can be used from any
  // thread; that is how a test opens a UDP socket inside a consumer's namespace. The calling
  // thread's namespace does not change. Gtest's EXPECT_* work inside `fn`, ASSERT_* too when `fn`
  // returns void (it returns from `fn` only). Returns fn's result, or the error that kept the
  // thread from entering.
  template <typename Fn>
  auto Run(Fn&& fn) -> Result<std::invoke_result_t<Fn&>> {
    using Value = std::invoke_result_t<Fn&>;
    if constexpr (std::is_void_v<Value>) {
      if (Status entered = RunInside([&] { fn(); }); !entered.ok()) return Error(entered);
      return {};
    } else {
      std::optional<Value> value;
      if (Status entered = RunInside([&] { value.emplace(fn()); }); !entered.ok()) {
        return Error(entered);
      }
      return std::move(*value);
    }
  }

  // Starts `program args...` in this namespace (`ip netns exec NAME ...`: it also sees this
  // namespace's interfaces in /sys). Stop it before the namespace goes away.
  Result<std::unique_ptr<ChildProcess>> Spawn(const std::string& program,
                                              const std::vector<std::string>& args,
                                              const ChildOptions& options = {});

 private:
  explicit NetNamespace(std::string name) : name_(std::move(name)) {}

  Status RunInside(const std::function<void()>& body);
  Result<std::string> Ip(const std::vector<std::string>& args) { return RunIp(name_, args); }

  std::string name_;
  std::vector<std::string> owned_links_;  // made here, deleted first in the destructor
};

}  // namespace edgeflow::test_support
