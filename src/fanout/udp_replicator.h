// UdpReplicator: the fan-out in userspace, for where the eBPF program cannot be loaded (no
// privileges, an old kernel) and as the baseline it is measured against. It receives a sensor's
// datagrams on a UDP socket (recvmmsg, up to 64 at a time), decides for every consumer what of
// each datagram it gets (DatagramDecider: the kernel's own decision code), and sends each
// consumer its copy (sendmmsg, one call per received batch).
//
// Consumers can be added, removed and given another policy while it runs (the next datagram sees
// the change).
//
// IPv4 only, like the kernel program. Thread-safety: every method from any thread; Stop() from
// one.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/host_port.h"
#include "common/status.h"
#include "fanout/datagram_decider.h"

namespace edgeflow::fanout {

struct ReplicatorConsumer {
  HostPort destination;  // an IPv4 literal and a port
  ef_consumer_policy policy{};
};

class UdpReplicator {
 public:
  // Binds `listen` (an IPv4 literal; port 0 = any free one) and starts forwarding on a thread of
  // its own. InvalidArgument for a destination that is not an IPv4 literal; IoError when the
  // socket cannot be made or bound.
  static Result<std::unique_ptr<UdpReplicator>> Start(
      const HostPort& listen, const std::vector<ReplicatorConsumer>& consumers,
      uint8_t codec = EF_CODEC_AUTO);
  ~UdpReplicator();
  UdpReplicator(const UdpReplicator&) = delete;
  UdpReplicator& operator=(const UdpReplicator&) = delete;

  void Stop();  // idempotent
  uint16_t port() const { return port_; }

  // Returns the consumer's index (indexes are not reused). InvalidArgument for a destination that
  // is not an IPv4 literal.
  Result<size_t> AddConsumer(const ReplicatorConsumer& consumer);
  void RemoveConsumer(size_t consumer);
  void SetPolicy(size_t consumer, const ef_consumer_policy& policy);

  ConsumerCounters counters(size_t consumer) const;
  // Datagrams and bytes received (the kernel program's StreamCounters::packets and bytes, but
  // counting UDP payload bytes).
  uint64_t bytes() const;
  uint64_t datagrams() const;
  uint64_t send_errors() const { return send_errors_.load(std::memory_order_relaxed); }

 private:
  UdpReplicator(int fd, uint16_t port, uint8_t codec);
  void Loop();

  const int fd_;
  const uint16_t port_;
  mutable std::mutex mu_;
  std::vector<sockaddr_in> destinations_;  // GUARDED_BY(mu_), by consumer index
  DatagramDecider decider_;                // GUARDED_BY(mu_)
  uint64_t bytes_ = 0;                     // GUARDED_BY(mu_)
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> send_errors_{0};
  std::thread thread_;
};

}  // namespace edgeflow::fanout
