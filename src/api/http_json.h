// JSON pieces of the REST API: the error body, the status-code mapping of Status, and keys that
// are not valid UTF-8.
//
// Error bodies are always {"error":{"code":"NOT_FOUND","message":"..."}}, code being the
// ErrorCodeName of the Status (or METHOD_NOT_ALLOWED for a 405).
//
// Keys are arbitrary bytes but JSON strings are Unicode: an entry whose key is valid UTF-8 carries
// it in "key"; any other key is given base64-encoded (RFC 4648, with padding) in "key_b64"
// instead. Exactly one of the two is present.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/text_encoding.h"

namespace edgeflow::api {

// 400 InvalidArgument, 404 NotFound, 409 AlreadyExists, 412 FailedPrecondition,
// 413 ResourceExhausted, 410 OutOfRange, 503 Unavailable, 500 for the rest.
unsigned HttpStatusFor(ErrorCode code);

std::string ErrorBody(std::string_view code, std::string_view message);
inline std::string ErrorBody(const Status& status) {
  return ErrorBody(ErrorCodeName(status.code()), status.message());
}

// Serialises without ever throwing: invalid UTF-8 in strings is replaced by U+FFFD.
std::string DumpJson(const nlohmann::json& value);

// Sets object["key"] or object["key_b64"] as described above.
void SetKeyField(nlohmann::json* object, std::string_view key);

}  // namespace edgeflow::api
