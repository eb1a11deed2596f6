// Fuzzes the MPEG-TS library (src/ts) with arbitrary bytes: ParsePacket on every 188-byte chunk,
// ParsePat and ParsePmt, ClassifyPicture for both codecs, and TsAnalyzer over the whole input.
// Nothing may crash or read outside the input (the sanitizers watch: the input is exactly sized),
// and what comes out must hold together: spans inside the packet, PIDs in 13 bits, sections that
// parse carrying a good CRC, analyzer counts that add up, and the same analysis whether the bytes
// arrive in one PushAll or packet by packet.
//
// The first input byte picks a variant: with bit 0 or bit 1 set, the analyzer also sees the rest
// of the input behind a valid PAT and PMT announcing an H.264 (bit 0) or H.265 (bit 1) stream on
// PID 0x0100, so mutated video packets reach the picture classification without having to
// reproduce the tables' CRCs.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "ts/frame_class.h"
#include "ts/nal_classifier.h"
#include "ts/psi.h"
#include "ts/ts_analyzer.h"
#include "ts/ts_packet.h"

namespace {

using namespace edgeflow::ts;  // NOLINT: a fuzz entry point using most of the library

void Check(bool condition) {
  if (!condition) std::abort();
}

constexpr uint16_t kPmtPid = 0x1000;
constexpr uint16_t kVideoPid = 0x0100;

bool ValidClass(FrameClass c) {
  return c == FrameClass::kUnknown || c == FrameClass::kReference || c == FrameClass::kDifferential;
}

bool ValidSliceType(char c) { return c == 'I' || c == 'P' || c == 'B' || c == '?'; }

void AppendCrc(std::vector<uint8_t>* section) {
  const uint32_t crc = Crc32Mpeg2(*section);
  for (int shift = 24; shift >= 0; shift -= 8)
    section->push_back(static_cast<uint8_t>(crc >> shift));
}

// One PSI packet: header, pointer_field 0, the section, 0xFF stuffing.
std::vector<uint8_t> PsiPacket(uint16_t pid, std::vector<uint8_t> section) {
  AppendCrc(&section);
  std::vector<uint8_t> packet = {kSyncByte, static_cast<uint8_t>(0x40 | (pid >> 8)),
                                 static_cast<uint8_t>(pid & 0xFF), 0x10, 0x00};
  packet.insert(packet.end(), section.begin(), section.end());
  packet.resize(kPacketBytes, 0xFF);
  return packet;
}

std::vector<uint8_t> Tables(uint8_t stream_type) {
  std::vector<uint8_t> out = PsiPacket(
      kPatPid, {0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01,
                static_cast<uint8_t>(0xE0 | (kPmtPid >> 8)), static_cast<uint8_t>(kPmtPid & 0xFF)});
  const std::vector<uint8_t> pmt =
      PsiPacket(kPmtPid, {0x02, 0xB0, 0x12, 0x00, 0x01, 0xC1, 0x00, 0x00,
                          static_cast<uint8_t>(0xE0 | (kVideoPid >> 8)),
                          static_cast<uint8_t>(kVideoPid & 0xFF), 0xF0, 0x00, stream_type,
                          static_cast<uint8_t>(0xE0 | (kVideoPid >> 8)),
                          static_cast<uint8_t>(kVideoPid & 0xFF), 0xF0, 0x00});
  out.insert(out.end(), pmt.begin(), pmt.end());
  return out;
}

void CheckPackets(std::span<const uint8_t> in) {
  for (size_t offset = 0; offset < in.size(); offset += kPacketBytes) {
    const std::span<const uint8_t> chunk =
        in.subspan(offset, std::min(kPacketBytes, in.size() - offset));
    auto packet = ParsePacket(chunk);
    if (chunk.size() != kPacketBytes || chunk[0] != kSyncByte) Check(!packet.has_value());
    if (!packet.has_value()) {
      Check(!packet.error().ok());
      continue;
    }
    Check(packet->pid <= 0x1FFF);
    Check(packet->continuity_counter <= 15);
    Check(packet->scrambling <= 3);
    if (!packet->payload.empty()) {
      // The payload always runs to the packet's end, from after the header.
      Check(packet->payload.data() >= chunk.data() + 4);
      Check(packet->payload.data() + packet->payload.size() == chunk.data() + chunk.size());
    }
    if (packet->adaptation && packet->adaptation->pcr) {
      // 33-bit base, 9-bit extension (values over 299 are invalid but representable).
      Check(*packet->adaptation->pcr <= ((uint64_t{1} << 33) - 1) * 300 + 511);
    }
  }
}

// A section that parses must be inside the input and check to CRC 0.
void CheckSectionCrc(std::span<const uint8_t> in) {
  Check(!in.empty());
  const size_t start = 1 + size_t{in[0]};
  Check(start + 3 <= in.size());
  const size_t length = 3 + ((size_t{in[start + 1]} & 0x0F) << 8 | in[start + 2]);
  Check(start + length <= in.size());
  Check(Crc32Mpeg2(in.subspan(start, length)) == 0);
}

void CheckPsi(std::span<const uint8_t> in) {
  auto pat = ParsePat(in);
  if (pat.has_value()) {
    CheckSectionCrc(in);
    for (const PatEntry& e : *pat) Check(e.pmt_pid <= 0x1FFF);
  }
  auto pmt = ParsePmt(in);
  if (pmt.has_value()) {
    CheckSectionCrc(in);
    Check(pmt->pcr_pid <= 0x1FFF);
    for (const PmtStream& s : pmt->streams) Check(s.pid <= 0x1FFF);
  }
  Check(!(pat.has_value() && pmt.has_value()));  // one table id or the other
}

void CheckClassifier(std::span<const uint8_t> in) {
  for (VideoCodec codec : {VideoCodec::kH264, VideoCodec::kH265, VideoCodec::kUnknown}) {
    const PictureInfo info = ClassifyPicture(codec, in);
    Check(ValidClass(info.frame_class));
    Check(ValidSliceType(info.slice_type));
    if (codec != VideoCodec::kH264) Check(info.slice_type == '?');
    if (codec == VideoCodec::kUnknown) Check(info.frame_class == FrameClass::kUnknown);
    if (in.empty()) Check(info.frame_class == FrameClass::kUnknown && !info.found_slice);
  }
}

void CheckAnalyzer(const TsAnalyzer& analyzer, size_t bytes) {
  const AnalyzerStats stats = analyzer.stats();
  Check(stats.packets == (bytes + kPacketBytes - 1) / kPacketBytes);
  Check(stats.invalid_packets <= stats.packets);
  Check(stats.video_packets + stats.invalid_packets <= stats.packets);
  const auto& frames = analyzer.frames();
  Check(stats.frames[0] + stats.frames[1] + stats.frames[2] == frames.size());
  Check(stats.packets_by_class[0] + stats.packets_by_class[1] + stats.packets_by_class[2] <=
        stats.video_packets);
  Check(stats.random_access_mismatches <= frames.size());
  uint64_t packets_in_frames = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    Check(frames[i].index == i);
    Check(ValidClass(frames[i].frame_class));
    Check(ValidSliceType(frames[i].slice_type));
    Check(frames[i].first_packet < stats.packets);
    Check(i == 0 || frames[i].first_packet > frames[i - 1].first_packet);
    Check(frames[i].payload_bytes <= uint64_t{frames[i].packets} * (kPacketBytes - 4));
    Check(analyzer.is_video_packet(frames[i].first_packet));
    packets_in_frames += frames[i].packets;
  }
  Check(packets_in_frames <= stats.video_packets);
  if (!analyzer.video_pid()) Check(frames.empty() && stats.video_packets == 0);
  uint64_t video_packets = 0;
  for (uint64_t i = 0; i < stats.packets; ++i) {
    const FrameClass c = analyzer.packet_class(i);
    Check(ValidClass(c));
    if (analyzer.is_video_packet(i)) {
      ++video_packets;
    } else {
      Check(c == FrameClass::kUnknown);
    }
  }
  Check(video_packets == stats.video_packets);
}

bool SameAnalysis(const TsAnalyzer& a, const TsAnalyzer& b) {
  const AnalyzerStats sa = a.stats();
  const AnalyzerStats sb = b.stats();
  if (sa.packets != sb.packets || sa.invalid_packets != sb.invalid_packets ||
      sa.continuity_errors != sb.continuity_errors || sa.video_packets != sb.video_packets ||
      sa.psi_errors != sb.psi_errors || sa.pes_errors != sb.pes_errors ||
      sa.random_access_mismatches != sb.random_access_mismatches || sa.frames != sb.frames ||
      sa.packets_by_class != sb.packets_by_class || a.video_pid() != b.video_pid() ||
      a.codec() != b.codec() || a.frames().size() != b.frames().size()) {
    return false;
  }
  for (size_t i = 0; i < a.frames().size(); ++i) {
    const FrameRecord& x = a.frames()[i];
    const FrameRecord& y = b.frames()[i];
    if (x.frame_class != y.frame_class || x.slice_type != y.slice_type ||
        x.random_access != y.random_access || x.first_packet != y.first_packet ||
        x.packets != y.packets || x.payload_bytes != y.payload_bytes) {
      return false;
    }
  }
  return true;
}

void RunAnalyzer(std::span<const uint8_t> stream) {
  TsAnalyzer whole;
  whole.PushAll(stream);
  whole.Finish();
  CheckAnalyzer(whole, stream.size());

  TsAnalyzer by_packet;
  for (size_t offset = 0; offset < stream.size(); offset += kPacketBytes) {
    by_packet.Push(stream.subspan(offset, std::min(kPacketBytes, stream.size() - offset)));
  }
  by_packet.Finish();
  Check(SameAnalysis(whole, by_packet));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  CheckPackets(in);
  CheckPsi(in);
  CheckClassifier(in);
  RunAnalyzer(in);

  if (size > 0 && (data[0] & 0x03) != 0) {
    std::vector<uint8_t> stream = Tables((data[0] & 0x01) != 0 ? kStreamTypeH264 : kStreamTypeH265);
    stream.insert(stream.end(), data + 1, data + size);
    RunAnalyzer(stream);
  }
  return 0;
}
