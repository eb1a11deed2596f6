#include "api/http_server.h"

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>: it goes first.
// clang-format off
#include <utility>
// clang-format on

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "api/http_connection.h"
#include "api/http_handlers.h"
#include "api/http_metrics.h"
#include "api/http_watch_hub.h"
#include "common/log.h"

namespace edgeflow::api {
namespace {

namespace net = boost::asio;
using boost::system::error_code;
using net::ip::tcp;

class HttpServerImpl final : public HttpServer {
 public:
  HttpServerImpl(HttpServerConfig config, kv::Store* store, metrics::Registry* registry,
                 NodeInfoProvider node_info, HttpServices channels)
      : config_(std::move(config)),
        store_(store),
        metrics_(registry),
        handlers_(config_, store, registry, std::move(node_info), channels),
        ioc_(static_cast<int>(config_.io_threads)) {
    if (config_.write_threads > 0) write_pool_.emplace(config_.write_threads);
    context_.config = &config_;
    context_.store = store_;
    context_.handlers = &handlers_;
    context_.metrics = &metrics_;
    context_.hub = hub_.get();
    context_.stopping = &stopping_;
    if (write_pool_) context_.write_executor = write_pool_->get_executor();
  }

  ~HttpServerImpl() override { Stop(); }

  Status Start() override;
  void Stop() noexcept override;
  HostPort bound_address() const override { return bound_; }

 private:
  Result<tcp::endpoint> ResolveListen();
  net::awaitable<void> AcceptLoop();
  void OnConnectionDone(uint64_t id);

  const HttpServerConfig config_;
  kv::Store* const store_;
  HttpMetrics metrics_;
  HttpHandlers handlers_;
  // Shared with the store's commit listener, which may outlive a Stop() by a moment.
  std::shared_ptr<WatchHub> hub_ = std::make_shared<WatchHub>();
  std::atomic<bool> stopping_{false};
  HttpConnectionContext context_;

  std::mutex mu_;
  std::condition_variable all_closed_;
  std::unordered_map<uint64_t, std::weak_ptr<HttpConnection>> connections_;  // GUARDED_BY(mu_)
  uint64_t next_connection_id_ = 0;                                          // GUARDED_BY(mu_)

  HostPort bound_;
  std::optional<uint64_t> listener_id_;
  bool started_ = false;
  bool stopped_ = false;

  // Declared after everything that connection handlers use: the io_context is destroyed first,
  // and with it any handler that did not finish.
  net::io_context ioc_;
  net::strand<net::io_context::executor_type> accept_strand_{ioc_.get_executor()};
  std::optional<tcp::acceptor> acceptor_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::optional<net::thread_pool> write_pool_;
  std::vector<std::thread> threads_;
};

Result<tcp::endpoint> HttpServerImpl::ResolveListen() {
  error_code ec;
  auto address = net::ip::make_address(config_.listen.host, ec);
  if (!ec) return tcp::endpoint(address, config_.listen.port);
  tcp::resolver resolver(ioc_);
  auto results = resolver.resolve(config_.listen.host, std::to_string(config_.listen.port),
                                  tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    return Error(Status::InvalidArgument("http listen address '" + config_.listen.ToString() +
                                         "': cannot resolve host: " + ec.message()));
  }
  return results.begin()->endpoint();
}

Status HttpServerImpl::Start() {
  if (started_) return Status::Internal("HttpServer::Start called twice");
  auto endpoint = ResolveListen();
  if (!endpoint) return endpoint.error();
  error_code ec;
  acceptor_.emplace(accept_strand_);
  auto fail = [&](std::string_view step) {
    std::string message =
        "cannot " + std::string(step) + " " + config_.listen.ToString() + ": " + ec.message();
    acceptor_.reset();
    return Status::Unavailable(std::move(message));
  };
  acceptor_->open(endpoint->protocol(), ec);
  if (ec) return fail("open a socket for");
  acceptor_->set_option(net::socket_base::reuse_address(true), ec);
  if (ec) return fail("configure");
  acceptor_->bind(*endpoint, ec);
  if (ec) return fail("listen on");
  acceptor_->listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen on");
  auto local = acceptor_->local_endpoint(ec);
  if (ec) return fail("read the bound address of");
  bound_ = HostPort{local.address().to_string(), local.port()};

  listener_id_ = store_->AddCommitListener([hub = hub_](uint64_t) { hub->OnCommit(); });
  started_ = true;
  work_.emplace(ioc_.get_executor());
  net::co_spawn(
      accept_strand_, [this] { return AcceptLoop(); }, net::detached);
  const size_t threads = std::max<size_t>(1, config_.io_threads);
  for (size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] {
      for (;;) {
        try {
          ioc_.run();
          return;
        } catch (const std::exception& e) {
          // Handlers catch their own errors; anything reaching here is a bug, logged, and the
          // thread goes back to serving.
          log::Error("http io thread: unexpected exception", {{"error", e.what()}});
        }
      }
    });
  }
  return Status::Ok();
}

net::awaitable<void> HttpServerImpl::AcceptLoop() {
  net::steady_timer backoff(accept_strand_);
  for (;;) {
    error_code ec;
    tcp::socket socket = co_await acceptor_->async_accept(
        net::make_strand(ioc_), net::redirect_error(net::use_awaitable, ec));
    if (stopping_.load() || ec == net::error::operation_aborted || !acceptor_->is_open()) co_return;
    if (ec) {
      // Typically EMFILE/ENFILE: pause instead of spinning on a listener that cannot accept.
      log::Warn("http accept failed", {{"error", ec.message()}});
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(net::redirect_error(net::use_awaitable, ec));
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    std::shared_ptr<HttpConnection> connection;
    bool reject = false;
    {
      std::lock_guard lock(mu_);
      reject = connections_.size() >= config_.max_connections;
      uint64_t id = next_connection_id_++;
      connection = std::make_shared<HttpConnection>(std::move(socket), &context_,
                                                    [this, id] { OnConnectionDone(id); });
      connections_.emplace(id, connection);
    }
    connection->Start(reject);
  }
}

void HttpServerImpl::OnConnectionDone(uint64_t id) {
  std::lock_guard lock(mu_);
  connections_.erase(id);
  if (connections_.empty()) all_closed_.notify_all();
}

void HttpServerImpl::Stop() noexcept {
  if (!started_ || stopped_) return;
  stopped_ = true;
  stopping_.store(true);
  if (listener_id_) store_->RemoveCommitListener(*listener_id_);
  net::post(accept_strand_, [this] {
    error_code ec;
    acceptor_->close(ec);
  });
  hub_->Close();
  std::vector<std::shared_ptr<HttpConnection>> open;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, weak] : connections_) {
      if (auto c = weak.lock()) open.push_back(std::move(c));
    }
  }
  for (auto& c : open) c->Close();
  open.clear();
  {
    std::unique_lock lock(mu_);
    all_closed_.wait_for(lock, std::chrono::milliseconds(config_.shutdown_grace_ms),
                         [this] { return connections_.empty(); });
  }
  work_.reset();
  {
    std::lock_guard lock(mu_);
    // Whatever did not end in time is abandoned; its handlers are destroyed with the io_context.
    if (!connections_.empty()) ioc_.stop();
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
  if (write_pool_) write_pool_->join();
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Create(HttpServerConfig config, kv::Store* store,
                                                       metrics::Registry* metrics,
                                                       NodeInfoProvider node_info,
                                                       HttpServices channels) {
  if (store == nullptr || metrics == nullptr) {
    return Error(Status::InvalidArgument("http server needs a store and a metrics registry"));
  }
  if (config.io_threads == 0 || config.io_threads > 256) {
    return Error(Status::InvalidArgument("http io_threads must be between 1 and 256"));
  }
  if (config.max_header_bytes < 1024 || config.max_header_bytes > (1u << 30)) {
    return Error(Status::InvalidArgument("http max_header_bytes must be between 1 KiB and 1 GiB"));
  }
  if (config.max_key_bytes == 0) {
    return Error(Status::InvalidArgument("http max_key_bytes must be positive"));
  }
  if (config.write_threads > 256) {
    return Error(Status::InvalidArgument("http write_threads must be at most 256"));
  }
  if (config.max_connections == 0) {
    return Error(Status::InvalidArgument("http max_connections must be positive"));
  }
  if (config.idle_timeout_seconds <= 0 || config.watch_keepalive_seconds <= 0 ||
      config.shutdown_grace_ms < 0) {
    return Error(Status::InvalidArgument(
        "http idle_timeout_seconds and watch_keepalive_seconds must be positive"));
  }
  return std::unique_ptr<HttpServer>(
      new HttpServerImpl(std::move(config), store, metrics, std::move(node_info), channels));
}

}  // namespace edgeflow::api
