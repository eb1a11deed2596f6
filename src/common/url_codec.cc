#include "common/url_codec.h"

#include <array>
#include <cctype>

namespace edgeflow {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsUnreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

}  // namespace

Result<TargetParts> SplitTarget(std::string_view target) {
  if (target.empty()) return Error(Status::InvalidArgument("empty request target"));
  for (char ch : target) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7f) {
      return Error(Status::InvalidArgument("request target contains a control character or space"));
    }
    if (c == '#') return Error(Status::InvalidArgument("request target must not contain '#'"));
  }
  std::string_view rest = target;
  if (rest.front() != '/') {
    // Absolute form: scheme "://" authority [path] ["?" query]. The authority is not used: this
    // server has a single origin.
    size_t scheme_len = 0;
    if (StartsWithNoCase(rest, "http://")) {
      scheme_len = 7;
    } else if (StartsWithNoCase(rest, "https://")) {
      scheme_len = 8;
    } else {
      return Error(Status::InvalidArgument(
          "request target must be a path starting with '/' or an absolute http URL"));
    }
    rest.remove_prefix(scheme_len);
    size_t end_of_authority = rest.find_first_of("/?");
    if (end_of_authority == 0) return Error(Status::InvalidArgument("absolute URL without a host"));
    if (end_of_authority == std::string_view::npos) {
      return TargetParts{"/", ""};
    }
    rest.remove_prefix(end_of_authority);
    if (rest.front() == '?') {
      return TargetParts{"/", rest.substr(1)};
    }
  }
  TargetParts parts;
  size_t q = rest.find('?');
  if (q == std::string_view::npos) {
    parts.path = rest;
  } else {
    parts.path = rest.substr(0, q);
    parts.query = rest.substr(q + 1);
  }
  return parts;
}

Result<std::string> PercentDecode(std::string_view text, bool plus_as_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (text.size() - i < 3) {
        return Error(Status::InvalidArgument("truncated percent-escape at the end of '" +
                                             std::string(text.substr(0, 200)) + "'"));
      }
      int hi = HexValue(text[i + 1]);
      int lo = HexValue(text[i + 2]);
      if (hi < 0 || lo < 0) {
        return Error(Status::InvalidArgument("invalid percent-escape '%" +
                                             std::string(text.substr(i + 1, 2)) +
                                             "': '%' must be followed by two hex digits"));
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string PercentEncode(std::string_view bytes, bool keep_slash) {
  static constexpr std::array<char, 16> kHex = {'0', '1', '2', '3', '4', '5', '6', '7',
                                                '8', '9', 'A', 'B', 'C', 'D', 'E', 'F'};
  std::string out;
  out.reserve(bytes.size());
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

Result<QueryParams> QueryParams::Parse(std::string_view query) {
  QueryParams result;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (piece.empty()) continue;
    size_t eq = piece.find('=');
    std::string_view raw_name = piece.substr(0, eq);
    std::string_view raw_value =
        eq == std::string_view::npos ? std::string_view() : piece.substr(eq + 1);
    auto name = PercentDecode(raw_name, /*plus_as_space=*/true);
    if (!name) return Error(name.error());
    auto value = PercentDecode(raw_value, /*plus_as_space=*/true);
    if (!value) {
      return Error(
          Status::InvalidArgument("query parameter '" + *name + "': " + value.error().message()));
    }
    result.params_.emplace_back(std::move(*name), std::move(*value));
  }
  return result;
}

std::optional<std::string_view> QueryParams::Get(std::string_view name) const {
  for (const auto& [n, v] : params_) {
    if (n == name) return std::string_view(v);
  }
  return std::nullopt;
}

}  // namespace edgeflow
