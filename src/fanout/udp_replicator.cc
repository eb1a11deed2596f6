#include "fanout/udp_replicator.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>

namespace edgeflow::fanout {

namespace {

constexpr size_t kBatch = 64;              // datagrams per recvmmsg
constexpr size_t kMaxDatagramBytes = 65536;

Result<sockaddr_in> Ipv4(const HostPort& address) {
  sockaddr_in out{};
  out.sin_family = AF_INET;
  out.sin_port = htons(address.port);
  if (inet_pton(AF_INET, address.host.c_str(), &out.sin_addr) != 1) {
    return Error(Status::InvalidArgument("\"" + address.host +
                                         "\" is not an IPv4 address (the fan-out is IPv4 only)"));
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<UdpReplicator>> UdpReplicator::Start(
    const HostPort& listen, const std::vector<ReplicatorConsumer>& consumers, uint8_t codec) {
  auto local = Ipv4(listen);
  if (!local) return Error(local.error());
  std::vector<sockaddr_in> destinations;
  for (const ReplicatorConsumer& consumer : consumers) {
    auto destination = Ipv4(consumer.destination);
    if (!destination) return Error(destination.error());
    destinations.push_back(*destination);
  }
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(Status::IoError(std::string("socket: ") + std::strerror(errno)));
  // A video burst (a reference picture is tens of datagrams) must not overflow the default buffer.
  const int buffer = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&*local), sizeof *local) != 0) {
    const std::string error = std::strerror(errno);
    ::close(fd);
    return Error(Status::IoError("cannot bind " + listen.ToString() + ": " + error));
  }
  sockaddr_in bound{};
  socklen_t length = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
  std::unique_ptr<UdpReplicator> replicator(
      new UdpReplicator(fd, ntohs(bound.sin_port), std::move(destinations), codec));
  for (const ReplicatorConsumer& consumer : consumers) {
    replicator->decider_.AddConsumer(consumer.policy);
  }
  replicator->thread_ = std::thread([r = replicator.get()] { r->Loop(); });
  return replicator;
}

UdpReplicator::UdpReplicator(int fd, uint16_t port, std::vector<sockaddr_in> destinations,
                             uint8_t codec)
    : fd_(fd), port_(port), destinations_(std::move(destinations)), decider_(codec) {}

UdpReplicator::~UdpReplicator() {
  Stop();
  ::close(fd_);
}

void UdpReplicator::Stop() {
  stopping_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

ConsumerCounters UdpReplicator::counters(size_t consumer) const {
  std::lock_guard lock(mu_);
  return decider_.counters(consumer);
}

uint64_t UdpReplicator::datagrams() const {
  std::lock_guard lock(mu_);
  return decider_.datagrams();
}

void UdpReplicator::Loop() {
  std::vector<std::array<uint8_t, kMaxDatagramBytes>> in(kBatch);
  std::array<iovec, kBatch> in_iov{};
  std::array<mmsghdr, kBatch> in_msgs{};
  for (size_t i = 0; i < kBatch; ++i) {
    in_iov[i] = {in[i].data(), in[i].size()};
    in_msgs[i].msg_hdr.msg_iov = &in_iov[i];
    in_msgs[i].msg_hdr.msg_iovlen = 1;
  }
  // One copy per consumer per received datagram, sent in one sendmmsg per batch.
  std::vector<std::vector<uint8_t>> copies;
  std::vector<iovec> out_iov;
  std::vector<mmsghdr> out_msgs;
  while (!stopping_.load(std::memory_order_acquire)) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;  // a tenth of a second: how long Stop() may wait
    const int received = ::recvmmsg(fd_, in_msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
    if (received <= 0) continue;
    copies.resize(static_cast<size_t>(received) * destinations_.size());
    out_iov.clear();
    out_msgs.clear();
    {
      std::lock_guard lock(mu_);
      for (int m = 0; m < received; ++m) {
        const std::span<const uint8_t> datagram(in[m].data(), in_msgs[m].msg_len);
        decider_.Decide(datagram);
        for (size_t c = 0; c < destinations_.size(); ++c) {
          std::vector<uint8_t>& copy = copies[m * destinations_.size() + c];
          decider_.Compose(c, datagram, &copy);
          if (copy.empty()) continue;
          out_iov.push_back({copy.data(), copy.size()});
        }
      }
    }
    // iovecs are complete (no more reallocation): point the messages at them.
    size_t next_iov = 0;
    for (int m = 0; m < received; ++m) {
      for (size_t c = 0; c < destinations_.size(); ++c) {
        if (copies[m * destinations_.size() + c].empty()) continue;
        mmsghdr& msg = out_msgs.emplace_back();
        msg.msg_hdr.msg_name = const_cast<sockaddr_in*>(&destinations_[c]);
        msg.msg_hdr.msg_namelen = sizeof(sockaddr_in);
        msg.msg_hdr.msg_iov = &out_iov[next_iov++];
        msg.msg_hdr.msg_iovlen = 1;
      }
    }
    for (size_t sent = 0; sent < out_msgs.size();) {
      const int n = ::sendmmsg(fd_, out_msgs.data() + sent,
                               static_cast<unsigned>(out_msgs.size() - sent), 0);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        // A consumer that is gone (ICMP port unreachable) or a full buffer: count it, skip it.
        send_errors_.fetch_add(1, std::memory_order_relaxed);
        ++sent;
        continue;
      }
      sent += static_cast<size_t>(n);
    }
  }
}

}  // namespace edgeflow::fanout
