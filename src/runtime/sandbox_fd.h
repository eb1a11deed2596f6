// UniqueFd: the one owner of a file descriptor, closed when the owner goes away; MakePipe, which
// makes a pipe whose ends are both close-on-exec; and ReadWholeFile for the small files of /proc,
// /sys and the bundles (plain read(2): std::ifstream throws when a /proc file's process goes away
// while it is read).
//
// Every descriptor made here is moved above 0..2 first: when the node runs with a standard stream
// closed, pipe2() can return 0, 1 or 2, and a child that dup2()s its pipe ends onto 0, 1 and 2
// would then overwrite one end with another.
#pragma once

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "common/status.h"

namespace edgeflow::runtime {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Takes ownership of `fd` and returns it as a close-on-exec descriptor numbered 3 or above.
inline UniqueFd AboveStdio(int fd) {
  UniqueFd owned(fd);
  if (fd < 0 || fd > 2) return owned;
  return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 3));  // `owned` closes the low number
}

// A pidfd for `pid` (Linux >= 5.3), or an invalid UniqueFd with errno set. Through syscall():
// glibc 2.36's <sys/pidfd.h> declares pidfd_open without C linkage for C++.
inline UniqueFd OpenPidfd(pid_t pid) {
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

struct PipeFds {
  UniqueFd read;
  UniqueFd write;
};

// A pipe with both ends close-on-exec (a child gets its end through dup2, which clears the flag).
inline Result<PipeFds> MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return Error(Status::IoError(std::string("cannot create a pipe: ") + std::strerror(errno)));
  }
  PipeFds pipe{AboveStdio(fds[0]), AboveStdio(fds[1])};
  if (!pipe.read.valid() || !pipe.write.valid()) {
    return Error(Status::IoError(std::string("cannot move a pipe above the standard streams: ") +
                                 std::strerror(errno)));
  }
  return pipe;
}

// The content of `path`, or "" if it cannot be read (a missing file reads as empty).
inline std::string ReadWholeFile(const std::filesystem::path& path) {
  std::string text;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return text;
  char buffer[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  return text;
}

}  // namespace edgeflow::runtime
