#include "ts/ts_analyzer.h"

#include <algorithm>

#include "ts/psi.h"
#include "ts/ts_packet.h"

namespace edgeflow::ts {

namespace {

constexpr int64_t kNotVideo = -1;
constexpr int64_t kVideoBeforeFirstFrame = -2;
// A picture's first slice comes after at most a few kilobytes of delimiters, parameter sets and
// SEI; a PES that shows none in this much is classified with what it has.
constexpr size_t kMaxPictureHeadBytes = 64 << 10;
constexpr size_t kPesFixedHeaderBytes = 9;

size_t ClassIndex(FrameClass c) { return static_cast<size_t>(c); }

}  // namespace

void TsAnalyzer::PushAll(std::span<const uint8_t> bytes) {
  while (bytes.size() >= kPacketBytes) {
    Push(bytes.first(kPacketBytes));
    bytes = bytes.subspan(kPacketBytes);
  }
  if (!bytes.empty()) Push(bytes);  // counted as one invalid packet
}

void TsAnalyzer::Push(std::span<const uint8_t> bytes) {
  const uint64_t index = stats_.packets++;
  packet_frame_.push_back(kNotVideo);
  auto packet = ParsePacket(bytes);
  if (!packet || packet->transport_error) {
    ++stats_.invalid_packets;
    return;
  }
  if (packet->pid == kPatPid || (pmt_pid_ && packet->pid == *pmt_pid_)) {
    if (packet->payload_unit_start) OnPsi(packet->pid, packet->payload);
    return;
  }
  if (video_pid_ && packet->pid == *video_pid_) OnVideo(*packet, index);
}

void TsAnalyzer::OnPsi(uint16_t pid, std::span<const uint8_t> payload) {
  if (pid == kPatPid) {
    auto pat = ParsePat(payload);
    if (!pat) {
      ++stats_.psi_errors;
      return;
    }
    for (const PatEntry& entry : *pat) {
      if (entry.program_number != 0) {  // program 0 points at the network information table
        pmt_pid_ = entry.pmt_pid;
        break;
      }
    }
    return;
  }
  auto pmt = ParsePmt(payload);
  if (!pmt) {
    ++stats_.psi_errors;
    return;
  }
  for (const PmtStream& stream : pmt->streams) {
    const VideoCodec codec = stream.stream_type == kStreamTypeH264   ? VideoCodec::kH264
                             : stream.stream_type == kStreamTypeH265 ? VideoCodec::kH265
                                                                     : VideoCodec::kUnknown;
    if (codec == VideoCodec::kUnknown) continue;
    if (video_pid_ != stream.pid || codec_ != codec) {
      // A new video stream: what was gathered for the old one does not carry over.
      if (!classified_) ClassifyCurrent(/*final=*/true);
      video_pid_ = stream.pid;
      codec_ = codec;
      last_cc_.reset();
    }
    return;
  }
}

void TsAnalyzer::OnVideo(const TsPacket& packet, uint64_t packet_index) {
  ++stats_.video_packets;
  if (!packet.payload.empty()) {
    const bool discontinuity = packet.adaptation && packet.adaptation->discontinuity;
    if (last_cc_ && !discontinuity) {
      const uint8_t expected = (*last_cc_ + 1) & 0x0F;
      // One repeated packet (same counter) is allowed by the standard.
      if (packet.continuity_counter != expected && packet.continuity_counter != *last_cc_) {
        ++stats_.continuity_errors;
      }
    }
    last_cc_ = packet.continuity_counter;
  }
  if (packet.payload_unit_start) {
    if (!classified_) ClassifyCurrent(/*final=*/true);
    FrameRecord& frame = frames_.emplace_back();
    frame.index = frames_.size() - 1;
    frame.first_packet = packet_index;
    frame.random_access = packet.adaptation && packet.adaptation->random_access;
    pes_head_.clear();
    classified_ = false;
  }
  if (frames_.empty()) {
    packet_frame_[packet_index] = kVideoBeforeFirstFrame;
    return;
  }
  FrameRecord& frame = frames_.back();
  packet_frame_[packet_index] = static_cast<int64_t>(frame.index);
  ++frame.packets;
  frame.payload_bytes += packet.payload.size();
  if (!classified_) {
    const size_t room = kMaxPictureHeadBytes - pes_head_.size();
    const size_t take = std::min(room, packet.payload.size());
    pes_head_.insert(pes_head_.end(), packet.payload.begin(), packet.payload.begin() + take);
    ClassifyCurrent(/*final=*/pes_head_.size() >= kMaxPictureHeadBytes);
  }
}

void TsAnalyzer::ClassifyCurrent(bool final) {
  if (frames_.empty() || classified_) return;
  FrameRecord& frame = frames_.back();
  auto settle = [&](PictureInfo info) {
    frame.frame_class = info.frame_class;
    frame.slice_type = info.slice_type;
    frame.referenced = info.referenced;
    classified_ = true;
    ++stats_.frames[ClassIndex(frame.frame_class)];
    if (frame.frame_class != FrameClass::kUnknown &&
        frame.random_access != (frame.frame_class == FrameClass::kReference)) {
      ++stats_.random_access_mismatches;
    }
  };
  if (pes_head_.size() < kPesFixedHeaderBytes) {
    if (final) {
      ++stats_.pes_errors;
      settle({});
    }
    return;
  }
  // packet_start_code_prefix, then the optional header's '10' marker bits.
  if (pes_head_[0] != 0 || pes_head_[1] != 0 || pes_head_[2] != 1 ||
      (pes_head_[6] & 0xC0) != 0x80) {
    ++stats_.pes_errors;
    settle({});
    return;
  }
  const size_t es_start = kPesFixedHeaderBytes + pes_head_[8];
  if (pes_head_.size() < es_start) {
    if (final) {
      ++stats_.pes_errors;
      settle({});
    }
    return;
  }
  const PictureInfo info =
      ClassifyPicture(codec_, std::span<const uint8_t>(pes_head_).subspan(es_start));
  if (info.found_slice || final) settle(info);
}

void TsAnalyzer::Finish() { ClassifyCurrent(/*final=*/true); }

FrameClass TsAnalyzer::packet_class(uint64_t index) const {
  if (index >= packet_frame_.size() || packet_frame_[index] < 0) return FrameClass::kUnknown;
  return frames_[static_cast<size_t>(packet_frame_[index])].frame_class;
}

bool TsAnalyzer::is_video_packet(uint64_t index) const {
  return index < packet_frame_.size() && packet_frame_[index] != kNotVideo;
}

AnalyzerStats TsAnalyzer::stats() const {
  AnalyzerStats stats = stats_;
  for (const FrameRecord& frame : frames_) {
    stats.packets_by_class[ClassIndex(frame.frame_class)] += frame.packets;
  }
  return stats;
}

}  // namespace edgeflow::ts
