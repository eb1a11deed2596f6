// Fuzzes the decoding of worker protocol frames (runtime/worker_frame.h) and of pending-item
// records (runtime/pending_item.h): whatever the bytes, decoding returns a frame or an error,
// never crashes, and a decoded frame encodes back to a frame that decodes the same.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "runtime/pending_item.h"
#include "runtime/worker_frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  edgeflow::runtime::FrameLimits limits;
  limits.max_blob_bytes = 1 << 16;
  limits.max_total_blob_bytes = 1 << 18;
  auto frame = edgeflow::runtime::DecodeWorkerFrame(bytes, limits);
  if (frame) {
    const std::string again = edgeflow::runtime::EncodeWorkerFrame(frame->first);
    auto redecoded = edgeflow::runtime::DecodeWorkerFrame(again, limits);
    if (!redecoded || redecoded->first.blobs != frame->first.blobs ||
        redecoded->first.type() != frame->first.type()) {
      __builtin_trap();
    }
    for (const auto& [key, value] : frame->first.header.items()) {
      if (value.is_object()) (void)frame->first.BlobOf(value);
    }
  }
  auto item = edgeflow::runtime::DecodePendingItem(bytes);
  if (item) (void)edgeflow::runtime::EncodePendingItem(*item);
  auto outcome = edgeflow::runtime::DecodeItemOutcome(bytes);
  if (outcome) (void)edgeflow::runtime::EncodeItemOutcome(*outcome);
  return 0;
}
