#include "common/log.h"

#include <atomic>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace edgeflow::log {
namespace {

std::atomic<Format> g_format{Format::kText};

spdlog::level::level_enum ToSpd(Level level) {
  switch (level) {
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

bool NeedsQuotes(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return false;
}

spdlog::logger& Logger() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = std::make_shared<spdlog::logger>("edgeflow",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z level=%l %v");
    l->set_level(spdlog::level::info);
    l->flush_on(spdlog::level::info);
    return l;
  }();
  return *logger;
}

}  // namespace

void Configure(Level level, Format format) {
  g_format.store(format);
  auto& l = Logger();
  l.set_level(ToSpd(level));
  if (format == Format::kJson) {
    l.set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l",%v})");
  } else {
    l.set_pattern("%Y-%m-%dT%H:%M:%S.%e%z level=%l %v");
  }
}

bool ParseLevel(std::string_view text, Level* level) {
  if (text == "debug") *level = Level::kDebug;
  else if (text == "info") *level = Level::kInfo;
  else if (text == "warn" || text == "warning") *level = Level::kWarn;
  else if (text == "error") *level = Level::kError;
  else return false;
  return true;
}

bool ParseFormat(std::string_view text, Format* format) {
  if (text == "text") *format = Format::kText;
  else if (text == "json") *format = Format::kJson;
  else return false;
  return true;
}

std::string Render(Format format, std::string_view message, Fields fields) {
  std::string out;
  if (format == Format::kJson) {
    // The surrounding braces, ts and level come from the spdlog pattern.
    out += "\"msg\":";
    out += nlohmann::json(std::string(message)).dump(-1, ' ', false,
                                                     nlohmann::json::error_handler_t::replace);
    for (const Field& f : fields) {
      out += ',';
      out += nlohmann::json(std::string(f.key)).dump();
      out += ':';
      out += f.quoted ? nlohmann::json(f.value).dump(-1, ' ', false,
                                                     nlohmann::json::error_handler_t::replace)
                      : f.value;
    }
    return out;
  }
  out += "msg=";
  out += nlohmann::json(std::string(message)).dump(-1, ' ', false,
                                                   nlohmann::json::error_handler_t::replace);
  for (const Field& f : fields) {
    out += ' ';
    out += f.key;
    out += '=';
    if (NeedsQuotes(f.value)) {
      out += nlohmann::json(f.value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
      out += f.value;
    }
  }
  return out;
}

void Write(Level level, std::string_view message, Fields fields) {
  auto& l = Logger();
  auto spd_level = ToSpd(level);
  if (!l.should_log(spd_level)) return;
  l.log(spd_level, Render(g_format.load(std::memory_order_relaxed), message, fields));
}

}  // namespace edgeflow::log
