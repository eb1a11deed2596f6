// TsAnalyzer: the reference reading of a sensor's transport stream. It finds the video stream
// (PAT -> PMT -> the first H.264 or H.265 elementary stream), follows its PES packets, and
// classifies each picture as a reference or a differential frame from the NAL units at its start
// (nal_classifier.h), gathering bytes across TS packets until the picture's first slice, so that
// the class rests on the picture itself and not on one flag. The adaptation field's
// random_access_indicator is recorded beside it, and disagreements are counted.
//
// Every TS packet of the video PID belongs to the picture whose PES started last; packet_class()
// gives each packet the class of its picture. This is what the fan-out tests compare a
// consumer's received packets against.
//
// Bad input (packets that do not parse, continuity gaps, PES or NAL data that lies about its
// length) is counted, never fatal. Thread-compatible.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "ts/frame_class.h"
#include "ts/nal_classifier.h"

namespace edgeflow::ts {

struct FrameRecord {
  uint64_t index = 0;             // in stream order, from 0
  FrameClass frame_class = FrameClass::kUnknown;
  char slice_type = '?';          // H.264: 'I', 'P' or 'B'; '?' otherwise
  bool referenced = true;         // other pictures may reference it (see PictureInfo)
  bool random_access = false;     // the random_access_indicator of the picture's first packet
  uint64_t first_packet = 0;      // index (in push order) of the packet where its PES starts
  uint32_t packets = 0;           // video packets that carry it
  uint64_t payload_bytes = 0;     // their TS payload bytes
};

struct AnalyzerStats {
  uint64_t packets = 0;            // pushed, valid or not
  uint64_t invalid_packets = 0;    // did not parse, or carry transport_error_indicator (skipped)
  uint64_t continuity_errors = 0;  // video packets whose continuity counter skipped
  uint64_t video_packets = 0;
  uint64_t psi_errors = 0;         // PAT/PMT sections that failed their checks
  uint64_t pes_errors = 0;         // PES starts without a valid PES header
  // Disagreements between the random_access_indicator and the picture's own class.
  uint64_t random_access_mismatches = 0;
  std::array<uint64_t, 3> frames{};         // by FrameClass
  std::array<uint64_t, 3> packets_by_class{};  // video packets, by their frame's FrameClass
};

class TsAnalyzer {
 public:
  // Feeds one packet (kPacketBytes bytes; anything else is an invalid packet).
  void Push(std::span<const uint8_t> packet);
  // Feeds whole packets back to back (a datagram, a file); trailing bytes short of a whole packet
  // count as one invalid packet.
  void PushAll(std::span<const uint8_t> bytes);
  // Ends the stream: the last picture is classified with what arrived of it.
  void Finish();

  std::optional<uint16_t> video_pid() const { return video_pid_; }
  VideoCodec codec() const { return codec_; }
  const std::vector<FrameRecord>& frames() const { return frames_; }
  // The class of packet `index` (push order): its picture's class; kUnknown for packets of other
  // PIDs, invalid packets, and video packets before the first PES start.
  FrameClass packet_class(uint64_t index) const;
  // Whether packet `index` is a packet of the video PID.
  bool is_video_packet(uint64_t index) const;
  AnalyzerStats stats() const;

 private:
  void OnPsi(uint16_t pid, std::span<const uint8_t> payload);
  void OnVideo(const struct TsPacket& packet, uint64_t packet_index);
  void ClassifyCurrent(bool final);

  std::optional<uint16_t> pmt_pid_;
  std::optional<uint16_t> video_pid_;
  VideoCodec codec_ = VideoCodec::kUnknown;
  std::optional<uint8_t> last_cc_;
  std::vector<FrameRecord> frames_;
  std::vector<int64_t> packet_frame_;  // per pushed packet: its frame's index, or -1
  // The current picture: PES bytes gathered until its class is known.
  std::vector<uint8_t> pes_head_;
  bool classified_ = true;
  AnalyzerStats stats_;
};

}  // namespace edgeflow::ts
