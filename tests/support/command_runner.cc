#include "support/command_runner.h"

namespace edgeflow::test_support {

std::string CommandResult::Describe() const {
  if (spawn_failed) return "could not start: " + err;
  std::string text = status.ToString();
  if (timed_out) text += " (stopped after the timeout)";
  text += "\n--- stdout ---\n" + out + "\n--- stderr ---\n" + err;
  return text;
}

CommandResult RunCommand(const std::string& program, const std::vector<std::string>& args,
                         const CommandOptions& options) {
  CommandResult result;
  ChildOptions child_options;
  child_options.cwd = options.cwd;
  child_options.stdin_data = options.stdin_data;
  auto child = ChildProcess::Spawn(program, args, child_options);
  if (!child.has_value()) {
    result.spawn_failed = true;
    result.err = child.error().ToString();
    return result;
  }
  result.status = (*child)->Finish(options.timeout, &result.timed_out);
  result.out = (*child)->Stdout();
  result.err = (*child)->Stderr();
  return result;
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

}  // namespace edgeflow::test_support
