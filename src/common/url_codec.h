// Decoding of HTTP request targets (RFC 9112 section 3.2, RFC 3986): splitting the target into
// path and query, percent-decoding, and query-string parsing.
//
// This code is deliberately free of Boost and of any I/O so that it can be fuzzed on its own
// (tests/fuzz/http_target_fuzz.cc). It never throws; malformed input yields InvalidArgument with a
// message that can be shown to the client.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace edgeflow {

// A request target split into its raw (still percent-encoded) parts.
struct TargetParts {
  std::string_view path;   // starts with '/'
  std::string_view query;  // without the '?'; empty if none
};

// Accepts origin-form ("/a/b?x=1") and absolute-form ("http://host:port/a/b?x=1", which HTTP/1.1
// servers must accept too). Rejects the asterisk and authority forms, empty targets and targets
// with bytes that are not allowed on the request line (controls, space, DEL). A fragment ('#...')
// is not part of a request target and is rejected too.
Result<TargetParts> SplitTarget(std::string_view target);

// Percent-decodes `text`. With `plus_as_space` (query strings in the form-urlencoded style) '+'
// becomes a space; in paths '+' stays a '+'. The result may hold any byte, NUL included. A '%' not
// followed by two hex digits is an error.
Result<std::string> PercentDecode(std::string_view text, bool plus_as_space);

// Encodes everything except the RFC 3986 unreserved characters; with `keep_slash`, '/' is kept
// too (for keys in paths, which may contain '/').
std::string PercentEncode(std::string_view bytes, bool keep_slash);

// A decoded query string. Keeps the order of the parameters; Get() returns the first occurrence
// of a name, so a repeated parameter cannot override an earlier one.
class QueryParams {
 public:
  // "a=1&b=x+y&flag" -> {a:"1", b:"x y", flag:""}. Empty pieces ("a=1&&b=2") are skipped.
  static Result<QueryParams> Parse(std::string_view query);

  std::optional<std::string_view> Get(std::string_view name) const;
  bool Has(std::string_view name) const { return Get(name).has_value(); }
  const std::vector<std::pair<std::string, std::string>>& all() const { return params_; }

 private:
  std::vector<std::pair<std::string, std::string>> params_;
};

}  // namespace edgeflow
