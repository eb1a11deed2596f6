#include "channels/envelope.h"

#include <charconv>
#include <cstdio>
#include <random>

#include "common/url_codec.h"

namespace edgeflow::channels {
namespace {

constexpr std::string_view kRefProperty = "ef-ref";
constexpr std::string_view kVersionProperty = "ef-version";
constexpr std::string_view kSizeProperty = "ef-size";
constexpr std::string_view kDataProperty = "ef-data";
constexpr std::string_view kProducedAtProperty = "ef-produced-at";
constexpr std::string_view kTraceIdProperty = "ef-trace-id";
constexpr std::string_view kStreamProperty = "ef-stream";
constexpr std::string_view kInvokedAtProperty = "ef-invoked-at";
constexpr std::string_view kChangeProperty = "ef-change";
constexpr std::string_view kRefPrefix = "/v1/kv/";

template <typename T>
bool ParseNumber(const std::string& text, T* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && !text.empty();
}

std::string RandomHex(size_t digits) {
  thread_local std::mt19937_64 random{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(digits);
  uint64_t bits = 0;
  for (size_t i = 0; i < digits; ++i) {
    if (i % 16 == 0) bits = random();
    out.push_back(kHex[bits & 15]);
    bits >>= 4;
  }
  return out;
}

}  // namespace

std::string RefPath(const ItemRef& ref) {
  return std::string(kRefPrefix) + PercentEncode(ref.ns, false) + "/" +
         PercentEncode(ref.key, true);
}

Result<ItemRef> ParseRefPath(std::string_view path) {
  if (path.substr(0, kRefPrefix.size()) != kRefPrefix) {
    return Error(Status::InvalidArgument("reference '" + std::string(path) +
                                         "' does not start with " + std::string(kRefPrefix)));
  }
  const std::string_view rest = path.substr(kRefPrefix.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == rest.size()) {
    return Error(Status::InvalidArgument("reference '" + std::string(path) +
                                         "' is not /v1/kv/<namespace>/<key>"));
  }
  auto ns = PercentDecode(rest.substr(0, slash), false);
  if (!ns) return Error(std::move(ns.error()));
  auto key = PercentDecode(rest.substr(slash + 1), false);
  if (!key) return Error(std::move(key.error()));
  return ItemRef{std::move(*ns), std::move(*key), ""};
}

void WriteEnvelope(const Envelope& envelope, MqttMessage* message) {
  message->correlation_data = envelope.item_id;
  message->content_type = envelope.content_type;
  message->message_expiry_seconds = envelope.expiry_seconds;
  auto& props = message->user_properties;
  if (envelope.ref) {
    props.emplace_back(kRefProperty, RefPath(*envelope.ref));
    if (!envelope.ref->version.empty()) props.emplace_back(kVersionProperty, envelope.ref->version);
  }
  props.emplace_back(kSizeProperty, std::to_string(envelope.size));
  props.emplace_back(kDataProperty, envelope.inline_data ? "inline" : "ref");
  if (envelope.produced_at_ms > 0) {
    props.emplace_back(kProducedAtProperty, std::to_string(envelope.produced_at_ms));
  }
  if (!envelope.trace_id.empty()) props.emplace_back(kTraceIdProperty, envelope.trace_id);
  if (!envelope.stream.empty()) props.emplace_back(kStreamProperty, envelope.stream);
  if (envelope.invoked_at_ms > 0) {
    props.emplace_back(kInvokedAtProperty, std::to_string(envelope.invoked_at_ms));
  }
  if (envelope.change != Envelope::Change::kNone) {
    props.emplace_back(kChangeProperty,
                       envelope.change == Envelope::Change::kPut ? "put" : "delete");
  }
}

Result<Envelope> ReadEnvelope(const MqttMessage& message) {
  Envelope envelope;
  envelope.item_id = message.correlation_data;
  envelope.content_type = message.content_type;
  envelope.expiry_seconds = message.message_expiry_seconds;
  envelope.size = message.payload.size();
  if (const std::string* ref = message.UserProperty(kRefProperty)) {
    auto parsed = ParseRefPath(*ref);
    if (!parsed) return Error(std::move(parsed.error()));
    envelope.ref = std::move(*parsed);
    if (const std::string* version = message.UserProperty(kVersionProperty)) {
      envelope.ref->version = *version;
    }
  }
  if (const std::string* data = message.UserProperty(kDataProperty)) {
    if (*data == "ref") {
      envelope.inline_data = false;
    } else if (*data != "inline") {
      return Error(
          Status::InvalidArgument("ef-data must be 'inline' or 'ref', not '" + *data + "'"));
    }
  }
  if (!envelope.inline_data && !envelope.ref) {
    return Error(Status::InvalidArgument("a message with ef-data=ref carries no ef-ref"));
  }
  if (const std::string* size = message.UserProperty(kSizeProperty)) {
    if (!ParseNumber(*size, &envelope.size)) {
      return Error(Status::InvalidArgument("ef-size is not a number: '" + *size + "'"));
    }
    if (envelope.inline_data && envelope.size != message.payload.size()) {
      return Error(Status::InvalidArgument("ef-size says " + *size + " bytes but the payload has " +
                                           std::to_string(message.payload.size())));
    }
  }
  if (const std::string* at = message.UserProperty(kProducedAtProperty)) {
    if (!ParseNumber(*at, &envelope.produced_at_ms)) {
      return Error(Status::InvalidArgument("ef-produced-at is not a number: '" + *at + "'"));
    }
  }
  if (const std::string* trace = message.UserProperty(kTraceIdProperty)) {
    envelope.trace_id = *trace;
  }
  if (const std::string* stream = message.UserProperty(kStreamProperty)) {
    envelope.stream = *stream;
  }
  if (const std::string* at = message.UserProperty(kInvokedAtProperty)) {
    if (!ParseNumber(*at, &envelope.invoked_at_ms)) {
      return Error(Status::InvalidArgument("ef-invoked-at is not a number: '" + *at + "'"));
    }
  }
  if (const std::string* change = message.UserProperty(kChangeProperty)) {
    if (*change == "put") {
      envelope.change = Envelope::Change::kPut;
    } else if (*change == "delete") {
      envelope.change = Envelope::Change::kDelete;
    } else {
      return Error(
          Status::InvalidArgument("ef-change must be 'put' or 'delete', not '" + *change + "'"));
    }
    if (!envelope.ref) return Error(Status::InvalidArgument("a change message carries no ef-ref"));
  }
  return envelope;
}

std::string NewItemId(int64_t now_ms) {
  char time_part[24];
  std::snprintf(time_part, sizeof(time_part), "%013llx",
                static_cast<unsigned long long>(now_ms < 0 ? 0 : now_ms));
  return std::string(time_part) + RandomHex(8);
}

std::string NewTraceId() {
  for (;;) {
    std::string id = RandomHex(32);
    if (id.find_first_not_of('0') != std::string::npos) return id;
  }
}

}  // namespace edgeflow::channels
