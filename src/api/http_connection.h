// HttpConnection: one accepted TCP connection of the HTTP server, served by one coroutine on its
// own strand: read a request header, check it, read the body, answer, repeat (keep-alive). Because
// requests are answered strictly one after the other and the read buffer is kept between them,
// pipelined requests are answered in order.
//
// Limits: the header is read with max_header_bytes (431 beyond it); a declared Content-Length
// above max_value_bytes is answered 413 before any of the body is read, and a chunked body that
// grows past it gets 413 too; malformed HTTP gets 400. After these errors the connection closes,
// since the request framing can no longer be trusted. Each read or write waits at most
// idle_timeout_seconds.
//
// Thread-safety: Close() may be called from any thread; everything else runs on the strand.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>: it goes first.
// clang-format off
#include <utility>
// clang-format on

#include <atomic>
#include <functional>
#include <memory>
#include <optional>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "api/http_response.h"
#include "api/http_server.h"

namespace edgeflow::api {

class HttpHandlers;
class HttpMetrics;
class WatchHub;

// What connections share; owned by the server, which outlives every connection.
struct HttpConnectionContext {
  const HttpServerConfig* config = nullptr;
  kv::Store* store = nullptr;
  HttpHandlers* handlers = nullptr;
  HttpMetrics* metrics = nullptr;
  WatchHub* hub = nullptr;
  const std::atomic<bool>* stopping = nullptr;
  // Where writes run (see HttpServerConfig::write_threads); null = on the connection's strand.
  std::optional<boost::asio::any_io_executor> write_executor;
};

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  // `socket` must use a strand executor. `on_done` runs once when the connection has ended.
  HttpConnection(boost::asio::ip::tcp::socket socket, const HttpConnectionContext* context,
                 std::function<void()> on_done);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Starts serving. With `reject`, only answers 503 (too many connections) and closes.
  void Start(bool reject);
  // Ends the connection soon (server shutdown): closes the socket and wakes a watch stream.
  void Close();

  // For HttpWatchStream, which takes over the connection for the rest of its life.
  boost::beast::tcp_stream& stream() { return stream_; }
  boost::asio::steady_timer& wake_timer() { return wake_timer_; }
  bool closing() const { return closing_; }
  const HttpConnectionContext& context() const { return *context_; }

 private:
  boost::asio::awaitable<void> Run(bool reject);
  // Serves one request; false when the connection must end.
  boost::asio::awaitable<bool> ServeOne();
  boost::asio::awaitable<bool> Reply(HttpResponse res, bool close_after);
  // Sends an error and closes the connection, reading (and discarding) a bounded amount of what
  // the client may still be sending so that the kernel does not reset the connection before the
  // client has read the error.
  boost::asio::awaitable<void> FailAndClose(HttpResponse res);

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  boost::asio::steady_timer wake_timer_;
  const HttpConnectionContext* context_;
  std::function<void()> on_done_;
  bool closing_ = false;
};

}  // namespace edgeflow::api
