#include "api/http_watch_stream.h"

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <nlohmann/json.hpp>

#include "api/http_json.h"
#include "api/http_metrics.h"
#include "api/http_params.h"
#include "common/url_codec.h"

namespace edgeflow::api {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

namespace {

// Change-log records examined per store call; bounds the work (and the chunk size) per step.
constexpr size_t kMaxScan = 1000;

}  // namespace

HttpWatchStream::HttpWatchStream(HttpConnection& connection) : connection_(connection) {}

HttpWatchStream::~HttpWatchStream() {
  if (waiter_) connection_.context().hub->Remove(waiter_.get());
  if (opened_) connection_.context().metrics->WatchClosed();
}

std::optional<HttpResponse> HttpWatchStream::Open(const HttpRequest& req, const RouteMatch& match) {
  const HttpConnectionContext& context = connection_.context();
  http_version_ = req.version();
  auto fail = [&](const Status& status) {
    return MakeErrorResponse(req.version(), status, req.keep_alive());
  };
  if (match.ns != "*") {
    if (Status s = kv::ValidateNamespace(match.ns); !s.ok()) return fail(s);
    ns_ = match.ns;
  }
  auto query = QueryParams::Parse(match.query);
  if (!query) return fail(query.error());
  prefix_ = std::string(query->Get("prefix").value_or(""));

  auto last_event = req.find("Last-Event-ID");
  if (last_event != req.end()) {
    auto seen = ParseUnsigned(last_event->value(), "Last-Event-ID");
    if (!seen) return fail(seen.error());
    next_seq_ = *seen + 1;
  } else if (auto from = query->Get("from_seq")) {
    auto parsed = ParseUnsigned(*from, "from_seq");
    if (!parsed) return fail(parsed.error());
    next_seq_ = std::max<uint64_t>(*parsed, 1);
  } else {
    next_seq_ = context.store->LastSeq() + 1;
  }

  // Registered before the first read, so that a commit racing with it still wakes the stream.
  waiter_ = std::make_shared<WatchWaiter>();
  std::weak_ptr<HttpConnection> weak = connection_.shared_from_this();
  waiter_->notify = [weak, executor = connection_.stream().get_executor()] {
    net::post(executor, [weak] {
      if (auto c = weak.lock()) c->wake_timer().cancel();
    });
  };
  context.hub->Add(waiter_);

  auto page = context.store->ReadChanges(next_seq_, ns_, prefix_, kMaxScan);
  if (!page) return fail(page.error());  // OutOfRange -> 410: nothing was sent yet
  first_page_ = std::move(*page);
  opened_ = true;
  context.metrics->WatchOpened();
  return std::nullopt;
}

std::string HttpWatchStream::FormatEvents(const kv::ChangePage& page) const {
  std::string out;
  for (const kv::Change& change : page.changes) {
    const bool put = change.op == kv::ChangeOp::kPut;
    nlohmann::json data;
    data["seq"] = change.seq;
    data["op"] = put ? "put" : "delete";
    data["ns"] = change.ns;
    SetKeyField(&data, change.key);
    data["version"] = change.version.ToString();
    if (change.expires_at_ms != 0) {
      data["expires_at_ms"] = change.expires_at_ms;
    } else {
      data["expires_at_ms"] = nullptr;
    }
    data["content_type"] = change.content_type;
    data["size"] = change.size;
    out += "id: ";
    out += std::to_string(change.seq);
    out += put ? "\nevent: put\ndata: " : "\nevent: delete\ndata: ";
    out += DumpJson(data);  // one line: dump() without indent never emits a newline
    out += "\n\n";
  }
  return out;
}

bool HttpWatchStream::Ending() const {
  return *client_gone_ || connection_.closing() ||
         connection_.context().stopping->load(std::memory_order_relaxed);
}

net::awaitable<bool> HttpWatchStream::Send(std::string data) {
  beast::tcp_stream& stream = connection_.stream();
  error_code ec;
  stream.expires_after(std::chrono::seconds(connection_.context().config->idle_timeout_seconds));
  if (http_version_ >= 11) {
    co_await net::async_write(stream, http::make_chunk(net::buffer(data)),
                              net::redirect_error(net::use_awaitable, ec));
  } else {
    co_await net::async_write(stream, net::buffer(data),
                              net::redirect_error(net::use_awaitable, ec));
  }
  stream.expires_never();
  co_return !ec;
}

net::awaitable<void> HttpWatchStream::DetectHangUp(std::shared_ptr<HttpConnection> connection,
                                                   std::shared_ptr<bool> client_gone) {
  // Whatever the client sends now is not a request (the connection is the stream's); it is read
  // and dropped until the connection ends.
  std::array<char, 512> sink;
  error_code ec;
  while (!ec) {
    co_await connection->stream().async_read_some(net::buffer(sink),
                                                  net::redirect_error(net::use_awaitable, ec));
  }
  *client_gone = true;
  connection->wake_timer().cancel();
}

net::awaitable<void> HttpWatchStream::Run() {
  const HttpConnectionContext& context = connection_.context();
  beast::tcp_stream& stream = connection_.stream();
  error_code ec;

  http::response<http::empty_body> res{http::status::ok, http_version_};
  res.set(http::field::server, kServerName);
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Accel-Buffering", "no");  // ask reverse proxies not to buffer the stream
  res.keep_alive(false);
  if (http_version_ >= 11) res.chunked(true);
  http::response_serializer<http::empty_body> serializer(res);
  stream.expires_after(std::chrono::seconds(context.config->idle_timeout_seconds));
  co_await http::async_write_header(stream, serializer,
                                    net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return;

  // No read timeout from here on: a watcher may stay quiet for as long as it likes.
  stream.expires_never();
  net::co_spawn(stream.get_executor(), DetectHangUp(connection_.shared_from_this(), client_gone_),
                net::detached);

  const auto keepalive = std::chrono::seconds(std::max(1, context.config->watch_keepalive_seconds));
  net::steady_timer& timer = connection_.wake_timer();
  kv::ChangePage page = std::move(first_page_);
  bool failed = false;
  while (!Ending()) {
    if (!page.changes.empty()) {
      if (!co_await Send(FormatEvents(page))) {
        failed = true;
        break;
      }
    }
    next_seq_ = std::max(next_seq_, page.next_seq);
    const bool caught_up = next_seq_ > context.store->LastSeq();
    if (caught_up && !waiter_->pending.load(std::memory_order_acquire)) {
      // Sleep until a commit (the hub cancels the timer), a hang-up, shutdown or the keep-alive.
      timer.expires_after(keepalive);
      co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
      if (Ending()) break;
      if (!ec && !waiter_->pending.load(std::memory_order_acquire)) {
        if (!co_await Send(": keepalive\n\n")) {
          failed = true;
          break;
        }
        page.changes.clear();
        continue;
      }
    }
    waiter_->pending.store(false, std::memory_order_release);
    auto next = context.store->ReadChanges(next_seq_, ns_, prefix_, kMaxScan);
    if (!next) {
      nlohmann::json data;
      data["code"] = std::string(ErrorCodeName(next.error().code()));
      data["message"] = next.error().message();
      data["next_seq"] = next_seq_;
      if (!co_await Send("event: error\ndata: " + DumpJson(data) + "\n\n")) failed = true;
      break;
    }
    page = std::move(*next);
  }
  if (!failed && !*client_gone_ && http_version_ >= 11) {
    stream.expires_after(std::chrono::seconds(2));
    co_await net::async_write(stream, http::make_chunk_last(),
                              net::redirect_error(net::use_awaitable, ec));
  }
}

}  // namespace edgeflow::api
