// The sensor's quality message (fanout/sensor_quality.h): what the edge may send, and what anyone
// on the broker may send instead. Every bad message is refused with a message that says what is
// wrong with it.
#include "fanout/sensor_quality.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace edgeflow::fanout {
namespace {

struct Fraction {
  uint32_t num;
  uint32_t den;
  uint8_t mode;
};

Fraction Parsed(std::string_view message) {
  auto parsed = ParseSensorQuality(message);
  EXPECT_TRUE(parsed.has_value()) << message << ": " << parsed.error().ToString();
  if (!parsed) return {0, 0, 0xFF};
  return {parsed->keep_num, parsed->keep_den, parsed->mode};
}

bool operator==(const Fraction& a, const Fraction& b) {
  return a.num == b.num && a.den == b.den && a.mode == b.mode;
}

void PrintTo(const Fraction& f, std::ostream* os) {
  *os << f.num << "/" << f.den << (f.mode == EF_DROP_FRAME ? " frame" : " packet");
}

// The message is refused, and the error mentions `mentions`.
::testing::AssertionResult Refused(std::string_view message, std::string_view mentions) {
  auto parsed = ParseSensorQuality(message);
  if (parsed) {
    return ::testing::AssertionFailure()
           << "accepted as " << parsed->keep_num << "/" << parsed->keep_den;
  }
  if (!parsed.error().Is(ErrorCode::kInvalidArgument)) {
    return ::testing::AssertionFailure() << "wrong code: " << parsed.error().ToString();
  }
  if (parsed.error().message().find(mentions) == std::string::npos) {
    return ::testing::AssertionFailure() << "the error \"" << parsed.error().message()
                                         << "\" does not mention \"" << mentions << "\"";
  }
  return ::testing::AssertionSuccess();
}

TEST(SensorQualityTest, FractionsAndModes) {
  EXPECT_EQ(Parsed(R"({"keep": "1/2", "mode": "frame"})"), (Fraction{1, 2, EF_DROP_FRAME}));
  EXPECT_EQ(Parsed(R"({"keep":"3/4","mode":"packet"})"), (Fraction{3, 4, EF_DROP_PACKET}));
  EXPECT_EQ(Parsed(R"({"keep":"0/1"})"), (Fraction{0, 1, EF_DROP_FRAME}));  // frame by default
  EXPECT_EQ(Parsed(R"({"keep":"5/5"})"), (Fraction{1, 1, EF_DROP_FRAME}));
  EXPECT_EQ(Parsed(R"({"keep":"2/6"})"), (Fraction{1, 3, EF_DROP_FRAME}));  // reduced
  EXPECT_EQ(Parsed(R"({"keep":"4294967295/4294967295"})"), (Fraction{1, 1, EF_DROP_FRAME}));
  EXPECT_EQ(Parsed(R"({"keep":"1/4294967295"})"), (Fraction{1, 4294967295u, EF_DROP_FRAME}));
}

TEST(SensorQualityTest, NumbersAreReadAsTheDecimalsTheyAre) {
  EXPECT_EQ(Parsed(R"({"keep":0.5})"), (Fraction{1, 2, EF_DROP_FRAME}));
  EXPECT_EQ(Parsed(R"({"keep":0.25,"mode":"packet"})"), (Fraction{1, 4, EF_DROP_PACKET}));
  EXPECT_EQ(Parsed(R"({"keep":0.333})"), (Fraction{333, 1000, EF_DROP_FRAME}));
  EXPECT_EQ(Parsed(R"({"keep":1})"), (Fraction{1, 1, EF_DROP_FRAME}));
  EXPECT_EQ(Parsed(R"({"keep":0})"), (Fraction{0, 1, EF_DROP_FRAME}));
  EXPECT_EQ(Parsed(R"({"keep":-0})"), (Fraction{0, 1, EF_DROP_FRAME}));
  EXPECT_EQ(Parsed(R"({"keep":1.0})"), (Fraction{1, 1, EF_DROP_FRAME}));
  EXPECT_EQ(Parsed(R"({"keep":1e-1})"), (Fraction{1, 10, EF_DROP_FRAME}));
  EXPECT_EQ(Parsed(R"({"keep":0.0004})"), (Fraction{1, 2500, EF_DROP_FRAME}));
  // The same grammar as a string, as users type fractions everywhere.
  EXPECT_EQ(Parsed(R"({"keep":"0.5"})"), (Fraction{1, 2, EF_DROP_FRAME}));
  EXPECT_EQ(Parsed(R"({"keep":"1"})"), (Fraction{1, 1, EF_DROP_FRAME}));
}

TEST(SensorQualityTest, OtherFieldsAreIgnored) {
  EXPECT_EQ(Parsed(R"({"keep":"1/2","mode":"frame","reason":"cpu","consumers":[1,2,{"a":null}]})"),
            (Fraction{1, 2, EF_DROP_FRAME}));
  EXPECT_EQ(Parsed(" \n{\"mode\":\"packet\",\t\"keep\":\"1/3\"}  "),
            (Fraction{1, 3, EF_DROP_PACKET}));
}

TEST(SensorQualityTest, NotJsonOrNotAnObject) {
  EXPECT_TRUE(Refused("", "not JSON"));
  EXPECT_TRUE(Refused("keep=1/2", "not JSON"));
  EXPECT_TRUE(Refused(R"({"keep":"1/2")", "not JSON"));  // truncated
  EXPECT_TRUE(Refused(R"({"keep":"1/2",})", "not JSON"));
  EXPECT_TRUE(Refused(R"({"keep":"1/2"} {"keep":"1/1"})", "not JSON"));
  EXPECT_TRUE(Refused(std::string("{\"keep\":\"1/2\"}\0", 15), "NUL byte"));
  EXPECT_TRUE(Refused(std::string("{\"keep\":\"1/2\"}\0{\"keep\":\"0/1\"}", 29), "NUL byte"));
  EXPECT_TRUE(Refused("\xff\xfe{}", "not JSON"));
  EXPECT_TRUE(Refused(R"(["keep","1/2"])", "JSON object, not an array"));
  EXPECT_TRUE(Refused(R"("1/2")", "JSON object, not a string"));
  EXPECT_TRUE(Refused("0.5", "JSON object, not a number"));
  EXPECT_TRUE(Refused("null", "JSON object, not null"));
}

TEST(SensorQualityTest, KeepMissingOrOfTheWrongType) {
  EXPECT_TRUE(Refused("{}", "without \"keep\""));
  EXPECT_TRUE(Refused(R"({"mode":"frame"})", "without \"keep\""));
  EXPECT_TRUE(Refused(R"({"Keep":"1/2"})", "without \"keep\""));
  EXPECT_TRUE(Refused(R"({"keep":null})", "not null"));
  EXPECT_TRUE(Refused(R"({"keep":true})", "not a boolean"));
  EXPECT_TRUE(Refused(R"({"keep":["1/2"]})", "not an array"));
  EXPECT_TRUE(Refused(R"({"keep":{"num":1,"den":2}})", "not an object"));
  EXPECT_TRUE(Refused(R"({"keep":""})", "it is empty"));
}

TEST(SensorQualityTest, FractionsThatAreNotFractions) {
  EXPECT_TRUE(Refused(R"({"keep":"1/0"})", "denominator is 0"));
  EXPECT_TRUE(Refused(R"({"keep":"0/0"})", "denominator is 0"));
  EXPECT_TRUE(Refused(R"({"keep":"3/2"})", "greater than 1"));
  EXPECT_TRUE(Refused(R"({"keep":"-1/2"})", "unexpected character"));
  EXPECT_TRUE(Refused(R"({"keep":"1/-2"})", "unexpected character"));
  EXPECT_TRUE(Refused(R"({"keep":"+1/2"})", "unexpected character"));
  EXPECT_TRUE(Refused(R"({"keep":" 1/2"})", "unexpected character"));
  EXPECT_TRUE(Refused(R"({"keep":"1 / 2"})", "unexpected character"));
  EXPECT_TRUE(Refused(R"({"keep":"1/2/3"})", "more than one '/'"));
  EXPECT_TRUE(Refused(R"({"keep":"/2"})", "numerator is missing"));
  EXPECT_TRUE(Refused(R"({"keep":"1/"})", "denominator is missing"));
  EXPECT_TRUE(Refused(R"({"keep":"0.5/1"})", "not decimals"));
  EXPECT_TRUE(Refused(R"({"keep":"0x1/0x2"})", "unexpected character"));
  EXPECT_TRUE(Refused(R"({"keep":"1/2\u0000"})", "unexpected character"));
}

TEST(SensorQualityTest, HugeAndNegativeNumbers) {
  EXPECT_TRUE(Refused(R"({"keep":"4294967296/4294967297"})", "larger than 4294967295"));
  EXPECT_TRUE(Refused(R"({"keep":"1/99999999999999999999999999999"})", "larger than 4294967295"));
  EXPECT_TRUE(Refused(R"({"keep":2})", "greater than 1"));
  EXPECT_TRUE(Refused(R"({"keep":18446744073709551615})", "larger than 4294967295"));
  EXPECT_TRUE(Refused(R"({"keep":-1})", "unexpected character '-'"));
  EXPECT_TRUE(Refused(R"({"keep":-9223372036854775808})", "unexpected character '-'"));
  EXPECT_TRUE(Refused(R"({"keep":1.0001})", "greater than 1"));
  EXPECT_TRUE(Refused(R"({"keep":-0.5})", "unexpected character '-'"));
  // Beyond a double's range the JSON parser itself refuses the number.
  EXPECT_TRUE(Refused(R"({"keep":1e400})", "not JSON"));
  EXPECT_TRUE(Refused(R"({"keep":-1e400})", "not JSON"));
  EXPECT_TRUE(Refused(R"({"keep":99999999999999999999999999999})", "in [0, 1]"));
}

TEST(SensorQualityTest, BadModes) {
  EXPECT_TRUE(
      Refused(R"({"keep":"1/2","mode":"frames"})", "use frame (drop whole pictures) or packet"));
  EXPECT_TRUE(
      Refused(R"({"keep":"1/2","mode":"FRAME"})", "use frame (drop whole pictures) or packet"));
  EXPECT_TRUE(Refused(R"({"keep":"1/2","mode":""})", "use frame (drop whole pictures) or packet"));
  EXPECT_TRUE(Refused(R"({"keep":"1/2","mode":1})", "not a number"));
  EXPECT_TRUE(Refused(R"({"keep":"1/2","mode":null})", "not null"));
}

TEST(SensorQualityTest, LargeAndDeepMessagesAreRefusedCheaply) {
  // A megabyte: refused by its size before any parsing.
  std::string huge = R"({"keep":"1/2","padding":")";
  huge.append(1 << 20, 'x');
  huge += "\"}";
  EXPECT_TRUE(Refused(huge, "at most 4096"));
  // Just under the limit, it is read (other fields are ignored).
  std::string large = R"({"keep":"1/2","padding":")";
  large.append(kMaxSensorQualityBytes - large.size() - 2, 'x');
  large += "\"}";
  ASSERT_EQ(large.size(), kMaxSensorQualityBytes);
  EXPECT_EQ(Parsed(large), (Fraction{1, 2, EF_DROP_FRAME}));
  // Nesting as deep as the size allows.
  std::string deep(kMaxSensorQualityBytes / 2, '[');
  deep += std::string(kMaxSensorQualityBytes / 2, ']');
  EXPECT_TRUE(Refused(deep, "not an array"));
  EXPECT_TRUE(Refused(std::string(kMaxSensorQualityBytes, '['), "not JSON"));
  // An error quotes the message shortly, with unprintable bytes replaced.
  auto refused = ParseSensorQuality(std::string(1000, '\x01'));
  ASSERT_FALSE(refused.has_value());
  EXPECT_LT(refused.error().message().size(), 120u) << refused.error().message();
}

TEST(SensorQualityTest, WrittenMessagesReadBack) {
  for (const Fraction f : {Fraction{1, 2, EF_DROP_FRAME}, Fraction{0, 1, EF_DROP_PACKET},
                           Fraction{7, 1000, EF_DROP_FRAME}}) {
    ef_consumer_policy policy = FullQuality();
    policy.keep_num = f.num;
    policy.keep_den = f.den;
    policy.mode = f.mode;
    EXPECT_EQ(Parsed(SensorQualityJson(policy)), f);
  }
  EXPECT_EQ(SensorQualityJson(FullQuality()), R"({"keep":"1/1","mode":"frame"})");
}

TEST(SensorQualityTest, CommandLineKeepText) {
  ef_consumer_policy policy = FullQuality();
  ASSERT_TRUE(ParseKeepFraction("1/2", &policy).ok());
  EXPECT_EQ(KeepText(policy), "1/2");
  ASSERT_TRUE(ParseKeepFraction("0.75", &policy).ok());
  EXPECT_EQ(KeepText(policy), "3/4");
  ASSERT_TRUE(ParseKeepFraction("1", &policy).ok());
  EXPECT_EQ(KeepText(policy), "1/1");
  for (const char* bad : {"", "half", "1/0", "2/1", "1.5", "-0.1", "nan", "inf", "1/2 "}) {
    SCOPED_TRACE(bad);
    const Status status = ParseKeepFraction(bad, &policy);
    EXPECT_TRUE(status.Is(ErrorCode::kInvalidArgument)) << status.ToString();
    EXPECT_EQ(KeepText(policy), "1/1");  // untouched
  }
  ASSERT_TRUE(ParseDropMode("packet", &policy).ok());
  EXPECT_EQ(DropModeName(policy), "packet");
  EXPECT_FALSE(ParseDropMode("both", &policy).ok());
  EXPECT_EQ(DropModeName(policy), "packet");
}

}  // namespace
}  // namespace edgeflow::fanout
