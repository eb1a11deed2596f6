#include "api/http_stream_handlers.h"

#include <arpa/inet.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "api/http_json.h"
#include "common/text_encoding.h"
#include "common/url_codec.h"
#include "fanout/fanout_service.h"
#include "fanout/fanout_text.h"

namespace edgeflow::api {
namespace {

namespace http = boost::beast::http;

// Far more than any valid body (names are at most 64 bytes); parsing a body of the server's value
// limit (megabytes) only to refuse it would be wasted work.
constexpr size_t kMaxBodyBytes = 16 << 10;
// Longer strings are refused before they reach the service or an error message.
constexpr size_t kMaxFieldBytes = 256;
// The status of a stream or consumer limit of the data path (eBPF map sizes): the request was
// fine, but the node cannot hold what it asks for. Not 413 (the body is not too large) and not
// 503 (waiting would not help): 507, "the server is unable to store the representation".
constexpr unsigned kHttpInsufficientStorage = 507;

constexpr std::array<std::string_view, 4> kStreamFields = {"name", "listen", "interface", "codec"};
constexpr std::array<std::string_view, 6> kConsumerFields = {"name", "address", "interface",
                                                             "mac",  "keep",    "mode"};
constexpr std::array<std::string_view, 2> kNeedFields = {"keep", "mode"};

std::string FieldList(std::span<const std::string_view> fields) {
  std::string out;
  for (std::string_view f : fields) out += (out.empty() ? "" : ", ") + std::string(f);
  return out;
}

// The request body as a JSON object with only `fields` in it.
Result<nlohmann::json> ParseBody(const HttpRequest& req, std::span<const std::string_view> fields) {
  const std::string& body = req.body();
  if (body.size() > kMaxBodyBytes) {
    return Error(Status::ResourceExhausted("request body too large (" +
                                           std::to_string(body.size()) + " bytes; at most " +
                                           std::to_string(kMaxBodyBytes) + ")"));
  }
  nlohmann::json json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return Error(Status::InvalidArgument("the body is not JSON; send a JSON object with " +
                                         FieldList(fields)));
  }
  if (!json.is_object()) {
    return Error(Status::InvalidArgument("the body must be a JSON object with " +
                                         FieldList(fields) + ", not " + json.type_name()));
  }
  for (const auto& [key, value] : json.items()) {
    bool known = false;
    for (std::string_view f : fields) known = known || key == f;
    if (!known) {
      return Error(Status::InvalidArgument("unknown field " + QuoteForError(key) +
                                           " (this request takes " + FieldList(fields) + ")"));
    }
  }
  return json;
}

// A string field: nullopt when absent or null; InvalidArgument when it is another type or too
// long (what an empty one means is the caller's business).
Result<std::optional<std::string>> StringField(const nlohmann::json& body, const char* field,
                                               std::string_view example) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) {
    return Error(Status::InvalidArgument(std::string("field \"") + field +
                                         "\" must be a string, like " + std::string(example) +
                                         ", not " + it->type_name()));
  }
  const std::string& text = it->get_ref<const std::string&>();
  if (text.size() > kMaxFieldBytes) {
    return Error(Status::InvalidArgument(std::string("field \"") + field + "\" is too long (" +
                                         std::to_string(text.size()) + " bytes; at most " +
                                         std::to_string(kMaxFieldBytes) + ")"));
  }
  return std::optional<std::string>(text);
}

Result<std::string> RequiredStringField(const nlohmann::json& body, const char* field,
                                        std::string_view example) {
  auto value = StringField(body, field, example);
  if (!value) return Error(std::move(value.error()));
  if (!*value) {
    return Error(Status::InvalidArgument(std::string("missing field \"") + field + "\" (like " +
                                         std::string(example) + ")"));
  }
  return std::move(**value);
}

// "IP:PORT" with an IPv4 literal and a port other than 0, as the data paths take addresses.
Result<HostPort> ParseIpv4Address(std::string_view text, const char* field) {
  auto parsed = ParseHostPort(text);
  in_addr ignored{};
  if (!parsed || parsed->port == 0 || ::inet_pton(AF_INET, parsed->host.c_str(), &ignored) != 1) {
    return Error(Status::InvalidArgument(std::string("field \"") + field +
                                         "\": " + QuoteForError(text) +
                                         " is not an IPv4 address with a port, like "
                                         "\"10.0.0.5:5000\""));
  }
  return *parsed;
}

// A field's value through one of fanout_text.h's parsers, the field named in the error.
template <typename Value>
Result<Value> FieldValue(const char* field, Result<Value> parsed) {
  if (!parsed) {
    return Error(Status::InvalidArgument(std::string("field \"") + field +
                                         "\": " + parsed.error().message()));
  }
  return parsed;
}

// A need from a body's "keep" and "mode", each defaulting to `current`'s.
// The need fields given in `body` ("keep", "mode"), checked.
Result<fanout::ConsumerNeedChange> ParseNeedChange(const nlohmann::json& body) {
  fanout::ConsumerNeedChange change;
  auto keep = StringField(body, "keep", "\"1/2\"");
  if (!keep) return Error(std::move(keep.error()));
  if (*keep) {
    auto fraction = fanout::ParseFraction(**keep);
    if (!fraction) {
      return Error(Status::InvalidArgument("field \"keep\": " + fraction.error().message()));
    }
    change.need = *fraction;
  }
  auto mode = StringField(body, "mode", "\"frame\"");
  if (!mode) return Error(std::move(mode.error()));
  if (*mode) {
    auto parsed = FieldValue("mode", fanout::ParseDropMode(**mode));
    if (!parsed) return Error(std::move(parsed.error()));
    change.mode = *parsed;
  }
  return change;
}

nlohmann::json ByClass(const std::array<uint64_t, EF_CLASS_COUNT>& counts) {
  return {{"unknown", counts[EF_CLASS_UNKNOWN]},
          {"reference", counts[EF_CLASS_REFERENCE]},
          {"differential", counts[EF_CLASS_DIFFERENTIAL]},
          {"other", counts[EF_CLASS_OTHER]}};
}

nlohmann::json ConsumerJson(const fanout::ConsumerStatus& status) {
  const fanout::ConsumerConfig& config = status.config;
  const fanout::ConsumerCounters& counters = status.counters;
  return {
      {"name", config.name},
      {"address", config.address.ToString()},
      {"interface", config.interface},
      {"mac",
       config.mac ? nlohmann::json(fanout::FormatMac(*config.mac)) : nlohmann::json(nullptr)},
      {"keep", fanout::FormatFraction(config.need.need)},
      {"mode", fanout::DropModeName(config.need.mode)},
      {"residual", fanout::FormatFraction(status.residual)},
      {"in_effect", fanout::FormatFraction(status.in_effect)},
      {"sent",
       {{"packets", ByClass(counters.sent_packets)}, {"bytes", ByClass(counters.sent_bytes)}}},
      {"dropped",
       {{"packets", ByClass(counters.dropped_packets)},
        {"bytes", ByClass(counters.dropped_bytes)}}},
      {"datagrams_sent", counters.datagrams_sent},
      {"datagrams_dropped", counters.datagrams_dropped},
      {"uninspected_datagrams", counters.uninspected_datagrams},
      {"payload_bytes_sent", counters.payload_bytes_sent},
      {"send_errors", counters.send_errors},
  };
}

nlohmann::json StreamJson(const fanout::StreamStatus& status) {
  const fanout::StreamConfig& config = status.config;
  // The report is the sensor's own JSON; anything else that came on its topic is not shown.
  nlohmann::json report = nullptr;
  if (!status.last_sensor_report.empty()) {
    auto parsed =
        nlohmann::json::parse(status.last_sensor_report, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object()) report = std::move(parsed);
  }
  nlohmann::json consumers = nlohmann::json::array();
  for (const fanout::ConsumerStatus& c : status.consumers) consumers.push_back(ConsumerJson(c));
  const fanout::StreamCounters& ingress = status.ingress;
  return {
      {"name", config.name},
      {"listen", config.listen.ToString()},
      {"interface", config.interface},
      {"codec", fanout::CodecName(config.codec)},
      {"datapath", fanout::DatapathName(status.datapath)},
      {"sensor",
       {{"keep", fanout::FormatFraction(status.sensor_keep)},
        {"mode", fanout::DropModeName(status.sensor_mode)},
        {"reported_keep", status.sensor_reported
                              ? nlohmann::json(fanout::FormatFraction(*status.sensor_reported))
                              : nlohmann::json(nullptr)},
        {"last_report", std::move(report)},
        {"last_report_ms", status.last_sensor_report_ms}}},
      {"ingress",
       {{"datagrams", ingress.packets},
        {"bytes", ingress.bytes},
        {"uninspected", ingress.uninspected},
        {"malformed", ingress.malformed},
        {"invalid_ts", ingress.invalid_ts},
        {"ts_packets", ByClass(ingress.ts_packets)}}},
      {"consumers", std::move(consumers)},
  };
}

HttpResponse ErrorOf(const HttpRequest& req, const Status& status) {
  if (status.Is(ErrorCode::kResourceExhausted)) {
    return MakeErrorResponse(req.version(), kHttpInsufficientStorage, ErrorCodeName(status.code()),
                             status.message(), req.keep_alive());
  }
  return MakeErrorResponse(req.version(), status, req.keep_alive());
}

// A malformed body: 400, or 413 when it is too large (not 507: the limit is the request's).
HttpResponse BodyErrorOf(const HttpRequest& req, const Status& status) {
  return MakeErrorResponse(req.version(), status, req.keep_alive());
}

std::string StreamPath(std::string_view stream) {
  return "/v1/streams/" + PercentEncode(stream, /*keep_slash=*/false);
}

}  // namespace

HttpResponse HttpStreamHandlers::Handle(const HttpRequest& req, const RouteMatch& match) {
  if (fanout_ == nullptr) {
    return MakeErrorResponse(
        req.version(),
        Status::Unavailable("the stream fan-out is turned off on this node (fanout.enabled is "
                            "false)"),
        req.keep_alive());
  }
  try {
    switch (match.route) {
      case HttpRoute::kStreamList:
        return req.method() == http::verb::post ? AddStream(req) : ListStreams(req);
      case HttpRoute::kStream:
        return req.method() == http::verb::delete_ ? RemoveStream(req, match)
                                                   : GetStream(req, match);
      case HttpRoute::kStreamConsumers:
        return AddConsumer(req, match);
      case HttpRoute::kStreamConsumer:
        switch (req.method()) {
          case http::verb::put:
            return SetNeed(req, match);
          case http::verb::delete_:
            return RemoveConsumer(req, match);
          default:
            return GetConsumer(req, match);
        }
      default:
        break;
    }
  } catch (const nlohmann::json::exception& e) {
    // Bodies are checked field by field before use, so this is a bug, not bad input.
    return MakeErrorResponse(req.version(),
                             Status::Internal(std::string("stream request failed: ") + e.what()),
                             req.keep_alive());
  }
  return MakeErrorResponse(req.version(),
                           Status::Internal("request reached a handler that does not serve it"),
                           req.keep_alive());
}

HttpResponse HttpStreamHandlers::ListStreams(const HttpRequest& req) {
  nlohmann::json streams = nlohmann::json::array();
  for (const fanout::StreamStatus& s : fanout_->ListStreams()) streams.push_back(StreamJson(s));
  const nlohmann::json body = {{"datapath", fanout::DatapathName(fanout_->datapath())},
                               {"streams", std::move(streams)}};
  return MakeJsonResponse(req.version(), 200, DumpJson(body), req.keep_alive());
}

HttpResponse HttpStreamHandlers::AddStream(const HttpRequest& req) {
  auto bad = [&](const Status& s) { return BodyErrorOf(req, s); };
  auto body = ParseBody(req, kStreamFields);
  if (!body) return bad(body.error());
  fanout::StreamConfig config;
  auto name = RequiredStringField(*body, "name", "\"cam1\"");
  if (!name) return bad(name.error());
  config.name = std::move(*name);
  auto listen = RequiredStringField(*body, "listen", "\"10.0.0.5:5000\"");
  if (!listen) return bad(listen.error());
  auto address = ParseIpv4Address(*listen, "listen");
  if (!address) return bad(address.error());
  config.listen = std::move(*address);
  auto interface = StringField(*body, "interface", "\"eth0\"");
  if (!interface) return bad(interface.error());
  if (*interface) config.interface = std::move(**interface);
  auto codec = StringField(*body, "codec", "\"h264\"");
  if (!codec) return bad(codec.error());
  if (*codec) {
    auto parsed = FieldValue("codec", fanout::ParseCodec(**codec));
    if (!parsed) return bad(parsed.error());
    config.codec = *parsed;
  }

  auto added = fanout_->AddStream(config);
  if (!added) return ErrorOf(req, added.error());
  HttpResponse res =
      MakeJsonResponse(req.version(), 201, DumpJson(StreamJson(*added)), req.keep_alive());
  res.set(http::field::location, StreamPath(added->config.name));
  return res;
}

HttpResponse HttpStreamHandlers::GetStream(const HttpRequest& req, const RouteMatch& match) {
  auto status = fanout_->GetStream(match.stream);
  if (!status) return ErrorOf(req, status.error());
  return MakeJsonResponse(req.version(), 200, DumpJson(StreamJson(*status)), req.keep_alive());
}

HttpResponse HttpStreamHandlers::RemoveStream(const HttpRequest& req, const RouteMatch& match) {
  if (Status s = fanout_->RemoveStream(match.stream); !s.ok()) return ErrorOf(req, s);
  return MakeJsonResponse(req.version(), 200,
                          DumpJson({{"stream", match.stream}, {"removed", true}}),
                          req.keep_alive());
}

HttpResponse HttpStreamHandlers::AddConsumer(const HttpRequest& req, const RouteMatch& match) {
  auto bad = [&](const Status& s) { return BodyErrorOf(req, s); };
  auto body = ParseBody(req, kConsumerFields);
  if (!body) return bad(body.error());
  fanout::ConsumerConfig config;
  auto name = RequiredStringField(*body, "name", "\"detector\"");
  if (!name) return bad(name.error());
  config.name = std::move(*name);
  auto address_text = RequiredStringField(*body, "address", "\"10.0.0.7:6000\"");
  if (!address_text) return bad(address_text.error());
  auto address = ParseIpv4Address(*address_text, "address");
  if (!address) return bad(address.error());
  config.address = std::move(*address);
  auto interface = StringField(*body, "interface", "\"eth0\"");
  if (!interface) return bad(interface.error());
  if (*interface) config.interface = std::move(**interface);
  auto mac = StringField(*body, "mac", "\"02:00:5e:10:00:01\"");
  if (!mac) return bad(mac.error());
  if (*mac) {
    auto parsed = FieldValue("mac", fanout::ParseMac(**mac));
    if (!parsed) return bad(parsed.error());
    config.mac = *parsed;
  }
  // Everything by default, dropped (when it is asked to) so that the rest still decodes.
  auto need = ParseNeedChange(*body);
  if (!need) return bad(need.error());
  config.need = need->AppliedTo(fanout::ConsumerNeed{fanout::Fraction::One(), EF_DROP_FRAME});

  auto added = fanout_->AddConsumer(match.stream, config);
  if (!added) return ErrorOf(req, added.error());
  HttpResponse res =
      MakeJsonResponse(req.version(), 201, DumpJson(ConsumerJson(*added)), req.keep_alive());
  res.set(http::field::location, StreamPath(match.stream) + "/consumers/" +
                                     PercentEncode(added->config.name, /*keep_slash=*/false));
  return res;
}

HttpResponse HttpStreamHandlers::GetConsumer(const HttpRequest& req, const RouteMatch& match) {
  auto stream = fanout_->GetStream(match.stream);
  if (!stream) return ErrorOf(req, stream.error());
  for (const fanout::ConsumerStatus& c : stream->consumers) {
    if (c.config.name == match.consumer) {
      return MakeJsonResponse(req.version(), 200, DumpJson(ConsumerJson(c)), req.keep_alive());
    }
  }
  return ErrorOf(req, Status::NotFound("stream " + QuoteForError(match.stream) +
                                       " has no consumer " + QuoteForError(match.consumer)));
}

HttpResponse HttpStreamHandlers::SetNeed(const HttpRequest& req, const RouteMatch& match) {
  auto bad = [&](const Status& s) { return BodyErrorOf(req, s); };
  auto body = ParseBody(req, kNeedFields);
  if (!body) return bad(body.error());
  auto change = ParseNeedChange(*body);
  if (!change) return bad(change.error());
  // What is not given stays as it is, so that `policy set --keep` does not reset the mode.
  if (!change->need && !change->mode) {
    return bad(Status::InvalidArgument(
        "nothing to change: give \"keep\" (like \"1/2\"), \"mode\" (frame or packet) or both"));
  }
  auto changed = fanout_->ChangeNeed(match.stream, match.consumer, *change);
  if (!changed) return ErrorOf(req, changed.error());
  return MakeJsonResponse(req.version(), 200, DumpJson(ConsumerJson(*changed)), req.keep_alive());
}

HttpResponse HttpStreamHandlers::RemoveConsumer(const HttpRequest& req, const RouteMatch& match) {
  if (Status s = fanout_->RemoveConsumer(match.stream, match.consumer); !s.ok()) {
    return ErrorOf(req, s);
  }
  return MakeJsonResponse(
      req.version(), 200,
      DumpJson({{"stream", match.stream}, {"consumer", match.consumer}, {"removed", true}}),
      req.keep_alive());
}

}  // namespace edgeflow::api
