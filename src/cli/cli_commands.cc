#include "cli/cli_commands.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "client/edge_client.h"
#include "common/url_codec.h"

namespace edgeflow::cli {

namespace http = boost::beast::http;

namespace {

std::string Quoted(const std::string& version) { return "\"" + version + "\""; }

// Unix milliseconds as "2025-01-31T12:00:00.000Z".
std::string FormatTime(int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms % 1000);
}

// Keys come as "key" or, when not UTF-8, "key_b64"; shown as "b64:..." in that case.
std::string DisplayKey(const nlohmann::json& item) {
  if (item.contains("key") && item["key"].is_string()) return item["key"].get<std::string>();
  if (item.contains("key_b64") && item["key_b64"].is_string()) {
    return "b64:" + item["key_b64"].get<std::string>();
  }
  return "?";
}

std::string FormatExpiry(const nlohmann::json& value) {
  return value.is_number_integer() ? FormatTime(value.get<int64_t>()) : "-";
}

}  // namespace

std::string CliCommands::ItemTarget(const std::string& ns, const std::string& key) {
  return "/v1/kv/" + PercentEncode(ns, false) + "/" + PercentEncode(key, true);
}

int CliCommands::Fail(const Status& status) { return ReportFailure(err_, status); }

int CliCommands::Refused(const Response& res) {
  const Status status = client::EdgeClient::StatusOf(res);
  if (res.result() == http::status::not_found && status.Is(ErrorCode::kNotFound)) {
    std::fprintf(err_, "edgeflow: not found: %s\n", status.message().c_str());
  } else if (res.result() == http::status::precondition_failed) {
    std::fprintf(err_, "edgeflow: precondition failed: %s\n", status.message().c_str());
  } else {
    std::fprintf(err_, "edgeflow: %s (HTTP %u %s)\n", status.message().c_str(), res.result_int(),
                 std::string(ErrorCodeName(status.code())).c_str());
  }
  return kExitRefused;
}

int CliCommands::Health() {
  auto res = client_->Request(http::verb::get, "/healthz");
  if (!res) return Fail(res.error());
  if (res->result() != http::status::ok) return Refused(*res);
  std::fprintf(out_, "ok (%s)\n", client_->server().ToString().c_str());
  return kExitOk;
}

int CliCommands::Node() {
  auto res = client_->Request(http::verb::get, "/v1/node");
  if (!res) return Fail(res.error());
  if (res->result() != http::status::ok) return Refused(*res);
  auto json = nlohmann::json::parse(res->body(), nullptr, false);
  std::string text = json.is_discarded() ? res->body() : json.dump(2);
  std::fprintf(out_, "%s\n", text.c_str());
  return kExitOk;
}

int CliCommands::KvPut(const KvPutArgs& args) {
  auto input = ReadInputValue(args.value, args.file);
  if (!input) return Fail(input.error());
  std::string value = std::move(*input);
  if (args.if_absent && !args.if_version.empty()) {
    return Fail(Status::InvalidArgument("--if-absent and --if-version cannot be combined"));
  }
  std::string target = ItemTarget(args.ns, args.key);
  if (!args.ttl.empty()) target += "?ttl=" + PercentEncode(args.ttl, false);
  Headers headers;
  if (!args.content_type.empty()) headers["Content-Type"] = args.content_type;
  if (!args.if_version.empty()) headers["If-Match"] = Quoted(args.if_version);
  if (args.if_absent) headers["If-None-Match"] = "*";
  auto res = client_->Request(http::verb::put, target, std::move(value), headers);
  if (!res) return Fail(res.error());
  if (res->result() != http::status::ok) return Refused(*res);
  std::fprintf(out_, "%s\n", res->body().c_str());
  return kExitOk;
}

int CliCommands::KvGet(const std::string& ns, const std::string& key, bool meta,
                       const std::string& output) {
  auto res = client_->Request(meta ? http::verb::head : http::verb::get, ItemTarget(ns, key));
  if (!res) return Fail(res.error());
  if (res->result() != http::status::ok) {
    if (meta && res->result() == http::status::not_found) {
      std::fprintf(err_, "edgeflow: not found: key does not exist in namespace '%s'\n", ns.c_str());
      return kExitRefused;
    }
    return Refused(*res);
  }
  if (meta) {
    nlohmann::json info;
    info["ns"] = ns;
    info["key"] = key;
    info["version"] = std::string((*res)["EKV-Version"]);
    info["seq"] = std::strtoull(std::string((*res)["EKV-Seq"]).c_str(), nullptr, 10);
    info["size"] =
        std::strtoull(std::string((*res)[http::field::content_length]).c_str(), nullptr, 10);
    info["content_type"] = std::string((*res)[http::field::content_type]);
    auto expires = res->find("EKV-Expires-At");
    if (expires != res->end()) {
      int64_t ms = std::strtoll(std::string(expires->value()).c_str(), nullptr, 10);
      info["expires_at_ms"] = ms;
      info["expires_at"] = FormatTime(ms);
    } else {
      info["expires_at_ms"] = nullptr;
    }
    std::fprintf(out_, "%s\n",
                 info.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return kExitOk;
  }
  const std::string& body = res->body();
  if (!output.empty()) {
    std::ofstream file(output, std::ios::binary | std::ios::trunc);
    if (!file.write(body.data(), static_cast<std::streamsize>(body.size()))) {
      return Fail(Status::IoError("cannot write '" + output + "'"));
    }
    return kExitOk;
  }
  if (std::fwrite(body.data(), 1, body.size(), out_) != body.size()) {
    return Fail(Status::IoError("cannot write the value to standard output"));
  }
  std::fflush(out_);
  return kExitOk;
}

int CliCommands::KvDelete(const std::string& ns, const std::string& key,
                          const std::string& if_version) {
  Headers headers;
  if (!if_version.empty()) headers["If-Match"] = Quoted(if_version);
  auto res = client_->Request(http::verb::delete_, ItemTarget(ns, key), "", headers);
  if (!res) return Fail(res.error());
  if (res->result() != http::status::ok) return Refused(*res);
  std::fprintf(out_, "%s\n", res->body().c_str());
  return kExitOk;
}

int CliCommands::KvList(const KvListArgs& args) {
  std::vector<nlohmann::json> items;
  std::string start_after = args.start_after;
  std::string start_after_b64;
  bool more = false;
  std::string next_hint;
  for (;;) {
    std::string target =
        "/v1/kv/" + PercentEncode(args.ns, false) + "?limit=" + std::to_string(args.limit);
    if (!args.prefix.empty()) target += "&prefix=" + PercentEncode(args.prefix, false);
    if (!start_after_b64.empty()) {
      target += "&start_after_b64=" + PercentEncode(start_after_b64, false);
    } else if (!start_after.empty()) {
      target += "&start_after=" + PercentEncode(start_after, false);
    }
    auto res = client_->Request(http::verb::get, target);
    if (!res) return Fail(res.error());
    if (res->result() != http::status::ok) return Refused(*res);
    auto json = nlohmann::json::parse(res->body(), nullptr, false);
    if (!json.is_object() || !json.contains("items") || !json["items"].is_array()) {
      return Fail(
          Status::Internal("unexpected listing from the server: " + res->body().substr(0, 200)));
    }
    for (auto& item : json["items"]) items.push_back(std::move(item));
    start_after.clear();
    start_after_b64.clear();
    if (json.contains("next") && json["next"].is_string()) {
      start_after = json["next"].get<std::string>();
      next_hint = "--start-after '" + start_after + "'";
    } else if (json.contains("next_b64") && json["next_b64"].is_string()) {
      start_after_b64 = json["next_b64"].get<std::string>();
      next_hint = "(binary key; use --all)";
    }
    more = !start_after.empty() || !start_after_b64.empty();
    if (!more || !args.all) break;
  }

  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (auto& item : items) out.push_back(std::move(item));
    std::fprintf(out_, "%s\n",
                 out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    size_t width = 3;
    for (const auto& item : items) width = std::max(width, DisplayKey(item).size());
    width = std::min<size_t>(width, 80);
    std::fprintf(
        out_, "%s\n",
        fmt::format("{:<{}}  {:>10}  {:<33}  {}", "KEY", width, "SIZE", "VERSION", "EXPIRES")
            .c_str());
    for (const auto& item : items) {
      std::string line = fmt::format(
          "{:<{}}  {:>10}  {:<33}  {}", DisplayKey(item), width, item.value("size", uint64_t{0}),
          item.value("version", std::string("?")),
          FormatExpiry(item.contains("expires_at_ms") ? item["expires_at_ms"] : nlohmann::json()));
      std::fprintf(out_, "%s\n", line.c_str());
    }
  }
  if (more && !args.all) {
    std::fprintf(err_, "edgeflow: more keys follow; use --all, or continue with %s\n",
                 next_hint.c_str());
  }
  return kExitOk;
}

int CliCommands::KvWatch(const KvWatchArgs& args) {
  std::string target = "/v1/watch/" + PercentEncode(args.ns, false);
  char sep = '?';
  if (!args.prefix.empty()) {
    target += sep + std::string("prefix=") + PercentEncode(args.prefix, false);
    sep = '&';
  }
  if (args.from_seq) target += sep + std::string("from_seq=") + std::to_string(*args.from_seq);

  std::string pending;  // text of an event not yet complete
  std::string error_message;
  auto handle_event = [&](const std::string& block) {
    std::string event = "message";
    std::string data;
    std::istringstream lines(block);
    std::string line;
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.starts_with("event: ")) event = line.substr(7);
      if (line.starts_with("data: ")) data += line.substr(6);
    }
    if (data.empty()) return true;  // a comment (keep-alive)
    if (event == "error") {
      auto json = nlohmann::json::parse(data, nullptr, false);
      error_message = json.is_object() ? json.value("message", data) : data;
      return false;
    }
    if (args.json) {
      std::fprintf(out_, "%s\n", data.c_str());
    } else {
      auto json = nlohmann::json::parse(data, nullptr, false);
      if (!json.is_object()) return true;
      std::string line_out = fmt::format("{} {} {}/{}", json.value("seq", uint64_t{0}), event,
                                         json.value("ns", std::string()), DisplayKey(json));
      if (event == "put") {
        line_out += fmt::format(" size={}", json.value("size", uint64_t{0}));
        std::string type = json.value("content_type", std::string());
        if (!type.empty()) line_out += " type=" + type;
        if (json.contains("expires_at_ms") && json["expires_at_ms"].is_number_integer()) {
          line_out += " expires=" + FormatExpiry(json["expires_at_ms"]);
        }
      }
      line_out += " version=" + json.value("version", std::string());
      std::fprintf(out_, "%s\n", line_out.c_str());
    }
    std::fflush(out_);
    return true;
  };
  auto on_data = [&](std::string_view data) {
    pending.append(data);
    size_t end;
    while ((end = pending.find("\n\n")) != std::string::npos) {
      std::string block = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (!handle_event(block)) return false;
    }
    return true;
  };
  // The server sends a keep-alive every 15 s; three missed ones mean the server is gone.
  auto res = client_->Stream(target, {}, on_data, std::chrono::seconds(45));
  if (!res) return Fail(res.error());
  if (res->result() != http::status::ok) return Refused(*res);
  if (!error_message.empty()) {
    std::fprintf(err_, "edgeflow: watch ended: %s\n", error_message.c_str());
    return kExitRefused;
  }
  std::fprintf(err_, "edgeflow: the server ended the watch stream (is it shutting down?)\n");
  return kExitUnavailable;
}

}  // namespace edgeflow::cli
