#include "api/resp_server.h"

// clang-format off
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without including it.
// clang-format on

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "api/resp_commands.h"
#include "api/resp_connection.h"
#include "common/log.h"

namespace edgeflow::api {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// A bulk string may exceed the largest value a little, so that a slightly too large value gets
// a clear "value too large" reply instead of a protocol error that closes the connection.
constexpr size_t kBulkSlackBytes = 1 << 20;
// How long Stop() lets connections finish the command they are running before it stops the I/O
// threads regardless.
constexpr auto kStopGrace = std::chrono::seconds(5);

class RespServerImpl final : public RespServer {
 public:
  RespServerImpl(RespServerConfig config, kv::Store* store, metrics::Registry* metrics)
      : config_(config),
        commands_(std::move(config), store, metrics),
        io_(static_cast<int>(config_.io_threads)),
        committer_(store, io_.get_executor(), config_.commit_on_io_thread),
        acceptor_(asio::make_strand(io_)) {
    limits_.max_args = config_.max_args;
    limits_.max_bulk_bytes =
        std::max(config_.max_value_bytes, config_.max_key_bytes) + kBulkSlackBytes;
    limits_.max_inline_bytes = config_.max_inline_bytes;
    limits_.max_command_bytes = config_.max_command_bytes;
  }

  ~RespServerImpl() override { Stop(); }

  Status Start() override {
    std::lock_guard lifecycle(lifecycle_mu_);
    if (started_) return Status::FailedPrecondition("the RESP server was already started");
    const std::string where = config_.listen.ToString();
    boost::system::error_code ec;
    tcp::resolver resolver(io_);
    auto endpoints = resolver.resolve(config_.listen.host, std::to_string(config_.listen.port),
                                      tcp::resolver::passive, ec);
    if (ec || endpoints.empty()) {
      return Status::InvalidArgument("cannot resolve RESP listen address " + where + ": " +
                                     ec.message());
    }
    const tcp::endpoint endpoint = endpoints.begin()->endpoint();
    if (acceptor_.open(endpoint.protocol(), ec); ec) return ListenError(where, ec);
    acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (acceptor_.bind(endpoint, ec); ec) return ListenError(where, ec);
    if (acceptor_.listen(asio::socket_base::max_listen_connections, ec); ec) {
      return ListenError(where, ec);
    }
    const tcp::endpoint local = acceptor_.local_endpoint(ec);
    bound_ = HostPort{config_.listen.host, local.port()};
    commands_.set_bound_port(local.port());

    asio::co_spawn(acceptor_.get_executor(), AcceptLoop(), asio::detached);
    threads_.reserve(config_.io_threads);
    for (size_t i = 0; i < config_.io_threads; ++i) {
      threads_.emplace_back([this] { io_.run(); });
    }
    started_ = true;
    log::Debug("resp server started", {{"addr", bound_.ToString()}});
    return Status::Ok();
  }

  void Stop() noexcept override {
    std::lock_guard lifecycle(lifecycle_mu_);
    if (!started_ || stopped_) return;
    stopped_ = true;
    asio::post(acceptor_.get_executor(), [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
    });
    std::vector<std::shared_ptr<RespConnection>> open;
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      for (auto& [id, weak] : connections_) {
        if (auto connection = weak.lock()) open.push_back(std::move(connection));
      }
    }
    for (auto& connection : open) connection->Close();
    // Dropped outside the lock: the last reference runs Forget(), which takes it.
    open.clear();
    {
      // A connection in the middle of a store call finishes it first.
      std::unique_lock lock(mu_);
      closed_cv_.wait_for(lock, kStopGrace, [this] { return connections_.empty(); });
    }
    // Commits in flight complete on the store's thread and post to io_: let them land first.
    for (int i = 0; i < 10000 && commands_.async_commits() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    io_.stop();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
    log::Debug("resp server stopped", {{"addr", bound_.ToString()}});
  }

  HostPort bound_address() const override { return bound_; }

 private:
  // Leaves the acceptor closed, so that Start() can be tried again.
  Status ListenError(const std::string& where, const boost::system::error_code& ec) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    return Status::IoError("cannot listen for RESP on " + where + ": " + ec.message());
  }

  asio::awaitable<void> AcceptLoop() {
    for (;;) {
      boost::system::error_code ec;
      RespConnection::Socket socket = co_await acceptor_.async_accept(
          io_.get_executor(), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (!acceptor_.is_open()) co_return;
        log::Debug("resp accept failed", {{"error", ec.message()}});
        // E.g. out of file descriptors: do not spin.
        asio::steady_timer timer(co_await asio::this_coro::executor);
        timer.expires_after(std::chrono::milliseconds(50));
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      Admit(std::move(socket));
    }
  }

  void Admit(RespConnection::Socket socket) {
    std::unique_lock lock(mu_);
    if (stopping_) return;
    if (connections_.size() >= config_.max_connections) {
      lock.unlock();
      commands_.ConnectionRejected();
      // The socket is fresh, so this short write goes into its empty send buffer at once.
      boost::system::error_code ec;
      static constexpr std::string_view kFull = "-ERR max number of clients reached\r\n";
      asio::write(socket, asio::buffer(kFull.data(), kFull.size()), ec);
      socket.shutdown(tcp::socket::shutdown_both, ec);
      socket.close(ec);
      return;
    }
    const uint64_t id = commands_.ConnectionOpened();
    auto connection = std::make_shared<RespConnection>(std::move(socket), &commands_, &committer_,
                                                       limits_, id, [this, id] { Forget(id); });
    connections_.emplace(id, connection);
    lock.unlock();
    connection->Start();
  }

  void Forget(uint64_t id) {
    commands_.ConnectionClosed();
    std::lock_guard lock(mu_);
    connections_.erase(id);
    if (connections_.empty()) closed_cv_.notify_all();
  }

  const RespServerConfig config_;
  RespParserLimits limits_;
  RespCommands commands_;
  HostPort bound_;

  std::mutex lifecycle_mu_;  // serialises Start() and Stop()
  bool started_ = false;
  bool stopped_ = false;

  std::mutex mu_;
  std::condition_variable closed_cv_;
  std::unordered_map<uint64_t, std::weak_ptr<RespConnection>> connections_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                                                    // GUARDED_BY(mu_)

  // Declared last so that it goes first: destroying it destroys the coroutines still suspended
  // in it, whose connections call Forget() on the members above.
  asio::io_context io_;
  LoopCommitter committer_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
};

}  // namespace

Result<std::unique_ptr<RespServer>> RespServer::Create(RespServerConfig config, kv::Store* store,
                                                       metrics::Registry* metrics) {
  if (store == nullptr || metrics == nullptr) {
    return Error(Status::InvalidArgument("the RESP server needs a store and a metrics registry"));
  }
  if (config.io_threads == 0) {
    return Error(Status::InvalidArgument("RESP io_threads must be at least 1"));
  }
  if (Status s = kv::ValidateNamespace(config.default_namespace); !s.ok()) {
    return Error(Status::InvalidArgument("RESP default namespace: " + s.message()));
  }
  if (config.max_key_bytes == 0 || config.max_args == 0 || config.max_inline_bytes == 0 ||
      config.max_connections == 0 || config.max_command_bytes == 0) {
    return Error(Status::InvalidArgument("RESP limits must be positive"));
  }
  if (config.scan_cursor_ttl_seconds <= 0) {
    return Error(Status::InvalidArgument("RESP scan_cursor_ttl_seconds must be positive"));
  }
  return std::unique_ptr<RespServer>(new RespServerImpl(std::move(config), store, metrics));
}

}  // namespace edgeflow::api
