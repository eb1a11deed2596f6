// The quality a sensor sends its stream at, as the edge asks for it on the sensor's control
// channel (`_fanout/<sensor-id>/quality`, a retained MQTT message):
//
//   {"keep": "1/2", "mode": "frame"}
//
// "keep" is the fraction of differential (P/B) units the sensor keeps, in the fraction grammar of
// qoc_plan.h's ParseFraction: "num/den" (den > 0, num <= den, both below 2^32), a decimal in
// [0, 1] with at most 9 places ("0.25"), "0" or "1"; as a string or as a JSON number. "mode" is
// "frame" (drop whole pictures, so that what is sent still decodes; the default) or "packet" (drop
// whole datagrams of differential data). Other fields are ignored, so the edge may add some without
// breaking older sensors.
//
// The result is the drop policy of bpf/drop_policy.h, so that the sensor suppresses exactly what
// the edge's fan-out would drop for a consumer with that policy.
//
// The message comes from the network: anything malformed is an InvalidArgument that says what is
// wrong, never a crash, and a message over kMaxSensorQualityBytes is refused before it is parsed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "fanout/bpf/drop_policy.h"

namespace edgeflow::fanout {

// A quality message is a few dozen bytes; anything much larger is not one.
inline constexpr size_t kMaxSensorQualityBytes = 4096;

// Parses a quality message (JSON, as above).
Result<ef_consumer_policy> ParseSensorQuality(std::string_view message);

// Sets policy->keep_num / keep_den from ParseFraction's grammar ("1/2", "0.25", "1"). For
// command-line flags; InvalidArgument (policy untouched) when the text is not a fraction.
Status ParseKeepFraction(std::string_view text, ef_consumer_policy* policy);

// "frame" -> EF_DROP_FRAME, "packet" -> EF_DROP_PACKET.
Status ParseDropMode(std::string_view text, ef_consumer_policy* policy);

// Everything kept, frame mode: what a sensor sends before it is told otherwise.
ef_consumer_policy FullQuality();

// "1/2" (keep_den 0 is written "1/1": the policy keeps everything).
std::string KeepText(const ef_consumer_policy& policy);
// "frame" or "packet".
std::string_view DropModeName(const ef_consumer_policy& policy);
// The message ParseSensorQuality reads back as `policy`: {"keep":"1/2","mode":"frame"}.
std::string SensorQualityJson(const ef_consumer_policy& policy);

}  // namespace edgeflow::fanout
