// The network the fan-out benchmark (bench/fanout) measures on: three namespaces joined by veth
// pairs, so that every packet goes through the real kernel and nothing touches the machine's own
// interfaces.
//
//   sender ns                edge ns                                 sink ns
//   10.99.0.2 --veth--> 10.99.0.1 (uplink: the stream arrives here)
//                       10.100.k.1 (consumer k's link) ----veth---->  10.100.k.2, k = 1..M
//
// All M consumers live in one sink namespace: the point is the edge's cost, and a namespace per
// consumer would only make setting up 100 consumers slower. Every sink interface drops what it
// receives at tc ingress (TcDropProgram), so that a consumer costs the least a receiver can cost
// and never answers (no ICMP, no ARP); copies are counted from the sink interfaces' rx_packets.
// The edge has permanent neighbour entries for the consumers and the sender one for the stream
// address, so no ARP is ever needed. IPv6 is off in the three namespaces, so that nothing else
// (router solicitations, MLD reports) crosses the links while they are counted.
//
// Needs root. Interfaces and addresses are set with `ip -batch` (one `ip` per namespace rather
// than one per command, which matters with 100 consumers). Everything is removed when the object
// goes away (NetNamespace's destructors).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "support/net_namespace.h"

namespace edgeflow::bench {

using test_support::MacAddress;
using test_support::NetNamespace;

// A tc classifier in direct-action mode that drops every packet (two instructions:
// r0 = TC_ACT_SHOT; exit), loaded once and attached wherever packets must end without costing
// more than the least the kernel does for a received frame.
class TcDropProgram {
 public:
  static Result<std::unique_ptr<TcDropProgram>> Load();
  ~TcDropProgram();
  TcDropProgram(const TcDropProgram&) = delete;
  TcDropProgram& operator=(const TcDropProgram&) = delete;

  // On the ingress of `ifindex` (adding a clsact qdisc if needed), as filter `handle` at
  // `priority`. Must be called inside the namespace that owns the interface (NetNamespace::Run):
  // tc talks netlink to the calling thread's namespace.
  Status AttachIngress(int ifindex, uint32_t handle, uint32_t priority) const;

 private:
  explicit TcDropProgram(int fd) : fd_(fd) {}
  int fd_;
};

// One consumer's veth pair.
struct ConsumerLink {
  std::string edge_interface;
  std::string sink_interface;
  int edge_ifindex = 0;  // in the edge namespace
  MacAddress edge_mac{};
  MacAddress sink_mac{};
  std::string edge_address;  // 10.100.k.1
  std::string sink_address;  // 10.100.k.2
};

// Counters summed over a set of interfaces.
struct LinkTotals {
  uint64_t rx_packets = 0;
  uint64_t tx_packets = 0;
  uint64_t tx_dropped = 0;
};

class FanoutTestbed {
 public:
  static constexpr const char* kStreamAddress = "10.99.0.1";  // the edge's uplink address
  static constexpr const char* kSenderAddress = "10.99.0.2";
  static constexpr uint16_t kStreamPort = 5000;
  static constexpr uint16_t kConsumerPort = 6000;
  static constexpr size_t kMaxConsumers = 250;  // one /24 per consumer in 10.100.0.0/16

  static Result<std::unique_ptr<FanoutTestbed>> Create(size_t consumers, const TcDropProgram& drop);
  FanoutTestbed(const FanoutTestbed&) = delete;
  FanoutTestbed& operator=(const FanoutTestbed&) = delete;

  NetNamespace& sender() { return *sender_; }
  NetNamespace& edge() { return *edge_; }
  NetNamespace& sink() { return *sink_; }
  const std::string& uplink_interface() const { return uplink_edge_; }  // in the edge namespace
  int uplink_ifindex() const { return uplink_ifindex_; }
  const std::vector<ConsumerLink>& consumers() const { return consumers_; }

  // The sink side: rx_packets are the copies that reached a consumer.
  Result<LinkTotals> SinkTotals();
  // The edge's consumer-facing interfaces: tx_dropped are copies lost on the way (a veth drops
  // when the receiving CPU's backlog is full).
  Result<LinkTotals> EdgeConsumerTotals();
  // The sender's interface: tx_dropped are datagrams lost before the edge.
  Result<LinkTotals> SenderTotals();

  // Which Ethernet address the sender's datagrams to the stream address go to: the edge's uplink
  // (the default), or an address nobody has, which a bridge floods to all its ports.
  Status SendStreamTo(const MacAddress& mac);
  Status SendStreamToEdge() { return SendStreamTo(uplink_mac_); }

  // Removes the uplink's clsact qdisc with every tc filter on it (the fan-out's, the baseline's
  // drop), so that the next line starts from a bare interface: FanoutProgram leaves the qdisc in
  // place when it detaches, and adding a filter to an existing one makes libbpf log a warning.
  Status ClearUplinkFilters();

  // A Linux bridge in the edge namespace with the uplink and the first `consumers` consumer
  // interfaces as its ports; RemoveBridge deletes it and gives the interfaces back their
  // neighbour entries.
  Status AddBridge(size_t consumers);
  Status RemoveBridge();

 private:
  FanoutTestbed() = default;
  Status Build(size_t consumers, const TcDropProgram& drop);
  Status SetEdgeNeighbours();

  // Destroyed in reverse order: the sink and the sender first (deleting a namespace takes its
  // veths along in one go), the edge last.
  std::unique_ptr<NetNamespace> edge_;
  std::unique_ptr<NetNamespace> sender_;
  std::unique_ptr<NetNamespace> sink_;
  std::string sender_interface_;
  std::string uplink_edge_;
  int uplink_ifindex_ = 0;
  MacAddress uplink_mac_{};
  std::vector<ConsumerLink> consumers_;
  bool bridged_ = false;
};

}  // namespace edgeflow::bench
