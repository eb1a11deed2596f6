#include "kv/version.h"

#include <charconv>

#include <fmt/format.h>

namespace edgeflow::kv {

std::string NodeIdToString(NodeId id) { return fmt::format("{:016x}", id); }

std::string Version::ToString() const { return fmt::format("{:016x}-{:016x}", hlc, origin); }

Result<Version> Version::Parse(std::string_view text) {
  auto bad = [&] {
    return Error(Status::InvalidArgument("malformed version '" + std::string(text) +
                                         "' (expected 16 hex digits, '-', 16 hex digits)"));
  };
  if (text.size() != 33 || text[16] != '-') return bad();
  Version v;
  auto parse = [](std::string_view part, uint64_t* out) {
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), *out, 16);
    return ec == std::errc() && end == part.data() + part.size();
  };
  if (!parse(text.substr(0, 16), &v.hlc) || !parse(text.substr(17), &v.origin)) return bad();
  return v;
}

}  // namespace edgeflow::kv
