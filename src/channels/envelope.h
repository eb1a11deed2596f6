// The channel envelope: what a channel message says about the data it announces, carried as
// MQTT 5 properties so that any MQTT 5 client (mosquitto_sub -F, paho, mqtt.js) can read it
// without edgeflow's SDK.
//
//   correlation data        the item id (the key the producer chose, or one the node made)
//   content type            the data's content type
//   message expiry          the item's remaining TTL, so a queued message never outlives its data
//   user property ef-ref    where the data is in EKV, as the node's HTTP path:
//                           "/v1/kv/<ns>/<key>" (percent-encoded)
//   user property ef-version  the EKV version of that item ("<hlc>-<node>")
//   user property ef-size   the data's size in bytes
//   user property ef-data   "inline" (the payload is the data) or "ref" (claim check: the payload
//                           is empty; read the data from ef-ref)
//   user property ef-produced-at  Unix milliseconds when the node accepted the data
//   user property ef-trace-id     32 hex digits (W3C trace-context trace id)
//   user property ef-stream       the stream key the item belongs to (a camera, a user, a
//                                 session): functions with per-key context keep it per stream;
//                                 function outputs carry their input's stream key on
//   user property ef-invoked-at   on function outputs: Unix milliseconds when the invocation
//                                 that produced the item began
//   user property ef-change       only on key-change notifications: "put" (the item was written;
//                                 read it from ef-ref) or "delete" (it is gone; no data)
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "channels/mqtt_message.h"
#include "common/status.h"

namespace edgeflow::channels {

struct ItemRef {
  std::string ns;
  std::string key;
  std::string version;  // empty = the current version
};

struct Envelope {
  std::string item_id;
  std::string content_type;
  std::optional<ItemRef> ref;  // absent for messages not stored in EKV
  uint64_t size = 0;
  bool inline_data = true;
  int64_t produced_at_ms = 0;
  std::string trace_id;
  std::string stream;          // "" = none
  int64_t invoked_at_ms = 0;   // 0 = not a function output
  uint32_t expiry_seconds = 0;  // 0 = the message does not expire
  // Key-change notifications only: what happened to the item at `ref`.
  enum class Change { kNone, kPut, kDelete };
  Change change = Change::kNone;
};

// Sets the envelope's properties on `message` (not its topic or payload).
void WriteEnvelope(const Envelope& envelope, MqttMessage* message);
// Reads the envelope of a received message. Messages from plain MQTT clients have none of the
// ef-* properties: they read as inline data of the payload's size. A malformed ef-* property
// (bad reference, size or flag) is InvalidArgument.
Result<Envelope> ReadEnvelope(const MqttMessage& message);

// The HTTP path of an item, "/v1/kv/<ns>/<key>" percent-encoded; and back.
std::string RefPath(const ItemRef& ref);
Result<ItemRef> ParseRefPath(std::string_view path);

// A new item id: 13 hex digits of Unix milliseconds then 8 random hex digits, so ids sort by
// time and do not collide across producers.
std::string NewItemId(int64_t now_ms);
// A new random W3C trace id (32 hex digits, not all zero).
std::string NewTraceId();

}  // namespace edgeflow::channels
