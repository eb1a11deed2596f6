#include "fanout/fanout_program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

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
static_assert(sizeof(fanout_stream_key) == 8,
              "the key has no implicit padding (the hash reads it)");
// A per-CPU value is copied out as one 8-byte aligned slot per CPU; with a size that is a
// multiple of 8 the slots are exactly an array of the struct.
static_assert(sizeof(fanout_counters) % 8 == 0);

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
  if (level == LIBBPF_WARN) {
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

}  // namespace

Result<std::unique_ptr<FanoutProgram>> FanoutProgram::Load() {
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

FanoutProgram::~FanoutProgram() { fanout__destroy(skel_); }

Status FanoutProgram::AddStream(uint32_t daddr, uint16_t dport, uint32_t id) {
  if (id >= kMaxStreams) {
    return Status::InvalidArgument("stream id " + std::to_string(id) + " is not below " +
                                   std::to_string(kMaxStreams));
  }
  fanout_stream_key key{};
  key.daddr = daddr;
  key.dport = dport;
  fanout_stream value{};
  value.id = id;
  const int result = bpf_map__update_elem(skel_->maps.streams, &key, sizeof(key), &value,
                                          sizeof(value), BPF_NOEXIST);
  if (result == 0) return Status::Ok();
  const int error = -result;
  if (error == EEXIST) {
    return Status::AlreadyExists("a stream to that address and port is registered");
  }
  if (error == E2BIG) {
    return Status::ResourceExhausted("the fan-out has " + std::to_string(kMaxStreams) +
                                     " streams registered already");
  }
  return Status::IoError("cannot register the stream: " + Errno(error));
}

Result<StreamCounters> FanoutProgram::Counters(uint32_t id) const {
  if (id >= kMaxStreams) {
    return Error(Status::InvalidArgument("stream id " + std::to_string(id) + " is not below " +
                                         std::to_string(kMaxStreams)));
  }
  std::vector<fanout_counters> per_cpu(static_cast<size_t>(cpus_));
  const int result =
      bpf_map__lookup_elem(skel_->maps.stream_counters, &id, sizeof(id), per_cpu.data(),
                           per_cpu.size() * sizeof(fanout_counters), 0);
  if (result != 0) {
    return Error(Status::IoError("cannot read the counters of stream " + std::to_string(id) + ": " +
                                 Errno(-result)));
  }
  StreamCounters sum;
  for (const fanout_counters& counters : per_cpu) {
    sum.packets += counters.packets;
    sum.bytes += counters.bytes;
  }
  return sum;
}

int FanoutProgram::prog_fd() const { return bpf_program__fd(skel_->progs.fanout_ingress); }

}  // namespace edgeflow::fanout
