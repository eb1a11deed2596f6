#include "ts/frame_class.h"

namespace edgeflow::ts {

std::string_view FrameClassName(FrameClass c) {
  switch (c) {
    case FrameClass::kReference: return "reference";
    case FrameClass::kDifferential: return "differential";
    case FrameClass::kUnknown: break;
  }
  return "unknown";
}

}  // namespace edgeflow::ts
