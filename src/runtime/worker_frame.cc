#include "runtime/worker_frame.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace edgeflow::runtime {

namespace {

uint32_t ReadBigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

void AppendBigEndian32(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>((v >> 24) & 0xff));
  out->push_back(static_cast<char>((v >> 16) & 0xff));
  out->push_back(static_cast<char>((v >> 8) & 0xff));
  out->push_back(static_cast<char>(v & 0xff));
}

// Reads exactly `size` bytes into `out`; `what` names the part for messages.
Status ReadExactly(int fd, char* out, size_t size, std::chrono::steady_clock::time_point deadline,
                   const char* what, bool* saw_nothing) {
  size_t done = 0;
  while (done < size) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return Status::DeadlineExceeded(std::string("timed out reading ") + what);
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(wait.count() + 1, 1 << 30)));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(std::string("poll: ") + std::strerror(errno));
    }
    if (ready == 0) continue;
    const ssize_t n = ::read(fd, out + done, size - done);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Status::IoError(std::string("read: ") + std::strerror(errno));
    }
    if (n == 0) {
      if (done == 0 && saw_nothing != nullptr && *saw_nothing) {
        return Status::OutOfRange("end of stream");
      }
      return Status::InvalidArgument(std::string("truncated frame: the stream ended inside the ") +
                                     what);
    }
    done += static_cast<size_t>(n);
    if (saw_nothing != nullptr) *saw_nothing = false;
  }
  return Status::Ok();
}

}  // namespace

const std::string& WorkerFrame::type() const {
  static const std::string kEmpty;
  auto it = header.find("type");
  if (it == header.end() || !it->is_string()) return kEmpty;
  return it->get_ref<const std::string&>();
}

size_t WorkerFrame::AddBlob(std::string data) {
  blobs.push_back(std::move(data));
  return blobs.size() - 1;
}

Result<const std::string*> WorkerFrame::BlobOf(const nlohmann::json& entry,
                                               std::string_view member) const {
  auto it = entry.find(member);
  // Parsed JSON holds non-negative integers as unsigned; built in code, they may be signed.
  const bool is_index = it != entry.end() && (it->is_number_unsigned() ||
                                              (it->is_number_integer() && it->get<int64_t>() >= 0));
  if (!is_index) {
    return Error(Status::InvalidArgument("\"" + std::string(member) +
                                         "\" must be a blob index (a non-negative integer)"));
  }
  const uint64_t index = it->get<uint64_t>();
  if (index >= blobs.size()) {
    return Error(Status::InvalidArgument("blob index " + std::to_string(index) +
                                         " is out of range (the frame has " +
                                         std::to_string(blobs.size()) + " blobs)"));
  }
  return &blobs[index];
}

std::string EncodeWorkerFrame(WorkerFrame frame) {
  nlohmann::json sizes = nlohmann::json::array();
  size_t total = 0;
  for (const std::string& blob : frame.blobs) {
    sizes.push_back(blob.size());
    total += blob.size();
  }
  if (!frame.blobs.empty()) frame.header["blobs"] = std::move(sizes);
  const std::string header =
      frame.header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(4 + header.size() + total);
  AppendBigEndian32(&out, static_cast<uint32_t>(header.size()));
  out += header;
  for (const std::string& blob : frame.blobs) out += blob;
  return out;
}

Result<WorkerFrame> DecodeFrameHeader(std::string_view header_bytes, const FrameLimits& limits,
                                      std::vector<uint64_t>* blob_sizes) {
  WorkerFrame frame;
  frame.header = nlohmann::json::parse(header_bytes, nullptr, /*allow_exceptions=*/false);
  if (frame.header.is_discarded()) {
    return Error(Status::InvalidArgument("the frame header is not valid JSON"));
  }
  if (!frame.header.is_object()) {
    return Error(Status::InvalidArgument("the frame header is not a JSON object"));
  }
  if (frame.type().empty()) {
    return Error(Status::InvalidArgument("the frame header has no \"type\" string"));
  }
  blob_sizes->clear();
  auto blobs = frame.header.find("blobs");
  if (blobs != frame.header.end()) {
    if (!blobs->is_array()) {
      return Error(Status::InvalidArgument("\"blobs\" must be an array of sizes"));
    }
    uint64_t total = 0;
    for (const nlohmann::json& size : *blobs) {
      if (!size.is_number_unsigned()) {
        return Error(Status::InvalidArgument("\"blobs\" must hold non-negative integers"));
      }
      const uint64_t n = size.get<uint64_t>();
      if (n > limits.max_blob_bytes) {
        return Error(Status::ResourceExhausted(
            "a blob of " + std::to_string(n) + " bytes is over the limit of " +
            std::to_string(limits.max_blob_bytes) + " bytes (limits.max_payload_bytes)"));
      }
      total += n;
      if (total > limits.max_total_blob_bytes) {
        return Error(Status::ResourceExhausted(
            "the frame's blobs exceed " + std::to_string(limits.max_total_blob_bytes) +
            " bytes in all"));
      }
      blob_sizes->push_back(n);
    }
  }
  return frame;
}

Result<WorkerFrame> ReadWorkerFrame(int fd, std::chrono::steady_clock::time_point deadline,
                                    const FrameLimits& limits) {
  char prefix[4];
  bool saw_nothing = true;
  if (Status s = ReadExactly(fd, prefix, 4, deadline, "frame length", &saw_nothing); !s.ok()) {
    return Error(std::move(s));
  }
  const uint32_t header_size = ReadBigEndian32(prefix);
  if (header_size < 2 || header_size > kMaxFrameHeaderBytes) {
    return Error(Status::InvalidArgument("bad frame: header length " +
                                         std::to_string(header_size) + " is not in 2.." +
                                         std::to_string(kMaxFrameHeaderBytes)));
  }
  std::string header(header_size, '\0');
  if (Status s = ReadExactly(fd, header.data(), header.size(), deadline, "frame header", nullptr);
      !s.ok()) {
    return Error(std::move(s));
  }
  std::vector<uint64_t> sizes;
  auto frame = DecodeFrameHeader(header, limits, &sizes);
  if (!frame) return frame;
  frame->blobs.reserve(sizes.size());
  for (uint64_t size : sizes) {
    std::string blob(size, '\0');
    if (Status s = ReadExactly(fd, blob.data(), blob.size(), deadline, "frame blobs", nullptr);
        !s.ok()) {
      return Error(std::move(s));
    }
    frame->blobs.push_back(std::move(blob));
  }
  return frame;
}

Status WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Status::IoError(std::string("write: ") + std::strerror(errno));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Result<std::pair<WorkerFrame, size_t>> DecodeWorkerFrame(std::string_view bytes,
                                                         const FrameLimits& limits) {
  if (bytes.size() < 4) return Error(Status::InvalidArgument("truncated frame length"));
  const uint32_t header_size = ReadBigEndian32(bytes.data());
  if (header_size < 2 || header_size > kMaxFrameHeaderBytes) {
    return Error(Status::InvalidArgument("bad frame: header length " +
                                         std::to_string(header_size)));
  }
  if (bytes.size() - 4 < header_size) return Error(Status::InvalidArgument("truncated header"));
  std::vector<uint64_t> sizes;
  auto frame = DecodeFrameHeader(bytes.substr(4, header_size), limits, &sizes);
  if (!frame) return Error(frame.error());
  size_t offset = 4 + header_size;
  for (uint64_t size : sizes) {
    if (bytes.size() - offset < size) return Error(Status::InvalidArgument("truncated blobs"));
    frame->blobs.emplace_back(bytes.substr(offset, size));
    offset += size;
  }
  return std::make_pair(std::move(*frame), offset);
}

}  // namespace edgeflow::runtime
