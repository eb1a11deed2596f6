#include "fanout/fanout_service.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "channels/channel_name.h"
#include "channels/mqtt_client.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/text_encoding.h"
#include "fanout/fanout_text.h"
#include "fanout/sensor_quality.h"
#include "fanout/udp_replicator.h"
#include "kv/store.h"

namespace edgeflow::fanout {

namespace {

constexpr std::string_view kStreamKeyPrefix = "fanout/streams/";
constexpr size_t kMaxNameBytes = 64;
constexpr size_t kMaxReportBytes = 64 << 10;
constexpr auto kPublishTimeout = std::chrono::seconds(5);
// How long a consumer's Ethernet address is waited for when the neighbour table does not have it
// yet (the kernel resolves it after the probe datagram).
constexpr auto kNeighbourWait = std::chrono::seconds(1);
constexpr uint16_t kDiscardPort = 9;

std::string Errno(int error) { return std::strerror(error); }

Status ValidateName(std::string_view what, std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return Status::InvalidArgument(std::string(what) + " names are 1.." +
                                   std::to_string(kMaxNameBytes) + " bytes");
  }
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) {
      return Status::InvalidArgument(std::string(what) + " name \"" + std::string(name) +
                                     "\" may only have letters, digits, '_', '-' and '.'");
    }
  }
  if (name == "." || name == "..") {
    return Status::InvalidArgument(std::string(what) + " name may not be \"" + std::string(name) +
                                   "\"");
  }
  return Status::Ok();
}

// An IPv4 literal with a port other than 0, in network byte order.
Result<sockaddr_in> Ipv4Destination(std::string_view what, const HostPort& address) {
  sockaddr_in out{};
  out.sin_family = AF_INET;
  if (inet_pton(AF_INET, address.host.c_str(), &out.sin_addr) != 1) {
    return Error(Status::InvalidArgument(std::string(what) + " \"" + address.ToString() +
                                         "\" is not an IPv4 address and port (the fan-out is "
                                         "IPv4 only)"));
  }
  if (address.port == 0) {
    return Error(Status::InvalidArgument(std::string(what) + " \"" + address.ToString() +
                                         "\" needs a port"));
  }
  out.sin_port = htons(address.port);
  return out;
}

// The interface that holds IPv4 address `address` (network byte order), or "".
std::string InterfaceHolding(in_addr_t address) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string name;
  for (ifaddrs* entry = list; entry != nullptr; entry = entry->ifa_next) {
    if (entry->ifa_addr == nullptr || entry->ifa_addr->sa_family != AF_INET) continue;
    if (reinterpret_cast<const sockaddr_in*>(entry->ifa_addr)->sin_addr.s_addr == address) {
      name = entry->ifa_name;
      break;
    }
  }
  freeifaddrs(list);
  return name;
}

// The interface the kernel's routing would send to `to` by: a connected UDP socket's local
// address (no datagram is sent) is held by that interface.
Result<std::string> RouteInterface(const sockaddr_in& to) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(Status::IoError("socket: " + Errno(errno)));
  sockaddr_in local{};
  socklen_t size = sizeof(local);
  const bool routed = connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) == 0 &&
                      getsockname(fd, reinterpret_cast<sockaddr*>(&local), &size) == 0;
  const int error = errno;
  close(fd);
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &to.sin_addr, text, sizeof(text));
  if (!routed) {
    return Error(Status::InvalidArgument(std::string("no route to ") + text + ": " + Errno(error)));
  }
  std::string name = InterfaceHolding(local.sin_addr.s_addr);
  if (name.empty()) {
    return Error(Status::InvalidArgument(std::string("cannot tell which interface reaches ") +
                                         text + "; give the consumer's interface"));
  }
  return name;
}

struct InterfaceFacts {
  int ifindex = 0;
  bool loopback = false;
  MacAddress mac{};
};

Result<InterfaceFacts> DescribeInterface(const std::string& name) {
  InterfaceFacts facts;
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return Error(Status::InvalidArgument("\"" + name + "\" is not an interface name"));
  }
  facts.ifindex = static_cast<int>(if_nametoindex(name.c_str()));
  if (facts.ifindex == 0) {
    return Error(Status::InvalidArgument("no interface \"" + name + "\" here"));
  }
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(Status::IoError("socket: " + Errno(errno)));
  ifreq request{};
  std::memcpy(request.ifr_name, name.c_str(), name.size());
  const bool have_flags = ioctl(fd, SIOCGIFFLAGS, &request) == 0;
  if (have_flags) facts.loopback = (request.ifr_flags & IFF_LOOPBACK) != 0;
  const bool have_mac = ioctl(fd, SIOCGIFHWADDR, &request) == 0;
  close(fd);
  if (!have_flags || !have_mac) {
    return Error(Status::IoError("cannot read interface \"" + name + "\": " + Errno(errno)));
  }
  std::memcpy(facts.mac.data(), request.ifr_hwaddr.sa_data, facts.mac.size());
  return facts;
}

// The neighbour table's Ethernet address for `address` on interface `name` (the ARP table lists
// the complete entries with flag 0x2). The calling thread's table: /proc/net is the process's
// network namespace, which is not the thread's in a thread that entered another one.
std::optional<MacAddress> NeighbourMac(const std::string& address, const std::string& name) {
  std::ifstream arp("/proc/thread-self/net/arp");
  std::string line;
  std::getline(arp, line);  // the header
  while (std::getline(arp, line)) {
    std::istringstream fields(line);
    std::string ip, type, flags, mac, mask, device;
    if (!(fields >> ip >> type >> flags >> mac >> mask >> device)) continue;
    if (ip != address || device != name || (std::stoul(flags, nullptr, 16) & 0x2) == 0) continue;
    MacAddress out{};
    unsigned bytes[6];
    if (std::sscanf(mac.c_str(), "%x:%x:%x:%x:%x:%x", &bytes[0], &bytes[1], &bytes[2], &bytes[3],
                    &bytes[4], &bytes[5]) != 6) {
      continue;
    }
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(bytes[i]);
    return out;
  }
  return std::nullopt;
}

// The consumer's Ethernet address: from the neighbour table, after making the kernel resolve it
// with an empty datagram to the consumer's discard port when the table does not have it.
Result<MacAddress> ResolveMac(const sockaddr_in& to, const std::string& address,
                              const std::string& interface) {
  if (auto mac = NeighbourMac(address, interface)) return *mac;
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, interface.c_str(),
               static_cast<socklen_t>(interface.size()));
    sockaddr_in probe = to;
    probe.sin_port = htons(kDiscardPort);
    sendto(fd, "", 0, 0, reinterpret_cast<const sockaddr*>(&probe), sizeof(probe));
    close(fd);
  }
  const auto deadline = std::chrono::steady_clock::now() + kNeighbourWait;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (auto mac = NeighbourMac(address, interface)) return *mac;
  }
  return Error(Status::Unavailable("no Ethernet address is known for " + address + " on " +
                                   interface + " (it did not answer ARP); give its mac"));
}

}  // namespace

std::optional<Datapath> ParseDatapath(std::string_view text) {
  if (text == "auto") return Datapath::kAuto;
  if (text == "ebpf") return Datapath::kEbpf;
  if (text == "userspace") return Datapath::kUserspace;
  return std::nullopt;
}

std::string_view DatapathName(Datapath datapath) {
  switch (datapath) {
    case Datapath::kAuto:
      return "auto";
    case Datapath::kEbpf:
      return "ebpf";
    case Datapath::kUserspace:
      return "userspace";
  }
  return "auto";
}

struct FanoutService::Consumer {
  ConsumerConfig config;
  sockaddr_in destination{};
  Fraction residual = Fraction::One();   // the plan's, against Q_eff
  Fraction in_effect = Fraction::One();  // what the data path applies, against what arrives
  uint32_t slot = 0;                     // eBPF: the program's consumer slot
  size_t replicator_index = 0;           // userspace: the replicator's consumer index
  std::string interface;                 // eBPF: the interface its copies leave by (resolved)
  MacAddress mac{};                      // eBPF: its Ethernet address (resolved)
};

struct FanoutService::Stream {
  StreamConfig config;
  sockaddr_in listen{};
  uint32_t id = 0;        // eBPF: the program's stream id
  int ifindex = 0;        // eBPF: where it arrives (the program is attached there)
  std::string interface;  // eBPF: its name (resolved when not configured)
  std::unique_ptr<UdpReplicator> replicator;  // userspace
  std::vector<std::unique_ptr<Consumer>> consumers;
  QocPlan plan;
  // What the sensor says it applies, from its last report; none from a sensor that does not
  // report (then it is taken to follow the plan: see ApplyPlan).
  std::optional<Fraction> sensor_reported;
  std::string last_report;
  int64_t last_report_ms = 0;
};

Result<std::unique_ptr<FanoutService>> FanoutService::Create(FanoutServiceOptions options) {
  std::unique_ptr<FanoutService> service(new FanoutService(std::move(options)));
  if (service->options_.datapath != Datapath::kUserspace) {
    auto program = FanoutProgram::Load();
    if (program) {
      service->program_ = std::move(*program);
    } else if (service->options_.datapath == Datapath::kEbpf) {
      return Error(program.error());
    } else {
      log::Warn("fan-out: eBPF unavailable, using the userspace replicator",
                {{"reason", program.error().ToString()}});
    }
  }
  return service;
}

FanoutService::FanoutService(FanoutServiceOptions options) : options_(std::move(options)) {}

FanoutService::~FanoutService() { Stop(); }

Datapath FanoutService::datapath() const {
  return program_ ? Datapath::kEbpf : Datapath::kUserspace;
}

Status FanoutService::Start() {
  if (options_.broker) {
    channels::MqttClientOptions mqtt_options;
    mqtt_options.broker = *options_.broker;
    mqtt_options.username = options_.mqtt_username;
    mqtt_options.password = options_.mqtt_password;
    auto client = channels::MqttClient::Create(mqtt_options);
    if (!client) return client.error();
    mqtt_ = std::move(*client);
    const std::string prefix = channels::ChannelTopic(options_.tenant, "_fanout") + "/";
    mqtt_->SetMessageHandler([this, prefix](const channels::MqttMessage& message) {
      // ef/<tenant>/ch/_fanout/<stream>/report
      std::string_view topic = message.topic;
      if (!topic.starts_with(prefix) || !topic.ends_with("/report")) return;
      topic.remove_prefix(prefix.size());
      topic.remove_suffix(std::string_view("/report").size());
      OnSensorReport(topic, message.payload);
    });
    if (Status status = mqtt_->Start(); !status.ok()) return status;
    // Subscribed now if connected, else on connection: reports are not worth waiting for.
    mqtt_->Subscribe(prefix + "+/report", 0, std::chrono::milliseconds(0)).IgnoreError();
  }
  std::lock_guard lock(mu_);
  started_ = true;
  if (options_.store == nullptr) return Status::Ok();
  std::string after;
  do {
    auto page = options_.store->List(kv::kNodeStateNamespace, kStreamKeyPrefix, after, 1000);
    if (!page) return page.error();
    for (const kv::ListEntry& entry : page->entries) {
      auto item = options_.store->Get(kv::kNodeStateNamespace, entry.key);
      if (!item) continue;
      auto saved = nlohmann::json::parse(item->value, nullptr, /*allow_exceptions=*/false);
      auto stream = std::make_unique<Stream>();
      Status status = Status::Ok();
      try {
        stream->config.name = saved.at("name").get<std::string>();
        auto listen = ParseHostPort(saved.at("listen").get<std::string>());
        if (!listen) throw std::runtime_error(listen.error().ToString());
        stream->config.listen = *listen;
        stream->config.interface = saved.value("interface", "");
        stream->config.codec = ParseCodec(saved.value("codec", "auto")).value_or(EF_CODEC_AUTO);
        for (const auto& c : saved.at("consumers")) {
          auto consumer = std::make_unique<Consumer>();
          consumer->config.name = c.at("name").get<std::string>();
          auto address = ParseHostPort(c.at("address").get<std::string>());
          if (!address) throw std::runtime_error(address.error().ToString());
          consumer->config.address = *address;
          consumer->config.interface = c.value("interface", "");
          if (c.contains("mac")) {
            auto mac = ParseMac(c.at("mac").get<std::string>());
            if (!mac) throw std::runtime_error(mac.error().ToString());
            consumer->config.mac = *mac;
          }
          auto need = ParseFraction(c.at("keep").get<std::string>());
          if (!need) throw std::runtime_error(need.error().ToString());
          consumer->config.need.need = *need;
          consumer->config.need.mode =
              c.value("mode", "frame") == "packet" ? EF_DROP_PACKET : EF_DROP_FRAME;
          stream->consumers.push_back(std::move(consumer));
        }
      } catch (const std::exception& e) {
        status = Status::InvalidArgument(std::string("saved stream is damaged: ") + e.what());
      }
      if (status.ok()) status = SetUpStream(*stream);
      if (!status.ok()) {
        log::Warn("fan-out: cannot set up a saved stream",
                  {{"key", entry.key}, {"error", status.ToString()}});
        continue;
      }
      const std::string name = stream->config.name;
      streams_.emplace(name, std::move(stream));
    }
    after = page->next_start_after;
  } while (!after.empty());
  return Status::Ok();
}

void FanoutService::Stop() {
  if (mqtt_) mqtt_->Stop();
  std::lock_guard lock(mu_);
  for (auto& [name, stream] : streams_) {
    if (stream->replicator) stream->replicator->Stop();
  }
  started_ = false;
}

Status FanoutService::SetUpStream(Stream& stream) {
  auto listen = Ipv4Destination("listen address", stream.config.listen);
  if (!listen) return listen.error();
  stream.listen = *listen;
  if (program_) {
    if (stream.listen.sin_addr.s_addr == htonl(INADDR_ANY)) {
      return Status::InvalidArgument(
          "the eBPF data path recognises a stream by its destination: listen on the address the "
          "sensor sends to, not 0.0.0.0");
    }
    std::string interface = stream.config.interface;
    if (interface.empty()) interface = InterfaceHolding(stream.listen.sin_addr.s_addr);
    if (interface.empty()) {
      return Status::InvalidArgument("no interface here holds " + stream.config.listen.host +
                                     "; give the interface the stream arrives on");
    }
    auto facts = DescribeInterface(interface);
    if (!facts) return facts.error();
    std::vector<bool> used(FanoutProgram::kMaxStreams, false);
    for (const auto& [name, other] : streams_) used[other->id] = true;
    const auto free_id = std::find(used.begin(), used.end(), false);
    if (free_id == used.end()) {
      return Status::ResourceExhausted("the fan-out has " +
                                       std::to_string(FanoutProgram::kMaxStreams) + " streams");
    }
    stream.id = static_cast<uint32_t>(free_id - used.begin());
    StreamSpec spec{.daddr = stream.listen.sin_addr.s_addr,
                    .dport = stream.listen.sin_port,
                    .codec = stream.config.codec};
    if (Status status = program_->AddStream(stream.id, spec); !status.ok()) return status;
    const bool attached = std::any_of(streams_.begin(), streams_.end(), [&](const auto& entry) {
      return entry.second->ifindex == facts->ifindex;
    });
    if (!attached) {
      if (Status status = program_->Attach(facts->ifindex); !status.ok()) {
        program_->RemoveStream(stream.id).IgnoreError();
        return status;
      }
    }
    stream.ifindex = facts->ifindex;
    stream.interface = interface;
  } else {
    auto replicator = UdpReplicator::Start(stream.config.listen, {}, stream.config.codec);
    if (!replicator) return replicator.error();
    stream.replicator = std::move(*replicator);
  }
  for (auto& consumer : stream.consumers) {
    if (Status status = SetUpConsumer(stream, *consumer, nullptr); !status.ok()) {
      log::Warn("fan-out: cannot set up a consumer", {{"stream", stream.config.name},
                                                      {"consumer", consumer->config.name},
                                                      {"error", status.ToString()}});
    }
  }
  return ApplyPlan(stream);
}

// Where a consumer's copies leave on the eBPF data path.
struct FanoutService::ConsumerLink {
  std::string interface;
  int ifindex = 0;
  MacAddress dmac{};  // the consumer's
  MacAddress smac{};  // the interface's
};

// The interface the consumer is reached by (given, or the route's) and the Ethernet addresses
// of its copies.
Result<FanoutService::ConsumerLink> FanoutService::FindConsumerLink(const ConsumerConfig& config) {
  auto destination = Ipv4Destination("consumer address", config.address);
  if (!destination) return Error(destination.error());
  ConsumerLink link;
  link.interface = config.interface;
  if (link.interface.empty()) {
    auto routed = RouteInterface(*destination);
    if (!routed) return Error(routed.error());
    link.interface = *routed;
  }
  auto facts = DescribeInterface(link.interface);
  if (!facts) return Error(facts.error());
  link.ifindex = facts->ifindex;
  link.smac = facts->mac;
  if (config.mac) {
    link.dmac = *config.mac;
  } else if (!facts->loopback) {
    auto resolved = ResolveMac(*destination, config.address.host, link.interface);
    if (!resolved) return Error(resolved.error());
    link.dmac = *resolved;
  }
  return link;
}

Status FanoutService::SetUpConsumer(Stream& stream, Consumer& consumer,
                                    const ConsumerLink* found_link) {
  auto destination = Ipv4Destination("consumer address", consumer.config.address);
  if (!destination) return destination.error();
  consumer.destination = *destination;
  // Until the plan is applied, everything: a consumer never gets less than it needs.
  const ef_consumer_policy policy = PolicyOf(Fraction::One(), consumer.config.need.mode);
  if (!program_) {
    auto index = stream.replicator->AddConsumer({consumer.config.address, policy});
    if (!index) return index.error();
    consumer.replicator_index = *index;
    return Status::Ok();
  }
  ConsumerLink link;
  if (found_link) {
    link = *found_link;
  } else {
    auto found = FindConsumerLink(consumer.config);
    if (!found) return found.error();
    link = std::move(*found);
  }
  ConsumerSpec spec{.ifindex = link.ifindex,
                    .dmac = link.dmac,
                    .smac = link.smac,
                    .daddr = consumer.destination.sin_addr.s_addr,
                    .dport = consumer.destination.sin_port,
                    .ingress = false,
                    .policy = policy};
  auto slot = program_->AddConsumer(stream.id, spec);
  if (!slot) return slot.error();
  consumer.slot = *slot;
  consumer.interface = link.interface;
  consumer.mac = link.dmac;
  return Status::Ok();
}

Status FanoutService::ApplyPlan(Stream& stream) {
  std::vector<ConsumerNeed> needs;
  for (const auto& consumer : stream.consumers) needs.push_back(consumer->config.need);
  auto plan = PlanSensor(needs);
  if (!plan) return plan.error();
  stream.plan = std::move(*plan);
  for (size_t i = 0; i < stream.consumers.size(); ++i) {
    Consumer* consumer = stream.consumers[i].get();
    consumer->residual = stream.plan.consumers[i].residual;
    // Against what the sensor sends now: what it last reported, which is the plan's Q_eff once
    // it has caught up with a change. Taking the report rather than the plan matters when Q_eff
    // rises (a new consumer needs more): until the sensor sends more, the others' residuals stay
    // at what they were instead of cutting what is still the old, thinner stream. A sensor that
    // never reports is taken to follow the plan; if it sends everything instead (a plain camera),
    // need / Q_eff of everything is still at least the need.
    const ConsumerPlan in_effect =
        PlanConsumer(consumer->config.need, stream.sensor_reported.value_or(stream.plan.effective));
    consumer->in_effect = in_effect.residual;
    const ef_consumer_policy policy = in_effect.policy;
    if (program_) {
      program_->SetPolicy(consumer->slot, policy).IgnoreError();  // NotFound: not set up
    } else {
      stream.replicator->SetPolicy(consumer->replicator_index, policy);
    }
  }
  if (mqtt_) {
    channels::MqttMessage message;
    message.topic =
        channels::ChannelTopic(options_.tenant, "_fanout/" + stream.config.name + "/quality");
    message.payload = SensorQualityJson(stream.plan.sensor_policy);
    message.retain = true;
    message.qos = 1;
    message.content_type = "application/json";
    mqtt_->PublishAsync(message, kPublishTimeout, [name = stream.config.name](Status status) {
      if (!status.ok()) {
        log::Warn("fan-out: the sensor's quality was not published",
                  {{"stream", name}, {"error", status.ToString()}});
      }
    });
  }
  return Status::Ok();
}

void FanoutService::OnSensorReport(std::string_view name, std::string payload) {
  if (payload.size() > kMaxReportBytes) return;
  auto report = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!report.is_object()) return;
  std::optional<ef_consumer_policy> applied;
  if (auto quality = report.find("quality"); quality != report.end() && quality->is_object()) {
    if (auto parsed = ParseSensorQuality(quality->dump())) applied = *parsed;
  }
  std::lock_guard lock(mu_);
  const auto it = streams_.find(name);
  if (it == streams_.end()) return;
  Stream& stream = *it->second;
  stream.last_report = std::move(payload);
  stream.last_report_ms = SystemClock().NowMillis();
  if (!applied) return;
  auto keep = MakeFraction(applied->keep_num, applied->keep_den == 0 ? 1 : applied->keep_den);
  if (!keep || stream.sensor_reported == *keep) return;
  // The sensor now sends another share: the consumers' residuals follow what really arrives.
  stream.sensor_reported = *keep;
  ApplyPlan(stream).IgnoreError();  // fails only for invalid needs, which were checked
}

Status FanoutService::Save(const Stream& stream) {
  if (options_.store == nullptr) return Status::Ok();
  nlohmann::json consumers = nlohmann::json::array();
  for (const auto& consumer : stream.consumers) {
    const ConsumerConfig& config = consumer->config;
    nlohmann::json saved = {{"name", config.name},
                            {"address", config.address.ToString()},
                            {"interface", config.interface},
                            {"keep", FormatFraction(config.need.need)},
                            {"mode", DropModeName(config.need.mode)}};
    if (config.mac) saved["mac"] = FormatMac(*config.mac);
    consumers.push_back(std::move(saved));
  }
  const nlohmann::json saved = {{"name", stream.config.name},
                                {"listen", stream.config.listen.ToString()},
                                {"interface", stream.config.interface},
                                {"codec", CodecName(stream.config.codec)},
                                {"consumers", std::move(consumers)}};
  auto written = options_.store->Put(
      kv::kNodeStateNamespace, std::string(kStreamKeyPrefix) + stream.config.name, saved.dump());
  if (!written) return written.error();
  return Status::Ok();
}

void FanoutService::Unsave(std::string_view stream) {
  if (options_.store == nullptr) return;
  auto deleted = options_.store->Delete(kv::kNodeStateNamespace,
                                        std::string(kStreamKeyPrefix) + std::string(stream));
  if (!deleted && !deleted.error().Is(ErrorCode::kNotFound)) {
    log::Warn("fan-out: the removed stream is still saved",
              {{"stream", stream}, {"error", deleted.error().ToString()}});
  }
}

Result<StreamStatus> FanoutService::AddStream(const StreamConfig& config) {
  if (Status status = ValidateName("stream", config.name); !status.ok()) return Error(status);
  if (config.codec != EF_CODEC_AUTO && config.codec != EF_CODEC_H264 &&
      config.codec != EF_CODEC_H265) {
    return Error(Status::InvalidArgument("unknown codec"));
  }
  std::lock_guard lock(mu_);
  if (streams_.contains(config.name)) {
    return Error(Status::AlreadyExists("stream \"" + config.name + "\" exists"));
  }
  for (const auto& [name, other] : streams_) {
    if (other->config.listen.host == config.listen.host &&
        other->config.listen.port == config.listen.port) {
      return Error(
          Status::AlreadyExists("stream \"" + name + "\" listens on " + config.listen.ToString()));
    }
  }
  auto stream = std::make_unique<Stream>();
  stream->config = config;
  if (Status status = SetUpStream(*stream); !status.ok()) {
    if (program_ && stream->ifindex != 0) program_->RemoveStream(stream->id).IgnoreError();
    return Error(status);
  }
  if (Status status = Save(*stream); !status.ok()) {
    log::Warn("fan-out: the stream is not saved",
              {{"stream", config.name}, {"error", status.ToString()}});
  }
  StreamStatus status = StatusOf(*stream);
  streams_.emplace(config.name, std::move(stream));
  return status;
}

Status FanoutService::RemoveStream(std::string_view name) {
  std::unique_ptr<Stream> stream;
  {
    std::lock_guard lock(mu_);
    const auto it = streams_.find(name);
    if (it == streams_.end()) {
      return Status::NotFound("no stream " + QuoteForError(name));
    }
    stream = std::move(it->second);
    streams_.erase(it);
    if (program_) {
      program_->RemoveStream(stream->id).IgnoreError();
      const bool still_used = std::any_of(streams_.begin(), streams_.end(), [&](const auto& e) {
        return e.second->ifindex == stream->ifindex;
      });
      if (!still_used) program_->Detach(stream->ifindex).IgnoreError();
    }
  }
  if (stream->replicator) stream->replicator->Stop();
  Unsave(name);
  if (mqtt_) {
    // An empty retained message deletes the retained quality: a sensor of that name that comes
    // later is not held back by a stream that no longer exists.
    channels::MqttMessage message;
    message.topic =
        channels::ChannelTopic(options_.tenant, "_fanout/" + std::string(name) + "/quality");
    message.retain = true;
    message.qos = 1;
    mqtt_->PublishAsync(message, kPublishTimeout, [](Status) {});
  }
  return Status::Ok();
}

Result<FanoutService::Stream*> FanoutService::FindStream(std::string_view name) const {
  const auto it = streams_.find(name);
  if (it == streams_.end()) {
    return Error(Status::NotFound("no stream " + QuoteForError(name)));
  }
  return it->second.get();
}

Result<ConsumerStatus> FanoutService::AddConsumer(std::string_view name,
                                                  const ConsumerConfig& config) {
  if (Status status = ValidateName("consumer", config.name); !status.ok()) return Error(status);
  if (!config.need.need.valid()) {
    return Error(Status::InvalidArgument("a consumer's keep is a fraction between 0 and 1"));
  }
  // The stream, with no consumer of that name yet. Checked before the link is found (a mistake
  // is answered at once) and again after (the stream may have changed meanwhile).
  auto stream_for_consumer = [&]() -> Result<Stream*> {
    auto found = FindStream(name);
    if (!found) return Error(found.error());
    for (const auto& other : (*found)->consumers) {
      if (other->config.name == config.name) {
        return Error(Status::AlreadyExists("stream " + QuoteForError(name) + " has a consumer " +
                                           QuoteForError(config.name)));
      }
    }
    return *found;
  };
  // The link without the lock: finding the consumer's Ethernet address may take a second, which
  // the other requests need not wait for. (program_ is set once, at creation.)
  std::optional<ConsumerLink> link;
  if (program_) {
    {
      std::lock_guard lock(mu_);
      if (auto checked = stream_for_consumer(); !checked) return Error(checked.error());
    }
    auto found = FindConsumerLink(config);
    if (!found) return Error(found.error());
    link = std::move(*found);
  }
  std::lock_guard lock(mu_);
  auto found = stream_for_consumer();
  if (!found) return Error(found.error());
  Stream& stream = **found;
  auto consumer = std::make_unique<Consumer>();
  consumer->config = config;
  if (Status status = SetUpConsumer(stream, *consumer, link ? &*link : nullptr); !status.ok()) {
    return Error(status);
  }
  stream.consumers.push_back(std::move(consumer));
  if (Status status = ApplyPlan(stream); !status.ok()) return Error(status);
  if (Status status = Save(stream); !status.ok()) {
    log::Warn("fan-out: the stream is not saved",
              {{"stream", stream.config.name}, {"error", status.ToString()}});
  }
  const StreamStatus status = StatusOf(stream);
  return status.consumers.back();
}

Status FanoutService::RemoveConsumer(std::string_view name, std::string_view consumer_name) {
  std::lock_guard lock(mu_);
  auto found = FindStream(name);
  if (!found) return found.error();
  Stream& stream = **found;
  const auto consumer =
      std::find_if(stream.consumers.begin(), stream.consumers.end(),
                   [&](const auto& c) { return c->config.name == consumer_name; });
  if (consumer == stream.consumers.end()) {
    return Status::NotFound("stream " + QuoteForError(name) + " has no consumer " +
                            QuoteForError(consumer_name));
  }
  if (program_) {
    program_->RemoveConsumer((*consumer)->slot).IgnoreError();
  } else {
    stream.replicator->RemoveConsumer((*consumer)->replicator_index);
  }
  stream.consumers.erase(consumer);
  if (Status status = ApplyPlan(stream); !status.ok()) return status;
  return Save(stream);
}

Result<ConsumerStatus> FanoutService::ChangeNeed(std::string_view name,
                                                 std::string_view consumer_name,
                                                 const ConsumerNeedChange& change) {
  if (change.need && !change.need->valid()) {
    return Error(Status::InvalidArgument("a consumer's keep is a fraction between 0 and 1"));
  }
  std::lock_guard lock(mu_);
  auto found = FindStream(name);
  if (!found) return Error(found.error());
  Stream& stream = **found;
  size_t index = 0;
  while (index < stream.consumers.size() && stream.consumers[index]->config.name != consumer_name) {
    ++index;
  }
  if (index == stream.consumers.size()) {
    return Error(Status::NotFound("stream " + QuoteForError(name) + " has no consumer " +
                                  QuoteForError(consumer_name)));
  }
  ConsumerNeed& need = stream.consumers[index]->config.need;
  need = change.AppliedTo(need);
  if (Status status = ApplyPlan(stream); !status.ok()) return Error(status);
  if (Status status = Save(stream); !status.ok()) return Error(status);
  return StatusOf(stream).consumers[index];
}

StreamStatus FanoutService::StatusOf(const Stream& stream) const {
  StreamStatus status;
  status.config = stream.config;
  if (!stream.interface.empty()) status.config.interface = stream.interface;
  status.datapath = datapath();
  status.sensor_keep = stream.plan.effective;
  status.sensor_mode = stream.plan.sensor_mode;
  status.sensor_reported = stream.sensor_reported;
  status.last_sensor_report = stream.last_report;
  status.last_sensor_report_ms = stream.last_report_ms;
  if (program_) {
    if (auto counters = program_->Counters(stream.id)) status.ingress = *counters;
  } else if (stream.replicator) {
    status.ingress.packets = stream.replicator->datagrams();
    status.ingress.bytes = stream.replicator->bytes();
  }
  for (const auto& consumer : stream.consumers) {
    ConsumerStatus& out = status.consumers.emplace_back();
    out.config = consumer->config;
    if (program_) {
      out.config.interface = consumer->interface;
      out.config.mac = consumer->mac;
      if (auto counters = program_->CountersOfConsumer(consumer->slot)) out.counters = *counters;
    } else {
      out.counters = stream.replicator->counters(consumer->replicator_index);
    }
    out.residual = consumer->residual;
    out.in_effect = consumer->in_effect;
  }
  if (!program_) {
    // The userspace path counts by class per consumer; the stream's view is what the first
    // consumer saw inspected (sent + dropped), or nothing without consumers.
    if (!status.consumers.empty()) {
      const ConsumerCounters& first = status.consumers.front().counters;
      for (size_t k = 0; k < EF_CLASS_COUNT; ++k) {
        status.ingress.ts_packets[k] = first.sent_packets[k] + first.dropped_packets[k];
      }
      status.ingress.uninspected = first.uninspected_datagrams;
    }
  }
  return status;
}

Result<StreamStatus> FanoutService::GetStream(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto found = FindStream(name);
  if (!found) return Error(found.error());
  return StatusOf(**found);
}

std::vector<StreamStatus> FanoutService::ListStreams() const {
  std::lock_guard lock(mu_);
  std::vector<StreamStatus> out;
  for (const auto& [name, stream] : streams_) out.push_back(StatusOf(*stream));
  return out;
}

}  // namespace edgeflow::fanout
