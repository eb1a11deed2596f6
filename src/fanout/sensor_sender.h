// SensorSender: a sensor's side of the stream fan-out. It sends a recorded MPEG-TS file over UDP
// at the rate it was recorded at, in datagrams of at most EF_MAX_TS_PER_DATAGRAM TS packets, and
// suppresses at the source the differential data the edge said it does not need, so that the
// uplink carries only what some consumer will use (papers/004: the edge "reports it back to the
// corresponding sensor, which only transmits the required portion of the data stream").
//
// - Reading: the file is read in chunks (a recording may be gigabytes). A packet is taken when
//   the next sync byte is 188 bytes on (or the file ends there). When it is not, a packet that
//   is so followed and starts within those 188 bytes wins (bytes were inserted or lost), else
//   the packet is taken if the stream was in sync (the next one is the damaged one). Out of
//   sync, the reader looks for the next 0x47 that another follows a packet later. The bytes
//   passed over are counted as skipped.
// - Packing: TS packets in file order, at most 7 per datagram, and a new datagram at every
//   picture start (a PES start on the video PID, as bpf/ts_dpi.h sees it), so that a datagram
//   never holds the end of one picture and the start of the next.
// - Suppression: each datagram goes through DatagramDecider with one consumer whose policy is the
//   current quality: the same code, with the same state, as the edge's fan-out runs for a
//   consumer, so the sensor drops what the edge would drop. The kept TS packets are sent
//   back to back (no null packets in place of the others: the point is to save the uplink); a
//   datagram with nothing kept is not sent.
// - Pacing: TsPacer gives each packet its time from the PCR; each datagram is sent when its first
//   packet is due, at an absolute deadline on the steady clock (start + time), so that sleeping
//   late once never shifts what follows. A datagram sent more than kLateAfter after its deadline
//   is counted late.
// - Looping: the file can be sent several times or until stopped; each pass continues the
//   timeline of the previous one (TsPacer::Break) and keeps every other state (the picture
//   inspection, the decision's credit, the counters).
//
// Thread-safety: Run() on one thread; Stop(), SetQuality(), quality() and counters() from any.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/host_port.h"
#include "common/status.h"
#include "fanout/bpf/drop_policy.h"
#include "fanout/bpf/ts_dpi.h"
#include "fanout/datagram_decider.h"
#include "fanout/sensor_quality.h"
#include "fanout/ts_pacer.h"

namespace edgeflow::fanout {

struct SensorSenderOptions {
  std::filesystem::path ts_file;
  HostPort destination;  // an IPv4 or IPv6 address or a host name, and a port
  double speed = 1.0;    // 1 = the recorded rate, 2 = twice as fast, 0 = as fast as possible
  uint64_t loops = 1;    // passes over the file; 0 = until stopped
  std::chrono::nanoseconds duration{0};        // stop after this long; 0 = no limit
  ef_consumer_policy quality = FullQuality();  // until SetQuality() says otherwise
  uint8_t codec = EF_CODEC_AUTO;
  size_t read_chunk_bytes = 1 << 20;
};

struct SensorCounters {
  uint64_t datagrams_sent = 0;
  uint64_t datagrams_suppressed = 0;  // every TS packet of it suppressed: nothing sent
  // TS packets sent and suppressed, by class (enum ef_class); 188 bytes each. The packets of a
  // datagram the socket refused are in neither (the datagram is in send_errors).
  std::array<uint64_t, EF_CLASS_COUNT> packets_sent{};
  std::array<uint64_t, EF_CLASS_COUNT> packets_suppressed{};
  uint64_t bytes_sent = 0;       // UDP payload bytes that left
  uint64_t send_errors = 0;      // datagrams the socket refused (they are not resent)
  uint64_t late_datagrams = 0;   // sent more than kLateAfter after their deadline
  uint64_t skipped_bytes = 0;    // of the file, not in any TS packet (lost sync, a cut packet)
  uint64_t passes = 0;           // complete passes over the file
  uint64_t quality_changes = 0;  // SetQuality() calls that changed the policy
  uint64_t pcrs = 0;             // PCRs the pacing followed
  uint64_t timeline_breaks = 0;  // PCR discontinuities and jumps (not the loops)

  uint64_t total_sent_packets() const;
  uint64_t total_suppressed_packets() const;
};

class SensorSender {
 public:
  // Datagrams sent this much after their deadline are counted late (scheduling noise is less).
  static constexpr std::chrono::milliseconds kLateAfter{5};

  // Checks the options, opens the file and resolves the destination (the first address it
  // resolves to). InvalidArgument for bad options or a name that does not resolve; IoError when
  // the file cannot be opened or the socket cannot be made.
  static Result<std::unique_ptr<SensorSender>> Create(SensorSenderOptions options);
  ~SensorSender();
  SensorSender(const SensorSender&) = delete;
  SensorSender& operator=(const SensorSender&) = delete;

  // Sends until the passes are done, the duration is over, or Stop(). Ok then; IoError if the
  // file cannot be read, InvalidArgument if a pass finds no TS packet at all. Once only.
  Status Run();
  // Makes Run() return promptly (before the next datagram; a pacing sleep is cut short).
  void Stop();

  // The quality from the next datagram on.
  void SetQuality(const ef_consumer_policy& policy);
  ef_consumer_policy quality() const;
  SensorCounters counters() const;
  // The resolved destination, e.g. "127.0.0.1:5004" or "[::1]:5004".
  std::string destination() const;

 private:
  SensorSender(SensorSenderOptions options, int file, int socket, sockaddr_storage address,
               socklen_t address_length);

  using TsPacketBytes = std::array<uint8_t, EF_TS_PACKET_BYTES>;

  // One pass over the file; returns false in *more when the run is over (stopped, duration).
  Status SendPass(bool* more);
  void OnPacket(const uint8_t* packet);
  // Moves the packets whose time is known from the pacer into datagrams.
  void DrainPacer();
  void AddToDatagram(const TsPacketBytes& packet, std::chrono::nanoseconds due);
  void SendDatagram();
  // Sleeps until `deadline`; false when the run must end instead (Stop(), the duration).
  bool WaitUntil(std::chrono::steady_clock::time_point deadline);

  const SensorSenderOptions options_;
  const int file_;
  const int socket_;
  const sockaddr_storage address_;
  const socklen_t address_length_;

  // Run()'s own state (its thread only).
  TsPacer pacer_;
  std::deque<TsPacketBytes> waiting_;  // packets read, waiting for the pacer to time them
  ef_stream_state pictures_{};         // finds picture starts, for packing
  std::vector<uint8_t> datagram_;      // the datagram being filled
  std::array<uint8_t, EF_MAX_TS_PER_DATAGRAM> classes_{};  // its packets' ef_class
  std::chrono::nanoseconds datagram_due_{0};
  DatagramDecider decider_;
  std::vector<uint8_t> kept_;  // what is sent of the datagram
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point end_;
  bool over_ = false;  // the run ended (stopped, duration): send nothing more
  bool ran_ = false;

  mutable std::mutex mu_;
  std::condition_variable wake_;  // Stop()
  bool stopping_ = false;         // GUARDED_BY(mu_)
  ef_consumer_policy quality_;    // GUARDED_BY(mu_)
  bool quality_changed_ = false;  // GUARDED_BY(mu_)
  SensorCounters counters_;       // GUARDED_BY(mu_)
};

}  // namespace edgeflow::fanout
