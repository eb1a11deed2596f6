// FanoutProgram: the stream fan-out's tc eBPF program (bpf/fanout.bpf.c) and its maps, loaded into
// the kernel from the skeleton that the build embeds (no file is read at run time), attached to
// the ingress of the interfaces sensors' streams arrive on, and configured through its maps while
// it runs: streams, their consumers and the consumers' policies change without reloading.
//
// Streams are numbered by the caller (0..kMaxStreams-1); consumers get a slot number from
// AddConsumer(). See bpf/fanout_maps.h for the maps and who writes which.
//
// Loading and attaching need CAP_BPF and CAP_NET_ADMIN (in practice: root); Load() says so when
// it is refused. Destroying the object detaches what it attached and unloads the program.
//
// Thread-safety: every method but Load() and destruction may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "common/status.h"
#include "fanout/bpf/drop_policy.h"
#include "fanout/bpf/ts_dpi.h"
#include "fanout/consumer_counters.h"

// The bpftool skeleton (fanout.skel.h), kept out of this header so that including it does not
// need the generated header or libbpf's.
struct fanout;
struct bpf_map;

namespace edgeflow::fanout {

using MacAddress = std::array<uint8_t, 6>;

// A sensor's stream, recognised by where its datagrams go. Network byte order, as in the packet.
struct StreamSpec {
  uint32_t daddr = 0;
  uint16_t dport = 0;
  uint8_t codec = EF_CODEC_AUTO;  // enum ef_codec
};

// Where one consumer's copies go and what of the stream it gets.
struct ConsumerSpec {
  int ifindex = 0;       // the interface the copies are sent on (or received from, with ingress)
  MacAddress dmac{};     // Ethernet destination: the consumer's interface
  MacAddress smac{};     // Ethernet source: the sending interface
  uint32_t daddr = 0;    // IPv4 destination, network byte order
  uint16_t dport = 0;    // UDP destination port, network byte order
  bool ingress = false;  // deliver as received on `ifindex` (local processes, through lo)
  ef_consumer_policy policy{};
};

// A stream's counts at ingress, summed over CPUs.
struct StreamCounters {
  uint64_t packets = 0;      // datagrams to the stream's address
  uint64_t bytes = 0;        // whole frames as tc sees them, from the Ethernet header to the end
  uint64_t uninspected = 0;  // forwarded whole: not 1..7 whole TS packets
  uint64_t malformed = 0;    // not forwarded: lying lengths, fragments, merged datagrams
  std::array<uint64_t, EF_CLASS_COUNT> ts_packets{};  // inspected TS packets by class
  uint64_t invalid_ts = 0;                            // of which not TS (counted as OTHER)
};

// Attaches the loaded tc program `prog_fd` to the ingress of interface `ifindex` as filter
// handle/priority, adding a clsact qdisc if the interface has none. kAlreadyExists when a filter
// with that handle and priority is there.
Status AttachTcIngress(int ifindex, int prog_fd, uint32_t handle, uint32_t priority);

// Removes the clsact qdisc of interface `ifindex` with every tc filter on it, ingress and egress
// (what a process that attached filters and died would leave). OK when there is none.
Status RemoveTcHooks(int ifindex);

class FanoutProgram {
 public:
  static constexpr uint32_t kMaxStreams = 1024;            // FANOUT_MAX_STREAMS
  static constexpr uint32_t kMaxConsumersPerStream = 256;  // FANOUT_MAX_CONSUMERS_PER_STREAM
  static constexpr uint32_t kMaxConsumers = 4096;          // FANOUT_MAX_CONSUMERS
  static constexpr uint32_t kTcHandle = 0xef;
  static constexpr uint32_t kTcPriority = 1;

  // Opens the embedded object and loads the program and its maps into the kernel. Errors:
  // kUnavailable when the kernel refuses for lack of privileges, kInternal when the verifier
  // rejects the program (the message ends with the verifier's log), kIoError otherwise.
  static Result<std::unique_ptr<FanoutProgram>> Load();

  ~FanoutProgram();
  FanoutProgram(const FanoutProgram&) = delete;
  FanoutProgram& operator=(const FanoutProgram&) = delete;

  // Attaches the program to the ingress of interface `ifindex` as a tc filter (handle kTcHandle,
  // priority kTcPriority), adding a clsact qdisc if the interface has none; the qdisc is left in
  // place at detach (removing it would remove other programs' filters too). kAlreadyExists if a
  // filter with that handle and priority is there already (another fan-out attached there).
  Status Attach(int ifindex);
  Status Detach(int ifindex);

  // Registers stream `id`, with no consumers: its datagrams are consumed by the fan-out from now
  // on. kInvalidArgument for id >= kMaxStreams; kAlreadyExists if the id or the destination is
  // registered.
  Status AddStream(uint32_t id, const StreamSpec& spec);
  // Unregisters it and removes its consumers; its datagrams go up the stack again.
  Status RemoveStream(uint32_t id);

  // Adds a consumer to stream `id`; returns its slot. kNotFound for an unknown stream,
  // kResourceExhausted when the stream has kMaxConsumersPerStream consumers or all kMaxConsumers
  // slots are taken, kInvalidArgument for a bad interface index.
  Result<uint32_t> AddConsumer(uint32_t stream_id, const ConsumerSpec& spec);
  // Changes a consumer's policy; its accumulators carry on (the next decision uses the new ratio).
  Status SetPolicy(uint32_t consumer, const ef_consumer_policy& policy);
  Status RemoveConsumer(uint32_t consumer);

  Result<StreamCounters> Counters(uint32_t stream_id) const;
  Result<ConsumerCounters> CountersOfConsumer(uint32_t consumer) const;

  // The program's file descriptor, owned by this object.
  int prog_fd() const;

 private:
  struct Stream {
    bool registered = false;
    uint32_t daddr = 0;
    uint16_t dport = 0;
    std::vector<uint32_t> list;  // entry i: consumer slot + 1, or 0 (the kernel's copy)
  };
  struct Consumer {
    bool active = false;
    uint32_t stream_id = 0;
    uint32_t list_index = 0;
  };

  FanoutProgram(::fanout* skel, int cpus);
  Status WriteListEntry(uint32_t stream_id, uint32_t index, uint32_t value);  // REQUIRES(mu_)
  Status WriteConsumerSlots(uint32_t stream_id);                              // REQUIRES(mu_)
  Status ZeroPerCpu(::bpf_map* map, uint32_t key, size_t value_size);

  ::fanout* skel_;
  const int cpus_;  // possible CPUs: the number of copies in a per-CPU map value
  mutable std::mutex mu_;
  std::vector<Stream> streams_;      // GUARDED_BY(mu_), kMaxStreams
  std::vector<Consumer> consumers_;  // GUARDED_BY(mu_), kMaxConsumers
  std::vector<int> attached_;        // GUARDED_BY(mu_): interface indexes
};

}  // namespace edgeflow::fanout
