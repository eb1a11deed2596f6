#include "runtime/worker_frame.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace edgeflow::runtime {

namespace {

void AppendBigEndian32(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>((v >> 24) & 0xff));
  out->push_back(static_cast<char>((v >> 16) & 0xff));
  out->push_back(static_cast<char>((v >> 8) & 0xff));
  out->push_back(static_cast<char>(v & 0xff));
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

Result<uint32_t> DecodeFrameLength(const char* prefix) {
  const auto* u = reinterpret_cast<const unsigned char*>(prefix);
  const uint32_t length =
      (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
  if (length < 2 || length > kMaxFrameHeaderBytes) {
    return Error(Status::InvalidArgument("bad frame: header length " + std::to_string(length) +
                                         " is not in 2.." + std::to_string(kMaxFrameHeaderBytes)));
  }
  return length;
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
  auto length = DecodeFrameLength(bytes.data());
  if (!length) return Error(length.error());
  const uint32_t header_size = *length;
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
