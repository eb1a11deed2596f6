// RespWriter: encodes RESP2 replies into one output buffer, so that the replies to a whole
// pipeline of commands go out in one write.
//
// Large bulk values are not copied: the writer keeps the string (moved in, or shared with the
// store's record cache) and the connection writes it in place (scatter/gather). That saves a
// copy per GET of a few-KB value and matters most for multi-megabyte ones.
//
// Thread-safety: none; one writer per connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace edgeflow::api {

class RespWriter {
 public:
  // Moved-in bulk values of at least this size are kept rather than copied.
  static constexpr size_t kKeepThresholdBytes = 32 << 10;
  // Shared bulk values of at least this size are referenced rather than copied: below it, an
  // extra gather entry costs more than the copy.
  static constexpr size_t kShareThresholdBytes = 1 << 10;

  // `+OK`: `text` must not contain CR or LF (the callers pass constants).
  void SimpleString(std::string_view text);
  void Ok() { Raw("+OK\r\n"); }
  // `-ERR ...`: `message` starts with the error code word ("ERR", "NOPROTO", ...). CR and LF
  // are replaced by spaces so that a message quoting user input cannot break the framing.
  void Error(std::string_view message);
  void Integer(int64_t value);
  void Bulk(std::string_view data);
  void Bulk(std::string&& data);
  // `data` points into `*owner`, which the writer keeps alive while it references it.
  void Bulk(std::string_view data, std::shared_ptr<const std::string> owner);
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

  void Keep(std::string_view data, std::shared_ptr<const std::string> owner);

  struct Kept {
    size_t buf_offset;  // where in buf_ this value goes
    std::shared_ptr<const std::string> owner;
    std::string_view bytes;  // within *owner
  };
  std::string buf_;
  std::vector<Kept> kept_;
  size_t size_ = 0;
};

}  // namespace edgeflow::api
