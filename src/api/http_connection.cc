#include "api/http_connection.h"

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>

#include "api/http_handlers.h"
#include "api/http_metrics.h"
#include "api/http_router.h"
#include "api/http_watch_stream.h"

namespace edgeflow::api {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

namespace {

// Bound of the lingering close: how much of an unwanted body we swallow, and for how long.
constexpr size_t kMaxDrainBytes = 1 << 20;
constexpr auto kDrainTime = std::chrono::seconds(1);

auto Tolerant(error_code& ec) { return net::redirect_error(net::use_awaitable, ec); }

bool IsDisconnect(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == net::error::eof || ec == net::error::connection_reset ||
         ec == net::error::operation_aborted || ec == beast::error::timeout ||
         ec == net::error::broken_pipe || ec == net::error::bad_descriptor;
}

// For the request counters of requests that never reached the router.
struct RequestLabels {
  HttpMethod method = HttpMethod::kOther;
  HttpRoute route = HttpRoute::kUnknown;
};

}  // namespace

HttpConnection::HttpConnection(net::ip::tcp::socket socket, const HttpConnectionContext* context,
                               std::function<void()> on_done)
    : stream_(std::move(socket)),
      wake_timer_(stream_.get_executor()),
      context_(context),
      on_done_(std::move(on_done)) {}

HttpConnection::~HttpConnection() {
  if (on_done_) on_done_();
}

void HttpConnection::Start(bool reject) {
  net::co_spawn(
      stream_.get_executor(), [self = shared_from_this(), reject]() { return self->Run(reject); },
      net::detached);
}

void HttpConnection::Close() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    self->closing_ = true;
    error_code ec;
    self->stream_.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
    self->stream_.close();
    self->wake_timer_.cancel();
  });
}

net::awaitable<void> HttpConnection::Run(bool reject) {
  // Keeps the connection alive while the coroutine runs, whatever happens to the caller's copy.
  auto self = shared_from_this();
  context_->metrics->ConnectionOpened();
  try {
    if (reject) {
      co_await FailAndClose(
          MakeErrorResponse(11, 503, ErrorCodeName(ErrorCode::kUnavailable),
                            "too many connections (max_connections reached); retry later", false));
    } else {
      while (!closing_ && !context_->stopping->load(std::memory_order_relaxed)) {
        if (!co_await ServeOne()) break;
      }
    }
  } catch (const std::exception&) {
    // A bug or an allocation failure in one connection must not take the server down; the
    // connection is closed below like any other.
  }
  error_code ec;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
  stream_.close();
  context_->metrics->ConnectionClosed();
}

// A connection keeps at most this much read buffer between requests.
constexpr size_t kIdleBufferBytes = 16 << 10;

net::awaitable<bool> HttpConnection::ServeOne() {
  const HttpServerConfig& config = *context_->config;
  const auto timeout = std::chrono::seconds(config.idle_timeout_seconds);
  error_code ec;

  http::request_parser<http::empty_body> header_parser;
  header_parser.header_limit(static_cast<std::uint32_t>(config.max_header_bytes));
  // Checked against Content-Length as soon as the header is complete, before any body byte.
  header_parser.body_limit(config.max_value_bytes);

  stream_.expires_after(timeout);
  co_await http::async_read_header(stream_, buffer_, header_parser, Tolerant(ec));
  if (ec) {
    if (IsDisconnect(ec)) co_return false;
    RequestLabels labels;
    if (ec == http::error::header_limit) {
      co_await FailAndClose(MakeErrorResponse(11, 431, ErrorCodeName(ErrorCode::kResourceExhausted),
                                              "request header too large (max_header_bytes " +
                                                  std::to_string(config.max_header_bytes) + ")",
                                              false));
      context_->metrics->RecordRequest(labels.method, labels.route, 431, 0);
    } else if (ec == http::error::body_limit) {
      co_await FailAndClose(MakeErrorResponse(
          11, 413, ErrorCodeName(ErrorCode::kResourceExhausted),
          "request body too large (max_value_bytes " + std::to_string(config.max_value_bytes) + ")",
          false));
      context_->metrics->RecordRequest(ParseHttpMethod(header_parser.get().method_string()),
                                       labels.route, 413, 0);
    } else {
      co_await FailAndClose(MakeErrorResponse(11, 400, ErrorCodeName(ErrorCode::kInvalidArgument),
                                              "malformed HTTP request: " + ec.message(), false));
      context_->metrics->RecordRequest(labels.method, labels.route, 400, 0);
    }
    co_return false;
  }

  const auto started = std::chrono::steady_clock::now();
  auto& header = header_parser.get();
  const HttpMethod method = ParseHttpMethod(header.method_string());
  auto match = MatchRoute(method, header.target());
  const HttpRoute route = match ? match->route : HttpRoute::kUnknown;

  // curl and other clients send large uploads with "Expect: 100-continue" and wait for this
  // before sending the body; over-limit bodies were already refused above.
  if (header.version() >= 11 && beast::iequals(header[http::field::expect], "100-continue")) {
    http::response<http::empty_body> go_on{http::status::continue_, header.version()};
    stream_.expires_after(timeout);
    co_await http::async_write(stream_, go_on, Tolerant(ec));
    if (ec) co_return false;
  }

  http::request_parser<http::string_body> parser(std::move(header_parser));
  parser.body_limit(config.max_value_bytes);
  // Beast reads no more than the buffer's free capacity (at least 512 bytes) per call: a large
  // body through a small buffer costs hundreds of reads (measured: 200 for 100 KB, +0.7 ms).
  // Large bodies get room for big reads; the room is given back once the request is complete.
  constexpr size_t kLargeReadBytes = 256 << 10;
  if (const auto length = parser.content_length(); length && *length > buffer_.capacity()) {
    buffer_.reserve(std::min<size_t>(*length, kLargeReadBytes));
  }
  while (!parser.is_done()) {
    stream_.expires_after(timeout);
    co_await http::async_read_some(stream_, buffer_, parser, Tolerant(ec));
    if (!ec) continue;
    // A client that goes away mid-body has sent nothing that could be acted on: the request is
    // dropped before any handler sees it.
    if (IsDisconnect(ec)) co_return false;
    if (ec == http::error::body_limit) {
      co_await FailAndClose(MakeErrorResponse(
          11, 413, ErrorCodeName(ErrorCode::kResourceExhausted),
          "request body too large (max_value_bytes " + std::to_string(config.max_value_bytes) + ")",
          false));
      context_->metrics->RecordRequest(method, route, 413, 0);
    } else {
      co_await FailAndClose(MakeErrorResponse(11, 400, ErrorCodeName(ErrorCode::kInvalidArgument),
                                              "malformed HTTP request body: " + ec.message(),
                                              false));
      context_->metrics->RecordRequest(method, route, 400, 0);
    }
    co_return false;
  }

  if (buffer_.capacity() > kIdleBufferBytes && buffer_.size() == 0) buffer_.shrink_to_fit();
  HttpRequest req = parser.release();
  const bool stopping = context_->stopping->load(std::memory_order_relaxed);
  std::optional<HttpResponse> res;
  if (!match) {
    res = MakeErrorResponse(req.version(), match.error(), req.keep_alive());
  } else if (!match->method_allowed) {
    res = MakeErrorResponse(req.version(), 405, "METHOD_NOT_ALLOWED",
                            std::string(req.method_string().substr(0, 32)) +
                                " is not allowed here; allowed: " + std::string(match->allow),
                            req.keep_alive());
    res->set(http::field::allow, match->allow);
  } else if (route == HttpRoute::kWatch) {
    HttpWatchStream watch(*this);
    res = watch.Open(req, *match);
    if (!res) {
      auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
      context_->metrics->RecordRequest(method, route, 200, static_cast<uint64_t>(micros));
      co_await watch.Run();
      // The stream has taken over the connection; it ends with it.
      co_return false;
    }
  } else if (context_->write_executor &&
             (method == HttpMethod::kPut || method == HttpMethod::kPost ||
              method == HttpMethod::kDelete)) {
    // The coroutine resumes on this connection's strand when the write is done.
    res = co_await net::co_spawn(
        *context_->write_executor,
        [this, &req, &match]() -> net::awaitable<HttpResponse> {
          co_return context_->handlers->Handle(req, *match);
        },
        net::use_awaitable);
  } else {
    res = context_->handlers->Handle(req, *match);
  }

  if (req.method() == http::verb::head && !res->body().empty()) {
    // HEAD gets the headers of the GET, without its body.
    auto length = res->body().size();
    res->body().clear();
    res->content_length(length);
  }
  if (stopping) res->keep_alive(false);
  const unsigned status = res->result_int();
  const bool keep_alive = res->keep_alive();
  bool ok = co_await Reply(std::move(*res), !keep_alive);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - started)
                    .count();
  context_->metrics->RecordRequest(method, route, status, static_cast<uint64_t>(micros));
  co_return ok&& keep_alive;
}

net::awaitable<bool> HttpConnection::Reply(HttpResponse res, bool close_after) {
  error_code ec;
  stream_.expires_after(std::chrono::seconds(context_->config->idle_timeout_seconds));
  co_await http::async_write(stream_, res, Tolerant(ec));
  if (ec) co_return false;
  if (close_after) {
    stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
  }
  co_return true;
}

net::awaitable<void> HttpConnection::FailAndClose(HttpResponse res) {
  res.keep_alive(false);
  if (!co_await Reply(std::move(res), /*close_after=*/true)) co_return;
  std::array<char, 16 << 10> sink;
  size_t drained = 0;
  error_code ec;
  stream_.expires_after(kDrainTime);
  while (drained < kMaxDrainBytes) {
    size_t n = co_await stream_.async_read_some(net::buffer(sink), Tolerant(ec));
    if (ec) break;
    drained += n;
  }
}

}  // namespace edgeflow::api
