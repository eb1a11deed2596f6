#include "client/edge_client.h"

#include <nlohmann/json.hpp>

#include "channels/channel_name.h"
#include "common/url_codec.h"

namespace edgeflow::client {
namespace {

namespace http = boost::beast::http;

std::string_view ModeName(PublishOptions::Mode mode) {
  switch (mode) {
    case PublishOptions::Mode::kInline:
      return "inline";
    case PublishOptions::Mode::kReference:
      return "ref";
    case PublishOptions::Mode::kAuto:
      break;
  }
  return "auto";
}

Result<nlohmann::json> ParseJsonBody(const Response& response) {
  auto json = nlohmann::json::parse(response.body(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return Error(Status::Internal("the node answered with a body that is not a JSON object"));
  }
  return json;
}

}  // namespace

EdgeClient::EdgeClient(ServerUrl server, std::chrono::milliseconds timeout)
    : http_(std::move(server), timeout) {}

Status EdgeClient::StatusOf(const Response& response) {
  std::string code;
  std::string message = response.body().substr(0, 1000);
  auto json = nlohmann::json::parse(response.body(), nullptr, /*allow_exceptions=*/false);
  if (json.is_object() && json.contains("error") && json["error"].is_object()) {
    code = json["error"].value("code", "");
    message = json["error"].value("message", message);
  }
  ErrorCode error = ErrorCodeFromName(code);
  if (code.empty()) {
    switch (response.result()) {
      case http::status::not_found:
        error = ErrorCode::kNotFound;
        break;
      case http::status::bad_request:
        error = ErrorCode::kInvalidArgument;
        break;
      case http::status::service_unavailable:
        error = ErrorCode::kUnavailable;
        break;
      default:
        break;
    }
    message = "HTTP " + std::to_string(response.result_int()) + ": " + message;
  }
  return Status(error, message);
}

Result<Publication> EdgeClient::Publish(std::string_view channel, std::string_view data,
                                        const PublishOptions& options) {
  if (Status s = channels::ValidateChannelName(channel); !s.ok()) return Error(std::move(s));
  std::string target = "/v1/channels/" + PercentEncode(channel, /*keep_slash=*/true) +
                       "/publish?mode=" + std::string(ModeName(options.mode));
  if (!options.key.empty()) target += "&key=" + PercentEncode(options.key, false);
  if (!options.ns.empty()) target += "&ns=" + PercentEncode(options.ns, false);
  if (!options.ttl.empty()) target += "&ttl=" + PercentEncode(options.ttl, false);
  if (!options.stream.empty()) target += "&stream=" + PercentEncode(options.stream, false);
  Headers headers;
  if (!options.content_type.empty()) headers["Content-Type"] = options.content_type;
  if (!options.traceparent.empty()) headers["traceparent"] = options.traceparent;
  auto response = http_.Request(http::verb::post, target, std::string(data), headers);
  if (!response) return Error(std::move(response.error()));
  if (response->result() != http::status::ok) return Error(StatusOf(*response));
  auto json = ParseJsonBody(*response);
  if (!json) return Error(std::move(json.error()));
  try {
    Publication out;
    out.channel = json->at("channel").get<std::string>();
    out.topic = json->at("topic").get<std::string>();
    out.item_id = json->at("item_id").get<std::string>();
    out.ref.ns = json->at("ns").get<std::string>();
    out.ref.key = json->at("key").get<std::string>();
    out.ref.version = json->at("version").get<std::string>();
    out.seq = json->at("seq").get<uint64_t>();
    out.size = json->at("size").get<uint64_t>();
    out.inline_data = json->at("inline").get<bool>();
    out.trace_id = json->at("trace_id").get<std::string>();
    return out;
  } catch (const nlohmann::json::exception& e) {
    return Error(Status::Internal(std::string("unexpected publish response: ") + e.what()));
  }
}

Result<ItemData> EdgeClient::Read(const channels::ItemRef& ref) {
  auto response = http_.Request(http::verb::get, channels::RefPath(ref));
  if (!response) return Error(std::move(response.error()));
  if (response->result() == http::status::not_found) {
    Status s = StatusOf(*response);
    return Error(Status::NotFound("item " + channels::RefPath(ref) +
                                  " is gone (expired or deleted): " + s.message()));
  }
  if (response->result() != http::status::ok) return Error(StatusOf(*response));
  ItemData item;
  item.value = std::move(response->body());
  if (auto it = response->find("EKV-Version"); it != response->end()) {
    item.version = std::string(it->value());
  }
  if (auto it = response->find(http::field::content_type); it != response->end()) {
    item.content_type = std::string(it->value());
  }
  return item;
}

Result<ChannelsInfo> EdgeClient::Channels() {
  auto response = http_.Request(http::verb::get, "/v1/node");
  if (!response) return Error(std::move(response.error()));
  if (response->result() != http::status::ok) return Error(StatusOf(*response));
  auto json = ParseJsonBody(*response);
  if (!json) return Error(std::move(json.error()));
  const nlohmann::json channels = json->value("channels", nlohmann::json::object());
  if (!channels.value("enabled", false)) {
    return Error(Status::Unavailable("computation channels are turned off on the node at " +
                                     http_.server().ToString()));
  }
  ChannelsInfo info;
  info.tenant = channels.value("tenant", "");
  info.topic_prefix = channels.value("topic_prefix", "");
  auto mqtt = ParseHostPort(channels.value("mqtt", ""));
  if (!mqtt || info.tenant.empty()) {
    return Error(Status::Internal("the node reports no usable MQTT address or tenant"));
  }
  info.mqtt = *mqtt;
  // A broker listening on every interface is reached where the HTTP API was.
  if (info.mqtt.host == "0.0.0.0" || info.mqtt.host == "::") info.mqtt.host = http_.server().host;
  return info;
}

}  // namespace edgeflow::client
