// A second translation unit that includes the SDK header: linking it with
// conformance_function.cc proves the header-only SDK has no ODR or multiple-definition problems.
#include <edgeflow/function.h>

#include <string>

namespace fn = edgeflow::fn;

std::string DescribeInvocation(const fn::Context& ctx) {
  return ctx.item_id() + " attempt " + std::to_string(ctx.attempt()) + " with " +
         std::to_string(ctx.inputs().size()) + " inputs";
}
