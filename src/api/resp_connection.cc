#include "api/resp_connection.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstring>
#include <exception>

#include "common/host_port.h"
#include "common/log.h"

namespace edgeflow::api {
namespace {

constexpr size_t kInitialBufferBytes = 16 << 10;
// An idle connection whose buffer grew past this (for a large value) gives the memory back.
constexpr size_t kShrinkAboveBytes = 1 << 20;
// Replies are sent once this much has piled up, even mid-pipeline, so that a long pipeline of
// large GETs does not hold all its values in memory at once.
constexpr size_t kWriteThresholdBytes = 4 << 20;
// After a protocol error the connection reads (and drops) what the client still sends, for at
// most this long or this much, before closing: closing a socket with unread input makes the
// kernel send a reset, which can destroy the error reply before the client reads it.
constexpr auto kDrainTime = std::chrono::seconds(2);
constexpr size_t kDrainBytes = 16 << 20;

constexpr boost::asio::use_awaitable_t<RespConnection::Executor> kUseAwaitable;

std::string EndpointText(const boost::asio::ip::tcp::endpoint& ep) {
  return HostPort{ep.address().to_string(), ep.port()}.ToString();
}

}  // namespace

RespConnection::RespConnection(Socket socket, RespCommands* commands, LoopCommitter* committer,
                               RespParserLimits limits, uint64_t client_id,
                               std::function<void()> on_exit)
    : socket_(std::move(socket)),
      commands_(commands),
      committer_(committer),
      parser_(limits),
      on_exit_(std::move(on_exit)) {
  session_.client_id = client_id;
  session_.ns = commands_->config().default_namespace;
  boost::system::error_code ec;
  if (auto ep = socket_.remote_endpoint(ec); !ec) session_.peer = EndpointText(ep);
  if (auto ep = socket_.local_endpoint(ec); !ec) session_.local = EndpointText(ep);
  // Replies are written whole, so Nagle's algorithm would only add latency.
  socket_.set_option(boost::asio::ip::tcp::no_delay(true), ec);
}

RespConnection::~RespConnection() {
  if (on_exit_) on_exit_();
}

void RespConnection::Start() {
  boost::asio::co_spawn(
      socket_.get_executor(), [self = shared_from_this()] { return self->Run(); },
      [](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          log::Error("resp connection failed", {{"error", ex.what()}});
        }
      });
}

void RespConnection::Close() {
  // Shutting the socket down (rather than closing it) is safe while the coroutine has an
  // operation in flight on another thread: that operation just completes with an error.
  std::lock_guard lock(close_mu_);
  if (socket_closed_) return;
  boost::system::error_code ec;
  socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
}

void RespConnection::CloseSocket() {
  std::lock_guard lock(close_mu_);
  socket_closed_ = true;
  boost::system::error_code ec;
  socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

void RespConnection::Reserve() {
  if (end_ < capacity_) return;
  const size_t size = end_ - begin_;
  size_t capacity = capacity_ == 0 ? kInitialBufferBytes : capacity_;
  // Grow only when the unparsed bytes fill most of the buffer; otherwise moving them to the
  // front makes enough room.
  if (size > capacity / 2) capacity *= 2;
  if (capacity != capacity_) {
    std::unique_ptr<char[]> bigger(new char[capacity]);
    if (size > 0) std::memcpy(bigger.get(), buf_.get() + begin_, size);
    buf_ = std::move(bigger);
    capacity_ = capacity;
  } else if (size > 0) {
    std::memmove(buf_.get(), buf_.get() + begin_, size);
  }
  begin_ = 0;
  end_ = size;
}

void RespConnection::Compact() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
    if (capacity_ > kShrinkAboveBytes) {
      buf_.reset(new char[kInitialBufferBytes]);
      capacity_ = kInitialBufferBytes;
    }
  }
}

const std::vector<boost::asio::const_buffer>& RespConnection::ReplyBuffers() {
  pieces_.clear();
  writer_.Pieces(&pieces_);
  buffers_.clear();
  for (std::string_view p : pieces_) buffers_.emplace_back(p.data(), p.size());
  return buffers_;
}

bool RespConnection::WriteDone(const boost::system::error_code& ec) {
  writer_.Clear();
  if (ec) {
    log::Debug("resp write failed", {{"peer", session_.peer}, {"error", ec.message()}});
    return false;
  }
  return true;
}

RespConnection::Awaitable<void> RespConnection::Drain() {
  boost::system::error_code ec;
  socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
  boost::asio::steady_timer timer(socket_.get_executor());
  timer.expires_after(kDrainTime);
  timer.async_wait([self = shared_from_this()](const boost::system::error_code& timer_ec) {
    if (!timer_ec) self->Close();
  });
  begin_ = end_ = 0;
  size_t drained = 0;
  while (drained < kDrainBytes) {
    drained += co_await socket_.async_read_some(boost::asio::buffer(buf_.get(), capacity_),
                                                boost::asio::redirect_error(kUseAwaitable, ec));
    if (ec) break;
  }
  timer.cancel();
}

RespConnection::Awaitable<void> RespConnection::CommitHeldWrites() {
  RespCommands* commands = commands_;
  const std::span<const kv::WriteOp> ops = commands->PendingWrites(session_);
  commands->AsyncCommitStarted();
  WriteResults results =
      co_await boost::asio::async_initiate<decltype(kUseAwaitable), void(WriteResults)>(
          [committer = committer_, ops](auto handler) {
            committer->Submit(ops, [handler = std::move(handler)](WriteResults r) mutable {
              std::move(handler)(std::move(r));
            });
          },
          kUseAwaitable);
  commands->AsyncCommitFinished();
  commands->FinishWrites(&session_, &writer_, std::move(results));
}

RespConnection::Awaitable<void> RespConnection::Run() {
  boost::system::error_code ec;
  bool open = true;
  bool protocol_error = false;
  while (open) {
    Reserve();
    const size_t n =
        co_await socket_.async_read_some(boost::asio::buffer(buf_.get() + end_, capacity_ - end_),
                                         boost::asio::redirect_error(kUseAwaitable, ec));
    if (ec) {
      if (ec != boost::asio::error::eof && ec != boost::asio::error::operation_aborted &&
          ec != boost::asio::error::connection_reset) {
        log::Debug("resp read failed", {{"peer", session_.peer}, {"error", ec.message()}});
      }
      break;
    }
    end_ += n;

    for (;;) {
      const std::string_view input(buf_.get() + begin_, end_ - begin_);
      const RespParser::Outcome outcome = parser_.Parse(input);
      if (outcome == RespParser::Outcome::kNeedMore) break;
      if (outcome == RespParser::Outcome::kError) {
        commands_->Flush(&session_, &writer_);
        commands_->ReplyProtocolError(&writer_, parser_.error());
        log::Debug("resp protocol error", {{"peer", session_.peer}, {"error", parser_.error()}});
        open = false;
        protocol_error = true;
        break;
      }
      begin_ += parser_.consumed();
      if (!parser_.args().empty()) {
        // A command that ends the group of held-back writes: commit them without blocking first.
        if (commands_->WouldFlushWrites(session_, parser_.args())) co_await CommitHeldWrites();
        commands_->Submit(&session_, parser_.args(), &writer_);
      }
      if (session_.quit) {
        open = false;
        break;
      }
      if (writer_.size() >= kWriteThresholdBytes) {
        if (!commands_->PendingWrites(session_).empty()) co_await CommitHeldWrites();
        commands_->Flush(&session_, &writer_);
        parser_.ReleaseScratch();
        co_await boost::asio::async_write(socket_, ReplyBuffers(),
                                          boost::asio::redirect_error(kUseAwaitable, ec));
        if (!WriteDone(ec)) {
          open = false;
          break;
        }
      }
    }
    // Held-back writes at the end of what the client sent commit asynchronously: this thread
    // serves other connections meanwhile, and their writes join the same commit.
    if (!commands_->PendingWrites(session_).empty()) co_await CommitHeldWrites();
    commands_->Flush(&session_, &writer_);
    parser_.ReleaseScratch();
    if (!writer_.empty()) {
      co_await boost::asio::async_write(socket_, ReplyBuffers(),
                                        boost::asio::redirect_error(kUseAwaitable, ec));
      if (!WriteDone(ec)) break;
    }
    if (protocol_error) co_await Drain();
    Compact();
  }
  CloseSocket();
}

}  // namespace edgeflow::api
