// WorkerFrame: one frame of the function worker protocol (docs/function-protocol.md), and its
// encoding and decoding on the node's side.
//
//   u32 big-endian header length H | H bytes: JSON object header | blobs (sizes in header.blobs)
//
// The decoder is strict: anything that is not exactly a well-formed frame is a protocol error
// with a message that says what was wrong, because the only use of a bad frame is to tell the
// function's author why the worker was killed.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace edgeflow::runtime {

inline constexpr size_t kMaxFrameHeaderBytes = 1 << 20;

struct WorkerFrame {
  nlohmann::json header = nlohmann::json::object();  // has "type"; "blobs" is set by Encode
  std::vector<std::string> blobs;

  const std::string& type() const;  // "" when absent or not a string
  // Appends a blob and returns its index (for "blob" members).
  size_t AddBlob(std::string data);
  // The blob that header member `member` ("blob") of `entry` refers to; InvalidArgument when the
  // member is missing, not an integer, or out of range.
  Result<const std::string*> BlobOf(const nlohmann::json& entry,
                                    std::string_view member = "blob") const;
};

// The frame as bytes (header.blobs is filled from `blobs`).
std::string EncodeWorkerFrame(WorkerFrame frame);

// Limits the decoder enforces.
struct FrameLimits {
  size_t max_blob_bytes = 64 << 20;
  size_t max_total_blob_bytes = 256 << 20;
};

// The header length a frame's 4-byte prefix announces; InvalidArgument outside 2..1 MiB.
Result<uint32_t> DecodeFrameLength(const char* prefix);

// Decodes the header part of a frame whose 4-byte length prefix was already read: validates the
// JSON and the announced blob sizes against `limits`; returns the frame (blobs still empty) and
// fills `blob_sizes`.
Result<WorkerFrame> DecodeFrameHeader(std::string_view header_bytes, const FrameLimits& limits,
                                      std::vector<uint64_t>* blob_sizes);

// Writes all of `bytes` to `fd` (EINTR-safe). IoError (e.g. EPIPE: the worker is gone).
Status WriteAll(int fd, std::string_view bytes);

// Decodes a whole frame held in memory (for tests and the fuzzer): the frame and the bytes used.
Result<std::pair<WorkerFrame, size_t>> DecodeWorkerFrame(std::string_view bytes,
                                                         const FrameLimits& limits);

}  // namespace edgeflow::runtime
