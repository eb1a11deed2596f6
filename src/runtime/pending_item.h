// PendingItem: an item a function has accepted but not finished: the inputs that arrived for it
// (all of them, or some while a join waits for the rest). It is kept in EKV from the moment a
// trigger arrives until the invocation's outcome is final, which is what makes delivery at least
// once across a crash of the node: the MQTT client library acknowledges a message to the broker
// as it hands it over, so the node must hold it durably itself before it can lose it.
//
// On disk (namespace `_edgeflow`, see docs/architecture.md, "Edge functions: state in EKV"), one
// key per item, `fn/<pipeline>/<function>/i/<item id>`, holds first the pending item
// (EncodePendingItem), then its outcome (EncodeItemOutcome) for the dedupe window, after which it
// expires. One key for both makes "is this item new?" a single conditional write: a put that
// succeeds only if the key is absent finds an item queued, running, or finished lately alike.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "channels/envelope.h"
#include "common/status.h"

namespace edgeflow::runtime {

struct TriggerInput {
  std::string input;    // the function's input name
  std::string channel;  // where it came from
  channels::Envelope envelope;
  std::string payload;  // the message payload (the data when it travelled inline)
  int64_t arrived_at_ms = 0;
};

struct PendingItem {
  std::string item_id;
  std::vector<TriggerInput> inputs;  // in arrival order
  int64_t first_arrival_ms = 0;
  uint32_t failed_attempts = 0;  // invocations that failed so far

  const TriggerInput* Find(std::string_view input) const;
};

// How an item ended: "done", "failed" (sent to the dead-letter channel) or "expired" (unjoined).
struct ItemOutcome {
  std::string state;
  int64_t at_ms = 0;
  std::string error;
};

std::string EncodePendingItem(const PendingItem& item);
// Corruption when the bytes are not a pending item this version wrote (an outcome is not one).
Result<PendingItem> DecodePendingItem(std::string_view bytes);
std::string EncodeItemOutcome(const ItemOutcome& outcome);
// Corruption when the bytes are not an outcome this version wrote (a pending item is not one).
Result<ItemOutcome> DecodeItemOutcome(std::string_view bytes);

// The key above, for one function; the prefix of all of its items (for recovery), and of
// everything it keeps.
std::string ItemKey(std::string_view pipeline, std::string_view function,
                    std::string_view item_id);
std::string ItemPrefix(std::string_view pipeline, std::string_view function);
std::string FunctionStatePrefix(std::string_view pipeline, std::string_view function);

}  // namespace edgeflow::runtime
