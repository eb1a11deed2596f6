// EdgeClient: the C++ client library's entry point to one edgeflow node, over its HTTP API.
//
//   client::EdgeClient node(*client::ServerUrl::Parse("http://127.0.0.1:7070"));
//   auto sent = node.Publish("cams/front", frame_bytes, {.content_type = "image/jpeg"});
//   if (!sent) std::cerr << sent.error().message() << "\n";
//
// Errors carry the node's own error code and message (a 404 is NotFound, a 503 Unavailable, ...);
// transport failures are Unavailable. One EdgeClient is one keep-alive connection: use it from
// one thread at a time (make one per thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "channels/envelope.h"
#include "client/http_client.h"
#include "client/server_url.h"
#include "common/host_port.h"
#include "common/status.h"

namespace edgeflow::client {

struct PublishOptions {
  enum class Mode { kAuto, kInline, kReference };
  std::string key;           // store under this key, which is also the item id (default: new)
  std::string ns;            // EKV namespace (default: the node's channels namespace)
  std::string content_type;  // stored with the data and sent in the message
  std::string ttl;           // "30", "1.5", "250ms", "5m", "2h" or "none" (default: the node's)
  Mode mode = Mode::kAuto;   // auto: inline up to the node's threshold, by reference above
  std::string traceparent;   // W3C trace context to continue (default: a new trace)
  std::string stream;        // the stream key (a camera, a user): per-stream function context
};

// What the node answered to a put-then-publish.
struct Publication {
  std::string channel;
  std::string topic;
  std::string item_id;
  channels::ItemRef ref;  // where the data is stored (with its version)
  uint64_t seq = 0;
  uint64_t size = 0;
  bool inline_data = true;
  std::string trace_id;
};

struct ItemData {
  std::string value;
  std::string version;
  std::string content_type;
};

// Where the node's channels are: its broker and topic layout (from GET /v1/node).
struct ChannelsInfo {
  HostPort mqtt;
  std::string tenant;
  std::string topic_prefix;
};

class EdgeClient {
 public:
  explicit EdgeClient(ServerUrl server,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Put-then-publish: when this returns, the data is stored and the broker has the message.
  Result<Publication> Publish(std::string_view channel, std::string_view data,
                              const PublishOptions& options = {});
  // Reads an item; with ref.version set, a newer version is still returned (the caller compares
  // ItemData::version). NotFound when the item expired or was deleted.
  Result<ItemData> Read(const channels::ItemRef& ref);
  // The node's broker address; a wildcard listen address is replaced by the server's host.
  Result<ChannelsInfo> Channels();

  // The Status of an HTTP error response of the node ({"error":{"code","message"}}).
  static Status StatusOf(const Response& response);

  HttpClient& http() { return http_; }

 private:
  HttpClient http_;
};

}  // namespace edgeflow::client
