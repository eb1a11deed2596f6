// Encoding of the `changelog` column family. Key: the sequence number, 8 bytes big-endian. Value:
//
//   u8 format (=1) | u8 op | fixed64 hlc | fixed64 origin | fixed64 expires_at_ms | varint size
//   | varint ns length | ns | varint key length | key | varint content_type length | content_type
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "kv/item.h"

namespace edgeflow::kv {

void EncodeChange(const Change& change, std::string* out);
// `seq` comes from the key; strings are copied into *change.
Status DecodeChange(uint64_t seq, std::string_view in, Change* change);

}  // namespace edgeflow::kv
