// edgeflow/function.h: write an edgeflow edge function in C++. Header-only; it needs the C++
// standard library and nlohmann-json, nothing else.
//
// A function runs as a long-lived worker process: the node starts it, hands it one invocation at
// a time and collects the results. fn::run() speaks the worker protocol with the node
// (docs/function-protocol.md) on stdin/stdout; the function only supplies a handler:
//
//   #include <edgeflow/function.h>
//   namespace fn = edgeflow::fn;
//
//   int main() {
//     return fn::run([](const std::vector<fn::Input>&, fn::Context& ctx) {
//       const fn::Input* in = ctx.input("in");
//       if (in == nullptr) throw fn::PermanentError("no input \"in\"");  // no retries
//       long long seen = std::stoll(ctx.get("seen").value_or("0")) + 1;  // kept by the node
//       ctx.put("seen", std::to_string(seen));
//       ctx.info("item " + ctx.item_id() + " is number " + std::to_string(seen));
//       return fn::Outputs{{.name = "out", .data = in->data, .content_type = in->content_type}};
//     });
//   }
//
// The rules:
//  - stdout carries the protocol and nothing else. run() keeps the original stdout for itself and
//    points fd 1 at stderr, so printf, std::cout and child processes write to the function's log
//    (stderr). Anything already flushed to stdout before run() corrupts the protocol: print
//    nothing before calling it. stdin is the node's too: run() points fd 0 at /dev/null.
//  - An exception from the handler fails the invocation with what() as the message, and the node
//    retries it per the function's retry policy. fn::PermanentError fails it without retries (an
//    input the function can never process). A result the protocol does not allow (an empty output
//    name, a bad or duplicate part) fails the invocation permanently as well.
//  - Context operations (get/put/erase) wait for the node's answer. A refusal by the node, or a
//    key that is not 1..512 bytes of UTF-8, throws fn::Error, which the handler may catch.
//    A Context may be used from several threads while the handler runs (calls are serialized),
//    never after the handler has returned.
//  - Outputs with the same name need distinct parts: their item ids become "<item_id>.<part>".
//  - run() returns 0 after the node's shutdown or at the end of stdin, 2 if the node broke the
//    protocol and 1 on any other failure (an I/O error, for example), with a message on stderr.
//    Return its value from main().
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace edgeflow::fn {

// One input of an invocation.
struct Input {
  std::string name{};          // the input's name in the pipeline spec
  std::string content_type{};  // as the producer gave it
  std::string channel{};       // the channel the item arrived on
  std::string key{};           // the item's key
  std::string data{};          // binary-safe
};

// One output item. `content_type` and `part` are left out of the result when empty. (The `{}`
// initializers let designated initializers skip members without -Wmissing-field-initializers.)
struct Output {
  std::string name{};          // one of the function's declared outputs
  std::string data{};          // binary-safe
  std::string content_type{};  // e.g. "image/jpeg"
  std::string part{};          // 1..64 of [A-Za-z0-9_.-]; the item id becomes "<item_id>.<part>"
};

using Outputs = std::vector<Output>;

enum class Level { kDebug, kInfo, kWarn, kError };

// A context operation failed: the node refused it, or the key is not valid.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown by a handler to fail the invocation without retries.
class PermanentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
class Session;
class Worker;
}  // namespace detail

// What a handler knows about its invocation, and its access to the node (context store, log).
class Context {
 public:
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const std::string& item_id() const { return item_id_; }
  const std::string& stream() const { return stream_; }  // "" when the item has no stream key
  int attempt() const { return attempt_; }               // 1 for the first try
  const std::string& trace_id() const { return trace_id_; }
  int64_t deadline_ms() const { return deadline_ms_; }  // Unix ms; the node kills the worker then
  int64_t invocation_id() const { return invocation_id_; }

  const std::vector<Input>& inputs() const { return inputs_; }
  // The input called `name`, or nullptr.
  const Input* input(std::string_view name) const;

  // The context value under `key`, or nullopt if there is none.
  std::optional<std::string> get(std::string_view key);
  // Stores `value` under `key`; it expires after `ttl_ms` milliseconds (0 = never).
  void put(std::string_view key, std::string_view value, int64_t ttl_ms = 0);
  // Removes `key` (no error if it does not exist).
  void erase(std::string_view key);

  // A structured line in the function's log. Messages over 64 KiB are cut. Never throws.
  void log(Level level, std::string_view message);
  void debug(std::string_view message) { log(Level::kDebug, message); }
  void info(std::string_view message) { log(Level::kInfo, message); }
  void warn(std::string_view message) { log(Level::kWarn, message); }
  void error(std::string_view message) { log(Level::kError, message); }

 private:
  friend class detail::Worker;
  explicit Context(detail::Session& session) : session_(session) {}

  detail::Session& session_;
  int64_t invocation_id_ = 0;
  std::string item_id_;
  std::string stream_;
  int attempt_ = 1;
  std::string trace_id_;
  int64_t deadline_ms_ = 0;
  std::vector<Input> inputs_;
};

using Handler = std::function<Outputs(const std::vector<Input>&, Context&)>;

// The worker's main loop: sends `ready`, then serves invocations until the node sends shutdown or
// closes stdin. Call it once, from main(), and return its value (see the rules above).
int run(Handler handler);

// ---------------------------------------------------------------------------------------------
// Implementation. Nothing below is part of the API.

namespace detail {

inline constexpr int kProtocolVersion = 1;
inline constexpr std::size_t kMinHeaderBytes = 2;
inline constexpr std::size_t kMaxHeaderBytes = std::size_t{1} << 20;
inline constexpr std::size_t kMaxKeyBytes = 512;
inline constexpr std::size_t kMaxPartBytes = 64;
// Log and error messages are cut to this, so that even fully escaped they fit in a header.
inline constexpr std::size_t kMaxMessageBytes = std::size_t{64} << 10;
inline constexpr std::size_t kReadBufferBytes = std::size_t{64} << 10;
// The most invocations one invoke_batch frame may carry (announced in ready).
inline constexpr std::size_t kMaxBatch = 64;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitProtocolError = 2;

// The node sent something the protocol does not allow. The worker cannot go on.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline bool IsValidUtf8(std::string_view text) {
  static constexpr uint32_t kSmallestForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    uint32_t code_point = 0;
    if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code_point = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code_point = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code_point = lead & 0x07;
    } else {
      return false;
    }
    if (text.size() - i < length) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto continuation = static_cast<unsigned char>(text[i + k]);
      if ((continuation & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (continuation & 0x3F);
    }
    if (code_point < kSmallestForLength[length] || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return false;  // overlong, out of range, or a surrogate
    }
    i += length;
  }
  return true;
}

// At most `max_bytes` of `text`, without splitting a UTF-8 sequence.
inline std::string_view CutUtf8(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

inline bool IsValidPart(std::string_view part) {
  if (part.empty() || part.size() > kMaxPartBytes) return false;
  for (const char c : part) {
    const bool allowed = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!allowed) return false;
  }
  return true;
}

inline std::string Quoted(std::string_view text) {
  return nlohmann::json(std::string(CutUtf8(text, 200)))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Invalid UTF-8 in messages becomes U+FFFD instead of failing the frame.
inline std::string DumpHeader(const nlohmann::json& header) {
  return header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Header member accessors: a missing or mistyped member is a protocol error.
inline const nlohmann::json& Member(const nlohmann::json& header, std::string_view frame,
                                    const char* name) {
  const auto it = header.find(name);
  if (it == header.end()) {
    throw ProtocolError(std::string(frame) + " frame has no member \"" + name + "\"");
  }
  return *it;
}

inline int64_t IntMember(const nlohmann::json& header, std::string_view frame, const char* name) {
  const nlohmann::json& value = Member(header, frame, name);
  if (value.is_number_unsigned()) {
    const auto unsigned_value = value.get<uint64_t>();
    if (unsigned_value <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return static_cast<int64_t>(unsigned_value);
    }
  } else if (value.is_number_integer()) {
    return value.get<int64_t>();
  }
  throw ProtocolError(std::string(frame) + " frame: \"" + name + "\" must be a 64-bit integer");
}

inline const std::string& StringMember(const nlohmann::json& header, std::string_view frame,
                                       const char* name) {
  const nlohmann::json& value = Member(header, frame, name);
  if (!value.is_string()) {
    throw ProtocolError(std::string(frame) + " frame: \"" + name + "\" must be a string");
  }
  return value.get_ref<const std::string&>();
}

inline std::size_t BlobIndexMember(const nlohmann::json& header, std::string_view frame,
                                   std::size_t blob_count) {
  const int64_t index = IntMember(header, frame, "blob");
  if (index < 0 || static_cast<uint64_t>(index) >= blob_count) {
    throw ProtocolError(std::string(frame) + " frame: blob index " + std::to_string(index) +
                        " is out of range (the frame has " + std::to_string(blob_count) +
                        " blobs)");
  }
  return static_cast<std::size_t>(index);
}

// The "error" member of a ctx_value/ctx_done answer, if it has one.
inline std::optional<std::string> ErrorMember(const nlohmann::json& header,
                                              std::string_view frame) {
  if (!header.contains("error")) return std::nullopt;
  return StringMember(header, frame, "error");
}

struct Frame {
  nlohmann::json header;
  std::string type;
  std::vector<std::string> blobs;
};

// Reads and writes frames on two file descriptors: full-length loops, EINTR retried, and a
// non-blocking descriptor (set by someone else) waited for with poll().
class FrameChannel {
 public:
  FrameChannel(int in_fd, int out_fd) : in_fd_(in_fd), out_fd_(out_fd), buffer_(kReadBufferBytes) {}

  // The next frame from the node, or nullopt at the end of input before a frame begins.
  std::optional<Frame> Read() {
    unsigned char prefix[4];
    const std::size_t prefix_bytes = ReadUpTo(reinterpret_cast<char*>(prefix), sizeof prefix);
    if (prefix_bytes == 0) return std::nullopt;
    if (prefix_bytes < sizeof prefix) {
      throw ProtocolError("truncated frame: the input ended inside a length prefix");
    }
    const uint32_t header_bytes = (uint32_t{prefix[0]} << 24) | (uint32_t{prefix[1]} << 16) |
                                  (uint32_t{prefix[2]} << 8) | uint32_t{prefix[3]};
    if (header_bytes < kMinHeaderBytes || header_bytes > kMaxHeaderBytes) {
      throw ProtocolError("bad frame: header length " + std::to_string(header_bytes) +
                          " is outside 2..1048576");
    }
    std::string header_text(header_bytes, '\0');
    if (ReadUpTo(header_text.data(), header_text.size()) < header_text.size()) {
      throw ProtocolError("truncated frame: the input ended inside a header");
    }
    Frame frame;
    frame.header = nlohmann::json::parse(header_text, nullptr, /*allow_exceptions=*/false);
    if (frame.header.is_discarded() || !frame.header.is_object()) {
      throw ProtocolError("bad frame: the header is not a JSON object: " + Quoted(header_text));
    }
    const auto type = frame.header.find("type");
    if (type == frame.header.end() || !type->is_string()) {
      throw ProtocolError("bad frame: the header has no string member \"type\": " +
                          Quoted(header_text));
    }
    frame.type = type->get<std::string>();
    if (frame.type != "invoke" && frame.type != "invoke_batch" && frame.type != "ctx_value" &&
        frame.type != "ctx_done" && frame.type != "shutdown") {
      throw ProtocolError("bad frame: unknown type " + Quoted(frame.type));
    }
    for (const std::size_t size : BlobSizes(frame)) {
      std::string& blob = frame.blobs.emplace_back(size, '\0');
      if (ReadUpTo(blob.data(), blob.size()) < blob.size()) {
        throw ProtocolError("truncated frame: the input ended inside a blob of " + frame.type);
      }
    }
    return frame;
  }

  // Writes one frame. Throws std::length_error if the header is too long for the protocol.
  void Write(std::string_view header_text, std::span<const std::string_view> blobs) {
    if (header_text.size() < kMinHeaderBytes || header_text.size() > kMaxHeaderBytes) {
      throw std::length_error("frame header of " + std::to_string(header_text.size()) +
                              " bytes is outside 2..1048576");
    }
    const auto size = static_cast<uint32_t>(header_text.size());
    std::string head;
    head.reserve(4 + header_text.size());
    for (const int shift : {24, 16, 8, 0}) head.push_back(static_cast<char>(size >> shift));
    head.append(header_text);
    WriteAll(head);
    for (const std::string_view blob : blobs) WriteAll(blob);
  }

 private:
  static std::vector<std::size_t> BlobSizes(const Frame& frame) {
    std::vector<std::size_t> sizes;
    const auto blobs = frame.header.find("blobs");
    if (blobs == frame.header.end()) return sizes;
    if (!blobs->is_array()) {
      throw ProtocolError(frame.type + " frame: \"blobs\" must be an array");
    }
    for (const nlohmann::json& size : *blobs) {
      if (!size.is_number_unsigned() ||
          size.get<uint64_t>() > std::numeric_limits<std::size_t>::max() / 2) {
        throw ProtocolError(frame.type + " frame: \"blobs\" must hold non-negative sizes");
      }
      sizes.push_back(size.get<std::size_t>());
    }
    return sizes;
  }

  static void WaitFor(int fd, short events) {
    pollfd entry{.fd = fd, .events = events, .revents = 0};
    while (::poll(&entry, 1, -1) < 0) {
      if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");
    }
  }

  // One read() into `destination`: the bytes read, 0 at the end of input.
  std::size_t ReadOnce(char* destination, std::size_t size) {
    for (;;) {
      const ssize_t n = ::read(in_fd_, destination, size);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        WaitFor(in_fd_, POLLIN);
        continue;
      }
      throw std::system_error(errno, std::generic_category(), "reading stdin");
    }
  }

  // Reads `size` bytes unless the input ends first; returns how many it got.
  std::size_t ReadUpTo(char* destination, std::size_t size) {
    std::size_t done = 0;
    while (done < size) {
      if (buffered_begin_ < buffered_end_) {
        const std::size_t n = std::min(size - done, buffered_end_ - buffered_begin_);
        std::copy_n(buffer_.data() + buffered_begin_, n, destination + done);
        buffered_begin_ += n;
        done += n;
        continue;
      }
      if (end_of_input_) break;
      if (size - done >= buffer_.size()) {  // a large blob: straight into its place
        const std::size_t n = ReadOnce(destination + done, size - done);
        if (n == 0) end_of_input_ = true;
        done += n;
        continue;
      }
      buffered_begin_ = 0;
      buffered_end_ = ReadOnce(buffer_.data(), buffer_.size());
      if (buffered_end_ == 0) end_of_input_ = true;
    }
    return done;
  }

  void WriteAll(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(out_fd_, bytes.data(), bytes.size());
      if (n >= 0) {
        bytes.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        WaitFor(out_fd_, POLLOUT);
        continue;
      }
      throw std::system_error(errno, std::generic_category(), "writing stdout");
    }
  }

  int in_fd_;
  int out_fd_;
  std::vector<char> buffer_;
  std::size_t buffered_begin_ = 0;
  std::size_t buffered_end_ = 0;
  bool end_of_input_ = false;
};

// The answer to a context request: the node's error message, or (ctx_get) the value if found.
struct Answer {
  std::optional<std::string> error;
  std::optional<std::string> value;
};

// The conversation with the node. Frames are written and request/answer pairs exchanged under
// one mutex, so handler threads can share a Context. The first protocol or I/O failure is kept:
// it ends the worker even if the handler catches the exception it caused.
class Session {
 public:
  explicit Session(FrameChannel& channel) : channel_(channel) {}

  void Send(const nlohmann::json& header, std::span<const std::string_view> blobs = {}) {
    SendText(DumpHeader(header), blobs);
  }

  void SendText(std::string_view header_text, std::span<const std::string_view> blobs) {
    std::lock_guard lock(mutex_);
    RethrowFailure();
    Guarded([&] { channel_.Write(header_text, blobs); });
  }

  // Between invocations: the node's next frame, or nullopt at the end of input.
  std::optional<Frame> ReadIdle() {
    std::lock_guard lock(mutex_);
    RethrowFailure();
    std::optional<Frame> frame;
    Guarded([&] { frame = channel_.Read(); });
    return frame;
  }

  // Sends a ctx_* request (`header` without "req") and waits for its answer of `answer_type`.
  Answer Request(nlohmann::json header, std::span<const std::string_view> blobs,
                 std::string_view answer_type) {
    std::lock_guard lock(mutex_);
    RethrowFailure();
    Answer answer;
    Guarded([&] {
      const int64_t req = next_req_++;
      const std::string request_type = header["type"].get<std::string>();
      header["req"] = req;
      channel_.Write(DumpHeader(header), blobs);
      std::optional<Frame> reply = channel_.Read();
      if (!reply) {
        throw ProtocolError("the input ended while waiting for the answer to " + request_type);
      }
      if (reply->type != answer_type) {
        throw ProtocolError("got a " + reply->type + " frame while waiting for the " +
                            std::string(answer_type) + " answer to " + request_type);
      }
      const int64_t answered = IntMember(reply->header, reply->type, "req");
      if (answered != req) {
        throw ProtocolError(reply->type + " frame answers req " + std::to_string(answered) +
                            ", but the open request is req " + std::to_string(req));
      }
      answer.error = ErrorMember(reply->header, reply->type);
      if (answer.error || answer_type != "ctx_value") return;
      const nlohmann::json& found = Member(reply->header, reply->type, "found");
      if (!found.is_boolean()) throw ProtocolError("ctx_value frame: \"found\" must be a boolean");
      if (!found.get<bool>()) return;
      const std::size_t index = BlobIndexMember(reply->header, reply->type, reply->blobs.size());
      answer.value = std::move(reply->blobs[index]);
    });
    return answer;
  }

  // Rethrows the failure that broke the conversation (ProtocolError, std::system_error, ...).
  void ThrowIfFailed() const {
    std::lock_guard lock(mutex_);
    RethrowFailure();
  }

 private:
  void RethrowFailure() const {  // with mutex_ held
    if (failure_) std::rethrow_exception(failure_);
  }

  template <typename Body>
  void Guarded(Body&& body) {
    try {
      body();
    } catch (...) {  // a frame may be half read or written: the conversation cannot go on
      failure_ = std::current_exception();
      throw;
    }
  }

  mutable std::mutex mutex_;
  FrameChannel& channel_;
  int64_t next_req_ = 1;
  std::exception_ptr failure_;
};

inline const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

inline void CheckContextKey(std::string_view key) {
  if (key.empty() || key.size() > kMaxKeyBytes) {
    throw Error("context key must be 1..512 bytes, not " + std::to_string(key.size()));
  }
  if (!IsValidUtf8(key)) throw Error("context key is not valid UTF-8");
}

// printf/std::cout output of the handler reaches the log now rather than at some later flush.
inline void FlushUserOutput() {
  std::cout.flush();
  std::fflush(stdout);
}

// A handler's result that the protocol does not allow: a permanent failure of the invocation.
class InvalidResult : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The result frame's header for `outputs` (their data go as blobs 0..n-1, in order).
inline std::string ResultHeader(int64_t invocation_id, const Outputs& outputs) {
  std::map<std::string_view, int> occurrences;
  for (const Output& output : outputs) ++occurrences[output.name];
  std::set<std::pair<std::string_view, std::string_view>> seen_parts;
  nlohmann::json items = nlohmann::json::array();
  nlohmann::json sizes = nlohmann::json::array();
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const Output& output = outputs[i];
    const std::string which = "output " + std::to_string(i) + " (" + Quoted(output.name) + ")";
    if (output.name.empty() || !IsValidUtf8(output.name)) {
      throw InvalidResult("invalid result: " + which + ": the name must be non-empty UTF-8");
    }
    if (!IsValidUtf8(output.content_type)) {
      throw InvalidResult("invalid result: " + which + ": content_type is not valid UTF-8");
    }
    if (!output.part.empty() && !IsValidPart(output.part)) {
      throw InvalidResult("invalid result: " + which + ": part " + Quoted(output.part) +
                          " is not 1..64 characters of [A-Za-z0-9_.-]");
    }
    if (occurrences[output.name] > 1 && output.part.empty()) {
      throw InvalidResult("invalid result: output " + Quoted(output.name) + " appears " +
                          std::to_string(occurrences[output.name]) +
                          " times, so each needs a distinct part");
    }
    if (!seen_parts.emplace(output.name, output.part).second) {
      throw InvalidResult("invalid result: output " + Quoted(output.name) + " has part " +
                          Quoted(output.part) + " more than once");
    }
    nlohmann::json item = nlohmann::json::object();
    item["name"] = output.name;
    item["blob"] = i;
    if (!output.content_type.empty()) item["content_type"] = output.content_type;
    if (!output.part.empty()) item["part"] = output.part;
    items.push_back(std::move(item));
    sizes.push_back(output.data.size());
  }
  nlohmann::json header = nlohmann::json::object();
  header["type"] = "result";
  header["id"] = invocation_id;
  header["outputs"] = std::move(items);
  header["blobs"] = std::move(sizes);
  std::string text = header.dump();
  if (text.size() > kMaxHeaderBytes) {
    throw InvalidResult("invalid result: its header would be " + std::to_string(text.size()) +
                        " bytes, over the protocol's 1 MiB (too many outputs?)");
  }
  return text;
}

// Unix milliseconds `timeout_ms` from now (saturated rather than overflowing).
inline int64_t DeadlineAfter(int64_t timeout_ms) {
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  if (timeout_ms > std::numeric_limits<int64_t>::max() - now) {
    return std::numeric_limits<int64_t>::max();
  }
  return now + timeout_ms;
}

class Worker {
 public:
  Worker(Session& session, Handler& handler) : session_(session), handler_(handler) {}

  int Serve() {
    nlohmann::json ready = nlohmann::json::object();
    ready["type"] = "ready";
    ready["protocol"] = kProtocolVersion;
    ready["batch"] = kMaxBatch;
    session_.Send(ready);
    for (;;) {
      std::optional<Frame> frame = session_.ReadIdle();
      if (!frame || frame->type == "shutdown") return 0;
      if (frame->type == "invoke") {
        Invoke(*frame);
      } else if (frame->type == "invoke_batch") {
        InvokeBatch(*frame);
      } else {
        throw ProtocolError("got a " + frame->type + " frame while no request was open");
      }
    }
  }

 private:
  // An invocation whose frame has been checked. Its inputs get their data only once the whole
  // frame has been checked, so that a blob used by one input alone is moved rather than copied.
  struct ParsedInvocation {
    std::unique_ptr<Context> context;
    std::vector<std::size_t> input_blobs;  // the blob index of each input
    int64_t timeout_ms = 0;                // invoke_batch only
  };

  void Invoke(Frame& frame) {
    ParsedInvocation invocation = ParseInvocation(frame.header, "invoke", frame.blobs.size());
    invocation.context->deadline_ms_ = IntMember(frame.header, "invoke", "deadline_ms");
    AttachInputData(std::span(&invocation, 1), frame.blobs);
    Run(*invocation.context);
  }

  void InvokeBatch(Frame& frame) {
    const nlohmann::json& entries = Member(frame.header, "invoke_batch", "invocations");
    if (!entries.is_array()) {
      throw ProtocolError("invoke_batch frame: \"invocations\" must be an array");
    }
    if (entries.size() < 2 || entries.size() > kMaxBatch) {
      throw ProtocolError("invoke_batch frame: \"invocations\" must hold 2.." +
                          std::to_string(kMaxBatch) + " invocations, not " +
                          std::to_string(entries.size()));
    }
    // The whole frame is checked before the first invocation runs: a malformed batch ends the
    // worker without side effects.
    std::vector<ParsedInvocation> batch;
    batch.reserve(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const std::string number = std::to_string(i + 1);
      if (!entries[i].is_object()) {
        throw ProtocolError("invoke_batch frame: invocation " + number + " is not an object");
      }
      const std::string frame_name = "invoke_batch invocation " + number;
      ParsedInvocation& invocation =
          batch.emplace_back(ParseInvocation(entries[i], frame_name, frame.blobs.size()));
      invocation.timeout_ms = IntMember(entries[i], frame_name, "timeout_ms");
      if (invocation.timeout_ms < 0) {
        throw ProtocolError(frame_name + " frame: \"timeout_ms\" must not be negative");
      }
    }
    AttachInputData(batch, frame.blobs);

    // An invocation starts when the one before it has its reply, and its deadline counts from
    // then, as the node measures it. Each reply is written at once, as for an invoke: if a later
    // invocation crashes or hangs, the node still has the replies before it and blames only that
    // invocation.
    for (ParsedInvocation& invocation : batch) {
      invocation.context->deadline_ms_ = DeadlineAfter(invocation.timeout_ms);
      Run(*invocation.context);
    }
  }

  void Run(Context& context) {
    Outputs outputs;
    std::optional<std::pair<std::string, bool>> failure;  // message, retry
    try {
      outputs = handler_(context.inputs_, context);
    } catch (const PermanentError& e) {
      failure.emplace(e.what(), false);
    } catch (const std::exception& e) {
      failure.emplace(e.what(), true);
    } catch (...) {
      failure.emplace("the handler threw an exception not derived from std::exception", true);
    }
    FlushUserOutput();
    session_.ThrowIfFailed();  // a broken conversation ends the worker, caught or not

    if (!failure) {
      try {
        const std::string header = ResultHeader(context.invocation_id_, outputs);
        std::vector<std::string_view> blobs;
        blobs.reserve(outputs.size());
        for (const Output& output : outputs) blobs.emplace_back(output.data);
        session_.SendText(header, blobs);
        return;
      } catch (const InvalidResult& e) {
        failure.emplace(e.what(), false);
      }
    }
    std::string message(CutUtf8(failure->first, kMaxMessageBytes));
    if (message.empty()) message = "the handler failed (the exception has no message)";
    nlohmann::json error = nlohmann::json::object();
    error["type"] = "error";
    error["id"] = context.invocation_id_;
    error["message"] = std::move(message);
    error["retry"] = failure->second;
    session_.Send(error);
  }

  // An invoke frame's header, or one invocation of an invoke_batch frame (named `frame` in
  // messages), without the deadline: the two frames give it differently.
  ParsedInvocation ParseInvocation(const nlohmann::json& header, const std::string& frame,
                                   std::size_t blob_count) {
    ParsedInvocation parsed;
    parsed.context.reset(new Context(session_));  // its constructor is open to Worker only
    Context& context = *parsed.context;
    context.invocation_id_ = IntMember(header, frame, "id");
    context.item_id_ = StringMember(header, frame, "item_id");
    context.stream_ = StringMember(header, frame, "stream");
    const int64_t attempt = IntMember(header, frame, "attempt");
    if (attempt < 1 || attempt > std::numeric_limits<int>::max()) {
      throw ProtocolError(frame + " frame: \"attempt\" must be 1 or more");
    }
    context.attempt_ = static_cast<int>(attempt);
    context.trace_id_ = StringMember(header, frame, "trace_id");
    const nlohmann::json& inputs = Member(header, frame, "inputs");
    if (!inputs.is_array()) throw ProtocolError(frame + " frame: \"inputs\" must be an array");

    const std::string input_frame = frame + " input";
    std::set<std::string> names;
    for (const nlohmann::json& input : inputs) {
      if (!input.is_object()) throw ProtocolError(frame + " frame: an input is not an object");
      Input& parsed_input = context.inputs_.emplace_back();
      parsed_input.name = StringMember(input, input_frame, "name");
      if (!names.insert(parsed_input.name).second) {
        throw ProtocolError(frame + " frame: input " + Quoted(parsed_input.name) +
                            " appears twice");
      }
      parsed_input.content_type = StringMember(input, input_frame, "content_type");
      parsed_input.channel = StringMember(input, input_frame, "channel");
      parsed_input.key = StringMember(input, input_frame, "key");
      parsed.input_blobs.push_back(BlobIndexMember(input, input_frame, blob_count));
    }
    return parsed;
  }

  // Gives every input its blob: moved into the last input that uses it, copied into the others.
  static void AttachInputData(std::span<ParsedInvocation> invocations,
                              std::vector<std::string>& blobs) {
    std::vector<int> remaining_uses(blobs.size(), 0);
    for (const ParsedInvocation& invocation : invocations) {
      for (const std::size_t blob : invocation.input_blobs) ++remaining_uses[blob];
    }
    for (ParsedInvocation& invocation : invocations) {
      for (std::size_t i = 0; i < invocation.input_blobs.size(); ++i) {
        const std::size_t blob = invocation.input_blobs[i];
        std::string& data = invocation.context->inputs_[i].data;
        if (--remaining_uses[blob] == 0) {
          data = std::move(blobs[blob]);
        } else {
          data = blobs[blob];
        }
      }
    }
  }

  Session& session_;
  Handler& handler_;
};

// Closes a descriptor when run() returns.
class OwnedFd {
 public:
  explicit OwnedFd(int fd) : fd_(fd) {}
  ~OwnedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

inline int Fail(int exit_code, std::string_view what, std::string_view message) {
  FlushUserOutput();
  std::string line = "edgeflow function: ";
  line.append(what).append(": ").append(message).append("\n");
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
  return exit_code;
}

}  // namespace detail

inline const Input* Context::input(std::string_view name) const {
  for (const Input& candidate : inputs_) {
    if (candidate.name == name) return &candidate;
  }
  return nullptr;
}

inline std::optional<std::string> Context::get(std::string_view key) {
  detail::CheckContextKey(key);
  nlohmann::json request = nlohmann::json::object();
  request["type"] = "ctx_get";
  request["key"] = std::string(key);
  detail::Answer answer = session_.Request(std::move(request), {}, "ctx_value");
  if (answer.error) throw Error("ctx_get " + detail::Quoted(key) + " failed: " + *answer.error);
  return std::move(answer.value);
}

inline void Context::put(std::string_view key, std::string_view value, int64_t ttl_ms) {
  detail::CheckContextKey(key);
  if (ttl_ms < 0) throw Error("ttl_ms must not be negative");
  nlohmann::json request = nlohmann::json::object();
  request["type"] = "ctx_put";
  request["key"] = std::string(key);
  request["blob"] = 0;
  request["blobs"] = nlohmann::json::array({value.size()});
  request["ttl_ms"] = ttl_ms;
  const std::string_view blobs[] = {value};
  const detail::Answer answer = session_.Request(std::move(request), blobs, "ctx_done");
  if (answer.error) throw Error("ctx_put " + detail::Quoted(key) + " failed: " + *answer.error);
}

inline void Context::erase(std::string_view key) {
  detail::CheckContextKey(key);
  nlohmann::json request = nlohmann::json::object();
  request["type"] = "ctx_delete";
  request["key"] = std::string(key);
  const detail::Answer answer = session_.Request(std::move(request), {}, "ctx_done");
  if (answer.error) throw Error("ctx_delete " + detail::Quoted(key) + " failed: " + *answer.error);
}

inline void Context::log(Level level, std::string_view message) {
  nlohmann::json frame = nlohmann::json::object();
  frame["type"] = "log";
  frame["level"] = detail::LevelName(level);
  frame["message"] = std::string(detail::CutUtf8(message, detail::kMaxMessageBytes));
  try {
    session_.Send(frame);
  } catch (...) {
    // Logging never throws: the session has kept the failure, and run() ends the worker with it
    // as soon as the handler returns.
  }
}

inline int run(Handler handler) {
  static std::atomic<bool> started{false};
  if (started.exchange(true)) {
    return detail::Fail(detail::kExitFailure, "usage", "run() may be called only once");
  }
  // The protocol keeps private, close-on-exec copies of stdin and stdout (child processes must
  // not inherit them); fd 1 becomes stderr and fd 0 /dev/null for everything else in the process.
  detail::OwnedFd frames_in(::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3));
  detail::OwnedFd frames_out(::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3));
  if (frames_in.get() < 0 || frames_out.get() < 0 || ::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    return detail::Fail(detail::kExitFailure, "setup",
                        std::error_code(errno, std::generic_category()).message());
  }
  // What user code left in the stdout buffer before run() now goes to stderr, and from here on
  // every printed line reaches the log at once (glibc allows changing the mode of a used stream).
  std::fflush(stdout);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd >= 0) {
    ::dup2(null_fd, STDIN_FILENO);
    ::close(null_fd);
  }

  detail::FrameChannel channel(frames_in.get(), frames_out.get());
  detail::Session session(channel);
  try {
    detail::Worker worker(session, handler);
    return worker.Serve();
  } catch (const detail::ProtocolError& e) {
    return detail::Fail(detail::kExitProtocolError, "protocol error", e.what());
  } catch (const std::system_error& e) {
    return detail::Fail(detail::kExitFailure, "i/o error", e.what());
  } catch (const std::exception& e) {
    return detail::Fail(detail::kExitFailure, "failed", e.what());
  }
}

}  // namespace edgeflow::fn
