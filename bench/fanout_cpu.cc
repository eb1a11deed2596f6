#include "fanout_cpu.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <linux/bpf.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace edgeflow::bench {
namespace {

std::string FirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

double ProcessCpuSeconds() {
  timespec now{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

// The first field of /proc/PID/schedstat: nanoseconds on a CPU (0 when the thread is gone).
double ThreadRunSeconds(pid_t pid) {
  unsigned long long run_ns = 0;
  const std::string line = FirstLine("/proc/" + std::to_string(pid) + "/schedstat");
  if (std::sscanf(line.c_str(), "%llu", &run_ns) != 1) return 0;
  return static_cast<double>(run_ns) * 1e-9;
}

uint64_t MachineBusyTicks() {
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest time is already
  // in user and nice).
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                     steal = 0;
  const std::string line = FirstLine("/proc/stat");
  if (std::sscanf(line.c_str(), "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice,
                  &system, &idle, &iowait, &irq, &softirq, &steal) < 7) {
    return 0;
  }
  return user + nice + system + irq + softirq + steal;
}

}  // namespace

CpuMeter::CpuMeter() : seconds_per_tick_(1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK))) {
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return;
  while (const dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    if (FirstLine("/proc/" + std::string(entry->d_name) + "/comm").starts_with("ksoftirqd/")) {
      ksoftirqd_.push_back(static_cast<pid_t>(pid));
    }
  }
  ::closedir(proc);
}

CpuSample CpuMeter::Sample() const {
  CpuSample sample;
  sample.at = Clock::now();
  sample.process_seconds = ProcessCpuSeconds();
  for (const pid_t pid : ksoftirqd_) sample.ksoftirqd_seconds += ThreadRunSeconds(pid);
  sample.busy_ticks = MachineBusyTicks();
  return sample;
}

CpuUsage CpuMeter::Between(const CpuSample& start, const CpuSample& end) const {
  CpuUsage usage;
  usage.wall_seconds = std::chrono::duration<double>(end.at - start.at).count();
  usage.attributed_seconds = (end.process_seconds - start.process_seconds) +
                             (end.ksoftirqd_seconds - start.ksoftirqd_seconds);
  usage.machine_busy_seconds =
      static_cast<double>(end.busy_ticks - start.busy_ticks) * seconds_per_tick_;
  return usage;
}

Result<std::unique_ptr<BpfRunTimeStats>> BpfRunTimeStats::Enable() {
  const int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd < 0) {
    return Error(Status::IoError(std::string("cannot enable BPF run-time statistics: ") +
                                 std::strerror(-fd)));
  }
  return std::unique_ptr<BpfRunTimeStats>(new BpfRunTimeStats(fd));
}

BpfRunTimeStats::~BpfRunTimeStats() { ::close(fd_); }

Result<BpfProgramTime> ReadProgramTime(int prog_fd) {
  bpf_prog_info info;
  std::memset(&info, 0, sizeof(info));
  __u32 length = sizeof(info);
  if (const int result = bpf_obj_get_info_by_fd(prog_fd, &info, &length); result != 0) {
    return Error(Status::IoError(std::string("cannot read the BPF program's info: ") +
                                 std::strerror(-result)));
  }
  return BpfProgramTime{.run_time_ns = info.run_time_ns, .run_count = info.run_cnt};
}

}  // namespace edgeflow::bench
