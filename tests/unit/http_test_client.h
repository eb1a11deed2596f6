// HttpTestClient: a small Beast HTTP/1.1 client for the HTTP server tests. Every operation is
// asynchronous under the hood with a deadline, so a misbehaving server fails a test instead of
// hanging it.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>: it goes first.
// clang-format off
#include <utility>
// clang-format on

#include <chrono>
#include <cstdint>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace edgeflow::test {

using HttpResponseMessage = boost::beast::http::response<boost::beast::http::string_body>;

// One Server-Sent Event as received.
struct SseEvent {
  std::string id;
  std::string event;
  std::string data;
};

class HttpTestClient {
 public:
  static constexpr auto kTimeout = std::chrono::seconds(20);

  explicit HttpTestClient(uint16_t port) : stream_(ioc_) { Connect(port); }

  bool connected() const { return connected_; }

  // Sends a request (HTTP/1.1, keep-alive) and reads the response; a response with status 0
  // means the connection failed or closed.
  HttpResponseMessage Request(boost::beast::http::verb method, std::string target,
                              std::string body = "",
                              const std::map<std::string, std::string>& headers = {}) {
    namespace http = boost::beast::http;
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [name, value] : headers) req.set(name, value);
    if (!body.empty() || method == http::verb::put || method == http::verb::post) {
      req.body() = std::move(body);
      req.prepare_payload();
    }
    if (!Write(req)) return {};
    return Read(method == http::verb::head);
  }

  HttpResponseMessage Get(std::string target,
                          const std::map<std::string, std::string>& headers = {}) {
    return Request(boost::beast::http::verb::get, std::move(target), "", headers);
  }

  template <class Message>
  bool Write(Message& message) {
    boost::system::error_code result = boost::asio::error::would_block;
    stream_.expires_after(kTimeout);
    boost::beast::http::async_write(stream_, message,
                                    [&](boost::system::error_code ec, size_t) { result = ec; });
    Run();
    return !result;
  }

  bool SendRaw(std::string_view bytes) {
    boost::system::error_code result = boost::asio::error::would_block;
    stream_.expires_after(kTimeout);
    boost::asio::async_write(stream_, boost::asio::buffer(bytes.data(), bytes.size()),
                             [&](boost::system::error_code ec, size_t) { result = ec; });
    Run();
    return !result;
  }

  // Reads one response; for the answer to a HEAD request pass head = true.
  HttpResponseMessage Read(bool head = false) {
    namespace http = boost::beast::http;
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 << 20);
    parser.skip(head);
    boost::system::error_code result = boost::asio::error::would_block;
    stream_.expires_after(kTimeout);
    http::async_read(stream_, buffer_, parser,
                     [&](boost::system::error_code ec, size_t) { result = ec; });
    Run();
    if (result) return {};
    return parser.release();
  }

  // True when the server has closed the connection (EOF or reset) and sent nothing more.
  bool WaitClosed() {
    if (buffer_.size() > 0) return false;
    char byte;
    boost::system::error_code result = boost::asio::error::would_block;
    size_t n = 0;
    stream_.expires_after(kTimeout);
    stream_.async_read_some(boost::asio::buffer(&byte, 1),
                            [&](boost::system::error_code ec, size_t got) {
                              result = ec;
                              n = got;
                            });
    Run();
    return n == 0 &&
           (result == boost::asio::error::eof || result == boost::asio::error::connection_reset);
  }

  void Close() {
    boost::system::error_code ec;
    stream_.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  // --- Server-Sent Events ---

  // Sends a GET and reads the response header of an event stream. Returns the status.
  unsigned OpenEventStream(std::string target,
                           const std::map<std::string, std::string>& headers = {}) {
    namespace http = boost::beast::http;
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::accept, "text/event-stream");
    for (const auto& [name, value] : headers) req.set(name, value);
    if (!Write(req)) return 0;
    sse_parser_.emplace();
    sse_parser_->body_limit(boost::none);
    // The parser keeps a reference to the callback, so it lives in a member.
    on_chunk_ = [this](std::uint64_t, std::string_view data, boost::system::error_code&) {
      sse_text_.append(data);
      return data.size();
    };
    sse_parser_->on_chunk_body(on_chunk_);
    boost::system::error_code result = boost::asio::error::would_block;
    stream_.expires_after(kTimeout);
    http::async_read_header(stream_, buffer_, *sse_parser_,
                            [&](boost::system::error_code ec, size_t) { result = ec; });
    Run();
    if (result) return 0;
    return sse_parser_->get().result_int();
  }

  const HttpResponseMessage& event_stream_header() { return sse_parser_->get(); }

  // Reads until `count` events (comments excluded) have arrived or the stream ends; returns what
  // was received, at most `count` events.
  std::vector<SseEvent> ReadEvents(size_t count) {
    std::vector<SseEvent> events;
    auto deadline = std::chrono::steady_clock::now() + kTimeout;
    for (;;) {
      TakeBlocks(&events, count);
      if (events.size() >= count || stream_ended_ ||
          std::chrono::steady_clock::now() > deadline) {
        return events;
      }
      ReadMore();
    }
  }

  // Reads until a comment line (": keepalive") arrives; false if the stream ended first.
  bool WaitComment() {
    const int before = comments_;
    std::vector<SseEvent> ignored;
    auto deadline = std::chrono::steady_clock::now() + kTimeout;
    for (;;) {
      TakeBlocks(&ignored, SIZE_MAX);
      if (comments_ > before) return true;
      if (stream_ended_ || std::chrono::steady_clock::now() > deadline) return false;
      ReadMore();
    }
  }

  // Reads until the stream ends; true if it ended (server closed it) before the deadline.
  bool WaitStreamEnd() {
    std::vector<SseEvent> ignored;
    auto deadline = std::chrono::steady_clock::now() + kTimeout;
    for (;;) {
      TakeBlocks(&ignored, SIZE_MAX);
      if (stream_ended_) return true;
      if (std::chrono::steady_clock::now() > deadline) return false;
      ReadMore();
    }
  }

  int comments() const { return comments_; }

 private:
  // Moves complete event blocks out of the received text, up to `count` events in total.
  void TakeBlocks(std::vector<SseEvent>* events, size_t count) {
    size_t end;
    while (events->size() < count && (end = sse_text_.find("\n\n")) != std::string::npos) {
      std::string block = sse_text_.substr(0, end);
      sse_text_.erase(0, end + 2);
      SseEvent event;
      bool any = false;
      size_t pos = 0;
      while (pos <= block.size()) {
        size_t nl = block.find('\n', pos);
        std::string line = block.substr(pos, nl == std::string::npos ? nl : nl - pos);
        pos = nl == std::string::npos ? block.size() + 1 : nl + 1;
        if (line.starts_with("id: ")) event.id = line.substr(4), any = true;
        if (line.starts_with("event: ")) event.event = line.substr(7), any = true;
        if (line.starts_with("data: ")) event.data = line.substr(6), any = true;
        if (line.starts_with(":")) ++comments_;
      }
      if (any) events->push_back(std::move(event));
    }
  }

  void ReadMore() {
    boost::system::error_code result = boost::asio::error::would_block;
    stream_.expires_after(kTimeout);
    boost::beast::http::async_read_some(
        stream_, buffer_, *sse_parser_, [&](boost::system::error_code ec, size_t) { result = ec; });
    Run();
    if (result || sse_parser_->is_done()) stream_ended_ = true;
  }

  void Connect(uint16_t port) {
    boost::system::error_code ec;
    stream_.socket().connect({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
    connected_ = !ec;
  }

  void Run() {
    ioc_.restart();
    ioc_.run();
  }

  boost::asio::io_context ioc_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  bool connected_ = false;
  std::optional<boost::beast::http::response_parser<boost::beast::http::string_body>> sse_parser_;
  std::function<size_t(std::uint64_t, std::string_view, boost::system::error_code&)> on_chunk_;
  std::string sse_text_;
  bool stream_ended_ = false;
  int comments_ = 0;
};

}  // namespace edgeflow::test
