// Routing of HTTP requests to the REST resources of the node. Boost-free, like url_codec.h, so the
// fuzzer can drive it with arbitrary targets.
//
//   /healthz                  GET HEAD
//   /metrics                  GET HEAD
//   /v1/node                  GET HEAD
//   /v1/kv/{ns}               GET HEAD            (listing)
//   /v1/kv/{ns}/{key...}      GET HEAD PUT POST DELETE
//   /v1/watch/{ns}            GET                 (Server-Sent Events)
//   /v1/channels              GET HEAD            (channels seen, with rates)
//   /v1/channels/{ch...}      GET HEAD            (one channel's counts and rates)
//   /v1/channels/{ch...}/publish  POST            (put-then-publish)
//   /v1/pipelines             GET HEAD POST       (deployed pipelines; POST deploys a spec)
//   /v1/pipelines/{p}         GET HEAD DELETE     (one pipeline; DELETE undeploys it)
//   /v1/pipelines/{p}/functions/{f}/logs  GET     (a function's recent log)
//   /v1/functions             GET HEAD            (every deployed function, with its figures)
//   /v1/streams               GET HEAD POST       (fan-out streams; POST adds one)
//   /v1/streams/{s}           GET HEAD DELETE     (one stream's status; DELETE removes it)
//   /v1/streams/{s}/consumers POST                (adds a consumer to the stream)
//   /v1/streams/{s}/consumers/{c}  GET HEAD PUT DELETE  (one consumer; PUT sets its need)
//
// {ns} is one percent-decoded path segment; {key...} is the whole rest of the path, decoded, so a
// key may contain '/' (written as is or as %2F). Dot segments are not special: keys are opaque.
// {ch...} is a channel name, which may contain '/'; a path ending in "/publish" is the publish
// resource of the channel before it (so channel "a/publish" publishes at
// /v1/channels/a/publish/publish). {s} and {c} are single segments (stream and consumer names).
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"

namespace edgeflow::api {

enum class HttpMethod { kGet, kHead, kPut, kPost, kDelete, kOther };
inline constexpr size_t kHttpMethodCount = 6;

enum class HttpRoute {
  kHealthz,
  kMetrics,
  kNode,
  kKvList,
  kKvItem,
  kWatch,
  kChannelList,
  kChannel,
  kChannelPublish,
  kPipelineList,
  kPipeline,
  kFunctionLogs,
  kFunctionList,
  kStreamList,
  kStream,
  kStreamConsumers,
  kStreamConsumer,
  kUnknown
};
inline constexpr size_t kHttpRouteCount = 18;

HttpMethod ParseHttpMethod(std::string_view name);   // case-sensitive, as HTTP methods are
std::string_view HttpMethodName(HttpMethod method);  // "GET", ..., "OTHER"
std::string_view HttpRouteName(HttpRoute route);     // "kv_item", ...; used as a metric label

struct RouteMatch {
  HttpRoute route = HttpRoute::kUnknown;
  std::string ns;          // decoded; may still be an invalid namespace (checked by the handler)
  std::string key;         // decoded; may be empty or too long (checked by the handler)
  std::string channel;     // decoded; may be an invalid channel name (checked by the handler)
  std::string pipeline;    // decoded pipeline name (checked by the handler)
  std::string function;    // decoded function name (checked by the handler)
  std::string stream;      // decoded fan-out stream name (checked by the service)
  std::string consumer;    // decoded consumer name (checked by the service)
  std::string_view query;  // raw query string, a view into the target passed to MatchRoute
  bool method_allowed = true;
  std::string_view allow;  // the methods the resource supports, for a 405's Allow header
};

// Errors: InvalidArgument for a malformed target (bad percent-escape, control bytes, ...),
// NotFound for a path that names no resource. A known resource with a method it does not support
// is a match with method_allowed = false.
Result<RouteMatch> MatchRoute(HttpMethod method, std::string_view target);

}  // namespace edgeflow::api
