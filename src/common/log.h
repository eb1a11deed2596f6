// Structured logging: a message plus key=value fields, rendered as logfmt text (default) or as one
// JSON object per line. Backed by spdlog; safe to call from any thread.
//
//   log::Info("listening", {{"proto", "http"}, {"addr", addr.ToString()}});
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace edgeflow::log {

enum class Level { kDebug, kInfo, kWarn, kError };
enum class Format { kText, kJson };

struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  Field(std::string_view k, int64_t v) : key(k), value(std::to_string(v)), quoted(false) {}
  Field(std::string_view k, uint64_t v) : key(k), value(std::to_string(v)), quoted(false) {}
  Field(std::string_view k, int v) : key(k), value(std::to_string(v)), quoted(false) {}
  Field(std::string_view k, unsigned v) : key(k), value(std::to_string(v)), quoted(false) {}
  Field(std::string_view k, bool v) : key(k), value(v ? "true" : "false"), quoted(false) {}

  std::string_view key;
  std::string value;
  bool quoted = true;  // JSON: emit as a string rather than a number/bool
};

using Fields = std::initializer_list<Field>;

// Configures the process-wide logger (stderr). Call once at start-up; defaults to text/info.
void Configure(Level level, Format format);
bool ParseLevel(std::string_view text, Level* level);
bool ParseFormat(std::string_view text, Format* format);

void Write(Level level, std::string_view message, Fields fields);

inline void Debug(std::string_view m, Fields f = {}) { Write(Level::kDebug, m, f); }
inline void Info(std::string_view m, Fields f = {}) { Write(Level::kInfo, m, f); }
inline void Warn(std::string_view m, Fields f = {}) { Write(Level::kWarn, m, f); }
inline void Error(std::string_view m, Fields f = {}) { Write(Level::kError, m, f); }

// Renders one record without the timestamp and level; exposed for tests.
std::string Render(Format format, std::string_view message, Fields fields);

}  // namespace edgeflow::log
