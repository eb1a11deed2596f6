// Beast request/response types of the HTTP front-end and builders for its JSON responses.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>: it goes first.
// clang-format off
#include <utility>
// clang-format on

#include <string>
#include <string_view>

#include <boost/beast/http.hpp>

#include "common/status.h"

namespace edgeflow::api {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

inline constexpr std::string_view kServerName = "edgeflowd";
inline constexpr std::string_view kJsonType = "application/json";

// A response with a JSON body, Content-Length set.
HttpResponse MakeJsonResponse(unsigned http_version, unsigned status, std::string body,
                              bool keep_alive);

// {"error":{"code":..,"message":..}} with the given HTTP status.
HttpResponse MakeErrorResponse(unsigned http_version, unsigned status, std::string_view code,
                               std::string_view message, bool keep_alive);
// The HTTP status follows the error code (see HttpStatusFor).
HttpResponse MakeErrorResponse(unsigned http_version, const Status& status, bool keep_alive);

}  // namespace edgeflow::api
