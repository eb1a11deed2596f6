// HttpFunctionHandlers: the edge-function resources of the REST API (runtime::PipelineManager).
//
//   GET    /v1/pipelines           the deployed pipelines, each with its functions' figures
//   POST   /v1/pipelines           deploy (or replace) the pipeline whose YAML spec is the body
//          ?dir=/abs/path          resolve the spec's relative code paths against this directory
//                                  (on the node's file system; the CLI sends the spec's own)
//          ?source=NAME            the spec's name in error messages (default pipeline.yaml)
//          201 {"pipeline", "functions", "replaced": false, "deployed_at_ms"} (200 when replaced)
//          400 {"error": {...}, "problems": [{"line", "column", "path", "message"}]}
//   GET    /v1/pipelines/{p}       one pipeline: its spec and its functions' figures
//   DELETE /v1/pipelines/{p}       undeploy it
//   GET    /v1/pipelines/{p}/functions/{f}/logs   the function's recent log
//          ?limit=N                at most N lines (default 200, at most 5000): the last N,
//          ?since=SEQ              or those from sequence number SEQ on (to follow the log)
//          {"lines": [{"seq", "at_ms", "source", "level", "worker", "message"}], "next", "missed"}
//   GET    /v1/functions           every deployed function with its figures (`edgeflow ps`)
//
// A node without edge functions answers 503 on these routes.
#pragma once

#include "api/http_response.h"
#include "api/http_router.h"
#include "api/http_services.h"

namespace edgeflow::api {

class HttpFunctionHandlers {
 public:
  explicit HttpFunctionHandlers(runtime::PipelineManager* pipelines) : pipelines_(pipelines) {}

  // REQUIRES: match.route is one of the function routes and match.method_allowed.
  HttpResponse Handle(const HttpRequest& req, const RouteMatch& match);

 private:
  HttpResponse ListPipelines(const HttpRequest& req);
  HttpResponse Deploy(const HttpRequest& req, const RouteMatch& match);
  HttpResponse GetPipeline(const HttpRequest& req, const RouteMatch& match);
  HttpResponse Undeploy(const HttpRequest& req, const RouteMatch& match);
  HttpResponse Logs(const HttpRequest& req, const RouteMatch& match);
  HttpResponse ListFunctions(const HttpRequest& req);

  runtime::PipelineManager* const pipelines_;
};

}  // namespace edgeflow::api
