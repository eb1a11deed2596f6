#include "api/http_response.h"

#include "api/http_json.h"

namespace edgeflow::api {

namespace http = boost::beast::http;

HttpResponse MakeJsonResponse(unsigned http_version, unsigned status, std::string body,
                              bool keep_alive) {
  HttpResponse res{static_cast<http::status>(status), http_version};
  res.set(http::field::server, kServerName);
  res.set(http::field::content_type, kJsonType);
  res.keep_alive(keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

HttpResponse MakeErrorResponse(unsigned http_version, unsigned status, std::string_view code,
                               std::string_view message, bool keep_alive) {
  return MakeJsonResponse(http_version, status, ErrorBody(code, message), keep_alive);
}

HttpResponse MakeErrorResponse(unsigned http_version, const Status& status, bool keep_alive) {
  return MakeJsonResponse(http_version, HttpStatusFor(status.code()), ErrorBody(status),
                          keep_alive);
}

}  // namespace edgeflow::api
