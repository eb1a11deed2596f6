#include "api/http_function_handlers.h"

#include <nlohmann/json.hpp>

#include "api/http_json.h"
#include "api/http_params.h"
#include "common/url_codec.h"

namespace edgeflow::api {
namespace {

namespace http = boost::beast::http;

constexpr size_t kDefaultLogLines = 200;
constexpr size_t kMaxLogLines = 5000;

nlohmann::json FunctionJson(const runtime::FunctionStats& s) {
  return {
      {"pipeline", s.pipeline},
      {"function", s.function},
      {"workers", s.workers},
      {"busy_workers", s.busy_workers},
      {"min_workers", s.min_workers},
      {"max_workers", s.max_workers},
      {"queued", s.queued},
      {"joining", s.joining},
      {"in_flight", s.in_flight},
      {"done", s.done},
      {"failed", s.failed},
      {"retries", s.retries},
      {"duplicates", s.duplicates},
      {"expired_unjoined", s.expired_unjoined},
      {"rejected", s.rejected},
      {"worker_starts", s.worker_starts},
      {"worker_failures", s.worker_failures},
      {"batched", s.batched},
      {"latency_p50_ms", static_cast<double>(s.latency_p50_us) / 1000.0},
      {"latency_p99_ms", static_cast<double>(s.latency_p99_us) / 1000.0},
      {"exec_p50_ms", static_cast<double>(s.exec_p50_us) / 1000.0},
      {"exec_p99_ms", static_cast<double>(s.exec_p99_us) / 1000.0},
      {"last_error", s.last_error},
  };
}

nlohmann::json PipelineJson(const runtime::PipelineInfo& info, bool with_spec) {
  nlohmann::json functions = nlohmann::json::array();
  for (const runtime::FunctionStats& f : info.functions) functions.push_back(FunctionJson(f));
  nlohmann::json out = {{"name", info.name},
                        {"deployed_at_ms", info.deployed_at_ms},
                        {"functions", std::move(functions)}};
  if (with_spec) out["spec"] = info.spec;
  return out;
}

}  // namespace

HttpResponse HttpFunctionHandlers::Handle(const HttpRequest& req, const RouteMatch& match) {
  if (pipelines_ == nullptr) {
    return MakeErrorResponse(req.version(),
                             Status::Unavailable("edge functions are turned off on this node "
                                                 "(functions.enabled or mqtt.enabled is false)"),
                             req.keep_alive());
  }
  switch (match.route) {
    case HttpRoute::kPipelineList:
      return req.method() == http::verb::post ? Deploy(req, match) : ListPipelines(req);
    case HttpRoute::kPipeline:
      return req.method() == http::verb::delete_ ? Undeploy(req, match) : GetPipeline(req, match);
    case HttpRoute::kFunctionLogs:
      return Logs(req, match);
    case HttpRoute::kFunctionList:
      return ListFunctions(req);
    default:
      return MakeErrorResponse(req.version(),
                               Status::Internal("request reached a handler that does not serve it"),
                               req.keep_alive());
  }
}

HttpResponse HttpFunctionHandlers::ListPipelines(const HttpRequest& req) {
  nlohmann::json list = nlohmann::json::array();
  for (const runtime::PipelineInfo& info : pipelines_->List()) {
    list.push_back(PipelineJson(info, /*with_spec=*/false));
  }
  return MakeJsonResponse(req.version(), 200, DumpJson({{"pipelines", std::move(list)}}),
                          req.keep_alive());
}

HttpResponse HttpFunctionHandlers::Deploy(const HttpRequest& req, const RouteMatch& match) {
  auto fail = [&](const Status& s) { return MakeErrorResponse(req.version(), s, req.keep_alive()); };
  auto query = QueryParams::Parse(match.query);
  if (!query) return fail(query.error());
  std::string source = "pipeline.yaml";
  if (auto given = query->Get("source"); given && !given->empty()) {
    source = std::string(given->substr(0, 256));
  }
  std::filesystem::path dir;
  if (auto given = query->Get("dir")) {
    dir = std::string(*given);
    if (!dir.is_absolute()) {
      return fail(Status::InvalidArgument("dir must be an absolute path on the node, not '" +
                                          dir.string() + "'"));
    }
  }
  const std::string& spec = req.body();
  // Every problem, with its place, for tools that point at the spec's lines.
  runtime::SpecParseResult parsed = runtime::ParsePipelineSpec(spec);
  if (!parsed.ok()) {
    const Status status = parsed.ToStatus(source);
    nlohmann::json problems = nlohmann::json::array();
    for (const runtime::SpecProblem& p : parsed.problems) {
      problems.push_back(
          {{"line", p.line}, {"column", p.column}, {"path", p.path}, {"message", p.message}});
    }
    nlohmann::json body = nlohmann::json::parse(ErrorBody(status));
    body["problems"] = std::move(problems);
    return MakeJsonResponse(req.version(), 400, DumpJson(body), req.keep_alive());
  }
  for (const runtime::FunctionSpec& f : parsed.spec.functions) {
    const bool relative = (!f.code_dir.empty() && std::filesystem::path(f.code_dir).is_relative()) ||
                          (!f.image.empty() && std::filesystem::path(f.image).is_relative());
    if (relative && dir.empty()) {
      return fail(Status::InvalidArgument(
          "function \"" + f.name + "\" names its code by a relative path; give ?dir= (the "
          "directory the spec is in) or use absolute paths"));
    }
  }
  auto deployed = pipelines_->Deploy(spec, dir, source);
  if (!deployed) return fail(deployed.error());
  const nlohmann::json body = {{"pipeline", deployed->pipeline},
                               {"functions", deployed->functions},
                               {"replaced", deployed->replaced},
                               {"deployed_at_ms", deployed->deployed_at_ms}};
  return MakeJsonResponse(req.version(), deployed->replaced ? 200 : 201, DumpJson(body),
                          req.keep_alive());
}

HttpResponse HttpFunctionHandlers::GetPipeline(const HttpRequest& req, const RouteMatch& match) {
  auto info = pipelines_->Get(match.pipeline);
  if (!info) return MakeErrorResponse(req.version(), info.error(), req.keep_alive());
  return MakeJsonResponse(req.version(), 200, DumpJson(PipelineJson(*info, /*with_spec=*/true)),
                          req.keep_alive());
}

HttpResponse HttpFunctionHandlers::Undeploy(const HttpRequest& req, const RouteMatch& match) {
  if (Status s = pipelines_->Undeploy(match.pipeline); !s.ok()) {
    return MakeErrorResponse(req.version(), s, req.keep_alive());
  }
  return MakeJsonResponse(req.version(), 200,
                          DumpJson({{"pipeline", match.pipeline}, {"undeployed", true}}),
                          req.keep_alive());
}

HttpResponse HttpFunctionHandlers::Logs(const HttpRequest& req, const RouteMatch& match) {
  auto fail = [&](const Status& s) { return MakeErrorResponse(req.version(), s, req.keep_alive()); };
  auto query = QueryParams::Parse(match.query);
  if (!query) return fail(query.error());
  size_t limit = kDefaultLogLines;
  if (auto given = query->Get("limit")) {
    auto n = ParseUnsigned(*given, "limit");
    if (!n) return fail(n.error());
    if (*n == 0 || *n > kMaxLogLines) {
      return fail(Status::InvalidArgument("limit must be between 1 and " +
                                          std::to_string(kMaxLogLines)));
    }
    limit = *n;
  }
  std::optional<uint64_t> since;
  if (auto given = query->Get("since")) {
    auto n = ParseUnsigned(*given, "since");
    if (!n) return fail(n.error());
    since = *n;
  }
  auto page = pipelines_->ReadLog(match.pipeline, match.function, since, limit);
  if (!page) return fail(page.error());
  nlohmann::json lines = nlohmann::json::array();
  for (const runtime::FunctionLogLine& line : page->lines) {
    lines.push_back({{"seq", line.seq},
                     {"at_ms", line.at_ms},
                     {"source", line.source},
                     {"level", line.level},
                     {"worker", line.worker},
                     {"message", line.message}});
  }
  const nlohmann::json body = {
      {"lines", std::move(lines)}, {"next", page->next_seq}, {"missed", page->missed}};
  return MakeJsonResponse(req.version(), 200, DumpJson(body), req.keep_alive());
}

HttpResponse HttpFunctionHandlers::ListFunctions(const HttpRequest& req) {
  nlohmann::json list = nlohmann::json::array();
  for (const runtime::PipelineInfo& info : pipelines_->List()) {
    for (const runtime::FunctionStats& f : info.functions) list.push_back(FunctionJson(f));
  }
  return MakeJsonResponse(req.version(), 200, DumpJson({{"functions", std::move(list)}}),
                          req.keep_alive());
}

}  // namespace edgeflow::api
