// An edge function: upper-cases its input "in" and counts the items it has seen (in the
// node-kept context). Try it (after building): /usr/bin/python3 sdk/tests/protocol_harness.py
// --invoke in=hello --times 2 -- build/sdk/sdk_example_uppercase
#include <edgeflow/function.h>

#include <cctype>
#include <string>

namespace fn = edgeflow::fn;

int main() {
  return fn::run([](const std::vector<fn::Input>&, fn::Context& ctx) {
    const fn::Input* in = ctx.input("in");
    if (in == nullptr) throw fn::PermanentError("no input \"in\"");
    const long long count = std::stoll(ctx.get("count").value_or("0")) + 1;
    ctx.put("count", std::to_string(count));
    ctx.info("seen " + std::to_string(count));
    std::string text = in->data;
    for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return fn::Outputs{{.name = "out", .data = text, .content_type = "text/plain"}};
  });
}
