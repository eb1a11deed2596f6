// SensorCommand: `edgeflow sensor`, a sensor agent. It sends a recorded MPEG-TS file to the edge
// over UDP at its real-time rate (fanout::SensorSender), applies the quality the edge asks for on
// the sensor's control channel by suppressing differential data at the source, and reports what
// it sent.
//
// Control channel (both under the node's tenant, found like `edgeflow sub` finds its broker, or
// given with --mqtt/--tenant):
//   _fanout/<id>/quality  subscribed; the retained JSON {"keep":"1/2","mode":"frame"}
//                         (fanout/sensor_quality.h). A bad message is reported on stderr and
//                         counted, and leaves the quality as it was; an empty one (the retained
//                         message cleared) brings back the quality of --keep/--mode.
//   _fanout/<id>/report   published every --report-interval (QoS 0, not retained): the counters
//                         as JSON; the last one, with "final": true, at QoS 1.
//
// Output: the final JSON summary on stdout; each interval a JSON line on stdout with --json, else
// a short human line on stderr. SIGINT and SIGTERM stop the sending cleanly (exit 0 with the
// summary). Exit statuses as in cli_input.h.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "client/edge_client.h"

namespace edgeflow::cli {

struct SensorArgs {
  std::string ts_file;
  std::string to;  // HOST:PORT of the edge
  std::string id;  // the sensor's id: a channel segment, e.g. "cam1"
  bool loop = false;
  std::string loop_count;  // with --loop: passes over the file ("" = until stopped)
  double duration_seconds = 0;
  double speed = 1;
  std::string keep = "1/1";
  std::string mode = "frame";
  std::string mqtt;    // HOST:PORT of the broker; empty = ask the node
  std::string tenant;  // empty = the node's ("default" with --mqtt)
  bool control = true;
  double report_interval_seconds = 1;
  bool json = false;
};

class SensorCommand {
 public:
  // `node` is asked where its broker is (unless --mqtt or --no-control); `timeout` bounds each
  // wait for the node or the broker at start-up.
  SensorCommand(client::EdgeClient* node, std::chrono::milliseconds timeout, std::FILE* out,
                std::FILE* err)
      : node_(node), timeout_(timeout), out_(out), err_(err) {}

  int Run(const SensorArgs& args);

 private:
  client::EdgeClient* node_;
  std::chrono::milliseconds timeout_;
  std::FILE* out_;
  std::FILE* err_;
};

}  // namespace edgeflow::cli
