#include "support/daemon_process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

namespace edgeflow::test_support {
namespace {

constexpr const char* kListenFileName = "edgeflowd.listen.json";

std::string ReadWholeFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

const char* DaemonBinary() { return EDGEFLOWD_PATH; }
const char* CliBinary() { return EDGEFLOW_CLI_PATH; }

Result<ListenInfo> ReadListenFile(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return Error(Status::NotFound(path.string() + " does not exist"));
  }
  const std::string text = ReadWholeFile(path);
  auto bad = [&](const std::string& why) {
    return Error(Status::Corruption("listen file " + path.string() + " " + why + ": " + text));
  };
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return bad("is not a JSON object");
  ListenInfo info;
  if (!doc.contains("pid") || !doc["pid"].is_number_integer()) return bad("has no integer pid");
  info.pid = doc["pid"].get<pid_t>();
  if (!doc.contains("node_id") || !doc["node_id"].is_string()) return bad("has no node_id");
  info.node_id = doc["node_id"].get<std::string>();
  for (auto [field, target] : {std::pair{"http", &info.http}, std::pair{"resp", &info.resp}}) {
    if (!doc.contains(field) || !doc[field].is_string()) {
      return bad(std::string("has no ") + field + " address");
    }
    auto parsed = ParseHostPort(doc[field].get<std::string>());
    if (!parsed.has_value()) return bad(parsed.error().message());
    if (parsed->port == 0) return bad(std::string("reports port 0 for ") + field);
    *target = *parsed;
  }
  // Present when the node runs channels (mqtt) and its own broker (mqtt_ws, broker_pid).
  for (auto [field, target] :
       {std::pair{"mqtt", &info.mqtt}, std::pair{"mqtt_ws", &info.mqtt_ws}}) {
    if (!doc.contains(field)) continue;
    if (!doc[field].is_string()) return bad(std::string(field) + " is not a string");
    auto parsed = ParseHostPort(doc[field].get<std::string>());
    if (!parsed.has_value()) return bad(parsed.error().message());
    *target = *parsed;
  }
  if (doc.contains("broker_pid")) {
    if (!doc["broker_pid"].is_number_integer()) return bad("has a broker_pid that is no number");
    info.broker_pid = doc["broker_pid"].get<pid_t>();
  }
  return info;
}

Result<std::unique_ptr<DaemonProcess>> DaemonProcess::Start(DaemonOptions options) {
  if (options.data_dir.empty()) {
    return Error(Status::InvalidArgument("DaemonOptions.data_dir is required"));
  }
  std::unique_ptr<DaemonProcess> daemon(new DaemonProcess());
  if (options.cwd.empty()) options.cwd = options.data_dir.parent_path();
  if (options.log_path.empty()) options.log_path = options.data_dir.string() + ".log";
  daemon->options_ = options;

  std::vector<std::string> args;
  if (options.pass_data_dir) {
    args.push_back("--data-dir");
    args.push_back(options.data_dir.string());
  }
  if (options.pass_loopback_listen) {
    args.insert(args.end(), {"--http-listen", "127.0.0.1:0", "--resp-listen", "127.0.0.1:0",
                             "--mqtt-listen", "127.0.0.1:0", "--mqtt-ws-listen", "127.0.0.1:0"});
  }
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  {
    std::ofstream log(options.log_path, std::ios::app);
    log << "=== edgeflowd";
    for (const auto& a : args) log << ' ' << a;
    log << " ===\n";
  }

  ChildOptions child_options;
  child_options.cwd = options.cwd;
  child_options.stdout_path = options.log_path;
  child_options.stderr_path = options.log_path;
  auto child = ChildProcess::Spawn(DaemonBinary(), args, child_options);
  if (!child.has_value()) return Error(child.error());
  daemon->child_ = std::move(*child);

  const auto deadline = std::chrono::steady_clock::now() + options.start_timeout;
  const auto listen_path = daemon->listen_file();
  std::string last_problem = "no listen file yet";
  for (;;) {
    auto info = ReadListenFile(listen_path);
    if (info.has_value() && info->pid == daemon->child_->pid()) {
      daemon->listen_ = *info;
      return daemon;
    }
    if (info.has_value()) {
      last_problem = "listen file has pid " + std::to_string(info->pid) + ", not " +
                     std::to_string(daemon->child_->pid());
    } else if (!info.error().Is(ErrorCode::kNotFound)) {
      // The file is written with tmp+rename, so a half-written file is a real problem; keep
      // polling anyway in case the daemon rewrites it, but remember why.
      last_problem = info.error().message();
    }
    if (auto exit = daemon->child_->Wait(std::chrono::milliseconds(0)); exit.has_value()) {
      return Error(Status::Unavailable("edgeflowd exited during start-up (" + exit->ToString() +
                                       "); log:\n" + daemon->Log()));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      daemon->Kill();
      return Error(Status::Unavailable("edgeflowd did not become ready in time (" + last_problem +
                                       "); log:\n" + daemon->Log()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

DaemonProcess::~DaemonProcess() {
  if (child_ != nullptr && child_->IsRunning()) Kill();
  if (::testing::Test::HasFailure()) {
    std::fprintf(stderr, "---- edgeflowd log (%s) ----\n%s---- end of edgeflowd log ----\n",
                 options_.log_path.c_str(), Log().c_str());
  }
}

std::filesystem::path DaemonProcess::listen_file() const {
  return options_.data_dir / kListenFileName;
}

ExitStatus DaemonProcess::Stop(int signo, std::chrono::milliseconds timeout) {
  child_->Signal(signo);
  if (auto exit = child_->Wait(timeout); exit.has_value()) return *exit;
  std::fprintf(stderr, "edgeflowd (pid %d) did not stop within %lld ms of signal %d; killing it\n",
               static_cast<int>(child_->pid()), static_cast<long long>(timeout.count()), signo);
  Kill();
  return child_->Wait(std::chrono::milliseconds(0)).value_or(ExitStatus{});
}

void DaemonProcess::Kill() {
  child_->Signal(SIGKILL);
  child_->Wait(std::chrono::seconds(30));
}

std::string DaemonProcess::Log() const { return ReadWholeFile(options_.log_path); }

}  // namespace edgeflow::test_support
