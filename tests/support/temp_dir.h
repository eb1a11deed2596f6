// TempDir: a fresh directory under $TMPDIR (or /tmp) that is removed with everything in it when
// the object goes away, so that each test gets its own data directories and leaves nothing behind.
#pragma once

#include <filesystem>
#include <string_view>

namespace edgeflow::test_support {

class TempDir {
 public:
  // Creates "<tmp>/<prefix>XXXXXX". Aborts the test binary if the directory cannot be made: no
  // test can run without one, and a silent fallback would make tests share state.
  explicit TempDir(std::string_view prefix = "edgeflow-test-");
  ~TempDir();

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // A path inside the directory (not created).
  std::filesystem::path Sub(std::string_view name) const { return path_ / name; }

  // Keeps the directory on disk after destruction, e.g. to look at a failed test's data.
  void Keep() { keep_ = true; }

 private:
  std::filesystem::path path_;
  bool keep_ = false;
};

}  // namespace edgeflow::test_support
