// HttpHandlers: turns one complete request into one response, for every route except the watch
// stream (HttpWatchStream), which answers with a stream rather than a single response.
//
// Thread-safety: Handle() may be called from many I/O threads at once; the handlers keep no
// per-request state. Store calls are made on the calling thread.
#pragma once

#include "api/http_channel_handlers.h"
#include "api/http_function_handlers.h"
#include "api/http_response.h"
#include "api/http_router.h"
#include "api/http_server.h"
#include "api/http_stream_handlers.h"

namespace edgeflow::api {

class HttpHandlers {
 public:
  HttpHandlers(const HttpServerConfig& config, kv::Store* store, metrics::Registry* registry,
               NodeInfoProvider node_info, HttpServices channels);

  // REQUIRES: match.route != kWatch and match.method_allowed. Never throws.
  HttpResponse Handle(HttpRequest& req, const RouteMatch& match);

 private:
  HttpResponse Healthz(const HttpRequest& req);
  HttpResponse Metrics(const HttpRequest& req);
  HttpResponse Node(const HttpRequest& req);
  HttpResponse KvGet(const HttpRequest& req, const RouteMatch& match);
  HttpResponse KvPut(HttpRequest& req, const RouteMatch& match);
  HttpResponse KvDelete(const HttpRequest& req, const RouteMatch& match);
  HttpResponse KvList(const HttpRequest& req, const RouteMatch& match);

  // Namespace and key checks shared by the item routes (the key limit is the server's; writes may
  // not go to the node's own namespace): the error response (414 for a key over the limit), or
  // nothing when the address is valid.
  std::optional<HttpResponse> RejectBadItemAddress(const HttpRequest& req, const RouteMatch& match,
                                                   bool write) const;
  HttpResponse ErrorResponse(const HttpRequest& req, const Status& status) const;

  const HttpServerConfig& config_;
  kv::Store* store_;
  metrics::Registry* registry_;
  NodeInfoProvider node_info_;
  HttpChannelHandlers channel_handlers_;
  HttpFunctionHandlers function_handlers_;
  HttpStreamHandlers stream_handlers_;
};

}  // namespace edgeflow::api
