#include "runtime/worker_frame_reader.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace edgeflow::runtime {

namespace {

constexpr size_t kReadChunkBytes = 64 << 10;

}  // namespace

Status WorkerFrameReader::FillTo(size_t size, std::chrono::steady_clock::time_point deadline,
                                 const char* what) {
  while (buffered() < size) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return Status::DeadlineExceeded(std::string("timed out reading ") + what);
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    pollfd p{fd_, POLLIN, 0};
    const int ready =
        ::poll(&p, 1, static_cast<int>(std::min<int64_t>(wait.count() + 1, 1 << 30)));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(std::string("poll: ") + std::strerror(errno));
    }
    if (ready == 0) continue;
    // Room for at least a chunk, or the rest of the frame: consumed bytes make way first, and
    // the buffer grows only for a frame larger than it.
    const size_t room_wanted = std::max(kReadChunkBytes, size - buffered());
    if (buffer_.size() - end_ < room_wanted) {
      std::memmove(buffer_.data(), buffer_.data() + start_, buffered());
      end_ -= start_;
      start_ = 0;
      if (buffer_.size() - end_ < room_wanted) buffer_.resize(end_ + room_wanted);
    }
    const ssize_t n = ::read(fd_, buffer_.data() + end_, buffer_.size() - end_);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Status::IoError(std::string("read: ") + std::strerror(errno));
    }
    end_ += static_cast<size_t>(n);
    if (n == 0) {
      if (buffered() == 0) return Status::OutOfRange("end of stream");
      return Status::InvalidArgument(std::string("truncated frame: the stream ended inside the ") +
                                     what);
    }
  }
  return Status::Ok();
}

Result<WorkerFrame> WorkerFrameReader::Next(std::chrono::steady_clock::time_point deadline) {
  if (Status s = FillTo(4, deadline, "frame length"); !s.ok()) return Error(std::move(s));
  auto length = DecodeFrameLength(buffer_.data() + start_);
  if (!length) return Error(length.error());
  const uint32_t header_size = *length;
  if (Status s = FillTo(4 + size_t{header_size}, deadline, "frame header"); !s.ok()) {
    return Error(std::move(s));
  }
  std::vector<uint64_t> sizes;
  auto frame = DecodeFrameHeader(std::string_view(buffer_).substr(start_ + 4, header_size),
                                 limits_, &sizes);
  if (!frame) return frame;
  size_t total = 4 + size_t{header_size};
  for (uint64_t size : sizes) total += size;  // bounded by limits_.max_total_blob_bytes
  if (Status s = FillTo(total, deadline, "frame blobs"); !s.ok()) return Error(std::move(s));
  size_t offset = start_ + 4 + header_size;
  frame->blobs.reserve(sizes.size());
  for (uint64_t size : sizes) {
    frame->blobs.emplace_back(buffer_, offset, size);
    offset += size;
  }
  start_ += total;
  if (start_ == end_) {
    start_ = end_ = 0;
    // A large frame's buffer is not kept for the worker's lifetime.
    if (buffer_.size() > 4 * kReadChunkBytes) std::string().swap(buffer_);
  }
  return frame;
}

}  // namespace edgeflow::runtime
