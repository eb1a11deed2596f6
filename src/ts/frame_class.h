// What a video frame is to a consumer that tolerates loss: a reference frame (an I or IDR/IRAP
// picture, which the frames after it need) or a differential one (P or B). The values are shared
// with the kernel fan-out's maps and counters, so they are fixed.
#pragma once

#include <cstdint>
#include <string_view>

namespace edgeflow::ts {

enum class FrameClass : uint8_t {
  kUnknown = 0,       // not classified (yet): no frame start seen, or nothing recognisable in it
  kReference = 1,     // I / IDR / IRAP
  kDifferential = 2,  // P / B
};

std::string_view FrameClassName(FrameClass c);

}  // namespace edgeflow::ts
