#include "client/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace edgeflow::client {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

HttpClient::HttpClient(ServerUrl server, std::chrono::milliseconds timeout)
    : server_(std::move(server)), timeout_(timeout), stream_(ioc_) {
  // Beast reads at most the buffer's free capacity per call (at least 512 bytes); without room a
  // 100 KB value takes 200 reads.
  constexpr size_t kReadBufferBytes = 256 << 10;
  buffer_.reserve(kReadBufferBytes);
}

void HttpClient::Run() {
  // The tcp_stream's own expiry enforces the deadline; it closes the socket when it passes,
  // which completes the pending operation with beast::error::timeout.
  ioc_.restart();
  ioc_.run();
}

Status HttpClient::TransportError(std::string_view during, const error_code& ec) {
  connected_ = false;
  error_code ignored;
  stream_.socket().close(ignored);
  std::string reason = ec == beast::error::timeout ? "timed out" : ec.message();
  return Status::Unavailable("lost the connection to edgeflowd at " + server_.ToString() +
                             " while " + std::string(during) + " (" + reason + ")");
}

Status HttpClient::Connect() {
  if (connected_) return Status::Ok();
  net::ip::tcp::resolver resolver(ioc_);
  error_code ec;
  auto endpoints = resolver.resolve(server_.host, std::to_string(server_.port), ec);
  if (ec) {
    return Status::Unavailable("cannot resolve the host of " + server_.ToString() + " (" +
                               ec.message() + ") - check --server or EDGEFLOW_SERVER");
  }
  error_code result = net::error::would_block;
  stream_.expires_after(timeout_);
  stream_.async_connect(endpoints,
                        [&](error_code e, const net::ip::tcp::endpoint&) { result = e; });
  Run();
  if (result) {
    std::string reason = result == beast::error::timeout ? "timed out" : result.message();
    for (auto& c : reason) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return Status::Unavailable("cannot connect to edgeflowd at " + server_.ToString() + " (" +
                               reason +
                               ") - is it running? Start it with build/edgeflowd or pass --server");
  }
  stream_.socket().set_option(net::ip::tcp::no_delay(true), ec);
  connected_ = true;
  return Status::Ok();
}

Result<Response> HttpClient::Request(http::verb method, const std::string& target, std::string body,
                                     const Headers& headers) {
  // A kept-alive connection the server has since closed fails on first use; one retry on a
  // fresh connection covers that without repeating a request the server may have acted on
  // (the retry only happens when nothing was read back).
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = connected_;
    if (Status s = Connect(); !s.ok()) return Error(std::move(s));
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, server_.host);
    req.set(http::field::user_agent, "edgeflow-cli");
    for (const auto& [name, value] : headers) req.set(name, value);
    if (!body.empty() || method == http::verb::put || method == http::verb::post) {
      req.body() = body;
      req.prepare_payload();
    }
    error_code result = net::error::would_block;
    stream_.expires_after(timeout_);
    http::async_write(stream_, req, [&](error_code e, size_t) { result = e; });
    Run();
    if (result) {
      if (reused && attempt == 0) {
        connected_ = false;
        stream_.socket().close(result);
        continue;
      }
      return Error(TransportError("sending the request", result));
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(boost::none);
    parser.skip(method == http::verb::head);
    result = net::error::would_block;
    stream_.expires_after(timeout_);
    http::async_read(stream_, buffer_, parser, [&](error_code e, size_t) { result = e; });
    Run();
    if (result) {
      if (reused && attempt == 0 && result == http::error::end_of_stream) {
        connected_ = false;
        error_code ignored;
        stream_.socket().close(ignored);
        continue;
      }
      return Error(TransportError("reading the response", result));
    }
    Response res = parser.release();
    if (!res.keep_alive()) {
      connected_ = false;
      error_code ignored;
      stream_.socket().close(ignored);
    }
    return res;
  }
  return Error(
      Status::Unavailable("edgeflowd at " + server_.ToString() + " closed the connection"));
}

Result<Response> HttpClient::Stream(const std::string& target, const Headers& headers,
                                    const std::function<bool(std::string_view)>& on_data,
                                    std::chrono::seconds silence_limit) {
  if (Status s = Connect(); !s.ok()) return Error(std::move(s));
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, server_.host);
  req.set(http::field::user_agent, "edgeflow-cli");
  req.set(http::field::accept, "text/event-stream");
  for (const auto& [name, value] : headers) req.set(name, value);
  error_code result = net::error::would_block;
  stream_.expires_after(timeout_);
  http::async_write(stream_, req, [&](error_code e, size_t) { result = e; });
  Run();
  if (result) return Error(TransportError("sending the request", result));

  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);
  result = net::error::would_block;
  stream_.expires_after(timeout_);
  http::async_read_header(stream_, buffer_, parser, [&](error_code e, size_t) { result = e; });
  Run();
  if (result) return Error(TransportError("reading the response", result));
  if (parser.get().result() != http::status::ok) {
    // An error answer is a normal, complete response: read its body.
    result = net::error::would_block;
    stream_.expires_after(timeout_);
    http::async_read(stream_, buffer_, parser, [&](error_code e, size_t) { result = e; });
    Run();
    if (result) return Error(TransportError("reading the response", result));
    return parser.release();
  }

  bool stop = false;
  auto deliver = [&](std::string_view data) {
    if (!stop && !on_data(data)) stop = true;
  };
  // The parser keeps a reference to the callback: it must outlive the reads below.
  auto on_chunk = [&](std::uint64_t, std::string_view data, error_code&) {
    deliver(data);
    return data.size();
  };
  parser.on_chunk_body(on_chunk);
  while (!stop && !parser.is_done()) {
    result = net::error::would_block;
    stream_.expires_after(silence_limit);
    size_t before = parser.get().body().size();
    http::async_read_some(stream_, buffer_, parser, [&](error_code e, size_t) { result = e; });
    Run();
    // A stream that is not chunked (HTTP/1.0 style) lands in the body instead of the callback.
    std::string& body = parser.get().body();
    if (body.size() > before) {
      deliver(std::string_view(body).substr(before));
      body.clear();
    }
    if (result == http::error::end_of_stream || result == net::error::eof) break;
    if (result) return Error(TransportError("watching", result));
  }
  connected_ = false;
  error_code ignored;
  stream_.socket().close(ignored);
  return parser.release();
}

}  // namespace edgeflow::client
