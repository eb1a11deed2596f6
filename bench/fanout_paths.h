// The load and the data paths of the fan-out benchmark (bench/fanout_bench.cc): the sender that
// sends datagrams to the stream address as fast as they are taken, and the two fan-outs that
// replicate them on the testbed's edge, the eBPF program and the userspace replicator, every
// consumer keeping 1/1. (The third path, a Linux bridge, is FanoutTestbed::AddBridge.)
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/status.h"
#include "fanout/fanout_program.h"
#include "fanout/udp_replicator.h"
#include "fanout_stream.h"
#include "fanout_testbed.h"

namespace edgeflow::bench {

inline constexpr size_t kSendBatch = 64;  // datagrams per sendmmsg

// An IPv4 literal in network byte order (0 when it is none).
uint32_t Ipv4Address(const char* text);

// A UDP socket in the sender namespace that sends a set of datagrams round and round to the
// stream address, with sendmmsg of kSendBatch.
class BlastSender {
 public:
  // `stop` ends a Send() early (a signal).
  static Result<std::unique_ptr<BlastSender>> Create(NetNamespace& sender,
                                                     const std::atomic<bool>& stop);
  ~BlastSender();
  BlastSender(const BlastSender&) = delete;
  BlastSender& operator=(const BlastSender&) = delete;

  struct Outcome {
    uint64_t datagrams = 0;
    uint64_t send_errors = 0;
    double seconds = 0;
  };

  // Sends for `duration`. With `taken` (datagrams the edge has taken so far), keeps at most
  // `window` datagrams ahead of it.
  Outcome Send(const std::vector<Bytes>& datagrams, std::chrono::steady_clock::duration duration,
               const std::function<uint64_t()>& taken = nullptr, uint64_t window = 0);

 private:
  BlastSender(int fd, const std::atomic<bool>& stop) : fd_(fd), stop_(stop) {}
  int fd_;
  const std::atomic<bool>& stop_;
};

// One datagram of `size` arbitrary bytes. Not TS (unless `size` is a multiple of 188, which the
// benchmark does not use for it): the fan-out forwards it whole, uninspected.
std::vector<Bytes> ArbitraryDatagrams(size_t size);

// The eBPF fan-out on the edge's uplink, with the testbed's first `consumers` consumers. It is
// attached, configured and destroyed inside the edge namespace, which alone knows its
// interfaces; its destruction also removes the uplink's tc filters.
class EbpfPath {
 public:
  static Result<std::unique_ptr<EbpfPath>> Start(FanoutTestbed& testbed, size_t consumers);
  ~EbpfPath();
  EbpfPath(const EbpfPath&) = delete;
  EbpfPath& operator=(const EbpfPath&) = delete;

  int prog_fd() const { return program_->prog_fd(); }
  // Datagrams of the stream the program has seen.
  uint64_t datagrams() const;

 private:
  EbpfPath(FanoutTestbed& testbed, std::unique_ptr<fanout::FanoutProgram> program)
      : testbed_(testbed), program_(std::move(program)) {}
  FanoutTestbed& testbed_;
  std::unique_ptr<fanout::FanoutProgram> program_;
};

// The userspace replicator bound to the stream address in the edge namespace, with the testbed's
// first `consumers` consumers.
Result<std::unique_ptr<fanout::UdpReplicator>> StartReplicator(FanoutTestbed& testbed,
                                                               size_t consumers);

}  // namespace edgeflow::bench
