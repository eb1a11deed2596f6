#include "fanout_paths.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

namespace edgeflow::bench {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// An upper bound on a Send()'s batches on top of its time limit, so that the loop does not
// depend on the clock alone.
constexpr uint64_t kMaxBatchesPerSecond = 2'000'000;

ef_consumer_policy KeepEverything() {
  return ef_consumer_policy{.keep_num = 1, .keep_den = 1, .mode = EF_DROP_PACKET, .pad = {}};
}

}  // namespace

uint32_t Ipv4Address(const char* text) {
  in_addr address{};
  ::inet_pton(AF_INET, text, &address);
  return address.s_addr;
}

Result<std::unique_ptr<BlastSender>> BlastSender::Create(NetNamespace& sender,
                                                         const std::atomic<bool>& stop) {
  // errno is per thread: the one that made the socket hands it back.
  auto made = sender.Run([] {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    return fd >= 0 ? fd : -errno;
  });
  if (!made) return Error(made.error());
  if (*made < 0) return Error(Status::IoError(std::string("socket: ") + std::strerror(-*made)));
  const int fd = *made;
  const int buffer = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
  // A send never blocks for long (the copies are freed as the receiving side processes them),
  // but the loop must not depend on it.
  const timeval timeout{.tv_sec = 0, .tv_usec = 200'000};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  return std::unique_ptr<BlastSender>(new BlastSender(fd, stop));
}

BlastSender::~BlastSender() { ::close(fd_); }

BlastSender::Outcome BlastSender::Send(const std::vector<Bytes>& datagrams,
                                       Clock::duration duration,
                                       const std::function<uint64_t()>& taken, uint64_t window) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(FanoutTestbed::kStreamPort);
  to.sin_addr.s_addr = Ipv4Address(FanoutTestbed::kStreamAddress);
  std::array<iovec, kSendBatch> iov{};
  std::array<mmsghdr, kSendBatch> messages{};
  const uint64_t taken_before = taken ? taken() : 0;
  Outcome outcome;
  size_t next = 0;
  const auto start = Clock::now();
  const auto deadline = start + duration;
  const uint64_t max_batches = static_cast<uint64_t>(
      std::chrono::duration<double>(duration).count() * kMaxBatchesPerSecond + 1);
  for (uint64_t batch = 0; batch < max_batches; ++batch) {
    if (stop_.load(std::memory_order_relaxed) || Clock::now() >= deadline) break;
    if (taken && outcome.datagrams + kSendBatch > (taken() - taken_before) + window) {
      std::this_thread::sleep_for(200us);
      continue;
    }
    for (size_t i = 0; i < kSendBatch; ++i) {
      const Bytes& datagram = datagrams[(next + i) % datagrams.size()];
      iov[i] = {const_cast<uint8_t*>(datagram.data()), datagram.size()};
      messages[i].msg_hdr = {};
      messages[i].msg_hdr.msg_name = &to;
      messages[i].msg_hdr.msg_namelen = sizeof to;
      messages[i].msg_hdr.msg_iov = &iov[i];
      messages[i].msg_hdr.msg_iovlen = 1;
    }
    const int sent = ::sendmmsg(fd_, messages.data(), kSendBatch, 0);
    if (sent <= 0) {
      if (sent < 0 && errno == EINTR) continue;
      ++outcome.send_errors;
      std::this_thread::sleep_for(100us);  // ENOBUFS and the like: let the edge catch up
      continue;
    }
    outcome.datagrams += static_cast<uint64_t>(sent);
    next = (next + static_cast<size_t>(sent)) % datagrams.size();
  }
  outcome.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return outcome;
}

std::vector<Bytes> ArbitraryDatagrams(size_t size) {
  Bytes datagram(size);
  uint32_t state = 0x2545f491;
  for (uint8_t& byte : datagram) {
    state = state * 1664525u + 1013904223u;
    byte = static_cast<uint8_t>(state >> 24);
  }
  return {datagram};
}

Result<std::unique_ptr<EbpfPath>> EbpfPath::Start(FanoutTestbed& testbed, size_t consumers) {
  auto loaded = fanout::FanoutProgram::Load();
  if (!loaded) return Error(loaded.error());
  // From here on the destructor detaches and unloads, whatever fails next.
  std::unique_ptr<EbpfPath> path(new EbpfPath(testbed, std::move(*loaded)));
  auto configured = testbed.edge().Run([&]() -> Status {
    fanout::FanoutProgram& program = *path->program_;
    EF_RETURN_IF_ERROR(program.Attach(testbed.uplink_ifindex()));
    EF_RETURN_IF_ERROR(program.AddStream(0, {.daddr = Ipv4Address(FanoutTestbed::kStreamAddress),
                                             .dport = htons(FanoutTestbed::kStreamPort),
                                             .codec = EF_CODEC_AUTO}));
    for (size_t k = 0; k < consumers; ++k) {
      const ConsumerLink& link = testbed.consumers()[k];
      fanout::ConsumerSpec spec;
      spec.ifindex = link.edge_ifindex;
      spec.dmac = link.sink_mac;
      spec.smac = link.edge_mac;
      spec.daddr = Ipv4Address(link.sink_address.c_str());
      spec.dport = htons(FanoutTestbed::kConsumerPort);
      spec.policy = KeepEverything();
      auto added = program.AddConsumer(0, spec);
      if (!added) return added.error();
    }
    return Status::Ok();
  });
  if (!configured) return Error(configured.error());
  if (!configured->ok()) return Error(*configured);
  return path;
}

EbpfPath::~EbpfPath() {
  auto destroyed = testbed_.edge().Run([&] { program_.reset(); });
  if (!destroyed) {
    std::fprintf(stderr, "fanout_bench: %s\n", destroyed.error().ToString().c_str());
  }
  if (Status cleared = testbed_.ClearUplinkFilters(); !cleared.ok()) {
    std::fprintf(stderr, "fanout_bench: %s\n", cleared.ToString().c_str());
  }
}

uint64_t EbpfPath::datagrams() const {
  auto counters = program_->Counters(0);
  return counters ? counters->packets : 0;
}

Result<std::unique_ptr<fanout::UdpReplicator>> StartReplicator(FanoutTestbed& testbed,
                                                               size_t consumers) {
  std::vector<fanout::ReplicatorConsumer> destinations;
  for (size_t k = 0; k < consumers; ++k) {
    destinations.push_back(
        {.destination = {testbed.consumers()[k].sink_address, FanoutTestbed::kConsumerPort},
         .policy = KeepEverything()});
  }
  // The socket is made in the edge namespace and stays there; its thread may run anywhere.
  auto started = testbed.edge().Run([&] {
    return fanout::UdpReplicator::Start({FanoutTestbed::kStreamAddress, FanoutTestbed::kStreamPort},
                                        destinations);
  });
  if (!started) return Error(started.error());
  return std::move(*started);
}

}  // namespace edgeflow::bench
