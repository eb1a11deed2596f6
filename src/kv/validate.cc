#include <string>

#include "kv/store.h"

namespace edgeflow::kv {

Status ValidateWritableNamespace(std::string_view ns) {
  EF_RETURN_IF_ERROR(ValidateNamespace(ns));
  if (ns == kNodeStateNamespace) {
    return Status::InvalidArgument("namespace '" + std::string(ns) +
                                   "' holds the node's own state and is read-only for clients");
  }
  return Status::Ok();
}

Status ValidateNamespace(std::string_view ns) {
  if (ns.empty()) return Status::InvalidArgument("namespace must not be empty");
  if (ns.size() > 64) {
    return Status::InvalidArgument("namespace is too long (" + std::to_string(ns.size()) +
                                   " bytes > max 64)");
  }
  for (char c : ns) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) {
      return Status::InvalidArgument(
          "invalid namespace: only letters, digits, '_', '-' and '.' are allowed");
    }
  }
  return Status::Ok();
}

Status ValidateKey(std::string_view key, size_t max_key_bytes) {
  if (key.empty()) return Status::InvalidArgument("key must not be empty");
  if (key.size() > max_key_bytes) {
    return Status::ResourceExhausted("key too large (" + std::to_string(key.size()) +
                                     " bytes > max " + std::to_string(max_key_bytes) + ")");
  }
  return Status::Ok();
}

}  // namespace edgeflow::kv
