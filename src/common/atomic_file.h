// Writing a file so that readers see either the old content or the whole new one, never a part:
// the text goes to "<path>.tmp", which is then renamed over `path`.
#pragma once

#include <filesystem>
#include <string_view>

#include "common/status.h"

namespace edgeflow {

Status WriteFileAtomically(const std::filesystem::path& path, std::string_view text);

}  // namespace edgeflow
