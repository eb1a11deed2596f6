// fanout_bench: the stream fan-out's cost, eBPF against the userspace replicator and a Linux
// bridge, on real packets between network namespaces; and the bandwidth the QoC controller saves.
// Driven by bench/fanout, which builds it, encodes the test video with ffmpeg and cleans up; see
// bench/README.md for the method and how to read the numbers.
//
// 1. Throughput: a sender thread in the sender namespace sends datagrams (512 bytes of arbitrary
//    data, as the paper's packetgen test, or 1316 bytes = 7 TS packets of the real H.264 stream)
//    to the stream address as fast as the path takes them (sendmmsg, 64 at a time), and the edge
//    replicates each to M consumers, by one of three paths over the same veths:
//      ebpf      FanoutProgram (bpf/fanout.bpf.c) on the uplink's tc ingress, every consumer at
//                1/1: inspection, per-consumer decision, rewrite, bpf_clone_redirect;
//      user      UdpReplicator: recvmmsg, DatagramDecider, one sendmmsg per batch;
//      bridge    a Linux bridge flooding the datagram to its M consumer ports (the sender
//                addresses a MAC nobody has): in-kernel copying with no inspection and no
//                rewrite, the floor.
//    A baseline line has the edge drop every datagram at tc ingress: the sender's own cost per
//    datagram, which the "net" figures subtract.
// 2. CPU at a real rate: 100 consumers of the 2 Mbps / 30 fps stream, sent by the sensor agent's
//    own SensorSender at the rate the file was recorded at.
// 3. Bandwidth: papers/004's equations 1-4 on the stream's measured rates (ModelBandwidth) for two
//    mixes of consumer tolerances, next to what the decision code really sends for them.
//
// Needs root (namespaces, eBPF). The namespaces and links go away with the objects that made them,
// also on SIGINT/SIGTERM: every loop is bounded in time and watches for the signal, and the
// program then returns through its destructors.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/status.h"
#include "fanout/fanout_program.h"
#include "fanout/qoc_plan.h"
#include "fanout/sensor_sender.h"
#include "fanout/udp_replicator.h"
#include "fanout_cpu.h"
#include "fanout_paths.h"
#include "fanout_stream.h"
#include "fanout_testbed.h"

namespace edgeflow::bench {
namespace {

using namespace std::chrono_literals;

std::atomic<bool> interrupted{false};

void OnSignal(int) { interrupted.store(true, std::memory_order_relaxed); }

Status Interrupted() { return Status::Unavailable("interrupted"); }

// Sleeps up to `duration`, in short steps so that a signal ends it early; false if interrupted.
bool SleepFor(Clock::duration duration) {
  const auto until = Clock::now() + duration;
  while (Clock::now() < until) {
    if (interrupted.load(std::memory_order_relaxed)) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(until - Clock::now(), 20ms));
  }
  return !interrupted.load(std::memory_order_relaxed);
}

Clock::duration Seconds(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

enum class Path { kBaseline, kEbpf, kUserspace, kBridge };

const char* PathName(Path path) {
  switch (path) {
    case Path::kBaseline:
      return "baseline";
    case Path::kEbpf:
      return "ebpf";
    case Path::kUserspace:
      return "user";
    case Path::kBridge:
      return "bridge";
  }
  return "?";
}

// The edge drops the stream at its uplink's tc ingress, with a handle and priority of its own
// (the fan-out's is 0xef/1).
constexpr uint32_t kBaselineDropHandle = 0xd1;
constexpr uint32_t kBaselineDropPriority = 2;
// Where the sender addresses datagrams for the bridge: a locally administered address no
// interface has, so the bridge floods it to all ports and does not deliver it to itself.
constexpr MacAddress kFloodMac = {0x02, 0x00, 0x00, 0xef, 0xf1, 0x00};
// The userspace replicator may have at most this many datagrams sent but not yet taken: it is
// slower than the sender, and datagrams dropped at its full socket would be sender work that
// replicates nothing. Far below what its 4 MiB receive buffer holds.
constexpr uint64_t kReplicatorWindow = 1024;

// The bridge, or the baseline's drop filter: set up by the constructor's caller, undone here.
class ScopedEdgeChange {
 public:
  explicit ScopedEdgeChange(std::function<Status()> undo) : undo_(std::move(undo)) {}
  ~ScopedEdgeChange() {
    if (Status undone = undo_(); !undone.ok()) {
      std::fprintf(stderr, "fanout_bench: %s\n", undone.ToString().c_str());
    }
  }
  ScopedEdgeChange(const ScopedEdgeChange&) = delete;
  ScopedEdgeChange& operator=(const ScopedEdgeChange&) = delete;

 private:
  std::function<Status()> undo_;
};

// --- the throughput lines ------------------------------------------------------------------------

struct ThroughputLine {
  Path path = Path::kBaseline;
  size_t size = 0;
  size_t consumers = 0;
  uint64_t sent = 0;
  uint64_t edge_took = 0;    // datagrams the edge handled (eBPF: the stream's counter; user: read)
  uint64_t copies = 0;       // received by the sink
  uint64_t copies_lost = 0;  // dropped by the edge's consumer veths (receiving backlog full)
  uint64_t sender_lost = 0;  // dropped by the sender's veth
  uint64_t send_errors = 0;
  double send_seconds = 0;
  CpuUsage cpu;
  std::optional<BpfProgramTime> bpf;    // the fan-out program's own run time (eBPF only)
  double sender_cpu_seconds = 0;        // the baseline's cost per datagram x datagrams sent
  uint64_t replicator_send_errors = 0;  // the userspace replicator's, warm-up included

  double datagrams_per_second() const { return send_seconds > 0 ? sent / send_seconds : 0; }
  double copies_per_second() const { return send_seconds > 0 ? copies / send_seconds : 0; }
  double copies_per_cpu_second() const {
    return cpu.attributed_seconds > 0 ? copies / cpu.attributed_seconds : 0;
  }
  double net_cpu_seconds() const { return cpu.attributed_seconds - sender_cpu_seconds; }
  double net_copies_per_cpu_second() const {
    return net_cpu_seconds() > 0 ? copies / net_cpu_seconds() : 0;
  }
  double lost_percent() const {
    const double expected = static_cast<double>(edge_took) * static_cast<double>(consumers);
    return expected > 0 ? 100.0 * (expected - static_cast<double>(copies)) / expected : 0;
  }
};

// What a line is measured between: the testbed's interface counters and, on the eBPF path, the
// fan-out program's run time.
struct Totals {
  LinkTotals sink;
  LinkTotals edge;
  LinkTotals sender;
  std::optional<BpfProgramTime> bpf;  // prog_fd < 0: none
};

Result<Totals> ReadTotals(FanoutTestbed& testbed, int prog_fd) {
  Totals totals;
  if (prog_fd >= 0) {
    auto bpf = ReadProgramTime(prog_fd);
    if (!bpf) return Error(bpf.error());
    totals.bpf = *bpf;
  }
  auto sink = testbed.SinkTotals();
  if (!sink) return Error(sink.error());
  auto edge = testbed.EdgeConsumerTotals();
  if (!edge) return Error(edge.error());
  auto sender = testbed.SenderTotals();
  if (!sender) return Error(sender.error());
  totals.sink = *sink;
  totals.edge = *edge;
  totals.sender = *sender;
  return totals;
}

struct ThroughputOptions {
  double seconds = 1.5;
  double warmup_seconds = 0.2;
  size_t rounds = 3;
};

// Waits until the edge has taken `target` datagrams in all (it has worked off what was sent; the
// replicator may have been kept off its CPU for a while), or for 2 s.
void WaitForEdge(const std::function<uint64_t()>& taken, uint64_t target) {
  if (!taken) return;
  for (int round = 0; round < 200 && taken() < target; ++round) {
    if (!SleepFor(10ms)) return;
  }
}

// Waits until the sink's count of copies stops moving, at most 1 s: the copies of a datagram the
// edge has taken may still be on their way (the replicator sends a batch's copies after deciding
// them all; a softirq may have been left to ksoftirqd).
Status WaitForQuietSink(FanoutTestbed& testbed) {
  auto last = testbed.SinkTotals();
  if (!last) return last.error();
  for (int round = 0; round < 50; ++round) {
    if (!SleepFor(20ms)) return Interrupted();
    auto now = testbed.SinkTotals();
    if (!now) return now.error();
    if (now->rx_packets == last->rx_packets) return Status::Ok();
    last = now;
  }
  return Status::Ok();
}

// One line: warm-up, then the measured window, which starts and ends with nothing in flight.
Result<ThroughputLine> MeasureLine(Path path, size_t consumers, const std::vector<Bytes>& load,
                                   FanoutTestbed& testbed, BlastSender& sender,
                                   const CpuMeter& meter, const ThroughputOptions& options,
                                   const std::function<uint64_t()>& taken, bool windowed,
                                   int prog_fd) {
  ThroughputLine line;
  line.path = path;
  line.size = load.front().size();
  line.consumers = consumers;
  const std::function<uint64_t()> limit = windowed ? taken : nullptr;
  const uint64_t window = windowed ? kReplicatorWindow : 0;
  const uint64_t taken_at_warmup = taken ? taken() : 0;
  const BlastSender::Outcome warmup =
      sender.Send(load, Seconds(options.warmup_seconds), limit, window);
  WaitForEdge(taken, taken_at_warmup + warmup.datagrams);
  if (Status quiet = WaitForQuietSink(testbed); !quiet.ok()) return Error(quiet);

  auto before = ReadTotals(testbed, prog_fd);
  if (!before) return Error(before.error());
  const uint64_t taken_before = taken ? taken() : 0;
  const CpuSample cpu_before = meter.Sample();

  const BlastSender::Outcome sent = sender.Send(load, Seconds(options.seconds), limit, window);
  WaitForEdge(taken, taken_before + sent.datagrams);
  // The CPU spent on the last copies belongs to the window; the `ip` processes that watch for
  // them are not this process (their fork is, a few hundred microseconds).
  if (Status quiet = WaitForQuietSink(testbed); !quiet.ok()) return Error(quiet);
  const CpuSample cpu_after = meter.Sample();
  const uint64_t taken_after = taken ? taken() : 0;
  auto after = ReadTotals(testbed, prog_fd);
  if (!after) return Error(after.error());
  if (after->bpf) line.bpf = after->bpf->Since(*before->bpf);
  if (interrupted.load()) return Error(Interrupted());

  line.sent = sent.datagrams;
  line.send_errors = sent.send_errors;
  line.send_seconds = sent.seconds;
  line.cpu = meter.Between(cpu_before, cpu_after);
  line.copies = after->sink.rx_packets - before->sink.rx_packets;
  line.copies_lost = after->edge.tx_dropped - before->edge.tx_dropped;
  line.sender_lost = after->sender.tx_dropped - before->sender.tx_dropped;
  line.edge_took = taken ? taken_after - taken_before : line.sent - line.sender_lost;
  return line;
}

Result<ThroughputLine> RunLine(Path path, size_t consumers, const std::vector<Bytes>& load,
                               FanoutTestbed& testbed, BlastSender& sender,
                               const TcDropProgram& drop, const CpuMeter& meter,
                               const ThroughputOptions& options) {
  switch (path) {
    case Path::kBaseline: {
      auto attached = testbed.edge().Run([&] {
        return drop.AttachIngress(testbed.uplink_ifindex(), kBaselineDropHandle,
                                  kBaselineDropPriority);
      });
      if (!attached) return Error(attached.error());
      if (!attached->ok()) return Error(*attached);
      ScopedEdgeChange detach([&] { return testbed.ClearUplinkFilters(); });
      return MeasureLine(path, 0, load, testbed, sender, meter, options, nullptr, false, -1);
    }
    case Path::kEbpf: {
      auto ebpf = EbpfPath::Start(testbed, consumers);
      if (!ebpf) return Error(ebpf.error());
      auto stats = BpfRunTimeStats::Enable();
      if (!stats) return Error(stats.error());
      EbpfPath* program = ebpf->get();
      // No window: the fan-out runs inline, in the softirq of the sender's own sends.
      return MeasureLine(
          path, consumers, load, testbed, sender, meter, options,
          [program] { return program->datagrams(); }, false, program->prog_fd());
    }
    case Path::kUserspace: {
      auto replicator = StartReplicator(testbed, consumers);
      if (!replicator) return Error(replicator.error());
      fanout::UdpReplicator* r = replicator->get();
      auto line = MeasureLine(
          path, consumers, load, testbed, sender, meter, options, [r] { return r->datagrams(); },
          true, -1);
      r->Stop();
      if (line) line->replicator_send_errors = r->send_errors();
      return line;
    }
    case Path::kBridge: {
      ScopedEdgeChange unbridge([&]() -> Status {
        EF_RETURN_IF_ERROR(testbed.SendStreamToEdge());
        return testbed.RemoveBridge();
      });
      if (Status bridged = testbed.AddBridge(consumers); !bridged.ok()) return Error(bridged);
      if (Status flooded = testbed.SendStreamTo(kFloodMac); !flooded.ok()) return Error(flooded);
      return MeasureLine(path, consumers, load, testbed, sender, meter, options, nullptr, false,
                         -1);
    }
  }
  return Error(Status::Internal("unknown path"));
}

// --- the paced lines -----------------------------------------------------------------------------

struct PacedLine {
  std::string label;
  uint64_t datagrams = 0;
  uint64_t copies = 0;
  uint64_t late = 0;  // datagrams the sensor sent more than 5 ms after their time
  CpuUsage cpu;
  std::optional<BpfProgramTime> bpf;
};

// The sensor agent's sender, in the sender namespace, sending `ts_file` at its recorded rate
// (times `speed`) for `seconds`, looping the file as needed.
Result<PacedLine> RunPaced(const std::string& label, FanoutTestbed& testbed,
                           const std::filesystem::path& ts_file, double seconds, double speed,
                           const CpuMeter& meter, int prog_fd) {
  fanout::SensorSenderOptions options;
  options.ts_file = ts_file;
  options.destination = {FanoutTestbed::kStreamAddress, FanoutTestbed::kStreamPort};
  options.speed = speed;
  options.loops = 0;
  options.duration =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds));
  auto created = testbed.sender().Run([&] { return fanout::SensorSender::Create(options); });
  if (!created) return Error(created.error());
  if (!*created) return Error(created->error());
  std::unique_ptr<fanout::SensorSender> sensor = std::move(**created);

  PacedLine line;
  line.label = label;
  auto before = ReadTotals(testbed, prog_fd);
  if (!before) return Error(before.error());
  const CpuSample cpu_before = meter.Sample();
  std::atomic<bool> done{false};
  Status run_status;
  std::thread runner([&] {
    run_status = sensor->Run();
    done.store(true);
  });
  // The sender ends itself at `seconds`; a signal, or a sender that overruns by 5 s, stops it.
  const auto give_up = Clock::now() + Seconds(seconds) + 5s;
  while (!done.load()) {
    if (interrupted.load() || Clock::now() > give_up) sensor->Stop();
    std::this_thread::sleep_for(20ms);
  }
  runner.join();
  SleepFor(20ms);  // the last copies
  const CpuSample cpu_after = meter.Sample();
  auto after = ReadTotals(testbed, prog_fd);
  if (!after) return Error(after.error());
  if (after->bpf) line.bpf = after->bpf->Since(*before->bpf);
  if (interrupted.load()) return Error(Interrupted());
  if (!run_status.ok()) return Error(run_status);
  line.cpu = meter.Between(cpu_before, cpu_after);
  line.datagrams = sensor->counters().datagrams_sent;
  line.late = sensor->counters().late_datagrams;
  line.copies = after->sink.rx_packets - before->sink.rx_packets;
  return line;
}

// The line without traffic that the machine-wide figures are measured against.
constexpr const char* kIdleLabel = "idle";

Result<PacedLine> RunIdle(double seconds, const CpuMeter& meter) {
  PacedLine line;
  line.label = kIdleLabel;
  const CpuSample before = meter.Sample();
  if (!SleepFor(Seconds(seconds))) return Error(Interrupted());
  line.cpu = meter.Between(before, meter.Sample());
  return line;
}

// --- output --------------------------------------------------------------------------------------

std::string Format(const char* format, double value) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

std::string Number(double value) {
  if (value >= 1e6) return Format("%.2fM", value / 1e6);
  if (value >= 1e3) return Format("%.1fk", value / 1e3);
  return Format("%.0f", value);
}

void PrintThroughputHeader() {
  std::printf("%5s %4s %-8s %10s %10s %6s %6s %8s %11s %11s %6s %9s %10s\n", "size", "M", "path",
              "sent_dg/s", "copies/s", "lost%", "cores", "machine", "copies/cpu", "net/cpu", "+-%",
              "bpf_ns/dg", "bpf_ns/cp");
}

double SenderNanosPerDatagram(const ThroughputLine& line) {
  return line.sent > 0 ? 1e9 * line.cpu.attributed_seconds / static_cast<double>(line.sent) : 0;
}

// What a line's rounds are ranked by: the net copies per CPU-second; for the baseline, its cost.
double RankOf(const ThroughputLine& line) {
  return line.path == Path::kBaseline ? SenderNanosPerDatagram(line)
                                      : line.net_copies_per_cpu_second();
}

// The round with the median rank (so that a printed row is one real measurement, not a mix of
// rounds), and half the rounds' range around it in percent (0 for a single round).
template <typename Round, typename Rank>
std::pair<Round, double> MedianRound(std::vector<Round> rounds, Rank rank) {
  if (rounds.empty()) return {Round{}, 0};
  std::sort(rounds.begin(), rounds.end(),
            [&](const Round& a, const Round& b) { return rank(a) < rank(b); });
  const Round& median = rounds[rounds.size() / 2];
  const double spread =
      rank(median) > 0 ? 50.0 * (rank(rounds.back()) - rank(rounds.front())) / rank(median) : 0;
  return {median, spread};
}

void PrintThroughputLine(const ThroughputLine& line, double spread, size_t rounds) {
  const std::string spread_text = rounds > 1 ? Format("%.0f", spread) : "-";
  if (line.path == Path::kBaseline) {
    std::printf(
        "%5zu %4s %-8s %10s %10s %6s %6.2f %8.2f %11s %11s %6s %9s %10s  sender: %.0f "
        "ns/dg\n",
        line.size, "-", PathName(line.path), Number(line.datagrams_per_second()).c_str(), "-", "-",
        line.cpu.attributed_cores(), line.cpu.machine_cores(), "-", "-", spread_text.c_str(), "-",
        "-", SenderNanosPerDatagram(line));
    return;
  }
  std::string bpf_per_datagram = "-";
  std::string bpf_per_copy = "-";
  if (line.bpf && line.bpf->run_count > 0) {
    const double ns = static_cast<double>(line.bpf->run_time_ns);
    bpf_per_datagram = Format("%.0f", ns / static_cast<double>(line.bpf->run_count));
    if (line.copies > 0) bpf_per_copy = Format("%.0f", ns / static_cast<double>(line.copies));
  }
  std::printf("%5zu %4zu %-8s %10s %10s %6.2f %6.2f %8.2f %11s %11s %6s %9s %10s", line.size,
              line.consumers, PathName(line.path), Number(line.datagrams_per_second()).c_str(),
              Number(line.copies_per_second()).c_str(), line.lost_percent(),
              line.cpu.attributed_cores(), line.cpu.machine_cores(),
              Number(line.copies_per_cpu_second()).c_str(),
              Number(line.net_copies_per_cpu_second()).c_str(), spread_text.c_str(),
              bpf_per_datagram.c_str(), bpf_per_copy.c_str());
  const uint64_t not_taken = line.sent > line.edge_took ? line.sent - line.edge_took : 0;
  if (line.send_errors > 0 || not_taken > 0 || line.copies_lost > 0 ||
      line.replicator_send_errors > 0) {
    std::printf("  (");
    const char* separator = "";
    auto note = [&](uint64_t count, const char* what) {
      if (count == 0) return;
      std::printf("%s%llu %s", separator, static_cast<unsigned long long>(count), what);
      separator = ", ";
    };
    note(line.send_errors, "sender errors");
    note(not_taken, "datagrams the edge did not take");
    note(line.copies_lost, "copies dropped by the edge's veths");
    note(line.replicator_send_errors, "replicator send errors");
    std::printf(")");
  }
  std::printf("\n");
}

std::string FractionList(const std::vector<fanout::ConsumerNeed>& needs) {
  std::string out;
  for (const fanout::ConsumerNeed& need : needs) {
    if (!out.empty()) out += ", ";
    out += fanout::FormatFraction(need.need);
  }
  return out;
}

// The first three fields of /proc/loadavg.
std::string LoadAverage() {
  std::FILE* file = std::fopen("/proc/loadavg", "r");
  if (file == nullptr) return "?";
  char one[16] = "?", five[16] = "?", fifteen[16] = "?";
  if (std::fscanf(file, "%15s %15s %15s", one, five, fifteen) != 3) one[0] = '\0';
  std::fclose(file);
  return std::string(one) + " " + five + " " + fifteen;
}

double SavedPercent(double before, double after) {
  return before > 0 ? 100.0 * (before - after) / before : 0;
}

// --- main ----------------------------------------------------------------------------------------

struct Options {
  std::filesystem::path ts_file;
  double fps = 30;
  ThroughputOptions throughput;
  std::vector<size_t> consumer_counts = {1, 10, 50, 100};
  std::vector<size_t> sizes = {512, 1316};
  double paced_seconds = 10;
  size_t paced_rounds = 3;
  double paced_speed = 1;  // 1: the stream's recorded rate
  size_t paced_consumers = 100;
  bool quick = false;
};

struct BandwidthHeadline {
  double uplink_saved_pct = 0;
  double egress_saved_pct = 0;
};

Result<std::vector<BandwidthHeadline>> PrintBandwidth(const Bytes& ts, const StreamMeasure& stream,
                                                      const std::vector<ConsumerMix>& mixes) {
  const std::vector<Bytes> datagrams = SensorDatagrams(ts);
  std::vector<BandwidthHeadline> headlines;
  for (const ConsumerMix& mix : mixes) {
    const fanout::SensorDemand demand{.rates = stream.rates, .consumers = mix.needs};
    auto model = fanout::ModelBandwidth(std::span(&demand, 1));
    if (!model) return Error(model.error());
    auto measured = MeasureControlledBandwidth(datagrams, mix, stream.seconds);
    if (!measured) return Error(measured.error());
    std::printf(
        "\n%s: %zu consumers needing %s of the differential data (frame mode); "
        "Q_eff = %s\n",
        mix.label.c_str(), mix.needs.size(), FractionList(mix.needs).c_str(),
        fanout::FormatFraction(model->sensors[0].effective).c_str());
    std::printf("model (eq. 1-4 on the measured rates):\n%s",
                fanout::FormatBandwidthTable(*model).c_str());
    std::printf(
        "measured (DatagramDecider over the file: the sensor's cut at Q_eff, then each "
        "consumer's residual at the edge), Mbit/s:\n");
    std::printf("  %-40s %8s %8s %14s\n", "", "uplink", "egress", "egress on wire");
    std::printf("  %-40s %8.3f %8.3f %14.3f\n", "edge fan-out, full quality",
                measured->full_bps / 1e6, measured->replicated_egress_bps() / 1e6,
                measured->replicated_egress_bps() / 1e6);
    std::printf("  %-40s %8.3f %8.3f %14.3f\n", "edge fan-out + QoC controller",
                measured->controlled_uplink_bps / 1e6, measured->controlled_egress_bps / 1e6,
                measured->controlled_egress_wire_bps / 1e6);
    const BandwidthHeadline headline{
        .uplink_saved_pct = SavedPercent(measured->full_bps, measured->controlled_uplink_bps),
        .egress_saved_pct =
            SavedPercent(measured->replicated_egress_bps(), measured->controlled_egress_wire_bps)};
    std::printf(
        "  saved by the controller: uplink %.1f%% (model %.1f%%), egress on the wire "
        "%.1f%% (model %.1f%%; null packets in place of dropped TS packets are %.3f "
        "Mbit/s of it)\n",
        headline.uplink_saved_pct,
        SavedPercent(model->replicated_uplink_bps, model->controlled_uplink_bps),
        headline.egress_saved_pct,
        SavedPercent(model->replicated_egress_bps, model->controlled_egress_bps),
        (measured->controlled_egress_wire_bps - measured->controlled_egress_bps) / 1e6);
    headlines.push_back(headline);
  }
  return headlines;
}

// --- the real-rate rounds ------------------------------------------------------------------------

// The real-rate lines of a round, in the order they run; the first, without any fan-out, is what
// the others' net CPU is measured against.
constexpr const char* kPacedLabels[] = {"sender only", "ebpf", "bridge", "user"};

// One round of the real-rate lines: the sender alone (the edge drops the stream), the eBPF
// program, a bridge flooding the same veths (the kernel's own cost of putting a frame on 100
// interfaces, without rewriting or choosing), and the userspace replicator.
Status RunPacedRound(FanoutTestbed& testbed, const TcDropProgram& drop, const Options& options,
                     const CpuMeter& meter, std::vector<PacedLine>* lines) {
  auto run = [&](const char* label, int prog_fd) -> Status {
    auto line = RunPaced(label, testbed, options.ts_file, options.paced_seconds,
                         options.paced_speed, meter, prog_fd);
    if (!line) return line.error();
    lines->push_back(*line);
    return Status::Ok();
  };
  {
    auto attached = testbed.edge().Run([&] {
      return drop.AttachIngress(testbed.uplink_ifindex(), kBaselineDropHandle,
                                kBaselineDropPriority);
    });
    if (!attached) return attached.error();
    EF_RETURN_IF_ERROR(*attached);
    ScopedEdgeChange detach([&] { return testbed.ClearUplinkFilters(); });
    EF_RETURN_IF_ERROR(run(kPacedLabels[0], -1));
  }
  {
    auto ebpf = EbpfPath::Start(testbed, options.paced_consumers);
    if (!ebpf) return ebpf.error();
    auto stats = BpfRunTimeStats::Enable();
    if (!stats) return stats.error();
    EF_RETURN_IF_ERROR(run(kPacedLabels[1], (*ebpf)->prog_fd()));
  }
  {
    ScopedEdgeChange unbridge([&]() -> Status {
      EF_RETURN_IF_ERROR(testbed.SendStreamToEdge());
      return testbed.RemoveBridge();
    });
    EF_RETURN_IF_ERROR(testbed.AddBridge(options.paced_consumers));
    EF_RETURN_IF_ERROR(testbed.SendStreamTo(kFloodMac));
    EF_RETURN_IF_ERROR(run(kPacedLabels[2], -1));
  }
  {
    auto replicator = StartReplicator(testbed, options.paced_consumers);
    if (!replicator) return replicator.error();
    const Status ran = run(kPacedLabels[3], -1);
    (*replicator)->Stop();
    return ran;
  }
}

// A real-rate line as the table shows it.
struct PacedRow {
  std::string label;
  double datagrams_per_second = 0;
  double copies_per_second = 0;
  uint64_t copies = 0;
  uint64_t expected_copies = 0;  // 0: the line makes no copies
  double ours_pct = 0;           // this process + ksoftirqd
  std::optional<double> net_pct;       // ours minus the round's sender-only line
  std::optional<double> machine_pct;   // /proc/stat busy minus the idle line's
  std::optional<double> bpf_pct;       // the fan-out program's run time
  std::optional<double> bpf_ns_per_datagram;
  std::optional<double> bpf_ns_per_copy;
  uint64_t late = 0;

  // What the median round is chosen by: the figure the line is there for.
  double rank() const { return bpf_pct ? *bpf_pct : net_pct ? *net_pct : ours_pct; }
};

PacedRow MakePacedRow(const PacedLine& line, const PacedLine& idle, const PacedLine& sender_only,
                      const Options& options) {
  PacedRow row;
  row.label = line.label;
  const double wall = line.cpu.wall_seconds;
  if (wall > 0) {
    row.datagrams_per_second = static_cast<double>(line.datagrams) / wall;
    row.copies_per_second = static_cast<double>(line.copies) / wall;
  }
  row.copies = line.copies;
  row.ours_pct = 100.0 * line.cpu.attributed_cores();
  row.late = line.late;
  if (line.label == kIdleLabel) return row;
  row.machine_pct = 100.0 * (line.cpu.machine_cores() - idle.cpu.machine_cores());
  if (line.label == kPacedLabels[0]) return row;  // the sender alone: no copies, no net
  row.expected_copies = line.datagrams * options.paced_consumers;
  row.net_pct = 100.0 * (line.cpu.attributed_cores() - sender_only.cpu.attributed_cores());
  if (line.bpf && wall > 0) {
    const double ns = static_cast<double>(line.bpf->run_time_ns);
    row.bpf_pct = 100.0 * ns * 1e-9 / wall;
    if (line.bpf->run_count > 0) row.bpf_ns_per_datagram = ns / line.bpf->run_count;
    if (line.copies > 0) row.bpf_ns_per_copy = ns / line.copies;
  }
  return row;
}

void PrintPacedRow(const PacedRow& row, double spread) {
  auto optional = [](const std::optional<double>& value, const char* format) {
    return value ? Format(format, *value) : std::string("-");
  };
  std::printf("%-12s %8.1f %10.0f %8.3f %8s %9s %9s %10s %11s %6llu %5.0f\n", row.label.c_str(),
              row.datagrams_per_second, row.copies_per_second, row.ours_pct,
              optional(row.net_pct, "%.3f").c_str(), optional(row.machine_pct, "%.2f").c_str(),
              optional(row.bpf_pct, "%.3f").c_str(),
              optional(row.bpf_ns_per_datagram, "%.0f").c_str(),
              optional(row.bpf_ns_per_copy, "%.0f").c_str(),
              static_cast<unsigned long long>(row.late), spread);
}

int Run(const Options& options) {
  std::string why;
  if (!test_support::HaveNetAdmin(&why)) {
    std::fprintf(stderr, "fanout_bench: needs root with CAP_NET_ADMIN and CAP_SYS_ADMIN: %s\n",
                 why.c_str());
    return 2;
  }
  auto ts = ReadTsFile(options.ts_file);
  if (!ts) {
    std::fprintf(stderr, "fanout_bench: %s\n", ts.error().ToString().c_str());
    return 1;
  }
  auto stream = MeasureStream(*ts, options.fps);
  if (!stream) {
    std::fprintf(stderr, "fanout_bench: %s\n", stream.error().ToString().c_str());
    return 1;
  }
  const size_t max_consumers =
      std::max(options.paced_consumers,
               *std::max_element(options.consumer_counts.begin(), options.consumer_counts.end()));

  auto fail = [](const Status& status) {
    if (status.Is(ErrorCode::kUnavailable) && interrupted.load()) {
      std::fprintf(stderr, "fanout_bench: interrupted; cleaning up\n");
      return 130;
    }
    std::fprintf(stderr, "fanout_bench: %s\n", status.ToString().c_str());
    return 1;
  };

  auto drop = TcDropProgram::Load();
  if (!drop) return fail(drop.error());
  const auto setup_start = Clock::now();
  auto testbed = FanoutTestbed::Create(max_consumers, **drop);
  if (!testbed) return fail(testbed.error());
  auto sender = BlastSender::Create((*testbed)->sender(), interrupted);
  if (!sender) return fail(sender.error());
  const CpuMeter meter;
  std::printf(
      "testbed: sender -> edge -> %zu consumers (veth pairs, namespaces %s, %s, %s), set "
      "up in %.1f s; %u CPUs, load average %s\n",
      max_consumers, (*testbed)->sender().name().c_str(), (*testbed)->edge().name().c_str(),
      (*testbed)->sink().name().c_str(),
      std::chrono::duration<double>(Clock::now() - setup_start).count(),
      std::thread::hardware_concurrency(), LoadAverage().c_str());
  std::printf(
      "stream: %s, %llu pictures (%llu reference, %llu differential), %.2f s at %.0f "
      "fps, %.3f Mbit/s (reference %.3f, differential %.3f, other %.3f)\n",
      options.ts_file.filename().c_str(), static_cast<unsigned long long>(stream->pictures),
      static_cast<unsigned long long>(stream->reference_pictures),
      static_cast<unsigned long long>(stream->differential_pictures), stream->seconds, options.fps,
      stream->rates.full_bps() / 1e6, stream->rates.reference_bps / 1e6,
      stream->rates.differential_bps / 1e6, stream->rates.other_bps / 1e6);

  // 1. Throughput: every line once per round, the rounds one after the other, so that a change
  // in the machine's load touches all paths alike; each row is the round with the median.
  const size_t rounds = std::max<size_t>(options.throughput.rounds, 1);
  std::printf(
      "\nthroughput: %.1f s per line after %.1f s of warm-up, %zu round%s (each row: the round "
      "with "
      "the median net/cpu; +-%%: half the rounds' range); the sender sends as fast as the path "
      "takes it (sendmmsg x%zu); every consumer keeps 1/1\n"
      "  cores = CPU of this process (sender, replicator, and the softirqs run in their context) "
      "+ ksoftirqd, per second; machine = /proc/stat busy, all processes\n"
      "  copies/cpu = copies per CPU-second of those; net/cpu = the same without the sender's own "
      "cost (baseline ns/dg x datagrams sent)\n"
      "  bpf_ns = the fan-out program's run time (kernel BPF stats) per datagram and per copy\n\n",
      options.throughput.seconds, options.throughput.warmup_seconds, rounds, rounds == 1 ? "" : "s",
      kSendBatch);
  bool header_printed = false;  // after the first size's rounds, whose progress goes to stderr
  std::map<std::tuple<Path, size_t, size_t>, ThroughputLine> lines;  // the median rounds
  for (const size_t size : options.sizes) {
    const std::vector<Bytes> load = size == EF_TS_PACKET_BYTES * EF_MAX_TS_PER_DATAGRAM
                                        ? FixedSizeDatagrams(*ts)
                                        : ArbitraryDatagrams(size);
    std::map<std::tuple<Path, size_t, size_t>, std::vector<ThroughputLine>> measured;
    for (size_t round = 1; round <= rounds; ++round) {
      std::fprintf(stderr, "fanout_bench: %zu-byte datagrams, round %zu of %zu\n", size, round,
                   rounds);
      auto baseline =
          RunLine(Path::kBaseline, 0, load, **testbed, **sender, **drop, meter, options.throughput);
      if (!baseline) return fail(baseline.error());
      const double sender_seconds_per_datagram =
          baseline->sent > 0 ? baseline->cpu.attributed_seconds / baseline->sent : 0;
      measured[{Path::kBaseline, size, 0}].push_back(*baseline);
      for (const size_t consumers : options.consumer_counts) {
        for (const Path path : {Path::kEbpf, Path::kUserspace, Path::kBridge}) {
          auto line = RunLine(path, consumers, load, **testbed, **sender, **drop, meter,
                              options.throughput);
          if (!line) return fail(line.error());
          line->sender_cpu_seconds = sender_seconds_per_datagram * static_cast<double>(line->sent);
          measured[{path, size, consumers}].push_back(*line);
        }
      }
    }
    auto print = [&](Path path, size_t consumers) {
      const auto [median, spread] = MedianRound(measured[{path, size, consumers}], RankOf);
      PrintThroughputLine(median, spread, rounds);
      lines[{path, size, consumers}] = median;
    };
    if (!header_printed) PrintThroughputHeader();
    header_printed = true;
    print(Path::kBaseline, 0);
    for (const size_t consumers : options.consumer_counts) {
      for (const Path path : {Path::kEbpf, Path::kUserspace, Path::kBridge}) print(path, consumers);
    }
  }

  // 2. CPU at the stream's real rate.
  std::printf(
      "\n%zu consumers of the %.2f Mbit/s, %.0f fps stream at %s (the sensor agent's "
      "SensorSender, looping the file), %.0f s per line, %zu round%s (each row: the median round; "
      "+-%%: half the rounds' range), every consumer keeps 1/1\n",
      options.paced_consumers, stream->rates.full_bps() / 1e6, options.fps,
      options.paced_speed == 1.0
          ? "its recorded rate"
          : Format("%g times its recorded rate", options.paced_speed).c_str(),
      options.paced_seconds, std::max<size_t>(options.paced_rounds, 1),
      options.paced_rounds > 1 ? "s" : "");
  std::printf(
      "  ours = this process + ksoftirqd; net = ours minus the round's sender-only line; machine "
      "= /proc/stat busy minus the idle line's; bridge: a Linux bridge flooding the same veths "
      "(the kernel's cost of putting each frame on every consumer's interface)\n\n");
  auto idle_line = RunIdle(options.paced_seconds, meter);
  if (!idle_line) return fail(idle_line.error());
  const PacedLine& idle = *idle_line;
  // The lines once per round, the rounds one after the other (as the throughput lines), so that
  // a change in the machine's load touches all lines alike; each row is the median round.
  std::map<std::string, std::vector<PacedRow>> paced_rows;
  const size_t paced_rounds = std::max<size_t>(options.paced_rounds, 1);
  for (size_t round = 1; round <= paced_rounds; ++round) {
    std::fprintf(stderr, "fanout_bench: real-rate lines, round %zu of %zu\n", round, paced_rounds);
    std::vector<PacedLine> round_lines;
    const Status ran = RunPacedRound(**testbed, **drop, options, meter, &round_lines);
    if (!ran.ok()) return fail(ran);
    const PacedLine& sender_only = round_lines.front();
    for (const PacedLine& line : round_lines) {
      paced_rows[line.label].push_back(MakePacedRow(line, idle, sender_only, options));
    }
  }
  std::printf("%-12s %8s %10s %8s %8s %9s %9s %10s %11s %6s %5s\n", "line", "dg/s", "copies/s",
              "ours_%", "net_%", "machine_%", "bpf_%", "bpf_ns/dg", "bpf_ns/copy", "late", "+-%");
  PrintPacedRow(MakePacedRow(idle, idle, idle, options), 0);
  std::map<std::string, PacedRow> paced;  // the median rounds
  for (const char* label : kPacedLabels) {
    const auto [median, spread] =
        MedianRound(paced_rows[label], [](const PacedRow& row) { return row.rank(); });
    PrintPacedRow(median, spread);
    paced[label] = median;
  }
  for (const char* label : kPacedLabels) {
    const PacedRow& row = paced[label];
    if (row.expected_copies != 0 && row.copies != row.expected_copies) {
      std::printf("  note: %s delivered %llu copies of %llu expected\n", label,
                  static_cast<unsigned long long>(row.copies),
                  static_cast<unsigned long long>(row.expected_copies));
    }
  }
  const double ebpf_bpf_pct = paced["ebpf"].bpf_pct.value_or(0);
  const double ebpf_net_pct = paced["ebpf"].net_pct.value_or(0);
  const double user_net_pct = paced["user"].net_pct.value_or(0);
  const double bridge_net_pct = paced["bridge"].net_pct.value_or(0);

  // 3. Bandwidth.
  const std::vector<ConsumerMix> mixes = {
      {"mix 1",
       {{fanout::Fraction::One(), EF_DROP_FRAME},
        {{1, 2}, EF_DROP_FRAME},
        {{1, 2}, EF_DROP_FRAME},
        {{1, 4}, EF_DROP_FRAME},
        {fanout::Fraction::Zero(), EF_DROP_FRAME}}},
      {"mix 2 (nobody needs everything)",
       {{{1, 2}, EF_DROP_FRAME},
        {{1, 4}, EF_DROP_FRAME},
        {{1, 4}, EF_DROP_FRAME},
        {fanout::Fraction::Zero(), EF_DROP_FRAME}}},
  };
  std::printf("\nbandwidth saved by the QoC controller, one sensor sending this stream:");
  auto bandwidth = PrintBandwidth(*ts, *stream, mixes);
  if (!bandwidth) return fail(bandwidth.error());

  // Goals and the RESULT line.
  auto find = [&](Path path, size_t size, size_t consumers) -> const ThroughputLine* {
    const auto it = lines.find({path, size, consumers});
    return it == lines.end() ? nullptr : &it->second;
  };
  std::printf("\ngoals\n");
  std::string result = "RESULT name=fanout";
  auto add = [&](const std::string& key, const std::string& value) {
    result += " " + key + "=" + value;
  };
  for (const size_t size : options.sizes) {
    const ThroughputLine* ebpf = find(Path::kEbpf, size, 10);
    const ThroughputLine* user = find(Path::kUserspace, size, 10);
    const ThroughputLine* bridge = find(Path::kBridge, size, 10);
    if (ebpf == nullptr || user == nullptr || bridge == nullptr) continue;
    const std::string suffix = "_m10_" + std::to_string(size);
    const double ratio = user->net_copies_per_cpu_second() > 0
                             ? ebpf->net_copies_per_cpu_second() / user->net_copies_per_cpu_second()
                             : 0;
    const double gross_ratio = user->copies_per_cpu_second() > 0
                                   ? ebpf->copies_per_cpu_second() / user->copies_per_cpu_second()
                                   : 0;
    add("ebpf_cps" + suffix, Format("%.0f", ebpf->net_copies_per_cpu_second()));
    add("user_cps" + suffix, Format("%.0f", user->net_copies_per_cpu_second()));
    add("bridge_cps" + suffix, Format("%.0f", bridge->net_copies_per_cpu_second()));
    add("ratio" + suffix, Format("%.2f", ratio));
    add("ratio_gross" + suffix, Format("%.2f", gross_ratio));
    add("bridge_ratio" + suffix,
        Format("%.2f", bridge->net_copies_per_cpu_second() > 0
                           ? ebpf->net_copies_per_cpu_second() / bridge->net_copies_per_cpu_second()
                           : 0));
    if (size == EF_TS_PACKET_BYTES * EF_MAX_TS_PER_DATAGRAM) {
      std::printf(
          "  eBPF >= 3x the userspace replicator's copies per CPU-second at M = 10, %zu B "
          "(net of the sender): %.2fx (%s); with the sender's cost: %.2fx; eBPF vs the "
          "bridge: %.2fx\n",
          size, ratio, ratio >= 3.0 ? "met" : "NOT met", gross_ratio,
          bridge->net_copies_per_cpu_second() > 0
              ? ebpf->net_copies_per_cpu_second() / bridge->net_copies_per_cpu_second()
              : 0);
    }
  }
  const size_t largest =
      *std::max_element(options.consumer_counts.begin(), options.consumer_counts.end());
  for (const size_t size : options.sizes) {
    for (const Path path : {Path::kEbpf, Path::kUserspace, Path::kBridge}) {
      if (const ThroughputLine* line = find(path, size, largest)) {
        add(std::string(PathName(path)) + "_pps_m" + std::to_string(largest) + "_" +
                std::to_string(size),
            Format("%.0f", line->copies_per_second()));
      }
    }
  }
  if (const ThroughputLine* ebpf = find(Path::kEbpf, 1316, 10); ebpf && ebpf->bpf && ebpf->copies) {
    add("ebpf_bpf_ns_per_copy_m10_1316",
        Format("%.0f", static_cast<double>(ebpf->bpf->run_time_ns) / ebpf->copies));
  }
  const bool goal_setting = options.paced_consumers == 100 && options.paced_speed == 1.0;
  std::printf(
      "  %zu consumers of the %.1f Mbit/s stream under 5%% of one core: the fan-out "
      "program %.3f%% (%s); this process + ksoftirqd beyond the sender's own %.3f%% (the "
      "bridge's %.3f%%, the userspace replicator's %.3f%%)\n",
      options.paced_consumers, stream->rates.full_bps() / 1e6, ebpf_bpf_pct,
      !goal_setting        ? "not the goal's setting: 100 consumers at the recorded rate"
      : ebpf_bpf_pct < 5.0 ? "met"
                           : "NOT met",
      ebpf_net_pct, bridge_net_pct, user_net_pct);
  const std::string paced_key =
      std::to_string(options.paced_consumers) +
      (options.paced_speed == 1.0 ? std::string("c_2mbps")
                                  : "c_speed" + Format("%g", options.paced_speed));
  add("cpu_pct_" + paced_key, Format("%.3f", ebpf_bpf_pct));
  add("cpu_pct_net_" + paced_key, Format("%.3f", ebpf_net_pct));
  add("user_cpu_pct_net_" + paced_key, Format("%.3f", user_net_pct));
  add("bridge_cpu_pct_net_" + paced_key, Format("%.3f", bridge_net_pct));
  add("uplink_saved_pct", Format("%.1f", (*bandwidth)[1].uplink_saved_pct));
  add("egress_saved_pct", Format("%.1f", (*bandwidth)[1].egress_saved_pct));
  add("uplink_saved_pct_mix1", Format("%.1f", (*bandwidth)[0].uplink_saved_pct));
  add("egress_saved_pct_mix1", Format("%.1f", (*bandwidth)[0].egress_saved_pct));
  add("quick", options.quick ? "1" : "0");
  std::printf("\n%s\n", result.c_str());
  std::fflush(stdout);
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{
      "The stream fan-out's packets/s and CPU: eBPF, the userspace replicator and a "
      "Linux bridge; and the bandwidth the QoC controller saves"};
  Options options;
  app.add_option("--ts-file", options.ts_file, "the H.264 MPEG-TS stream (ffmpeg)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--fps", options.fps, "the stream's frame rate");
  app.add_option("--seconds", options.throughput.seconds, "measured time per throughput line");
  app.add_option("--warmup", options.throughput.warmup_seconds, "warm-up before each line");
  app.add_option("--rounds", options.throughput.rounds, "rounds of every throughput line");
  app.add_option("--consumers", options.consumer_counts, "consumer counts M")->delimiter(',');
  app.add_option("--sizes", options.sizes, "datagram sizes (1316: the TS stream)")->delimiter(',');
  app.add_option("--paced-seconds", options.paced_seconds, "time per real-rate line");
  app.add_option("--paced-rounds", options.paced_rounds, "rounds of the real-rate lines");
  app.add_option("--paced-consumers", options.paced_consumers, "consumers of the real-rate lines");
  app.add_option("--paced-speed", options.paced_speed,
                 "send the stream this many times faster than recorded in the real-rate lines (to "
                 "see how the cost of a copy depends on the rate)")
      ->check(CLI::Range(0.1, 100.0));
  app.add_flag("--quick", options.quick,
               "a smoke run: one round of 0.5 s per line, M = 1 and 10, 3 s per real-rate line "
               "(options given explicitly win)");
  CLI11_PARSE(app, argc, argv);
  if (options.quick) {
    if (app.count("--seconds") == 0) options.throughput.seconds = 0.5;
    if (app.count("--warmup") == 0) options.throughput.warmup_seconds = 0.1;
    if (app.count("--rounds") == 0) options.throughput.rounds = 1;
    if (app.count("--consumers") == 0) options.consumer_counts = {1, 10};
    if (app.count("--paced-seconds") == 0) options.paced_seconds = 3;
    if (app.count("--paced-rounds") == 0) options.paced_rounds = 1;
  }
  if (options.consumer_counts.empty() || options.sizes.empty()) {
    std::fprintf(stderr, "fanout_bench: --consumers and --sizes need at least one value\n");
    return 64;
  }
  for (const size_t m : options.consumer_counts) {
    if (m == 0 || m > FanoutTestbed::kMaxConsumers ||
        m > fanout::FanoutProgram::kMaxConsumersPerStream) {
      std::fprintf(stderr, "fanout_bench: consumer counts are 1..%u\n",
                   fanout::FanoutProgram::kMaxConsumersPerStream);
      return 64;
    }
  }
  for (const size_t size : options.sizes) {
    if (size < 64 || size > 1472) {
      std::fprintf(stderr, "fanout_bench: datagram sizes are 64..1472 bytes (one frame)\n");
      return 64;
    }
  }
  // Line by line, also into a pipe: the script shows the lines as they come.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  struct sigaction action {};
  action.sa_handler = OnSignal;
  ::sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  // The script's `tee` may be gone first (Ctrl-C): a write to it must fail, not kill the program
  // before its namespaces are removed.
  ::signal(SIGPIPE, SIG_IGN);
  return Run(options);
}

}  // namespace
}  // namespace edgeflow::bench

int main(int argc, char** argv) { return edgeflow::bench::Main(argc, argv); }
