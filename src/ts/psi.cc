#include "ts/psi.h"

#include <string>

namespace edgeflow::ts {

namespace {

constexpr uint8_t kPatTableId = 0x00;
constexpr uint8_t kPmtTableId = 0x02;

uint16_t Be16(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint16_t>((b[at] << 8) | b[at + 1]);
}

// The section at the start of a payload whose unit starts here: pointer field applied, lengths
// and CRC checked, table id as expected. Returns the section without its CRC.
Result<std::span<const uint8_t>> Section(std::span<const uint8_t> payload, uint8_t table_id,
                                         const char* name) {
  if (payload.empty()) return Error(Status::InvalidArgument(std::string(name) + ": no pointer field"));
  const size_t start = 1 + size_t{payload[0]};
  if (start + 3 > payload.size()) {
    return Error(Status::InvalidArgument(std::string(name) + ": pointer field runs past the payload"));
  }
  std::span<const uint8_t> rest = payload.subspan(start);
  if (rest[0] != table_id) {
    return Error(Status::InvalidArgument(std::string(name) + ": table id " +
                                         std::to_string(rest[0]) + ", expected " +
                                         std::to_string(table_id)));
  }
  const size_t section_length = Be16(rest, 1) & 0x0FFF;
  // The fixed part after section_length (5 bytes) plus the CRC (4).
  if (section_length < 9 || 3 + section_length > rest.size()) {
    return Error(Status::InvalidArgument(std::string(name) + ": section_length " +
                                         std::to_string(section_length) +
                                         " does not fit the packet"));
  }
  const std::span<const uint8_t> section = rest.first(3 + section_length);
  if (Crc32Mpeg2(section) != 0) {
    return Error(Status::InvalidArgument(std::string(name) + ": CRC mismatch"));
  }
  return section.first(section.size() - 4);
}

}  // namespace

uint32_t Crc32Mpeg2(std::span<const uint8_t> bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (uint8_t byte : bytes) {
    crc ^= uint32_t{byte} << 24;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x80000000u) != 0 ? (crc << 1) ^ 0x04C11DB7u : crc << 1;
    }
  }
  return crc;
}

Result<std::vector<PatEntry>> ParsePat(std::span<const uint8_t> payload) {
  auto section = Section(payload, kPatTableId, "PAT");
  if (!section) return Error(section.error());
  // After the 8-byte header: 4 bytes per program.
  std::span<const uint8_t> entries = section->subspan(8);
  if (entries.size() % 4 != 0) {
    return Error(Status::InvalidArgument("PAT: program loop is not a multiple of 4 bytes"));
  }
  std::vector<PatEntry> pat;
  for (size_t at = 0; at < entries.size(); at += 4) {
    PatEntry entry;
    entry.program_number = Be16(entries, at);
    entry.pmt_pid = Be16(entries, at + 2) & 0x1FFF;
    pat.push_back(entry);
  }
  return pat;
}

Result<Pmt> ParsePmt(std::span<const uint8_t> payload) {
  auto section = Section(payload, kPmtTableId, "PMT");
  if (!section) return Error(section.error());
  const std::span<const uint8_t> s = *section;
  if (s.size() < 12) return Error(Status::InvalidArgument("PMT: section too short"));
  Pmt pmt;
  pmt.program_number = Be16(s, 3);
  pmt.pcr_pid = Be16(s, 8) & 0x1FFF;
  const size_t program_info_length = Be16(s, 10) & 0x0FFF;
  size_t at = 12 + program_info_length;
  if (at > s.size()) {
    return Error(Status::InvalidArgument("PMT: program_info_length runs past the section"));
  }
  while (at < s.size()) {
    if (at + 5 > s.size()) {
      return Error(Status::InvalidArgument("PMT: truncated elementary stream entry"));
    }
    PmtStream stream;
    stream.stream_type = s[at];
    stream.pid = Be16(s, at + 1) & 0x1FFF;
    const size_t es_info_length = Be16(s, at + 3) & 0x0FFF;
    at += 5 + es_info_length;
    if (at > s.size()) {
      return Error(Status::InvalidArgument("PMT: ES_info_length runs past the section"));
    }
    pmt.streams.push_back(stream);
  }
  return pmt;
}

}  // namespace edgeflow::ts
