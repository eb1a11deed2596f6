// The edge function of bench/function_latency: returns its input "in" unchanged on output "out"
// (same item id, same content type). Built by the script with the C++ SDK:
//   g++ -O2 -std=c++23 -I sdk/cpp/include bench/function_latency_echo.cc -o echo
#include <edgeflow/function.h>

namespace fn = edgeflow::fn;

int main() {
  return fn::run([](const std::vector<fn::Input>&, fn::Context& ctx) {
    const fn::Input* in = ctx.input("in");
    if (in == nullptr) throw fn::PermanentError("no input \"in\"");
    return fn::Outputs{{.name = "out", .data = in->data, .content_type = in->content_type}};
  });
}
