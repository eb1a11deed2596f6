#include "fanout_stream.h"

#include <array>
#include <fstream>
#include <iterator>
#include <span>

#include "fanout/bpf/drop_policy.h"
#include "fanout/bpf/ts_dpi.h"
#include "fanout/datagram_decider.h"
#include "ts/frame_class.h"
#include "ts/ts_analyzer.h"

namespace edgeflow::bench {
namespace {

constexpr size_t kTsPacket = EF_TS_PACKET_BYTES;
constexpr size_t kPacketsPerDatagram = EF_MAX_TS_PER_DATAGRAM;

uint64_t Sum(const std::array<uint64_t, EF_CLASS_COUNT>& by_class) {
  uint64_t sum = 0;
  for (const uint64_t value : by_class) sum += value;
  return sum;
}

double Bps(uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) * 8.0 / seconds : 0.0;
}

}  // namespace

Result<Bytes> ReadTsFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(Status::IoError("cannot open " + path.string()));
  Bytes bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (bytes.size() < kTsPacket * kPacketsPerDatagram) {
    return Error(Status::InvalidArgument(path.string() + " holds less than 7 TS packets"));
  }
  return bytes;
}

std::vector<Bytes> FixedSizeDatagrams(const Bytes& ts) {
  constexpr size_t kDatagram = kTsPacket * kPacketsPerDatagram;
  std::vector<Bytes> datagrams;
  for (size_t at = 0; at + kDatagram <= ts.size(); at += kDatagram) {
    datagrams.emplace_back(ts.begin() + static_cast<std::ptrdiff_t>(at),
                           ts.begin() + static_cast<std::ptrdiff_t>(at + kDatagram));
  }
  return datagrams;
}

std::vector<Bytes> SensorDatagrams(const Bytes& ts) {
  std::vector<Bytes> datagrams;
  ef_stream_state pictures{};
  ef_stream_state_init(&pictures, EF_CODEC_AUTO);
  Bytes current;
  for (size_t at = 0; at + kTsPacket <= ts.size(); at += kTsPacket) {
    const uint8_t* packet = ts.data() + at;
    const ef_ts_verdict verdict = ef_inspect_ts_packet(&pictures, packet);
    if (!current.empty() &&
        (verdict.frame_start || current.size() == kTsPacket * kPacketsPerDatagram)) {
      datagrams.push_back(std::move(current));
      current.clear();
    }
    current.insert(current.end(), packet, packet + kTsPacket);
  }
  if (!current.empty()) datagrams.push_back(std::move(current));
  return datagrams;
}

Result<StreamMeasure> MeasureStream(const Bytes& ts, double frames_per_second) {
  ts::TsAnalyzer analyzer;
  analyzer.PushAll(ts);
  analyzer.Finish();
  const ts::AnalyzerStats stats = analyzer.stats();
  StreamMeasure measure;
  measure.pictures = analyzer.frames().size();
  if (measure.pictures == 0 || frames_per_second <= 0) {
    return Error(Status::InvalidArgument("no video pictures in the TS file"));
  }
  measure.reference_pictures = stats.frames[static_cast<size_t>(ts::FrameClass::kReference)];
  measure.differential_pictures = stats.frames[static_cast<size_t>(ts::FrameClass::kDifferential)];
  measure.ts_packets = stats.packets;
  measure.seconds = static_cast<double>(measure.pictures) / frames_per_second;
  const uint64_t reference =
      stats.packets_by_class[static_cast<size_t>(ts::FrameClass::kReference)];
  const uint64_t differential =
      stats.packets_by_class[static_cast<size_t>(ts::FrameClass::kDifferential)];
  measure.rates.reference_bps = Bps(reference * kTsPacket, measure.seconds);
  measure.rates.differential_bps = Bps(differential * kTsPacket, measure.seconds);
  // PSI, audio, and video packets whose picture has no class: what the fan-out never drops.
  measure.rates.other_bps =
      Bps((stats.packets - reference - differential) * kTsPacket, measure.seconds);
  return measure;
}

Result<MeasuredBandwidth> MeasureControlledBandwidth(const std::vector<Bytes>& sensor_datagrams,
                                                     const ConsumerMix& mix, double seconds) {
  auto plan = fanout::PlanSensor(mix.needs);
  if (!plan) return Error(plan.error());
  MeasuredBandwidth out;
  out.effective = plan->effective;
  out.consumers = mix.needs.size();

  fanout::DatagramDecider sensor;
  sensor.AddConsumer(plan->sensor_policy);
  fanout::DatagramDecider edge;
  for (const fanout::ConsumerPlan& consumer : plan->consumers) edge.AddConsumer(consumer.policy);

  uint64_t file_bytes = 0;
  Bytes sent;  // what the sensor sends of a datagram: its kept TS packets, back to back
  for (const Bytes& datagram : sensor_datagrams) {
    file_bytes += datagram.size();
    sensor.Decide(datagram);
    const uint32_t mask = sensor.mask(0);
    sent.clear();
    for (size_t i = 0; i * kTsPacket < datagram.size(); ++i) {
      if ((mask & (1u << i)) == 0) continue;
      sent.insert(sent.end(), datagram.begin() + static_cast<std::ptrdiff_t>(i * kTsPacket),
                  datagram.begin() + static_cast<std::ptrdiff_t>((i + 1) * kTsPacket));
    }
    if (!sent.empty()) edge.Decide(sent);
  }
  out.full_bps = Bps(file_bytes, seconds);
  out.controlled_uplink_bps = Bps(Sum(sensor.counters(0).sent_bytes), seconds);
  uint64_t egress = 0;
  uint64_t wire = 0;
  for (size_t c = 0; c < edge.consumers(); ++c) {
    const fanout::ConsumerCounters counters = edge.counters(c);
    egress += Sum(counters.sent_bytes);
    wire += counters.payload_bytes_sent;
  }
  out.controlled_egress_bps = Bps(egress, seconds);
  out.controlled_egress_wire_bps = Bps(wire, seconds);
  return out;
}

}  // namespace edgeflow::bench
