#include "cli/function_commands.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cli/cli_input.h"
#include "common/url_codec.h"

namespace edgeflow::cli {

namespace http = boost::beast::http;

namespace {

Result<nlohmann::json> JsonBody(const client::Response& response) {
  auto body = nlohmann::json::parse(response.body(), nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return Error(Status::Internal("unexpected answer from the node"));
  return body;
}

std::string Millis(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, ms < 10 ? "%.2f" : "%.0f", ms);
  return buf;
}

}  // namespace

int FunctionCommands::Deploy(const std::string& spec_path, bool json) {
  std::string spec;
  std::filesystem::path dir;
  std::string source = spec_path;
  if (spec_path == "-") {
    auto text = ReadInputValue(std::string("-"), "");
    if (!text) return ReportFailure(err_, text.error());
    spec = std::move(*text);
    dir = std::filesystem::current_path();
    source = "<stdin>";
  } else {
    std::ifstream in(spec_path, std::ios::binary);
    if (!in) return ReportFailure(err_, Status::IoError("cannot read " + spec_path));
    spec.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    std::error_code ec;
    dir = std::filesystem::absolute(spec_path, ec).parent_path();
  }
  const std::string target = "/v1/pipelines?dir=" + PercentEncode(dir.string(), /*keep_slash=*/true) +
                             "&source=" + PercentEncode(source, /*keep_slash=*/true);
  auto response = node_->http().Request(http::verb::post, target, std::move(spec),
                                        {{"Content-Type", "application/yaml"}});
  if (!response) return ReportFailure(err_, response.error());
  auto body = JsonBody(*response);
  if (response->result() != http::status::ok && response->result() != http::status::created) {
    // Spec problems come one per line, each with its place in the file.
    return ReportRefusal(err_, client::EdgeClient::StatusOf(*response));
  }
  if (!body) return ReportFailure(err_, body.error());
  if (json) {
    std::fprintf(out_, "%s\n", body->dump(2).c_str());
    return kExitOk;
  }
  std::string functions;
  for (const auto& f : (*body)["functions"]) {
    functions += (functions.empty() ? "" : ", ") + f.get<std::string>();
  }
  std::fprintf(out_, "%s pipeline %s (%s)\n",
               body->value("replaced", false) ? "replaced" : "deployed",
               body->value("pipeline", std::string("?")).c_str(), functions.c_str());
  return kExitOk;
}

int FunctionCommands::Undeploy(const std::string& pipeline) {
  auto response =
      node_->http().Request(http::verb::delete_, "/v1/pipelines/" + PercentEncode(pipeline, /*keep_slash=*/false));
  if (!response) return ReportFailure(err_, response.error());
  if (response->result() != http::status::ok) {
    return ReportRefusal(err_, client::EdgeClient::StatusOf(*response));
  }
  std::fprintf(out_, "undeployed pipeline %s\n", pipeline.c_str());
  return kExitOk;
}

int FunctionCommands::Ps(bool json) {
  auto response = node_->http().Request(http::verb::get, "/v1/functions");
  if (!response) return ReportFailure(err_, response.error());
  if (response->result() != http::status::ok) {
    return ReportRefusal(err_, client::EdgeClient::StatusOf(*response));
  }
  auto body = JsonBody(*response);
  if (!body || !(*body)["functions"].is_array()) {
    return ReportFailure(err_, Status::Internal("unexpected answer from the node"));
  }
  if (json) {
    std::fprintf(out_, "%s\n", body->dump(2).c_str());
    return kExitOk;
  }
  std::fprintf(out_, "%-32s %9s %7s %9s %10s %8s %8s %8s %9s %9s\n", "FUNCTION", "WORKERS",
               "QUEUED", "IN-FLIGHT", "DONE", "FAILED", "RETRIES", "JOINING", "P50(ms)",
               "P99(ms)");
  for (const auto& f : (*body)["functions"]) {
    const std::string name =
        f.value("pipeline", std::string("?")) + "/" + f.value("function", std::string("?"));
    const std::string workers = std::to_string(f.value("workers", 0)) + "/" +
                                std::to_string(f.value("max_workers", 0));
    std::fprintf(out_, "%-32s %9s %7llu %9llu %10llu %8llu %8llu %8llu %9s %9s\n", name.c_str(),
                 workers.c_str(), static_cast<unsigned long long>(f.value("queued", uint64_t{0})),
                 static_cast<unsigned long long>(f.value("in_flight", uint64_t{0})),
                 static_cast<unsigned long long>(f.value("done", uint64_t{0})),
                 static_cast<unsigned long long>(f.value("failed", uint64_t{0})),
                 static_cast<unsigned long long>(f.value("retries", uint64_t{0})),
                 static_cast<unsigned long long>(f.value("joining", uint64_t{0})),
                 Millis(f.value("latency_p50_ms", 0.0)).c_str(),
                 Millis(f.value("latency_p99_ms", 0.0)).c_str());
  }
  for (const auto& f : (*body)["functions"]) {
    const std::string error = f.value("last_error", std::string());
    if (!error.empty()) {
      std::fprintf(out_, "%s/%s: last error: %s\n", f.value("pipeline", std::string()).c_str(),
                   f.value("function", std::string()).c_str(), error.c_str());
    }
  }
  return kExitOk;
}

Result<std::pair<std::string, std::string>> FunctionCommands::ResolveFunction(
    const std::string& name) {
  if (const size_t slash = name.find('/'); slash != std::string::npos) {
    return std::make_pair(name.substr(0, slash), name.substr(slash + 1));
  }
  auto response = node_->http().Request(http::verb::get, "/v1/functions");
  if (!response) return Error(response.error());
  if (response->result() != http::status::ok) {
    return Error(client::EdgeClient::StatusOf(*response));
  }
  auto body = JsonBody(*response);
  if (!body) return Error(body.error());
  std::vector<std::string> pipelines;
  for (const auto& f : (*body)["functions"]) {
    if (f.value("function", std::string()) == name) {
      pipelines.push_back(f.value("pipeline", std::string()));
    }
  }
  if (pipelines.empty()) {
    return Error(Status::NotFound("no deployed function is called \"" + name + "\""));
  }
  if (pipelines.size() > 1) {
    std::string list;
    for (const std::string& p : pipelines) list += (list.empty() ? "" : ", ") + p + "/" + name;
    return Error(Status::InvalidArgument("\"" + name + "\" is in several pipelines; name one of " +
                                         list));
  }
  return std::make_pair(pipelines.front(), name);
}

int FunctionCommands::Logs(const LogsArgs& args) {
  auto resolved = ResolveFunction(args.function);
  if (!resolved) return ReportFailure(err_, resolved.error());
  const std::string base = "/v1/pipelines/" + PercentEncode(resolved->first, /*keep_slash=*/false) + "/functions/" +
                           PercentEncode(resolved->second, /*keep_slash=*/false) + "/logs";
  const auto start = std::chrono::steady_clock::now();
  std::string target = base + "?limit=" + std::to_string(args.lines);
  while (true) {
    auto response = node_->http().Request(http::verb::get, target);
    if (!response) return ReportFailure(err_, response.error());
    if (response->result() != http::status::ok) {
      return ReportRefusal(err_, client::EdgeClient::StatusOf(*response));
    }
    auto body = JsonBody(*response);
    if (!body || !(*body)["lines"].is_array()) {
      return ReportFailure(err_, Status::Internal("unexpected answer from the node"));
    }
    if (const uint64_t missed = body->value("missed", uint64_t{0}); missed > 0) {
      std::fprintf(err_, "(%llu lines were dropped by the node before they could be read)\n",
                   static_cast<unsigned long long>(missed));
    }
    for (const auto& line : (*body)["lines"]) {
      if (args.json) {
        std::fprintf(out_, "%s\n", line.dump().c_str());
        continue;
      }
      const int64_t at = line.value("at_ms", int64_t{0});
      const std::time_t seconds = static_cast<std::time_t>(at / 1000);
      std::tm tm{};
      gmtime_r(&seconds, &tm);
      char when[32];
      std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
      const std::string worker = line.value("worker", std::string());
      std::fprintf(out_, "%s.%03dZ %-7s %-5s %s%s\n", when, static_cast<int>(at % 1000),
                   line.value("source", std::string()).c_str(),
                   line.value("level", std::string()).c_str(),
                   worker.empty() ? "" : ("[" + worker.substr(worker.rfind('.') + 1) + "] ").c_str(),
                   line.value("message", std::string()).c_str());
    }
    std::fflush(out_);
    if (!args.follow) return kExitOk;
    if (args.wait_seconds > 0 &&
        std::chrono::steady_clock::now() - start > std::chrono::duration<double>(args.wait_seconds)) {
      return kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(args.poll_seconds));
    target = base + "?since=" + std::to_string(body->value("next", uint64_t{1})) + "&limit=1000";
  }
}

}  // namespace edgeflow::cli
