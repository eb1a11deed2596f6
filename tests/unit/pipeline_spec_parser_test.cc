#include "runtime/pipeline_spec_parser.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgeflow::runtime {
namespace {

using std::chrono::milliseconds;
using Pairs = std::vector<std::pair<std::string, std::string>>;

// Every problem, one a line, for failure messages (formatted here, not by ToString, so that a
// broken ToString does not hide what the parser found).
std::string Describe(const SpecParseResult& result) {
  std::string out = std::to_string(result.problems.size()) + " problem(s):";
  for (const SpecProblem& p : result.problems) {
    out += "\n  " + std::to_string(p.line) + ":" + std::to_string(p.column) + ": [" + p.path +
           "] " + p.message;
  }
  return out;
}

// `path` is `prefix` or a key or list element below it ("" is above everything).
bool PathIsUnder(std::string_view path, std::string_view prefix) {
  if (prefix.empty() || path == prefix) return true;
  return path.size() > prefix.size() && path.starts_with(prefix) &&
         (path[prefix.size()] == '.' || path[prefix.size()] == '[');
}

// What the user reads of a problem besides its place.
std::string Text(const SpecProblem& p) { return p.path + ": " + p.message; }

// The problems at or below `path_prefix` whose path and message mention `needle`.
std::vector<SpecProblem> ProblemsAt(const SpecParseResult& result, std::string_view path_prefix,
                                    std::string_view needle = "") {
  std::vector<SpecProblem> found;
  for (const SpecProblem& p : result.problems) {
    if (PathIsUnder(p.path, path_prefix) && Text(p).find(needle) != std::string::npos) {
      found.push_back(p);
    }
  }
  return found;
}

// A spec of pipeline "p" with the one function "f" whose body is `body` ('\n'-separated lines,
// indented here), so that the body's first line is line 4:
//   1 pipeline: p
//   2 functions:
//   3   f:
//   4     <first body line>
std::string OneFunction(std::string_view body) {
  std::string yaml = "pipeline: p\nfunctions:\n  f:\n";
  size_t start = 0;
  while (start < body.size()) {
    size_t end = body.find('\n', start);
    if (end == std::string_view::npos) end = body.size();
    yaml += "    ";
    yaml += body.substr(start, end - start);
    yaml += "\n";
    start = end + 1;
  }
  return yaml;
}

// ---------------------------------------------------------------------------------------------
// Valid specs.

TEST(PipelineSpecParserTest, FullSpecParsesIntoExactValues) {
  const std::string yaml =
      "pipeline: face-augment\n"                                                // 1
      "functions:\n"                                                            // 2
      "  detect:\n"                                                             // 3
      "    code: ./detect\n"                                                    // 4
      "    command: [python3, detect.py, --fast]\n"                             // 5
      "    sandbox: oci\n"                                                      // 6
      "    network: true\n"                                                     // 7
      "    env: {MODEL: small, THREADS: \"4\"}\n"                               // 8
      "    inputs: {frame: cams/front, box: cams/front-meta}\n"                 // 9
      "    outputs: {stats: stats/detect, faces: faces/front}\n"                // 10
      "    join: {window_ms: 2500}\n"                                           // 11
      "    concurrency: {min: 2, max: 4}\n"                                     // 12
      "    limits: {memory_mb: 512, cpus: 1.5, pids: 128, timeout_ms: 5000,\n"  // 13
      "             max_payload_bytes: 1048576}\n"                              // 14
      "    retry: {attempts: 5, backoff_ms: 250, backoff_max_ms: 8000}\n"       // 15
      "    dead_letter: dead/detect\n"                                          // 16
      "    dedupe_window_ms: 30000\n"                                           // 17
      "    context: {per_key: true}\n"                                          // 18
      "    allow_cycle: true\n"                                                 // 19
      "  blur:\n"                                                               // 20
      "    image: ./blur.tar\n"                                                 // 21
      "    command: [/bin/blur]\n"                                              // 22
      "    sandbox: process\n"                                                  // 23
      "    inputs: {faces: faces/front}\n"                                      // 24
      "    outputs: {blurred: blurred/front}\n"                                 // 25
      "  archive:\n"                                                            // 26
      "    code: /opt/archive\n"                                                // 27
      "    command:\n"                                                          // 28
      "      - /bin/sh\n"                                                       // 29
      "      - -c\n"                                                            // 30
      "      - cat > /dev/null\n"                                               // 31
      "    sandbox: bwrap\n"                                                    // 32
      "    network: false\n"                                                    // 33
      "    env:\n"                                                              // 34
      "      LEVEL: \"9\"\n"                                                    // 35
      "    inputs:\n"                                                           // 36
      "      faces: faces/front\n"                                              // 37
      "      stats: stats/detect\n";                                            // 38
  SpecParseResult result = ParsePipelineSpec(yaml);
  ASSERT_TRUE(result.ok()) << Describe(result);
  const PipelineSpec& spec = result.spec;
  EXPECT_EQ(spec.name, "face-augment");
  // Functions keep the order of the spec (not sorted by name).
  ASSERT_EQ(spec.functions.size(), 3u);
  EXPECT_EQ(spec.functions[0].name, "detect");
  EXPECT_EQ(spec.functions[1].name, "blur");
  EXPECT_EQ(spec.functions[2].name, "archive");

  const FunctionSpec* detect = spec.Find("detect");
  ASSERT_NE(detect, nullptr);
  EXPECT_EQ(detect->line, 3);
  EXPECT_EQ(detect->code_dir, "./detect");
  EXPECT_EQ(detect->image, "");
  EXPECT_EQ(detect->command, (std::vector<std::string>{"python3", "detect.py", "--fast"}));
  EXPECT_EQ(detect->sandbox, SandboxKind::kOci);
  EXPECT_TRUE(detect->network);
  EXPECT_EQ(detect->env,
            (std::map<std::string, std::string>{{"MODEL", "small"}, {"THREADS", "4"}}));
  // Inputs and outputs keep the order of the spec.
  EXPECT_EQ(detect->inputs, (Pairs{{"frame", "cams/front"}, {"box", "cams/front-meta"}}));
  EXPECT_EQ(detect->outputs, (Pairs{{"stats", "stats/detect"}, {"faces", "faces/front"}}));
  EXPECT_EQ(detect->join_window, milliseconds(2500));
  EXPECT_EQ(detect->min_workers, 2u);
  EXPECT_EQ(detect->max_workers, 4u);
  EXPECT_EQ(detect->limits.memory_bytes, uint64_t{512} << 20);
  EXPECT_DOUBLE_EQ(detect->limits.cpus, 1.5);
  EXPECT_EQ(detect->limits.pids, 128u);
  EXPECT_EQ(detect->limits.timeout, milliseconds(5000));
  EXPECT_EQ(detect->limits.max_payload_bytes, 1048576u);
  EXPECT_EQ(detect->retry.attempts, 5u);
  EXPECT_EQ(detect->retry.backoff, milliseconds(250));
  EXPECT_EQ(detect->retry.backoff_max, milliseconds(8000));
  EXPECT_EQ(detect->dead_letter_channel, "dead/detect");
  EXPECT_EQ(detect->dedupe_window, milliseconds(30000));
  EXPECT_TRUE(detect->context_per_key);
  EXPECT_TRUE(detect->allow_cycle);

  const FunctionSpec* blur = spec.Find("blur");
  ASSERT_NE(blur, nullptr);
  EXPECT_EQ(blur->line, 20);
  EXPECT_EQ(blur->code_dir, "");
  EXPECT_EQ(blur->image, "./blur.tar");
  EXPECT_EQ(blur->command, (std::vector<std::string>{"/bin/blur"}));
  EXPECT_EQ(blur->sandbox, SandboxKind::kProcess);
  EXPECT_EQ(blur->inputs, (Pairs{{"faces", "faces/front"}}));
  EXPECT_EQ(blur->outputs, (Pairs{{"blurred", "blurred/front"}}));

  const FunctionSpec* archive = spec.Find("archive");
  ASSERT_NE(archive, nullptr);
  EXPECT_EQ(archive->line, 26);
  EXPECT_EQ(archive->code_dir, "/opt/archive");
  EXPECT_EQ(archive->command, (std::vector<std::string>{"/bin/sh", "-c", "cat > /dev/null"}));
  EXPECT_EQ(archive->sandbox, SandboxKind::kBwrap);
  EXPECT_FALSE(archive->network);
  EXPECT_EQ(archive->env, (std::map<std::string, std::string>{{"LEVEL", "9"}}));
  EXPECT_EQ(archive->inputs, (Pairs{{"faces", "faces/front"}, {"stats", "stats/detect"}}));
  EXPECT_TRUE(archive->outputs.empty());  // a sink
  EXPECT_EQ(archive->dead_letter_channel, "dead-letter/face-augment/archive");
}

TEST(PipelineSpecParserTest, KeysLeftOutTakeTheirDefaults) {
  SpecParseResult result =
      ParsePipelineSpec(OneFunction("code: ./f\ncommand: [run]\ninputs: {in: cams/front}"));
  ASSERT_TRUE(result.ok()) << Describe(result);
  EXPECT_EQ(result.spec.name, "p");
  ASSERT_EQ(result.spec.functions.size(), 1u);
  const FunctionSpec& f = result.spec.functions[0];
  EXPECT_EQ(f.name, "f");
  EXPECT_EQ(f.line, 3);
  EXPECT_EQ(f.code_dir, "./f");
  EXPECT_EQ(f.image, "");
  EXPECT_EQ(f.command, (std::vector<std::string>{"run"}));
  EXPECT_TRUE(f.env.empty());
  EXPECT_EQ(f.sandbox, SandboxKind::kBwrap);
  EXPECT_FALSE(f.network);
  EXPECT_EQ(f.inputs, (Pairs{{"in", "cams/front"}}));
  EXPECT_TRUE(f.outputs.empty());
  EXPECT_EQ(f.join_window, milliseconds(10'000));
  EXPECT_EQ(f.min_workers, 1u);
  EXPECT_EQ(f.max_workers, 1u);
  EXPECT_EQ(f.limits.memory_bytes, uint64_t{256} << 20);
  EXPECT_DOUBLE_EQ(f.limits.cpus, 1.0);
  EXPECT_EQ(f.limits.pids, 64u);
  EXPECT_EQ(f.limits.timeout, milliseconds(30'000));
  EXPECT_EQ(f.limits.max_payload_bytes, uint64_t{64} << 20);
  EXPECT_EQ(f.retry.attempts, 3u);
  EXPECT_EQ(f.retry.backoff, milliseconds(100));
  EXPECT_EQ(f.retry.backoff_max, milliseconds(5'000));
  EXPECT_EQ(f.dead_letter_channel, "dead-letter/p/f");
  EXPECT_EQ(f.dedupe_window, milliseconds(60'000));
  EXPECT_FALSE(f.context_per_key);
  EXPECT_FALSE(f.allow_cycle);
}

TEST(PipelineSpecParserTest, PartialSectionsKeepTheOtherDefaults) {
  SpecParseResult result = ParsePipelineSpec(
      OneFunction("code: ./f\ncommand: [run]\ninputs: {in: cams/front}\n"
                  "concurrency: {max: 3}\nlimits: {cpus: 0.25}\nretry: {attempts: 1}"));
  ASSERT_TRUE(result.ok()) << Describe(result);
  const FunctionSpec& f = result.spec.functions.at(0);
  EXPECT_EQ(f.min_workers, 1u);
  EXPECT_EQ(f.max_workers, 3u);
  EXPECT_DOUBLE_EQ(f.limits.cpus, 0.25);
  EXPECT_EQ(f.limits.memory_bytes, uint64_t{256} << 20);
  EXPECT_EQ(f.limits.pids, 64u);
  EXPECT_EQ(f.retry.attempts, 1u);  // one invocation, no retry
  EXPECT_EQ(f.retry.backoff, milliseconds(100));
}

TEST(PipelineSpecParserTest, NamesAtTheEdgesOfTheRulesAreAccepted) {
  const std::string long_function(64, 'f');
  const std::string long_input(64, 'i');
  const std::string long_pipeline(64, 'p');
  const std::string yaml = "pipeline: " + long_pipeline +
                           "\n"
                           "functions:\n"
                           "  " +
                           long_function +
                           ":\n"
                           "    code: ./f\n"
                           "    command: [run]\n"
                           "    inputs: {" +
                           long_input + ": a.b/c_d-e, In_2-x: x}\n";
  SpecParseResult result = ParsePipelineSpec(yaml);
  ASSERT_TRUE(result.ok()) << Describe(result);
  EXPECT_EQ(result.spec.name, long_pipeline);
  ASSERT_NE(result.spec.Find(long_function), nullptr);
  EXPECT_EQ(result.spec.Find(long_function)->inputs,
            (Pairs{{long_input, "a.b/c_d-e"}, {"In_2-x", "x"}}));

  // A pipeline name may contain '.', unlike function names.
  SpecParseResult dotted = ParsePipelineSpec(
      "pipeline: face.augment_v2-1\nfunctions:\n  f:\n    code: ./f\n    command: [run]\n"
      "    inputs: {in: a}\n");
  ASSERT_TRUE(dotted.ok()) << Describe(dotted);
  EXPECT_EQ(dotted.spec.name, "face.augment_v2-1");
}

// ---------------------------------------------------------------------------------------------
// Every problem is reported, in document order.

TEST(PipelineSpecParserTest, ReportsEveryProblemInDocumentOrder) {
  const std::string yaml =
      "pipeline: face/augment\n"                // 1  bad pipeline name
      "functions:\n"                            // 2
      "  detect:\n"                             // 3
      "    code: ./detect\n"                    // 4
      "    command: [python3, detect.py]\n"     // 5
      "    inputs: {frame: cams/front}\n"       // 6
      "    outputs: {faces: \"faces/+\"}\n"     // 7  bad channel
      "    limits: {cpus: 0, memory_mb: 0}\n"   // 8  two values out of range
      "    concurrency: {min: 1, max: lots}\n"  // 9  wrong type
      "  blur:\n"                               // 10
      "    code: ./blur\n"                      // 11
      "    command: [blur]\n"                   // 12
      "    inputs: {faces: faces/front}\n"      // 13
      "    retry: {attempts: 0}\n"              // 14 out of range
      "    sandbox: docker\n"                   // 15 unknown sandbox kind
      "    dedupe_windw_ms: 5\n"                // 16 unknown key
      "colour: red\n";                          // 17 unknown top-level key
  SpecParseResult result = ParsePipelineSpec(yaml);
  ASSERT_FALSE(result.ok());
  struct Expected {
    int line;
    const char* path;  // exact path, or the path prefix when `exact` is false
    bool exact;
    const char* needle;  // in "<path>: <message>"
  };
  const std::vector<Expected> expected = {
      {1, "pipeline", true, "face/augment"},
      {7, "functions.detect.outputs", false, "faces/+"},
      {8, "functions.detect.limits.cpus", true, ""},
      {8, "functions.detect.limits.memory_mb", true, ""},
      {9, "functions.detect.concurrency.max", true, ""},
      {14, "functions.blur.retry.attempts", true, ""},
      {15, "functions.blur.sandbox", true, "docker"},
      {16, "functions.blur", false, "dedupe_windw_ms"},
      {17, "", false, "colour"},
  };
  ASSERT_EQ(result.problems.size(), expected.size()) << Describe(result);
  for (size_t i = 0; i < expected.size(); ++i) {
    const SpecProblem& p = result.problems[i];
    const Expected& e = expected[i];
    SCOPED_TRACE("problem " + std::to_string(i) + "; " + Describe(result));
    EXPECT_EQ(p.line, e.line);
    EXPECT_GE(p.column, 1);
    if (e.exact) {
      EXPECT_EQ(p.path, e.path);
    } else {
      EXPECT_TRUE(PathIsUnder(p.path, e.path)) << p.path;
    }
    EXPECT_NE(Text(p).find(e.needle), std::string::npos) << Text(p);
    EXPECT_FALSE(p.message.empty());
  }
  // Both problems of line 8 are in column order.
  EXPECT_LT(result.problems[2].column, result.problems[3].column) << Describe(result);
}

TEST(PipelineSpecParserTest, ProblemsInSeveralFunctionsAreAllReported) {
  const std::string yaml =
      "pipeline: p\n"                  // 1
      "functions:\n"                   // 2
      "  a:\n"                         // 3
      "    code: ./a\n"                // 4
      "    command: [a]\n"             // 5
      "    inputs: {in: \"x//y\"}\n"   // 6
      "  b:\n"                         // 7
      "    code: ./b\n"                // 8
      "    command: [b]\n"             // 9
      "    inputs: {in: x}\n"          // 10
      "    limits: {timeout_ms: 0}\n"  // 11
      "  c:\n"                         // 12
      "    code: ./c\n"                // 13
      "    command: [c]\n"             // 14
      "    inputs: {in: y}\n"          // 15
      "    limits: {cpus: -1}\n";      // 16
  SpecParseResult result = ParsePipelineSpec(yaml);
  ASSERT_EQ(result.problems.size(), 3u) << Describe(result);
  EXPECT_EQ(result.problems[0].line, 6);
  EXPECT_TRUE(PathIsUnder(result.problems[0].path, "functions.a.inputs")) << Describe(result);
  EXPECT_NE(Text(result.problems[0]).find("x//y"), std::string::npos) << Describe(result);
  EXPECT_EQ(result.problems[1].line, 11);
  EXPECT_EQ(result.problems[1].path, "functions.b.limits.timeout_ms");
  EXPECT_EQ(result.problems[2].line, 16);
  EXPECT_EQ(result.problems[2].path, "functions.c.limits.cpus");
}

// ---------------------------------------------------------------------------------------------
// Document-level problems.

TEST(PipelineSpecParserTest, InvalidYamlIsOneProblemWithItsLine) {
  const std::string yaml =
      "pipeline: p\n"          // 1
      "functions:\n"           // 2
      "  f:\n"                 // 3
      "    code: x: y\n"       // 4  a mapping value where none may be
      "    command: [run]\n";  // 5
  SpecParseResult result = ParsePipelineSpec(yaml);
  ASSERT_EQ(result.problems.size(), 1u) << Describe(result);
  EXPECT_EQ(result.problems[0].line, 4) << Describe(result);
  EXPECT_GE(result.problems[0].column, 1);
  EXPECT_FALSE(result.problems[0].message.empty());

  SpecParseResult unclosed = ParsePipelineSpec("pipeline: p\nfunctions: {f: {command: [a\n");
  ASSERT_EQ(unclosed.problems.size(), 1u) << Describe(unclosed);
  EXPECT_GE(unclosed.problems[0].line, 1) << Describe(unclosed);
}

TEST(PipelineSpecParserTest, EmptyDocumentIsOneProblemWithoutAPlace) {
  for (const char* yaml : {"", "\n\n", "# only a comment\n"}) {
    SpecParseResult result = ParsePipelineSpec(yaml);
    ASSERT_EQ(result.problems.size(), 1u) << "'" << yaml << "': " << Describe(result);
    EXPECT_EQ(result.problems[0].line, 0) << "'" << yaml << "': " << Describe(result);
    EXPECT_EQ(result.problems[0].path, "") << "'" << yaml << "'";
    EXPECT_FALSE(result.problems[0].message.empty());
  }
}

TEST(PipelineSpecParserTest, TopLevelMustBeAMapping) {
  for (const char* yaml : {"- pipeline\n- functions\n", "just a string\n", "42\n"}) {
    SpecParseResult result = ParsePipelineSpec(yaml);
    ASSERT_EQ(result.problems.size(), 1u) << "'" << yaml << "': " << Describe(result);
    EXPECT_EQ(result.problems[0].path, "") << yaml;
    EXPECT_EQ(result.problems[0].line, 1) << yaml << ": " << Describe(result);
  }
}

TEST(PipelineSpecParserTest, PipelineAndFunctionsAreRequired) {
  SpecParseResult no_pipeline = ParsePipelineSpec(
      "functions:\n  f:\n    code: ./f\n    command: [run]\n    inputs: {in: a}\n");
  ASSERT_EQ(no_pipeline.problems.size(), 1u) << Describe(no_pipeline);
  EXPECT_NE(Text(no_pipeline.problems[0]).find("pipeline"), std::string::npos)
      << Describe(no_pipeline);

  SpecParseResult no_functions = ParsePipelineSpec("pipeline: p\n");
  ASSERT_EQ(no_functions.problems.size(), 1u) << Describe(no_functions);
  EXPECT_NE(Text(no_functions.problems[0]).find("functions"), std::string::npos)
      << Describe(no_functions);

  // Both missing: both reported.
  SpecParseResult neither = ParsePipelineSpec("{}\n");
  EXPECT_EQ(ProblemsAt(neither, "", "pipeline").size(), 1u) << Describe(neither);
  EXPECT_EQ(ProblemsAt(neither, "", "functions").size(), 1u) << Describe(neither);
}

TEST(PipelineSpecParserTest, BadPipelineNames) {
  for (const std::string& name :
       {std::string("face augment"), std::string("a/b"), std::string("a:b"),
        std::string("caf\xc3\xa9"), std::string(65, 'p')}) {
    const std::string yaml = "pipeline: \"" + name +
                             "\"\nfunctions:\n  f:\n    code: ./f\n    command: [run]\n"
                             "    inputs: {in: a}\n";
    SpecParseResult result = ParsePipelineSpec(yaml);
    ASSERT_EQ(result.problems.size(), 1u) << name << ": " << Describe(result);
    EXPECT_EQ(result.problems[0].path, "pipeline") << name;
    EXPECT_EQ(result.problems[0].line, 1) << name;
    if (name.size() <= 64) {
      EXPECT_NE(result.problems[0].message.find(name), std::string::npos)
          << name << ": " << Describe(result);
    }
  }
  for (const char* yaml :
       {"pipeline: \"\"\nfunctions: {f: {code: ., command: [r], inputs: {in: a}}}\n",
        "pipeline: [p]\nfunctions: {f: {code: ., command: [r], inputs: {in: a}}}\n",
        "pipeline: {name: p}\nfunctions: {f: {code: ., command: [r], inputs: {in: a}}}\n"}) {
    SpecParseResult result = ParsePipelineSpec(yaml);
    ASSERT_EQ(result.problems.size(), 1u) << yaml << Describe(result);
    EXPECT_EQ(result.problems[0].path, "pipeline") << yaml;
    EXPECT_EQ(result.problems[0].line, 1) << yaml;
  }
}

TEST(PipelineSpecParserTest, FunctionsMustBeAMappingOfMappings) {
  SpecParseResult list = ParsePipelineSpec("pipeline: p\nfunctions: [a, b]\n");
  ASSERT_FALSE(list.ok());
  EXPECT_FALSE(ProblemsAt(list, "functions").empty()) << Describe(list);
  EXPECT_EQ(list.problems[0].line, 2) << Describe(list);

  SpecParseResult scalar_function = ParsePipelineSpec("pipeline: p\nfunctions:\n  f: 5\n");
  ASSERT_FALSE(scalar_function.ok());
  EXPECT_FALSE(ProblemsAt(scalar_function, "functions.f").empty()) << Describe(scalar_function);
  EXPECT_EQ(scalar_function.problems[0].line, 3) << Describe(scalar_function);
}

TEST(PipelineSpecParserTest, UnknownKeysAreNamedInTheMessage) {
  // Top level.
  SpecParseResult top = ParsePipelineSpec(
      "pipeline: p\nfunctions: {f: {code: ., command: [r], inputs: {in: a}}}\npipelin: q\n");
  ASSERT_EQ(top.problems.size(), 1u) << Describe(top);
  EXPECT_EQ(top.problems[0].line, 3);
  EXPECT_NE(top.problems[0].message.find("pipelin"), std::string::npos) << Describe(top);

  // In a function: a typo of a required key is both unknown and leaves the key missing.
  SpecParseResult typo =
      ParsePipelineSpec(OneFunction("code: ./f\ncomand: [run]\ninputs: {in: a}"));
  std::vector<SpecProblem> unknown;
  for (const SpecProblem& p : typo.problems) {
    if (p.message.find("comand") != std::string::npos) unknown.push_back(p);
  }
  ASSERT_EQ(unknown.size(), 1u) << Describe(typo);
  EXPECT_EQ(unknown[0].line, 5);
  EXPECT_TRUE(PathIsUnder(unknown[0].path, "functions.f")) << Describe(typo);
  // ... and the command is reported missing.
  EXPECT_EQ(typo.problems.size(), 2u) << Describe(typo);

  // In the nested sections.
  struct Case {
    const char* line;
    const char* section;
    const char* key;
  };
  for (const Case& c : {Case{"limits: {memory: 512}", "functions.f.limits", "memory"},
                        Case{"limits: {cpu: 2}", "functions.f.limits", "cpu"},
                        Case{"retry: {attempt: 2}", "functions.f.retry", "attempt"},
                        Case{"concurrency: {maximum: 2}", "functions.f.concurrency", "maximum"},
                        Case{"join: {window: 5}", "functions.f.join", "window"},
                        Case{"context: {perkey: true}", "functions.f.context", "perkey"},
                        Case{"sandbx: oci", "functions.f", "sandbx"}}) {
    SpecParseResult result = ParsePipelineSpec(
        OneFunction(std::string("code: ./f\ncommand: [run]\ninputs: {in: a}\n") + c.line));
    ASSERT_EQ(result.problems.size(), 1u) << c.line << ": " << Describe(result);
    const SpecProblem& p = result.problems[0];
    EXPECT_EQ(p.line, 7) << c.line;
    EXPECT_TRUE(PathIsUnder(p.path, c.section)) << c.line << ": " << Describe(result);
    EXPECT_NE(p.message.find(c.key), std::string::npos) << c.line << ": " << Describe(result);
  }
}

// ---------------------------------------------------------------------------------------------
// One mistake in the body of function "f" (see OneFunction: body line 1 is line 4).

struct BadFunction {
  const char* name;    // of the test case
  const char* body;    // '\n'-separated lines
  const char* path;    // the problem's path is this or below it
  const char* needle;  // in "<path>: <message>"
  int line;            // 0: not checked
  bool only = true;    // the one problem of the spec
};

void PrintTo(const BadFunction& c, std::ostream* os) { *os << c.name; }

class PipelineSpecBadFunctionTest : public ::testing::TestWithParam<BadFunction> {};

TEST_P(PipelineSpecBadFunctionTest, IsReportedAtItsKey) {
  const BadFunction& c = GetParam();
  const std::string yaml = OneFunction(c.body);
  SpecParseResult result = ParsePipelineSpec(yaml);
  ASSERT_FALSE(result.ok()) << yaml;
  std::vector<SpecProblem> found = ProblemsAt(result, c.path, c.needle);
  ASSERT_FALSE(found.empty()) << "want path " << c.path << " mentioning '" << c.needle << "'; "
                              << Describe(result) << "\n"
                              << yaml;
  if (c.line != 0) {
    EXPECT_EQ(found[0].line, c.line) << Describe(result) << "\n" << yaml;
  }
  EXPECT_GE(found[0].line, 1) << Describe(result);
  EXPECT_GE(found[0].column, 1) << Describe(result);
  if (c.only) {
    EXPECT_EQ(result.problems.size(), 1u) << Describe(result) << "\n" << yaml;
  }
}

INSTANTIATE_TEST_SUITE_P(
    PipelineSpec, PipelineSpecBadFunctionTest,
    ::testing::Values(
        // Wrong types.
        BadFunction{"CommandIsANumber", "code: ./f\ncommand: 5\ninputs: {in: a}",
                    "functions.f.command", "", 5},
        BadFunction{"CommandIsAString", "code: ./f\ncommand: run\ninputs: {in: a}",
                    "functions.f.command", "", 5},
        BadFunction{"CommandElementIsAList", "code: ./f\ncommand: [run, [x]]\ninputs: {in: a}",
                    "functions.f.command", "", 5},
        BadFunction{"InputsIsAList", "code: ./f\ncommand: [run]\ninputs: [a, b]",
                    "functions.f.inputs", "", 6, /*only=*/false},
        BadFunction{"OutputsIsAList", "code: ./f\ncommand: [run]\ninputs: {in: a}\noutputs: [b]",
                    "functions.f.outputs", "", 7},
        BadFunction{"InputChannelIsAMapping",
                    "code: ./f\ncommand: [run]\ninputs: {in: {channel: a}}", "functions.f.inputs",
                    "", 6},
        BadFunction{"ConcurrencyMaxIsAString",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\nconcurrency: {min: 1, max: lots}",
                    "functions.f.concurrency.max", "", 7},
        BadFunction{"ConcurrencyIsAScalar",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\nconcurrency: 2",
                    "functions.f.concurrency", "", 7},
        BadFunction{"NetworkIsNotABool",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\nnetwork: maybe",
                    "functions.f.network", "", 7},
        BadFunction{"AllowCycleIsNotABool",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\nallow_cycle: sometimes",
                    "functions.f.allow_cycle", "", 7},
        BadFunction{"PerKeyIsNotABool",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\ncontext: {per_key: 3}",
                    "functions.f.context.per_key", "", 7},
        BadFunction{"EnvIsAList", "code: ./f\ncommand: [run]\ninputs: {in: a}\nenv: [A, B]",
                    "functions.f.env", "", 7},
        BadFunction{"EnvValueIsAList",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\nenv: {A: [1, 2]}",
                    "functions.f.env", "", 7},
        BadFunction{"CpusIsAWord",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\nlimits: {cpus: fast}",
                    "functions.f.limits.cpus", "", 7},
        BadFunction{"LimitsIsAList", "code: ./f\ncommand: [run]\ninputs: {in: a}\nlimits: [1]",
                    "functions.f.limits", "", 7},
        BadFunction{"SandboxUnknown", "code: ./f\ncommand: [run]\ninputs: {in: a}\nsandbox: docker",
                    "functions.f.sandbox", "docker", 7},
        BadFunction{"CodeIsAList", "code: [./f]\ncommand: [run]\ninputs: {in: a}",
                    "functions.f.code", "", 4},
        // Out of range.
        BadFunction{"MaxBelowMin",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\nconcurrency: {min: 3, max: 2}",
                    "functions.f.concurrency", "", 7},
        BadFunction{"MaxZero", "code: ./f\ncommand: [run]\ninputs: {in: a}\nconcurrency: {max: 0}",
                    "functions.f.concurrency", "", 7, /*only=*/false},
        BadFunction{"MaxNegative",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\nconcurrency: {max: -2}",
                    "functions.f.concurrency", "", 7, /*only=*/false},
        BadFunction{"CpusZero", "code: ./f\ncommand: [run]\ninputs: {in: a}\nlimits: {cpus: 0}",
                    "functions.f.limits.cpus", "", 7},
        BadFunction{"CpusNegative",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\nlimits: {cpus: -0.5}",
                    "functions.f.limits.cpus", "", 7},
        BadFunction{"TimeoutZero",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\nlimits: {timeout_ms: 0}",
                    "functions.f.limits.timeout_ms", "", 7},
        BadFunction{"TimeoutNegative",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\nlimits: {timeout_ms: -1}",
                    "functions.f.limits.timeout_ms", "", 7},
        BadFunction{"MemoryZero",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\nlimits: {memory_mb: 0}",
                    "functions.f.limits.memory_mb", "", 7},
        BadFunction{"RetryAttemptsZero",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\nretry: {attempts: 0}",
                    "functions.f.retry.attempts", "", 7},
        BadFunction{"RetryAttemptsNegative",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\nretry: {attempts: -3}",
                    "functions.f.retry.attempts", "", 7},
        BadFunction{"DedupeWindowNegative",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\ndedupe_window_ms: -5",
                    "functions.f.dedupe_window_ms", "", 7},
        // Command and code.
        BadFunction{"MissingCommand", "code: ./f\ninputs: {in: a}", "functions.f", "command", 0},
        BadFunction{"EmptyCommand", "code: ./f\ncommand: []\ninputs: {in: a}",
                    "functions.f.command", "", 5},
        BadFunction{"NeitherCodeNorImage", "command: [run]\ninputs: {in: a}", "functions.f", "code",
                    0},
        BadFunction{"EmptyCode", "code: \"\"\ncommand: [run]\ninputs: {in: a}", "functions.f",
                    "code", 0},
        BadFunction{"EmptyImage", "image: \"\"\ncommand: [run]\ninputs: {in: a}", "functions.f",
                    "image", 0},
        BadFunction{"BothCodeAndImage",
                    "code: ./f\nimage: ./f.tar\ncommand: [run]\ninputs: {in: a}", "functions.f",
                    "image", 0},
        // Inputs and outputs.
        BadFunction{"NoInputsKey", "code: ./f\ncommand: [run]", "functions.f", "inputs", 0},
        BadFunction{"EmptyInputs", "code: ./f\ncommand: [run]\ninputs: {}", "functions.f", "inputs",
                    0},
        BadFunction{"InputNameWithSpace", "code: ./f\ncommand: [run]\ninputs: {\"bad name\": a}",
                    "functions.f.inputs", "bad name", 6},
        BadFunction{"InputNameWithDot", "code: ./f\ncommand: [run]\ninputs: {in.put: a}",
                    "functions.f.inputs", "in.put", 6},
        BadFunction{"InputNameTooLong",
                    "code: ./f\ncommand: [run]\ninputs: "
                    "{iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii: a}",
                    "functions.f.inputs", "", 6},
        BadFunction{"OutputNameWithSlash",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\noutputs: {out/x: b}",
                    "functions.f.outputs", "out/x", 7},
        BadFunction{"DuplicateInputName", "code: ./f\ncommand: [run]\ninputs: {frame: a, frame: b}",
                    "functions.f.inputs", "frame", 6},
        BadFunction{"DuplicateOutputName",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\noutputs:\n  dup: b\n  dup: c",
                    "functions.f.outputs", "dup", 0},
        BadFunction{"InputChannelEmptySegment", "code: ./f\ncommand: [run]\ninputs: {in: \"a//b\"}",
                    "functions.f.inputs", "a//b", 6},
        BadFunction{"InputChannelWildcard", "code: ./f\ncommand: [run]\ninputs: {in: \"a/#\"}",
                    "functions.f.inputs", "a/#", 6},
        BadFunction{"InputChannelEmpty", "code: ./f\ncommand: [run]\ninputs: {in: \"\"}",
                    "functions.f.inputs", "", 6},
        BadFunction{"OutputChannelWildcard",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\noutputs: {out: \"a/+\"}",
                    "functions.f.outputs", "a/+", 7},
        BadFunction{"OutputChannelDotDot",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\noutputs: {out: \"a/../b\"}",
                    "functions.f.outputs", "a/../b", 7},
        BadFunction{"DeadLetterChannelBad",
                    "code: ./f\ncommand: [run]\ninputs: {in: a}\ndead_letter: \"dead/+\"",
                    "functions.f.dead_letter", "dead/+", 7}),
    [](const ::testing::TestParamInfo<BadFunction>& param) {
      return std::string(param.param.name);
    });

TEST(PipelineSpecParserTest, BadFunctionNames) {
  for (const std::string& name :
       {std::string("has space"), std::string("f.x"), std::string("a/b"), std::string(65, 'f')}) {
    const std::string yaml = "pipeline: p\nfunctions:\n  \"" + name +
                             "\":\n    code: ./f\n    command: [run]\n    inputs: {in: a}\n";
    SpecParseResult result = ParsePipelineSpec(yaml);
    ASSERT_EQ(result.problems.size(), 1u) << name << ": " << Describe(result);
    const SpecProblem& p = result.problems[0];
    EXPECT_EQ(p.line, 3) << name;
    EXPECT_TRUE(PathIsUnder(p.path, "functions")) << name << ": " << Describe(result);
    if (name.size() <= 64) {
      EXPECT_NE(Text(p).find(name), std::string::npos) << name << ": " << Describe(result);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Cycles.

// A function "<name>" reading `in` and writing `out` (no output when `out` is empty).
std::string Function(std::string_view name, std::string_view in, std::string_view out,
                     bool allow_cycle = false) {
  std::string yaml = "  " + std::string(name) + ":\n    code: ./" + std::string(name) +
                     "\n    command: [run]\n    inputs: {in: " + std::string(in) + "}\n";
  if (!out.empty()) yaml += "    outputs: {out: " + std::string(out) + "}\n";
  if (allow_cycle) yaml += "    allow_cycle: true\n";
  return yaml;
}

std::string Pipeline(std::string_view functions) {
  return "pipeline: p\nfunctions:\n" + std::string(functions);
}

// Whether some problem names every one of `functions` (in its path or message).
bool SomeProblemNames(const SpecParseResult& result, std::vector<std::string> functions) {
  for (const SpecProblem& p : result.problems) {
    bool all = true;
    for (const std::string& f : functions) {
      if (Text(p).find(f) == std::string::npos) all = false;
    }
    if (all) return true;
  }
  return false;
}

TEST(PipelineSpecParserTest, SelfLoopIsACycle) {
  // Channel names are chosen so that they do not contain the function names.
  SpecParseResult result = ParsePipelineSpec(Pipeline(Function("looper", "q/one", "q/one")));
  ASSERT_EQ(result.problems.size(), 1u) << Describe(result);
  EXPECT_TRUE(SomeProblemNames(result, {"looper"})) << Describe(result);
  // Placed like the function's other problems: at its key, "  looper:" on line 3.
  EXPECT_EQ(result.problems[0].line, 3) << Describe(result);
  EXPECT_TRUE(PathIsUnder(result.problems[0].path, "functions.looper")) << Describe(result);

  // One of several inputs fed by the function's own output.
  SpecParseResult second_input = ParsePipelineSpec(
      "pipeline: p\nfunctions:\n  looper:\n    code: ./l\n    command: [run]\n"
      "    inputs: {frame: q/one, state: q/two}\n    outputs: {next: q/two}\n");
  ASSERT_FALSE(second_input.ok());
  EXPECT_TRUE(SomeProblemNames(second_input, {"looper"})) << Describe(second_input);
}

TEST(PipelineSpecParserTest, SelfLoopWithAllowCycleIsValid) {
  SpecParseResult result =
      ParsePipelineSpec(Pipeline(Function("looper", "q/one", "q/one", /*allow_cycle=*/true)));
  ASSERT_TRUE(result.ok()) << Describe(result);
  EXPECT_TRUE(result.spec.functions.at(0).allow_cycle);
}

TEST(PipelineSpecParserTest, TwoFunctionCycleNamesBoth) {
  SpecParseResult result = ParsePipelineSpec(
      Pipeline(Function("alpha", "q/one", "q/two") + Function("beta", "q/two", "q/one")));
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(SomeProblemNames(result, {"alpha", "beta"})) << Describe(result);
  for (const SpecProblem& p : result.problems) EXPECT_GE(p.line, 1) << Describe(result);
}

TEST(PipelineSpecParserTest, AllowCycleOnEitherFunctionOfTheCycleMakesItValid) {
  SpecParseResult on_alpha =
      ParsePipelineSpec(Pipeline(Function("alpha", "q/one", "q/two", /*allow_cycle=*/true) +
                                 Function("beta", "q/two", "q/one")));
  EXPECT_TRUE(on_alpha.ok()) << Describe(on_alpha);
  SpecParseResult on_beta =
      ParsePipelineSpec(Pipeline(Function("alpha", "q/one", "q/two") +
                                 Function("beta", "q/two", "q/one", /*allow_cycle=*/true)));
  EXPECT_TRUE(on_beta.ok()) << Describe(on_beta);
}

TEST(PipelineSpecParserTest, LongerCycleIsFoundAndAllowCycleOffTheCycleDoesNotHelp) {
  // feeder -> a -> b -> c -> a: the cycle is a, b, c; feeder is not on it.
  const std::string functions =
      Function("feeder", "q/src", "q/one") + Function("alpha", "q/one", "q/two") +
      Function("beta", "q/two", "q/three") + Function("gamma", "q/three", "q/one");
  SpecParseResult result = ParsePipelineSpec(Pipeline(functions));
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(SomeProblemNames(result, {"alpha", "beta", "gamma"})) << Describe(result);

  SpecParseResult feeder_allows = ParsePipelineSpec(
      Pipeline(Function("feeder", "q/src", "q/one", /*allow_cycle=*/true) +
               Function("alpha", "q/one", "q/two") + Function("beta", "q/two", "q/three") +
               Function("gamma", "q/three", "q/one")));
  EXPECT_FALSE(feeder_allows.ok()) << "allow_cycle off the cycle must not allow it";

  SpecParseResult gamma_allows = ParsePipelineSpec(
      Pipeline(Function("feeder", "q/src", "q/one") + Function("alpha", "q/one", "q/two") +
               Function("beta", "q/two", "q/three") +
               Function("gamma", "q/three", "q/one", /*allow_cycle=*/true)));
  EXPECT_TRUE(gamma_allows.ok()) << Describe(gamma_allows);
}

TEST(PipelineSpecParserTest, ChainIsNotACycle) {
  SpecParseResult result = ParsePipelineSpec(Pipeline(Function("alpha", "q/one", "q/two") +
                                                      Function("beta", "q/two", "q/three") +
                                                      Function("gamma", "q/three", "q/four")));
  ASSERT_TRUE(result.ok()) << Describe(result);
  ASSERT_EQ(result.spec.functions.size(), 3u);
  // The chain declared backwards is no cycle either.
  SpecParseResult backwards = ParsePipelineSpec(Pipeline(Function("gamma", "q/three", "q/four") +
                                                         Function("beta", "q/two", "q/three") +
                                                         Function("alpha", "q/one", "q/two")));
  EXPECT_TRUE(backwards.ok()) << Describe(backwards);
}

TEST(PipelineSpecParserTest, DiamondIsNotACycle) {
  // split -> left, right -> merge (joins both); every function reached twice is still acyclic.
  const std::string yaml =
      "pipeline: p\nfunctions:\n"
      "  split:\n    code: ./s\n    command: [run]\n    inputs: {in: q/src}\n"
      "    outputs: {out: q/mid}\n"
      "  left:\n    code: ./l\n    command: [run]\n    inputs: {in: q/mid}\n"
      "    outputs: {out: q/left}\n"
      "  right:\n    code: ./r\n    command: [run]\n    inputs: {in: q/mid}\n"
      "    outputs: {out: q/right}\n"
      "  merge:\n    code: ./m\n    command: [run]\n    inputs: {l: q/left, r: q/right}\n"
      "    outputs: {out: q/done}\n";
  SpecParseResult result = ParsePipelineSpec(yaml);
  EXPECT_TRUE(result.ok()) << Describe(result);
}

// ---------------------------------------------------------------------------------------------
// Messages and Status.

TEST(PipelineSpecParserTest, ProblemToStringFormat) {
  SpecProblem p{3, 7, "functions.f.limits.cpus", "must be greater than 0"};
  EXPECT_EQ(p.ToString("spec.yaml"),
            "spec.yaml:3:7: functions.f.limits.cpus: must be greater than 0");
}

TEST(PipelineSpecParserTest, ToStatusOkWhenThereAreNoProblems) {
  SpecParseResult result =
      ParsePipelineSpec(OneFunction("code: ./f\ncommand: [run]\ninputs: {in: a}"));
  ASSERT_TRUE(result.ok()) << Describe(result);
  Status s = result.ToStatus("spec.yaml");
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(s.code(), ErrorCode::kOk);
}

TEST(PipelineSpecParserTest, ToStatusListsEveryProblem) {
  const std::string yaml =
      "pipeline: \"bad name\"\n"                // 1
      "functions:\n"                            // 2
      "  f:\n"                                  // 3
      "    code: ./f\n"                         // 4
      "    command: [run]\n"                    // 5
      "    inputs: {in: a}\n"                   // 6
      "    limits: {cpus: 0, timeout_ms: 0}\n"  // 7
      "    retry: {attempts: 0}\n";             // 8
  SpecParseResult result = ParsePipelineSpec(yaml);
  ASSERT_EQ(result.problems.size(), 4u) << Describe(result);
  Status s = result.ToStatus("/etc/edgeflow/pipelines/face.yaml");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  for (const SpecProblem& p : result.problems) {
    const std::string line = p.ToString("/etc/edgeflow/pipelines/face.yaml");
    EXPECT_TRUE(line.starts_with("/etc/edgeflow/pipelines/face.yaml:" + std::to_string(p.line) +
                                 ":" + std::to_string(p.column) + ": " + p.path + ": "))
        << line;
    EXPECT_NE(s.message().find(line), std::string::npos) << s.message() << "\nmissing: " << line;
  }
}

}  // namespace
}  // namespace edgeflow::runtime
