// RespWriter: encodes RESP2 replies into one output buffer, so that the replies to a whole
// pipeline of commands go out in one write.
//
// Large bulk values handed over by rvalue are not copied: the writer keeps the string and the
// connection writes it in place (scatter/gather), which matters for multi-megabyte values.
//
// Thread-safety: none; one writer per connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace edgeflow::api {

class RespWriter {
 public:
  // Bulk values of at least this size are kept rather than copied.
  static constexpr size_t kKeepThresholdBytes = 32 << 10;

  // `+OK`: `text` must not contain CR or LF (the callers pass constants).
  void SimpleString(std::string_view text);
  void Ok() { Raw("+OK\r\n"); }
  // `-ERR ...`: `message` starts with the error code word ("ERR", "NOPROTO", ...). CR and LF
  // are replaced by spaces so that a message quoting user input cannot break the framing.
  void Error(std::string_view message);
  void Integer(int64_t value);
  void Bulk(std::string_view data);
  void Bulk(std::string&& data);
  void NullBulk() { Raw("$-1\r\n"); }
  void NullArray() { Raw("*-1\r\n"); }
  void ArrayHeader(size_t count);

  // Bytes encoded so far.
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // The encoded bytes, in order, as views that stay valid until the next change to the writer.
  void Pieces(std::vector<std::string_view>* out) const;
  // Everything as one string; for tests.
  std::string ToString() const;
  // Forgets the content but keeps the buffer's capacity for the next batch.
  void Clear();

 private:
  void Raw(std::string_view bytes) {
    buf_.append(bytes);
    size_ += bytes.size();
  }
  void Header(char type, int64_t value);

  struct Kept {
    size_t buf_offset;  // where in buf_ this value goes
    std::string value;
  };
  std::string buf_;
  std::vector<Kept> kept_;
  size_t size_ = 0;
};

}  // namespace edgeflow::api
