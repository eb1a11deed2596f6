#include "fanout/sensor_sender.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <numeric>
#include <span>
#include <string>

namespace edgeflow::fanout {
namespace {

constexpr size_t kTs = EF_TS_PACKET_BYTES;
constexpr size_t kDatagramBytes = EF_MAX_TS_PER_DATAGRAM * kTs;
// Enough read ahead to see whether a packet is followed by the next one, and whether any packet
// that might start within it is.
constexpr size_t kLookahead = 2 * EF_TS_PACKET_BYTES + 1;

std::string ErrnoText() { return std::strerror(errno); }

bool SamePolicy(const ef_consumer_policy& a, const ef_consumer_policy& b) {
  return a.keep_num == b.keep_num && a.keep_den == b.keep_den && a.mode == b.mode;
}

}  // namespace

uint64_t SensorCounters::total_sent_packets() const {
  return std::accumulate(packets_sent.begin(), packets_sent.end(), uint64_t{0});
}

uint64_t SensorCounters::total_suppressed_packets() const {
  return std::accumulate(packets_suppressed.begin(), packets_suppressed.end(), uint64_t{0});
}

Result<std::unique_ptr<SensorSender>> SensorSender::Create(SensorSenderOptions options) {
  if (options.ts_file.empty()) return Error(Status::InvalidArgument("no TS file to send"));
  if (options.destination.host.empty() || options.destination.port == 0) {
    return Error(Status::InvalidArgument("the destination needs a host and a port, not \"" +
                                         options.destination.ToString() + "\""));
  }
  if (!std::isfinite(options.speed) || options.speed < 0) {
    return Error(
        Status::InvalidArgument("the speed must be a number >= 0 (0: as fast as possible)"));
  }
  if (options.duration.count() < 0) {
    return Error(Status::InvalidArgument("the duration must not be negative"));
  }
  options.read_chunk_bytes = std::max(options.read_chunk_bytes, kLookahead);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* resolved = nullptr;
  const std::string port = std::to_string(options.destination.port);
  if (int rc = ::getaddrinfo(options.destination.host.c_str(), port.c_str(), &hints, &resolved);
      rc != 0) {
    return Error(Status::InvalidArgument("cannot resolve \"" + options.destination.host +
                                         "\": " + ::gai_strerror(rc)));
  }
  int socket_fd = -1;
  sockaddr_storage address{};
  socklen_t address_length = 0;
  std::string socket_error = "no address";
  for (const addrinfo* a = resolved; a != nullptr; a = a->ai_next) {
    socket_fd = ::socket(a->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (socket_fd < 0) {
      socket_error = ErrnoText();  // e.g. no IPv6 on this host: try the next address
      continue;
    }
    std::memcpy(&address, a->ai_addr, a->ai_addrlen);
    address_length = a->ai_addrlen;
    break;
  }
  ::freeaddrinfo(resolved);
  if (socket_fd < 0) {
    return Error(Status::IoError("cannot make a UDP socket for " + options.destination.ToString() +
                                 ": " + socket_error));
  }
  // A reference picture leaves in a burst of tens of datagrams.
  const int buffer = 4 << 20;
  ::setsockopt(socket_fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);

  const int file_fd = ::open(options.ts_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (file_fd < 0) {
    const std::string error = ErrnoText();
    ::close(socket_fd);
    return Error(Status::IoError("cannot open " + options.ts_file.string() + ": " + error));
  }
  return std::unique_ptr<SensorSender>(
      new SensorSender(std::move(options), file_fd, socket_fd, address, address_length));
}

SensorSender::SensorSender(SensorSenderOptions options, int file, int socket,
                           sockaddr_storage address, socklen_t address_length)
    : options_(std::move(options)),
      file_(file),
      socket_(socket),
      address_(address),
      address_length_(address_length),
      pacer_(options_.speed),
      decider_(options_.codec),
      quality_(options_.quality) {
  ef_stream_state_init(&pictures_, options_.codec);
  decider_.AddConsumer(options_.quality);
  datagram_.reserve(kDatagramBytes);
  kept_.reserve(kDatagramBytes);
}

SensorSender::~SensorSender() {
  ::close(file_);
  ::close(socket_);
}

void SensorSender::Stop() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  wake_.notify_all();
}

void SensorSender::SetQuality(const ef_consumer_policy& policy) {
  std::lock_guard lock(mu_);
  if (SamePolicy(policy, quality_)) return;
  quality_ = policy;
  quality_changed_ = true;
  ++counters_.quality_changes;
}

ef_consumer_policy SensorSender::quality() const {
  std::lock_guard lock(mu_);
  return quality_;
}

SensorCounters SensorSender::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

std::string SensorSender::destination() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (address_.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address_);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address_);
  ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
  return std::string(text) + ":" + std::to_string(ntohs(v4->sin_port));
}

Status SensorSender::Run() {
  if (ran_) return Status::FailedPrecondition("a sensor sender runs once");
  ran_ = true;
  start_ = std::chrono::steady_clock::now();
  end_ = options_.duration.count() > 0
             ? start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            options_.duration)
             : std::chrono::steady_clock::time_point::max();
  for (uint64_t pass = 0; options_.loops == 0 || pass < options_.loops; ++pass) {
    if (pass > 0 && ::lseek(file_, 0, SEEK_SET) < 0) {
      return Status::IoError("cannot rewind " + options_.ts_file.string() +
                             " to send it again: " + ErrnoText());
    }
    bool more = true;
    EF_RETURN_IF_ERROR(SendPass(&more));
    if (!more) break;
  }
  return Status::Ok();
}

Status SensorSender::SendPass(bool* more) {
  std::vector<uint8_t> buffer;
  buffer.reserve(options_.read_chunk_bytes + kLookahead);
  size_t pos = 0;
  bool eof = false;
  bool in_sync = false;  // the last packet was where it should be
  uint64_t packets = 0;
  auto skip = [&](size_t bytes) {
    pos += bytes;
    std::lock_guard lock(mu_);
    counters_.skipped_bytes += bytes;
  };
  while (!over_) {
    if (!eof && buffer.size() - pos < kLookahead) {
      buffer.erase(buffer.begin(), buffer.begin() + static_cast<ptrdiff_t>(pos));
      pos = 0;
      const size_t had = buffer.size();
      buffer.resize(had + options_.read_chunk_bytes);
      ssize_t n;
      do {
        n = ::read(file_, buffer.data() + had, options_.read_chunk_bytes);
      } while (n < 0 && errno == EINTR);
      if (n < 0) {
        return Status::IoError("cannot read " + options_.ts_file.string() + ": " + ErrnoText());
      }
      buffer.resize(had + static_cast<size_t>(n));
      eof = n == 0;
      continue;
    }
    const size_t available = buffer.size() - pos;
    if (available < EF_TS_PACKET_BYTES) {  // only at the end of the file
      if (available > 0) skip(available);  // a cut packet
      break;
    }
    // Whether a packet starting at `p` is followed by the next one where it should be (or by
    // the end of the file).
    auto followed = [&](size_t p) {
      return p + kTs < buffer.size() ? buffer[p + kTs] == EF_TS_SYNC_BYTE
                                     : eof && p + kTs == buffer.size();
    };
    if (buffer[pos] == EF_TS_SYNC_BYTE) {
      if (followed(pos)) {
        in_sync = true;
        OnPacket(buffer.data() + pos);
        ++packets;
        pos += kTs;
        continue;
      }
      // The next packet is not where it should be: either bytes were lost or inserted before
      // it (then a packet that is followed properly starts within this one's 188 bytes), or it
      // is damaged itself, and this one is good if the stream was in sync.
      size_t next = pos + 1;
      while (next <= pos + kTs && next < buffer.size() &&
             !(buffer[next] == EF_TS_SYNC_BYTE && followed(next))) {
        ++next;
      }
      if (next > pos + kTs && in_sync) {
        OnPacket(buffer.data() + pos);
        ++packets;
        pos += kTs;
        in_sync = false;  // the next one has to prove itself
        continue;
      }
      if (next <= pos + kTs && next < buffer.size()) {
        skip(next - pos);
        continue;
      }
    }
    // Out of sync: a 0x47 is believed only when another follows a packet later (payload bytes
    // are 0x47 often enough).
    in_sync = false;
    const void* next_sync = std::memchr(buffer.data() + pos + 1, EF_TS_SYNC_BYTE, available - 1);
    skip(next_sync != nullptr
             ? static_cast<size_t>(static_cast<const uint8_t*>(next_sync) - (buffer.data() + pos))
             : available);
  }
  if (!over_) {
    // The end of the file: what waits for a PCR gets its time, the last datagram leaves.
    pacer_.Break();
    DrainPacer();
    if (!datagram_.empty() && !over_) SendDatagram();
    if (packets == 0) {
      return Status::InvalidArgument("no MPEG-TS packet in " + options_.ts_file.string());
    }
    std::lock_guard lock(mu_);
    ++counters_.passes;
  }
  *more = !over_;
  return Status::Ok();
}

void SensorSender::OnPacket(const uint8_t* packet) {
  pacer_.Push(std::span<const uint8_t>(packet, EF_TS_PACKET_BYTES));
  TsPacketBytes& copy = waiting_.emplace_back();
  std::memcpy(copy.data(), packet, EF_TS_PACKET_BYTES);
  DrainPacer();
}

void SensorSender::DrainPacer() {
  while (pacer_.ready() && !over_) {
    const std::chrono::nanoseconds due = pacer_.PopReady();
    const TsPacketBytes packet = waiting_.front();
    waiting_.pop_front();
    AddToDatagram(packet, due);
  }
}

void SensorSender::AddToDatagram(const TsPacketBytes& packet, std::chrono::nanoseconds due) {
  // The same inspection the decider runs, on the same packets in the same order: it sees the
  // picture starts the decider will see, before the datagram is cut.
  const ef_ts_verdict verdict = ef_inspect_ts_packet(&pictures_, packet.data());
  if (verdict.frame_start && !datagram_.empty()) {
    SendDatagram();
    if (over_) return;
  }
  if (datagram_.empty()) datagram_due_ = due;
  classes_[datagram_.size() / EF_TS_PACKET_BYTES] =
      verdict.valid ? verdict.klass : static_cast<uint8_t>(EF_CLASS_OTHER);
  datagram_.insert(datagram_.end(), packet.begin(), packet.end());
  if (datagram_.size() == kDatagramBytes) SendDatagram();
}

bool SensorSender::WaitUntil(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  if (deadline >= end_) {
    // Due after the end of the run: the run lasts exactly its duration.
    wake_.wait_until(lock, end_, [&] { return stopping_; });
    return false;
  }
  wake_.wait_until(lock, deadline, [&] { return stopping_; });
  return !stopping_ && std::chrono::steady_clock::now() < end_;
}

void SensorSender::SendDatagram() {
  const auto deadline =
      start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(datagram_due_);
  if (!WaitUntil(deadline)) {
    over_ = true;
    datagram_.clear();
    return;
  }
  const bool late = options_.speed > 0 && std::chrono::steady_clock::now() - deadline > kLateAfter;
  {
    std::lock_guard lock(mu_);
    if (quality_changed_) {
      decider_.SetPolicy(0, quality_);
      quality_changed_ = false;
    }
  }
  decider_.Decide(datagram_);
  const uint32_t mask = decider_.mask(0);
  const size_t count = datagram_.size() / EF_TS_PACKET_BYTES;
  kept_.clear();
  for (size_t i = 0; i < count; ++i) {
    if ((mask & (1u << i)) == 0) continue;
    const auto first = datagram_.begin() + static_cast<ptrdiff_t>(i * EF_TS_PACKET_BYTES);
    kept_.insert(kept_.end(), first, first + EF_TS_PACKET_BYTES);
  }
  bool sent = false;
  if (!kept_.empty()) {
    ssize_t n;
    do {
      n = ::sendto(socket_, kept_.data(), kept_.size(), 0,
                   reinterpret_cast<const sockaddr*>(&address_), address_length_);
    } while (n < 0 && errno == EINTR);
    sent = n == static_cast<ssize_t>(kept_.size());
  }
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < count; ++i) {
    if ((mask & (1u << i)) == 0) {
      ++counters_.packets_suppressed[classes_[i]];
    } else if (sent) {
      ++counters_.packets_sent[classes_[i]];
    }
  }
  if (kept_.empty()) {
    ++counters_.datagrams_suppressed;
  } else if (sent) {
    ++counters_.datagrams_sent;
    counters_.bytes_sent += kept_.size();
  } else {
    ++counters_.send_errors;
  }
  if (late) ++counters_.late_datagrams;
  counters_.pcrs = pacer_.pcrs();
  counters_.timeline_breaks = pacer_.reanchors();
  datagram_.clear();
}

}  // namespace edgeflow::fanout
