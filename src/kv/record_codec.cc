#include "kv/record_codec.h"

#include "kv/coding.h"

namespace edgeflow::kv {

void EncodeRecord(const Record& record, std::string_view inline_value, std::string* out) {
  out->push_back(static_cast<char>(Record::kFormat));
  out->push_back(static_cast<char>(record.flags));
  coding::PutFixed64(out, record.meta.version.hlc);
  coding::PutFixed64(out, record.meta.version.origin);
  coding::PutFixed64(out, record.meta.seq);
  coding::PutFixed64(out, static_cast<uint64_t>(record.meta.expires_at_ms));
  coding::PutLengthPrefixed(out, record.meta.content_type);
  coding::PutVarint64(out, record.meta.size);
  if (!record.tombstone() && !record.external()) out->append(inline_value);
}

Status DecodeRecord(std::string_view in, Record* record) {
  coding::Reader r(in);
  uint8_t format = 0;
  uint64_t expires = 0;
  std::string_view content_type;
  if (!r.GetByte(&format)) return Status::Corruption("empty item record");
  if (format != Record::kFormat) {
    return Status::Corruption("unknown item record format " + std::to_string(format));
  }
  if (!r.GetByte(&record->flags) || !r.GetFixed64(&record->meta.version.hlc) ||
      !r.GetFixed64(&record->meta.version.origin) || !r.GetFixed64(&record->meta.seq) ||
      !r.GetFixed64(&expires) || !r.GetLengthPrefixed(&content_type) ||
      !r.GetVarint64(&record->meta.size)) {
    return Status::Corruption("truncated item record");
  }
  record->meta.expires_at_ms = static_cast<int64_t>(expires);
  record->meta.content_type.assign(content_type);
  record->inline_value = {};
  if (record->tombstone() || record->external()) {
    if (!r.rest().empty()) return Status::Corruption("trailing bytes after item record");
  } else {
    if (r.rest().size() != record->meta.size) {
      return Status::Corruption("item record value size mismatch");
    }
    record->inline_value = r.rest();
  }
  return Status::Ok();
}

}  // namespace edgeflow::kv
