#include "api/resp_parser.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "api/resp_integer.h"

namespace edgeflow::api {
namespace {

using Outcome = RespParser::Outcome;
using Args = std::vector<std::string>;

struct Parsed {
  std::vector<Args> commands;  // including empty ones
  Outcome last = Outcome::kNeedMore;
  std::string error;
  size_t leftover = 0;  // bytes not consumed at the end
};

// Parses everything in `input`, as one buffer.
Parsed ParseAll(std::string_view input, RespParserLimits limits = {}) {
  RespParser parser(limits);
  Parsed out;
  size_t offset = 0;
  for (;;) {
    out.last = parser.Parse(input.substr(offset));
    if (out.last != Outcome::kCommand) break;
    out.commands.emplace_back(parser.args().begin(), parser.args().end());
    EXPECT_GT(parser.consumed(), 0u);
    offset += parser.consumed();
  }
  out.error = parser.error();
  out.leftover = input.size() - offset;
  return out;
}

// Feeds `input` cut in two at `cut`, copying the pending bytes to a new buffer before each call
// the way a connection compacts its read buffer.
Parsed ParseSplit(std::string_view input, size_t cut, RespParserLimits limits = {}) {
  RespParser parser(limits);
  Parsed out;
  std::string pending;
  for (std::string_view part : {input.substr(0, cut), input.substr(cut)}) {
    pending.append(part);
    for (;;) {
      std::string buffer = pending;  // a different address every time
      out.last = parser.Parse(buffer);
      if (out.last != Outcome::kCommand) break;
      out.commands.emplace_back(parser.args().begin(), parser.args().end());
      pending = buffer.substr(parser.consumed());
    }
    if (out.last == Outcome::kError) break;
  }
  out.error = parser.error();
  out.leftover = pending.size();
  return out;
}

std::string Multibulk(const Args& args) {
  std::string s = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return s;
}

TEST(RespParserTest, ParsesOneMultibulkCommand) {
  RespParser parser;
  const std::string input = Multibulk({"SET", "key", "value"});
  ASSERT_EQ(parser.Parse(input), Outcome::kCommand);
  EXPECT_EQ(parser.consumed(), input.size());
  ASSERT_EQ(parser.args().size(), 3u);
  EXPECT_EQ(parser.args()[0], "SET");
  EXPECT_EQ(parser.args()[1], "key");
  EXPECT_EQ(parser.args()[2], "value");
  // Zero-copy: the value points into the input.
  EXPECT_GE(parser.args()[2].data(), input.data());
  EXPECT_LT(parser.args()[2].data(), input.data() + input.size());
}

TEST(RespParserTest, BulkStringsAreBinarySafe) {
  const std::string value("a\r\nb\0c$*\n", 9);
  const Parsed p = ParseAll(Multibulk({"SET", "k", value}));
  ASSERT_EQ(p.commands.size(), 1u);
  EXPECT_EQ(p.commands[0][2], value);
  EXPECT_EQ(p.last, Outcome::kNeedMore);
}

TEST(RespParserTest, EmptyBulkAndEmptyCommands) {
  const Parsed p = ParseAll("*0\r\n*-1\r\n*2\r\n$4\r\nMGET\r\n$0\r\n\r\n");
  ASSERT_EQ(p.commands.size(), 3u);
  EXPECT_TRUE(p.commands[0].empty());
  EXPECT_TRUE(p.commands[1].empty());
  EXPECT_EQ(p.commands[2], (Args{"MGET", ""}));
  EXPECT_EQ(p.leftover, 0u);
}

TEST(RespParserTest, PipelinedCommandsInOneBuffer) {
  std::string input;
  for (int i = 0; i < 100; ++i) input += Multibulk({"SET", "k" + std::to_string(i), "v"});
  input += "PING\r\n";
  const Parsed p = ParseAll(input);
  ASSERT_EQ(p.commands.size(), 101u);
  EXPECT_EQ(p.commands[42], (Args{"SET", "k42", "v"}));
  EXPECT_EQ(p.commands[100], (Args{"PING"}));
  EXPECT_EQ(p.last, Outcome::kNeedMore);
  EXPECT_EQ(p.leftover, 0u);
}

TEST(RespParserTest, SplitAtEveryByteGivesTheSameCommands) {
  const std::string input = Multibulk({"SET", "key", std::string("va\r\nlue")}) + "ping\r\n" +
                            "set a \"b c\" 'd'\n" + "*0\r\n" + Multibulk({"GET", "key"}) +
                            Multibulk({"MSET", "", "x"});
  const Parsed whole = ParseAll(input);
  ASSERT_EQ(whole.commands.size(), 6u);
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    const Parsed split = ParseSplit(input, cut);
    EXPECT_EQ(split.commands, whole.commands) << "cut at " << cut;
    EXPECT_EQ(split.leftover, 0u);
  }
}

TEST(RespParserTest, ByteByByteFeeding) {
  const std::string input = Multibulk({"SET", "k", std::string(1000, 'x')});
  RespParser parser;
  for (size_t n = 0; n < input.size(); ++n) {
    ASSERT_EQ(parser.Parse(std::string_view(input).substr(0, n)), Outcome::kNeedMore) << n;
    EXPECT_GT(parser.needed(), n);
  }
  ASSERT_EQ(parser.Parse(input), Outcome::kCommand);
  EXPECT_EQ(parser.args()[2], std::string(1000, 'x'));
}

TEST(RespParserTest, NeededReportsTheWholeBulk) {
  RespParser parser;
  const std::string head = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\nabc";
  ASSERT_EQ(parser.Parse(head), Outcome::kNeedMore);
  EXPECT_EQ(parser.needed(), head.size() - 3 + 100000 + 2);
}

TEST(RespParserTest, InlineCommands) {
  const Parsed p = ParseAll("PING\r\nping\nset  a\tb  \r\n\r\n   \n");
  ASSERT_EQ(p.commands.size(), 5u);
  EXPECT_EQ(p.commands[0], (Args{"PING"}));
  EXPECT_EQ(p.commands[1], (Args{"ping"}));
  EXPECT_EQ(p.commands[2], (Args{"set", "a", "b"}));
  EXPECT_TRUE(p.commands[3].empty());
  EXPECT_TRUE(p.commands[4].empty());
}

TEST(RespParserTest, InlineQuoting) {
  const Parsed p = ParseAll(
      "SET \"a b\" 'c d'\r\n"
      "SET \"\\x41\\n\\t\\\\\\\"z\" 'it\\'s'\r\n"
      "SET pre\"fix\" \"\"\r\n"
      "ECHO \"\\q\"\r\n");
  ASSERT_EQ(p.commands.size(), 4u);
  EXPECT_EQ(p.commands[0], (Args{"SET", "a b", "c d"}));
  EXPECT_EQ(p.commands[1], (Args{"SET", "A\n\t\\\"z", "it's"}));
  EXPECT_EQ(p.commands[2], (Args{"SET", "prefix", ""}));
  EXPECT_EQ(p.commands[3], (Args{"ECHO", "q"}));
}

TEST(RespParserTest, InlineUnquotedWordsAreZeroCopy) {
  RespParser parser;
  const std::string input = "GET somekey\r\n";
  ASSERT_EQ(parser.Parse(input), Outcome::kCommand);
  EXPECT_EQ(parser.args()[1].data(), input.data() + 4);
}

TEST(RespParserTest, InlineLineEndsAtNul) {
  const Parsed p = ParseAll(std::string("GET a\0 b c\r\n", 12));
  ASSERT_EQ(p.commands.size(), 1u);
  EXPECT_EQ(p.commands[0], (Args{"GET", "a"}));
}

TEST(RespParserTest, InlineUnbalancedQuotes) {
  for (std::string_view bad : {"SET \"abc\r\n", "SET 'abc\r\n", "SET \"a\"b\r\n", "SET 'a'b\r\n"}) {
    const Parsed p = ParseAll(bad);
    EXPECT_EQ(p.last, Outcome::kError) << bad;
    EXPECT_EQ(p.error, "Protocol error: unbalanced quotes in request") << bad;
  }
}

TEST(RespParserTest, UnquotedScratchSurvivesUntilReleased) {
  RespParser parser;
  std::string input = "SET \"a b\" c\r\nSET \"d e\" f\r\n";
  ASSERT_EQ(parser.Parse(input), Outcome::kCommand);
  const std::string_view first = parser.args()[1];
  const size_t used = parser.consumed();
  ASSERT_EQ(parser.Parse(std::string_view(input).substr(used)), Outcome::kCommand);
  EXPECT_EQ(first, "a b");  // still valid: not released yet
  EXPECT_EQ(parser.args()[1], "d e");
  parser.ReleaseScratch();
}

struct ErrorCase {
  std::string input;
  std::string message;
};

TEST(RespParserTest, ProtocolErrors) {
  const std::vector<ErrorCase> cases = {
      {"*abc\r\n", "Protocol error: invalid multibulk length"},
      {"*\r\n", "Protocol error: invalid multibulk length"},
      {"*01\r\n", "Protocol error: invalid multibulk length"},
      {"*+1\r\n", "Protocol error: invalid multibulk length"},
      {"*1\rx", "Protocol error: invalid multibulk length"},
      {"*99999999999999999999999\r\n", "Protocol error: invalid multibulk length"},
      {"*" + std::string(40, '1'), "Protocol error: too big mbulk count string"},
      {"*1\r\n:1\r\n", "Protocol error: expected '$', got ':'"},
      {"*2\r\n$3\r\nGET\r\nfoo\r\n", "Protocol error: expected '$', got 'f'"},
      {"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$abc\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$" + std::string(40, '9'), "Protocol error: too big bulk count string"},
      {"*1\r\n$3\r\nabcd\r\n", "Protocol error: bulk string not terminated by CRLF"},
      {"*1\r\n$3\r\nabc\n\r", "Protocol error: bulk string not terminated by CRLF"},
  };
  for (const auto& c : cases) {
    const Parsed whole = ParseAll(c.input);
    EXPECT_EQ(whole.last, Outcome::kError) << c.input;
    EXPECT_EQ(whole.error, c.message) << c.input;
    for (size_t cut = 0; cut <= c.input.size(); ++cut) {
      const Parsed split = ParseSplit(c.input, cut);
      EXPECT_EQ(split.error, c.message) << c.input << " cut at " << cut;
    }
  }
}

TEST(RespParserTest, CountLinesFollowRedisIntegerRules) {
  // Whatever path the parser takes for a count line, it accepts exactly what Redis' string2ll()
  // accepts (ParseRespInteger), within the limits.
  const std::vector<std::string> numbers = {"0",
                                            "00",
                                            "01",
                                            "1",
                                            "9",
                                            "10",
                                            "-0",
                                            "-1",
                                            "+1",
                                            " 1",
                                            "1 ",
                                            "1a",
                                            "",
                                            "-",
                                            "999999999999999999",
                                            "1000000000000000000",
                                            "9223372036854775807",
                                            "9223372036854775808",
                                            "99999999999999999999",
                                            "123456789012345678",
                                            "0123456789012345678"};
  RespParserLimits limits;
  limits.max_args = std::numeric_limits<size_t>::max();
  limits.max_bulk_bytes = std::numeric_limits<size_t>::max();
  limits.max_command_bytes = std::numeric_limits<size_t>::max();
  for (const std::string& n : numbers) {
    int64_t expected = 0;
    const bool valid = ParseRespInteger(n, &expected);
    RespParser parser(limits);
    const Outcome multibulk = parser.Parse("*" + n + "\r\n");
    if (!valid) {
      EXPECT_EQ(multibulk, Outcome::kError) << n;
      EXPECT_EQ(parser.error(), "Protocol error: invalid multibulk length") << n;
    } else if (expected <= 0) {
      EXPECT_EQ(multibulk, Outcome::kCommand) << n;  // empty command
    } else {
      EXPECT_EQ(multibulk, Outcome::kNeedMore) << n;
    }
    RespParser bulk(limits);
    const Outcome bulk_outcome = bulk.Parse("*1\r\n$" + n + "\r\n");
    if (!valid || expected < 0) {
      EXPECT_EQ(bulk_outcome, Outcome::kError) << n;
      EXPECT_EQ(bulk.error(), "Protocol error: invalid bulk length") << n;
    } else {
      EXPECT_EQ(bulk_outcome, Outcome::kNeedMore) << n;
      EXPECT_EQ(bulk.needed(), 4 + 1 + n.size() + 2 + static_cast<size_t>(expected) + 2) << n;
    }
  }
}

TEST(RespParserTest, ErrorIsStickyUntilReset) {
  RespParser parser;
  ASSERT_EQ(parser.Parse("*x\r\n"), Outcome::kError);
  EXPECT_EQ(parser.Parse("PING\r\n"), Outcome::kError);
  parser.Reset();
  EXPECT_TRUE(parser.error().empty());
  ASSERT_EQ(parser.Parse("PING\r\n"), Outcome::kCommand);
}

TEST(RespParserTest, MaxArgs) {
  RespParserLimits limits;
  limits.max_args = 3;
  EXPECT_EQ(ParseAll(Multibulk({"a", "b", "c"}), limits).commands.size(), 1u);
  // Refused on the count alone, before any argument arrives.
  const Parsed p = ParseAll("*4\r\n", limits);
  EXPECT_EQ(p.error, "Protocol error: invalid multibulk length");
  EXPECT_EQ(ParseAll("a b c d\r\n", limits).error, "Protocol error: invalid multibulk length");
}

TEST(RespParserTest, HugeDeclaredCountIsNotTrusted) {
  // A count within max_args but far beyond the bytes sent must not make the parser allocate.
  RespParser parser;
  EXPECT_EQ(parser.Parse("*1048576\r\n$1\r\na\r\n"), Outcome::kNeedMore);
}

TEST(RespParserTest, MaxBulkIsCheckedBeforeTheDataArrives) {
  RespParserLimits limits;
  limits.max_bulk_bytes = 1000;
  EXPECT_EQ(ParseAll(Multibulk({"SET", "k", std::string(1000, 'v')}), limits).commands.size(), 1u);
  const Parsed p = ParseAll("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1001\r\n", limits);
  EXPECT_EQ(p.last, Outcome::kError);
  EXPECT_EQ(p.error, "Protocol error: invalid bulk length");
  EXPECT_EQ(ParseAll("*1\r\n$9223372036854775807\r\n").error,
            "Protocol error: invalid bulk length");
}

TEST(RespParserTest, MaxCommandBytes) {
  RespParserLimits limits;
  limits.max_command_bytes = 100;
  EXPECT_EQ(ParseAll(Multibulk({"SET", "k", std::string(50, 'v')}), limits).commands.size(), 1u);
  const Parsed p = ParseAll("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$90\r\n", limits);
  EXPECT_EQ(p.error, "Protocol error: request too large");
}

TEST(RespParserTest, MaxInlineBytes) {
  RespParserLimits limits;
  limits.max_inline_bytes = 10;
  EXPECT_EQ(ParseAll("ECHO 12345\r\n", limits).commands.size(), 1u);  // exactly 10
  EXPECT_EQ(ParseAll("ECHO 123456\r\n", limits).error, "Protocol error: too big inline request");
  // Without a newline, refused once more bytes than a line can have are buffered.
  EXPECT_EQ(ParseAll("ECHO 12345\r", limits).last, Outcome::kNeedMore);
  EXPECT_EQ(ParseAll("ECHO 123456\r", limits).error, "Protocol error: too big inline request");
  EXPECT_EQ(ParseAll(std::string(1000, 'x'), limits).error,
            "Protocol error: too big inline request");
}

TEST(RespParserTest, GarbageNeverCrashes) {
  // A deterministic pseudo-random sweep; the fuzzer does this at scale.
  uint32_t state = 12345;
  RespParserLimits limits;
  limits.max_bulk_bytes = 64;
  limits.max_inline_bytes = 64;
  for (int round = 0; round < 2000; ++round) {
    std::string input;
    const size_t len = round % 50;
    for (size_t i = 0; i < len; ++i) {
      state = state * 1664525u + 1013904223u;
      static constexpr char kAlphabet[] = "*$\r\n0123456789-abc \"'\\x";
      input.push_back(kAlphabet[(state >> 24) % (sizeof(kAlphabet) - 1)]);
    }
    const Parsed p = ParseAll(input, limits);
    EXPECT_LE(p.leftover, input.size());
  }
}

}  // namespace
}  // namespace edgeflow::api
