#include "api/resp_parser.h"

#include <algorithm>
#include <cstring>

#include "api/resp_integer.h"

namespace edgeflow::api {
namespace {

// A count line (`*123\r\n`, `$45\r\n`) holds at most 20 digits and a sign; a line that has no CR
// after this many bytes is not a count line, so it fails early instead of being buffered.
constexpr size_t kMaxCountLineBytes = 32;

// How many argument slots to reserve up front: a declared count is not trusted for more; the
// vector grows as the bytes of further arguments actually arrive.
constexpr size_t kMaxReservedArgs = 1024;

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

RespParser::RespParser(RespParserLimits limits) : limits_(limits) {}

void RespParser::Reset() {
  state_ = State::kStart;
  pos_ = 0;
  remaining_args_ = 0;
  pending_bulk_len_ = -1;
  offsets_.clear();
  inline_scanned_ = 0;
  args_.clear();
  consumed_ = 0;
  needed_ = 0;
  error_.clear();
  scratch_.clear();
}

RespParser::Outcome RespParser::Fail(std::string message) {
  error_ = std::move(message);
  args_.clear();
  consumed_ = 0;
  return Outcome::kError;
}

RespParser::Outcome RespParser::Parse(std::string_view input) {
  if (!error_.empty()) return Outcome::kError;
  args_.clear();
  consumed_ = 0;
  if (state_ == State::kStart) {
    if (input.empty()) {
      needed_ = 1;
      return Outcome::kNeedMore;
    }
    if (input[0] != '*') return ParseInline(input);
  }
  return ParseMultibulk(input);
}

RespParser::Outcome RespParser::ReadCountLine(std::string_view input, const char* too_big_message,
                                              const char* invalid_message, int64_t* value) {
  // input[pos_] is the type byte ('*' or '$'), already checked by the caller.
  const size_t digits = pos_ + 1;
  // Fast path for the usual line, a plain number without sign or leading zero: one pass that
  // reads the digits and finds the CR. Anything else takes the general path below, which gives
  // the same answer for the lines this one accepts.
  {
    const char* const begin = input.data() + digits;
    const char* const end = input.data() + input.size();
    const char* q = begin;
    uint64_t v = 0;
    while (q < end && q - begin < 18 && static_cast<unsigned char>(*q - '0') < 10) {
      v = v * 10 + static_cast<unsigned>(*q - '0');
      ++q;
    }
    if (q + 1 < end && q > begin && *q == '\r' && q[1] == '\n' &&
        (*begin != '0' || q - begin == 1)) {
      *value = static_cast<int64_t>(v);
      pos_ = static_cast<size_t>(q - input.data()) + 2;
      return Outcome::kCommand;
    }
  }
  const size_t window = std::min(input.size() - digits, kMaxCountLineBytes);
  const void* cr = std::memchr(input.data() + digits, '\r', window);
  if (cr == nullptr) {
    if (input.size() - digits >= kMaxCountLineBytes) return Fail(too_big_message);
    needed_ = input.size() + 1;
    return Outcome::kNeedMore;
  }
  const size_t cr_pos = static_cast<const char*>(cr) - input.data();
  if (cr_pos + 1 >= input.size()) {
    needed_ = input.size() + 1;
    return Outcome::kNeedMore;
  }
  if (input[cr_pos + 1] != '\n' ||
      !ParseRespInteger(input.substr(digits, cr_pos - digits), value)) {
    return Fail(invalid_message);
  }
  pos_ = cr_pos + 2;
  return Outcome::kCommand;  // here: "the line was read"
}

RespParser::Outcome RespParser::ParseMultibulk(std::string_view input) {
  if (state_ == State::kStart) {
    pos_ = 0;
    int64_t count = 0;
    Outcome o = ReadCountLine(input, "Protocol error: too big mbulk count string",
                              "Protocol error: invalid multibulk length", &count);
    if (o != Outcome::kCommand) return o;
    if (count > 0 && static_cast<uint64_t>(count) > limits_.max_args) {
      return Fail("Protocol error: invalid multibulk length");
    }
    if (count <= 0) {  // `*0` and `*-1`: an empty command, ignored like Redis does
      consumed_ = pos_;
      pos_ = 0;
      return Outcome::kCommand;
    }
    state_ = State::kMultibulk;
    remaining_args_ = static_cast<size_t>(count);
    pending_bulk_len_ = -1;
    offsets_.clear();
    offsets_.reserve(std::min(remaining_args_, kMaxReservedArgs));
  }

  while (remaining_args_ > 0) {
    if (pending_bulk_len_ < 0) {
      if (pos_ >= input.size()) {
        needed_ = input.size() + 1;
        return Outcome::kNeedMore;
      }
      if (input[pos_] != '$') {
        return Fail(std::string("Protocol error: expected '$', got '") + input[pos_] + "'");
      }
      int64_t len = 0;
      Outcome o = ReadCountLine(input, "Protocol error: too big bulk count string",
                                "Protocol error: invalid bulk length", &len);
      if (o != Outcome::kCommand) return o;
      if (len < 0 || static_cast<uint64_t>(len) > limits_.max_bulk_bytes) {
        return Fail("Protocol error: invalid bulk length");
      }
      if (pos_ + static_cast<size_t>(len) + 2 > limits_.max_command_bytes) {
        return Fail("Protocol error: request too large");
      }
      pending_bulk_len_ = len;
    }
    const size_t len = static_cast<size_t>(pending_bulk_len_);
    const size_t end = pos_ + len + 2;
    if (input.size() < end) {
      needed_ = end;
      return Outcome::kNeedMore;
    }
    if (input[pos_ + len] != '\r' || input[pos_ + len + 1] != '\n') {
      return Fail("Protocol error: bulk string not terminated by CRLF");
    }
    offsets_.emplace_back(pos_, len);
    pos_ = end;
    pending_bulk_len_ = -1;
    --remaining_args_;
  }
  FinishCommand(input, pos_);
  return Outcome::kCommand;
}

void RespParser::FinishCommand(std::string_view input, size_t end) {
  args_.clear();
  for (const auto& [offset, length] : offsets_) args_.push_back(input.substr(offset, length));
  consumed_ = end;
  state_ = State::kStart;
  pos_ = 0;
  remaining_args_ = 0;
  pending_bulk_len_ = -1;
  offsets_.clear();
}

RespParser::Outcome RespParser::ParseInline(std::string_view input) {
  const size_t from = std::min(inline_scanned_, input.size());
  const void* nl = std::memchr(input.data() + from, '\n', input.size() - from);
  if (nl == nullptr) {
    inline_scanned_ = input.size();
    // + 1: the line may still end in "\r\n", and the CR does not count.
    if (input.size() > limits_.max_inline_bytes + 1) {
      return Fail("Protocol error: too big inline request");
    }
    needed_ = input.size() + 1;
    return Outcome::kNeedMore;
  }
  inline_scanned_ = 0;
  const size_t nl_pos = static_cast<const char*>(nl) - input.data();
  size_t line_end = nl_pos;
  if (line_end > 0 && input[line_end - 1] == '\r') --line_end;
  if (line_end > limits_.max_inline_bytes) return Fail("Protocol error: too big inline request");
  if (!SplitInlineArgs(input.substr(0, line_end))) {
    return Fail("Protocol error: unbalanced quotes in request");
  }
  if (args_.size() > limits_.max_args) return Fail("Protocol error: invalid multibulk length");
  consumed_ = nl_pos + 1;
  return Outcome::kCommand;
}

// Splits like Redis' sdssplitargs(): words are separated by whitespace; a word may contain
// "double quoted" parts with escapes and 'single quoted' parts; a closing quote must be followed
// by whitespace or the end of the line. The line ends at its first NUL byte, as in Redis.
bool RespParser::SplitInlineArgs(std::string_view line) {
  if (const void* nul = std::memchr(line.data(), '\0', line.size()); nul != nullptr) {
    line = line.substr(0, static_cast<const char*>(nul) - line.data());
  }
  const size_t n = line.size();
  auto at = [&](size_t j) -> char { return j < n ? line[j] : '\0'; };
  size_t i = 0;
  for (;;) {
    while (i < n && IsSpace(line[i])) ++i;
    if (i >= n) return true;
    const size_t start = i;
    size_t end = i;
    std::string* decoded = nullptr;  // set once the word needs unquoting
    bool in_double = false;
    bool in_single = false;
    bool done = false;
    auto begin_decoding = [&]() {
      if (decoded == nullptr) decoded = &scratch_.emplace_back(line.substr(start, i - start));
    };
    while (!done) {
      const char c = at(i);
      if (in_double) {
        if (c == '\\' && at(i + 1) == 'x' && HexValue(at(i + 2)) >= 0 && HexValue(at(i + 3)) >= 0) {
          decoded->push_back(static_cast<char>(HexValue(at(i + 2)) * 16 + HexValue(at(i + 3))));
          i += 3;
        } else if (c == '\\' && at(i + 1) != '\0') {
          ++i;
          char e = at(i);
          switch (e) {
            case 'n':
              e = '\n';
              break;
            case 'r':
              e = '\r';
              break;
            case 't':
              e = '\t';
              break;
            case 'b':
              e = '\b';
              break;
            case 'a':
              e = '\a';
              break;
            default:
              break;
          }
          decoded->push_back(e);
        } else if (c == '"') {
          if (at(i + 1) != '\0' && !IsSpace(at(i + 1))) return false;
          done = true;
        } else if (c == '\0') {
          return false;
        } else {
          decoded->push_back(c);
        }
      } else if (in_single) {
        if (c == '\\' && at(i + 1) == '\'') {
          ++i;
          decoded->push_back('\'');
        } else if (c == '\'') {
          if (at(i + 1) != '\0' && !IsSpace(at(i + 1))) return false;
          done = true;
        } else if (c == '\0') {
          return false;
        } else {
          decoded->push_back(c);
        }
      } else {
        switch (c) {
          case ' ':
          case '\n':
          case '\r':
          case '\t':
          case '\0':
            end = i;
            done = true;
            break;
          case '"':
            begin_decoding();
            in_double = true;
            break;
          case '\'':
            begin_decoding();
            in_single = true;
            break;
          default:
            if (decoded != nullptr) decoded->push_back(c);
            break;
        }
      }
      if (c != '\0') ++i;
    }
    if (decoded != nullptr) {
      args_.emplace_back(*decoded);
    } else {
      args_.push_back(line.substr(start, end - start));
    }
  }
}

}  // namespace edgeflow::api
