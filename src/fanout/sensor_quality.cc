#include "fanout/sensor_quality.h"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "common/text_encoding.h"
#include "fanout/fanout_text.h"
#include "fanout/qoc_plan.h"

namespace edgeflow::fanout {
namespace {

// The fraction grammar users type everywhere (qoc_plan.h: "1/2", "0.25", "1").
Status FromText(std::string_view text, ef_consumer_policy* policy) {
  auto fraction = ParseFraction(text);
  if (!fraction) return Status::InvalidArgument("keep: " + fraction.error().message());
  policy->keep_num = fraction->num;
  policy->keep_den = fraction->den;
  return Status::Ok();
}

std::string_view JsonTypeName(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::binary:
      return "binary";
    case nlohmann::json::value_t::discarded:
      return "nothing";
    default:
      return "a number";
  }
}

Status KeepFromJson(const nlohmann::json& keep, ef_consumer_policy* policy) {
  if (keep.is_string()) return FromText(keep.get_ref<const std::string&>(), policy);
  // A number is read as the decimal it is written as (the shortest text that gives it back).
  if (keep.is_number()) return FromText(keep.dump(), policy);
  return Status::InvalidArgument(
      "\"keep\" must be a string (\"1/2\", \"0.25\") or a number in "
      "[0, 1], not " +
      std::string(JsonTypeName(keep)));
}

}  // namespace

ef_consumer_policy FullQuality() { return PolicyOf(Fraction::One(), EF_DROP_FRAME); }

Result<ef_consumer_policy> ParseSensorQuality(std::string_view message) {
  if (message.size() > kMaxSensorQualityBytes) {
    return Error(Status::InvalidArgument("quality message of " + std::to_string(message.size()) +
                                         " bytes: at most " +
                                         std::to_string(kMaxSensorQualityBytes) + " are read"));
  }
  // A NUL byte would end the parser's input early and hide what follows it.
  if (message.find('\0') != std::string_view::npos) {
    return Error(Status::InvalidArgument("quality message with a NUL byte: not JSON text"));
  }
  const nlohmann::json root =
      nlohmann::json::parse(message, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    return Error(
        Status::InvalidArgument("quality message " + QuoteForError(message) + " is not JSON"));
  }
  if (!root.is_object()) {
    return Error(Status::InvalidArgument("a quality message is a JSON object, not " +
                                         std::string(JsonTypeName(root))));
  }
  ef_consumer_policy policy = FullQuality();
  const auto keep = root.find("keep");
  if (keep == root.end()) {
    return Error(Status::InvalidArgument("quality message without \"keep\""));
  }
  if (Status s = KeepFromJson(*keep, &policy); !s.ok()) return Error(std::move(s));
  const auto mode = root.find("mode");
  if (mode != root.end()) {
    if (!mode->is_string()) {
      return Error(Status::InvalidArgument("\"mode\" must be \"frame\" or \"packet\", not " +
                                           std::string(JsonTypeName(*mode))));
    }
    if (Status s = ParseDropMode(mode->get_ref<const std::string&>(), &policy); !s.ok()) {
      return Error(std::move(s));
    }
  }
  return policy;
}

Status ParseKeepFraction(std::string_view text, ef_consumer_policy* policy) {
  return FromText(text, policy);
}

Status ParseDropMode(std::string_view text, ef_consumer_policy* policy) {
  auto mode = ParseDropMode(text);
  if (!mode) return Status::InvalidArgument("mode: " + mode.error().message());
  policy->mode = static_cast<uint8_t>(*mode);
  return Status::Ok();
}

std::string KeepText(const ef_consumer_policy& policy) {
  if (policy.keep_den == 0) return "1/1";
  return std::to_string(policy.keep_num) + "/" + std::to_string(policy.keep_den);
}

std::string_view DropModeName(const ef_consumer_policy& policy) {
  return DropModeName(policy.mode == EF_DROP_PACKET ? EF_DROP_PACKET : EF_DROP_FRAME);
}

std::string SensorQualityJson(const ef_consumer_policy& policy) {
  const nlohmann::json out = {{"keep", KeepText(policy)}, {"mode", DropModeName(policy)}};
  return out.dump();
}

}  // namespace edgeflow::fanout
