#include "ts/ts_packet.h"

#include <string>

namespace edgeflow::ts {

Result<TsPacket> ParsePacket(std::span<const uint8_t> bytes) {
  if (bytes.size() != kPacketBytes) {
    return Error(Status::InvalidArgument("a TS packet is 188 bytes, not " +
                                         std::to_string(bytes.size())));
  }
  if (bytes[0] != kSyncByte) return Error(Status::InvalidArgument("no sync byte (0x47)"));
  TsPacket packet;
  packet.transport_error = (bytes[1] & 0x80) != 0;
  packet.payload_unit_start = (bytes[1] & 0x40) != 0;
  packet.pid = static_cast<uint16_t>(((bytes[1] & 0x1F) << 8) | bytes[2]);
  packet.scrambling = static_cast<uint8_t>(bytes[3] >> 6);
  const uint8_t adaptation_control = (bytes[3] >> 4) & 0x3;
  packet.continuity_counter = bytes[3] & 0x0F;
  if (adaptation_control == 0) {
    return Error(Status::InvalidArgument("adaptation_field_control 0 is reserved"));
  }
  size_t offset = 4;
  if ((adaptation_control & 0x2) != 0) {
    const size_t length = bytes[4];
    if (5 + length > kPacketBytes) {
      return Error(Status::InvalidArgument("adaptation_field_length " + std::to_string(length) +
                                           " runs past the packet"));
    }
    AdaptationField& field = packet.adaptation.emplace();
    if (length > 0) {
      const uint8_t flags = bytes[5];
      field.discontinuity = (flags & 0x80) != 0;
      field.random_access = (flags & 0x40) != 0;
      field.es_priority = (flags & 0x20) != 0;
      if ((flags & 0x10) != 0) {
        if (length < 7) {
          return Error(Status::InvalidArgument("the adaptation field is too short for its PCR"));
        }
        const uint64_t base = (uint64_t{bytes[6]} << 25) | (uint64_t{bytes[7]} << 17) |
                              (uint64_t{bytes[8]} << 9) | (uint64_t{bytes[9]} << 1) |
                              (uint64_t{bytes[10]} >> 7);
        const uint64_t extension = (uint64_t{bytes[10] & 0x1u} << 8) | bytes[11];
        field.pcr = base * 300 + extension;
      }
    }
    offset = 5 + length;
  }
  if ((adaptation_control & 0x1) != 0) packet.payload = bytes.subspan(offset);
  return packet;
}

}  // namespace edgeflow::ts
