// Integer text as Redis reads it (its string2ll()): an optional '-', then decimal digits with no
// leading zero ("0" itself is fine), no '+', no spaces, within int64_t. Used for protocol counts
// and for command arguments (EX seconds, COUNT, INCRBY), so both agree with Redis on what is a
// number. Standard library only: the parser that uses it is fuzzed on its own.
#pragma once

#include <cstdint>
#include <string_view>

namespace edgeflow::api {

inline bool ParseRespInteger(std::string_view text, int64_t* value) {
  if (text.empty() || text.size() > 20) return false;
  if (text.size() == 1 && text[0] == '0') {
    *value = 0;
    return true;
  }
  size_t i = 0;
  bool negative = false;
  if (text[0] == '-') {
    negative = true;
    i = 1;
    if (text.size() == 1) return false;
  }
  if (text[i] < '1' || text[i] > '9') return false;
  // Accumulate as a negative number so that INT64_MIN is representable.
  int64_t acc = 0;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c < '0' || c > '9') return false;
    const int digit = c - '0';
    if (acc < (INT64_MIN + digit) / 10) return false;
    acc = acc * 10 - digit;
  }
  if (!negative) {
    if (acc == INT64_MIN) return false;
    acc = -acc;
  }
  *value = acc;
  return true;
}

}  // namespace edgeflow::api
