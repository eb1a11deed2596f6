// DaemonProcess: a real edgeflowd started by a test, on kernel-chosen loopback ports, in the
// test's own data directory.
//
// Start() waits until the daemon has written <data-dir>/edgeflowd.listen.json (it does so once
// every listener is bound) with this process's pid, so a stale file left by a killed predecessor
// is never mistaken for readiness. The daemon's stdout and stderr go to a log file, which is
// printed when the test that owns the daemon has failed. If the daemon is still running when the
// object goes away it is killed with SIGKILL.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/host_port.h"
#include "common/status.h"
#include "support/child_process.h"

namespace edgeflow::test_support {

// Absolute paths of the binaries under test (set by tests/CMakeLists.txt).
const char* DaemonBinary();
const char* CliBinary();

struct DaemonOptions {
  std::filesystem::path data_dir;  // required: where the listen file is looked for
  // Pass --data-dir data_dir (turn off to test a data dir taken from a config file).
  bool pass_data_dir = true;
  // Pass --http-listen, --resp-listen, --mqtt-listen and --mqtt-ws-listen 127.0.0.1:0.
  bool pass_loopback_listen = true;
  std::vector<std::string> extra_args;
  std::filesystem::path cwd;       // empty = the parent of data_dir
  std::filesystem::path log_path;  // empty = "<data_dir>.log" (appended to on every start)
  std::chrono::milliseconds start_timeout{std::chrono::seconds(30)};
};

// The contents of the listen file.
struct ListenInfo {
  pid_t pid = 0;
  std::string node_id;
  HostPort http;
  HostPort resp;
  HostPort mqtt;     // port 0 when the node runs no channels
  HostPort mqtt_ws;  // port 0 when the node runs no broker or no websockets listener
  pid_t broker_pid = 0;
};

// Reads and checks a listen file; errors say what is wrong with it.
Result<ListenInfo> ReadListenFile(const std::filesystem::path& path);

class DaemonProcess {
 public:
  static Result<std::unique_ptr<DaemonProcess>> Start(DaemonOptions options);
  ~DaemonProcess();

  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  const ListenInfo& listen() const { return listen_; }
  uint16_t http_port() const { return listen_.http.port; }
  uint16_t resp_port() const { return listen_.resp.port; }
  uint16_t mqtt_port() const { return listen_.mqtt.port; }
  std::string http_url() const { return "http://" + listen_.http.ToString(); }
  pid_t pid() const { return child_->pid(); }
  std::filesystem::path listen_file() const;

  bool IsRunning() { return child_->IsRunning(); }
  // Sends `signo` and waits up to `timeout` for the daemon to exit (then kills it with SIGKILL
  // and reports that in the returned status's term_signal).
  ExitStatus Stop(int signo = SIGTERM,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // SIGKILL now, and reap.
  void Kill();

  // The log file's contents (all starts that share it).
  std::string Log() const;

 private:
  DaemonProcess() = default;

  DaemonOptions options_;
  std::unique_ptr<ChildProcess> child_;
  ListenInfo listen_;
};

}  // namespace edgeflow::test_support
