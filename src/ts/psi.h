// Program-specific information: the PAT (which PID carries each program's PMT) and the PMT (which
// PIDs carry the program's elementary streams, and of which type), ISO/IEC 13818-1, 2.4.4.
//
// Sections are checked in full (lengths, CRC-32) before anything in them is believed.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"

namespace edgeflow::ts {

// stream_type values that matter here (ISO/IEC 13818-1, table 2-34).
inline constexpr uint8_t kStreamTypeH264 = 0x1B;
inline constexpr uint8_t kStreamTypeH265 = 0x24;

struct PatEntry {
  uint16_t program_number = 0;
  uint16_t pmt_pid = 0;
};

struct PmtStream {
  uint8_t stream_type = 0;
  uint16_t pid = 0;
};

struct Pmt {
  uint16_t program_number = 0;
  uint16_t pcr_pid = 0;
  std::vector<PmtStream> streams;
};

// A section from the start of a PSI payload (after the pointer field is applied: `payload` is the
// payload of a packet with payload_unit_start set). Sections longer than one packet are not
// supported (a PAT or PMT of a camera fits in one by far); they are InvalidArgument like any
// section whose length runs past its bytes, whose CRC does not match, or whose table id is wrong.
Result<std::vector<PatEntry>> ParsePat(std::span<const uint8_t> payload);
Result<Pmt> ParsePmt(std::span<const uint8_t> payload);

// CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, no reflection, no final xor); a section with
// its CRC included checks to 0.
uint32_t Crc32Mpeg2(std::span<const uint8_t> bytes);

}  // namespace edgeflow::ts
