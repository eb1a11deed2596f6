// HttpClient: a small blocking HTTP/1.1 client (Boost.Beast) for tests, with keep-alive and a
// deadline on every request. Not thread-safe: use one client per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace edgeflow::test_support {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;
  std::string body;

  // Case-insensitive; empty if absent.
  std::string Header(std::string_view name) const;
  bool HasHeader(std::string_view name) const;
  // The body as JSON; a discarded value (is_discarded()) if it is not JSON.
  nlohmann::json Json() const;
  // Member `field` of the body's {"error": {...}} ("code", "message", ...); "" if there is none.
  std::string ErrorField(std::string_view field) const;
  // Status line and body, for failure messages (body cut to 500 bytes).
  std::string Describe() const;
};

class HttpClient {
 public:
  HttpClient(std::string host, uint16_t port,
             std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request and reads the whole response. Connection errors and timeouts are errors;
  // any HTTP status is a response. The connection is kept for the next request unless the server
  // asked to close it.
  Result<HttpResponse> Request(std::string_view method, std::string_view target,
                               std::string_view body = {}, const HttpHeaders& headers = {});

  Result<HttpResponse> Get(std::string_view target, const HttpHeaders& headers = {}) {
    return Request("GET", target, {}, headers);
  }
  Result<HttpResponse> Head(std::string_view target, const HttpHeaders& headers = {}) {
    return Request("HEAD", target, {}, headers);
  }
  Result<HttpResponse> Put(std::string_view target, std::string_view body,
                           const HttpHeaders& headers = {}) {
    return Request("PUT", target, body, headers);
  }
  Result<HttpResponse> Delete(std::string_view target, const HttpHeaders& headers = {}) {
    return Request("DELETE", target, {}, headers);
  }

  void Close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgeflow::test_support
