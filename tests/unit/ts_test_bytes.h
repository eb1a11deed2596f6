// Builders for hand-made MPEG-TS test input: TS packets, PSI sections (with their CRC), PES headers
// and H.264 / H.265 NAL units. The builders follow ISO/IEC 13818-1, ITU-T H.264 and H.265 directly
// and share no code with src/ts, so a test whose input comes from here checks the library against
// the standards instead of against itself.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "ts/frame_class.h"

namespace edgeflow::ts {

// Makes GoogleTest print a FrameClass by name in failure messages.
inline void PrintTo(FrameClass c, std::ostream* os) { *os << FrameClassName(c); }

}  // namespace edgeflow::ts

namespace edgeflow::ts::test_bytes {

using Bytes = std::vector<uint8_t>;

inline constexpr size_t kTsBytes = 188;
inline constexpr size_t kTsPayloadBytes = 184;

// A builder asked for something it cannot build: a bug in the test, reported as a test failure
// (GoogleTest catches the exception) rather than silently producing other bytes.
inline void Require(bool condition, const std::string& what) {
  if (!condition) throw std::logic_error("test input builder: " + what);
}

inline void Append(Bytes* out, std::span<const uint8_t> bytes) {
  out->insert(out->end(), bytes.begin(), bytes.end());
}

inline Bytes Concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& part : parts) Append(&out, part);
  return out;
}

// CRC-32/MPEG-2 computed one bit at a time, the way the standard defines it (no table), so that a
// table-driven implementation in the library is checked against something written differently.
inline uint32_t BitwiseCrc32Mpeg2(std::span<const uint8_t> bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (uint8_t byte : bytes) {
    for (int bit = 7; bit >= 0; --bit) {
      const bool feedback = (((byte >> bit) & 1u) != 0) != ((crc & 0x80000000u) != 0);
      crc <<= 1;
      if (feedback) crc ^= 0x04C11DB7u;
    }
  }
  return crc;
}

// ---------------------------------------------------------------------------------------------
// TS packets (ISO/IEC 13818-1, 2.4.3.2 and 2.4.3.4)

struct AdaptationSpec {
  bool discontinuity = false;
  bool random_access = false;
  bool es_priority = false;
  std::optional<uint64_t> pcr_base;  // 33 bits, 90 kHz
  uint16_t pcr_extension = 0;        // 9 bits, 0..299
};

// One TS packet of `pid` carrying all of `payload`. An adaptation field is added when `adaptation`
// is given or when the payload does not fill the packet; it carries the flags, the PCR and the
// stuffing (0xFF) that makes the packet 188 bytes. An empty payload gives an adaptation-only
// packet (adaptation_field_control 2).
inline Bytes BuildPacket(uint16_t pid, bool payload_unit_start, uint8_t continuity_counter,
                         std::span<const uint8_t> payload,
                         const std::optional<AdaptationSpec>& adaptation = std::nullopt) {
  Require(pid <= 0x1FFF, "pid over 13 bits");
  const size_t flags_bytes = adaptation ? 2 + (adaptation->pcr_base ? 6 : 0) : 0;
  Require(payload.size() + flags_bytes <= kTsPayloadBytes, "payload does not fit in the packet");
  const size_t adaptation_total = kTsPayloadBytes - payload.size();  // length byte included
  uint8_t afc = 1;
  if (adaptation_total > 0) afc = payload.empty() ? 2 : 3;

  Bytes packet;
  packet.push_back(0x47);
  packet.push_back(static_cast<uint8_t>((payload_unit_start ? 0x40 : 0) | (pid >> 8)));
  packet.push_back(static_cast<uint8_t>(pid & 0xFF));
  packet.push_back(static_cast<uint8_t>((afc << 4) | (continuity_counter & 0x0F)));
  if (adaptation_total > 0) {
    packet.push_back(static_cast<uint8_t>(adaptation_total - 1));  // adaptation_field_length
    if (adaptation_total > 1) {
      const AdaptationSpec spec = adaptation.value_or(AdaptationSpec{});
      uint8_t flags = 0;
      if (spec.discontinuity) flags |= 0x80;
      if (spec.random_access) flags |= 0x40;
      if (spec.es_priority) flags |= 0x20;
      if (spec.pcr_base) flags |= 0x10;
      packet.push_back(flags);
      if (spec.pcr_base) {
        const uint64_t base = *spec.pcr_base;
        packet.push_back(static_cast<uint8_t>(base >> 25));
        packet.push_back(static_cast<uint8_t>(base >> 17));
        packet.push_back(static_cast<uint8_t>(base >> 9));
        packet.push_back(static_cast<uint8_t>(base >> 1));
        // The base's last bit, 6 reserved bits (all ones), then the extension's top bit.
        packet.push_back(
            static_cast<uint8_t>(((base & 1) << 7) | 0x7E | (spec.pcr_extension >> 8)));
        packet.push_back(static_cast<uint8_t>(spec.pcr_extension & 0xFF));
      }
    }
    while (packet.size() < kTsBytes - payload.size()) packet.push_back(0xFF);
  }
  Append(&packet, payload);
  Require(packet.size() == kTsBytes, "packet is not 188 bytes");
  return packet;
}

// ---------------------------------------------------------------------------------------------
// PSI sections (ISO/IEC 13818-1, 2.4.4)

// A long-form section: table_id, section_length, table_id_extension, version 0 current, section 0
// of 0, then `body` and the CRC-32 over everything before it.
inline Bytes BuildSection(uint8_t table_id, uint16_t table_id_extension,
                          std::span<const uint8_t> body) {
  const size_t section_length = 5 + body.size() + 4;
  Require(section_length <= 1021, "section too long");
  Bytes section = {table_id,
                   static_cast<uint8_t>(0xB0 | (section_length >> 8)),
                   static_cast<uint8_t>(section_length & 0xFF),
                   static_cast<uint8_t>(table_id_extension >> 8),
                   static_cast<uint8_t>(table_id_extension & 0xFF),
                   0xC1,   // reserved, version_number 0, current_next_indicator 1
                   0x00,   // section_number
                   0x00};  // last_section_number
  Append(&section, body);
  const uint32_t crc = BitwiseCrc32Mpeg2(section);
  for (int shift = 24; shift >= 0; shift -= 8)
    section.push_back(static_cast<uint8_t>(crc >> shift));
  return section;
}

struct PatProgram {
  uint16_t program_number;
  uint16_t pmt_pid;
};

inline Bytes BuildPatSection(const std::vector<PatProgram>& programs,
                             uint16_t transport_stream_id = 1) {
  Bytes body;
  for (const PatProgram& p : programs) {
    body.push_back(static_cast<uint8_t>(p.program_number >> 8));
    body.push_back(static_cast<uint8_t>(p.program_number & 0xFF));
    body.push_back(static_cast<uint8_t>(0xE0 | (p.pmt_pid >> 8)));
    body.push_back(static_cast<uint8_t>(p.pmt_pid & 0xFF));
  }
  return BuildSection(0x00, transport_stream_id, body);
}

struct EsSpec {
  uint8_t stream_type;
  uint16_t pid;
  Bytes descriptors;  // ES_info: raw descriptor bytes
};

inline Bytes BuildPmtSection(uint16_t program_number, uint16_t pcr_pid,
                             const std::vector<EsSpec>& streams, const Bytes& program_info = {}) {
  Bytes body = {static_cast<uint8_t>(0xE0 | (pcr_pid >> 8)), static_cast<uint8_t>(pcr_pid & 0xFF),
                static_cast<uint8_t>(0xF0 | (program_info.size() >> 8)),
                static_cast<uint8_t>(program_info.size() & 0xFF)};
  Append(&body, program_info);
  for (const EsSpec& es : streams) {
    body.push_back(es.stream_type);
    body.push_back(static_cast<uint8_t>(0xE0 | (es.pid >> 8)));
    body.push_back(static_cast<uint8_t>(es.pid & 0xFF));
    body.push_back(static_cast<uint8_t>(0xF0 | (es.descriptors.size() >> 8)));
    body.push_back(static_cast<uint8_t>(es.descriptors.size() & 0xFF));
    Append(&body, es.descriptors);
  }
  return BuildSection(0x02, program_number, body);
}

// A descriptor: tag, length, then `length` bytes of `fill`.
inline Bytes Descriptor(uint8_t tag, uint8_t length, uint8_t fill = 0xA5) {
  Bytes d = {tag, length};
  d.insert(d.end(), length, fill);
  return d;
}

// The payload of a packet that starts a section: pointer_field, `pointer` bytes of the end of a
// previous section (filler here), the section, then 0xFF stuffing up to `total` bytes (0: none).
inline Bytes PsiPayload(std::span<const uint8_t> section, uint8_t pointer = 0,
                        size_t total = kTsPayloadBytes) {
  Bytes payload = {pointer};
  payload.insert(payload.end(), pointer, 0x5C);
  Append(&payload, section);
  Require(total == 0 || payload.size() <= total, "section does not fit in the payload");
  if (total != 0) payload.resize(total, 0xFF);
  return payload;
}

// ---------------------------------------------------------------------------------------------
// PES (ISO/IEC 13818-1, 2.4.3.6)

inline constexpr uint8_t kVideoStreamId = 0xE0;
inline constexpr uint8_t kAudioStreamId = 0xC0;

// A PES packet with a PTS and `es` as its data. PES_packet_length is the real length when it fits
// in 16 bits, else 0 (allowed for video).
inline Bytes BuildPes(std::span<const uint8_t> es, uint64_t pts,
                      uint8_t stream_id = kVideoStreamId) {
  const size_t after_length = 3 + 5 + es.size();
  const size_t pes_packet_length = after_length <= 0xFFFF ? after_length : 0;
  Bytes pes = {0x00,
               0x00,
               0x01,
               stream_id,
               static_cast<uint8_t>(pes_packet_length >> 8),
               static_cast<uint8_t>(pes_packet_length & 0xFF),
               0x80,   // '10', not scrambled, no priority, no alignment, no copyright, copy
               0x80,   // PTS only
               0x05};  // PES_header_data_length
  pes.push_back(static_cast<uint8_t>(0x21 | ((pts >> 29) & 0x0E)));
  pes.push_back(static_cast<uint8_t>(pts >> 22));
  pes.push_back(static_cast<uint8_t>(((pts >> 14) & 0xFE) | 1));
  pes.push_back(static_cast<uint8_t>(pts >> 7));
  pes.push_back(static_cast<uint8_t>(((pts << 1) & 0xFE) | 1));
  Append(&pes, es);
  return pes;
}

// ---------------------------------------------------------------------------------------------
// NAL units (H.264 7.3.1, H.265 7.3.1)

// Writes RBSP bits most significant first, with Exp-Golomb codes (H.264 9.1).
class BitWriter {
 public:
  void Bit(bool value) {
    if (bit_count_ % 8 == 0) bytes_.push_back(0);
    if (value) bytes_.back() |= static_cast<uint8_t>(0x80u >> (bit_count_ % 8));
    ++bit_count_;
  }
  void Bits(uint32_t value, int count) {
    for (int i = count - 1; i >= 0; --i) Bit(((value >> i) & 1u) != 0);
  }
  // ue(v): leading zeros, then codeNum + 1 in binary.
  void Ue(uint32_t value) {
    const uint64_t code = uint64_t{value} + 1;
    const int width = std::bit_width(code);
    for (int i = 1; i < width; ++i) Bit(false);
    for (int i = width - 1; i >= 0; --i) Bit(((code >> i) & 1u) != 0);
  }
  // rbsp_trailing_bits: the stop bit, then zeros to the byte boundary.
  void Trailing() {
    Bit(true);
    while (bit_count_ % 8 != 0) Bit(false);
  }
  const Bytes& bytes() const { return bytes_; }

 private:
  Bytes bytes_;
  size_t bit_count_ = 0;
};

// Inserts emulation_prevention_three_byte wherever two zero bytes are followed by a byte <= 3.
inline Bytes AddEmulationPrevention(std::span<const uint8_t> rbsp) {
  Bytes out;
  int zeros = 0;
  for (uint8_t b : rbsp) {
    if (zeros >= 2 && b <= 3) {
      out.push_back(0x03);
      zeros = 0;
    }
    out.push_back(b);
    zeros = b == 0 ? zeros + 1 : 0;
  }
  return out;
}

inline const Bytes kStartCode3 = {0x00, 0x00, 0x01};
inline const Bytes kStartCode4 = {0x00, 0x00, 0x00, 0x01};

// Filler that cannot contain a start code or need emulation prevention (no zero byte).
inline Bytes NonZeroFiller(size_t size, uint8_t seed = 0) {
  Bytes out(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(1 + (i * 37 + seed) % 255);
  return out;
}

namespace h264 {

inline constexpr uint8_t kSlice = 1;
inline constexpr uint8_t kIdr = 5;
inline constexpr uint8_t kSei = 6;
inline constexpr uint8_t kSps = 7;
inline constexpr uint8_t kPps = 8;
inline constexpr uint8_t kAud = 9;

// A start code, the one-byte NAL header (forbidden_zero_bit 0, nal_ref_idc, nal_unit_type) and
// the payload, emulation prevention applied.
inline Bytes Nal(uint8_t type, std::span<const uint8_t> rbsp, uint8_t ref_idc = 3,
                 bool four_byte_start_code = true) {
  Bytes nal = four_byte_start_code ? kStartCode4 : kStartCode3;
  nal.push_back(static_cast<uint8_t>((ref_idc << 5) | type));
  Append(&nal, AddEmulationPrevention(rbsp));
  return nal;
}

// The start of a slice_header (7.3.3): first_mb_in_slice, slice_type, pic_parameter_set_id 0 and
// a 4-bit frame_num, then `filler` bytes standing for the rest of the slice.
inline Bytes SliceRbsp(uint32_t slice_type, uint32_t first_mb_in_slice = 0, size_t filler = 8) {
  BitWriter w;
  w.Ue(first_mb_in_slice);
  w.Ue(slice_type);
  w.Ue(0);
  w.Bits(0, 4);
  w.Trailing();
  Bytes rbsp = w.bytes();
  Append(&rbsp, NonZeroFiller(filler, 3));
  return rbsp;
}

inline Bytes Slice(uint8_t nal_type, uint32_t slice_type, size_t filler = 8,
                   bool four_byte_start_code = true) {
  return Nal(nal_type, SliceRbsp(slice_type, 0, filler), nal_type == kIdr ? 3 : 2,
             four_byte_start_code);
}

// access_unit_delimiter_rbsp: primary_pic_type (0: I, 1: I/P, 2: I/P/B, ...), trailing bits.
inline Bytes Aud(uint8_t primary_pic_type) {
  const Bytes rbsp = {static_cast<uint8_t>((primary_pic_type << 5) | 0x10)};
  return Nal(kAud, rbsp, 0);
}

// Baseline-looking parameter sets; the classifier only has to skip them.
inline Bytes Sps() {
  const Bytes rbsp = {0x42, 0xC0, 0x1E, 0xDA, 0x05, 0x07, 0xEC, 0x04, 0x40};
  return Nal(kSps, rbsp);
}
inline Bytes Pps() {
  const Bytes rbsp = {0xCE, 0x3C, 0x80};
  return Nal(kPps, rbsp);
}

// A user_data_unregistered SEI message whose payload is `payload_bytes` long.
inline Bytes Sei(size_t payload_bytes, std::span<const uint8_t> payload_prefix = {}) {
  Bytes rbsp = {0x05};  // payloadType
  size_t size = payload_bytes;
  while (size >= 255) {
    rbsp.push_back(0xFF);
    size -= 255;
  }
  rbsp.push_back(static_cast<uint8_t>(size));
  Append(&rbsp, payload_prefix);
  Require(payload_prefix.size() <= payload_bytes, "SEI prefix longer than the payload");
  Append(&rbsp, NonZeroFiller(payload_bytes - payload_prefix.size(), 7));
  rbsp.push_back(0x80);  // rbsp_trailing_bits
  return Nal(kSei, rbsp, 0);
}

}  // namespace h264

namespace h265 {

inline constexpr uint8_t kTrailN = 0;
inline constexpr uint8_t kTrailR = 1;
inline constexpr uint8_t kRaslN = 8;
inline constexpr uint8_t kBlaWLp = 16;
inline constexpr uint8_t kIdrWRadl = 19;
inline constexpr uint8_t kIdrNLp = 20;
inline constexpr uint8_t kCra = 21;
inline constexpr uint8_t kVps = 32;
inline constexpr uint8_t kSps = 33;
inline constexpr uint8_t kPps = 34;
inline constexpr uint8_t kAud = 35;
inline constexpr uint8_t kPrefixSei = 39;

// A start code and the two-byte NAL header (forbidden_zero_bit, nal_unit_type in bits 1..6 of the
// first byte, nuh_layer_id 0, nuh_temporal_id_plus1 1), then `body` (no zero bytes in the tests).
inline Bytes Nal(uint8_t type, size_t body_bytes = 6, bool four_byte_start_code = true) {
  Bytes nal = four_byte_start_code ? kStartCode4 : kStartCode3;
  nal.push_back(static_cast<uint8_t>(type << 1));
  nal.push_back(0x01);
  Append(&nal, NonZeroFiller(body_bytes, type));
  return nal;
}

}  // namespace h265

// ---------------------------------------------------------------------------------------------
// Streams

// Assembles a transport stream packet by packet, keeping a continuity counter per PID and
// remembering where each packet went, so tests can state what every packet index should be.
class StreamBuilder {
 public:
  struct Span {
    size_t first_packet = 0;
    size_t packets = 0;
    size_t payload_bytes = 0;
  };
  static constexpr int64_t kNoTag = -1;

  // Any bytes, so that tests can put broken packets in the stream. `tag` is the test's own label
  // for the packet (e.g. the index of the picture it carries), kept beside it.
  size_t Add(Bytes packet, int64_t tag = kNoTag) {
    packets_.push_back(std::move(packet));
    tags_.push_back(tag);
    return packets_.size() - 1;
  }

  uint8_t NextCc(uint16_t pid) { return static_cast<uint8_t>(cc_[pid]++ & 0x0F); }
  // The counter the last packet of `pid` carried (for packets that must not advance it).
  uint8_t LastCc(uint16_t pid) { return static_cast<uint8_t>((cc_[pid] - 1) & 0x0F); }
  // Makes the next packet of `pid` skip one continuity counter value.
  void SkipCc(uint16_t pid) { ++cc_[pid]; }

  size_t AddPsi(uint16_t pid, std::span<const uint8_t> section, uint8_t pointer = 0) {
    return Add(BuildPacket(pid, true, NextCc(pid), PsiPayload(section, pointer)));
  }

  // Splits `pes` over packets of `pid`: the first starts the unit (and carries random_access when
  // asked), the last is padded with adaptation-field stuffing. `after_first` runs once the first
  // packet is in, to interleave other packets inside the unit.
  Span AddPes(uint16_t pid, std::span<const uint8_t> pes, bool random_access = false,
              int64_t tag = kNoTag, const std::function<void()>& after_first = {}) {
    Span span{packets_.size(), 0, 0};
    size_t offset = 0;
    bool first = true;
    while (offset < pes.size()) {
      std::optional<AdaptationSpec> adaptation;
      if (first && random_access) adaptation = AdaptationSpec{.random_access = true};
      const size_t capacity = kTsPayloadBytes - (adaptation ? 2 : 0);
      const size_t take = std::min(capacity, pes.size() - offset);
      Add(BuildPacket(pid, first, NextCc(pid), pes.subspan(offset, take), adaptation), tag);
      offset += take;
      span.packets += 1;
      span.payload_bytes += take;
      if (first && after_first) after_first();
      first = false;
    }
    return span;
  }

  const std::vector<Bytes>& packets() const { return packets_; }
  const std::vector<int64_t>& tags() const { return tags_; }
  Bytes Joined() const {
    Bytes out;
    for (const Bytes& p : packets_) Append(&out, p);
    return out;
  }

 private:
  std::vector<Bytes> packets_;
  std::vector<int64_t> tags_;
  std::map<uint16_t, uint32_t> cc_;
};

}  // namespace edgeflow::ts::test_bytes
