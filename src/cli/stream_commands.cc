#include "cli/stream_commands.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "cli/cli_input.h"
#include "common/host_port.h"
#include "common/url_codec.h"
#include "fanout/qoc_plan.h"

namespace edgeflow::cli {

namespace http = boost::beast::http;

namespace {

using Json = nlohmann::json;

std::string StreamTarget(const std::string& stream) {
  return "/v1/streams/" + PercentEncode(stream, /*keep_slash=*/false);
}

std::string ConsumerTarget(const std::string& stream, const std::string& consumer) {
  return StreamTarget(stream) + "/consumers/" + PercentEncode(consumer, /*keep_slash=*/false);
}

// The node's answers are read defensively: a member of another type than expected reads as empty
// or 0 instead of throwing halfway through a table.
std::string Text(const Json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

uint64_t Count(const Json& object, std::initializer_list<const char*> path) {
  const Json* at = &object;
  for (const char* key : path) {
    if (!at->is_object()) return 0;
    auto it = at->find(key);
    if (it == at->end()) return 0;
    at = &*it;
  }
  return at->is_number_unsigned() ? at->get<uint64_t>() : 0;
}

const Json& Member(const Json& object, const char* key) {
  static const Json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

std::string Number(uint64_t n) { return std::to_string(n); }

// Never throws: names given on the command line may be any bytes, and invalid UTF-8 becomes
// U+FFFD (the node then refuses the name with its own message).
std::string Serialize(const Json& value, int indent = -1) {
  return value.dump(indent, ' ', false, Json::error_handler_t::replace);
}

// Checked here so that a typo is a usage error (64) that names the option, before anything is
// sent; the node checks again.
Status CheckAddress(const std::string& text, const char* option) {
  auto parsed = ParseHostPort(text);
  in_addr ignored{};
  if (!parsed || parsed->port == 0 || ::inet_pton(AF_INET, parsed->host.c_str(), &ignored) != 1) {
    return Status::InvalidArgument(std::string(option) + " '" + text +
                                   "' is not an IPv4 address with a port, like 10.0.0.5:5000");
  }
  return Status::Ok();
}

Status CheckKeep(const std::string& text) {
  if (auto fraction = fanout::ParseFraction(text); !fraction) {
    return Status::InvalidArgument("--keep: " + fraction.error().message());
  }
  return Status::Ok();
}

// Rows printed in columns as wide as their widest cell; the columns marked in `numeric` are
// right-aligned. The first row is the header.
void PrintTable(std::FILE* out, const std::vector<std::vector<std::string>>& rows,
                const std::vector<bool>& numeric) {
  std::vector<size_t> widths(numeric.size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      const std::string pad(widths[i] - row[i].size(), ' ');
      if (i > 0) line += "  ";
      line += numeric[i] ? pad + row[i] : row[i] + (i + 1 < row.size() ? pad : "");
    }
    std::fprintf(out, "%s\n", line.c_str());
  }
}

std::string SensorQuality(const Json& stream) {
  const Json& sensor = Member(stream, "sensor");
  return Text(sensor, "keep") + " " + Text(sensor, "mode");
}

// "1.2 s ago", or "none yet".
std::string ReportAge(const Json& stream) {
  const uint64_t at = Count(stream, {"sensor", "last_report_ms"});
  if (at == 0) return "none yet";
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  char text[48];
  std::snprintf(text, sizeof text, "%.1f s ago",
                static_cast<double>(now - static_cast<int64_t>(at)) / 1000.0);
  return text;
}

void PrintStreamLine(std::FILE* out, const Json& stream) {
  auto ts = [&](const char* klass) { return Count(stream, {"ingress", "ts_packets", klass}); };
  std::fprintf(
      out,
      "stream %s on %s: datapath %s, sensor %s (last report %s), ingress %llu datagrams, "
      "TS packets reference %llu differential %llu unknown %llu other %llu\n",
      Text(stream, "name").c_str(), Text(stream, "listen").c_str(),
      Text(stream, "datapath").c_str(), SensorQuality(stream).c_str(), ReportAge(stream).c_str(),
      static_cast<unsigned long long>(Count(stream, {"ingress", "datagrams"})),
      static_cast<unsigned long long>(ts("reference")),
      static_cast<unsigned long long>(ts("differential")),
      static_cast<unsigned long long>(ts("unknown")), static_cast<unsigned long long>(ts("other")));
}

void PrintConsumerTable(std::FILE* out, const Json& stream) {
  const Json& consumers = Member(stream, "consumers");
  if (!consumers.is_array() || consumers.empty()) {
    std::fprintf(out, "no consumers\n");
    return;
  }
  std::vector<std::vector<std::string>> rows = {{"CONSUMER", "NEED", "RESIDUAL", "MODE", "SENT-REF",
                                                 "SENT-DIFF", "DROP-REF", "DROP-DIFF",
                                                 "DGRAMS-SENT", "DGRAMS-DROP", "ERRORS"}};
  for (const Json& c : consumers) {
    rows.push_back({Text(c, "name"), Text(c, "keep"), Text(c, "residual"), Text(c, "mode"),
                    Number(Count(c, {"sent", "packets", "reference"})),
                    Number(Count(c, {"sent", "packets", "differential"})),
                    Number(Count(c, {"dropped", "packets", "reference"})),
                    Number(Count(c, {"dropped", "packets", "differential"})),
                    Number(Count(c, {"datagrams_sent"})), Number(Count(c, {"datagrams_dropped"})),
                    Number(Count(c, {"send_errors"}))});
  }
  PrintTable(out, rows, {false, false, false, false, true, true, true, true, true, true, true});
}

}  // namespace

int StreamCommands::AddStream(const StreamAddArgs& args) {
  if (Status s = CheckAddress(args.listen, "--listen"); !s.ok()) return ReportFailure(err_, s);
  Json body = {{"name", args.name}, {"listen", args.listen}, {"codec", args.codec}};
  if (!args.interface.empty()) body["interface"] = args.interface;
  auto response = node_->http().Request(http::verb::post, "/v1/streams", Serialize(body),
                                        {{"Content-Type", "application/json"}});
  if (!response) return ReportFailure(err_, response.error());
  if (response->result() != http::status::created) {
    return ReportRefusal(err_, client::EdgeClient::StatusOf(*response));
  }
  const Json stream = Json::parse(response->body(), nullptr, /*allow_exceptions=*/false);
  if (args.json) {
    std::fprintf(out_, "%s\n", Serialize(stream, 2).c_str());
    return kExitOk;
  }
  std::fprintf(out_, "added stream %s on %s (datapath %s; the sensor is asked for %s)\n",
               Text(stream, "name").c_str(), Text(stream, "listen").c_str(),
               Text(stream, "datapath").c_str(), SensorQuality(stream).c_str());
  return kExitOk;
}

int StreamCommands::RemoveStream(const std::string& name) {
  auto response = node_->http().Request(http::verb::delete_, StreamTarget(name));
  if (!response) return ReportFailure(err_, response.error());
  if (response->result() != http::status::ok) {
    return ReportRefusal(err_, client::EdgeClient::StatusOf(*response));
  }
  std::fprintf(out_, "removed stream %s\n", name.c_str());
  return kExitOk;
}

int StreamCommands::ListStreams(bool json) {
  auto response = node_->http().Request(http::verb::get, "/v1/streams");
  if (!response) return ReportFailure(err_, response.error());
  if (response->result() != http::status::ok) {
    return ReportRefusal(err_, client::EdgeClient::StatusOf(*response));
  }
  const Json body = Json::parse(response->body(), nullptr, /*allow_exceptions=*/false);
  const Json& streams = Member(body, "streams");
  if (!streams.is_array()) {
    return ReportFailure(err_, Status::Internal("unexpected answer from the node"));
  }
  if (json) {
    std::fprintf(out_, "%s\n", Serialize(body, 2).c_str());
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"STREAM", "LISTEN", "DATAPATH", "SENSOR", "CONSUMERS", "DATAGRAMS"}};
  for (const Json& s : streams) {
    const Json& consumers = Member(s, "consumers");
    rows.push_back({Text(s, "name"), Text(s, "listen"), Text(s, "datapath"), SensorQuality(s),
                    Number(consumers.is_array() ? consumers.size() : 0),
                    Number(Count(s, {"ingress", "datagrams"}))});
  }
  PrintTable(out_, rows, {false, false, false, false, true, true});
  return kExitOk;
}

int StreamCommands::PrintStats(const StreamStatsArgs& args, bool clear_screen) {
  auto response = node_->http().Request(http::verb::get, StreamTarget(args.name));
  if (!response) return ReportFailure(err_, response.error());
  if (response->result() != http::status::ok) {
    return ReportRefusal(err_, client::EdgeClient::StatusOf(*response));
  }
  const Json stream = Json::parse(response->body(), nullptr, /*allow_exceptions=*/false);
  if (!stream.is_object()) {
    return ReportFailure(err_, Status::Internal("unexpected answer from the node"));
  }
  if (args.json) {
    // Watching prints one object per line, so that the output stays a JSON Lines stream.
    std::fprintf(out_, "%s\n", Serialize(stream, args.watch_seconds > 0 ? -1 : 2).c_str());
  } else {
    if (clear_screen) std::fprintf(out_, "\x1b[H\x1b[2J");
    PrintStreamLine(out_, stream);
    PrintConsumerTable(out_, stream);
    if (args.watch_seconds > 0 && !clear_screen) std::fprintf(out_, "\n");
  }
  std::fflush(out_);
  return kExitOk;
}

int StreamCommands::Stats(const StreamStatsArgs& args) {
  // Redrawn in place on a terminal; appended, screen after screen, into a file or a pipe.
  const bool clear_screen = args.watch_seconds > 0 && !args.json && ::isatty(::fileno(out_)) == 1;
  while (true) {
    if (int status = PrintStats(args, clear_screen); status != kExitOk) return status;
    if (args.watch_seconds <= 0) return kExitOk;
    std::this_thread::sleep_for(std::chrono::duration<double>(args.watch_seconds));
  }
}

int StreamCommands::AddConsumer(const ConsumerAddArgs& args) {
  if (Status s = CheckAddress(args.to, "--to"); !s.ok()) return ReportFailure(err_, s);
  if (Status s = CheckKeep(args.keep); !s.ok()) return ReportFailure(err_, s);
  Json body = {{"name", args.name}, {"address", args.to}, {"keep", args.keep}, {"mode", args.mode}};
  if (!args.interface.empty()) body["interface"] = args.interface;
  if (!args.mac.empty()) body["mac"] = args.mac;
  auto response = node_->http().Request(http::verb::post, StreamTarget(args.stream) + "/consumers",
                                        Serialize(body), {{"Content-Type", "application/json"}});
  if (!response) return ReportFailure(err_, response.error());
  if (response->result() != http::status::created) {
    return ReportRefusal(err_, client::EdgeClient::StatusOf(*response));
  }
  const Json consumer = Json::parse(response->body(), nullptr, /*allow_exceptions=*/false);
  if (args.json) {
    std::fprintf(out_, "%s\n", Serialize(consumer, 2).c_str());
    return kExitOk;
  }
  std::fprintf(out_,
               "added consumer %s of stream %s: to %s, keep %s %s (residual at the edge %s)\n",
               Text(consumer, "name").c_str(), args.stream.c_str(),
               Text(consumer, "address").c_str(), Text(consumer, "keep").c_str(),
               Text(consumer, "mode").c_str(), Text(consumer, "residual").c_str());
  return kExitOk;
}

int StreamCommands::RemoveConsumer(const std::string& stream, const std::string& consumer) {
  auto response = node_->http().Request(http::verb::delete_, ConsumerTarget(stream, consumer));
  if (!response) return ReportFailure(err_, response.error());
  if (response->result() != http::status::ok) {
    return ReportRefusal(err_, client::EdgeClient::StatusOf(*response));
  }
  std::fprintf(out_, "removed consumer %s of stream %s\n", consumer.c_str(), stream.c_str());
  return kExitOk;
}

int StreamCommands::SetPolicy(const PolicySetArgs& args) {
  if (args.keep.empty() && args.mode.empty()) {
    return ReportFailure(err_, Status::InvalidArgument("give --keep, --mode or both"));
  }
  if (!args.keep.empty()) {
    if (Status s = CheckKeep(args.keep); !s.ok()) return ReportFailure(err_, s);
  }
  Json body = Json::object();
  if (!args.keep.empty()) body["keep"] = args.keep;
  if (!args.mode.empty()) body["mode"] = args.mode;
  auto response = node_->http().Request(http::verb::put, ConsumerTarget(args.stream, args.consumer),
                                        Serialize(body), {{"Content-Type", "application/json"}});
  if (!response) return ReportFailure(err_, response.error());
  if (response->result() != http::status::ok) {
    return ReportRefusal(err_, client::EdgeClient::StatusOf(*response));
  }
  const Json consumer = Json::parse(response->body(), nullptr, /*allow_exceptions=*/false);
  if (args.json) {
    std::fprintf(out_, "%s\n", Serialize(consumer, 2).c_str());
    return kExitOk;
  }
  std::fprintf(out_, "consumer %s of stream %s: keep %s %s (residual at the edge %s)\n",
               args.consumer.c_str(), args.stream.c_str(), Text(consumer, "keep").c_str(),
               Text(consumer, "mode").c_str(), Text(consumer, "residual").c_str());
  // What the sensor is asked for now follows from every consumer's need: worth showing.
  auto stream = node_->http().Request(http::verb::get, StreamTarget(args.stream));
  if (stream && stream->result() == http::status::ok) {
    const Json status = Json::parse(stream->body(), nullptr, /*allow_exceptions=*/false);
    std::fprintf(out_, "stream %s: the sensor is asked for %s\n", args.stream.c_str(),
                 SensorQuality(status).c_str());
  }
  return kExitOk;
}

}  // namespace edgeflow::cli
