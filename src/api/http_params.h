// Parsing of the values the REST API takes in query parameters and headers: TTLs, counts,
// sequence numbers and entity tags. Boost-free and store-free (fuzzed with the router).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace edgeflow::api {

// Longest TTL accepted: 100 years; longer ones are almost certainly unit mistakes.
inline constexpr int64_t kMaxTtlMillis = 100LL * 365 * 24 * 3600 * 1000;

// "30" and "1.5" are seconds; a suffix gives the unit: "250ms", "10s", "5m", "2h". The result is
// in milliseconds, rounded up so that a positive TTL never becomes 0. Zero, negative, non-finite
// and over-long TTLs are InvalidArgument.
Result<int64_t> ParseTtlMillis(std::string_view text);

// A decimal unsigned integer without sign or spaces; `what` names it in the error message.
Result<uint64_t> ParseUnsigned(std::string_view text, std::string_view what);

// An entity-tag condition of If-Match / If-None-Match: "*" or one tag. Tags are given quoted
// ("\"<version>\"", the ETag form); a bare version and the weak prefix W/ are accepted too.
// Lists of several tags are InvalidArgument: a key has one current version.
struct EntityTagCondition {
  bool any = false;  // "*"
  std::string tag;   // the version text without quotes (when !any)
};
Result<EntityTagCondition> ParseEntityTagCondition(std::string_view header_value);

// The trace id of a W3C trace-context `traceparent` header ("00-<32 hex>-<16 hex>-<2 hex>"), in
// lower case; empty when the header is malformed or the id is all zeros (the recommendation then
// is to start a new trace, not to fail the request).
std::string TraceIdFromTraceparent(std::string_view header_value);

}  // namespace edgeflow::api
