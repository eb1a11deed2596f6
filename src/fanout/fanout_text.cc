#include "fanout/fanout_text.h"

#include <cstdio>

#include "common/text_encoding.h"

namespace edgeflow::fanout {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Result<uint8_t> ParseCodec(std::string_view text) {
  if (text == "auto") return static_cast<uint8_t>(EF_CODEC_AUTO);
  if (text == "h264") return static_cast<uint8_t>(EF_CODEC_H264);
  if (text == "h265") return static_cast<uint8_t>(EF_CODEC_H265);
  return Error(
      Status::InvalidArgument(QuoteForError(text) + " is not a codec; use auto, h264 or h265"));
}

std::string_view CodecName(uint8_t codec) {
  switch (codec) {
    case EF_CODEC_H264:
      return "h264";
    case EF_CODEC_H265:
      return "h265";
    default:
      return "auto";
  }
}

Result<ef_drop_mode> ParseDropMode(std::string_view text) {
  if (text == "frame") return EF_DROP_FRAME;
  if (text == "packet") return EF_DROP_PACKET;
  return Error(Status::InvalidArgument(
      QuoteForError(text) +
      " is not a mode; use frame (drop whole pictures) or packet (drop whole datagrams)"));
}

std::string_view DropModeName(ef_drop_mode mode) {
  return mode == EF_DROP_FRAME ? "frame" : "packet";
}

Result<MacAddress> ParseMac(std::string_view text) {
  MacAddress mac{};
  const bool shaped = text.size() == 17;
  for (size_t i = 0; shaped && i < mac.size(); ++i) {
    const int high = HexDigit(text[i * 3]);
    const int low = HexDigit(text[i * 3 + 1]);
    if (high < 0 || low < 0 || (i + 1 < mac.size() && text[i * 3 + 2] != ':')) break;
    mac[i] = static_cast<uint8_t>(high * 16 + low);
    if (i + 1 == mac.size()) return mac;
  }
  return Error(Status::InvalidArgument(QuoteForError(text) +
                                       " is not an Ethernet address, like \"02:00:5e:10:00:01\""));
}

std::string FormatMac(const MacAddress& mac) {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return text;
}

}  // namespace edgeflow::fanout
