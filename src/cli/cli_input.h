// What the CLI's commands share: reading the data a command sends, and exit codes.
#pragma once

#include <cstdio>
#include <optional>
#include <string>

#include "common/status.h"

namespace edgeflow::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;
inline constexpr int kExitUnavailable = 2;
inline constexpr int kExitUsage = 64;

// The data of a write: `value` as given, standard input when it is "-", or the contents of
// `file`. InvalidArgument when both or neither are given, IoError when reading fails.
Result<std::string> ReadInputValue(const std::optional<std::string>& value,
                                   const std::string& file);

// Prints "edgeflow: <message>" to `err` and returns the exit status for `status`: 2 when the
// server could not be reached, 64 for bad usage and unreadable input, 1 otherwise.
int ReportFailure(std::FILE* err, const Status& status);

// Prints "edgeflow: <message>" for an error the node answered with and returns 1 (it refused the
// request: the usage was fine, the node said no), or 2 when it is unavailable (503).
int ReportRefusal(std::FILE* err, const Status& status);

}  // namespace edgeflow::cli
