// Fuzzes GlobMatch against a direct recursive reading of Redis' matching rules (exponential in
// the number of stars, so it judges only patterns with a few of them; GlobMatch runs on all), and
// checks that every match starts with GlobLiteralPrefix(pattern).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "api/glob_match.h"

namespace {

// Returns whether text matches pattern, element by element, trying every split at a star.
bool Reference(std::string_view p, std::string_view s) {
  while (!p.empty() && !s.empty()) {
    const unsigned char c = static_cast<unsigned char>(s[0]);
    switch (p[0]) {
      case '*': {
        while (p.size() > 1 && p[1] == '*') p.remove_prefix(1);
        if (p.size() == 1) return true;
        for (; !s.empty(); s.remove_prefix(1)) {
          if (Reference(p.substr(1), s)) return true;
        }
        return false;
      }
      case '?':
        p.remove_prefix(1);
        break;
      case '[': {
        p.remove_prefix(1);
        const bool negate = !p.empty() && p[0] == '^';
        if (negate) p.remove_prefix(1);
        bool match = false;
        bool closed = false;
        while (!p.empty()) {
          if (p[0] == '\\' && p.size() >= 2) {
            p.remove_prefix(1);
            if (static_cast<unsigned char>(p[0]) == c) match = true;
          } else if (p[0] == ']') {
            closed = true;
            break;
          } else if (p.size() >= 3 && p[1] == '-') {
            unsigned char lo = static_cast<unsigned char>(p[0]);
            unsigned char hi = static_cast<unsigned char>(p[2]);
            if (lo > hi) {
              const unsigned char t = lo;
              lo = hi;
              hi = t;
            }
            if (c >= lo && c <= hi) match = true;
            p.remove_prefix(2);
          } else if (static_cast<unsigned char>(p[0]) == c) {
            match = true;
          }
          p.remove_prefix(1);
        }
        if (closed) p.remove_prefix(1);
        if (negate) match = !match;
        if (!match) return false;
        break;
      }
      case '\\':
        if (p.size() >= 2) p.remove_prefix(1);
        [[fallthrough]];
      default:
        if (static_cast<unsigned char>(p[0]) != c) return false;
        p.remove_prefix(1);
        break;
    }
    s.remove_prefix(1);
    if (s.empty()) {
      while (!p.empty() && p[0] == '*') p.remove_prefix(1);
      break;
    }
  }
  return p.empty() && s.empty();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 96) return 0;
  const size_t split = data[0] % size;
  const std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string_view pattern = all.substr(0, split);
  const std::string_view text = all.substr(split < all.size() ? split : all.size());
  size_t stars = 0;
  for (char c : pattern) stars += c == '*';
  const bool got = edgeflow::api::GlobMatch(pattern, text);
  if (stars <= 4 && got != Reference(pattern, text)) std::abort();
  if (got && text.substr(0, edgeflow::api::GlobLiteralPrefix(pattern).size()) !=
                 edgeflow::api::GlobLiteralPrefix(pattern)) {
    std::abort();
  }
  if (edgeflow::api::GlobIsLiteral(pattern) &&
      got != (text == edgeflow::api::GlobLiteralPrefix(pattern))) {
    std::abort();
  }
  return 0;
}
