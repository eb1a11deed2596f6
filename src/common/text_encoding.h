// Text encodings the node's interfaces need: checking UTF-8 (JSON strings, mosquitto.conf lines),
// base64 (binary keys and data in JSON), and quoting input for error messages.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace edgeflow {

bool IsValidUtf8(std::string_view bytes);
std::string Base64Encode(std::string_view bytes);
// Standard alphabet, padding required; InvalidArgument for anything else.
Result<std::string> Base64Decode(std::string_view text);

// Input (which may be anything) as an error message shows it: in double quotes, bytes that are
// not printable ASCII (and '"', '\\') as \xNN, cut after about 40 characters with the full
// size said.
std::string QuoteForError(std::string_view text);

}  // namespace edgeflow
