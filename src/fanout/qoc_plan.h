// The quality-of-computing (QoC) controller's arithmetic (papers/004, Algorithm 1 and equations
// 1-4), with no I/O: from what each consumer of a sensor's stream needs, what the sensor should
// send and what the edge should still suppress per consumer; and the bandwidth that saves.
//
// A consumer's need is the fraction of the differential (P/B) data it must get; reference
// pictures and everything that is not video always go (bpf/drop_policy.h). The sensor sends the
// union of the needs, Q_eff = the largest one (eq. 3): every consumer's data is then in the
// stream, and no more. The edge gives each consumer need / Q_eff of what arrives (the paper's
// edge suppression factor, Delta), so that the two cuts compose to exactly the need:
// Q_eff * (need / Q_eff) = need. Both cuts are credit accumulators over differential units,
// exact over their own units, so a consumer gets its need in counts of units to within a unit or
// two (frame mode: within a GOP, see bpf/drop_policy.h), not merely on average.
//
// Fractions are exact (32-bit numerator and denominator, always reduced), because they end up
// in ef_consumer_policy and a ratio such as 1/3 must stay 1/3 and not become 0.333333.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "fanout/bpf/drop_policy.h"

namespace edgeflow::fanout {

// A fraction in [0, 1]: num / den with num <= den and den > 0. Values made by MakeFraction or
// ParseFraction are reduced (gcd(num, den) == 1, so 0 is 0/1); comparisons are by value, so an
// unreduced fraction written by hand still compares correctly.
struct Fraction {
  uint32_t num = 0;
  uint32_t den = 1;

  static constexpr Fraction Zero() { return {0, 1}; }
  static constexpr Fraction One() { return {1, 1}; }

  bool valid() const { return den != 0 && num <= den; }
  double ToDouble() const { return den == 0 ? 0.0 : static_cast<double>(num) / den; }

  // By value (cross-multiplied in 64 bits, which cannot overflow for 32-bit terms).
  friend bool operator==(const Fraction& a, const Fraction& b) {
    return static_cast<uint64_t>(a.num) * b.den == static_cast<uint64_t>(b.num) * a.den;
  }
  friend std::strong_ordering operator<=>(const Fraction& a, const Fraction& b) {
    return static_cast<uint64_t>(a.num) * b.den <=> static_cast<uint64_t>(b.num) * a.den;
  }
};

// num/den reduced; InvalidArgument when den is 0, num > den, or the reduced terms do not fit in
// 32 bits.
Result<Fraction> MakeFraction(uint64_t num, uint64_t den);

// User input, as the HTTP API and the CLI take it: "N/D" (decimal integers, reduced: "2/4" is
// 1/2), a decimal in [0, 1] with at most 9 digits after the point ("0.25", "1.0"), "0" or "1".
// Nothing else: no sign, spaces, exponent, percent or hexadecimal. Errors say what was wrong and
// quote the input (escaped and shortened, since it may be anything).
Result<Fraction> ParseFraction(std::string_view text);

// "num/den" (reduced), which ParseFraction reads back to the same value: "1/2", "0/1", "1/1".
std::string FormatFraction(Fraction fraction);

// One consumer of a sensor's stream: the fraction of the differential data it needs, and how it
// wants the rest dropped (whole datagrams or whole pictures, see bpf/drop_policy.h).
struct ConsumerNeed {
  Fraction need = Fraction::One();
  ef_drop_mode mode = EF_DROP_PACKET;
};

// The data path's policy for keeping `keep` of the differential data in `mode`.
ef_consumer_policy PolicyOf(Fraction keep, ef_drop_mode mode);

// A change of a consumer's need: the fields given replace the need's, the others stay.
struct ConsumerNeedChange {
  std::optional<Fraction> need;
  std::optional<ef_drop_mode> mode;

  ConsumerNeed AppliedTo(ConsumerNeed current) const {
    if (need) current.need = *need;
    if (mode) current.mode = *mode;
    return current;
  }
};

// What the edge does for one consumer.
struct ConsumerPlan {
  // need / Q_eff of the differential data that reaches the edge; 1/1 when Q_eff is 0.
  Fraction residual = Fraction::One();
  // false only when need / Q_eff has no fraction with a 32-bit denominator (two large coprime
  // denominators, e.g. 1/4294967291 of 2/4294967279): the residual is then rounded up to the
  // next multiple of 1/(2^32 - 1), so the consumer gets a hair more than it asked for, never less.
  bool exact = true;
  // The residual in the form the data path takes, in the consumer's own mode.
  ef_consumer_policy policy{};
};

// What the edge does for a consumer when `arriving` of the sensor's differential data reaches it:
// need / arriving, or everything when less arrives than the consumer needs (or nothing at all).
// PlanSensor's residuals are this at Q_eff; the fan-out uses it with what the sensor says it
// sends while the sensor has not caught up with a new plan.
ConsumerPlan PlanConsumer(const ConsumerNeed& consumer, Fraction arriving);

// Algorithm 1 for one sensor.
struct QocPlan {
  Fraction effective = Fraction::Zero();  // Q_eff: what the sensor keeps of its differential data
  ef_drop_mode sensor_mode = EF_DROP_FRAME;
  ef_consumer_policy sensor_policy{};   // Q_eff and sensor_mode, for the sensor's own cut
  std::vector<ConsumerPlan> consumers;  // in the order of the input
};

// The sensor keeps the largest need. Its mode is frame as soon as one consumer is in frame mode:
// a packet-mode cut at the source leaves holes in pictures, and a frame-mode consumer downstream
// would then decode broken pictures however carefully the edge drops; a frame-mode cut only ever
// removes whole pictures, which packet-mode consumers do not mind. With only packet-mode
// consumers, the sensor cuts in packet mode, as the paper does.
//
// No consumers: the sensor sends reference pictures only (0/1, frame mode). Not nothing, because
// the drop policy never drops reference pictures and non-video packets (0/1 is the least it can
// express), and because it is what makes a consumer that subscribes next start at once: the edge
// still knows the stream (its video PID, its codec), and the next reference picture is a clean
// starting point, without waiting for the sensor to learn about the new consumer. Frame mode
// because at 0/1 it removes every differential picture whole, so what still flows decodes
// cleanly; packet mode would let parts of differential pictures through (those sharing a
// datagram with other data).
//
// InvalidArgument when a need is not a valid fraction.
Result<QocPlan> PlanSensor(std::span<const ConsumerNeed> consumers);

// --- The bandwidth model (equations 1-4) ---

// A sensor's stream as measured (e.g. from TsAnalyzer's byte counts over an interval), bits/s.
struct StreamRates {
  double reference_bps = 0;     // TS packets of reference pictures
  double differential_bps = 0;  // TS packets of differential pictures
  double other_bps = 0;         // everything else: audio, PSI, unclassified pictures
  double full_bps() const { return reference_bps + differential_bps + other_bps; }
  // S(Q): the stream with Q of its differential data. Assumes that dropping a fraction of the
  // differential units drops the same fraction of the differential bits (pictures of a kind are
  // of similar size over a GOP; a frame-mode cut prefers unreferenced pictures, often smaller).
  double at_quality(Fraction q) const {
    return reference_bps + other_bps + differential_bps * q.ToDouble();
  }
};

struct SensorDemand {
  StreamRates rates;
  std::vector<ConsumerNeed> consumers;
};

struct SensorBandwidth {
  Fraction effective = Fraction::Zero();  // Q_eff
  double full_bps = 0;                    // S_i(Q_full)
  double effective_bps = 0;               // S_i(Q_eff)
  double delivered_bps = 0;               // sum over its consumers of S_i(need)
  size_t consumers = 0;
};

// Bits/s of the scenarios compared; "uplink" is sensors -> edge, "egress" edge -> consumers.
struct BandwidthModel {
  std::vector<SensorBandwidth> sensors;  // in the order of the input
  // Eq. 1, generalised to a consumer count per sensor: every consumer gets its own full-quality
  // stream from the sensor (no replication at the edge). Uplink and egress alike.
  double naive_total_bps = 0;
  // Replicated at the edge, full quality: one full stream per sensor up, one per consumer out.
  double replicated_uplink_bps = 0;  // sum of S_i(Q_full)
  double replicated_egress_bps = 0;  // equal to naive_total_bps
  // With the controller: the sensor sends S_i(Q_eff) (eq. 2's objective at the union of eq. 3),
  // every consumer receives S_i(its need).
  double controlled_uplink_bps = 0;  // sum of S_i(Q_eff)
  double controlled_egress_bps = 0;  // sum over consumers of S_i(need)
  double saved_bps = 0;              // eq. 4: replicated_uplink_bps - controlled_uplink_bps
};

// InvalidArgument when a rate is negative or not finite, or a need is not a valid fraction.
Result<BandwidthModel> ModelBandwidth(std::span<const SensorDemand> sensors);

// The model as an aligned text table, one row per scenario (uplink and egress in Mbit/s, and the
// uplink relative to the naive one), then B_saved. For benchmark reports.
std::string FormatBandwidthTable(const BandwidthModel& model);

}  // namespace edgeflow::fanout
