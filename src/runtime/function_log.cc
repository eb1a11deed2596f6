#include "runtime/function_log.h"

#include <algorithm>

#include "common/clock.h"
#include "common/log.h"

namespace edgeflow::runtime {

namespace {
// A log line longer than this is cut: one runaway line must not fill the ring's memory.
constexpr size_t kMaxLineBytes = 8192;
}  // namespace

FunctionLog::FunctionLog(std::string name, size_t capacity)
    : name_(std::move(name)), capacity_(std::max<size_t>(capacity, 1)) {}

void FunctionLog::Append(std::string_view source, std::string_view level, std::string_view worker,
                         std::string_view message) {
  FunctionLogLine line;
  line.at_ms = SystemClock::Default()->NowMillis();
  line.source = source;
  line.level = level;
  line.worker = worker;
  line.message = message.substr(0, kMaxLineBytes);
  if (message.size() > kMaxLineBytes) line.message += " [cut]";
  log::Debug("function log", {{"function", name_},
                              {"source", line.source},
                              {"worker", line.worker},
                              {"message", line.message}});
  std::lock_guard lock(mu_);
  line.seq = next_seq_++;
  lines_.push_back(std::move(line));
  while (lines_.size() > capacity_) lines_.pop_front();
}

FunctionLog::Page FunctionLog::Read(uint64_t from_seq, size_t limit) const {
  std::lock_guard lock(mu_);
  Page page;
  page.next_seq = std::max<uint64_t>(from_seq, 1);
  const uint64_t oldest = lines_.empty() ? next_seq_ : lines_.front().seq;
  if (page.next_seq < oldest) {
    page.missed = oldest - page.next_seq;
    page.next_seq = oldest;
  }
  for (size_t i = page.next_seq - oldest; i < lines_.size() && page.lines.size() < limit; ++i) {
    page.lines.push_back(lines_[i]);
  }
  if (!page.lines.empty()) page.next_seq = page.lines.back().seq + 1;
  return page;
}

FunctionLog::Page FunctionLog::Tail(size_t count) const {
  uint64_t from = 1;
  {
    std::lock_guard lock(mu_);
    if (next_seq_ > count) from = next_seq_ - count;
  }
  Page page = Read(from, count);
  page.missed = 0;  // not following: nothing was missed
  return page;
}

}  // namespace edgeflow::runtime
