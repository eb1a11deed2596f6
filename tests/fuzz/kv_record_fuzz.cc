// Fuzzes the decoders of the on-disk records (item records and change records): any bytes must
// decode or fail cleanly, and whatever decodes must survive an encode/decode round trip unchanged.
// (Byte equality is too strong: a varint has more than one encoding of the same value.)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "kv/change_codec.h"
#include "kv/record_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  edgeflow::kv::Record record;
  if (edgeflow::kv::DecodeRecord(in, &record).ok()) {
    std::string again;
    edgeflow::kv::EncodeRecord(record, record.inline_value, &again);
    edgeflow::kv::Record second;
    if (!edgeflow::kv::DecodeRecord(again, &second).ok() || second.flags != record.flags ||
        second.meta.version != record.meta.version || second.meta.seq != record.meta.seq ||
        second.meta.expires_at_ms != record.meta.expires_at_ms ||
        second.meta.content_type != record.meta.content_type ||
        second.meta.size != record.meta.size || second.inline_value != record.inline_value) {
      std::abort();
    }
  }

  edgeflow::kv::Change change;
  if (edgeflow::kv::DecodeChange(1, in, &change).ok()) {
    std::string again;
    edgeflow::kv::EncodeChange(change, &again);
    edgeflow::kv::Change second;
    if (!edgeflow::kv::DecodeChange(1, again, &second).ok() || second.key != change.key ||
        second.ns != change.ns || second.version != change.version || second.size != change.size) {
      std::abort();
    }
  }
  return 0;
}
