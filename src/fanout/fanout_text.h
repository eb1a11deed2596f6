// The fan-out's values as users write them and as the API, the CLI and the saved configuration
// show them: codecs, drop modes and Ethernet addresses. Parsers name what they expected in their
// errors (the caller puts the field's name in front).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "fanout/bpf/drop_policy.h"
#include "fanout/fanout_program.h"

namespace edgeflow::fanout {

// "auto", "h264", "h265" (enum ef_codec).
Result<uint8_t> ParseCodec(std::string_view text);
std::string_view CodecName(uint8_t codec);

// "frame", "packet".
Result<ef_drop_mode> ParseDropMode(std::string_view text);
std::string_view DropModeName(ef_drop_mode mode);

// Six pairs of hex digits separated by ':' ("02:00:5e:10:00:01"), either case.
Result<MacAddress> ParseMac(std::string_view text);
std::string FormatMac(const MacAddress& mac);  // lower case

}  // namespace edgeflow::fanout
