// RespConnection: one client connection of the RESP front-end, run as a C++20 coroutine.
//
// Loop: read what the socket has into a growable buffer; parse every complete command in it and
// hand each to RespCommands (which groups consecutive writes and GETs); write all the replies in
// one gather write; keep the incomplete tail for the next read. So a pipeline of N commands costs
// one read, one commit and one write rather than N of each.
//
// A protocol error gets "-ERR Protocol error: ..." and the connection is closed, as in Redis; a
// command that was not complete when the client went away is never run.
//
// The coroutine has at most one operation in flight, so it needs no strand: it may resume on any
// I/O thread, but never on two at once. It uses the io_context's executor type directly rather
// than the type-erased any_io_executor, which would cost heap allocations on every operation.
//
// Thread-safety: Close() may be called from any thread; everything else runs in the coroutine.
#pragma once

// clang-format off
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without including it.
// clang-format on

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "api/loop_committer.h"
#include "api/resp_commands.h"
#include "api/resp_parser.h"
#include "api/resp_session.h"
#include "api/resp_writer.h"

namespace edgeflow::api {

class RespConnection : public std::enable_shared_from_this<RespConnection> {
 public:
  using Executor = boost::asio::io_context::executor_type;
  using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;

  // `on_exit` runs once, when the connection is done.
  RespConnection(Socket socket, RespCommands* commands, LoopCommitter* committer,
                 RespParserLimits limits, uint64_t client_id, std::function<void()> on_exit);
  ~RespConnection();
  RespConnection(const RespConnection&) = delete;
  RespConnection& operator=(const RespConnection&) = delete;

  // Starts the connection's coroutine.
  void Start();
  // Shuts the socket down, which ends the coroutine's pending read or write.
  void Close();

 private:
  template <typename T>
  using Awaitable = boost::asio::awaitable<T, Executor>;

  Awaitable<void> Run();
  using WriteResults = Result<std::vector<Result<kv::WriteResult>>>;
  // Commits the session's held-back writes through the LoopCommitter (never blocking the
  // thread) and appends their replies.
  Awaitable<void> CommitHeldWrites();
  // After a protocol error: reads and drops the rest of the client's input, for a bounded time,
  // so that the error reply is not lost to a connection reset.
  Awaitable<void> Drain();
  // The replies in writer_ as a gather list for one write (written inline in Run() rather than
  // in a helper coroutine, whose frame would be one more allocation per batch).
  const std::vector<boost::asio::const_buffer>& ReplyBuffers();
  // After the write: clears writer_; false if the write failed.
  bool WriteDone(const boost::system::error_code& ec);
  // Closes the socket from the coroutine (under close_mu_, against a concurrent Close()).
  void CloseSocket();
  // Makes room for at least one more byte at the end of the buffer.
  void Reserve();
  // Moves the unparsed bytes to the front of the buffer (and shrinks an idle oversized buffer).
  void Compact();

  Socket socket_;
  std::mutex close_mu_;         // Close() from other threads vs. the coroutine closing the socket
  bool socket_closed_ = false;  // GUARDED_BY(close_mu_)
  RespCommands* const commands_;
  LoopCommitter* const committer_;
  RespParser parser_;
  RespWriter writer_;
  RespSession session_;
  std::function<void()> on_exit_;

  // Read buffer: bytes [begin_, end_) are received but not yet consumed by a command.
  std::unique_ptr<char[]> buf_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
  // Reused for every write.
  std::vector<std::string_view> pieces_;
  std::vector<boost::asio::const_buffer> buffers_;
};

}  // namespace edgeflow::api
