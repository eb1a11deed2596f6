// TsPacket: one 188-byte MPEG transport stream packet (ISO/IEC 13818-1, 2.4.3), parsed strictly.
//
// This library is the reference for everything in edgeflow that looks inside sensor video: the
// tests compare what the kernel fan-out and the userspace replicator decide against what it says.
// It never trusts a length from the wire: every field that points into the packet is checked
// against the packet's end, and a packet that lies is an error with the reason, not a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "common/status.h"

namespace edgeflow::ts {

inline constexpr size_t kPacketBytes = 188;
inline constexpr uint8_t kSyncByte = 0x47;
inline constexpr uint16_t kPatPid = 0x0000;
inline constexpr uint16_t kNullPid = 0x1FFF;

struct AdaptationField {
  bool discontinuity = false;
  bool random_access = false;  // the stream may be decoded from here (set by muxers on key frames)
  bool es_priority = false;
  std::optional<uint64_t> pcr;  // program clock reference, in 27 MHz ticks
};

struct TsPacket {
  uint16_t pid = 0;
  bool transport_error = false;
  bool payload_unit_start = false;  // a PES packet or a PSI section starts in this payload
  uint8_t scrambling = 0;
  uint8_t continuity_counter = 0;
  std::optional<AdaptationField> adaptation;
  std::span<const uint8_t> payload;  // into the parsed bytes; empty when the packet carries none
};

// Parses `bytes` (exactly kPacketBytes). InvalidArgument when the size is wrong, the sync byte is
// missing, the adaptation field's length runs past the packet, or the adaptation_field_control is
// the reserved value 0.
Result<TsPacket> ParsePacket(std::span<const uint8_t> bytes);

}  // namespace edgeflow::ts
