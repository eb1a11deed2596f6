// The video stream of the fan-out benchmark: a recorded MPEG-TS file (ffmpeg, H.264), cut into
// datagrams, its bit rates by class (TsAnalyzer), and the bandwidth the QoC controller saves, in
// the model of papers/004 (equations 1-4, fanout/qoc_plan.h) and as the decision code really
// cuts this stream.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"
#include "fanout/qoc_plan.h"

namespace edgeflow::bench {

using Bytes = std::vector<uint8_t>;

Result<Bytes> ReadTsFile(const std::filesystem::path& path);

// The file in datagrams of exactly 7 TS packets (1316 bytes; a last, shorter group is left out):
// the saturating load, every datagram the same size so that packets/s compare across paths.
std::vector<Bytes> FixedSizeDatagrams(const Bytes& ts);

// The file cut as the sensor agent cuts it (fanout/sensor_sender.h): at most 7 TS packets, and a
// new datagram at every picture start as bpf/ts_dpi.h finds them.
std::vector<Bytes> SensorDatagrams(const Bytes& ts);

struct StreamMeasure {
  fanout::StreamRates rates;  // bits/s by class over the file's duration
  double seconds = 0;         // pictures / frame rate
  uint64_t pictures = 0;
  uint64_t reference_pictures = 0;
  uint64_t differential_pictures = 0;
  uint64_t ts_packets = 0;
};

// TsAnalyzer over the whole file; the duration is its pictures at `frames_per_second`.
Result<StreamMeasure> MeasureStream(const Bytes& ts, double frames_per_second);

// One sensor's consumers and what each needs of the differential data.
struct ConsumerMix {
  std::string label;
  std::vector<fanout::ConsumerNeed> needs;
};

// What the decision code sends for a mix, over the whole file, in bits/s.
struct MeasuredBandwidth {
  fanout::Fraction effective;             // Q_eff of the plan
  double full_bps = 0;                    // the file as the sensor sends it uncut
  double controlled_uplink_bps = 0;       // TS bytes the sensor sends at Q_eff
  double controlled_egress_bps = 0;       // TS bytes of the consumers' copies (content)
  double controlled_egress_wire_bps = 0;  // the copies' UDP payload, null packets included
  size_t consumers = 0;
  double replicated_egress_bps() const { return full_bps * static_cast<double>(consumers); }
};

// Runs PlanSensor on the mix, then the sensor's cut (DatagramDecider with one consumer at the
// plan's sensor policy: the suppressed TS packets are not sent) and, over what the sensor sent,
// the edge's residual cut per consumer (a second DatagramDecider): what the system would send.
Result<MeasuredBandwidth> MeasureControlledBandwidth(const std::vector<Bytes>& sensor_datagrams,
                                                     const ConsumerMix& mix, double seconds);

}  // namespace edgeflow::bench
