#include "fanout_testbed.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "fanout/fanout_program.h"
#include "support/command_runner.h"

namespace edgeflow::bench {
namespace {

using namespace std::chrono_literals;
using test_support::CommandOptions;
using test_support::CommandResult;
using test_support::RunCommand;
using test_support::RunIp;

constexpr const char* kBridge = "brfan";
// The sink's drop filters: any handle works, the sink has no other filter.
constexpr uint32_t kSinkDropHandle = 0xd0;
constexpr uint32_t kSinkDropPriority = 1;

std::string Errno(int error) { return std::strerror(error); }

// Runs `commands` (one `ip` command per line, without the leading "ip") in `netns` with one `ip`
// process. Stops at the first failing line.
Status IpBatch(const std::string& netns, const std::string& commands) {
  const CommandResult result = RunCommand("ip", {"-n", netns, "-batch", "-"},
                                          CommandOptions{.stdin_data = commands, .timeout = 60s});
  if (result.spawn_failed || result.timed_out || result.exit_code() != 0) {
    return Status::IoError("ip -n " + netns + " -batch failed: " + result.Describe());
  }
  return Status::Ok();
}

struct LinkInfo {
  int ifindex = 0;
  MacAddress mac{};
  LinkTotals counters;
};

uint64_t Counter(const nlohmann::json& stats, const char* direction, const char* name) {
  const auto side = stats.find(direction);
  if (side == stats.end() || !side->is_object()) return 0;
  const auto value = side->find(name);
  return value != side->end() && value->is_number_unsigned() ? value->get<uint64_t>() : 0;
}

// Every interface of `netns` with its index, address and counters, from one `ip -s -j link`.
Result<std::map<std::string, LinkInfo>> ReadLinks(const std::string& netns) {
  auto out = RunIp(netns, {"-s", "-j", "link", "show"});
  if (!out) return Error(out.error());
  const auto links = nlohmann::json::parse(*out, nullptr, /*allow_exceptions=*/false);
  if (!links.is_array()) {
    return Error(Status::Internal("unexpected output of ip -s -j link show in " + netns));
  }
  std::map<std::string, LinkInfo> table;
  for (const auto& link : links) {
    if (!link.is_object() || !link.contains("ifname") || !link["ifname"].is_string()) continue;
    LinkInfo info;
    if (link.contains("ifindex") && link["ifindex"].is_number_integer()) {
      info.ifindex = link["ifindex"].get<int>();
    }
    if (link.contains("address") && link["address"].is_string()) {
      unsigned parts[6];
      if (std::sscanf(link["address"].get<std::string>().c_str(), "%2x:%2x:%2x:%2x:%2x:%2x",
                      &parts[0], &parts[1], &parts[2], &parts[3], &parts[4], &parts[5]) == 6) {
        for (size_t i = 0; i < 6; ++i) info.mac[i] = static_cast<uint8_t>(parts[i]);
      }
    }
    if (link.contains("stats64") && link["stats64"].is_object()) {
      const auto& stats = link["stats64"];
      info.counters.rx_packets = Counter(stats, "rx", "packets");
      info.counters.tx_packets = Counter(stats, "tx", "packets");
      info.counters.tx_dropped = Counter(stats, "tx", "dropped");
    }
    table.emplace(link["ifname"].get<std::string>(), info);
  }
  return table;
}

Result<LinkTotals> SumLinks(const std::string& netns, const std::vector<std::string>& names) {
  auto links = ReadLinks(netns);
  if (!links) return Error(links.error());
  LinkTotals sum;
  for (const std::string& name : names) {
    const auto found = links->find(name);
    if (found == links->end()) return Error(Status::NotFound(name + " is gone from " + netns));
    sum.rx_packets += found->second.counters.rx_packets;
    sum.tx_packets += found->second.counters.tx_packets;
    sum.tx_dropped += found->second.counters.tx_dropped;
  }
  return sum;
}

// IPv6 off in a namespace (its `default` applies to interfaces made afterwards), so that router
// solicitations, DAD and MLD reports do not cross the counted links. Only a warning when it
// fails: the counts then include a handful of such packets.
void DisableIpv6(const NetNamespace& netns) {
  const CommandResult result = RunCommand(
      "ip", {"netns", "exec", netns.name(), "sysctl", "-q", "-w",
             "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"});
  if (result.spawn_failed || result.exit_code() != 0) {
    std::fprintf(stderr, "fanout_bench: warning: cannot turn IPv6 off in %s: %s\n",
                 netns.name().c_str(), result.Describe().c_str());
  }
}

}  // namespace

Result<std::unique_ptr<TcDropProgram>> TcDropProgram::Load() {
  const bpf_insn program[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K,
       .dst_reg = BPF_REG_0,
       .src_reg = 0,
       .off = 0,
       .imm = TC_ACT_SHOT},
      {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
  };
  bpf_prog_load_opts options;
  std::memset(&options, 0, sizeof(options));
  options.sz = sizeof(options);
  const int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "bench_drop", "GPL", program,
                               sizeof(program) / sizeof(program[0]), &options);
  if (fd < 0) {
    return Error(Status::IoError("cannot load the tc drop program: " + Errno(-fd)));
  }
  return std::unique_ptr<TcDropProgram>(new TcDropProgram(fd));
}

TcDropProgram::~TcDropProgram() { ::close(fd_); }

Status TcDropProgram::AttachIngress(int ifindex, uint32_t handle, uint32_t priority) const {
  return fanout::AttachTcIngress(ifindex, fd_, handle, priority);
}

Result<std::unique_ptr<FanoutTestbed>> FanoutTestbed::Create(size_t consumers,
                                                             const TcDropProgram& drop) {
  if (consumers == 0 || consumers > kMaxConsumers) {
    return Error(
        Status::InvalidArgument("between 1 and " + std::to_string(kMaxConsumers) + " consumers"));
  }
  std::unique_ptr<FanoutTestbed> testbed(new FanoutTestbed());
  // On failure the object goes away with whatever was made so far.
  if (Status built = testbed->Build(consumers, drop); !built.ok()) return Error(built);
  return testbed;
}

Status FanoutTestbed::Build(size_t consumers, const TcDropProgram& drop) {
  for (auto* netns : {&edge_, &sender_, &sink_}) {
    auto created = NetNamespace::Create();
    if (!created) return created.error();
    *netns = std::move(*created);
    DisableIpv6(**netns);
  }

  auto uplink = sender_->AddVethPair(edge_.get());
  if (!uplink) return uplink.error();
  sender_interface_ = uplink->local;
  uplink_edge_ = uplink->peer;
  std::string edge_commands = "addr add " + std::string(kStreamAddress) + "/24 dev " +
                              uplink_edge_ + "\nlink set " + uplink_edge_ + " up\n";
  std::string sink_commands;
  for (size_t k = 1; k <= consumers; ++k) {
    auto pair = edge_->AddVethPair(sink_.get());
    if (!pair) return pair.error();
    ConsumerLink link;
    link.edge_interface = pair->local;
    link.sink_interface = pair->peer;
    link.edge_address = "10.100." + std::to_string(k) + ".1";
    link.sink_address = "10.100." + std::to_string(k) + ".2";
    edge_commands += "addr add " + link.edge_address + "/24 dev " + link.edge_interface +
                     "\nlink set " + link.edge_interface + " up\n";
    sink_commands += "addr add " + link.sink_address + "/24 dev " + link.sink_interface +
                     "\nlink set " + link.sink_interface + " up\n";
    consumers_.push_back(std::move(link));
  }
  EF_RETURN_IF_ERROR(IpBatch(sender_->name(), "addr add " + std::string(kSenderAddress) +
                                                  "/24 dev " + sender_interface_ + "\nlink set " +
                                                  sender_interface_ + " up\n"));
  EF_RETURN_IF_ERROR(IpBatch(edge_->name(), edge_commands));
  EF_RETURN_IF_ERROR(IpBatch(sink_->name(), sink_commands));

  auto edge_links = ReadLinks(edge_->name());
  if (!edge_links) return edge_links.error();
  auto sink_links = ReadLinks(sink_->name());
  if (!sink_links) return sink_links.error();
  const auto uplink_info = edge_links->find(uplink_edge_);
  if (uplink_info == edge_links->end()) return Status::Internal(uplink_edge_ + " is missing");
  uplink_ifindex_ = uplink_info->second.ifindex;
  uplink_mac_ = uplink_info->second.mac;
  std::vector<int> sink_ifindexes;
  for (ConsumerLink& link : consumers_) {
    const auto edge_side = edge_links->find(link.edge_interface);
    const auto sink_side = sink_links->find(link.sink_interface);
    if (edge_side == edge_links->end() || sink_side == sink_links->end()) {
      return Status::Internal("the veth pair " + link.edge_interface + " is missing");
    }
    link.edge_ifindex = edge_side->second.ifindex;
    link.edge_mac = edge_side->second.mac;
    link.sink_mac = sink_side->second.mac;
    sink_ifindexes.push_back(sink_side->second.ifindex);
  }
  EF_RETURN_IF_ERROR(SetEdgeNeighbours());
  EF_RETURN_IF_ERROR(SendStreamToEdge());

  for (NetNamespace* netns : {sender_.get(), edge_.get(), sink_.get()}) {
    EF_RETURN_IF_ERROR(netns->WaitForLinks(std::chrono::seconds(30)));
  }
  auto attached = sink_->Run([&]() -> Status {
    for (const int ifindex : sink_ifindexes) {
      EF_RETURN_IF_ERROR(drop.AttachIngress(ifindex, kSinkDropHandle, kSinkDropPriority));
    }
    return Status::Ok();
  });
  if (!attached) return attached.error();
  return *attached;
}

Status FanoutTestbed::SetEdgeNeighbours() {
  std::string commands;
  for (const ConsumerLink& link : consumers_) {
    commands += "neigh replace " + link.sink_address + " lladdr " +
                test_support::FormatMac(link.sink_mac) + " dev " + link.edge_interface +
                " nud permanent\n";
  }
  return IpBatch(edge_->name(), commands);
}

Status FanoutTestbed::SendStreamTo(const MacAddress& mac) {
  return IpBatch(sender_->name(), "neigh replace " + std::string(kStreamAddress) + " lladdr " +
                                      test_support::FormatMac(mac) + " dev " + sender_interface_ +
                                      " nud permanent\n");
}

Status FanoutTestbed::ClearUplinkFilters() {
  auto cleared = edge_->Run([&] { return fanout::RemoveTcHooks(uplink_ifindex_); });
  return cleared ? *cleared : cleared.error();
}

Result<LinkTotals> FanoutTestbed::SinkTotals() {
  std::vector<std::string> names;
  for (const ConsumerLink& link : consumers_) names.push_back(link.sink_interface);
  return SumLinks(sink_->name(), names);
}

Result<LinkTotals> FanoutTestbed::EdgeConsumerTotals() {
  std::vector<std::string> names;
  for (const ConsumerLink& link : consumers_) names.push_back(link.edge_interface);
  return SumLinks(edge_->name(), names);
}

Result<LinkTotals> FanoutTestbed::SenderTotals() {
  return SumLinks(sender_->name(), {sender_interface_});
}

Status FanoutTestbed::AddBridge(size_t consumers) {
  if (consumers > consumers_.size()) return Status::InvalidArgument("not that many consumers");
  // NetNamespace::AddBridge does the same with an `ip` per port; one batch is quicker with 100.
  // STP off: the ports forward as soon as they are in.
  std::string commands = std::string("link add ") + kBridge + " type bridge stp_state 0\n";
  commands += "link set " + uplink_edge_ + " master " + kBridge + "\n";
  for (size_t k = 0; k < consumers; ++k) {
    commands += "link set " + consumers_[k].edge_interface + " master " + kBridge + "\n";
  }
  commands += std::string("link set ") + kBridge + " up\n";
  bridged_ = true;
  EF_RETURN_IF_ERROR(IpBatch(edge_->name(), commands));
  return edge_->WaitForLinks(std::chrono::seconds(30));
}

Status FanoutTestbed::RemoveBridge() {
  if (!bridged_) return Status::Ok();
  auto deleted = RunIp(edge_->name(), {"link", "del", kBridge});
  if (!deleted) return deleted.error();
  bridged_ = false;
  // The ports are plain interfaces again, still up and addressed; their neighbour entries are
  // written again in case leaving the bridge flushed them.
  EF_RETURN_IF_ERROR(SetEdgeNeighbours());
  return edge_->WaitForLinks(std::chrono::seconds(30));
}

}  // namespace edgeflow::bench
