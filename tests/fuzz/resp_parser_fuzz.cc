// Fuzzes RespParser: the input is fed whole to one parser and in pieces (sizes taken from the
// input itself) to another, copying the unparsed bytes to a fresh buffer before every call, as a
// connection does when it compacts its read buffer. Both must see the same commands and end the
// same way, and every reported size must stay within the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "api/resp_parser.h"

namespace {

using edgeflow::api::RespParser;
using edgeflow::api::RespParserLimits;

struct Run {
  std::vector<std::vector<std::string>> commands;
  bool error = false;
  std::string error_message;
};

RespParserLimits SmallLimits() {
  RespParserLimits limits;
  limits.max_args = 64;
  limits.max_bulk_bytes = 300;
  limits.max_inline_bytes = 200;
  limits.max_command_bytes = 2000;
  return limits;
}

void Check(bool condition) {
  if (!condition) std::abort();
}

// Parses everything available in `*pending`, dropping the consumed bytes. Returns false once the
// parser reported an error.
bool Drain(RespParser* parser, std::string* pending, Run* run) {
  for (;;) {
    // A fresh copy each time: a parser that kept pointers into an old buffer would now read freed
    // memory, which the address sanitizer reports.
    std::string buffer(*pending);
    pending->clear();
    const RespParser::Outcome outcome = parser->Parse(buffer);
    if (outcome == RespParser::Outcome::kError) {
      Check(!parser->error().empty());
      Check(parser->error().rfind("Protocol error: ", 0) == 0);
      run->error = true;
      run->error_message = parser->error();
      return false;
    }
    if (outcome == RespParser::Outcome::kNeedMore) {
      Check(parser->needed() > buffer.size());
      *pending = std::move(buffer);
      return true;
    }
    Check(parser->consumed() > 0 && parser->consumed() <= buffer.size());
    std::vector<std::string> args;
    for (std::string_view a : parser->args()) args.emplace_back(a);
    parser->ReleaseScratch();
    if (!args.empty()) run->commands.push_back(std::move(args));
    *pending = buffer.substr(parser->consumed());
    if (pending->empty()) return true;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte seeds the piece sizes; the rest is the byte stream.
  unsigned seed = data[0];
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);

  Run whole;
  {
    RespParser parser(SmallLimits());
    std::string pending(stream);
    Drain(&parser, &pending, &whole);
  }

  Run pieces;
  {
    RespParser parser(SmallLimits());
    std::string pending;
    size_t offset = 0;
    while (offset < stream.size()) {
      seed = seed * 1103515245u + 12345u;
      const size_t piece = 1 + (seed >> 16) % 17;
      pending.append(stream.substr(offset, piece));
      offset += piece;
      if (!Drain(&parser, &pending, &pieces)) break;
    }
  }

  Check(whole.error == pieces.error);
  Check(whole.error_message == pieces.error_message);
  Check(whole.commands == pieces.commands);
  return 0;
}
