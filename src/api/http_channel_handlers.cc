#include "api/http_channel_handlers.h"

#include <nlohmann/json.hpp>

#include "api/http_json.h"
#include "api/http_params.h"
#include "channels/channel_name.h"
#include "channels/envelope.h"
#include "common/text_encoding.h"
#include "common/url_codec.h"

namespace edgeflow::api {
namespace {

namespace http = boost::beast::http;

nlohmann::json StatsJson(const channels::ChannelStats& stats, std::string_view tenant) {
  return {
      {"name", stats.name},
      {"topic", channels::ChannelTopic(tenant, stats.name)},
      {"messages", stats.messages},
      {"bytes", stats.bytes},
      {"messages_per_second", stats.messages_per_second},
      {"bytes_per_second", stats.bytes_per_second},
      {"last_message_ms", stats.last_message_ms},
  };
}

Result<channels::PublishRequest::Mode> ParseMode(std::string_view text) {
  if (text == "auto") return channels::PublishRequest::Mode::kAuto;
  if (text == "inline") return channels::PublishRequest::Mode::kInline;
  if (text == "ref" || text == "reference") return channels::PublishRequest::Mode::kReference;
  return Error(Status::InvalidArgument("mode must be auto, inline or ref"));
}

}  // namespace

HttpResponse HttpChannelHandlers::Handle(const HttpRequest& req, const RouteMatch& match) {
  if (services_.publisher == nullptr || services_.monitor == nullptr) {
    return MakeErrorResponse(req.version(),
                             Status::Unavailable("computation channels are turned off on this "
                                                 "node (mqtt.enabled: false)"),
                             req.keep_alive());
  }
  switch (match.route) {
    case HttpRoute::kChannelList:
      return List(req);
    case HttpRoute::kChannel:
      return Get(req, match);
    case HttpRoute::kChannelPublish:
      return Publish(req, match);
    default:
      return MakeErrorResponse(req.version(),
                               Status::Internal("request reached a handler that does not serve it"),
                               req.keep_alive());
  }
}

HttpResponse HttpChannelHandlers::List(const HttpRequest& req) {
  const std::string& tenant = services_.monitor->tenant();
  nlohmann::json list = nlohmann::json::array();
  for (const channels::ChannelStats& stats : services_.monitor->List()) {
    list.push_back(StatsJson(stats, tenant));
  }
  nlohmann::json body = {
      {"tenant", tenant},
      {"topic_prefix", channels::ChannelTopic(tenant, "")},
      {"rate_window_seconds", channels::ChannelMonitor::kRateWindowSeconds},
      {"untracked_messages", services_.monitor->untracked_messages()},
      {"channels", std::move(list)},
  };
  return MakeJsonResponse(req.version(), 200, DumpJson(body), req.keep_alive());
}

HttpResponse HttpChannelHandlers::Get(const HttpRequest& req, const RouteMatch& match) {
  if (Status s = channels::ValidateChannelName(match.channel); !s.ok()) {
    return MakeErrorResponse(req.version(), s, req.keep_alive());
  }
  auto stats = services_.monitor->Get(match.channel);
  if (!stats) {
    return MakeErrorResponse(req.version(),
                             Status::NotFound("nothing was published on channel '" + match.channel +
                                              "' since the node started"),
                             req.keep_alive());
  }
  return MakeJsonResponse(req.version(), 200,
                          DumpJson(StatsJson(*stats, services_.monitor->tenant())),
                          req.keep_alive());
}

HttpResponse HttpChannelHandlers::Publish(const HttpRequest& req, const RouteMatch& match) {
  auto fail = [&](const Status& s) {
    return MakeErrorResponse(req.version(), s, req.keep_alive());
  };
  if (Status s = channels::ValidateChannelName(match.channel); !s.ok()) return fail(s);
  auto query = QueryParams::Parse(match.query);
  if (!query) return fail(query.error());

  channels::PublishRequest request;
  request.channel = match.channel;
  request.data = req.body();
  if (auto key = query->Get("key")) {
    if (key->empty()) return fail(Status::InvalidArgument("key must not be empty"));
    request.key = *key;
  }
  if (auto ns = query->Get("ns")) {
    if (Status s = kv::ValidateWritableNamespace(*ns); !s.ok()) return fail(s);
    request.ns = *ns;
  }
  if (auto ttl = query->Get("ttl")) {
    if (*ttl == "none") {
      request.ttl_ms = 0;
    } else {
      auto millis = ParseTtlMillis(*ttl);
      if (!millis) return fail(millis.error());
      request.ttl_ms = *millis;
    }
  }
  if (auto stream = query->Get("stream")) {
    if (stream->empty() || stream->size() > 256 || !IsValidUtf8(*stream)) {
      return fail(Status::InvalidArgument("stream must be 1..256 bytes of UTF-8"));
    }
    request.stream = *stream;
  }
  if (auto mode = query->Get("mode")) {
    auto parsed = ParseMode(*mode);
    if (!parsed) return fail(parsed.error());
    request.mode = *parsed;
  }
  if (auto it = req.find(http::field::content_type); it != req.end()) {
    request.content_type = std::string(it->value());
  }
  if (auto it = req.find("traceparent"); it != req.end()) {
    request.trace_id = TraceIdFromTraceparent(it->value());
  }

  auto result = services_.publisher->Publish(request);
  if (!result) return fail(result.error());
  nlohmann::json body = {
      {"channel", request.channel},     {"topic", result->topic},
      {"item_id", result->item_id},     {"ns", result->ref.ns},
      {"key", result->ref.key},         {"ref", channels::RefPath(result->ref)},
      {"version", result->ref.version}, {"seq", result->seq},
      {"size", request.data.size()},    {"inline", result->inline_data},
      {"trace_id", result->trace_id},
  };
  return MakeJsonResponse(req.version(), 200, DumpJson(body), req.keep_alive());
}

}  // namespace edgeflow::api
