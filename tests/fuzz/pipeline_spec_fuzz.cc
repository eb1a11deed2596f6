// Fuzzes pipeline spec parsing: specs come from users (edgeflow deploy), so any text must give a
// spec or a list of problems, never a crash; parsing is deterministic, and every problem says
// what is wrong.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "runtime/pipeline_spec_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeflow::runtime;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const SpecParseResult first = ParsePipelineSpec(text);
  for (const SpecProblem& problem : first.problems) {
    if (problem.message.empty() || problem.line < 0 || problem.column < 0) std::abort();
  }
  if (first.ok() != first.ToStatus("spec").ok()) std::abort();
  const SpecParseResult second = ParsePipelineSpec(text);
  if (second.problems.size() != first.problems.size()) std::abort();
  if (first.ok() && (first.spec.functions.size() != second.spec.functions.size() ||
                     first.spec.functions.empty())) {
    std::abort();
  }
  return 0;
}
