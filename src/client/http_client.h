// HttpClient: a client connection to edgeflowd's HTTP API. One keep-alive connection, opened on
// first use; every operation has a deadline so that a stuck server cannot hang the CLI (except
// event streams, which only give up after several missed keep-alives).
//
// Transport failures are Unavailable with a message that tells the user what to do; HTTP error
// statuses are not failures here: the caller gets the response and decides.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>: it goes first.
// clang-format off
#include <utility>
// clang-format on

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "client/server_url.h"
#include "common/status.h"

namespace edgeflow::client {

using Headers = std::map<std::string, std::string>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;

class HttpClient {
 public:
  HttpClient(ServerUrl server, std::chrono::milliseconds timeout);

  const ServerUrl& server() const { return server_; }

  Result<Response> Request(boost::beast::http::verb method, const std::string& target,
                           std::string body = "", const Headers& headers = {});

  // GET of an event stream: calls `on_data` with each piece of the body as it arrives, until
  // the server ends the stream or `on_data` returns false. When the status is not 200 the
  // whole (error) response is returned instead and on_data is not called.
  Result<Response> Stream(const std::string& target, const Headers& headers,
                          const std::function<bool(std::string_view)>& on_data,
                          std::chrono::seconds silence_limit);

 private:
  Status Connect();
  // Runs the pending asynchronous operation to completion; its deadline is the stream's expiry.
  void Run();
  Status TransportError(std::string_view during, const boost::system::error_code& ec);

  ServerUrl server_;
  std::chrono::milliseconds timeout_;
  boost::asio::io_context ioc_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  bool connected_ = false;
};

}  // namespace edgeflow::client
