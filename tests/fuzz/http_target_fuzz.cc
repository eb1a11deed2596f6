// Fuzzes the request-target handling of the HTTP API: target splitting, percent-decoding, query
// parsing, routing, and the parsers of parameter values, with round-trip checks.
//
// Input: first byte picks the method, the rest is the request target (and, for the parameter
// parsers, a header value).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/http_params.h"
#include "api/http_router.h"
#include "common/url_codec.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeflow;
  using namespace edgeflow::api;
  if (size == 0) return 0;
  const auto method = static_cast<HttpMethod>(data[0] % kHttpMethodCount);
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  auto match = MatchRoute(method, input);
  if (match) {
    // The query view points into the input.
    Check(match->query.empty() ||
          (match->query.data() >= input.data() &&
           match->query.data() + match->query.size() <= input.data() + input.size()));
    auto query = QueryParams::Parse(match->query);
    if (query) {
      for (const auto& [name, value] : query->all()) Check(query->Has(name));
    }
    if (match->route == HttpRoute::kKvItem && !match->key.empty() &&
        match->ns.find('/') == std::string::npos) {
      // Re-encoding the decoded address routes back to the same namespace and key.
      std::string target =
          "/v1/kv/" + PercentEncode(match->ns, false) + "/" + PercentEncode(match->key, true);
      auto again = MatchRoute(method, target);
      Check(again.has_value());
      Check(again->route == HttpRoute::kKvItem);
      Check(again->ns == match->ns);
      Check(again->key == match->key);
    }
    if (match->route == HttpRoute::kChannelPublish && !match->channel.empty()) {
      // The publish resource of a decoded channel name routes back to that channel.
      auto again = MatchRoute(HttpMethod::kPost,
                              "/v1/channels/" + PercentEncode(match->channel, true) + "/publish");
      Check(again.has_value());
      Check(again->route == HttpRoute::kChannelPublish);
      Check(again->channel == match->channel);
    }
    Check(!match->allow.empty());
  }

  const std::string trace_id = TraceIdFromTraceparent(input);
  Check(trace_id.empty() || (trace_id.size() == 32 &&
                             trace_id.find_first_not_of("0123456789abcdef") == std::string::npos));

  for (bool plus : {false, true}) {
    auto decoded = PercentDecode(input, plus);
    if (decoded) Check(decoded->size() <= input.size());
  }
  for (bool keep_slash : {false, true}) {
    auto round = PercentDecode(PercentEncode(input, keep_slash), false);
    Check(round.has_value() && *round == input);
  }

  auto ttl = ParseTtlMillis(input);
  if (ttl) Check(*ttl > 0 && *ttl <= kMaxTtlMillis);
  auto number = ParseUnsigned(input, "n");
  if (number) Check(std::to_string(*number).size() <= input.size());
  auto tag = ParseEntityTagCondition(input);
  if (tag && !tag->any) Check(!tag->tag.empty() && tag->tag.find('"') == std::string::npos);
  return 0;
}
