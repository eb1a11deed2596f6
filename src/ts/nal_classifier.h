// Classifies a coded picture from the NAL units at the start of its PES payload (H.264: ITU-T
// H.264 7.3.1 and 7.3.3; H.265: ITU-T H.265 7.3.1 and 7.3.6), which is where a muxer puts them:
// access unit delimiter, parameter sets and SEI, then the picture's first slice.
//
// H.264: an IDR slice (nal_unit_type 5) is a reference frame; another slice (1) is classified by
// slice_type from its header (I and SI: reference; P, SP and B: differential); an access unit
// delimiter's primary_pic_type is used when no slice is in the bytes given. H.265: an IRAP picture
// (nal_unit_type 16..23) is a reference frame; trailing and leading pictures (0..9) are
// differential (H.265 I pictures that are not IRAP are rare and decode only after an IRAP anyway,
// so a consumer that loses them loses little).
#pragma once

#include <cstdint>
#include <span>

#include "ts/frame_class.h"

namespace edgeflow::ts {

enum class VideoCodec : uint8_t { kUnknown = 0, kH264 = 1, kH265 = 2 };

struct PictureInfo {
  FrameClass frame_class = FrameClass::kUnknown;
  char slice_type = '?';   // 'I', 'P', 'B' (H.264, from the first slice or the AUD), else '?'
  bool found_slice = false;  // a slice NAL unit was in the bytes (the class rests on it)
  // Whether other pictures may reference this one (H.264 nal_ref_idc != 0; H.265 not a sub-layer
  // non-reference type). A differential picture nobody references can be dropped alone and the
  // rest still decodes; dropping a referenced one spoils what follows up to the next reference
  // frame. True when unknown.
  bool referenced = true;
};

// `es` is the start of the elementary stream data of a picture (the PES payload after the PES
// header), as many bytes as are at hand; bytes past a truncated NAL unit are not read.
PictureInfo ClassifyPicture(VideoCodec codec, std::span<const uint8_t> es);

}  // namespace edgeflow::ts
