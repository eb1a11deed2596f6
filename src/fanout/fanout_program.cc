#include "fanout/fanout_program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "fanout.skel.h"
#include "fanout/bpf/fanout_maps.h"

namespace edgeflow::fanout {
namespace {

static_assert(FanoutProgram::kMaxStreams == static_cast<uint32_t>(FANOUT_MAX_STREAMS));
static_assert(FanoutProgram::kMaxConsumersPerStream ==
              static_cast<uint32_t>(FANOUT_MAX_CONSUMERS_PER_STREAM));
static_assert(FanoutProgram::kMaxConsumers == static_cast<uint32_t>(FANOUT_MAX_CONSUMERS));
static_assert(sizeof(fanout_stream_key) == 8,
              "the key has no implicit padding (the hash reads it)");
// A per-CPU value is copied out as one 8-byte aligned slot per CPU; with a size that is a
// multiple of 8 the slots are exactly an array of the struct.
static_assert(sizeof(fanout_stream_counters) % 8 == 0);
static_assert(sizeof(ef_consumer_counters) % 8 == 0);

// Room for the verifier's log of a rejected program. The kernel keeps the end of a longer log
// (the end says why) from Linux 6.4; older kernels fail the load with ENOSPC instead.
constexpr size_t kVerifierLogSize = 1 << 20;
// How much of the log's end goes into the error message.
constexpr size_t kVerifierLogTailLines = 30;

std::string Errno(int error) { return std::strerror(error); }

// libbpf's messages go to edgeflow's log instead of straight to stderr (libbpf's default), so
// that they come out in the daemon's format.
int ForwardLibbpfMessage(enum libbpf_print_level level, const char* format, va_list args) {
  char buffer[1024];
  const int length = std::vsnprintf(buffer, sizeof(buffer), format, args);
  if (length < 0) return length;
  std::string_view text(buffer, std::min(static_cast<size_t>(length), sizeof(buffer) - 1));
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  // libbpf starts its messages with "libbpf: ", which the record says already.
  if (text.starts_with("libbpf: ")) text.remove_prefix(8);
  // Attach() adds a clsact qdisc and takes "exists" for an answer; libbpf warns about that case
  // before it returns EEXIST, which is nothing to warn an operator about.
  const bool expected = text.find("Exclusivity flag on") != std::string_view::npos;
  if (level == LIBBPF_WARN && !expected) {
    log::Warn("libbpf", {{"message", text}});
  } else {
    log::Debug("libbpf", {{"message", text}});
  }
  return length;
}

// The last kVerifierLogTailLines lines of a NUL-terminated verifier log.
std::string LogTail(const char* buffer) {
  std::string_view log(buffer);
  while (!log.empty() && log.back() == '\n') log.remove_suffix(1);
  size_t start = log.size();
  for (size_t lines = 0; lines < kVerifierLogTailLines; ++lines) {
    const size_t newline = start == 0 ? std::string_view::npos : log.rfind('\n', start - 1);
    if (newline == std::string_view::npos) return std::string(log);
    start = newline;
  }
  return "...\n" + std::string(log.substr(start + 1));
}

// Whether this thread may load and attach the program: CAP_BPF (CAP_SYS_ADMIN before Linux 5.8)
// and CAP_NET_ADMIN, effective. Asked first so that an unprivileged process gets one clear
// answer instead of libbpf's warnings about every map it was refused.
bool HaveBpfCapabilities() {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return true;  // unknown: let the kernel say
  auto effective = [&](int capability) {
    return (data[capability / 32].effective & (1u << (capability % 32))) != 0;
  };
  constexpr int kCapBpf = 39;  // CAP_BPF, newer than some uapi headers
  return (effective(kCapBpf) || effective(CAP_SYS_ADMIN)) && effective(CAP_NET_ADMIN);
}

}  // namespace

Result<std::unique_ptr<FanoutProgram>> FanoutProgram::Load() {
  if (!HaveBpfCapabilities()) {
    return Error(Status::Unavailable(
        "loading the eBPF program needs CAP_BPF and CAP_NET_ADMIN (run as root)"));
  }
  static std::once_flag print_once;
  std::call_once(print_once, [] { libbpf_set_print(ForwardLibbpfMessage); });

  // libbpf checks that the bytes of the options it does not know are zero, padding included,
  // hence memset rather than `= {}`.
  std::string verifier_log(kVerifierLogSize, '\0');
  bpf_object_open_opts options;
  std::memset(&options, 0, sizeof(options));
  options.sz = sizeof(options);
  // With the default log level 0, libbpf asks for the log only when a load fails (it retries).
  options.kernel_log_buf = verifier_log.data();
  options.kernel_log_size = verifier_log.size();

  ::fanout* skel = fanout__open_opts(&options);
  if (skel == nullptr) {
    return Error(Status::Internal("cannot open the embedded fan-out eBPF object: " + Errno(errno)));
  }
  if (const int result = fanout__load(skel); result != 0) {
    const int error = result < 0 ? -result : errno;
    fanout__destroy(skel);
    if (error == EPERM) {
      return Error(Status::Unavailable(
          "loading the eBPF program needs CAP_BPF/CAP_NET_ADMIN (run as root): " + Errno(error)));
    }
    if (verifier_log[0] != '\0') {
      return Error(Status::Internal("the kernel rejected the fan-out eBPF program (" +
                                    Errno(error) + "); the kernel's log ends:\n" +
                                    LogTail(verifier_log.c_str())));
    }
    return Error(Status::IoError("cannot load the fan-out eBPF program: " + Errno(error)));
  }

  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) {
    fanout__destroy(skel);
    return Error(Status::IoError("cannot count the possible CPUs: " + Errno(-cpus)));
  }
  return std::unique_ptr<FanoutProgram>(new FanoutProgram(skel, cpus));
}

FanoutProgram::FanoutProgram(::fanout* skel, int cpus)
    : skel_(skel), cpus_(cpus), streams_(kMaxStreams), consumers_(kMaxConsumers) {}

FanoutProgram::~FanoutProgram() {
  for (const int ifindex : std::vector<int>(attached_)) {
    if (Status status = Detach(ifindex); !status.ok()) {
      log::Warn("fan-out detach failed", {{"ifindex", ifindex}, {"error", status.ToString()}});
    }
  }
  fanout__destroy(skel_);
}

namespace {

// libbpf checks that option bytes it does not know are zero, padding included.
bpf_tc_hook TcHook(int ifindex, bpf_tc_attach_point attach_point) {
  bpf_tc_hook hook;
  std::memset(&hook, 0, sizeof(hook));
  hook.sz = sizeof(hook);
  hook.ifindex = ifindex;
  hook.attach_point = attach_point;
  return hook;
}

}  // namespace

Status AttachTcIngress(int ifindex, int prog_fd, uint32_t handle, uint32_t priority) {
  bpf_tc_hook hook = TcHook(ifindex, BPF_TC_INGRESS);
  if (const int result = bpf_tc_hook_create(&hook); result != 0 && result != -EEXIST) {
    return Status::IoError("cannot add a clsact qdisc to interface " + std::to_string(ifindex) +
                           ": " + Errno(-result));
  }
  bpf_tc_opts options;
  std::memset(&options, 0, sizeof(options));
  options.sz = sizeof(options);
  options.prog_fd = prog_fd;
  options.handle = handle;
  options.priority = priority;
  if (const int result = bpf_tc_attach(&hook, &options); result != 0) {
    if (result == -EEXIST) {
      return Status::AlreadyExists(
          "interface " + std::to_string(ifindex) +
          " has a tc ingress filter with that handle and priority already");
    }
    return Status::IoError("cannot attach a tc program to interface " + std::to_string(ifindex) +
                           ": " + Errno(-result));
  }
  return Status::Ok();
}

Status RemoveTcHooks(int ifindex) {
  // Both attach points at once: the whole clsact qdisc.
  bpf_tc_hook hook =
      TcHook(ifindex, static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  if (const int result = bpf_tc_hook_destroy(&hook); result != 0 && result != -ENOENT) {
    return Status::IoError("cannot remove the tc filters of interface " + std::to_string(ifindex) +
                           ": " + Errno(-result));
  }
  return Status::Ok();
}

Status FanoutProgram::Attach(int ifindex) {
  if (ifindex <= 0) return Status::InvalidArgument("no interface index " + std::to_string(ifindex));
  std::lock_guard lock(mu_);
  if (std::find(attached_.begin(), attached_.end(), ifindex) != attached_.end()) {
    return Status::AlreadyExists("the fan-out is attached to interface " + std::to_string(ifindex));
  }
  if (Status status = AttachTcIngress(ifindex, prog_fd(), kTcHandle, kTcPriority); !status.ok()) {
    return status;
  }
  attached_.push_back(ifindex);
  return Status::Ok();
}

Status FanoutProgram::Detach(int ifindex) {
  std::lock_guard lock(mu_);
  const auto it = std::find(attached_.begin(), attached_.end(), ifindex);
  if (it == attached_.end()) {
    return Status::NotFound("the fan-out is not attached to interface " + std::to_string(ifindex));
  }
  attached_.erase(it);
  bpf_tc_hook hook = TcHook(ifindex, BPF_TC_INGRESS);
  bpf_tc_opts options;
  std::memset(&options, 0, sizeof(options));
  options.sz = sizeof(options);
  options.handle = kTcHandle;
  options.priority = kTcPriority;
  // ENOENT/ENODEV: the filter or the interface is gone already (a deleted veth takes its filters).
  if (const int result = bpf_tc_detach(&hook, &options);
      result != 0 && result != -ENOENT && result != -ENODEV && result != -EINVAL) {
    return Status::IoError("cannot detach the fan-out from interface " + std::to_string(ifindex) +
                           ": " + Errno(-result));
  }
  return Status::Ok();
}

Status FanoutProgram::ZeroPerCpu(::bpf_map* map, uint32_t key, size_t value_size) {
  std::vector<uint8_t> zeros(value_size * static_cast<size_t>(cpus_), 0);
  const int result = bpf_map__update_elem(map, &key, sizeof(key), zeros.data(), zeros.size(), 0);
  if (result != 0) return Status::IoError("cannot reset counters: " + Errno(-result));
  return Status::Ok();
}

Status FanoutProgram::AddStream(uint32_t id, const StreamSpec& spec) {
  if (id >= kMaxStreams) {
    return Status::InvalidArgument("stream id " + std::to_string(id) + " is not below " +
                                   std::to_string(kMaxStreams));
  }
  std::lock_guard lock(mu_);
  Stream& stream = streams_[id];
  if (stream.registered) {
    return Status::AlreadyExists("stream " + std::to_string(id) + " is registered");
  }
  // The stream's state and counters start afresh (the id may have been used before); its
  // consumer list is empty (RemoveStream cleared it). The key goes in last: from then on the
  // program sees the stream.
  ef_stream_state state{};
  ef_stream_state_init(&state, spec.codec);
  fanout_stream_config config{};
  int result =
      bpf_map__update_elem(skel_->maps.stream_state, &id, sizeof(id), &state, sizeof(state), 0);
  if (result == 0) {
    result = bpf_map__update_elem(skel_->maps.stream_config, &id, sizeof(id), &config,
                                  sizeof(config), 0);
  }
  if (result != 0) return Status::IoError("cannot register the stream: " + Errno(-result));
  if (Status status = ZeroPerCpu(skel_->maps.stream_counters, id, sizeof(fanout_stream_counters));
      !status.ok()) {
    return status;
  }
  fanout_stream_key key{};
  key.daddr = spec.daddr;
  key.dport = spec.dport;
  fanout_stream value{};
  value.id = id;
  result = bpf_map__update_elem(skel_->maps.streams, &key, sizeof(key), &value, sizeof(value),
                                BPF_NOEXIST);
  if (result != 0) {
    if (result == -EEXIST) {
      return Status::AlreadyExists("a stream to that address and port is registered");
    }
    return Status::IoError("cannot register the stream: " + Errno(-result));
  }
  stream.registered = true;
  stream.daddr = spec.daddr;
  stream.dport = spec.dport;
  stream.list.clear();
  return Status::Ok();
}

Status FanoutProgram::RemoveStream(uint32_t id) {
  if (id >= kMaxStreams) return Status::NotFound("no stream " + std::to_string(id));
  std::unique_lock lock(mu_);
  Stream& stream = streams_[id];
  if (!stream.registered) return Status::NotFound("no stream " + std::to_string(id));
  fanout_stream_key key{};
  key.daddr = stream.daddr;
  key.dport = stream.dport;
  if (const int result = bpf_map__delete_elem(skel_->maps.streams, &key, sizeof(key), 0);
      result != 0 && result != -ENOENT) {
    return Status::IoError("cannot unregister the stream: " + Errno(-result));
  }
  stream.registered = false;
  std::vector<uint32_t> slots;
  for (const uint32_t entry : stream.list) {
    if (entry != 0) slots.push_back(entry - 1);
  }
  lock.unlock();
  for (const uint32_t slot : slots) {
    if (Status status = RemoveConsumer(slot); !status.ok()) return status;
  }
  return Status::Ok();
}

Status FanoutProgram::WriteListEntry(uint32_t stream_id, uint32_t index, uint32_t value) {
  const uint32_t key = stream_id * kMaxConsumersPerStream + index;
  const int result = bpf_map__update_elem(skel_->maps.stream_consumers, &key, sizeof(key), &value,
                                          sizeof(value), 0);
  if (result != 0) return Status::IoError("cannot update the consumer list: " + Errno(-result));
  return Status::Ok();
}

Status FanoutProgram::WriteConsumerSlots(uint32_t stream_id) {
  std::vector<uint32_t>& list = streams_[stream_id].list;
  while (!list.empty() && list.back() == 0) list.pop_back();
  fanout_stream_config config{};
  config.consumer_slots = static_cast<uint32_t>(list.size());
  const int result = bpf_map__update_elem(skel_->maps.stream_config, &stream_id, sizeof(stream_id),
                                          &config, sizeof(config), 0);
  if (result != 0) return Status::IoError("cannot update the stream: " + Errno(-result));
  return Status::Ok();
}

Result<uint32_t> FanoutProgram::AddConsumer(uint32_t stream_id, const ConsumerSpec& spec) {
  if (spec.ifindex <= 0) {
    return Error(Status::InvalidArgument("no interface index " + std::to_string(spec.ifindex)));
  }
  std::lock_guard lock(mu_);
  if (stream_id >= kMaxStreams || !streams_[stream_id].registered) {
    return Error(Status::NotFound("no stream " + std::to_string(stream_id)));
  }
  Stream& stream = streams_[stream_id];
  const auto free_entry = std::find(stream.list.begin(), stream.list.end(), 0u);
  const auto index = static_cast<uint32_t>(free_entry - stream.list.begin());
  if (index >= kMaxConsumersPerStream) {
    return Error(Status::ResourceExhausted("stream " + std::to_string(stream_id) + " has " +
                                           std::to_string(kMaxConsumersPerStream) +
                                           " consumers already"));
  }
  const auto free_slot = std::find_if(consumers_.begin(), consumers_.end(),
                                      [](const Consumer& c) { return !c.active; });
  if (free_slot == consumers_.end()) {
    return Error(Status::ResourceExhausted("the fan-out has " + std::to_string(kMaxConsumers) +
                                           " consumers already"));
  }
  const auto slot = static_cast<uint32_t>(free_slot - consumers_.begin());

  // State and counters first, then the consumer, then the list entry that makes the program
  // reach it.
  const ef_consumer_state state{};
  int result = bpf_map__update_elem(skel_->maps.consumer_state, &slot, sizeof(slot), &state,
                                    sizeof(state), 0);
  if (result != 0) return Error(Status::IoError("cannot add the consumer: " + Errno(-result)));
  if (Status status = ZeroPerCpu(skel_->maps.consumer_counters, slot, sizeof(ef_consumer_counters));
      !status.ok()) {
    return Error(status);
  }
  fanout_consumer value{};
  value.stream_id = stream_id;
  value.ifindex = static_cast<uint32_t>(spec.ifindex);
  value.daddr = spec.daddr;
  value.dport = spec.dport;
  value.active = 1;
  value.flags = spec.ingress ? FANOUT_CONSUMER_INGRESS : 0;
  std::copy(spec.dmac.begin(), spec.dmac.end(), value.dmac);
  std::copy(spec.smac.begin(), spec.smac.end(), value.smac);
  value.policies[0] = spec.policy;
  value.policies[1] = spec.policy;
  value.policy_index = 0;
  result =
      bpf_map__update_elem(skel_->maps.consumers, &slot, sizeof(slot), &value, sizeof(value), 0);
  if (result != 0) return Error(Status::IoError("cannot add the consumer: " + Errno(-result)));
  if (Status status = WriteListEntry(stream_id, index, slot + 1); !status.ok()) {
    return Error(status);
  }
  if (index == stream.list.size()) {
    stream.list.push_back(slot + 1);
  } else {
    stream.list[index] = slot + 1;
  }
  if (Status status = WriteConsumerSlots(stream_id); !status.ok()) return Error(status);
  consumers_[slot] = Consumer{.active = true, .stream_id = stream_id, .list_index = index};
  return slot;
}

Status FanoutProgram::SetPolicy(uint32_t consumer, const ef_consumer_policy& policy) {
  std::lock_guard lock(mu_);
  if (consumer >= kMaxConsumers || !consumers_[consumer].active) {
    return Status::NotFound("no consumer " + std::to_string(consumer));
  }
  // Two updates, so that the program never reads half of each policy (fanout_maps.h): the new
  // policy into the entry not in use, then the index that points at it.
  fanout_consumer value{};
  int result = bpf_map__lookup_elem(skel_->maps.consumers, &consumer, sizeof(consumer), &value,
                                    sizeof(value), 0);
  const uint8_t next = static_cast<uint8_t>((value.policy_index & 1) ^ 1);
  if (result == 0) {
    value.policies[next] = policy;
    result = bpf_map__update_elem(skel_->maps.consumers, &consumer, sizeof(consumer), &value,
                                  sizeof(value), 0);
  }
  if (result == 0) {
    value.policy_index = next;
    result = bpf_map__update_elem(skel_->maps.consumers, &consumer, sizeof(consumer), &value,
                                  sizeof(value), 0);
  }
  if (result != 0) return Status::IoError("cannot change the policy: " + Errno(-result));
  return Status::Ok();
}

Status FanoutProgram::RemoveConsumer(uint32_t consumer) {
  std::lock_guard lock(mu_);
  if (consumer >= kMaxConsumers || !consumers_[consumer].active) {
    return Status::NotFound("no consumer " + std::to_string(consumer));
  }
  Consumer& entry = consumers_[consumer];
  // Out of the list first; the slot is marked free after, so that a program still holding the
  // list entry finds it inactive rather than given to someone else.
  if (Status status = WriteListEntry(entry.stream_id, entry.list_index, 0); !status.ok()) {
    return status;
  }
  Stream& stream = streams_[entry.stream_id];
  if (entry.list_index < stream.list.size()) stream.list[entry.list_index] = 0;
  if (Status status = WriteConsumerSlots(entry.stream_id); !status.ok()) return status;
  const fanout_consumer inactive{};
  if (const int result = bpf_map__update_elem(skel_->maps.consumers, &consumer, sizeof(consumer),
                                              &inactive, sizeof(inactive), 0);
      result != 0) {
    return Status::IoError("cannot remove the consumer: " + Errno(-result));
  }
  entry = Consumer{};
  return Status::Ok();
}

Result<StreamCounters> FanoutProgram::Counters(uint32_t stream_id) const {
  if (stream_id >= kMaxStreams) {
    return Error(Status::InvalidArgument("stream id " + std::to_string(stream_id) +
                                         " is not below " + std::to_string(kMaxStreams)));
  }
  std::vector<fanout_stream_counters> per_cpu(static_cast<size_t>(cpus_));
  const int result =
      bpf_map__lookup_elem(skel_->maps.stream_counters, &stream_id, sizeof(stream_id),
                           per_cpu.data(), per_cpu.size() * sizeof(fanout_stream_counters), 0);
  if (result != 0) {
    return Error(Status::IoError("cannot read the counters of stream " + std::to_string(stream_id) +
                                 ": " + Errno(-result)));
  }
  StreamCounters sum;
  for (const fanout_stream_counters& counters : per_cpu) {
    sum.packets += counters.packets;
    sum.bytes += counters.bytes;
    sum.uninspected += counters.uninspected;
    sum.malformed += counters.malformed;
    for (size_t k = 0; k < EF_CLASS_COUNT; ++k) sum.ts_packets[k] += counters.ts_packets[k];
    sum.invalid_ts += counters.invalid_ts;
  }
  return sum;
}

Result<ConsumerCounters> FanoutProgram::CountersOfConsumer(uint32_t consumer) const {
  if (consumer >= kMaxConsumers) {
    return Error(Status::InvalidArgument("consumer " + std::to_string(consumer) + " is not below " +
                                         std::to_string(kMaxConsumers)));
  }
  std::vector<ef_consumer_counters> per_cpu(static_cast<size_t>(cpus_));
  const int result =
      bpf_map__lookup_elem(skel_->maps.consumer_counters, &consumer, sizeof(consumer),
                           per_cpu.data(), per_cpu.size() * sizeof(ef_consumer_counters), 0);
  if (result != 0) {
    return Error(Status::IoError("cannot read the counters of consumer " +
                                 std::to_string(consumer) + ": " + Errno(-result)));
  }
  ConsumerCounters sum;
  for (const ef_consumer_counters& counters : per_cpu) sum.Add(counters);
  return sum;
}

int FanoutProgram::prog_fd() const { return bpf_program__fd(skel_->progs.fanout_ingress); }

}  // namespace edgeflow::fanout
