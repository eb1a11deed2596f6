// The C++ SDK's side of the shared conformance tests (sdk/tests/sdk_conformance.py): a function
// whose input "op" selects a behaviour; sdk/tests/python/conformance_function.py does the same in
// Python, so both SDKs run the same test cases.
#include <edgeflow/function.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace fn = edgeflow::fn;

// Defined in second_translation_unit.cc: the header must link from several translation units.
std::string DescribeInvocation(const fn::Context& ctx);

namespace {

std::string Upper(std::string text) {
  for (char& c : text) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return text;
}

std::vector<std::string> Split(const std::string& text, char separator) {
  std::vector<std::string> pieces;
  std::string::size_type begin = 0;
  for (;;) {
    const auto end = text.find(separator, begin);
    pieces.push_back(text.substr(begin, end - begin));
    if (end == std::string::npos) return pieces;
    begin = end + 1;
  }
}

std::string Metadata(const std::vector<fn::Input>& inputs, const fn::Context& ctx) {
  nlohmann::json described = {
      {"item_id", ctx.item_id()},         {"stream", ctx.stream()},
      {"attempt", ctx.attempt()},         {"trace_id", ctx.trace_id()},
      {"deadline_ms", ctx.deadline_ms()}, {"invocation_id", ctx.invocation_id()}};
  described["inputs"] = nlohmann::json::array();
  for (const fn::Input& input : inputs) {
    described["inputs"].push_back({{"name", input.name},
                                   {"content_type", input.content_type},
                                   {"channel", input.channel},
                                   {"key", input.key},
                                   {"size", input.data.size()}});
  }
  return described.dump();
}

std::string Threads(fn::Context& ctx) {
  std::vector<std::string> problems(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&ctx, &problems, t] {
      const std::string key = "t" + std::to_string(t);
      for (int i = 0; i < 25; ++i) {
        ctx.info(key + " " + std::to_string(i));
        ctx.put(key, std::to_string(i));
        const auto value = ctx.get(key);
        if (value != std::to_string(i)) problems[t] = key + " read back a wrong value";
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::string& problem : problems) {
    if (!problem.empty()) return problem;
  }
  return "ok";
}

fn::Outputs Handle(const std::vector<fn::Input>& inputs, fn::Context& ctx) {
  const fn::Input* op_input = ctx.input("op");
  if (op_input == nullptr) throw fn::PermanentError("no input \"op\"");
  const std::string& op = op_input->data;
  const fn::Input* in = ctx.input("in");
  const std::string data = in != nullptr ? in->data : "";

  if (op == "echo") return {{.name = "out", .data = data, .content_type = in->content_type}};
  if (op == "upper") return {{.name = "out", .data = Upper(data)}};
  if (op == "meta") return {{.name = "out", .data = Metadata(inputs, ctx)}};
  if (op == "describe") return {{.name = "out", .data = DescribeInvocation(ctx)}};
  if (op == "parts") {
    fn::Outputs outputs;
    const std::vector<std::string> tokens = Split(data, ',');
    for (const std::string& token : tokens) {
      outputs.push_back(
          {.name = "out", .data = Upper(token), .content_type = "text/plain", .part = token});
    }
    outputs.push_back({.name = "count", .data = std::to_string(tokens.size())});
    return outputs;
  }
  if (op == "none") return {};
  if (op == "counter") {
    const long long count = std::stoll(ctx.get("count").value_or("0")) + 1;
    ctx.put("count", std::to_string(count));
    ctx.info("seen " + std::to_string(count));
    return {{.name = "out", .data = std::to_string(count)}};
  }
  if (op == "ctx") {
    ctx.put("k", data, 60000);
    const std::optional<std::string> value = ctx.get("k");
    ctx.erase("k");
    const bool gone = !ctx.get("k").has_value();
    return {{.name = "out", .data = value.value_or("<missing>")},
            {.name = "gone", .data = gone ? "yes" : "no"}};
  }
  if (op == "ctx_error_caught") {
    try {
      ctx.get("fail");
      return {{.name = "out", .data = "not refused"}};
    } catch (const fn::Error& e) {
      return {{.name = "out", .data = std::string("caught: ") + e.what()}};
    }
  }
  if (op == "ctx_error_uncaught") {
    ctx.put("fail", "x");
    return {{.name = "out", .data = "not refused"}};
  }
  if (op == "raise") throw std::runtime_error("boom: " + data);
  if (op == "permanent") throw fn::PermanentError("cannot parse: " + data);
  if (op == "print") {
    std::cout << "print line" << std::endl;
    std::printf("printf line\n");
    ssize_t ignored = ::write(STDOUT_FILENO, "write line\n", 11);
    (void)ignored;
    if (std::system("echo child line") != 0) throw std::runtime_error("system() failed");
    std::printf("tail without newline");
    return {{.name = "out", .data = "printed"}};
  }
  if (op == "read_stdin") {
    const int c = std::cin.get();
    return {{.name = "out", .data = c == EOF ? "eof" : "read something"}};
  }
  if (op == "log") {
    ctx.debug("d");
    ctx.info("i");
    ctx.warn("w");
    ctx.error("e");
    ctx.log(fn::Level::kInfo, "via log()");
    return {};
  }
  if (op == "long_log") {
    ctx.info(std::string(100 * 1024, 'x'));
    return {};
  }
  if (op == "bad_text_log") {
    ctx.warn("bad \xff bytes");
    return {};
  }
  if (op == "bad_key") {
    std::string rejections;
    for (const std::string& key : {std::string(), std::string(513, 'k'), std::string("\xff")}) {
      try {
        ctx.get(key);
        rejections += "accepted\n";
      } catch (const fn::Error& e) {
        rejections += std::string("rejected: ") + e.what() + "\n";
      }
    }
    return {{.name = "out", .data = rejections}};
  }
  if (op == "bad_part") return {{.name = "out", .data = "x", .part = "not ok!"}};
  if (op == "duplicate") return {{.name = "out", .data = "1"}, {.name = "out", .data = "2"}};
  if (op == "threads") return {{.name = "out", .data = Threads(ctx)}};
  if (op == "sleep") {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::stoll(data)));
    return {{.name = "out", .data = "slept"}};
  }
  if (op == "wait_for_file") {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (::access(data.c_str(), F_OK) != 0) {
      if (std::chrono::steady_clock::now() > give_up) {
        throw std::runtime_error("no file " + data + " after 10 s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return {{.name = "out", .data = "found"}};
  }
  if (op == "crash") std::_Exit(3);  // the process ends at once, like a crash: nothing flushed
  if (op == "too_many_outputs") {  // 30000 entries make a result header over 1 MiB
    fn::Outputs outputs;
    for (int i = 0; i < 30000; ++i) {
      outputs.push_back({.name = "out", .data = "x", .part = "part-" + std::to_string(i)});
    }
    return outputs;
  }
  throw fn::PermanentError("unknown op: " + op);
}

}  // namespace

int main() {
  if (std::getenv("EF_TEST_PRINT_BEFORE_RUN") != nullptr) {
    std::printf("early output before run()\n");  // still in stdio's buffer when run() starts
  }
  return fn::run(Handle);
}
