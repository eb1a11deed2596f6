#include "fanout/qoc_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>

namespace edgeflow::fanout {
namespace {

constexpr uint64_t kMaxTerm = std::numeric_limits<uint32_t>::max();
// More characters than any fraction needs ("4294967295/4294967295" is 21); longer input is
// refused before it is looked at.
constexpr size_t kMaxInputBytes = 64;
// 10^9 < 2^32, so every decimal with at most 9 digits after the point is an exact fraction.
constexpr size_t kMaxDecimalPlaces = 9;
constexpr const char* kAccepted =
    "expected N/D (such as 1/2), a decimal in [0, 1] (such as 0.25), 0 or 1";

__extension__ typedef unsigned __int128 Uint128;

// The input as it can be shown in an error: quoted, bytes that are not printable ASCII escaped,
// and cut after a few dozen characters.
std::string Quote(std::string_view text) {
  constexpr size_t kShown = 32;
  std::string out = "'";
  for (size_t i = 0; i < text.size() && i < kShown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    }
  }
  out += "'";
  if (text.size() > kShown) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

Status Bad(std::string_view text, const std::string& why) {
  return Status::InvalidArgument("fraction " + Quote(text) + ": " + why + "; " + kAccepted);
}

// A non-empty run of decimal digits up to 2^32 - 1 (leading zeros allowed).
Result<uint64_t> ParseTerm(std::string_view whole, std::string_view digits, const char* what) {
  if (digits.empty()) return Error(Bad(whole, std::string(what) + " is missing"));
  uint64_t value = 0;
  for (char c : digits) {
    if (!IsDigit(c)) {
      return Error(Bad(whole, std::string(what) + " is not a decimal integer"));
    }
    value = value * 10 + static_cast<uint64_t>(c - '0');
    if (value > kMaxTerm) {
      return Error(Bad(whole, std::string(what) + " is larger than " + std::to_string(kMaxTerm)));
    }
  }
  return value;
}

Result<Fraction> ParseRatio(std::string_view text, size_t slash) {
  auto num = ParseTerm(text, text.substr(0, slash), "the numerator");
  if (!num.has_value()) return Error(num.error());
  auto den = ParseTerm(text, text.substr(slash + 1), "the denominator");
  if (!den.has_value()) return Error(den.error());
  if (*den == 0) return Error(Bad(text, "the denominator is 0"));
  if (*num > *den) return Error(Bad(text, "it is greater than 1"));
  return MakeFraction(*num, *den);
}

Result<Fraction> ParseDecimal(std::string_view text, size_t point) {
  auto whole = ParseTerm(text, text.substr(0, point), "the integer part");
  if (!whole.has_value()) return Error(whole.error());
  std::string_view places =
      point == std::string_view::npos ? std::string_view() : text.substr(point + 1);
  if (point != std::string_view::npos && places.empty()) {
    return Error(Bad(text, "no digits after the decimal point"));
  }
  for (char c : places) {
    if (!IsDigit(c)) return Error(Bad(text, "the part after the decimal point is not digits"));
  }
  while (!places.empty() && places.back() == '0') places.remove_suffix(1);
  if (places.size() > kMaxDecimalPlaces) {
    return Error(Bad(text, "more than " + std::to_string(kMaxDecimalPlaces) +
                               " significant digits after the decimal point"));
  }
  if (*whole > 1 || (*whole == 1 && !places.empty())) {
    return Error(Bad(text, "it is greater than 1"));
  }
  uint64_t den = 1;
  uint64_t num = *whole;
  for (char c : places) {
    den *= 10;
    num = num * 10 + static_cast<uint64_t>(c - '0');
  }
  return MakeFraction(num, den);
}

Status CheckNeeds(std::span<const ConsumerNeed> consumers) {
  for (size_t i = 0; i < consumers.size(); ++i) {
    const ConsumerNeed& c = consumers[i];
    if (!c.need.valid()) {
      return Status::InvalidArgument("consumer " + std::to_string(i) + ": need " +
                                     std::to_string(c.need.num) + "/" + std::to_string(c.need.den) +
                                     " is not a fraction in [0, 1]");
    }
  }
  return Status::Ok();
}

Status CheckRate(size_t sensor, const char* what, double bps) {
  if (std::isfinite(bps) && bps >= 0) return Status::Ok();
  return Status::InvalidArgument("sensor " + std::to_string(sensor) + ": " + what +
                                 " rate must be a finite number of bits/s >= 0");
}

std::string Mbps(double bps) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", bps / 1e6);
  return text;
}

std::string Percent(double part, double whole) {
  if (whole <= 0) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%%", 100.0 * part / whole);
  return text;
}

}  // namespace

ef_consumer_policy PolicyOf(Fraction keep, ef_drop_mode mode) {
  ef_consumer_policy policy{};
  policy.keep_num = keep.num;
  policy.keep_den = keep.den;
  policy.mode = static_cast<__u8>(mode);
  return policy;
}

ConsumerPlan PlanConsumer(const ConsumerNeed& consumer, Fraction arriving) {
  ConsumerPlan plan;
  if (arriving.num == 0 || consumer.need >= arriving) {
    plan.residual = Fraction::One();  // all that arrives is needed; nothing to take away
  } else {
    // (a/b) / (c/d) = (a*d) / (b*c); each product of two 32-bit terms fits in 64 bits.
    uint64_t num = static_cast<uint64_t>(consumer.need.num) * arriving.den;
    uint64_t den = static_cast<uint64_t>(consumer.need.den) * arriving.num;
    const uint64_t divisor = std::gcd(num, den);
    num /= divisor;
    den /= divisor;
    if (den <= kMaxTerm) {
      plan.residual = {static_cast<uint32_t>(num), static_cast<uint32_t>(den)};
    } else {
      // No exact 32-bit form: round up to a multiple of 1/(2^32 - 1), so the consumer never gets
      // less than it needs. num <= den, so the result is at most 1.
      const Uint128 scaled = static_cast<Uint128>(num) * kMaxTerm;
      const auto rounded = static_cast<uint64_t>((scaled + den - 1) / den);
      const uint64_t common = std::gcd(rounded, kMaxTerm);
      plan.residual = {static_cast<uint32_t>(rounded / common),
                       static_cast<uint32_t>(kMaxTerm / common)};
      plan.exact = false;
    }
  }
  plan.policy = PolicyOf(plan.residual, consumer.mode);
  return plan;
}

Result<Fraction> MakeFraction(uint64_t num, uint64_t den) {
  if (den == 0) return Error(Status::InvalidArgument("a fraction's denominator cannot be 0"));
  if (num > den) {
    return Error(Status::InvalidArgument(std::to_string(num) + "/" + std::to_string(den) +
                                         " is greater than 1"));
  }
  const uint64_t divisor = std::gcd(num, den);  // den > 0, so divisor > 0
  num /= divisor;
  den /= divisor;
  if (den > kMaxTerm) {
    return Error(Status::InvalidArgument(std::to_string(num) + "/" + std::to_string(den) +
                                         " needs more than 32 bits"));
  }
  return Fraction{static_cast<uint32_t>(num), static_cast<uint32_t>(den)};
}

Result<Fraction> ParseFraction(std::string_view text) {
  if (text.empty()) return Error(Bad(text, "it is empty"));
  if (text.size() > kMaxInputBytes) return Error(Bad(text, "it is too long"));
  for (char c : text) {
    if (!IsDigit(c) && c != '/' && c != '.') {
      return Error(Bad(text, "unexpected character " + Quote(std::string_view(&c, 1))));
    }
  }
  const size_t slash = text.find('/');
  const size_t point = text.find('.');
  if (slash != std::string_view::npos) {
    if (point != std::string_view::npos) {
      return Error(Bad(text, "a ratio takes integers, not decimals"));
    }
    if (text.find('/', slash + 1) != std::string_view::npos) {
      return Error(Bad(text, "more than one '/'"));
    }
    return ParseRatio(text, slash);
  }
  if (point != std::string_view::npos && text.find('.', point + 1) != std::string_view::npos) {
    return Error(Bad(text, "more than one decimal point"));
  }
  return ParseDecimal(text, point);
}

std::string FormatFraction(Fraction fraction) {
  if (fraction.den != 0) {
    const uint32_t divisor = std::gcd(fraction.num, fraction.den);
    fraction.num /= divisor;
    fraction.den /= divisor;
  }
  return std::to_string(fraction.num) + "/" + std::to_string(fraction.den);
}

Result<QocPlan> PlanSensor(std::span<const ConsumerNeed> consumers) {
  if (Status s = CheckNeeds(consumers); !s.ok()) return Error(std::move(s));
  QocPlan plan;
  if (consumers.empty()) {
    plan.effective = Fraction::Zero();
    plan.sensor_mode = EF_DROP_FRAME;  // reference pictures only, see PlanSensor in the header
  } else {
    plan.sensor_mode = EF_DROP_PACKET;
    for (const ConsumerNeed& c : consumers) {
      plan.effective = std::max(plan.effective, c.need);
      if (c.mode == EF_DROP_FRAME) plan.sensor_mode = EF_DROP_FRAME;
    }
    // Reduced, whatever the caller's need looked like, since this goes to the sensor as is.
    plan.effective = *MakeFraction(plan.effective.num, plan.effective.den);
  }
  plan.sensor_policy = PolicyOf(plan.effective, plan.sensor_mode);
  plan.consumers.reserve(consumers.size());
  for (const ConsumerNeed& c : consumers) plan.consumers.push_back(PlanConsumer(c, plan.effective));
  return plan;
}

Result<BandwidthModel> ModelBandwidth(std::span<const SensorDemand> sensors) {
  BandwidthModel model;
  model.sensors.reserve(sensors.size());
  for (size_t i = 0; i < sensors.size(); ++i) {
    const SensorDemand& sensor = sensors[i];
    for (auto [what, bps] : {std::pair{"reference", sensor.rates.reference_bps},
                             std::pair{"differential", sensor.rates.differential_bps},
                             std::pair{"other", sensor.rates.other_bps}}) {
      if (Status s = CheckRate(i, what, bps); !s.ok()) return Error(std::move(s));
    }
    auto plan = PlanSensor(sensor.consumers);
    if (!plan.has_value()) {
      return Error(
          Status::InvalidArgument("sensor " + std::to_string(i) + ": " + plan.error().message()));
    }
    SensorBandwidth out;
    out.effective = plan->effective;
    out.consumers = sensor.consumers.size();
    out.full_bps = sensor.rates.full_bps();
    out.effective_bps = sensor.rates.at_quality(plan->effective);
    for (const ConsumerNeed& c : sensor.consumers) {
      out.delivered_bps += sensor.rates.at_quality(c.need);
    }
    const double streams = static_cast<double>(out.consumers);
    model.naive_total_bps += streams * out.full_bps;
    model.replicated_uplink_bps += out.full_bps;
    model.replicated_egress_bps += streams * out.full_bps;
    model.controlled_uplink_bps += out.effective_bps;
    model.controlled_egress_bps += out.delivered_bps;
    model.sensors.push_back(out);
  }
  model.saved_bps = model.replicated_uplink_bps - model.controlled_uplink_bps;
  return model;
}

std::string FormatBandwidthTable(const BandwidthModel& model) {
  struct Row {
    std::string scenario, uplink, egress, relative;
  };
  const std::vector<Row> rows = {
      {"scenario", "uplink Mbit/s", "egress Mbit/s", "uplink vs naive"},
      {"naive: a full stream per consumer (eq. 1)", Mbps(model.naive_total_bps),
       Mbps(model.naive_total_bps), Percent(model.naive_total_bps, model.naive_total_bps)},
      {"edge fan-out, full quality", Mbps(model.replicated_uplink_bps),
       Mbps(model.replicated_egress_bps),
       Percent(model.replicated_uplink_bps, model.naive_total_bps)},
      {"edge fan-out + QoC controller (eq. 3)", Mbps(model.controlled_uplink_bps),
       Mbps(model.controlled_egress_bps),
       Percent(model.controlled_uplink_bps, model.naive_total_bps)},
  };
  size_t widths[4] = {0, 0, 0, 0};
  for (const Row& row : rows) {
    widths[0] = std::max(widths[0], row.scenario.size());
    widths[1] = std::max(widths[1], row.uplink.size());
    widths[2] = std::max(widths[2], row.egress.size());
    widths[3] = std::max(widths[3], row.relative.size());
  }
  // The scenario left-aligned, the numbers right-aligned, two spaces between columns.
  auto pad_left = [](const std::string& s, size_t width) {
    return std::string(width - s.size(), ' ') + s;
  };
  std::string out;
  for (const Row& row : rows) {
    out += row.scenario + std::string(widths[0] - row.scenario.size(), ' ');
    out += "  " + pad_left(row.uplink, widths[1]);
    out += "  " + pad_left(row.egress, widths[2]);
    out += "  " + pad_left(row.relative, widths[3]) + "\n";
  }
  out += "B_saved (eq. 4): " + Mbps(model.saved_bps) + " Mbit/s of the replicated uplink (" +
         Percent(model.saved_bps, model.replicated_uplink_bps) + ")\n";
  return out;
}

}  // namespace edgeflow::fanout
