// Running the command-line tools the sandboxes are built with (bwrap, runc, umoci, skopeo): where
// they are installed, and one run to completion with the output captured, so that a failure can
// be reported with the tool's own words ("umoci unpack failed (exit status 1): ...").
//
// Thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace edgeflow::runtime {

// The absolute path of the tool `name` in the system directories (/usr/local/sbin,
// /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin; not the node's PATH, which a deployment
// cannot vouch for), or NotFound naming the Debian package that provides it.
Result<std::string> FindTool(std::string_view name, std::string_view debian_package);

struct ToolResult {
  int wait_status = 0;     // raw, as waitpid gives it
  std::string out;         // stdout (at most 1 MiB is kept)
  std::string err;         // stderr (at most 1 MiB is kept)
  bool succeeded() const;  // exited with status 0
};

// Runs `program args...` with stdin from /dev/null, the system PATH, and the node's HOME and
// TMPDIR, and waits for it at most `timeout` (then kills its process group and fails).
Result<ToolResult> RunTool(const std::string& program, const std::vector<std::string>& args,
                           std::chrono::milliseconds timeout);

// RunTool, and an error unless the tool exited with status 0. `what` names the action for the
// message ("umoci unpack"); the message ends with the tool's stderr (or stdout) trimmed.
Result<ToolResult> RunToolChecked(std::string_view what, const std::string& program,
                                  const std::vector<std::string>& args,
                                  std::chrono::milliseconds timeout);

// The last `max_chars` characters of `text` without surrounding blank space, for messages.
std::string TrimForMessage(std::string_view text, size_t max_chars = 2000);

}  // namespace edgeflow::runtime
