// TsPacer: when each packet of a transport stream is due, from the stream's own clock, so that a
// sensor replaying a recorded file sends it at the rate it was made at.
//
// The clock is the program clock reference (PCR, 27 MHz) of the PCR PID: the PMT's PCR_PID when
// the PMT is seen first, else the first PID whose adaptation field carries a PCR. A packet that
// carries a PCR is due at that PCR; the packets between two PCRs are spread evenly between them
// by position (ISO/IEC 13818-1 defines a constant bit rate between PCRs), which needs the next
// PCR: packets wait in the pacer until it comes, and PCRs come every 100 ms at most (40 ms in
// DVB), so little waits. Packets before the first PCR are due at once (time 0).
//
// The timeline never goes back and never pauses: the 33-bit PCR base wraps modulo 2^33 (26.5
// hours) without a jump; a discontinuity_indicator on the PCR PID, a PCR that goes back, or one
// more than a second ahead starts a new timeline (re-anchoring) that continues from the last one
// at the last measured rate, without a wait. Break() does the same when the file starts again.
//
// Times are given relative to the first packet and divided by `speed` (2 = twice as fast;
// 0 = everything is due at once). Pure logic: no clock is read, nothing sleeps.
//
// Thread-compatible.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>

namespace edgeflow::fanout {

class TsPacer {
 public:
  // The PCR runs at 27 MHz.
  static constexpr int64_t kPcrHz = 27'000'000;
  // A PCR further ahead of the previous one than this is a jump, not the clock running.
  static constexpr int64_t kMaxPcrStep = kPcrHz;
  // Packets that wait for a PCR beyond this many (a stream whose PCRs stopped) are given times
  // at the last rate, so that memory stays bounded: 6 MB of TS.
  static constexpr size_t kMaxWaiting = 32768;

  explicit TsPacer(double speed = 1.0);

  // The next packet of the stream, in stream order: 188 bytes that should be a TS packet. Packets
  // that do not parse still take their place between PCRs.
  void Push(std::span<const uint8_t> packet);
  // The stream ends here: the packets still waiting for a PCR get times at the last measured rate
  // (at the last time when no rate is known yet).
  void Flush();
  // The stream starts again (a file replayed): Flush(), and the next PCR starts a new timeline
  // that continues from the packets already timed.
  void Break();

  // Packets whose time is known, in push order.
  bool ready() const { return !ready_.empty(); }
  size_t ready_count() const { return ready_.size(); }
  // The time of the oldest packet that is ready (precondition: ready()), since the first packet.
  std::chrono::nanoseconds PopReady();
  // Pushed packets still waiting for their time.
  size_t waiting() const { return static_cast<size_t>(pushed_ - timed_); }

  double speed() const { return speed_; }
  std::optional<uint16_t> pcr_pid() const { return pcr_pid_; }
  uint64_t pcrs() const { return pcrs_; }  // PCRs of the PCR PID seen
  // New timelines the stream itself started (discontinuities, jumps); Break()'s are not counted.
  uint64_t reanchors() const { return reanchors_; }

 private:
  void ReadTables(uint16_t pid, bool unit_start, std::span<const uint8_t> payload);
  void OnPcr(uint64_t pcr);
  // Gives the waiting packets before `end` (a packet index) times between the anchor and
  // `end_time`, evenly by position.
  void Interpolate(uint64_t end, int64_t end_time);
  // Gives the waiting packets before `end` times at the last rate from the anchor.
  void Extrapolate(uint64_t end);
  int64_t ExtrapolatedTime(uint64_t index) const;
  void Emit(int64_t ticks);

  const double speed_;
  std::optional<uint16_t> pmt_pid_;
  std::optional<uint16_t> pcr_pid_;

  uint64_t pushed_ = 0;            // packets pushed
  uint64_t timed_ = 0;             // packets given a time (the first waiting one's index)
  bool anchored_ = false;          // a PCR was seen: times come from the clock
  bool new_timeline_ = false;      // the next PCR re-anchors (discontinuity, Break())
  bool broken_by_caller_ = false;  // ... because of Break()
  uint64_t last_pcr_ = 0;          // its value, 27 MHz, modulo the PCR's range
  uint64_t last_pcr_index_ = 0;
  int64_t last_pcr_time_ = 0;  // on the timeline, 27 MHz ticks
  // The last packet given a time: where interpolation and extrapolation start.
  uint64_t anchor_index_ = 0;
  int64_t anchor_time_ = 0;
  double ticks_per_packet_ = 0;  // the last measured rate (0: none yet)
  int64_t last_emitted_ = 0;     // times never go back
  std::deque<int64_t> ready_;    // timeline ticks of the packets that are ready

  uint64_t pcrs_ = 0;
  uint64_t reanchors_ = 0;
};

}  // namespace edgeflow::fanout
