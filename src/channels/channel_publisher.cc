#include "channels/channel_publisher.h"

#include <algorithm>

#include "channels/channel_name.h"

namespace edgeflow::channels {

ChannelPublisher::ChannelPublisher(ChannelsConfig config, kv::Store* store, MqttClient* mqtt,
                                   const Clock* clock)
    : config_(std::move(config)), store_(store), mqtt_(mqtt), clock_(clock) {}

Result<ChannelPublisher::Prepared> ChannelPublisher::Plan(const PublishRequest& request) {
  if (Status s = ValidateChannelName(request.channel); !s.ok()) return Error(std::move(s));
  const int64_t now = clock_->NowMillis();
  Prepared prepared;
  PublishResult& result = prepared.result;
  result.topic = ChannelTopic(config_.tenant, request.channel);
  result.item_id = !request.item_id.empty() ? request.item_id
                   : request.key.empty()      ? NewItemId(now)
                                              : request.key;
  result.trace_id = request.trace_id.empty() ? NewTraceId() : request.trace_id;
  result.ref.ns = request.ns.empty() ? config_.ns : request.ns;
  result.ref.key = request.key.empty() ? request.channel + "/" + result.item_id : request.key;

  const int64_t ttl_ms = request.ttl_ms.value_or(config_.item_ttl_ms);
  if (ttl_ms < 0) return Error(Status::InvalidArgument("ttl must not be negative"));

  // The announcement, built before the put so that its exact size decides how the data travels
  // (a long key travels twice in it: as the item id and, percent-encoded, in the reference). The
  // version is filled in after the put; every version has the same length.
  Envelope envelope;
  envelope.item_id = result.item_id;
  envelope.content_type = request.content_type;
  envelope.ref = result.ref;
  envelope.ref->version = kv::Version{}.ToString();
  envelope.size = request.data.size();
  envelope.produced_at_ms = now;
  envelope.trace_id = result.trace_id;
  envelope.stream = request.stream;
  envelope.invoked_at_ms = request.invoked_at_ms;
  // A message must not outlive its data: subscribers that get it can read the item.
  if (ttl_ms > 0) {
    envelope.expiry_seconds =
        static_cast<uint32_t>(std::clamp<int64_t>(ttl_ms / 1000, 1, UINT32_MAX));
  }
  MqttMessage& message = prepared.message;
  message.topic = result.topic;
  message.qos = 1;
  WriteEnvelope(envelope, &message);
  const bool fits_inline = message.PacketBytes() + request.data.size() <= config_.max_packet_bytes;
  switch (request.mode) {
    case PublishRequest::Mode::kAuto:
      result.inline_data = request.data.size() <= config_.inline_max_bytes && fits_inline;
      break;
    case PublishRequest::Mode::kInline:
      if (!fits_inline) {
        return Error(Status::ResourceExhausted(
            std::to_string(request.data.size()) + " bytes and their envelope (" +
            std::to_string(message.PacketBytes()) +
            " bytes) do not fit in one message of the "
            "broker (limit " +
            std::to_string(config_.max_packet_bytes) + " bytes); publish by reference instead"));
      }
      result.inline_data = true;
      break;
    case PublishRequest::Mode::kReference:
      result.inline_data = false;
      break;
  }

  prepared.envelope = std::move(envelope);
  prepared.put.content_type = request.content_type;
  if (ttl_ms > 0) prepared.put.ttl_ms = ttl_ms;
  return prepared;
}

void ChannelPublisher::Seal(const kv::WriteResult& written, std::string_view data,
                            Prepared* prepared) {
  PublishResult& result = prepared->result;
  result.ref.version = written.version.ToString();
  result.seq = written.seq;
  prepared->envelope.ref->version = result.ref.version;
  prepared->envelope.inline_data = result.inline_data;
  prepared->message.user_properties.clear();
  WriteEnvelope(prepared->envelope, &prepared->message);
  if (result.inline_data) prepared->message.payload.assign(data);
}

Result<ChannelPublisher::Prepared> ChannelPublisher::Prepare(const PublishRequest& request) {
  auto prepared = Plan(request);
  if (!prepared) return prepared;
  // The data, durably in EKV, before its announcement.
  auto written = store_->Put(prepared->result.ref.ns, prepared->result.ref.key, request.data,
                             prepared->put);
  if (!written) return Error(std::move(written.error()));
  Seal(*written, request.data, &*prepared);
  return prepared;
}

Status ChannelPublisher::Announced(const PublishResult& result, Status published) {
  if (published.ok()) return published;
  return Status(published.code(), published.message() + "; the data is stored at " +
                                      RefPath(result.ref) + " (version " + result.ref.version +
                                      ", item id " + result.item_id +
                                      "), so publishing again is safe");
}

Result<PublishResult> ChannelPublisher::Publish(const PublishRequest& request) {
  auto prepared = Prepare(request);
  if (!prepared) return Error(std::move(prepared.error()));
  if (Status s = Announced(prepared->result,
                           mqtt_->Publish(prepared->message, config_.publish_timeout));
      !s.ok()) {
    return Error(std::move(s));
  }
  return std::move(prepared->result);
}

void ChannelPublisher::PublishAllAsync(std::span<const PublishRequest> requests,
                                       std::span<PublishCallback> done) {
  // One commit for all the data (one WAL write, not one per item), then the announcements.
  std::vector<std::optional<Prepared>> planned(requests.size());
  std::vector<kv::WriteOp> puts;
  std::vector<size_t> put_of;  // request index -> index into puts
  puts.reserve(requests.size());
  put_of.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    auto plan = Plan(requests[i]);
    put_of.push_back(puts.size());
    if (!plan) {
      done[i](Error(std::move(plan.error())));
      continue;
    }
    planned[i] = std::move(*plan);
    kv::WriteOp& put = puts.emplace_back();
    put.kind = kv::WriteOp::Kind::kPut;
    put.ns = planned[i]->result.ref.ns;
    put.key = planned[i]->result.ref.key;
    put.value = requests[i].data;
    put.put = planned[i]->put;
  }
  auto applied = store_->Apply(puts);
  for (size_t i = 0; i < requests.size(); ++i) {
    if (!planned[i]) continue;
    if (!applied) {
      done[i](Error(applied.error()));
      continue;
    }
    Result<kv::WriteResult>& written = (*applied)[put_of[i]];
    if (!written) {
      done[i](Error(std::move(written.error())));
      continue;
    }
    Seal(*written, requests[i].data, &*planned[i]);
    mqtt_->PublishAsync(planned[i]->message, config_.publish_timeout,
                        [result = std::move(planned[i]->result),
                         done = std::move(done[i])](Status s) mutable {
                          if (!s.ok()) {
                            done(Error(Announced(result, std::move(s))));
                            return;
                          }
                          done(std::move(result));
                        });
  }
}

}  // namespace edgeflow::channels
