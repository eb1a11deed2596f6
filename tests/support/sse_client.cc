#include "support/sse_client.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>

namespace edgeflow::test_support {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct SseClient::Impl {
  asio::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  std::optional<http::response_parser<http::buffer_body>> parser;
  std::string pending;  // stream text not yet split into events
  std::vector<SseEvent> events;
  SseEvent current;
  bool current_has_field = false;

  void RunQueued() {
    ioc.restart();
    ioc.run();
  }

  // Splits complete lines off `pending` and turns them into events (text/event-stream rules:
  // "field: value" lines, ':' comments, a blank line dispatches).
  void ParsePending() {
    for (;;) {
      size_t end = pending.find('\n');
      if (end == std::string::npos) return;
      std::string line = pending.substr(0, end);
      pending.erase(0, end + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) {
        if (current_has_field) {
          if (current.event.empty()) current.event = "message";
          if (!current.data.empty() && current.data.back() == '\n') current.data.pop_back();
          events.push_back(std::move(current));
        }
        current = SseEvent{};
        current_has_field = false;
        continue;
      }
      if (line.front() == ':') continue;
      size_t colon = line.find(':');
      std::string field = line.substr(0, colon);
      std::string value;
      if (colon != std::string::npos) {
        value = line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.erase(0, 1);
      }
      current_has_field = true;
      if (field == "id") {
        current.id = value;
      } else if (field == "event") {
        current.event = value;
      } else if (field == "data") {
        current.data += value + "\n";
      }
    }
  }
};

SseClient::SseClient() : impl_(std::make_unique<Impl>()) {}
SseClient::~SseClient() { Close(); }

void SseClient::Close() {
  if (impl_->stream.has_value()) {
    beast::error_code ec;
    impl_->stream->socket().close(ec);
    impl_->stream.reset();
  }
}

Status SseClient::Open(const std::string& host, uint16_t port, std::string_view target,
                       std::chrono::milliseconds timeout) {
  Impl& s = *impl_;
  Close();
  tcp::resolver resolver(s.ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(host, std::to_string(port), ec);
  if (ec) return Status::Unavailable("resolve " + host + ": " + ec.message());
  s.stream.emplace(s.ioc);
  s.stream->expires_after(timeout);
  s.stream->async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
  s.RunQueued();
  if (ec) {
    Close();
    return Status::Unavailable("cannot connect for watch: " + ec.message());
  }
  http::request<http::empty_body> request{http::verb::get,
                                          beast::string_view(target.data(), target.size()), 11};
  request.set(http::field::host, host + ":" + std::to_string(port));
  request.set(http::field::accept, "text/event-stream");
  s.stream->expires_after(timeout);
  http::async_write(*s.stream, request, [&](beast::error_code e, size_t) { ec = e; });
  s.RunQueued();
  if (ec) {
    Close();
    return Status::Unavailable("sending the watch request: " + ec.message());
  }
  s.parser.emplace();
  s.parser->body_limit(boost::none);
  s.stream->expires_after(timeout);
  http::async_read_header(*s.stream, s.buffer, *s.parser,
                          [&](beast::error_code e, size_t) { ec = e; });
  s.RunQueued();
  if (ec) {
    Close();
    return Status::Unavailable("reading the watch response header: " + ec.message());
  }
  const int status = static_cast<int>(s.parser->get().result_int());
  if (status != 200) {
    // Read the (small) error body for the message.
    std::string body;
    char chunk[4096];
    for (int i = 0; i < 16 && !s.parser->is_done(); ++i) {
      s.parser->get().body().data = chunk;
      s.parser->get().body().size = sizeof chunk;
      s.stream->expires_after(timeout);
      http::async_read(*s.stream, s.buffer, *s.parser,
                       [&](beast::error_code e, size_t) { ec = e; });
      s.RunQueued();
      body.append(chunk, sizeof chunk - s.parser->get().body().size);
      if (ec && ec != http::error::need_buffer) break;
    }
    Close();
    return Status::FailedPrecondition("watch answered HTTP " + std::to_string(status) + ": " +
                                      body);
  }
  return Status::Ok();
}

std::vector<SseEvent> SseClient::WaitForEvents(size_t count, std::chrono::milliseconds timeout) {
  Impl& s = *impl_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char chunk[16384];
  while (s.events.size() < count && s.stream.has_value() && !s.parser->is_done()) {
    auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) {
      Close();
      break;
    }
    s.parser->get().body().data = chunk;
    s.parser->get().body().size = sizeof chunk;
    beast::error_code ec;
    s.stream->expires_after(left);
    http::async_read_some(*s.stream, s.buffer, *s.parser,
                          [&](beast::error_code e, size_t) { ec = e; });
    s.RunQueued();
    s.pending.append(chunk, sizeof chunk - s.parser->get().body().size);
    s.ParsePending();
    if (ec && ec != http::error::need_buffer) {
      Close();
      break;
    }
  }
  return s.events;
}

}  // namespace edgeflow::test_support
