// Fuzzes the sensor's quality message (fanout/sensor_quality.h), which anyone who can publish on
// the broker can send: parsing must succeed or fail cleanly; what is accepted must be a policy the
// decision code can run (den > 0, num <= den, a known mode) and must read back the same once
// written. The same bytes as command-line text go through ParseKeepFraction, which must either
// refuse them and leave the policy alone or set a fraction within the same bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fanout/sensor_quality.h"

namespace {

bool Sound(const ef_consumer_policy& p) {
  return p.keep_den > 0 && p.keep_num <= p.keep_den &&
         (p.mode == EF_DROP_FRAME || p.mode == EF_DROP_PACKET);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeflow::fanout;
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  auto parsed = ParseSensorQuality(in);
  if (parsed) {
    if (!Sound(*parsed)) std::abort();
    auto again = ParseSensorQuality(SensorQualityJson(*parsed));
    if (!again || again->keep_num != parsed->keep_num || again->keep_den != parsed->keep_den ||
        again->mode != parsed->mode) {
      std::abort();
    }
  } else if (parsed.error().message().empty()) {
    std::abort();  // every refusal says why
  }

  ef_consumer_policy policy = FullQuality();
  policy.keep_num = 2;
  policy.keep_den = 3;
  if (ParseKeepFraction(in, &policy).ok()) {
    if (!Sound(policy)) std::abort();
  } else if (policy.keep_num != 2 || policy.keep_den != 3) {
    std::abort();
  }
  return 0;
}
