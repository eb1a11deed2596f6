// WorkerFrameReader: reads worker protocol frames (worker_frame.h) from a pipe, buffered.
//
// A worker that answers a batch writes its replies back to back, often in one write; reading them
// a frame at a time with exact-size reads would cost three reads (and polls) per frame. The
// reader takes whatever the pipe holds, up to 64 KiB at a time, and hands out whole frames from
// its buffer, keeping the bytes of the next frame for the next call.
//
// Thread-compatible: one reader per file descriptor, used from one thread at a time.
#pragma once

#include <chrono>
#include <string>

#include "common/status.h"
#include "runtime/worker_frame.h"

namespace edgeflow::runtime {

class WorkerFrameReader {
 public:
  WorkerFrameReader(int fd, FrameLimits limits) : fd_(fd), limits_(limits) {}

  // The next whole frame, waiting at most until `deadline`.
  // Errors: DeadlineExceeded when the deadline passes, OutOfRange("end of stream") on EOF before
  // the frame's first byte, InvalidArgument for a malformed or truncated frame, IoError for read
  // errors. After an error the reader is not usable any more (the stream is out of step).
  Result<WorkerFrame> Next(std::chrono::steady_clock::time_point deadline);

  // Bytes read but not yet handed out (part of a frame still coming, or frames not asked for).
  size_t buffered() const { return end_ - start_; }

 private:
  // Reads until at least `size` bytes are buffered; `what` names the part for messages.
  Status FillTo(size_t size, std::chrono::steady_clock::time_point deadline, const char* what);

  const int fd_;
  const FrameLimits limits_;
  // buffer_[start_, end_) holds what was read and not yet handed out; its size is its capacity
  // (resizing a string to read into it would zero the space first, at every read).
  std::string buffer_;
  size_t start_ = 0;
  size_t end_ = 0;
};

}  // namespace edgeflow::runtime
