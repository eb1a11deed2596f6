#include "cli/sensor_command.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "channels/channel_name.h"
#include "channels/mqtt_client.h"
#include "cli/cli_input.h"
#include "common/host_port.h"
#include "fanout/sensor_quality.h"
#include "fanout/sensor_sender.h"

namespace edgeflow::cli {
namespace {

using fanout::SensorCounters;
using Clock = std::chrono::steady_clock;

// After subscribing, how long to wait for the retained quality before sending starts (the
// broker sends it right after the subscription is acknowledged; without one, this is the cost).
constexpr std::chrono::milliseconds kRetainedQualityWait{500};
// How often the main thread looks whether the sender finished (it otherwise waits for signals).
constexpr std::chrono::milliseconds kPollInterval{50};
constexpr std::chrono::seconds kFinalReportTimeout{2};

// SIGINT and SIGTERM are blocked in the command's thread before any other thread starts (threads
// inherit the mask), and taken with sigtimedwait: a signal never lands on the MQTT or sending
// thread, and always ends in a clean stop with the summary. They stay blocked: the process ends
// after the command.
sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// A stop signal that arrived within `timeout`, or 0.
int WaitForSignal(const sigset_t& set, std::chrono::milliseconds timeout) {
  timespec wait{};
  wait.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  wait.tv_nsec = static_cast<long>((timeout.count() % 1000) * 1'000'000);
  const int signo = sigtimedwait(&set, nullptr, &wait);
  return signo > 0 ? signo : 0;
}

const char* ClassName(size_t klass) {
  switch (klass) {
    case EF_CLASS_REFERENCE:
      return "reference";
    case EF_CLASS_DIFFERENTIAL:
      return "differential";
    case EF_CLASS_OTHER:
      return "other";
    default:
      return "unknown";
  }
}

nlohmann::json ByClass(const std::array<uint64_t, EF_CLASS_COUNT>& counts, uint64_t unit) {
  nlohmann::json out = nlohmann::json::object();
  uint64_t total = 0;
  for (size_t k = 0; k < EF_CLASS_COUNT; ++k) {
    out[ClassName(k)] = counts[k] * unit;
    total += counts[k] * unit;
  }
  out["total"] = total;
  return out;
}

// What the control channel brought so far (written on the MQTT thread).
struct ControlState {
  std::mutex mu;
  std::condition_variable arrived;
  uint64_t messages = 0;
  uint64_t rejected = 0;
  std::string last_error;
};

// Parses "--loop N": a positive whole number.
Result<uint64_t> ParseLoops(const SensorArgs& args) {
  if (!args.loop) return 1;
  if (args.loop_count.empty()) return 0;  // until stopped
  uint64_t loops = 0;
  const char* end = args.loop_count.data() + args.loop_count.size();
  const auto [at, ec] = std::from_chars(args.loop_count.data(), end, loops);
  if (ec != std::errc() || at != end || loops == 0) {
    return Error(Status::InvalidArgument("--loop takes a number of passes >= 1, not \"" +
                                         args.loop_count + "\""));
  }
  return loops;
}

class Reporter {
 public:
  Reporter(const SensorArgs& args, const fanout::SensorSender* sender, ControlState* control,
           channels::MqttClient* mqtt, std::string report_topic, std::FILE* out, std::FILE* err)
      : args_(args),
        sender_(sender),
        control_(control),
        mqtt_(mqtt),
        report_topic_(std::move(report_topic)),
        out_(out),
        err_(err),
        start_(Clock::now()),
        last_at_(start_) {}

  // One report: published on the report channel, and printed (a JSON line on stdout with
  // --json or when final, a human line on stderr otherwise).
  void Report(bool final) {
    const Clock::time_point now = Clock::now();
    const SensorCounters counters = sender_->counters();
    const ef_consumer_policy quality = sender_->quality();
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    // The rate over the interval; the final report's is over the whole run.
    const double span = final ? elapsed : std::chrono::duration<double>(now - last_at_).count();
    const uint64_t span_bytes = final ? counters.bytes_sent : counters.bytes_sent - last_bytes_;
    const double bits_per_second = span > 0 ? 8.0 * static_cast<double>(span_bytes) / span : 0;
    last_at_ = now;
    last_bytes_ = counters.bytes_sent;

    nlohmann::json report = {
        {"sensor", args_.id},
        {"final", final},
        {"at_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count()},
        {"elapsed_s", std::round(elapsed * 1000) / 1000},
        {"destination", sender_->destination()},
        {"quality", {{"keep", fanout::KeepText(quality)}, {"mode", fanout::DropModeName(quality)}}},
        {"passes", counters.passes},
        {"datagrams",
         {{"sent", counters.datagrams_sent}, {"suppressed", counters.datagrams_suppressed}}},
        {"packets",
         {{"sent", ByClass(counters.packets_sent, 1)},
          {"suppressed", ByClass(counters.packets_suppressed, 1)}}},
        {"bytes",
         {{"sent", ByClass(counters.packets_sent, EF_TS_PACKET_BYTES)},
          {"suppressed", ByClass(counters.packets_suppressed, EF_TS_PACKET_BYTES)}}},
        {"bits_per_second", std::llround(bits_per_second)},
        {"send_errors", counters.send_errors},
        {"late_datagrams", counters.late_datagrams},
        {"skipped_bytes", counters.skipped_bytes},
        {"pcrs", counters.pcrs},
        {"timeline_breaks", counters.timeline_breaks},
        {"quality_changes", counters.quality_changes},
    };
    if (control_ != nullptr) {
      std::lock_guard lock(control_->mu);
      report["control"] = {{"messages", control_->messages}, {"rejected", control_->rejected}};
      if (!control_->last_error.empty()) report["control"]["last_error"] = control_->last_error;
    }
    // Replace, not throw, should a text from the network ever hold invalid UTF-8.
    const std::string text = report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (mqtt_ != nullptr && mqtt_->connected()) {
      channels::MqttMessage message;
      message.topic = report_topic_;
      message.payload = text;
      message.content_type = "application/json";
      // The last report is acknowledged before the connection closes; the others may be lost.
      message.qos = final ? 1 : 0;
      mqtt_->Publish(message, kFinalReportTimeout).IgnoreError();  // reporting is best effort
    }
    if (final || args_.json) {
      std::fprintf(out_, "%s\n", text.c_str());
      std::fflush(out_);
    } else {
      const uint64_t differential = counters.packets_sent[EF_CLASS_DIFFERENTIAL] +
                                    counters.packets_suppressed[EF_CLASS_DIFFERENTIAL];
      const double suppressed_share =
          differential > 0 ? 100.0 * static_cast<double>(
                                         counters.packets_suppressed[EF_CLASS_DIFFERENTIAL]) /
                                 static_cast<double>(differential)
                           : 0;
      std::fprintf(err_,
                   "%s: %.1f s, %.2f Mbit/s, %llu datagrams, keep %s %s: %.0f%% of differential "
                   "packets suppressed, %llu late, %llu send errors\n",
                   args_.id.c_str(), elapsed, bits_per_second / 1e6,
                   static_cast<unsigned long long>(counters.datagrams_sent),
                   fanout::KeepText(quality).c_str(),
                   std::string(fanout::DropModeName(quality)).c_str(), suppressed_share,
                   static_cast<unsigned long long>(counters.late_datagrams),
                   static_cast<unsigned long long>(counters.send_errors));
    }
  }

 private:
  const SensorArgs& args_;
  const fanout::SensorSender* sender_;
  ControlState* control_;
  channels::MqttClient* mqtt_;
  const std::string report_topic_;
  std::FILE* out_;
  std::FILE* err_;
  const Clock::time_point start_;
  Clock::time_point last_at_;
  uint64_t last_bytes_ = 0;
};

}  // namespace

int SensorCommand::Run(const SensorArgs& args) {
  // Options.
  if (args.id.find('/') != std::string::npos) {
    return ReportFailure(err_, Status::InvalidArgument("sensor id \"" + args.id +
                                                       "\": one channel segment, without '/'"));
  }
  const std::string quality_channel = "_fanout/" + args.id + "/quality";
  const std::string report_channel = "_fanout/" + args.id + "/report";
  if (Status s = channels::ValidateChannelName(quality_channel); !s.ok()) {
    return ReportFailure(err_, Status::InvalidArgument("sensor id \"" + args.id + "\": " +
                                                       s.message()));
  }
  auto destination = ParseHostPort(args.to);
  if (!destination) return ReportFailure(err_, destination.error());
  auto loops = ParseLoops(args);
  if (!loops) return ReportFailure(err_, loops.error());
  if (!std::isfinite(args.report_interval_seconds) || args.report_interval_seconds <= 0) {
    return ReportFailure(err_, Status::InvalidArgument("--report-interval must be > 0 seconds"));
  }
  ef_consumer_policy initial = fanout::FullQuality();
  if (Status s = fanout::ParseKeepFraction(args.keep, &initial); !s.ok()) {
    return ReportFailure(err_, s);
  }
  if (Status s = fanout::ParseDropMode(args.mode, &initial); !s.ok()) {
    return ReportFailure(err_, s);
  }

  fanout::SensorSenderOptions options;
  options.ts_file = args.ts_file;
  options.destination = *destination;
  options.speed = args.speed;
  options.loops = *loops;
  options.duration = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(args.duration_seconds));
  options.quality = initial;
  auto created = fanout::SensorSender::Create(std::move(options));
  if (!created) return ReportFailure(err_, created.error());
  fanout::SensorSender& sender = **created;

  // Where the control channel is. Asking the node may take up to --timeout; a signal meanwhile
  // ends the process as usual, since nothing was sent yet.
  HostPort broker;
  std::string tenant = args.tenant;
  if (args.control) {
    if (!args.mqtt.empty()) {
      auto given = ParseHostPort(args.mqtt);
      if (!given) return ReportFailure(err_, given.error());
      broker = *given;
      if (tenant.empty()) tenant = "default";
    } else {
      auto info = node_->Channels();
      if (!info) {
        const int code = ReportFailure(err_, info.error());
        std::fprintf(err_,
                     "edgeflow: the node names the control channel's MQTT broker; give it with "
                     "--mqtt, or send without a control channel with --no-control\n");
        return code;
      }
      broker = info->mqtt;
      if (tenant.empty()) tenant = info->tenant;
    }
    if (Status s = channels::ValidateTenant(tenant); !s.ok()) return ReportFailure(err_, s);
  }

  // Before any thread starts: see BlockStopSignals.
  const sigset_t stop_signals = BlockStopSignals();

  // The control channel.
  ControlState control;
  std::unique_ptr<channels::MqttClient> mqtt;
  std::string report_topic;
  if (args.control) {
    const std::string quality_topic = channels::ChannelTopic(tenant, quality_channel);
    report_topic = channels::ChannelTopic(tenant, report_channel);
    channels::MqttClientOptions mqtt_options;
    mqtt_options.broker = broker;
    auto client = channels::MqttClient::Create(std::move(mqtt_options));
    if (!client) return ReportFailure(err_, client.error());
    mqtt = std::move(*client);
    mqtt->SetMessageHandler([&, quality_topic, initial](const channels::MqttMessage& message) {
      if (message.topic != quality_topic) return;
      std::string outcome;
      bool rejected = false;
      if (message.payload.empty()) {
        // The retained quality was cleared: back to what the command line said.
        sender.SetQuality(initial);
        outcome = "quality withdrawn on the control channel: back to keep " +
                  fanout::KeepText(initial) + " " + std::string(fanout::DropModeName(initial));
      } else if (auto quality = fanout::ParseSensorQuality(message.payload)) {
        sender.SetQuality(*quality);
        outcome = "quality from the control channel: keep " + fanout::KeepText(*quality) + " " +
                  std::string(fanout::DropModeName(*quality));
      } else {
        rejected = true;
        outcome = quality.error().message();
      }
      std::fprintf(err_, "edgeflow sensor %s: %s%s\n", args.id.c_str(),
                   rejected ? "ignored a quality message: " : "", outcome.c_str());
      std::lock_guard lock(control.mu);
      ++control.messages;
      if (rejected) {
        ++control.rejected;
        control.last_error = outcome;
      }
      control.arrived.notify_all();
    });
    if (Status s = mqtt->Start(); !s.ok()) return ReportFailure(err_, s);
    // Waits in slices, so that a stop signal during start-up still ends the command at once
    // (with the summary, of nothing sent).
    const Clock::time_point give_up = Clock::now() + timeout_;
    bool interrupted = false;
    while (!interrupted && !mqtt->WaitConnected(kPollInterval)) {
      interrupted = WaitForSignal(stop_signals, std::chrono::milliseconds(0)) != 0;
      if (Clock::now() >= give_up) {
        mqtt->Stop();
        return ReportFailure(err_, Status::Unavailable("cannot connect to the MQTT broker at " +
                                                       broker.ToString()));
      }
    }
    if (interrupted) {
      sender.Stop();
    } else {
      if (Status s = mqtt->Subscribe(quality_topic, 1, timeout_); !s.ok()) {
        mqtt->Stop();
        return ReportFailure(err_, s);
      }
      std::unique_lock lock(control.mu);
      control.arrived.wait_for(lock, kRetainedQualityWait, [&] { return control.messages > 0; });
    }
  }

  // Sending runs on its own thread; this one takes the stop signals and reports.
  Reporter reporter(args, &sender, args.control ? &control : nullptr, mqtt.get(), report_topic,
                    out_, err_);
  std::atomic<bool> finished{false};
  Status outcome;
  std::thread sending([&] {
    outcome = sender.Run();
    finished.store(true, std::memory_order_release);
  });
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(args.report_interval_seconds));
  Clock::time_point next_report = Clock::now() + interval;
  while (!finished.load(std::memory_order_acquire)) {
    const auto until_report =
        std::chrono::duration_cast<std::chrono::milliseconds>(next_report - Clock::now());
    const int signo = WaitForSignal(
        stop_signals, std::clamp(until_report, std::chrono::milliseconds(0), kPollInterval));
    if (signo != 0) {
      std::fprintf(err_, "edgeflow sensor %s: %s, stopping\n", args.id.c_str(),
                   signo == SIGINT ? "interrupted" : "terminated");
      sender.Stop();
    }
    if (Clock::now() >= next_report && !finished.load(std::memory_order_acquire)) {
      reporter.Report(/*final=*/false);
      next_report += interval;
      // After a stall, the next report is an interval away rather than a burst of them.
      if (next_report <= Clock::now()) next_report = Clock::now() + interval;
    }
  }
  sending.join();
  reporter.Report(/*final=*/true);
  if (mqtt) mqtt->Stop();
  if (!outcome.ok()) return ReportFailure(err_, outcome);
  return kExitOk;
}

}  // namespace edgeflow::cli
