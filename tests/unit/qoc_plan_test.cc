// The QoC controller's arithmetic (src/fanout/qoc_plan.h): fractions as users type them (and
// what they must not be able to type), the sensor's effective quality as the union of its
// consumers' needs, residual edge suppressions that compose back to each need exactly, the drop
// modes, and the bandwidth model on an example computed by hand.
#include "fanout/qoc_plan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

namespace edgeflow::fanout {
namespace {

__extension__ typedef unsigned __int128 Uint128;

constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();

ConsumerNeed Need(uint32_t num, uint32_t den, ef_drop_mode mode = EF_DROP_PACKET) {
  return ConsumerNeed{Fraction{num, den}, mode};
}

// Q_eff * residual == need, exactly (terms up to 2^32, products up to 2^64 each side).
bool ComposesExactly(Fraction effective, Fraction residual, Fraction need) {
  const Uint128 left =
      static_cast<Uint128>(static_cast<uint64_t>(effective.num) * residual.num) * need.den;
  const Uint128 right =
      static_cast<Uint128>(static_cast<uint64_t>(effective.den) * residual.den) * need.num;
  return left == right;
}

bool Reduced(Fraction f) { return std::gcd(f.num, f.den) == 1; }

TEST(QocFractionTest, ParsesTheFormsUsersWrite) {
  struct Case {
    const char* text;
    uint32_t num, den;
  };
  for (const Case& c : std::vector<Case>{
           {"1/2", 1, 2},
           {"2/4", 1, 2},
           {"0/7", 0, 1},
           {"7/7", 1, 1},
           {"00003/0004", 3, 4},
           {"4294967295/4294967295", 1, 1},
           {"1/4294967295", 1, kMax},
           {"4294967294/4294967295", 4294967294u, kMax},
           {"0", 0, 1},
           {"1", 1, 1},
           {"0.25", 1, 4},
           {"0.5", 1, 2},
           {"1.0", 1, 1},
           {"1.000000000000", 1, 1},
           {"0.000", 0, 1},
           {"0.123456789", 123456789, 1000000000},
           {"0.5000000000000000000", 1, 2},  // trailing zeros are not significant
           {"0.000000001", 1, 1000000000},
       }) {
    auto parsed = ParseFraction(c.text);
    ASSERT_TRUE(parsed.has_value()) << c.text << ": " << parsed.error().ToString();
    EXPECT_EQ(parsed->num, c.num) << c.text;
    EXPECT_EQ(parsed->den, c.den) << c.text;
  }
}

TEST(QocFractionTest, RefusesHostileInputWithAClearError) {
  const std::string nul_inside("1\0/2", 4);
  const std::string very_long(5000, '1');
  struct Case {
    std::string text;
    const char* why;  // a piece of the expected message
  };
  for (const Case& c : std::vector<Case>{
           {"", "empty"},
           {" 1/2", "unexpected character ' '"},
           {"1/2 ", "unexpected character ' '"},
           {"1/2\n", "unexpected character '\\x0a'"},
           {"-1/2", "unexpected character '-'"},
           {"+1/2", "unexpected character '+'"},
           {"-0", "unexpected character '-'"},
           {"1e-1", "unexpected character 'e'"},
           {"0x1/2", "unexpected character 'x'"},
           {"50%", "unexpected character '%'"},
           {"nan", "unexpected character 'n'"},
           {"inf", "unexpected character 'i'"},
           {"0,5", "unexpected character ','"},
           {"\xc2\xbd", "unexpected character '\\xc2'"},  // the one-character 1/2
           {nul_inside, "unexpected character '\\x00'"},
           {"1/0", "denominator is 0"},
           {"0/0", "denominator is 0"},
           {"3/2", "greater than 1"},
           {"2", "greater than 1"},
           {"1.5", "greater than 1"},
           {"1.000000001", "greater than 1"},
           {"10.0", "greater than 1"},
           {"1/2/3", "more than one '/'"},
           {"1//2", "more than one '/'"},
           {"/2", "numerator is missing"},
           {"1/", "denominator is missing"},
           {"/", "numerator is missing"},
           {"1.2/3", "not decimals"},
           {"0..5", "more than one decimal point"},
           {".5", "integer part is missing"},
           {"1.", "no digits after the decimal point"},
           {".", "integer part is missing"},
           {"0.1234567891", "more than 9"},
           {"1/4294967296", "denominator is larger than 4294967295"},
           {"4294967296/4294967296", "numerator is larger than 4294967295"},
           {"99999999999999999999999999/1", "numerator is larger than 4294967295"},
           {"1/99999999999999999999999999", "denominator is larger than 4294967295"},
           {very_long, "too long"},
       }) {
    auto parsed = ParseFraction(c.text);
    ASSERT_FALSE(parsed.has_value()) << "accepted " << c.text;
    EXPECT_EQ(parsed.error().code(), ErrorCode::kInvalidArgument);
    const std::string& message = parsed.error().message();
    EXPECT_NE(message.find(c.why), std::string::npos) << message;
    // Every error shows what is accepted.
    EXPECT_NE(message.find("expected N/D"), std::string::npos) << message;
    // The input is quoted without raw control bytes, and cut when long.
    for (char ch : message) EXPECT_GE(static_cast<unsigned char>(ch), 0x20) << message;
    EXPECT_LT(message.size(), 300u) << message;
  }
}

TEST(QocFractionTest, FormatsWhatParseReadsBack) {
  EXPECT_EQ(FormatFraction({1, 2}), "1/2");
  EXPECT_EQ(FormatFraction({0, 1}), "0/1");
  EXPECT_EQ(FormatFraction({1, 1}), "1/1");
  EXPECT_EQ(FormatFraction({6, 8}), "3/4");  // reduced even when given unreduced
  EXPECT_EQ(FormatFraction({0, 9}), "0/1");
  for (Fraction f :
       {Fraction{1, 3}, Fraction{2, 3}, Fraction{0, 1}, Fraction{1, 1}, Fraction{1, kMax},
        Fraction{kMax - 1, kMax}, Fraction{123456789, 1000000000}}) {
    auto back = ParseFraction(FormatFraction(f));
    ASSERT_TRUE(back.has_value()) << FormatFraction(f);
    EXPECT_EQ(back->num, f.num);
    EXPECT_EQ(back->den, f.den);
  }
}

TEST(QocFractionTest, MakesReducedFractionsAndComparesByValue) {
  auto half = MakeFraction(uint64_t{2} * kMax, uint64_t{4} * kMax);  // terms beyond 32 bits
  ASSERT_TRUE(half.has_value());
  EXPECT_EQ(half->num, 1u);
  EXPECT_EQ(half->den, 2u);
  EXPECT_EQ(MakeFraction(0, 12)->den, 1u);
  EXPECT_FALSE(MakeFraction(1, 0).has_value());
  EXPECT_FALSE(MakeFraction(3, 2).has_value());
  EXPECT_FALSE(MakeFraction(1, uint64_t{1} << 33).has_value());  // no 32-bit form

  EXPECT_EQ((Fraction{1, 2}), (Fraction{2, 4}));
  EXPECT_LT((Fraction{1, 3}), (Fraction{1, 2}));
  EXPECT_LT((Fraction{kMax - 1, kMax}), Fraction::One());
  EXPECT_LT(Fraction::Zero(), (Fraction{1, kMax}));
  EXPECT_EQ(Fraction::Zero(), (Fraction{0, 5}));
  EXPECT_FALSE((Fraction{1, 0}).valid());
  EXPECT_FALSE((Fraction{2, 1}).valid());
}

TEST(QocPlanTest, TheSensorSendsTheUnionOfTheNeeds) {
  const std::vector<ConsumerNeed> consumers = {Need(1, 4), Need(3, 4), Need(1, 2), Need(0, 1)};
  auto plan = PlanSensor(consumers);
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  EXPECT_EQ(plan->effective.num, 3u);
  EXPECT_EQ(plan->effective.den, 4u);
  EXPECT_EQ(plan->sensor_mode, EF_DROP_PACKET);
  EXPECT_EQ(plan->sensor_policy.keep_num, 3u);
  EXPECT_EQ(plan->sensor_policy.keep_den, 4u);
  EXPECT_EQ(plan->sensor_policy.mode, EF_DROP_PACKET);
  ASSERT_EQ(plan->consumers.size(), 4u);
  const Fraction expected[] = {{1, 3}, {1, 1}, {2, 3}, {0, 1}};
  for (size_t i = 0; i < 4; ++i) {
    const ConsumerPlan& c = plan->consumers[i];
    EXPECT_EQ(c.residual.num, expected[i].num) << i;
    EXPECT_EQ(c.residual.den, expected[i].den) << i;
    EXPECT_TRUE(c.exact);
    EXPECT_EQ(c.policy.keep_num, expected[i].num);
    EXPECT_EQ(c.policy.keep_den, expected[i].den);
  }
}

TEST(QocPlanTest, ResidualsComposeBackToEachNeedExactly) {
  // Every pair of needs with denominators up to 12, and a third consumer that needs everything
  // half the time: each residual is reduced, at most 1, and Q_eff * residual == need.
  std::vector<Fraction> fractions;
  for (uint32_t den = 1; den <= 12; ++den) {
    for (uint32_t num = 0; num <= den; ++num) fractions.push_back({num, den});
  }
  size_t checked = 0;
  for (Fraction a : fractions) {
    for (Fraction b : fractions) {
      std::vector<ConsumerNeed> consumers = {ConsumerNeed{a, EF_DROP_PACKET},
                                             ConsumerNeed{b, EF_DROP_FRAME}};
      if (checked % 2 == 0) consumers.push_back(Need(1, 1));
      auto plan = PlanSensor(consumers);
      ASSERT_TRUE(plan.has_value());
      EXPECT_EQ(plan->effective, std::max({a, b, checked % 2 == 0 ? Fraction::One() : a}));
      EXPECT_TRUE(Reduced(plan->effective));
      for (size_t i = 0; i < consumers.size(); ++i) {
        const ConsumerPlan& c = plan->consumers[i];
        ASSERT_TRUE(c.exact);
        EXPECT_TRUE(c.residual.valid());
        EXPECT_TRUE(Reduced(c.residual)) << FormatFraction(c.residual);
        if (plan->effective.num == 0) {
          EXPECT_EQ(c.residual, Fraction::One());
        } else {
          EXPECT_TRUE(ComposesExactly(plan->effective, c.residual, consumers[i].need))
              << FormatFraction(plan->effective) << " x " << FormatFraction(c.residual)
              << " != " << FormatFraction(consumers[i].need);
        }
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, fractions.size() * fractions.size());
}

TEST(QocPlanTest, OneFrameModeConsumerMakesTheSensorCutWholePictures) {
  const std::vector<ConsumerNeed> consumers = {Need(3, 4, EF_DROP_PACKET),
                                               Need(1, 4, EF_DROP_FRAME)};
  auto plan = PlanSensor(consumers);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->sensor_mode, EF_DROP_FRAME);
  EXPECT_EQ(plan->sensor_policy.mode, EF_DROP_FRAME);
  // Each consumer keeps its own mode at the edge.
  EXPECT_EQ(plan->consumers[0].policy.mode, EF_DROP_PACKET);
  EXPECT_EQ(plan->consumers[1].policy.mode, EF_DROP_FRAME);
  EXPECT_EQ(plan->consumers[1].residual, (Fraction{1, 3}));

  const std::vector<ConsumerNeed> all_packet = {Need(1, 2), Need(1, 3)};
  EXPECT_EQ(PlanSensor(all_packet)->sensor_mode, EF_DROP_PACKET);
  const std::vector<ConsumerNeed> all_frame = {Need(1, 2, EF_DROP_FRAME)};
  EXPECT_EQ(PlanSensor(all_frame)->sensor_mode, EF_DROP_FRAME);
}

TEST(QocPlanTest, WithoutConsumersOnlyReferencePicturesAreSent) {
  auto plan = PlanSensor({});
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->effective, Fraction::Zero());
  EXPECT_EQ(plan->sensor_policy.keep_num, 0u);
  EXPECT_EQ(plan->sensor_policy.keep_den, 1u);
  EXPECT_EQ(plan->sensor_policy.mode, EF_DROP_FRAME);
  EXPECT_TRUE(plan->consumers.empty());
}

TEST(QocPlanTest, ConsumersThatNeedNoDifferentialDataGetEverythingThatArrives) {
  const std::vector<ConsumerNeed> consumers = {Need(0, 1), Need(0, 9, EF_DROP_FRAME)};
  auto plan = PlanSensor(consumers);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->effective.num, 0u);
  EXPECT_EQ(plan->effective.den, 1u);  // reduced, though a consumer wrote 0/9
  EXPECT_EQ(plan->sensor_mode, EF_DROP_FRAME);
  for (const ConsumerPlan& c : plan->consumers) {
    EXPECT_EQ(c.residual.num, 1u);
    EXPECT_EQ(c.residual.den, 1u);
    EXPECT_EQ(c.policy.keep_num, 1u);
    EXPECT_EQ(c.policy.keep_den, 1u);
  }
}

TEST(QocPlanTest, ExtremeFractions) {
  {
    // The smallest need next to everything: the residual is the need itself.
    const std::vector<ConsumerNeed> consumers = {Need(1, kMax), Need(1, 1)};
    auto plan = PlanSensor(consumers);
    ASSERT_TRUE(plan.has_value());
    EXPECT_EQ(plan->consumers[0].residual, (Fraction{1, kMax}));
    EXPECT_TRUE(plan->consumers[0].exact);
  }
  {
    // Unreduced 32-bit terms, 64-bit intermediate products: (kMax-1)/kMax of (kMax)/kMax.
    const std::vector<ConsumerNeed> consumers = {Need(kMax - 1, kMax), Need(kMax, kMax)};
    auto plan = PlanSensor(consumers);
    ASSERT_TRUE(plan.has_value());
    EXPECT_EQ(plan->effective.num, 1u);
    EXPECT_EQ(plan->effective.den, 1u);
    EXPECT_EQ(plan->consumers[0].residual.num, kMax - 1);
    EXPECT_EQ(plan->consumers[0].residual.den, kMax);
    EXPECT_EQ(plan->consumers[1].residual, Fraction::One());
  }
  {
    // Two needs with large coprime denominators (both prime): need / Q_eff has no 32-bit
    // denominator. The residual is rounded up, never down, by less than 1/(2^32 - 1).
    constexpr uint32_t kPrimeA = 4294967291u;
    constexpr uint32_t kPrimeB = 4294967279u;
    const std::vector<ConsumerNeed> consumers = {Need(1, kPrimeA), Need(2, kPrimeB)};
    auto plan = PlanSensor(consumers);
    ASSERT_TRUE(plan.has_value());
    EXPECT_EQ(plan->effective, (Fraction{2, kPrimeB}));
    EXPECT_TRUE(plan->consumers[1].exact);
    EXPECT_EQ(plan->consumers[1].residual, Fraction::One());
    const ConsumerPlan& inexact = plan->consumers[0];
    EXPECT_FALSE(inexact.exact);
    EXPECT_TRUE(inexact.residual.valid());
    EXPECT_TRUE(Reduced(inexact.residual));
    // The exact residual is kPrimeB / (2 * kPrimeA). The rounded one is r / kMax with r the
    // smallest integer such that r / kMax >= exact.
    const uint64_t exact_num = kPrimeB;
    const uint64_t exact_den = uint64_t{2} * kPrimeA;
    ASSERT_EQ(kMax % inexact.residual.den, 0u);
    const uint64_t r = uint64_t{inexact.residual.num} * (kMax / inexact.residual.den);
    EXPECT_GE(static_cast<Uint128>(r) * exact_den, static_cast<Uint128>(exact_num) * kMax);
    EXPECT_LT(static_cast<Uint128>(r - 1) * exact_den, static_cast<Uint128>(exact_num) * kMax);
  }
}

TEST(QocPlanTest, RefusesNeedsThatAreNotFractions) {
  for (const ConsumerNeed& bad : {Need(1, 0), Need(3, 2), Need(0, 0)}) {
    const std::vector<ConsumerNeed> consumers = {Need(1, 2), bad};
    auto plan = PlanSensor(consumers);
    ASSERT_FALSE(plan.has_value());
    EXPECT_EQ(plan.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(plan.error().message().find("consumer 1"), std::string::npos)
        << plan.error().message();
  }
}

// Three sensors, in Mbit/s:
//   A: reference 1, differential 4, other 0.5 (full 5.5); consumers 1/2, 1/4 (frame), 0/1.
//      Q_eff = 1/2 -> S(Q_eff) = 1.5 + 2 = 3.5; delivered 3.5 + 2.5 + 1.5 = 7.5.
//   B: reference 2, differential 2 (full 4); one consumer 1/1 -> S = 4; delivered 4.
//   C: reference 1, differential 3 (full 4); no consumers -> Q_eff = 0, S = 1; delivered 0.
// Naive (eq. 1): 3 x 5.5 + 1 x 4 + 0 x 4 = 20.5. Replicated: uplink 5.5 + 4 + 4 = 13.5,
// egress 20.5. Controlled: uplink 3.5 + 4 + 1 = 8.5 (eq. 3), egress 7.5 + 4 = 11.5.
// Saved (eq. 4): 13.5 - 8.5 = 5.
std::vector<SensorDemand> HandComputedExample() {
  constexpr double kMbps = 1e6;
  return {
      SensorDemand{StreamRates{1 * kMbps, 4 * kMbps, 0.5 * kMbps},
                   {Need(1, 2), Need(1, 4, EF_DROP_FRAME), Need(0, 1)}},
      SensorDemand{StreamRates{2 * kMbps, 2 * kMbps, 0}, {Need(1, 1)}},
      SensorDemand{StreamRates{1 * kMbps, 3 * kMbps, 0}, {}},
  };
}

TEST(QocBandwidthTest, TheHandComputedExample) {
  auto model = ModelBandwidth(HandComputedExample());
  ASSERT_TRUE(model.has_value()) << model.error().ToString();
  EXPECT_DOUBLE_EQ(model->naive_total_bps, 20.5e6);
  EXPECT_DOUBLE_EQ(model->replicated_uplink_bps, 13.5e6);
  EXPECT_DOUBLE_EQ(model->replicated_egress_bps, 20.5e6);
  EXPECT_DOUBLE_EQ(model->controlled_uplink_bps, 8.5e6);
  EXPECT_DOUBLE_EQ(model->controlled_egress_bps, 11.5e6);
  EXPECT_DOUBLE_EQ(model->saved_bps, 5e6);
  ASSERT_EQ(model->sensors.size(), 3u);
  EXPECT_EQ(model->sensors[0].effective, (Fraction{1, 2}));
  EXPECT_DOUBLE_EQ(model->sensors[0].effective_bps, 3.5e6);
  EXPECT_DOUBLE_EQ(model->sensors[0].delivered_bps, 7.5e6);
  EXPECT_EQ(model->sensors[0].consumers, 3u);
  EXPECT_EQ(model->sensors[2].effective, Fraction::Zero());
  EXPECT_DOUBLE_EQ(model->sensors[2].effective_bps, 1e6);
  EXPECT_DOUBLE_EQ(model->sensors[2].full_bps, 4e6);

  // Column by column: the scenario, the uplink, the egress, the uplink relative to the naive one.
  EXPECT_EQ(FormatBandwidthTable(*model),
            "scenario                                 "
            "  uplink Mbit/s  egress Mbit/s  uplink vs naive\n"
            "naive: a full stream per consumer (eq. 1)"
            "         20.500         20.500           100.0%\n"
            "edge fan-out, full quality               "
            "         13.500         20.500            65.9%\n"
            "edge fan-out + QoC controller (eq. 3)    "
            "          8.500         11.500            41.5%\n"
            "B_saved (eq. 4): 5.000 Mbit/s of the replicated uplink (37.0%)\n");
}

TEST(QocBandwidthTest, EquationOneWithTheSameConsumersForEverySensor) {
  // The paper's form: M consumers of every sensor -> B_total = M * sum S_i(full).
  std::vector<SensorDemand> sensors(2);
  sensors[0].rates = {1e6, 3e6, 0};
  sensors[1].rates = {2e6, 2e6, 1e6};
  for (SensorDemand& s : sensors) s.consumers = {Need(1, 1), Need(1, 1), Need(1, 1)};
  auto model = ModelBandwidth(sensors);
  ASSERT_TRUE(model.has_value());
  EXPECT_DOUBLE_EQ(model->naive_total_bps, 3 * (4e6 + 5e6));
  // Everyone needs everything: the controller saves nothing.
  EXPECT_DOUBLE_EQ(model->saved_bps, 0);
  EXPECT_DOUBLE_EQ(model->controlled_egress_bps, model->replicated_egress_bps);
}

TEST(QocBandwidthTest, RefusesRatesThatAreNotRates) {
  for (double bad : {-1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    std::vector<SensorDemand> sensors = HandComputedExample();
    sensors[1].rates.other_bps = bad;
    auto model = ModelBandwidth(sensors);
    ASSERT_FALSE(model.has_value()) << bad;
    EXPECT_EQ(model.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(model.error().message().find("sensor 1: other"), std::string::npos)
        << model.error().message();
  }
  std::vector<SensorDemand> sensors = HandComputedExample();
  sensors[2].consumers.push_back(Need(2, 1));
  auto model = ModelBandwidth(sensors);
  ASSERT_FALSE(model.has_value());
  EXPECT_NE(model.error().message().find("sensor 2: consumer 0"), std::string::npos)
      << model.error().message();
}

TEST(QocBandwidthTest, NoSensors) {
  auto model = ModelBandwidth({});
  ASSERT_TRUE(model.has_value());
  EXPECT_EQ(model->naive_total_bps, 0);
  EXPECT_EQ(model->saved_bps, 0);
  const std::string table = FormatBandwidthTable(*model);
  EXPECT_NE(table.find("B_saved (eq. 4): 0.000 Mbit/s"), std::string::npos) << table;
  EXPECT_NE(table.find(" -\n"), std::string::npos) << table;  // no percentage of nothing
}

}  // namespace
}  // namespace edgeflow::fanout
