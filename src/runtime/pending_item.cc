#include "runtime/pending_item.h"

#include <nlohmann/json.hpp>

namespace edgeflow::runtime {

namespace {

constexpr int kFormatVersion = 1;

nlohmann::json EnvelopeToJson(const channels::Envelope& e) {
  nlohmann::json j = {{"id", e.item_id},      {"ct", e.content_type}, {"size", e.size},
                      {"inline", e.inline_data}, {"at", e.produced_at_ms}, {"trace", e.trace_id},
                      {"stream", e.stream},   {"exp", e.expiry_seconds}};
  if (e.ref) j["ref"] = {e.ref->ns, e.ref->key, e.ref->version};
  return j;
}

channels::Envelope EnvelopeFromJson(const nlohmann::json& j) {
  channels::Envelope e;
  e.item_id = j.at("id").get<std::string>();
  e.content_type = j.at("ct").get<std::string>();
  e.size = j.at("size").get<uint64_t>();
  e.inline_data = j.at("inline").get<bool>();
  e.produced_at_ms = j.at("at").get<int64_t>();
  e.trace_id = j.at("trace").get<std::string>();
  e.stream = j.at("stream").get<std::string>();
  e.expiry_seconds = j.at("exp").get<uint32_t>();
  if (auto ref = j.find("ref"); ref != j.end()) {
    e.ref = channels::ItemRef{ref->at(0).get<std::string>(), ref->at(1).get<std::string>(),
                              ref->at(2).get<std::string>()};
  }
  return e;
}

}  // namespace

const TriggerInput* PendingItem::Find(std::string_view input) const {
  for (const TriggerInput& t : inputs) {
    if (t.input == input) return &t;
  }
  return nullptr;
}

std::string EncodePendingItem(const PendingItem& item) {
  nlohmann::json inputs = nlohmann::json::array();
  for (const TriggerInput& t : item.inputs) {
    inputs.push_back({{"input", t.input},
                      {"channel", t.channel},
                      {"env", EnvelopeToJson(t.envelope)},
                      {"payload", nlohmann::json::binary_t(std::vector<uint8_t>(
                                      t.payload.begin(), t.payload.end()))},
                      {"arrived", t.arrived_at_ms}});
  }
  const nlohmann::json j = {{"v", kFormatVersion},
                            {"item", item.item_id},
                            {"first", item.first_arrival_ms},
                            {"failed", item.failed_attempts},
                            {"inputs", std::move(inputs)}};
  std::vector<uint8_t> bytes = nlohmann::json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

Result<PendingItem> DecodePendingItem(std::string_view bytes) {
  const nlohmann::json j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end(),
                                                        /*strict=*/true, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(Status::Corruption("a pending item is not MessagePack"));
  }
  try {
    if (j.at("v").get<int>() != kFormatVersion) {
      return Error(Status::Corruption("a pending item has an unknown format version"));
    }
    PendingItem item;
    item.item_id = j.at("item").get<std::string>();
    item.first_arrival_ms = j.at("first").get<int64_t>();
    item.failed_attempts = j.at("failed").get<uint32_t>();
    for (const nlohmann::json& t : j.at("inputs")) {
      TriggerInput input;
      input.input = t.at("input").get<std::string>();
      input.channel = t.at("channel").get<std::string>();
      input.envelope = EnvelopeFromJson(t.at("env"));
      const auto& payload = t.at("payload").get_binary();
      input.payload.assign(payload.begin(), payload.end());
      input.arrived_at_ms = t.at("arrived").get<int64_t>();
      item.inputs.push_back(std::move(input));
    }
    return item;
  } catch (const nlohmann::json::exception& e) {
    return Error(Status::Corruption(std::string("a pending item is malformed: ") + e.what()));
  }
}

std::string EncodeItemOutcome(const ItemOutcome& outcome) {
  const nlohmann::json j = {{"v", kFormatVersion},
                            {"state", outcome.state},
                            {"at", outcome.at_ms},
                            {"error", outcome.error}};
  std::vector<uint8_t> bytes = nlohmann::json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

Result<ItemOutcome> DecodeItemOutcome(std::string_view bytes) {
  const nlohmann::json j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end(),
                                                        /*strict=*/true, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("state")) {
    return Error(Status::Corruption("not an item outcome"));
  }
  try {
    if (j.at("v").get<int>() != kFormatVersion) {
      return Error(Status::Corruption("an item outcome has an unknown format version"));
    }
    ItemOutcome outcome;
    outcome.state = j.at("state").get<std::string>();
    outcome.at_ms = j.at("at").get<int64_t>();
    outcome.error = j.at("error").get<std::string>();
    return outcome;
  } catch (const nlohmann::json::exception& e) {
    return Error(Status::Corruption(std::string("an item outcome is malformed: ") + e.what()));
  }
}

std::string FunctionStatePrefix(std::string_view pipeline, std::string_view function) {
  std::string prefix = "fn/";
  prefix += pipeline;
  prefix += '/';
  prefix += function;
  prefix += '/';
  return prefix;
}

std::string ItemPrefix(std::string_view pipeline, std::string_view function) {
  return FunctionStatePrefix(pipeline, function) + "i/";
}

std::string ItemKey(std::string_view pipeline, std::string_view function,
                    std::string_view item_id) {
  return ItemPrefix(pipeline, function) + std::string(item_id);
}

}  // namespace edgeflow::runtime
