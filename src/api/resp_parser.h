// RespParser: an incremental parser for RESP2 requests, as Redis clients send them.
//
// Two request forms are accepted, as Redis does:
//  - multibulk: `*<n>\r\n` followed by n bulk strings `$<len>\r\n<bytes>\r\n` (what client
//    libraries, redis-cli and redis-benchmark send);
//  - inline: one line of space-separated words ending in `\n` (what a person types into telnet),
//    with Redis' quoting rules ("..." with \n \r \t \b \a \xHH escapes, '...' with \').
//
// Zero-copy: the arguments of a complete command are string_views into the caller's input, except
// for inline words that needed unquoting, which live in a scratch area owned by the parser.
//
// Incremental: when the input ends inside a command, Parse() returns kNeedMore and remembers how
// far it got, so a large command that arrives in many reads is scanned once, not once per read.
// REQUIRES: after kNeedMore, the next call passes the same bytes again (now followed by more);
// the caller may move its buffer in between, since the parser keeps offsets, not pointers.
//
// Limits are checked on the declared sizes, before the bytes arrive, so that a hostile client
// cannot make the server buffer (or allocate) more than the limits allow.
//
// This file depends only on the standard library so that it can be fuzzed on its own.
//
// Thread-safety: none; one parser per connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgeflow::api {

struct RespParserLimits {
  size_t max_args = 1 << 20;                // elements of one multibulk command
  size_t max_bulk_bytes = 65 << 20;         // one bulk string
  size_t max_inline_bytes = 64 << 10;       // one inline command line, without its newline
  size_t max_command_bytes = 256ULL << 20;  // one multibulk command on the wire, all framing
};

class RespParser {
 public:
  enum class Outcome {
    kCommand,   // a complete command: args() and consumed() are set
    kNeedMore,  // the input ends inside a command; call again with more bytes
    kError,     // protocol error: error() says what; the connection should be closed
  };

  explicit RespParser(RespParserLimits limits = {});

  // Parses the first command at the front of `input`. A command can have zero arguments (an empty
  // inline line, `*0` or `*-1`): Redis ignores those, and so should the caller, after dropping
  // consumed() bytes. After kError, every later call returns kError until Reset().
  Outcome Parse(std::string_view input);

  // The arguments of the last complete command. Valid until the next Parse() or until the input
  // bytes change; inline words that were unquoted stay valid until ReleaseScratch().
  std::span<const std::string_view> args() const { return args_; }
  // Bytes of input taken by the last complete command.
  size_t consumed() const { return consumed_; }
  // "Protocol error: ..." after kError, empty otherwise.
  const std::string& error() const { return error_; }
  // After kNeedMore: how many bytes of the current command are known to be needed in total (at
  // least input.size() + 1); lets the caller size its read buffer for a large bulk string.
  size_t needed() const { return needed_; }

  // Frees the storage of unquoted inline words once the caller no longer uses their args().
  void ReleaseScratch() { scratch_.clear(); }
  // Forgets any partial command and any error.
  void Reset();

 private:
  enum class State { kStart, kMultibulk };

  Outcome ParseMultibulk(std::string_view input);
  Outcome ParseInline(std::string_view input);
  // Reads a `<prefix><integer>\r\n` line starting at pos_; kNeedMore if the line is incomplete.
  Outcome ReadCountLine(std::string_view input, const char* too_big_message,
                        const char* invalid_message, int64_t* value);
  bool SplitInlineArgs(std::string_view line);
  Outcome Fail(std::string message);
  void FinishCommand(std::string_view input, size_t end);

  RespParserLimits limits_;
  State state_ = State::kStart;
  // Multibulk progress, relative to the start of the command.
  size_t pos_ = 0;                 // next byte to parse
  size_t remaining_args_ = 0;      // bulk strings still to read
  int64_t pending_bulk_len_ = -1;  // length of the bulk whose header was read, -1 if none
  std::vector<std::pair<size_t, size_t>> offsets_;  // (offset, length) of each bulk so far
  // Inline progress: bytes already scanned for a newline.
  size_t inline_scanned_ = 0;

  std::vector<std::string_view> args_;
  size_t consumed_ = 0;
  size_t needed_ = 0;
  std::string error_;
  std::deque<std::string> scratch_;  // deque: growing it never moves the strings already there
};

}  // namespace edgeflow::api
