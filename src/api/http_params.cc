#include "api/http_params.h"

#include <charconv>
#include <cmath>

namespace edgeflow::api {
namespace {

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::string Shown(std::string_view text) { return std::string(text.substr(0, 100)); }

}  // namespace

Result<int64_t> ParseTtlMillis(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Error(Status::InvalidArgument("invalid ttl '" + Shown(text) + "': " + std::string(why) +
                                         " (examples: 30, 1.5, 250ms, 10s, 5m, 2h)"));
  };
  std::string_view number = text;
  double unit_ms = 1000.0;
  if (number.ends_with("ms")) {
    unit_ms = 1.0;
    number.remove_suffix(2);
  } else if (number.ends_with("s")) {
    number.remove_suffix(1);
  } else if (number.ends_with("m")) {
    unit_ms = 60'000.0;
    number.remove_suffix(1);
  } else if (number.ends_with("h")) {
    unit_ms = 3'600'000.0;
    number.remove_suffix(1);
  }
  if (number.empty()) return bad("no number");
  // from_chars would accept "inf", "nan" and exponents; a TTL is plain digits and one dot.
  for (char c : number) {
    if (!((c >= '0' && c <= '9') || c == '.')) return bad("not a plain decimal number");
  }
  double value = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || end != number.data() + number.size()) return bad("not a number");
  double ms = std::ceil(value * unit_ms);
  if (!std::isfinite(ms) || ms <= 0) return bad("must be positive");
  if (ms > static_cast<double>(kMaxTtlMillis)) return bad("longer than 100 years");
  return static_cast<int64_t>(ms);
}

Result<uint64_t> ParseUnsigned(std::string_view text, std::string_view what) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return Error(Status::InvalidArgument(
        std::string(what) + " must be an unsigned decimal integer, got '" + Shown(text) + "'"));
  }
  return value;
}

Result<EntityTagCondition> ParseEntityTagCondition(std::string_view header_value) {
  std::string_view value = Trim(header_value);
  EntityTagCondition cond;
  if (value == "*") {
    cond.any = true;
    return cond;
  }
  if (value.starts_with("W/")) value.remove_prefix(2);
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
    value = value.substr(1, value.size() - 2);
  }
  if (value.empty() || value.find_first_of("\",") != std::string_view::npos) {
    return Error(Status::InvalidArgument(
        "entity tag '" + Shown(header_value) +
        "' is not supported: give '*' or one quoted version such as the ETag of a GET"));
  }
  cond.tag = std::string(value);
  return cond;
}

namespace {

bool IsHexDigit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// A field of hex digits, not all zero when `nonzero`.
bool IsHexField(std::string_view field, bool nonzero) {
  bool all_zero = true;
  for (char c : field) {
    if (!IsHexDigit(c)) return false;
    all_zero = all_zero && c == '0';
  }
  return !(nonzero && all_zero);
}

}  // namespace

std::string TraceIdFromTraceparent(std::string_view header_value) {
  // version "-" trace-id "-" parent-id "-" flags. Version 00 is exactly that; later versions may
  // append fields after a '-', and version ff is forbidden.
  constexpr size_t kLength = 2 + 1 + 32 + 1 + 16 + 1 + 2;
  if (header_value.size() < kLength) return "";
  const std::string_view version = header_value.substr(0, 2);
  if (!IsHexField(version, false) || version == "ff" || version == "FF") return "";
  if (version == "00" && header_value.size() != kLength) return "";
  if (header_value.size() > kLength && header_value[kLength] != '-') return "";
  if (header_value[2] != '-' || header_value[35] != '-' || header_value[52] != '-') return "";
  const std::string_view trace_id = header_value.substr(3, 32);
  if (!IsHexField(trace_id, true) || !IsHexField(header_value.substr(36, 16), true) ||
      !IsHexField(header_value.substr(53, 2), false)) {
    return "";
  }
  std::string lower(trace_id);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

}  // namespace edgeflow::api
