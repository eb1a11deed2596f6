// DaemonTest: the GoogleTest fixture of the integration suite. Each test gets its own temporary
// directory, starts real edgeflowd processes in it, and talks to them over loopback.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/daemon_process.h"
#include "support/http_client.h"
#include "support/resp_client.h"
#include "support/temp_dir.h"

namespace edgeflow::test_support {

class DaemonTest : public ::testing::Test {
 protected:
  // Starts edgeflowd with data dir "<temp>/<data_name>" on loopback port 0 plus `extra_args`.
  // Records a test failure (with the daemon's log) and returns nullptr if it does not start.
  std::unique_ptr<DaemonProcess> StartDaemon(const std::vector<std::string>& extra_args = {},
                                             const std::string& data_name = "data");
  std::unique_ptr<DaemonProcess> StartDaemon(DaemonOptions options);

  std::unique_ptr<HttpClient> Http(const DaemonProcess& daemon);
  // Records a test failure and returns nullptr if the connection fails.
  std::unique_ptr<RespClient> Resp(const DaemonProcess& daemon);

  // Writes `text` to "<temp>/<name>" and returns the path.
  std::filesystem::path WriteFile(const std::string& name, const std::string& text);

  TempDir temp_;
};

// Unix milliseconds now (to compare with the node's timestamps).
inline int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Polls `probe` every 20 ms until it holds or `timeout` passed; returns whether it held.
template <typename Probe>
bool PollUntil(Probe probe, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (probe()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Whether `text` contains `part`; the failure message shows both (texts cut to 2000 bytes).
::testing::AssertionResult Contains(const std::string& text, std::string_view part);

// Unwraps a Result in a test body, failing the test (and returning) on error. Usable only in
// functions returning void, as GoogleTest's ASSERT_* are.
#define EF_ASSERT_OK_AND_ASSIGN(lhs, expr) \
  EF_ASSERT_OK_AND_ASSIGN_IMPL(EF_CONCAT(ef_result_, __LINE__), lhs, expr)
#define EF_ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr)                              \
  auto tmp = (expr);                                                              \
  ASSERT_TRUE(tmp.has_value()) << #expr << " failed: " << tmp.error().ToString(); \
  lhs = std::move(*tmp)
#define EF_CONCAT(a, b) EF_CONCAT_IMPL(a, b)
#define EF_CONCAT_IMPL(a, b) a##b

}  // namespace edgeflow::test_support
