// BrokerSupervisor: runs the node's Mosquitto broker as a child process and keeps it running.
//
// Start() writes <dir>/mosquitto.conf, starts `mosquitto -c <conf>` and returns once the broker is
// healthy: it is alive, it owns the MQTT (and websockets) listening sockets, and a TCP connect to
// the MQTT listener succeeds. Checking that the child owns the sockets matters: when another
// process already listens on the port, a bare connect succeeds while Mosquitto is about to exit
// with "Address already in use".
//
// From then on a supervising thread owns the child. When the broker exits for any reason other
// than Stop(), the exit is logged and the broker is started again on the same ports after an
// exponential back-off (BrokerConfig::restart_backoff_*); restarts() counts these. A broker that
// dies before it ever became healthy is not restarted: Start() fails instead, with the end of
// mosquitto.log and of mosquitto.stdout in the message, because that is almost always a
// configuration or environment problem that retrying would only hide.
//
// The broker gets PR_SET_PDEATHSIG(SIGTERM), so it stops when edgeflowd dies, even by SIGKILL.
// The kernel sends that signal when the *thread* that forked exits, which is why every fork
// happens on the supervising thread, which lives until Stop(). Linux >= 5.3 (pidfd_open).
//
// Lifecycle: Create(config) -> Start() -> Stop() (idempotent, also run by the destructor); a
// stopped supervisor cannot be started again. Thread-safety: the accessors may be called from any
// thread at any time; Start() and Stop() from one thread at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "channels/mosquitto_config.h"
#include "common/host_port.h"
#include "common/status.h"

namespace edgeflow::channels {

class BrokerSupervisor {
 public:
  // Validates `config` (InvalidArgument) and makes its paths absolute; starts nothing.
  static Result<std::unique_ptr<BrokerSupervisor>> Create(BrokerConfig config);
  ~BrokerSupervisor();

  BrokerSupervisor(const BrokerSupervisor&) = delete;
  BrokerSupervisor& operator=(const BrokerSupervisor&) = delete;

  // Creates the directory, turns port 0s into free ports, writes mosquitto.conf, starts the
  // broker and waits up to config.start_timeout for it to become healthy. Unavailable when the
  // binary cannot be run or the broker does not become healthy, with the reason and the broker's
  // last log lines in the message; the broker is then stopped.
  Status Start();

  // Stops the broker (SIGTERM, SIGKILL after config.stop_timeout), reaps it and ends the
  // supervising thread. Idempotent.
  void Stop() noexcept;

  // The listeners with their real ports (valid once Start() has resolved them).
  HostPort mqtt_address() const;
  std::optional<HostPort> ws_address() const;

  pid_t pid() const;          // the running broker's pid, 0 if none
  uint64_t restarts() const;  // brokers started again after an exit
  bool healthy() const;

 private:
  struct Child;

  explicit BrokerSupervisor(BrokerConfig config);

  void Supervise();  // the supervising thread
  Result<Child> Launch();
  // Waits for the child to exit or for Stop(); marks the broker healthy when it is. Returns how
  // the child ended, or nullopt if Stop() ended it.
  std::optional<std::string> Watch(Child& child, bool* ever_healthy,
                                   std::chrono::milliseconds* backoff);
  void Terminate(Child& child);
  bool ProbeHealth(pid_t pid) const;
  bool WaitForBackoff(std::chrono::milliseconds delay);  // false if Stop() was asked
  bool StopRequested() const;
  // "<log path>: line | line; <stdout path>: line": the last lines the current (or last) broker
  // wrote, for error messages.
  std::string RecentBrokerOutput(size_t max_lines) const;

  BrokerConfig config_;  // ports resolved by Start()
  std::filesystem::path conf_path_;
  std::filesystem::path log_path_;
  std::filesystem::path stdout_path_;
  std::vector<std::string> argv_;
  int wake_fd_ = -1;  // eventfd: Stop() wakes the supervising thread out of poll()
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // stop_requested_, healthy_, start_failure_ changed
  bool started_ = false;
  bool stop_requested_ = false;
  pid_t pid_ = 0;
  bool healthy_ = false;
  uint64_t restarts_ = 0;
  std::optional<std::string> start_failure_;  // why the first broker never became healthy
  // Sizes of the output files when the current broker was launched, so that error messages
  // show only what that broker wrote.
  uintmax_t log_offset_ = 0;
  uintmax_t stdout_offset_ = 0;
};

}  // namespace edgeflow::channels
