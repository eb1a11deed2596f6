#include "support/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <optional>

namespace edgeflow::test_support {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return value;
  }
  return {};
}

bool HttpResponse::HasHeader(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return true;
  }
  return false;
}

nlohmann::json HttpResponse::Json() const {
  return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
}

std::string HttpResponse::ErrorField(std::string_view field) const {
  const nlohmann::json json = Json();
  if (!json.is_object() || !json.contains("error") || !json["error"].is_object()) return "";
  return json["error"].value(std::string(field), "");
}

std::string HttpResponse::Describe() const {
  std::string text = "HTTP " + std::to_string(status);
  if (body.size() > 500) {
    text += " body (" + std::to_string(body.size()) + " bytes): " + body.substr(0, 500) + "...";
  } else {
    text += " body: " + body;
  }
  return text;
}

struct HttpClient::Impl {
  std::string host;
  uint16_t port;
  std::chrono::milliseconds timeout;
  asio::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  // Runs the queued asynchronous operation to completion; the stream's expiry bounds it.
  void RunQueued() {
    ioc.restart();
    ioc.run();
  }

  Status Connect() {
    tcp::resolver resolver(ioc);
    beast::error_code ec;
    auto endpoints = resolver.resolve(host, std::to_string(port), ec);
    if (ec) return Status::Unavailable("resolve " + host + ": " + ec.message());
    stream.emplace(ioc);
    stream->expires_after(timeout);
    stream->async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    RunQueued();
    if (ec) {
      stream.reset();
      return Status::Unavailable("cannot connect to " + host + ":" + std::to_string(port) + ": " +
                                 ec.message());
    }
    stream->socket().set_option(tcp::no_delay(true), ec);
    buffer.clear();
    return Status::Ok();
  }
};

HttpClient::HttpClient(std::string host, uint16_t port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->timeout = timeout;
}

HttpClient::~HttpClient() { Close(); }

void HttpClient::Close() {
  if (impl_->stream.has_value()) {
    beast::error_code ec;
    impl_->stream->socket().shutdown(tcp::socket::shutdown_both, ec);
    impl_->stream->socket().close(ec);
    impl_->stream.reset();
  }
}

Result<HttpResponse> HttpClient::Request(std::string_view method, std::string_view target,
                                         std::string_view body, const HttpHeaders& headers) {
  Impl& s = *impl_;
  if (!s.stream.has_value()) {
    if (Status st = s.Connect(); !st.ok()) return Error(st);
  }
  http::request<http::string_body> request;
  request.version(11);
  request.method_string(beast::string_view(method.data(), method.size()));
  request.target(beast::string_view(target.data(), target.size()));
  request.set(http::field::host, s.host + ":" + std::to_string(s.port));
  request.body() = std::string(body);
  if (!body.empty() || method == "PUT" || method == "POST") request.prepare_payload();
  for (const auto& [name, value] : headers) request.set(name, value);

  beast::error_code ec;
  s.stream->expires_after(s.timeout);
  http::async_write(*s.stream, request, [&](beast::error_code e, size_t) { ec = e; });
  s.RunQueued();
  if (ec) {
    Close();
    return Error(Status::Unavailable("sending " + std::string(method) + " " + std::string(target) +
                                     ": " + ec.message()));
  }

  http::response_parser<http::string_body> parser;
  parser.body_limit(1ULL << 30);
  if (method == "HEAD") parser.skip(true);
  s.stream->expires_after(s.timeout);
  http::async_read(*s.stream, s.buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
  s.RunQueued();
  if (ec) {
    Close();
    return Error(Status::Unavailable("reading the response to " + std::string(method) + " " +
                                     std::string(target) + ": " + ec.message()));
  }
  auto message = parser.release();
  HttpResponse response;
  response.status = static_cast<int>(message.result_int());
  for (const auto& field : message) {
    response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  response.body = std::move(message.body());
  if (!message.keep_alive()) Close();
  return response;
}

}  // namespace edgeflow::test_support
