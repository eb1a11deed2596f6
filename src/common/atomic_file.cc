#include "common/atomic_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

namespace edgeflow {

Status WriteFileAtomically(const std::filesystem::path& path, std::string_view text) {
  std::filesystem::path temporary = path;
  temporary += ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();  // errors of the final flush show only after close
    if (!out) {
      return Status::IoError("cannot write '" + temporary.string() + "': " + std::strerror(errno));
    }
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  if (ec) {
    return Status::IoError("cannot rename '" + temporary.string() + "' to '" + path.string() +
                           "': " + ec.message());
  }
  return Status::Ok();
}

}  // namespace edgeflow
