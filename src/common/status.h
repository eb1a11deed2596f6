// Status and Result<T>: the error type at every component boundary.
//
// A Status is either OK or an error code with a human-readable message that can be shown to the
// user as is. Result<T> is std::expected<T, Status>. Both are [[nodiscard]]; an error that is
// deliberately dropped is written `status.IgnoreError()` so that it can be searched for.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace edgeflow {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,     // the caller sent something malformed (bad name, bad option)
  kNotFound,            // the key, namespace or resource does not exist
  kAlreadyExists,       // create-only write on an existing key
  kFailedPrecondition,  // a conditional write whose condition did not hold (CAS, NX/XX)
  kResourceExhausted,   // a configured size limit was exceeded
  kOutOfRange,          // e.g. a change-log position that was trimmed away
  kUnavailable,         // the component is stopped or a dependency is not reachable
  kIoError,             // the operating system or the storage engine failed
  kCorruption,          // stored bytes do not decode
  kDeadlineExceeded,    // an operation did not finish in its time limit
  kInternal,            // a bug: an invariant did not hold
};

std::string_view ErrorCodeName(ErrorCode code);
// The code named `name` ("NOT_FOUND", as ErrorCodeName gives it), or kInternal for unknown names.
ErrorCode ErrorCodeFromName(std::string_view name);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {ErrorCode::kAlreadyExists, std::move(m)}; }
  static Status FailedPrecondition(std::string m) {
    return {ErrorCode::kFailedPrecondition, std::move(m)};
  }
  static Status ResourceExhausted(std::string m) {
    return {ErrorCode::kResourceExhausted, std::move(m)};
  }
  static Status OutOfRange(std::string m) { return {ErrorCode::kOutOfRange, std::move(m)}; }
  static Status Unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
  static Status IoError(std::string m) { return {ErrorCode::kIoError, std::move(m)}; }
  static Status Corruption(std::string m) { return {ErrorCode::kCorruption, std::move(m)}; }
  static Status DeadlineExceeded(std::string m) {
    return {ErrorCode::kDeadlineExceeded, std::move(m)};
  }
  static Status Internal(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  bool Is(ErrorCode code) const { return code_ == code; }

  // "NOT_FOUND: key 'a' does not exist"
  std::string ToString() const;

  // Marks a deliberately ignored error; greppable.
  void IgnoreError() const {}

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

template <typename T>
using Result = std::expected<T, Status>;

// Builds the error side of a Result: `return Error(Status::NotFound("..."));`
inline std::unexpected<Status> Error(Status s) { return std::unexpected<Status>(std::move(s)); }

}  // namespace edgeflow

// Propagates an error Status from an expression returning Status.
#define EF_RETURN_IF_ERROR(expr)                 \
  do {                                           \
    ::edgeflow::Status ef_status_ = (expr);      \
    if (!ef_status_.ok()) return ef_status_;     \
  } while (false)
