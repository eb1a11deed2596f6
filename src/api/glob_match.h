// Redis-style glob matching (the KEYS and SCAN MATCH patterns), byte-wise and case-sensitive:
//   *        any run of bytes (also none)
//   ?        any one byte
//   [abc]    one of the listed bytes; [^abc] one byte not listed; [a-z] a range (either order)
//   \x       the byte x itself, also inside [...]
// Edge cases follow Redis: an unclosed '[' takes the rest of the pattern as its set, a trailing
// '\' is a literal backslash, and an empty string matches only the empty pattern.
//
// Matching runs in O(pattern * string) time whatever the pattern (no exponential backtracking).
// Standard library only.
#pragma once

#include <string>
#include <string_view>

namespace edgeflow::api {

bool GlobMatch(std::string_view pattern, std::string_view text);

// The bytes every match must start with: the pattern up to its first '*', '?' or '[', with
// escapes resolved. Used as the prefix of a store listing so that SCAN reads only candidates.
std::string GlobLiteralPrefix(std::string_view pattern);

// True if the pattern matches exactly one string (no metacharacters), which then equals
// GlobLiteralPrefix(pattern).
bool GlobIsLiteral(std::string_view pattern);

}  // namespace edgeflow::api
