#include "api/glob_match.h"

#include <utility>

namespace edgeflow::api {
namespace {

// Matches the single pattern element at p (anything but '*') against byte c. Sets *next to the
// index after the element.
bool MatchElement(std::string_view pattern, size_t p, unsigned char c, size_t* next) {
  const size_t m = pattern.size();
  const auto at = [&](size_t i) { return static_cast<unsigned char>(pattern[i]); };
  switch (pattern[p]) {
    case '?':
      *next = p + 1;
      return true;
    case '[': {
      size_t i = p + 1;
      const bool negate = i < m && pattern[i] == '^';
      if (negate) ++i;
      bool match = false;
      for (;;) {
        if (i >= m) break;  // unclosed: the set is the rest of the pattern
        if (pattern[i] == '\\' && m - i >= 2) {
          ++i;
          if (at(i) == c) match = true;
        } else if (pattern[i] == ']') {
          ++i;
          break;
        } else if (m - i >= 3 && pattern[i + 1] == '-') {
          unsigned char lo = at(i);
          unsigned char hi = at(i + 2);
          if (lo > hi) std::swap(lo, hi);
          if (c >= lo && c <= hi) match = true;
          i += 2;
        } else if (at(i) == c) {
          match = true;
        }
        ++i;
      }
      *next = i < m ? i : m;
      return negate ? !match : match;
    }
    case '\\':
      if (m - p >= 2) {
        *next = p + 2;
        return at(p + 1) == c;
      }
      [[fallthrough]];
    default:
      *next = p + 1;
      return at(p) == c;
  }
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view text) {
  if (text.empty()) return pattern.empty();
  const size_t m = pattern.size();
  size_t p = 0;
  size_t s = 0;
  // Where to resume after the last '*': every element but '*' takes exactly one byte, so when a
  // later element fails it is enough to let the last star take one more byte (classic wildcard
  // matching); earlier stars never need to be revisited.
  size_t star_p = std::string_view::npos;
  size_t star_s = 0;
  while (s < text.size()) {
    if (p < m && pattern[p] == '*') {
      while (p < m && pattern[p] == '*') ++p;
      if (p == m) return true;
      star_p = p;
      star_s = s;
      continue;
    }
    size_t next = 0;
    if (p < m && MatchElement(pattern, p, static_cast<unsigned char>(text[s]), &next)) {
      p = next;
      ++s;
      continue;
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p;
    s = ++star_s;
  }
  while (p < m && pattern[p] == '*') ++p;
  return p == m;
}

std::string GlobLiteralPrefix(std::string_view pattern) {
  std::string prefix;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '*' || c == '?' || c == '[') break;
    if (c == '\\' && i + 1 < pattern.size()) ++i;
    prefix.push_back(pattern[i]);
  }
  return prefix;
}

bool GlobIsLiteral(std::string_view pattern) {
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '*' || c == '?' || c == '[') return false;
    if (c == '\\') ++i;
  }
  return true;
}

}  // namespace edgeflow::api
