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

constexpr size_t kBatch = 64;  // datagrams per recvmmsg
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
  for (const ReplicatorConsumer& consumer : consumers) {
    if (auto destination = Ipv4(consumer.destination); !destination) {
      return Error(destination.error());
    }
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
  std::unique_ptr<UdpReplicator> replicator(new UdpReplicator(fd, ntohs(bound.sin_port), codec));
  for (const ReplicatorConsumer& consumer : consumers) {
    if (auto added = replicator->AddConsumer(consumer); !added) return Error(added.error());
  }
  replicator->thread_ = std::thread([r = replicator.get()] { r->Loop(); });
  return replicator;
}

UdpReplicator::UdpReplicator(int fd, uint16_t port, uint8_t codec)
    : fd_(fd), port_(port), decider_(codec) {}

Result<size_t> UdpReplicator::AddConsumer(const ReplicatorConsumer& consumer) {
  auto destination = Ipv4(consumer.destination);
  if (!destination) return Error(destination.error());
  std::lock_guard lock(mu_);
  destinations_.push_back(*destination);
  return decider_.AddConsumer(consumer.policy);
}

void UdpReplicator::RemoveConsumer(size_t consumer) {
  std::lock_guard lock(mu_);
  decider_.RemoveConsumer(consumer);
}

void UdpReplicator::SetPolicy(size_t consumer, const ef_consumer_policy& policy) {
  std::lock_guard lock(mu_);
  decider_.SetPolicy(consumer, policy);
}

uint64_t UdpReplicator::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

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
  // The copies of a batch, sent in one sendmmsg: their bytes, where each goes and whose it is.
  std::vector<std::vector<uint8_t>> copies;
  std::vector<sockaddr_in> to;
  std::vector<size_t> consumer_of;
  std::vector<iovec> out_iov;
  std::vector<mmsghdr> out_msgs;
  std::vector<uint8_t> composed;
  while (!stopping_.load(std::memory_order_acquire)) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;  // a tenth of a second: how long Stop() may wait
    const int received = ::recvmmsg(fd_, in_msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
    if (received <= 0) continue;
    size_t count = 0;
    {
      std::lock_guard lock(mu_);
      for (int m = 0; m < received; ++m) {
        const std::span<const uint8_t> datagram(in[m].data(), in_msgs[m].msg_len);
        bytes_ += datagram.size();
        decider_.Decide(datagram);
        for (size_t c = 0; c < destinations_.size(); ++c) {
          if (!decider_.active(c)) continue;
          if (decider_.mask(c) == 0) continue;  // (an empty datagram is sent on, empty)
          decider_.Compose(c, datagram, &composed);
          if (count == copies.size()) {
            copies.emplace_back();
            to.emplace_back();
            consumer_of.emplace_back();
          }
          copies[count].swap(composed);
          to[count] = destinations_[c];
          consumer_of[count] = c;
          ++count;
        }
      }
    }
    out_iov.resize(count);
    out_msgs.assign(count, mmsghdr{});
    for (size_t i = 0; i < count; ++i) {
      out_iov[i] = {copies[i].data(), copies[i].size()};
      out_msgs[i].msg_hdr.msg_name = &to[i];
      out_msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      out_msgs[i].msg_hdr.msg_iov = &out_iov[i];
      out_msgs[i].msg_hdr.msg_iovlen = 1;
    }
    for (size_t sent = 0; sent < count;) {
      const int n = ::sendmmsg(fd_, out_msgs.data() + sent, static_cast<unsigned>(count - sent), 0);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        // A consumer that is gone (ICMP port unreachable) or a full buffer: count it, skip it.
        send_errors_.fetch_add(1, std::memory_order_relaxed);
        {
          std::lock_guard lock(mu_);
          decider_.CountSendError(consumer_of[sent]);
        }
        ++sent;
        continue;
      }
      sent += static_cast<size_t>(n);
    }
  }
}

}  // namespace edgeflow::fanout
