// HttpChannelHandlers: the computation-channel resources of the REST API.
//
//   GET  /v1/channels                 the channels seen since the node started, with counts and
//                                     rates (ChannelMonitor)
//   GET  /v1/channels/{ch}            one of them (404 when nothing was published on it yet)
//   POST /v1/channels/{ch}/publish    put-then-publish (ChannelPublisher): the body is the data.
//        ?key=K   store under this key; it is also the item id (default: a new id under
//                 "<channel>/")
//        ?ns=NS   EKV namespace (default: the node's channels namespace)
//        ?ttl=T   the stored item expires after T (30, 1.5, 250ms, 5m, 2h) or "none"
//        ?mode=auto|inline|ref   how the data travels (auto: inline up to the node's threshold)
//        ?stream=S  the stream key the item belongs to (functions keep per-stream context)
//        Content-Type   stored with the data and sent as the message's content type
//        traceparent    W3C trace context: its trace id travels in the envelope
//
// A node whose channels are off answers 503 on these routes.
#pragma once

#include "api/http_response.h"
#include "api/http_router.h"
#include "api/http_services.h"
#include "channels/channel_monitor.h"
#include "channels/channel_publisher.h"

namespace edgeflow::api {

class HttpChannelHandlers {
 public:
  explicit HttpChannelHandlers(HttpServices services) : services_(services) {}

  // REQUIRES: match.route is one of the channel routes and match.method_allowed.
  HttpResponse Handle(const HttpRequest& req, const RouteMatch& match);

 private:
  HttpResponse List(const HttpRequest& req);
  HttpResponse Get(const HttpRequest& req, const RouteMatch& match);
  HttpResponse Publish(const HttpRequest& req, const RouteMatch& match);

  HttpServices services_;
};

}  // namespace edgeflow::api
