// Storage keys of the `kv` and `blobs` column families: namespace, a 0x00 byte, then the user key.
// Namespaces never contain 0x00 (see ValidateNamespace), so all keys of one namespace are
// contiguous and a key prefix within a namespace is a byte prefix of the storage key.
#pragma once

#include <string>
#include <string_view>

namespace edgeflow::kv {

inline std::string StorageKey(std::string_view ns, std::string_view key) {
  std::string out;
  out.reserve(ns.size() + 1 + key.size());
  out.append(ns);
  out.push_back('\0');
  out.append(key);
  return out;
}

// Splits a storage key; false if it has no separator.
inline bool SplitStorageKey(std::string_view skey, std::string_view* ns, std::string_view* key) {
  size_t sep = skey.find('\0');
  if (sep == std::string_view::npos) return false;
  *ns = skey.substr(0, sep);
  *key = skey.substr(sep + 1);
  return true;
}

// The smallest string greater than every string that starts with `prefix`; empty = no bound.
inline std::string PrefixSuccessor(std::string prefix) {
  while (!prefix.empty()) {
    unsigned char last = static_cast<unsigned char>(prefix.back());
    if (last != 0xff) {
      prefix.back() = static_cast<char>(last + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return prefix;
}

}  // namespace edgeflow::kv
