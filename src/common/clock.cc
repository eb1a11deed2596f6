#include "common/clock.h"

namespace edgeflow {

Clock* SystemClock::Default() {
  static SystemClock* const clock = new SystemClock();
  return clock;
}

}  // namespace edgeflow
