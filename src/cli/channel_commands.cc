#include "cli/channel_commands.h"

#include <fmt/format.h>

#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>

#include "cli/cli_input.h"
#include "client/channel_subscriber.h"
#include "common/text_encoding.h"

namespace edgeflow::cli {
namespace {

namespace http = boost::beast::http;

nlohmann::json MessageJson(const client::ReceivedMessage& message) {
  const channels::Envelope& env = message.envelope;
  nlohmann::json out = {
      {"channel", message.channel}, {"topic", message.topic},    {"item_id", env.item_id},
      {"size", env.size},           {"inline", env.inline_data},
  };
  if (!env.content_type.empty()) out["content_type"] = env.content_type;
  if (env.ref) {
    out["ref"] = channels::RefPath(*env.ref);
    out["version"] = env.ref->version;
  }
  if (env.produced_at_ms > 0) out["produced_at_ms"] = env.produced_at_ms;
  if (!env.trace_id.empty()) out["trace_id"] = env.trace_id;
  if (env.change != channels::Envelope::Change::kNone) {
    out["change"] = env.change == channels::Envelope::Change::kPut ? "put" : "delete";
  }
  if (message.newer_version) out["newer_version"] = true;
  if (!message.status.ok()) {
    out["error"] = message.status.message();
  } else if (IsValidUtf8(message.data)) {
    out["data"] = message.data;
  } else {
    out["data_b64"] = Base64Encode(message.data);
  }
  return out;
}

}  // namespace

int ChannelCommands::Publish(const PubArgs& args) {
  auto data = ReadInputValue(args.value, args.file);
  if (!data) return ReportFailure(err_, data.error());
  auto sent = node_->Publish(args.channel, *data, args.options);
  if (!sent) return ReportFailure(err_, sent.error());
  if (args.json) {
    nlohmann::json out = {
        {"channel", sent->channel},     {"topic", sent->topic},
        {"item_id", sent->item_id},     {"ref", channels::RefPath(sent->ref)},
        {"version", sent->ref.version}, {"seq", sent->seq},
        {"size", sent->size},           {"inline", sent->inline_data},
        {"trace_id", sent->trace_id},
    };
    std::fprintf(out_, "%s\n", out.dump().c_str());
  } else {
    std::fprintf(out_, "%s\n", sent->item_id.c_str());
    std::fprintf(err_, "published %llu bytes on %s (%s, stored at %s)\n",
                 static_cast<unsigned long long>(sent->size), sent->channel.c_str(),
                 sent->inline_data ? "inline" : "by reference",
                 channels::RefPath(sent->ref).c_str());
  }
  return kExitOk;
}

int ChannelCommands::Subscribe(const SubArgs& args) {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t received = 0;
  auto print = [&](const client::ReceivedMessage& message) {
    if (!message.status.ok()) {
      std::fprintf(err_, "edgeflow: %s item %s: %s\n", message.channel.c_str(),
                   message.envelope.item_id.c_str(), message.status.message().c_str());
    }
    if (args.json) {
      std::fprintf(out_, "%s\n", MessageJson(message).dump().c_str());
    } else if (message.status.ok()) {
      if (args.verbose) std::fprintf(out_, "%s ", message.channel.c_str());
      std::fwrite(message.data.data(), 1, message.data.size(), out_);
      std::fputc('\n', out_);
    }
    std::fflush(out_);
    std::lock_guard lock(mu);
    ++received;
    cv.notify_all();
  };

  client::SubscriberOptions options;
  options.channels = args.channels;
  options.session = args.session;
  options.qos = args.qos;
  options.resolve = args.resolve;
  auto subscriber = client::ChannelSubscriber::Create(node_->http().server(), options, print);
  if (!subscriber) return ReportFailure(err_, subscriber.error());
  if (Status s = (*subscriber)->Start(); !s.ok()) return ReportFailure(err_, s);

  std::unique_lock lock(mu);
  auto done = [&] { return args.count > 0 && received >= args.count; };
  bool finished = true;
  if (args.wait_seconds > 0) {
    finished = cv.wait_for(
        lock, std::chrono::milliseconds(static_cast<int64_t>(args.wait_seconds * 1000)), done);
  } else {
    cv.wait(lock, done);
  }
  const uint64_t got = received;
  lock.unlock();
  (*subscriber)->Stop();
  if (!finished && args.count > 0) {
    std::fprintf(err_, "edgeflow: %llu of %llu messages arrived in %g seconds\n",
                 static_cast<unsigned long long>(got), static_cast<unsigned long long>(args.count),
                 args.wait_seconds);
    return kExitRefused;
  }
  return kExitOk;
}

int ChannelCommands::List(bool json) {
  auto response = node_->http().Request(http::verb::get, "/v1/channels");
  if (!response) return ReportFailure(err_, response.error());
  if (response->result() != http::status::ok) {
    return ReportRefusal(err_, client::EdgeClient::StatusOf(*response));
  }
  auto body = nlohmann::json::parse(response->body(), nullptr, /*allow_exceptions=*/false);
  if (!body.is_object() || !body.contains("channels") || !body["channels"].is_array()) {
    return ReportFailure(err_, Status::Internal("unexpected answer from the node"));
  }
  if (json) {
    std::fprintf(out_, "%s\n", body.dump(2).c_str());
    return kExitOk;
  }
  std::fprintf(out_, "%-40s %10s %10s %12s %14s\n", "CHANNEL", "MESSAGES", "MSG/S", "BYTES/S",
               "LAST (s ago)");
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  for (const auto& channel : body["channels"]) {
    const int64_t last = channel.value("last_message_ms", int64_t{0});
    std::fprintf(out_, "%-40s %10llu %10.1f %12.0f %14.1f\n",
                 channel.value("name", std::string("?")).c_str(),
                 static_cast<unsigned long long>(channel.value("messages", uint64_t{0})),
                 channel.value("messages_per_second", 0.0), channel.value("bytes_per_second", 0.0),
                 last > 0 ? static_cast<double>(now_ms - last) / 1000.0 : 0.0);
  }
  if (body.value("untracked_messages", uint64_t{0}) > 0) {
    std::fprintf(err_, "(%llu messages on channels beyond the node's tracking limit)\n",
                 static_cast<unsigned long long>(body.value("untracked_messages", uint64_t{0})));
  }
  return kExitOk;
}

}  // namespace edgeflow::cli
