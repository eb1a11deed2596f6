// FanoutProgram: the stream fan-out's tc eBPF program (bpf/fanout.bpf.c) and its maps, loaded into
// the kernel from the skeleton that the build embeds (no file is read at run time).
//
// Loading is not attaching: prog_fd() is what a tc filter is attached with (bpf_tc_attach or
// `tc filter add ... bpf fd`), which a later change does. The program and its maps live until the
// object is destroyed, unless something attached holds them.
//
// Loading needs CAP_BPF and CAP_NET_ADMIN (in practice: root); Load() says so when it is refused.
//
// Thread-safety: AddStream() and Counters() may be called from any thread (they are bpf(2) map
// operations); Load() and destruction are not concurrent with them.
#pragma once

#include <cstdint>
#include <memory>

#include "common/status.h"

// The bpftool skeleton (fanout.skel.h), kept out of this header so that including it does not
// need the generated header or libbpf's.
struct fanout;

namespace edgeflow::fanout {

// Counts of one stream's packets seen at ingress, summed over CPUs.
struct StreamCounters {
  uint64_t packets = 0;
  uint64_t bytes = 0;  // whole frames as tc sees them, from the Ethernet header to the end
};

class FanoutProgram {
 public:
  // Stream ids are below this (the size of the program's counter array, FANOUT_MAX_STREAMS).
  static constexpr uint32_t kMaxStreams = 1024;

  // Opens the embedded object and loads the program and its maps into the kernel. Errors:
  // kUnavailable when the kernel refuses for lack of privileges, kInternal when the verifier
  // rejects the program (the message ends with the verifier's log), kIoError otherwise.
  static Result<std::unique_ptr<FanoutProgram>> Load();

  ~FanoutProgram();
  FanoutProgram(const FanoutProgram&) = delete;
  FanoutProgram& operator=(const FanoutProgram&) = delete;

  // Registers the stream whose packets go to daddr:dport (both in network byte order, as in the
  // packet) under `id`. kInvalidArgument for id >= kMaxStreams, kAlreadyExists if that
  // destination is registered, kResourceExhausted when kMaxStreams destinations are.
  Status AddStream(uint32_t daddr, uint16_t dport, uint32_t id);

  // The counters of stream `id` (zero for an id nothing was counted for).
  Result<StreamCounters> Counters(uint32_t id) const;

  // The program's file descriptor, owned by this object.
  int prog_fd() const;

 private:
  FanoutProgram(::fanout* skel, int cpus) : skel_(skel), cpus_(cpus) {}

  ::fanout* skel_;
  int cpus_;  // possible CPUs: the number of copies in a per-CPU map value
};

}  // namespace edgeflow::fanout
