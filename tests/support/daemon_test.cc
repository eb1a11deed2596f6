#include "support/daemon_test.h"

#include <fstream>

namespace edgeflow::test_support {

std::unique_ptr<DaemonProcess> DaemonTest::StartDaemon(const std::vector<std::string>& extra_args,
                                                       const std::string& data_name) {
  DaemonOptions options;
  options.data_dir = temp_.Sub(data_name);
  options.extra_args = extra_args;
  return StartDaemon(std::move(options));
}

std::unique_ptr<DaemonProcess> DaemonTest::StartDaemon(DaemonOptions options) {
  auto daemon = DaemonProcess::Start(std::move(options));
  if (!daemon.has_value()) {
    ADD_FAILURE() << "edgeflowd did not start: " << daemon.error().ToString();
    return nullptr;
  }
  return std::move(*daemon);
}

std::unique_ptr<HttpClient> DaemonTest::Http(const DaemonProcess& daemon) {
  return std::make_unique<HttpClient>(daemon.listen().http.host, daemon.http_port());
}

std::unique_ptr<RespClient> DaemonTest::Resp(const DaemonProcess& daemon) {
  auto client = RespClient::Connect(daemon.listen().resp.host, daemon.resp_port());
  if (!client.has_value()) {
    ADD_FAILURE() << client.error().ToString();
    return nullptr;
  }
  return std::move(*client);
}

std::filesystem::path DaemonTest::WriteFile(const std::string& name, const std::string& text) {
  auto path = temp_.Sub(name);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return path;
}

::testing::AssertionResult Contains(const std::string& text, std::string_view part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  std::string shown = text.size() > 2000 ? text.substr(0, 2000) + "..." : text;
  return ::testing::AssertionFailure() << "\"" << part << "\" not found in \"" << shown << "\"";
}

}  // namespace edgeflow::test_support
