// SseClient: reads a Server-Sent Events stream (GET /v1/watch/...) for tests, one event at a time,
// with a deadline on every wait. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "support/http_client.h"

namespace edgeflow::test_support {

struct SseEvent {
  std::string id;
  std::string event;  // "message" if the server named none
  std::string data;   // data lines joined with '\n'
};

class SseClient {
 public:
  SseClient();
  ~SseClient();
  SseClient(const SseClient&) = delete;
  SseClient& operator=(const SseClient&) = delete;

  // Sends the GET and reads the response header. A non-200 answer is returned as an error whose
  // message has the status and body.
  Status Open(const std::string& host, uint16_t port, std::string_view target,
              std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Waits until `count` events have arrived in total (since Open) or the timeout passes, and
  // returns every event received so far. After a timeout or a closed stream the client is closed.
  std::vector<SseEvent> WaitForEvents(size_t count, std::chrono::milliseconds timeout);
  void Close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgeflow::test_support
