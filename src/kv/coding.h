// Little helpers for the on-disk encodings (docs/architecture.md, "On disk"): fixed-width little-
// endian integers, LEB128 varints, and big-endian keys that sort numerically.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace edgeflow::kv::coding {

inline void PutFixed64(std::string* out, uint64_t v) {
  char buf[8];
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out->append(buf, 8);
}

inline void PutVarint64(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

inline void PutLengthPrefixed(std::string* out, std::string_view s) {
  PutVarint64(out, s.size());
  out->append(s);
}

// Big-endian, so that byte order equals numeric order (change-log keys).
inline std::string BigEndian64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

inline bool ParseBigEndian64(std::string_view in, uint64_t* v) {
  if (in.size() != 8) return false;
  uint64_t r = 0;
  for (char c : in) r = (r << 8) | static_cast<uint8_t>(c);
  *v = r;
  return true;
}

// A cursor over encoded bytes; every Get* fails (returns false) instead of reading past the end.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool GetByte(uint8_t* v) {
    if (in_.empty()) return false;
    *v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool GetFixed64(uint64_t* v) {
    if (in_.size() < 8) return false;
    uint64_t r = 0;
    for (int i = 7; i >= 0; --i) r = (r << 8) | static_cast<uint8_t>(in_[i]);
    *v = r;
    in_.remove_prefix(8);
    return true;
  }
  bool GetVarint64(uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift <= 63; shift += 7) {
      if (in_.empty()) return false;
      uint8_t b = static_cast<uint8_t>(in_[0]);
      in_.remove_prefix(1);
      if (shift == 63 && b > 1) return false;  // would overflow 64 bits
      r |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *v = r;
        return true;
      }
    }
    return false;
  }
  bool GetLengthPrefixed(std::string_view* s) {
    uint64_t n = 0;
    if (!GetVarint64(&n) || n > in_.size()) return false;
    *s = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  std::string_view rest() const { return in_; }

 private:
  std::string_view in_;
};

}  // namespace edgeflow::kv::coding
