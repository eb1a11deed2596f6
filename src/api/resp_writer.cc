#include "api/resp_writer.h"

#include <charconv>

namespace edgeflow::api {

void RespWriter::SimpleString(std::string_view text) {
  buf_.push_back('+');
  buf_.append(text);
  buf_.append("\r\n");
  size_ += text.size() + 3;
}

void RespWriter::Error(std::string_view message) {
  const size_t start = buf_.size();
  buf_.push_back('-');
  buf_.append(message);
  for (size_t i = start + 1; i < buf_.size(); ++i) {
    if (buf_[i] == '\r' || buf_[i] == '\n') buf_[i] = ' ';
  }
  buf_.append("\r\n");
  size_ += message.size() + 3;
}

void RespWriter::Header(char type, int64_t value) {
  char tmp[24];
  tmp[0] = type;
  char* end = std::to_chars(tmp + 1, tmp + sizeof(tmp) - 2, value).ptr;
  *end++ = '\r';
  *end++ = '\n';
  Raw(std::string_view(tmp, end - tmp));
}

void RespWriter::Integer(int64_t value) { Header(':', value); }

void RespWriter::ArrayHeader(size_t count) { Header('*', static_cast<int64_t>(count)); }

void RespWriter::Bulk(std::string_view data) {
  Header('$', static_cast<int64_t>(data.size()));
  buf_.append(data);
  buf_.append("\r\n");
  size_ += data.size() + 2;
}

void RespWriter::Bulk(std::string&& data) {
  if (data.size() < kKeepThresholdBytes) {
    Bulk(std::string_view(data));
    return;
  }
  auto owner = std::make_shared<const std::string>(std::move(data));
  const std::string_view bytes = *owner;
  Keep(bytes, std::move(owner));
}

void RespWriter::Bulk(std::string_view data, std::shared_ptr<const std::string> owner) {
  if (data.size() < kShareThresholdBytes) {
    Bulk(data);
    return;
  }
  Keep(data, std::move(owner));
}

void RespWriter::Keep(std::string_view data, std::shared_ptr<const std::string> owner) {
  Header('$', static_cast<int64_t>(data.size()));
  size_ += data.size();
  kept_.push_back(Kept{buf_.size(), std::move(owner), data});
  Raw("\r\n");
}

void RespWriter::Pieces(std::vector<std::string_view>* out) const {
  const std::string_view buf(buf_);
  size_t from = 0;
  for (const Kept& k : kept_) {
    if (k.buf_offset > from) out->push_back(buf.substr(from, k.buf_offset - from));
    out->push_back(k.bytes);
    from = k.buf_offset;
  }
  if (buf.size() > from) out->push_back(buf.substr(from));
}

std::string RespWriter::ToString() const {
  std::vector<std::string_view> pieces;
  Pieces(&pieces);
  std::string s;
  s.reserve(size_);
  for (std::string_view p : pieces) s.append(p);
  return s;
}

void RespWriter::Clear() {
  buf_.clear();
  kept_.clear();
  size_ = 0;
}

}  // namespace edgeflow::api
