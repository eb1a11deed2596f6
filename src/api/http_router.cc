#include "api/http_router.h"

#include "common/url_codec.h"

namespace edgeflow::api {
namespace {

constexpr std::string_view kReadOnly = "GET, HEAD";
constexpr std::string_view kItemMethods = "GET, HEAD, PUT, POST, DELETE";
constexpr std::string_view kGetOnly = "GET";
constexpr std::string_view kPostOnly = "POST";
constexpr std::string_view kListAndCreate = "GET, HEAD, POST";
constexpr std::string_view kReadAndDelete = "GET, HEAD, DELETE";
constexpr std::string_view kReadReplaceAndDelete = "GET, HEAD, PUT, DELETE";
constexpr std::string_view kPublishSuffix = "/publish";

bool Allows(HttpRoute route, HttpMethod method) {
  switch (route) {
    case HttpRoute::kHealthz:
    case HttpRoute::kMetrics:
    case HttpRoute::kNode:
    case HttpRoute::kKvList:
    case HttpRoute::kChannelList:
    case HttpRoute::kChannel:
    case HttpRoute::kFunctionList:
      return method == HttpMethod::kGet || method == HttpMethod::kHead;
    case HttpRoute::kPipelineList:
    case HttpRoute::kStreamList:
      return method == HttpMethod::kGet || method == HttpMethod::kHead ||
             method == HttpMethod::kPost;
    case HttpRoute::kPipeline:
    case HttpRoute::kStream:
      return method == HttpMethod::kGet || method == HttpMethod::kHead ||
             method == HttpMethod::kDelete;
    case HttpRoute::kStreamConsumers:
      return method == HttpMethod::kPost;
    case HttpRoute::kStreamConsumer:
      return method == HttpMethod::kGet || method == HttpMethod::kHead ||
             method == HttpMethod::kPut || method == HttpMethod::kDelete;
    case HttpRoute::kFunctionLogs:
      return method == HttpMethod::kGet;
    case HttpRoute::kChannelPublish:
      return method == HttpMethod::kPost;
    case HttpRoute::kKvItem:
      return method != HttpMethod::kOther;
    case HttpRoute::kWatch:
      return method == HttpMethod::kGet;
    case HttpRoute::kUnknown:
      return false;
  }
  return false;
}

std::string_view AllowHeader(HttpRoute route) {
  switch (route) {
    case HttpRoute::kKvItem:
      return kItemMethods;
    case HttpRoute::kWatch:
      return kGetOnly;
    case HttpRoute::kChannelPublish:
    case HttpRoute::kStreamConsumers:
      return kPostOnly;
    case HttpRoute::kPipelineList:
    case HttpRoute::kStreamList:
      return kListAndCreate;
    case HttpRoute::kPipeline:
    case HttpRoute::kStream:
      return kReadAndDelete;
    case HttpRoute::kStreamConsumer:
      return kReadReplaceAndDelete;
    case HttpRoute::kFunctionLogs:
      return kGetOnly;
    default:
      return kReadOnly;
  }
}

bool ConsumePrefix(std::string_view* text, std::string_view prefix) {
  if (!text->starts_with(prefix)) return false;
  text->remove_prefix(prefix.size());
  return true;
}

Status NotFound(std::string_view path) {
  std::string shown(path.substr(0, 200));
  return Status::NotFound("no resource at '" + shown +
                          "' (try /v1/kv/{ns}/{key}, /v1/kv/{ns}, /v1/watch/{ns}, "
                          "/v1/channels, /v1/channels/{channel}/publish, /v1/pipelines, "
                          "/v1/functions, /v1/streams, /v1/node, /healthz, /metrics)");
}

// One path segment, decoded; NotFound (for `path`) when it is empty.
Result<std::string> DecodeSegment(std::string_view segment, std::string_view path) {
  if (segment.empty()) return Error(NotFound(path));
  return PercentDecode(segment, /*plus_as_space=*/false);
}

// {s}, {s}/consumers or {s}/consumers/{c}: what follows "/v1/streams/".
Status MatchStreamPath(std::string_view rest, std::string_view path, RouteMatch* match) {
  const size_t slash = rest.find('/');
  auto stream = DecodeSegment(rest.substr(0, slash), path);
  if (!stream) return stream.error();
  match->stream = std::move(*stream);
  if (slash == std::string_view::npos) {
    match->route = HttpRoute::kStream;
    return Status::Ok();
  }
  std::string_view tail = rest.substr(slash);
  if (tail == "/consumers" || tail == "/consumers/") {
    match->route = HttpRoute::kStreamConsumers;
    return Status::Ok();
  }
  if (!ConsumePrefix(&tail, "/consumers/") || tail.find('/') != std::string_view::npos) {
    return NotFound(path);
  }
  auto consumer = DecodeSegment(tail, path);
  if (!consumer) return consumer.error();
  match->consumer = std::move(*consumer);
  match->route = HttpRoute::kStreamConsumer;
  return Status::Ok();
}

}  // namespace

HttpMethod ParseHttpMethod(std::string_view name) {
  if (name == "GET") return HttpMethod::kGet;
  if (name == "HEAD") return HttpMethod::kHead;
  if (name == "PUT") return HttpMethod::kPut;
  if (name == "POST") return HttpMethod::kPost;
  if (name == "DELETE") return HttpMethod::kDelete;
  return HttpMethod::kOther;
}

std::string_view HttpMethodName(HttpMethod method) {
  switch (method) {
    case HttpMethod::kGet:
      return "GET";
    case HttpMethod::kHead:
      return "HEAD";
    case HttpMethod::kPut:
      return "PUT";
    case HttpMethod::kPost:
      return "POST";
    case HttpMethod::kDelete:
      return "DELETE";
    case HttpMethod::kOther:
      return "OTHER";
  }
  return "OTHER";
}

std::string_view HttpRouteName(HttpRoute route) {
  switch (route) {
    case HttpRoute::kHealthz:
      return "healthz";
    case HttpRoute::kMetrics:
      return "metrics";
    case HttpRoute::kNode:
      return "node";
    case HttpRoute::kKvList:
      return "kv_list";
    case HttpRoute::kKvItem:
      return "kv_item";
    case HttpRoute::kWatch:
      return "watch";
    case HttpRoute::kChannelList:
      return "channel_list";
    case HttpRoute::kChannel:
      return "channel";
    case HttpRoute::kChannelPublish:
      return "channel_publish";
    case HttpRoute::kPipelineList:
      return "pipeline_list";
    case HttpRoute::kPipeline:
      return "pipeline";
    case HttpRoute::kFunctionLogs:
      return "function_logs";
    case HttpRoute::kFunctionList:
      return "function_list";
    case HttpRoute::kStreamList:
      return "stream_list";
    case HttpRoute::kStream:
      return "stream";
    case HttpRoute::kStreamConsumers:
      return "stream_consumers";
    case HttpRoute::kStreamConsumer:
      return "stream_consumer";
    case HttpRoute::kUnknown:
      return "unknown";
  }
  return "unknown";
}

Result<RouteMatch> MatchRoute(HttpMethod method, std::string_view target) {
  auto parts = SplitTarget(target);
  if (!parts) return Error(parts.error());
  RouteMatch match;
  match.query = parts->query;
  std::string_view path = parts->path;

  if (path == "/healthz") {
    match.route = HttpRoute::kHealthz;
  } else if (path == "/metrics") {
    match.route = HttpRoute::kMetrics;
  } else if (path == "/v1/node") {
    match.route = HttpRoute::kNode;
  } else if (std::string_view rest = path; ConsumePrefix(&rest, "/v1/kv/")) {
    size_t slash = rest.find('/');
    auto ns = PercentDecode(rest.substr(0, slash), /*plus_as_space=*/false);
    if (!ns) return Error(ns.error());
    match.ns = std::move(*ns);
    if (slash == std::string_view::npos) {
      if (match.ns.empty()) return Error(NotFound(path));
      match.route = HttpRoute::kKvList;
    } else {
      auto key = PercentDecode(rest.substr(slash + 1), /*plus_as_space=*/false);
      if (!key) return Error(key.error());
      match.key = std::move(*key);
      match.route = HttpRoute::kKvItem;
    }
  } else if (std::string_view rest2 = path; ConsumePrefix(&rest2, "/v1/watch/")) {
    if (rest2.empty() || rest2.find('/') != std::string_view::npos) return Error(NotFound(path));
    auto ns = PercentDecode(rest2, /*plus_as_space=*/false);
    if (!ns) return Error(ns.error());
    match.ns = std::move(*ns);
    match.route = HttpRoute::kWatch;
  } else if (path == "/v1/channels" || path == "/v1/channels/") {
    match.route = HttpRoute::kChannelList;
  } else if (std::string_view rest3 = path; ConsumePrefix(&rest3, "/v1/channels/")) {
    match.route = HttpRoute::kChannel;
    if (rest3.ends_with(kPublishSuffix) && rest3.size() > kPublishSuffix.size()) {
      rest3.remove_suffix(kPublishSuffix.size());
      match.route = HttpRoute::kChannelPublish;
    }
    auto channel = PercentDecode(rest3, /*plus_as_space=*/false);
    if (!channel) return Error(channel.error());
    match.channel = std::move(*channel);
  } else if (path == "/v1/pipelines" || path == "/v1/pipelines/") {
    match.route = HttpRoute::kPipelineList;
  } else if (path == "/v1/functions" || path == "/v1/functions/") {
    match.route = HttpRoute::kFunctionList;
  } else if (path == "/v1/streams" || path == "/v1/streams/") {
    match.route = HttpRoute::kStreamList;
  } else if (std::string_view rest5 = path; ConsumePrefix(&rest5, "/v1/streams/")) {
    if (Status s = MatchStreamPath(rest5, path, &match); !s.ok()) return Error(std::move(s));
  } else if (std::string_view rest4 = path; ConsumePrefix(&rest4, "/v1/pipelines/")) {
    // {p} or {p}/functions/{f}/logs; names are single segments.
    const size_t slash = rest4.find('/');
    auto pipeline = PercentDecode(rest4.substr(0, slash), /*plus_as_space=*/false);
    if (!pipeline) return Error(pipeline.error());
    if (pipeline->empty()) return Error(NotFound(path));
    match.pipeline = std::move(*pipeline);
    if (slash == std::string_view::npos) {
      match.route = HttpRoute::kPipeline;
    } else {
      std::string_view tail = rest4.substr(slash);
      if (!ConsumePrefix(&tail, "/functions/") || !tail.ends_with("/logs")) {
        return Error(NotFound(path));
      }
      tail.remove_suffix(std::string_view("/logs").size());
      if (tail.empty() || tail.find('/') != std::string_view::npos) return Error(NotFound(path));
      auto function = PercentDecode(tail, /*plus_as_space=*/false);
      if (!function) return Error(function.error());
      match.function = std::move(*function);
      match.route = HttpRoute::kFunctionLogs;
    }
  } else {
    return Error(NotFound(path));
  }
  match.method_allowed = Allows(match.route, method);
  match.allow = AllowHeader(match.route);
  return match;
}

}  // namespace edgeflow::api
