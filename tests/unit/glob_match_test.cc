#include "api/glob_match.h"

#include <gtest/gtest.h>

#include <string>

namespace edgeflow::api {
namespace {

struct Case {
  const char* pattern;
  const char* text;
  bool match;
};

TEST(GlobMatchTest, Table) {
  const Case cases[] = {
      {"*", "anything", true},
      {"*", "x", true},
      {"a*", "a", true},
      {"a*", "abc", true},
      {"a*", "ba", false},
      {"*a", "bca", true},
      {"*a", "ab", false},
      {"a*b*c", "aXbYc", true},
      {"a*b*c", "abc", true},
      {"a*b*c", "acb", false},
      {"a**b", "ab", true},
      {"h?llo", "hello", true},
      {"h?llo", "hllo", false},
      {"h?llo", "heello", false},
      {"h[ae]llo", "hallo", true},
      {"h[ae]llo", "hillo", false},
      {"h[^e]llo", "hallo", true},
      {"h[^e]llo", "hello", false},
      {"h[a-b]llo", "hbllo", true},
      {"h[a-b]llo", "hcllo", false},
      {"h[b-a]llo", "hallo", true},  // reversed range
      {"[]]", "]", false},           // empty set, then a literal ']'
      {"[]]", "x]", false},
      {"[\\]]", "]", true},
      {"[\\-]", "-", true},
      // Redis reads "a-]" as the range ']'..'a' and leaves the class unclosed.
      {"[a-]", "^", true},
      {"[a-]", "b", false},
      {"[abc", "b", true},  // unclosed: the rest is the set
      {"[abc", "bc", false},
      {"[", "x", false},
      {"[^", "x", true},
      {"\\*", "*", true},
      {"\\*", "a", false},
      {"a\\?b", "a?b", true},
      {"a\\?b", "axb", false},
      {"\\", "\\", true},  // trailing backslash is literal
      {"abc\\", "abc\\", true},
      {"user:*:name", "user:42:name", true},
      {"user:*:name", "user:42:age", false},
      {"", "", true},
      {"", "a", false},
      {"*", "", false},   // an empty string matches only the empty pattern, as in Redis
      {"a", "A", false},  // case-sensitive
  };
  for (const Case& c : cases) {
    EXPECT_EQ(GlobMatch(c.pattern, c.text), c.match) << c.pattern << " vs " << c.text;
  }
}

TEST(GlobMatchTest, BinaryBytes) {
  EXPECT_TRUE(GlobMatch(std::string("a\0*", 3), std::string("a\0zz", 4)));
  EXPECT_FALSE(GlobMatch(std::string("a\0*", 3), std::string("a\1zz", 4)));
  EXPECT_TRUE(GlobMatch("[\x80-\xff]", "\xc3"));
}

TEST(GlobMatchTest, PathologicalPatternIsFast) {
  // Exponential for naive backtracking; linear-times-linear here.
  std::string pattern;
  for (int i = 0; i < 30; ++i) pattern += "a*";
  pattern += "b";
  const std::string text(5000, 'a');
  EXPECT_FALSE(GlobMatch(pattern, text));
  EXPECT_TRUE(GlobMatch(pattern, text + "b"));
}

TEST(GlobMatchTest, LiteralPrefix) {
  EXPECT_EQ(GlobLiteralPrefix("user:*"), "user:");
  EXPECT_EQ(GlobLiteralPrefix("user:?x"), "user:");
  EXPECT_EQ(GlobLiteralPrefix("user:[ab]"), "user:");
  EXPECT_EQ(GlobLiteralPrefix("a\\*b*"), "a*b");
  EXPECT_EQ(GlobLiteralPrefix("plain"), "plain");
  EXPECT_EQ(GlobLiteralPrefix("*"), "");
  EXPECT_EQ(GlobLiteralPrefix("ab\\"), "ab\\");
}

TEST(GlobMatchTest, IsLiteral) {
  EXPECT_TRUE(GlobIsLiteral("plain"));
  EXPECT_TRUE(GlobIsLiteral("a\\*"));
  EXPECT_FALSE(GlobIsLiteral("a*"));
  EXPECT_FALSE(GlobIsLiteral("a?"));
  EXPECT_FALSE(GlobIsLiteral("[a]"));
}

}  // namespace
}  // namespace edgeflow::api
