#include "ts/nal_classifier.h"

#include <cstddef>
#include <optional>

namespace edgeflow::ts {

namespace {

// Reads Exp-Golomb codes from a NAL unit's payload, dropping emulation-prevention bytes
// (00 00 03 -> 00 00) as it goes; reports running out of bytes instead of reading past them.
class RbspBitReader {
 public:
  explicit RbspBitReader(std::span<const uint8_t> nal_payload) : bytes_(nal_payload) {}

  std::optional<uint32_t> ReadUe() {
    int leading_zeros = 0;
    while (true) {
      auto bit = ReadBit();
      if (!bit) return std::nullopt;
      if (*bit == 1) break;
      if (++leading_zeros > 31) return std::nullopt;  // not a code a conforming stream has
    }
    uint64_t value = 0;
    for (int i = 0; i < leading_zeros; ++i) {
      auto bit = ReadBit();
      if (!bit) return std::nullopt;
      value = (value << 1) | *bit;
    }
    return static_cast<uint32_t>((uint64_t{1} << leading_zeros) - 1 + value);
  }

 private:
  std::optional<uint32_t> ReadBit() {
    if (bit_ == 8) {
      if (!NextByte()) return std::nullopt;
    }
    const uint32_t bit = (current_ >> (7 - bit_)) & 1u;
    ++bit_;
    return bit;
  }

  bool NextByte() {
    if (at_ < bytes_.size() && zeros_ >= 2 && bytes_[at_] == 0x03) {
      ++at_;  // emulation prevention
      zeros_ = 0;
    }
    if (at_ >= bytes_.size()) return false;
    current_ = bytes_[at_++];
    zeros_ = current_ == 0 ? zeros_ + 1 : 0;
    bit_ = 0;
    return true;
  }

  std::span<const uint8_t> bytes_;
  size_t at_ = 0;
  int zeros_ = 0;
  uint8_t current_ = 0;
  int bit_ = 8;
};

// Where the NAL unit after the start code at `from` begins, or npos.
size_t NextNalStart(std::span<const uint8_t> es, size_t from) {
  for (size_t i = from; i + 3 <= es.size(); ++i) {
    if (es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1) return i + 3;
  }
  return std::span<const uint8_t>::extent;
}

constexpr size_t kNone = std::span<const uint8_t>::extent;

PictureInfo FromH264SliceType(uint32_t slice_type) {
  PictureInfo info;
  info.found_slice = true;
  // slice_type is 0..9 (H.264 7.4.3); anything else is a damaged header, and taking it modulo 5
  // could make a P picture pass for an I one.
  if (slice_type > 9) return info;
  switch (slice_type % 5) {
    case 0: info.slice_type = 'P'; info.frame_class = FrameClass::kDifferential; break;
    case 1: info.slice_type = 'B'; info.frame_class = FrameClass::kDifferential; break;
    case 2: info.slice_type = 'I'; info.frame_class = FrameClass::kReference; break;
    case 3: info.slice_type = 'P'; info.frame_class = FrameClass::kDifferential; break;  // SP
    default: info.slice_type = 'I'; info.frame_class = FrameClass::kReference; break;    // SI
  }
  return info;
}

}  // namespace

PictureInfo ClassifyPicture(VideoCodec codec, std::span<const uint8_t> es) {
  PictureInfo from_delimiter;  // what an access unit delimiter said, if nothing better comes
  for (size_t start = NextNalStart(es, 0); start != kNone && start < es.size();) {
    const size_t next = NextNalStart(es, start);
    const std::span<const uint8_t> nal =
        es.subspan(start, (next == kNone ? es.size() : next - 3) - start);
    start = next;
    if (nal.empty()) continue;
    if (codec == VideoCodec::kH264) {
      const uint8_t type = nal[0] & 0x1F;
      if (type == 9 && nal.size() >= 2) {
        // primary_pic_type 0 (I), 3 (SI) and 5 (I, SI): every slice is intra.
        const uint8_t primary_pic_type = nal[1] >> 5;
        if (primary_pic_type == 0 || primary_pic_type == 3 || primary_pic_type == 5) {
          from_delimiter.frame_class = FrameClass::kReference;
          from_delimiter.slice_type = 'I';
        }
      } else if (type == 1 || type == 2 || type == 5) {
        RbspBitReader reader(nal.subspan(1));
        const auto first_mb = reader.ReadUe();
        const auto slice_type = first_mb ? reader.ReadUe() : std::nullopt;
        if (!slice_type) {
          if (type == 5) {  // an IDR slice is a reference frame whatever its header says
            PictureInfo idr;
            idr.frame_class = FrameClass::kReference;
            idr.slice_type = 'I';
            idr.found_slice = true;
            return idr;
          }
          return from_delimiter;  // cut short: the slice cannot be read
        }
        PictureInfo info = FromH264SliceType(*slice_type);
        if (type == 5) info.frame_class = FrameClass::kReference;
        info.referenced = ((nal[0] >> 5) & 0x3) != 0;
        return info;
      }
    } else if (codec == VideoCodec::kH265) {
      if (nal.size() < 2) continue;  // a NAL unit header is two bytes
      const uint8_t type = (nal[0] >> 1) & 0x3F;
      if (type <= 9) {
        PictureInfo info;
        info.frame_class = FrameClass::kDifferential;
        info.found_slice = true;
        // TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N: sub-layer non-reference pictures.
        info.referenced = type % 2 == 1;
        return info;
      }
      if (type >= 16 && type <= 23) {
        PictureInfo info;
        info.frame_class = FrameClass::kReference;
        info.found_slice = true;
        return info;
      }
      if (type == 35 && nal.size() >= 3 && (nal[2] >> 5) == 0) {
        from_delimiter.frame_class = FrameClass::kReference;  // pic_type 0: I slices only
      }
    } else {
      break;
    }
  }
  return from_delimiter;
}

}  // namespace edgeflow::ts
