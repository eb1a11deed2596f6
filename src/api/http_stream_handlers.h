// HttpStreamHandlers: the stream fan-out's resources of the REST API (fanout::FanoutService).
//
//   GET    /v1/streams              {"datapath", "streams": [stream status, ...]}
//   POST   /v1/streams              add a stream: {"name", "listen": "IP:PORT",
//                                   "interface"?: "eth0", "codec"?: "auto|h264|h265"}
//                                   201 with the stream's status
//   GET    /v1/streams/{s}          the stream's status
//   DELETE /v1/streams/{s}          remove it with its consumers
//   POST   /v1/streams/{s}/consumers   add a consumer: {"name", "address": "IP:PORT",
//                                   "interface"?, "mac"?: "aa:bb:cc:dd:ee:ff", "keep"?: "1/2"
//                                   (default "1"), "mode"?: "frame|packet" (default frame)}
//                                   201 with the consumer's status
//   GET    /v1/streams/{s}/consumers/{c}   the consumer's status
//   PUT    /v1/streams/{s}/consumers/{c}   change what it needs: {"keep"?, "mode"?} (at least
//                                   one; the other stays as it was); 200 with its status
//   DELETE /v1/streams/{s}/consumers/{c}   remove it
//
// A stream's status: {"name", "listen", "interface", "codec", "datapath": "ebpf|userspace",
// "sensor": {"keep", "mode", "last_report": <the sensor's last report, or null>,
// "last_report_ms"}, "ingress": {"datagrams", "bytes", "uninspected", "malformed", "invalid_ts",
// "ts_packets": {"unknown", "reference", "differential", "other"}}, "consumers": [...]}.
// A consumer's: {"name", "address", "interface", "mac" (null: the neighbour table's), "keep" (its
// need), "mode", "residual" (what the edge still drops), "sent" and "dropped": {"packets",
// "bytes"} each by class as above, "datagrams_sent", "datagrams_dropped",
// "uninspected_datagrams", "payload_bytes_sent", "send_errors"}.
//
// Bodies are JSON objects of at most 16 KiB; a field that is not one of the route's, a value of
// the wrong type, a missing field and a bad value are 400 with the field's name. Errors of the
// service: 400 bad name, address, interface or fraction; 404 unknown stream or consumer; 409 a
// name or address in use; 507 past the data path's limits (streams, consumers). A node without
// the fan-out answers 503 on these routes.
#pragma once

#include "api/http_response.h"
#include "api/http_router.h"
#include "api/http_services.h"

namespace edgeflow::api {

class HttpStreamHandlers {
 public:
  explicit HttpStreamHandlers(fanout::FanoutService* fanout) : fanout_(fanout) {}

  // REQUIRES: match.route is one of the stream routes and match.method_allowed.
  HttpResponse Handle(const HttpRequest& req, const RouteMatch& match);

 private:
  HttpResponse ListStreams(const HttpRequest& req);
  HttpResponse AddStream(const HttpRequest& req);
  HttpResponse GetStream(const HttpRequest& req, const RouteMatch& match);
  HttpResponse RemoveStream(const HttpRequest& req, const RouteMatch& match);
  HttpResponse AddConsumer(const HttpRequest& req, const RouteMatch& match);
  HttpResponse GetConsumer(const HttpRequest& req, const RouteMatch& match);
  HttpResponse SetNeed(const HttpRequest& req, const RouteMatch& match);
  HttpResponse RemoveConsumer(const HttpRequest& req, const RouteMatch& match);

  fanout::FanoutService* const fanout_;
};

}  // namespace edgeflow::api
