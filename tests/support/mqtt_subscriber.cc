#include "support/mqtt_subscriber.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

namespace edgeflow::test_support {
namespace {

using SteadyClock = std::chrono::steady_clock;

// The network thread looks at Stop() this often while it waits for data.
constexpr int kPollMillis = 50;
// Keep alive of the connection; a PINGREQ goes out after half of it without sending anything.
constexpr uint16_t kKeepAliveSeconds = 30;

// Control packet types (MQTT 5.0, section 2.1.2).
constexpr uint8_t kConnect = 1;
constexpr uint8_t kConnack = 2;
constexpr uint8_t kPublish = 3;
constexpr uint8_t kPuback = 4;
constexpr uint8_t kSubscribe = 8;
constexpr uint8_t kSuback = 9;
constexpr uint8_t kPingreq = 12;
constexpr uint8_t kPingresp = 13;
constexpr uint8_t kDisconnect = 14;

// Property identifiers (section 2.2.2.2) this client reads; the others are skipped by type.
constexpr uint32_t kMessageExpiryInterval = 0x02;
constexpr uint32_t kContentType = 0x03;
constexpr uint32_t kCorrelationData = 0x09;
constexpr uint32_t kSessionExpiryInterval = 0x11;
constexpr uint32_t kUserProperty = 0x26;

Status Malformed(const std::string& what) {
  return Status::Corruption("malformed MQTT packet from the broker: " + what);
}

void PutU16(std::string* out, uint16_t value) {
  out->push_back(static_cast<char>(value >> 8));
  out->push_back(static_cast<char>(value & 0xFF));
}

void PutU32(std::string* out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(value >> shift));
}

// Variable Byte Integer (section 1.5.5).
void PutVarint(std::string* out, uint32_t value) {
  do {
    uint8_t byte = value % 128;
    value /= 128;
    if (value > 0) byte |= 0x80;
    out->push_back(static_cast<char>(byte));
  } while (value > 0);
}

void PutString(std::string* out, std::string_view text) {
  PutU16(out, static_cast<uint16_t>(text.size()));
  out->append(text);
}

std::string MakePacket(uint8_t type, uint8_t flags, std::string_view body) {
  std::string out(1, static_cast<char>((type << 4) | flags));
  PutVarint(&out, static_cast<uint32_t>(body.size()));
  out.append(body);
  return out;
}

// Bounds-checked reading of a packet body.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  size_t left() const { return data_.size() - pos_; }
  std::string_view Rest() {
    std::string_view rest = data_.substr(pos_);
    pos_ = data_.size();
    return rest;
  }
  bool Take(size_t n, std::string_view* out) {
    if (left() < n) return false;
    *out = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool U8(uint8_t* out) {
    std::string_view bytes;
    if (!Take(1, &bytes)) return false;
    *out = static_cast<uint8_t>(bytes[0]);
    return true;
  }
  bool U16(uint16_t* out) {
    std::string_view bytes;
    if (!Take(2, &bytes)) return false;
    *out = static_cast<uint16_t>((static_cast<uint8_t>(bytes[0]) << 8) |
                                 static_cast<uint8_t>(bytes[1]));
    return true;
  }
  bool U32(uint32_t* out) {
    std::string_view bytes;
    if (!Take(4, &bytes)) return false;
    *out = 0;
    for (char c : bytes) *out = (*out << 8) | static_cast<uint8_t>(c);
    return true;
  }
  bool Varint(uint32_t* out) {
    *out = 0;
    for (int i = 0; i < 4; ++i) {
      uint8_t byte = 0;
      if (!U8(&byte)) return false;
      *out |= static_cast<uint32_t>(byte & 0x7F) << (7 * i);
      if ((byte & 0x80) == 0) return true;
    }
    return false;  // more than 4 bytes
  }
  // UTF-8 strings and binary data share the 2-byte length prefix.
  bool String(std::string* out) {
    uint16_t length = 0;
    std::string_view bytes;
    if (!U16(&length) || !Take(length, &bytes)) return false;
    out->assign(bytes);
    return true;
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

// Reads a property block (its length, then the properties). Properties of a PUBLISH go into
// `message` when given; every other property is checked for its shape and skipped.
Status ReadProperties(Reader& reader, MqttReceived* message) {
  uint32_t length = 0;
  std::string_view block;
  if (!reader.Varint(&length) || !reader.Take(length, &block)) {
    return Malformed("bad property length");
  }
  Reader props(block);
  while (props.left() > 0) {
    uint32_t id = 0;
    if (!props.Varint(&id)) return Malformed("bad property identifier");
    bool ok = true;
    uint8_t byte = 0;
    uint16_t u16 = 0;
    uint32_t u32 = 0;
    std::string text, text2;
    switch (id) {
      case 0x01:
      case 0x17:
      case 0x19:
      case 0x24:
      case 0x25:
      case 0x28:
      case 0x29:
      case 0x2A:
        ok = props.U8(&byte);
        break;
      case 0x13:
      case 0x21:
      case 0x22:
      case 0x23:
        ok = props.U16(&u16);
        break;
      case kMessageExpiryInterval:
        ok = props.U32(&u32);
        if (ok && message != nullptr) message->message_expiry_seconds = u32;
        break;
      case kSessionExpiryInterval:
      case 0x18:
      case 0x27:
        ok = props.U32(&u32);
        break;
      case 0x0B:
        ok = props.Varint(&u32);
        break;
      case kContentType:
        ok = props.String(&text);
        if (ok && message != nullptr) message->content_type = text;
        break;
      case 0x08:
      case 0x12:
      case 0x15:
      case 0x1A:
      case 0x1C:
      case 0x1F:
      case 0x16:
        ok = props.String(&text);
        break;
      case kCorrelationData:
        ok = props.String(&text);
        if (ok && message != nullptr) message->correlation_data = text;
        break;
      case kUserProperty:
        ok = props.String(&text) && props.String(&text2);
        if (ok && message != nullptr) message->user_properties.emplace_back(text, text2);
        break;
      default:
        return Malformed("unknown property identifier " + std::to_string(id));
    }
    if (!ok) return Malformed("property " + std::to_string(id) + " is cut short");
  }
  return Status::Ok();
}

std::string RandomClientId() {
  std::random_device random;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "ef-test-";
  for (int i = 0; i < 12; ++i) id.push_back(kHex[random() % 16]);
  return id;
}

class ScopedSocket {
 public:
  explicit ScopedSocket(int fd) : fd_(fd) {}
  ~ScopedSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedSocket(const ScopedSocket&) = delete;
  ScopedSocket& operator=(const ScopedSocket&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Status SendAll(int fd, std::string_view bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Unavailable(std::string("send: ") + std::strerror(errno));
    sent += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace

const std::string* MqttReceived::UserProperty(std::string_view name) const {
  for (const auto& [key, value] : user_properties) {
    if (key == name) return &value;
  }
  return nullptr;
}

std::string MqttReceived::Prop(std::string_view name) const {
  const std::string* value = UserProperty(name);
  return value != nullptr ? *value : "<absent>";
}

std::string MqttReceived::Describe() const {
  std::string out = "topic=" + topic + " qos=" + std::to_string(qos) +
                    " retain=" + std::to_string(retain) + " dup=" + std::to_string(dup) +
                    " payload_bytes=" + std::to_string(payload.size());
  if (!content_type.empty()) out += " content_type=" + content_type;
  if (correlation_data) out += " correlation_data=" + *correlation_data;
  if (message_expiry_seconds) out += " expiry=" + std::to_string(*message_expiry_seconds);
  for (const auto& [key, value] : user_properties) out += " " + key + "=" + value;
  return out;
}

std::vector<MqttReceived> ForItem(const std::vector<MqttReceived>& messages,
                                  const std::string& item_id) {
  std::vector<MqttReceived> out;
  for (const MqttReceived& m : messages) {
    if (m.correlation_data == item_id) out.push_back(m);
  }
  return out;
}

std::string DescribeAll(const std::vector<MqttReceived>& messages) {
  std::string out = std::to_string(messages.size()) + " message(s):";
  for (const MqttReceived& m : messages) {
    out += "\n  " + m.Describe();
    const bool printable =
        m.payload.size() <= 200 && std::all_of(m.payload.begin(), m.payload.end(), [](char c) {
          return c >= 0x20 && c < 0x7F;
        });
    if (printable) out += " payload=" + m.payload;
  }
  return out;
}

Result<std::unique_ptr<MqttSubscriber>> MqttSubscriber::Start(MqttSubscriberOptions options,
                                                              std::chrono::milliseconds timeout) {
  if (options.filters.empty()) {
    return Error(Status::InvalidArgument("MqttSubscriber needs at least one topic filter"));
  }
  if (options.qos < 0 || options.qos > 1) {
    return Error(Status::InvalidArgument("MqttSubscriber supports QoS 0 and 1 only"));
  }
  std::unique_ptr<MqttSubscriber> subscriber(new MqttSubscriber(std::move(options)));
  subscriber->thread_ = std::thread([s = subscriber.get()] { s->Run(); });
  std::string problem;
  {
    std::unique_lock lock(subscriber->mu_);
    subscriber->cv_.wait_for(lock, timeout, [&] {
      return subscriber->sessions_ > 0 || !subscriber->fatal_error_.empty();
    });
    if (subscriber->sessions_ > 0) return subscriber;
    problem =
        !subscriber->fatal_error_.empty() ? subscriber->fatal_error_ : subscriber->last_error_;
  }
  subscriber->Stop();
  return Error(Status::Unavailable(
      "MQTT subscriber " + subscriber->client_id_ + " to " +
      subscriber->options_.broker.ToString() +
      " did not get its subscriptions acknowledged within " + std::to_string(timeout.count()) +
      " ms (last problem: " + (problem.empty() ? "none" : problem) + ")"));
}

MqttSubscriber::MqttSubscriber(MqttSubscriberOptions options)
    : options_(std::move(options)),
      client_id_(options_.client_id.empty() ? RandomClientId() : options_.client_id) {}

MqttSubscriber::~MqttSubscriber() { Stop(); }

void MqttSubscriber::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool MqttSubscriber::Stopping() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

std::vector<MqttReceived> MqttSubscriber::Messages() const {
  std::lock_guard lock(mu_);
  return messages_;
}

bool MqttSubscriber::WaitFor(const std::function<bool(const std::vector<MqttReceived>&)>& done,
                             std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return done(messages_); });
}

bool MqttSubscriber::WaitForCount(size_t count, std::chrono::milliseconds timeout) const {
  return WaitFor([count](const std::vector<MqttReceived>& m) { return m.size() >= count; },
                 timeout);
}

int MqttSubscriber::sessions() const {
  std::lock_guard lock(mu_);
  return sessions_;
}

bool MqttSubscriber::WaitForSessions(int count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return sessions_ >= count; });
}

bool MqttSubscriber::last_session_present() const {
  std::lock_guard lock(mu_);
  return last_session_present_;
}

std::string MqttSubscriber::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

void MqttSubscriber::Run() {
  while (!Stopping()) {
    Status s = Session();
    {
      std::lock_guard lock(mu_);
      if (!s.ok()) last_error_ = s.ToString();
      if (s.Is(ErrorCode::kFailedPrecondition)) fatal_error_ = s.ToString();
    }
    cv_.notify_all();
    std::unique_lock lock(mu_);
    if (!fatal_error_.empty()) return;  // refused: retrying would only repeat the refusal
    cv_.wait_for(lock, options_.reconnect_delay, [this] { return stopping_; });
  }
}

Status MqttSubscriber::Session() {
  const HostPort& broker = options_.broker;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(broker.port);
  if (::inet_pton(AF_INET, broker.host.c_str(), &addr.sin_addr) != 1) {
    return Status::FailedPrecondition("MqttSubscriber needs an IPv4 broker address, not " +
                                      broker.host);
  }
  ScopedSocket socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (socket.get() < 0) return Status::IoError(std::string("socket: ") + std::strerror(errno));
  if (::connect(socket.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Status::Unavailable("connect to " + broker.ToString() + ": " + std::strerror(errno));
  }
  const int one = 1;
  ::setsockopt(socket.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const int fd = socket.get();

  // CONNECT (section 3.1): protocol name and level 5, then flags, keep alive, properties and the
  // client id.
  std::string connect;
  PutString(&connect, "MQTT");
  connect.push_back(5);
  connect.push_back(options_.persistent_session ? 0x00 : 0x02);  // 0x02 = Clean Start
  PutU16(&connect, kKeepAliveSeconds);
  std::string properties;
  if (options_.persistent_session) {
    properties.push_back(static_cast<char>(kSessionExpiryInterval));
    PutU32(&properties, options_.session_expiry_seconds);
  }
  PutVarint(&connect, static_cast<uint32_t>(properties.size()));
  connect += properties;
  PutString(&connect, client_id_);
  EF_RETURN_IF_ERROR(SendAll(fd, MakePacket(kConnect, 0, connect)));
  auto last_send = SteadyClock::now();
  auto send = [&](std::string_view packet) {
    last_send = SteadyClock::now();
    return SendAll(fd, packet);
  };

  constexpr uint16_t kSubscribeId = 1;
  std::string buffer;
  char chunk[64 << 10];
  for (;;) {
    if (Stopping()) {
      // A clean DISCONNECT (reason 0) keeps a persistent session and sends no will.
      send(MakePacket(kDisconnect, 0, std::string(1, '\0'))).IgnoreError();
      return Status::Ok();
    }
    if (SteadyClock::now() - last_send >= std::chrono::seconds(kKeepAliveSeconds / 2)) {
      EF_RETURN_IF_ERROR(send(MakePacket(kPingreq, 0, "")));
    }
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, kPollMillis);
    if (ready < 0 && errno != EINTR) {
      return Status::IoError(std::string("poll: ") + std::strerror(errno));
    }
    if (ready <= 0) continue;
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n == 0) return Status::Unavailable("the broker closed the connection");
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Status::Unavailable(std::string("recv: ") + std::strerror(errno));
    }
    buffer.append(chunk, static_cast<size_t>(n));

    // Every complete packet in the buffer.
    for (;;) {
      Reader header(buffer);
      uint8_t first = 0;
      uint32_t length = 0;
      if (!header.U8(&first)) break;
      if (!header.Varint(&length)) {
        if (buffer.size() >= 5) return Malformed("remaining length longer than 4 bytes");
        break;  // the length itself is not complete yet
      }
      const size_t header_size = buffer.size() - header.left();
      if (header.left() < length) break;
      const std::string body = buffer.substr(header_size, length);
      buffer.erase(0, header_size + length);
      const uint8_t type = first >> 4;
      const uint8_t flags = first & 0x0F;
      Reader reader(body);

      if (type == kConnack) {
        uint8_t ack_flags = 0, reason = 0;
        if (!reader.U8(&ack_flags) || !reader.U8(&reason)) return Malformed("short CONNACK");
        if (reason != 0) {
          return Status::FailedPrecondition("the broker refused the connection (CONNACK reason " +
                                            std::to_string(reason) + ")");
        }
        {
          std::lock_guard lock(mu_);
          last_session_present_ = (ack_flags & 0x01) != 0;
        }
        // Subscribe on every connection: a broker that lost the session (or a clean one) has no
        // subscriptions; renewing one that exists changes nothing.
        std::string subscribe;
        PutU16(&subscribe, kSubscribeId);
        subscribe.push_back(0);  // no properties
        for (const std::string& filter : options_.filters) {
          PutString(&subscribe, filter);
          subscribe.push_back(static_cast<char>(options_.qos));
        }
        EF_RETURN_IF_ERROR(send(MakePacket(kSubscribe, 0x02, subscribe)));
      } else if (type == kSuback) {
        uint16_t id = 0;
        if (!reader.U16(&id)) return Malformed("short SUBACK");
        EF_RETURN_IF_ERROR(ReadProperties(reader, nullptr));
        const std::string_view reasons = reader.Rest();
        if (reasons.size() != options_.filters.size()) {
          return Malformed("SUBACK with " + std::to_string(reasons.size()) + " reason codes for " +
                           std::to_string(options_.filters.size()) + " filters");
        }
        for (char reason : reasons) {
          if (static_cast<uint8_t>(reason) >= 0x80) {
            return Status::FailedPrecondition("the broker refused a subscription (SUBACK reason " +
                                              std::to_string(static_cast<uint8_t>(reason)) + ")");
          }
        }
        {
          std::lock_guard lock(mu_);
          ++sessions_;
        }
        cv_.notify_all();
      } else if (type == kPublish) {
        MqttReceived message;
        message.dup = (flags & 0x08) != 0;
        message.qos = (flags >> 1) & 0x03;
        message.retain = (flags & 0x01) != 0;
        uint16_t packet_id = 0;
        if (!reader.String(&message.topic)) return Malformed("PUBLISH without a topic");
        if (message.qos == 2 || message.qos == 3) {
          return Malformed("PUBLISH with QoS " + std::to_string(message.qos) +
                           " on a subscription of QoS " + std::to_string(options_.qos));
        }
        if (message.qos == 1 && !reader.U16(&packet_id)) return Malformed("PUBLISH without id");
        EF_RETURN_IF_ERROR(ReadProperties(reader, &message));
        message.payload.assign(reader.Rest());
        {
          std::lock_guard lock(mu_);
          messages_.push_back(std::move(message));
        }
        cv_.notify_all();
        // Acknowledged only once recorded: at least once, as for a real consumer.
        if (packet_id != 0) {
          std::string puback;
          PutU16(&puback, packet_id);
          EF_RETURN_IF_ERROR(send(MakePacket(kPuback, 0, puback)));
        }
      } else if (type == kPingresp) {
        // Nothing to do: the connection is alive.
      } else if (type == kDisconnect) {
        uint8_t reason = 0;
        (void)reader.U8(&reason);
        return Status::Unavailable("the broker sent DISCONNECT (reason " + std::to_string(reason) +
                                   ")");
      } else {
        return Malformed("unexpected packet type " + std::to_string(type));
      }
    }
  }
}

}  // namespace edgeflow::test_support
