#include "fanout/ts_pacer.h"

#include <algorithm>
#include <cmath>

#include "ts/psi.h"
#include "ts/ts_packet.h"

namespace edgeflow::fanout {
namespace {

// PCR values are base * 300 + extension with a 33-bit base: they wrap at 2^33 * 300.
constexpr uint64_t kPcrRange = (uint64_t{1} << 33) * 300;

}  // namespace

TsPacer::TsPacer(double speed) : speed_(std::isfinite(speed) && speed > 0 ? speed : 0) {}

void TsPacer::Push(std::span<const uint8_t> packet) {
  std::optional<uint64_t> pcr;
  if (auto parsed = ts::ParsePacket(packet)) {
    ReadTables(parsed->pid, parsed->payload_unit_start, parsed->payload);
    if (parsed->adaptation) {
      const ts::AdaptationField& field = *parsed->adaptation;
      if (!pcr_pid_ && field.pcr) pcr_pid_ = parsed->pid;
      if (pcr_pid_ && parsed->pid == *pcr_pid_) {
        // The next PCR of this PID (possibly the one in this packet) is of a new clock.
        if (field.discontinuity && anchored_) new_timeline_ = true;
        pcr = field.pcr;
      }
    }
  }
  ++pushed_;
  if (pcr) {
    OnPcr(*pcr);
    return;
  }
  if (!anchored_) {
    Emit(0);  // before the first PCR nothing says when: at once
    anchor_index_ = pushed_ - 1;
    return;
  }
  if (waiting() > kMaxWaiting) Extrapolate(pushed_);
}

void TsPacer::ReadTables(uint16_t pid, bool unit_start, std::span<const uint8_t> payload) {
  if (!unit_start) return;
  if (pid == ts::kPatPid) {
    auto pat = ts::ParsePat(payload);
    if (!pat) return;
    for (const ts::PatEntry& entry : *pat) {
      if (entry.program_number != 0) {  // program 0 points to the network information table
        pmt_pid_ = entry.pmt_pid;
        return;
      }
    }
    return;
  }
  if (!pmt_pid_ || pid != *pmt_pid_) return;
  auto pmt = ts::ParsePmt(payload);
  if (!pmt || pmt->pcr_pid == ts::kNullPid) return;  // 0x1FFF: the program has no PCR
  if (pcr_pid_ && *pcr_pid_ != pmt->pcr_pid && anchored_) {
    new_timeline_ = true;  // another PID's clock need not continue this one
  }
  pcr_pid_ = pmt->pcr_pid;
}

void TsPacer::OnPcr(uint64_t pcr) {
  const uint64_t index = pushed_ - 1;
  pcr %= kPcrRange;  // an extension above 299 is malformed; keep the value in range anyway
  ++pcrs_;
  if (!anchored_) {
    anchored_ = true;
    Emit(0);
  } else {
    // Modulo the range, so that the base wrapping around is just the clock running on.
    const uint64_t step = (pcr + kPcrRange - last_pcr_) % kPcrRange;
    if (new_timeline_ || step > static_cast<uint64_t>(kMaxPcrStep)) {
      // A new clock (or a broken one): carry on at the last rate, without a pause.
      if (!broken_by_caller_) ++reanchors_;
      new_timeline_ = false;
      broken_by_caller_ = false;
      const int64_t time = ExtrapolatedTime(index);
      Extrapolate(index);
      Emit(time);
    } else {
      if (step > 0 && index > last_pcr_index_) {
        ticks_per_packet_ =
            static_cast<double>(step) / static_cast<double>(index - last_pcr_index_);
      }
      const int64_t time = std::max(last_pcr_time_ + static_cast<int64_t>(step), anchor_time_);
      Interpolate(index, time);
      Emit(time);
    }
  }
  anchor_index_ = index;
  anchor_time_ = last_emitted_;
  last_pcr_ = pcr;
  last_pcr_index_ = index;
  last_pcr_time_ = last_emitted_;
}

void TsPacer::Interpolate(uint64_t end, int64_t end_time) {
  // anchor_index_ < timed_ <= k < end; the span is short (one PCR interval), so no overflow.
  const int64_t span_time = std::max<int64_t>(end_time - anchor_time_, 0);
  const auto span_packets = static_cast<int64_t>(end - anchor_index_);
  while (timed_ < end) {
    const auto offset = static_cast<int64_t>(timed_ - anchor_index_);
    Emit(anchor_time_ + span_time * offset / span_packets);
  }
}

int64_t TsPacer::ExtrapolatedTime(uint64_t index) const {
  const double offset = static_cast<double>(index - anchor_index_) * ticks_per_packet_;
  return anchor_time_ + static_cast<int64_t>(std::llround(offset));
}

void TsPacer::Extrapolate(uint64_t end) {
  if (timed_ >= end) return;
  while (timed_ < end) Emit(ExtrapolatedTime(timed_));
  anchor_index_ = end - 1;
  anchor_time_ = last_emitted_;
}

void TsPacer::Flush() {
  if (anchored_) Extrapolate(pushed_);
}

void TsPacer::Break() {
  Flush();
  if (anchored_) {
    new_timeline_ = true;
    broken_by_caller_ = true;
  }
}

void TsPacer::Emit(int64_t ticks) {
  last_emitted_ = std::max(ticks, last_emitted_);
  ready_.push_back(last_emitted_);
  ++timed_;
}

std::chrono::nanoseconds TsPacer::PopReady() {
  const int64_t ticks = ready_.front();
  ready_.pop_front();
  if (speed_ == 0) return std::chrono::nanoseconds(0);
  constexpr double kNanosPerTick = 1e9 / static_cast<double>(kPcrHz);
  return std::chrono::nanoseconds(
      std::llround(static_cast<double>(ticks) * kNanosPerTick / speed_));
}

}  // namespace edgeflow::fanout
