#include "api/http_handlers.h"

#include <algorithm>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>

#include "api/http_json.h"
#include "api/http_params.h"
#include "common/url_codec.h"

namespace edgeflow::api {
namespace {

namespace http = boost::beast::http;

constexpr size_t kDefaultListLimit = 100;
constexpr size_t kMaxListLimit = 10000;
constexpr std::string_view kDefaultContentType = "application/octet-stream";
constexpr std::string_view kTtlHeader = "EKV-TTL";

std::string ETagOf(std::string_view version) { return "\"" + std::string(version) + "\""; }

// A stored content type goes back into a response header. It normally came from a header, but
// other front-ends may store anything: never let it break the response framing.
std::string_view SafeContentType(std::string_view stored) {
  if (stored.empty() || stored.size() > 256) return kDefaultContentType;
  for (char ch : stored) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return kDefaultContentType;
  }
  return stored;
}

void SetItemHeaders(HttpResponse* res, const kv::ItemMeta& meta) {
  const std::string version = meta.version.ToString();
  res->set(http::field::etag, ETagOf(version));
  res->set("EKV-Version", version);
  res->set("EKV-Seq", std::to_string(meta.seq));
  if (meta.expires_at_ms != 0) res->set("EKV-Expires-At", std::to_string(meta.expires_at_ms));
}

HttpResponse WriteResultResponse(const HttpRequest& req, const kv::WriteResult& result) {
  nlohmann::json body;
  const std::string version = result.version.ToString();
  body["version"] = version;
  body["seq"] = result.seq;
  HttpResponse res = MakeJsonResponse(req.version(), 200, DumpJson(body), req.keep_alive());
  res.set(http::field::etag, ETagOf(version));
  return res;
}

// The header's value, or nullopt when the header is absent.
std::optional<std::string_view> HeaderValue(const HttpRequest& req, http::field field) {
  auto it = req.find(field);
  if (it == req.end()) return std::nullopt;
  return it->value();
}

std::optional<std::string_view> HeaderValue(const HttpRequest& req, std::string_view name) {
  auto it = req.find(name);
  if (it == req.end()) return std::nullopt;
  return it->value();
}

Result<kv::Version> ParseVersionTag(const EntityTagCondition& cond) {
  auto version = kv::Version::Parse(cond.tag);
  if (!version) {
    return Error(Status::InvalidArgument("If-Match: " + version.error().message()));
  }
  return *version;
}

}  // namespace

HttpHandlers::HttpHandlers(const HttpServerConfig& config, kv::Store* store,
                           metrics::Registry* registry, NodeInfoProvider node_info,
                           HttpServices channels)
    : config_(config),
      store_(store),
      registry_(registry),
      node_info_(std::move(node_info)),
      channel_handlers_(channels),
      function_handlers_(channels.pipelines),
      stream_handlers_(channels.fanout) {}

HttpResponse HttpHandlers::Handle(HttpRequest& req, const RouteMatch& match) {
  try {
    switch (match.route) {
      case HttpRoute::kHealthz:
        return Healthz(req);
      case HttpRoute::kMetrics:
        return Metrics(req);
      case HttpRoute::kNode:
        return Node(req);
      case HttpRoute::kKvList:
        return KvList(req, match);
      case HttpRoute::kKvItem:
        switch (req.method()) {
          case http::verb::get:
          case http::verb::head:
            return KvGet(req, match);
          case http::verb::put:
          case http::verb::post:
            return KvPut(req, match);
          case http::verb::delete_:
            return KvDelete(req, match);
          default:
            break;
        }
        break;
      case HttpRoute::kChannelList:
      case HttpRoute::kChannel:
      case HttpRoute::kChannelPublish:
        return channel_handlers_.Handle(req, match);
      case HttpRoute::kPipelineList:
      case HttpRoute::kPipeline:
      case HttpRoute::kFunctionLogs:
      case HttpRoute::kFunctionList:
        return function_handlers_.Handle(req, match);
      case HttpRoute::kStreamList:
      case HttpRoute::kStream:
      case HttpRoute::kStreamConsumers:
      case HttpRoute::kStreamConsumer:
        return stream_handlers_.Handle(req, match);
      case HttpRoute::kWatch:
      case HttpRoute::kUnknown:
        break;
    }
    return ErrorResponse(req, Status::Internal("request reached a handler that does not serve it"));
  } catch (const std::exception& e) {
    return ErrorResponse(req, Status::Internal(std::string("request failed: ") + e.what()));
  }
}

HttpResponse HttpHandlers::ErrorResponse(const HttpRequest& req, const Status& status) const {
  return MakeErrorResponse(req.version(), status, req.keep_alive());
}

HttpResponse HttpHandlers::Healthz(const HttpRequest& req) {
  return MakeJsonResponse(req.version(), 200, R"({"status":"ok"})", req.keep_alive());
}

HttpResponse HttpHandlers::Metrics(const HttpRequest& req) {
  HttpResponse res{http::status::ok, req.version()};
  res.set(http::field::server, kServerName);
  res.set(http::field::content_type, "text/plain; version=0.0.4");
  res.keep_alive(req.keep_alive());
  res.body() = registry_->RenderPrometheus();
  res.prepare_payload();
  return res;
}

HttpResponse HttpHandlers::Node(const HttpRequest& req) {
  std::string body = node_info_ ? node_info_() : std::string("{}");
  return MakeJsonResponse(req.version(), 200, std::move(body), req.keep_alive());
}

std::optional<HttpResponse> HttpHandlers::RejectBadItemAddress(const HttpRequest& req,
                                                               const RouteMatch& match,
                                                               bool write) const {
  Status s = write ? kv::ValidateWritableNamespace(match.ns) : kv::ValidateNamespace(match.ns);
  if (s.ok() && match.key.empty()) {
    s = Status::InvalidArgument(
        "key must not be empty (to list a namespace, use GET /v1/kv/{ns} without the slash)");
  }
  if (s.ok()) s = kv::ValidateKey(match.key, config_.max_key_bytes);
  if (s.ok()) return std::nullopt;
  if (s.Is(ErrorCode::kResourceExhausted)) {
    return MakeErrorResponse(req.version(), 414, ErrorCodeName(s.code()), s.message(),
                             req.keep_alive());
  }
  return ErrorResponse(req, s);
}

HttpResponse HttpHandlers::KvGet(const HttpRequest& req, const RouteMatch& match) {
  if (auto rejected = RejectBadItemAddress(req, match, /*write=*/false)) {
    return std::move(*rejected);
  }
  const bool head = req.method() == http::verb::head;
  std::optional<EntityTagCondition> if_none_match;
  if (auto value = HeaderValue(req, http::field::if_none_match)) {
    auto cond = ParseEntityTagCondition(*value);
    if (!cond) return ErrorResponse(req, cond.error());
    if_none_match = std::move(*cond);
  }

  // HEAD and conditional GETs look at the metadata first, so that neither reads a large value
  // only to throw it away.
  std::optional<kv::Item> item;
  kv::ItemMeta meta;
  if (head || if_none_match) {
    auto found = store_->Head(match.ns, match.key);
    if (!found) return ErrorResponse(req, found.error());
    meta = std::move(*found);
  } else {
    auto found = store_->Get(match.ns, match.key);
    if (!found) return ErrorResponse(req, found.error());
    item = std::move(*found);
    meta = item->meta;
  }

  if (if_none_match && (if_none_match->any || if_none_match->tag == meta.version.ToString())) {
    HttpResponse res{http::status::not_modified, req.version()};
    res.set(http::field::server, kServerName);
    res.keep_alive(req.keep_alive());
    SetItemHeaders(&res, meta);
    return res;
  }
  if (!head && !item) {
    auto found = store_->Get(match.ns, match.key);
    if (!found) return ErrorResponse(req, found.error());
    item = std::move(*found);
    meta = item->meta;
  }

  HttpResponse res{http::status::ok, req.version()};
  res.set(http::field::server, kServerName);
  res.set(http::field::content_type, SafeContentType(meta.content_type));
  res.keep_alive(req.keep_alive());
  SetItemHeaders(&res, meta);
  if (head) {
    // No body, but the length the GET would have.
    res.content_length(meta.size);
  } else {
    res.body() = std::move(item->value);  // values can be megabytes: move, never copy
    res.prepare_payload();
  }
  return res;
}

HttpResponse HttpHandlers::KvPut(HttpRequest& req, const RouteMatch& match) {
  if (auto rejected = RejectBadItemAddress(req, match, /*write=*/true)) return std::move(*rejected);
  auto query = QueryParams::Parse(match.query);
  if (!query) return ErrorResponse(req, query.error());

  kv::PutOptions options;
  auto ttl_param = query->Get("ttl");
  auto ttl_header = HeaderValue(req, kTtlHeader);
  if (ttl_param && ttl_header) {
    return ErrorResponse(
        req,
        Status::InvalidArgument("give the TTL either as ?ttl= or as the EKV-TTL header, not both"));
  }
  if (ttl_param || ttl_header) {
    auto ttl = ParseTtlMillis(ttl_param ? *ttl_param : *ttl_header);
    if (!ttl) return ErrorResponse(req, ttl.error());
    options.ttl_ms = *ttl;
  }
  if (auto type = HeaderValue(req, http::field::content_type)) options.content_type = *type;

  auto if_match = HeaderValue(req, http::field::if_match);
  auto if_none_match = HeaderValue(req, http::field::if_none_match);
  if (if_match && if_none_match) {
    return ErrorResponse(
        req, Status::InvalidArgument("If-Match and If-None-Match cannot be combined on a write"));
  }
  if (if_match) {
    auto cond = ParseEntityTagCondition(*if_match);
    if (!cond) return ErrorResponse(req, cond.error());
    if (cond->any) {
      options.condition = kv::PutCondition::kIfPresent;
    } else {
      auto version = ParseVersionTag(*cond);
      if (!version) return ErrorResponse(req, version.error());
      options.if_version = *version;
    }
  }
  if (if_none_match) {
    auto cond = ParseEntityTagCondition(*if_none_match);
    if (!cond) return ErrorResponse(req, cond.error());
    if (!cond->any) {
      return ErrorResponse(
          req,
          Status::InvalidArgument("only 'If-None-Match: *' (create only) is supported on writes"));
    }
    options.condition = kv::PutCondition::kIfAbsent;
  }

  auto result = store_->Put(match.ns, match.key, req.body(), options);
  // A failed create-only or If-Match condition is FailedPrecondition: 412.
  if (!result) return ErrorResponse(req, result.error());
  return WriteResultResponse(req, *result);
}

HttpResponse HttpHandlers::KvDelete(const HttpRequest& req, const RouteMatch& match) {
  if (auto rejected = RejectBadItemAddress(req, match, /*write=*/true)) return std::move(*rejected);
  kv::DeleteOptions options;
  if (auto if_match = HeaderValue(req, http::field::if_match)) {
    auto cond = ParseEntityTagCondition(*if_match);
    if (!cond) return ErrorResponse(req, cond.error());
    if (!cond->any) {
      auto version = ParseVersionTag(*cond);
      if (!version) return ErrorResponse(req, version.error());
      options.if_version = *version;
    }
  }
  auto result = store_->Delete(match.ns, match.key, options);
  if (!result) return ErrorResponse(req, result.error());
  if (!result->applied) {
    return ErrorResponse(req,
                         Status::NotFound("key does not exist in namespace '" + match.ns + "'"));
  }
  return WriteResultResponse(req, *result);
}

HttpResponse HttpHandlers::KvList(const HttpRequest& req, const RouteMatch& match) {
  if (Status s = kv::ValidateNamespace(match.ns); !s.ok()) return ErrorResponse(req, s);
  auto query = QueryParams::Parse(match.query);
  if (!query) return ErrorResponse(req, query.error());

  size_t limit = kDefaultListLimit;
  if (auto text = query->Get("limit")) {
    auto parsed = ParseUnsigned(*text, "limit");
    if (!parsed) return ErrorResponse(req, parsed.error());
    if (*parsed == 0)
      return ErrorResponse(req, Status::InvalidArgument("limit must be at least 1"));
    limit = static_cast<size_t>(std::min<uint64_t>(*parsed, kMaxListLimit));
  }
  std::string prefix(query->Get("prefix").value_or(""));
  std::string start_after;
  if (auto b64 = query->Get("start_after_b64")) {
    auto decoded = Base64Decode(*b64);
    if (!decoded) {
      return ErrorResponse(
          req, Status::InvalidArgument("start_after_b64: " + decoded.error().message()));
    }
    start_after = std::move(*decoded);
  } else if (auto after = query->Get("start_after")) {
    start_after = std::string(*after);
  } else if (auto cursor = query->Get("cursor")) {
    start_after = std::string(*cursor);
  }

  auto page = store_->List(match.ns, prefix, start_after, limit);
  if (!page) return ErrorResponse(req, page.error());

  nlohmann::json items = nlohmann::json::array();
  for (const kv::ListEntry& entry : page->entries) {
    nlohmann::json item;
    SetKeyField(&item, entry.key);
    item["version"] = entry.meta.version.ToString();
    item["seq"] = entry.meta.seq;
    item["size"] = entry.meta.size;
    item["content_type"] = entry.meta.content_type;
    if (entry.meta.expires_at_ms != 0) {
      item["expires_at_ms"] = entry.meta.expires_at_ms;
    } else {
      item["expires_at_ms"] = nullptr;
    }
    items.push_back(std::move(item));
  }
  nlohmann::json body;
  body["items"] = std::move(items);
  if (page->next_start_after.empty()) {
    body["next"] = nullptr;
  } else if (IsValidUtf8(page->next_start_after)) {
    body["next"] = page->next_start_after;
  } else {
    body["next_b64"] = Base64Encode(page->next_start_after);
  }
  return MakeJsonResponse(req.version(), 200, DumpJson(body), req.keep_alive());
}

}  // namespace edgeflow::api
