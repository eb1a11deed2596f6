#include "cli/cli_input.h"

#include <fstream>
#include <iterator>

namespace edgeflow::cli {
namespace {

Result<std::string> ReadAll(std::FILE* file) {
  std::string data;
  char buf[64 << 10];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), file)) > 0) data.append(buf, n);
  if (std::ferror(file)) return Error(Status::IoError("cannot read standard input"));
  return data;
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(Status::InvalidArgument("cannot open '" + path + "' for reading"));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Error(Status::IoError("cannot read '" + path + "'"));
  return data;
}

}  // namespace

Result<std::string> ReadInputValue(const std::optional<std::string>& value,
                                   const std::string& file) {
  if (!file.empty() && value) {
    return Error(
        Status::InvalidArgument("give the value either as an argument or with -f, not both"));
  }
  if (!file.empty()) return ReadFile(file);
  if (value && *value == "-") return ReadAll(stdin);
  if (value) return *value;
  return Error(
      Status::InvalidArgument("no value: give VALUE, '-' to read standard input, or -f FILE"));
}

int ReportFailure(std::FILE* err, const Status& status) {
  std::fprintf(err, "edgeflow: %s\n", status.message().c_str());
  if (status.Is(ErrorCode::kUnavailable)) return kExitUnavailable;
  if (status.Is(ErrorCode::kInvalidArgument) || status.Is(ErrorCode::kIoError)) return kExitUsage;
  return kExitRefused;
}

int ReportRefusal(std::FILE* err, const Status& status) {
  std::fprintf(err, "edgeflow: %s\n", status.message().c_str());
  // A node that cannot serve the request now (503: channels off, broker down) is "unavailable",
  // like one that cannot be reached; every other refusal is final.
  return status.Is(ErrorCode::kUnavailable) ? kExitUnavailable : kExitRefused;
}

}  // namespace edgeflow::cli
