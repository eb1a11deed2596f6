// HttpWatchStream: GET /v1/watch/{ns} as Server-Sent Events.
//
// Query: prefix=P (keys starting with P), from_seq=N (first change to send; default: only
// changes committed from now on). A reconnecting EventSource sends Last-Event-ID (the last seq it
// saw), which takes precedence: the stream resumes at that seq + 1. ns "*" watches every
// namespace.
//
// Each change is one event:
//   id: <seq>
//   event: put|delete
//   data: {"seq":..,"op":"put","ns":..,"key":..,"version":..,"expires_at_ms":..,
//          "content_type":..,"size":..}
// (keys that are not UTF-8 come as "key_b64", see http_json.h). A comment line ": keepalive" is
// sent every watch_keepalive_seconds so that idle streams stay open through proxies and dead
// clients are noticed. If the change log was trimmed past the reader: 410 when nothing was sent
// yet, otherwise an `event: error` with {"code":"OUT_OF_RANGE",...} and the stream ends; the
// client must then re-list and watch again from the listing's point.
//
// Cost of an idle stream: one coroutine frame, one timer, one pending read and one entry in the
// WatchHub; nothing runs until a commit or the keep-alive timer wakes it.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>: it goes first.
// clang-format off
#include <utility>
// clang-format on

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "api/http_connection.h"
#include "api/http_response.h"
#include "api/http_router.h"
#include "api/http_watch_hub.h"
#include "kv/item.h"

namespace edgeflow::api {

class HttpWatchStream {
 public:
  explicit HttpWatchStream(HttpConnection& connection);
  ~HttpWatchStream();
  HttpWatchStream(const HttpWatchStream&) = delete;
  HttpWatchStream& operator=(const HttpWatchStream&) = delete;

  // Checks the request and reads the first page of changes. Returns the response to send instead
  // of a stream when that fails (400, 410, ...); nullopt when Run() should follow.
  std::optional<HttpResponse> Open(const HttpRequest& req, const RouteMatch& match);

  // Streams until the client goes away, the server stops, or the change log is trimmed past the
  // reader. The connection cannot be used for anything else afterwards.
  boost::asio::awaitable<void> Run();

 private:
  boost::asio::awaitable<bool> Send(std::string data);
  // Watches the read side, so that a client that hangs up is noticed while the stream sleeps.
  // Static because it may outlive the stream object by a moment (until the socket is closed).
  static boost::asio::awaitable<void> DetectHangUp(std::shared_ptr<HttpConnection> connection,
                                                   std::shared_ptr<bool> client_gone);
  std::string FormatEvents(const kv::ChangePage& page) const;
  bool Ending() const;

  HttpConnection& connection_;
  std::shared_ptr<WatchWaiter> waiter_;
  std::shared_ptr<bool> client_gone_ = std::make_shared<bool>(false);
  unsigned http_version_ = 11;
  std::string ns_;  // "" = every namespace
  std::string prefix_;
  uint64_t next_seq_ = 1;
  kv::ChangePage first_page_;
  bool opened_ = false;
};

}  // namespace edgeflow::api
