// HttpServices: the node's components beyond EKV that the HTTP front-end serves. Each is nullptr
// when the node runs without it; its routes then answer 503.
#pragma once

#include "channels/channel_monitor.h"
#include "channels/channel_publisher.h"
#include "runtime/pipeline_manager.h"

namespace edgeflow::fanout {
class FanoutService;
}

namespace edgeflow::api {

struct HttpServices {
  channels::ChannelPublisher* publisher = nullptr;     // channels
  const channels::ChannelMonitor* monitor = nullptr;   // channels
  runtime::PipelineManager* pipelines = nullptr;       // edge functions
  fanout::FanoutService* fanout = nullptr;             // stream fan-out
};

}  // namespace edgeflow::api
