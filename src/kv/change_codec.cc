#include "kv/change_codec.h"

#include "kv/coding.h"

namespace edgeflow::kv {
namespace {
constexpr uint8_t kChangeFormat = 1;
}  // namespace

void EncodeChange(const Change& change, std::string* out) {
  out->push_back(static_cast<char>(kChangeFormat));
  out->push_back(static_cast<char>(change.op));
  coding::PutFixed64(out, change.version.hlc);
  coding::PutFixed64(out, change.version.origin);
  coding::PutFixed64(out, static_cast<uint64_t>(change.expires_at_ms));
  coding::PutVarint64(out, change.size);
  coding::PutLengthPrefixed(out, change.ns);
  coding::PutLengthPrefixed(out, change.key);
  coding::PutLengthPrefixed(out, change.content_type);
}

Status DecodeChange(uint64_t seq, std::string_view in, Change* change) {
  coding::Reader r(in);
  uint8_t format = 0, op = 0;
  uint64_t expires = 0;
  std::string_view ns, key, content_type;
  if (!r.GetByte(&format) || format != kChangeFormat) {
    return Status::Corruption("unknown change record format at seq " + std::to_string(seq));
  }
  if (!r.GetByte(&op) || !r.GetFixed64(&change->version.hlc) ||
      !r.GetFixed64(&change->version.origin) || !r.GetFixed64(&expires) ||
      !r.GetVarint64(&change->size) || !r.GetLengthPrefixed(&ns) || !r.GetLengthPrefixed(&key) ||
      !r.GetLengthPrefixed(&content_type) || !r.rest().empty()) {
    return Status::Corruption("malformed change record at seq " + std::to_string(seq));
  }
  if (op != static_cast<uint8_t>(ChangeOp::kPut) && op != static_cast<uint8_t>(ChangeOp::kDelete)) {
    return Status::Corruption("unknown change op at seq " + std::to_string(seq));
  }
  change->seq = seq;
  change->op = static_cast<ChangeOp>(op);
  change->expires_at_ms = static_cast<int64_t>(expires);
  change->ns.assign(ns);
  change->key.assign(key);
  change->content_type.assign(content_type);
  return Status::Ok();
}

}  // namespace edgeflow::kv
