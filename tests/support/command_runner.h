// RunCommand: runs a program to completion (bounded by a timeout) and returns its exit status and
// output, for tests that drive command-line tools (the CLI, redis-cli, the daemon's start-up
// errors).
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "support/child_process.h"

namespace edgeflow::test_support {

struct CommandOptions {
  std::string stdin_data;
  // The command is stopped (SIGTERM, then SIGKILL) when it runs longer than this; `timed_out`
  // then tells. Long-running commands such as `watch` are run this way on purpose.
  std::chrono::milliseconds timeout{std::chrono::seconds(20)};
  std::filesystem::path cwd;
};

struct CommandResult {
  ExitStatus status;
  bool timed_out = false;
  bool spawn_failed = false;  // the program could not be started; `err` says why
  std::string out;
  std::string err;

  int exit_code() const { return status.exit_code; }
  // Everything about the run, for test failure messages.
  std::string Describe() const;
};

CommandResult RunCommand(const std::string& program, const std::vector<std::string>& args,
                         const CommandOptions& options = {});

// Splits text into lines without their terminators; a final line without '\n' is kept.
std::vector<std::string> SplitLines(const std::string& text);

}  // namespace edgeflow::test_support
