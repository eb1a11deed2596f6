// FanoutService: the node's stream fan-out. It keeps the sensors' streams and their consumers,
// runs the QoC controller (papers/004, Algorithm 1: qoc_plan.h) whenever a consumer comes, goes or
// changes what it needs, and carries the plan out:
//  - the sensor's quality (the union of its consumers' needs) is published, retained, on the
//    computation channel `_fanout/<stream>/quality` ({"keep": "1/2", "mode": "frame"}), which the
//    sensor agent (`edgeflow sensor`) follows;
//  - each consumer's residual suppression goes into the data path: the tc eBPF program
//    (FanoutProgram) where it can be loaded, else the userspace replicator (UdpReplicator);
//  - the sensor's reports on `_fanout/<stream>/report` are kept, for the stream's statistics.
//
// Streams and consumers are saved in EKV (namespace `_edgeflow`, key `fanout/streams/<name>`)
// and set up again at Start(), so they survive a restart of the node.
//
// Names (streams and consumers) follow the rules of a channel segment: 1..64 of
// [A-Za-z0-9_.-]. Addresses are IPv4 literals with a port.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/host_port.h"
#include "common/status.h"
#include "fanout/consumer_counters.h"
#include "fanout/fanout_program.h"
#include "fanout/qoc_plan.h"

namespace edgeflow::kv {
class Store;
}
namespace edgeflow::channels {
class MqttClient;
}

namespace edgeflow::fanout {

class UdpReplicator;

enum class Datapath {
  kAuto,       // eBPF when it loads, else userspace
  kEbpf,       // eBPF or fail
  kUserspace,  // the userspace replicator even where eBPF would load
};

// "auto", "ebpf", "userspace"; nullopt for anything else.
std::optional<Datapath> ParseDatapath(std::string_view text);
std::string_view DatapathName(Datapath datapath);

struct StreamConfig {
  std::string name;       // also the sensor's id on the control channel
  HostPort listen;        // where the sensor sends: an IPv4 literal and a port
  std::string interface;  // where the stream arrives (eBPF); "": the one holding listen's address
                          // (in a status: the one in use)
  uint8_t codec = EF_CODEC_AUTO;  // enum ef_codec
};

struct ConsumerConfig {
  std::string name;
  HostPort address;       // where its copies go: an IPv4 literal and a port
  std::string interface;  // eBPF: the interface its copies leave by; "": the one the route takes
  std::optional<MacAddress> mac;  // eBPF: its Ethernet address; default: the neighbour table's
  ConsumerNeed need;              // what it needs of the differential data, and how to drop
};

struct ConsumerStatus {
  ConsumerConfig config;
  // The plan's edge suppression (Algorithm 1's Delta): need / Q_eff.
  Fraction residual = Fraction::One();
  // What the data path keeps now of what arrives: need / what the sensor last reported it sends
  // (Q_eff when it has not reported). Equal to `residual` once the sensor has caught up with the
  // plan; until then the consumer still gets what it needs.
  Fraction in_effect = Fraction::One();
  ConsumerCounters counters;
};

struct StreamStatus {
  StreamConfig config;
  Datapath datapath = Datapath::kUserspace;  // the one in use: kEbpf or kUserspace
  Fraction sensor_keep = Fraction::One();    // Q_eff, as published to the sensor
  ef_drop_mode sensor_mode = EF_DROP_FRAME;
  std::optional<Fraction> sensor_reported;  // what the sensor last said it sends, if it did
  StreamCounters ingress;  // what arrived (the userspace replicator fills packets and bytes)
  std::vector<ConsumerStatus> consumers;
  std::string last_sensor_report;  // the JSON of the sensor's last report, "" before the first
  int64_t last_sensor_report_ms = 0;
};

struct FanoutServiceOptions {
  Datapath datapath = Datapath::kAuto;
  kv::Store* store = nullptr;  // where streams are saved; nullptr: not saved
  // The node's broker, for the control channel (a connection of the service's own); nullopt:
  // no sensor control (the plan still goes into the data path).
  std::optional<HostPort> broker;
  std::string mqtt_username;  // the node's own credentials on its broker, if it needs some
  std::string mqtt_password;
  std::string tenant = "default";  // whose channels the control topics are
};

class FanoutService {
 public:
  // Loads the eBPF program when the options allow it (logging why not, with kAuto, when it
  // cannot); kUnavailable/kInternal for kEbpf that cannot.
  static Result<std::unique_ptr<FanoutService>> Create(FanoutServiceOptions options);
  ~FanoutService();
  FanoutService(const FanoutService&) = delete;
  FanoutService& operator=(const FanoutService&) = delete;

  // Sets up the saved streams again (a stream that cannot be is logged and skipped) and
  // subscribes to the sensors' reports.
  Status Start();
  // Stops the replicators and detaches the program. Idempotent.
  void Stop();

  Datapath datapath() const;  // kEbpf or kUserspace

  // InvalidArgument for a bad name, address or interface; AlreadyExists for a name or address in
  // use; ResourceExhausted past the data path's limits.
  Result<StreamStatus> AddStream(const StreamConfig& config);
  Status RemoveStream(std::string_view stream);
  Result<ConsumerStatus> AddConsumer(std::string_view stream, const ConsumerConfig& config);
  Status RemoveConsumer(std::string_view stream, std::string_view consumer);
  // Changes what a consumer needs, the fields the change gives and only those, in one step (a
  // concurrent change of the other field is not lost); the plan is recomputed (the sensor's
  // quality may change).
  Result<ConsumerStatus> ChangeNeed(std::string_view stream, std::string_view consumer,
                                    const ConsumerNeedChange& change);

  Result<StreamStatus> GetStream(std::string_view stream) const;
  std::vector<StreamStatus> ListStreams() const;

 private:
  struct Consumer;
  struct ConsumerLink;
  struct Stream;

  explicit FanoutService(FanoutServiceOptions options);

  Result<Stream*> FindStream(std::string_view name) const;   // REQUIRES(mu_)
  Status SetUpStream(Stream& stream);                        // REQUIRES(mu_)
  // Where the consumer's copies leave on the eBPF data path. Needs no service state, and may
  // wait up to a second for the neighbour table: AddConsumer calls it before taking mu_.
  static Result<ConsumerLink> FindConsumerLink(const ConsumerConfig& config);
  // `link`: where its copies go, found beforehand; nullptr: find it here.
  Status SetUpConsumer(Stream& stream, Consumer& consumer,
                       const ConsumerLink* link);  // REQUIRES(mu_)
  Status ApplyPlan(Stream& stream);                          // REQUIRES(mu_)
  Status Save(const Stream& stream);                         // REQUIRES(mu_)
  void Unsave(std::string_view stream);
  StreamStatus StatusOf(const Stream& stream) const;  // REQUIRES(mu_)
  void OnSensorReport(std::string_view stream, std::string payload);

  const FanoutServiceOptions options_;
  std::unique_ptr<FanoutProgram> program_;  // null: the userspace data path
  std::unique_ptr<channels::MqttClient> mqtt_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Stream>, std::less<>> streams_;  // GUARDED_BY(mu_)
  bool started_ = false;                                                 // GUARDED_BY(mu_)
};

}  // namespace edgeflow::fanout
