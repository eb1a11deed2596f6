#include "runtime/pipeline_spec_parser.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <functional>
#include <initializer_list>
#include <map>
#include <set>
#include <tuple>

#include "channels/channel_name.h"

namespace edgeflow::runtime {
namespace {

constexpr size_t kMaxNameBytes = 64;

bool IsNameChar(char c, bool allow_dot) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || (allow_dot && c == '.');
}

bool IsValidName(std::string_view name, bool allow_dot) {
  return !name.empty() && name.size() <= kMaxNameBytes &&
         std::all_of(name.begin(), name.end(), [&](char c) { return IsNameChar(c, allow_dot); });
}

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

// Reads one spec, collecting every problem instead of stopping at the first.
class SpecReader {
 public:
  std::vector<SpecProblem>& problems() { return problems_; }

  void Problem(const YAML::Node& at, const std::string& path, std::string message) {
    SpecProblem problem;
    if (at.IsDefined()) {
      const YAML::Mark mark = at.Mark();
      if (mark.line >= 0) problem.line = mark.line + 1;
      if (mark.column >= 0) problem.column = mark.column + 1;
    }
    problem.path = path;
    problem.message = std::move(message);
    problems_.push_back(std::move(problem));
  }

  // YAML parsers keep a repeated key (yaml-cpp returns the first, iteration sees both): a repeated
  // key is almost always a mistake, and which one wins would be a surprise either way.
  void Duplicates(const YAML::Node& node, const std::string& path) {
    std::set<std::string> seen;
    for (const auto& entry : node) {
      const std::string key = entry.first.Scalar();
      if (!seen.insert(key).second) {
        Problem(entry.first, Join(path, key), "'" + key + "' is given more than once");
      }
    }
  }

  // A mapping (or absent); complains about keys not in `known`.
  bool Mapping(const YAML::Node& node, const std::string& path,
               std::initializer_list<std::string_view> known) {
    if (!node.IsMap()) {
      Problem(node, path, "must be a mapping");
      return false;
    }
    Duplicates(node, path);
    for (const auto& entry : node) {
      const std::string key = entry.first.Scalar();
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        std::string list;
        for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
        Problem(entry.first, Join(path, key), "unknown key '" + key + "' (known: " + list + ")");
      }
    }
    return true;
  }

  bool String(const YAML::Node& node, const std::string& path, std::string* out) {
    if (!node.IsScalar()) {
      Problem(node, path, "must be a string");
      return false;
    }
    *out = node.Scalar();
    return true;
  }

  bool Bool(const YAML::Node& node, const std::string& path, bool* out) {
    try {
      if (node.IsScalar()) {
        *out = node.as<bool>();
        return true;
      }
    } catch (const YAML::Exception&) {
    }
    Problem(node, path, "must be true or false");
    return false;
  }

  bool Unsigned(const YAML::Node& node, const std::string& path, uint64_t min, uint64_t max,
                uint64_t* out) {
    uint64_t value = 0;
    bool parsed = false;
    if (node.IsScalar() && !node.Scalar().empty() && node.Scalar()[0] != '-') {
      try {
        value = node.as<uint64_t>();
        parsed = true;
      } catch (const YAML::Exception&) {
      }
    }
    if (!parsed || value < min || value > max) {
      Problem(node, path,
              "must be a whole number from " + std::to_string(min) + " to " + std::to_string(max) +
                  (node.IsScalar() ? ", not '" + node.Scalar() + "'" : ""));
      return false;
    }
    *out = value;
    return true;
  }

  bool Millis(const YAML::Node& node, const std::string& path, uint64_t min, uint64_t max,
              std::chrono::milliseconds* out) {
    uint64_t value = 0;
    if (!Unsigned(node, path, min, max, &value)) return false;
    *out = std::chrono::milliseconds(static_cast<int64_t>(value));
    return true;
  }

  void Channel(const YAML::Node& node, const std::string& path, std::string* out) {
    if (!String(node, path, out)) return;
    if (Status s = channels::ValidateChannelName(*out); !s.ok()) Problem(node, path, s.message());
  }

  // name -> channel, in document order.
  void Ports(const YAML::Node& node, const std::string& path,
             std::vector<std::pair<std::string, std::string>>* out) {
    if (!node.IsMap()) {
      Problem(node, path, "must be a mapping of names to channels");
      return;
    }
    Duplicates(node, path);
    for (const auto& entry : node) {
      const std::string name = entry.first.Scalar();
      const std::string port_path = Join(path, name);
      if (!IsValidName(name, false)) {
        Problem(entry.first, port_path,
                "name '" + name + "' must be 1-64 letters, digits, '_' or '-'");
      }
      std::string channel;
      Channel(entry.second, port_path, &channel);
      out->emplace_back(name, std::move(channel));
    }
  }

  void Function(const std::string& pipeline, const YAML::Node& key, const YAML::Node& node,
                FunctionSpec* f);
  void Cycles(const PipelineSpec& spec, const YAML::Node& functions);

 private:
  std::vector<SpecProblem> problems_;
};

void SpecReader::Function(const std::string& pipeline, const YAML::Node& key,
                          const YAML::Node& node, FunctionSpec* f) {
  f->name = key.Scalar();
  f->line = key.Mark().line + 1;
  const std::string path = "functions." + f->name;
  if (!IsValidName(f->name, false)) {
    Problem(key, path, "function name '" + f->name + "' must be 1-64 letters, digits, '_' or '-'");
  }
  f->dead_letter_channel = "dead-letter/" + pipeline + "/" + f->name;
  if (!Mapping(node, path,
               {"code", "image", "command", "sandbox", "network", "env", "inputs", "outputs",
                "join", "concurrency", "limits", "retry", "dead_letter", "dedupe_window_ms",
                "context", "allow_cycle"})) {
    return;
  }
  for (auto [key_name, target] : {std::pair{"code", &f->code_dir}, std::pair{"image", &f->image}}) {
    if (node[key_name] && String(node[key_name], Join(path, key_name), target) && target->empty()) {
      Problem(node[key_name], Join(path, key_name), "must not be empty");
    }
  }
  if (node["code"] && node["image"]) {
    Problem(node["image"], path + ".image", "give either code (a directory) or image, not both");
  } else if (!node["code"] && !node["image"]) {
    Problem(key, path, "has no code: give code (a directory) or image");
  }

  if (const YAML::Node command = node["command"]; !command) {
    Problem(key, path + ".command", "is required: the program to run, as a list of arguments");
  } else if (!command.IsSequence() || command.size() == 0) {
    Problem(command, path + ".command", "must be a non-empty list of strings");
  } else {
    for (size_t i = 0; i < command.size(); ++i) {
      std::string arg;
      const std::string arg_path = path + ".command[" + std::to_string(i) + "]";
      if (String(command[i], arg_path, &arg)) {
        if (i == 0 && arg.empty()) Problem(command[i], arg_path, "the program must not be empty");
        f->command.push_back(std::move(arg));
      }
    }
  }

  if (const YAML::Node sandbox = node["sandbox"]) {
    std::string kind;
    if (String(sandbox, path + ".sandbox", &kind)) {
      if (kind == "process") {
        f->sandbox = SandboxKind::kProcess;
      } else if (kind == "bwrap") {
        f->sandbox = SandboxKind::kBwrap;
      } else if (kind == "oci") {
        f->sandbox = SandboxKind::kOci;
      } else {
        Problem(sandbox, path + ".sandbox", "must be process, bwrap or oci, not '" + kind + "'");
      }
    }
  }
  if (node["network"]) Bool(node["network"], path + ".network", &f->network);
  if (const YAML::Node env = node["env"]) {
    if (!env.IsMap()) {
      Problem(env, path + ".env", "must be a mapping of variable names to strings");
    } else {
      Duplicates(env, path + ".env");
      for (const auto& entry : env) {
        std::string value;
        if (String(entry.second, path + ".env." + entry.first.Scalar(), &value)) {
          f->env[entry.first.Scalar()] = value;
        }
      }
    }
  }

  if (!node["inputs"]) {
    Problem(key, path + ".inputs", "is required: at least one input channel");
  } else {
    Ports(node["inputs"], path + ".inputs", &f->inputs);
    if (node["inputs"].IsMap() && f->inputs.empty()) {
      Problem(node["inputs"], path + ".inputs", "needs at least one input channel");
    }
  }
  if (node["outputs"]) Ports(node["outputs"], path + ".outputs", &f->outputs);
  std::set<std::string> names;
  for (const auto& [name, channel] : f->inputs) names.insert(name);
  for (const auto& [name, channel] : f->outputs) {
    if (names.contains(name)) {
      Problem(node["outputs"], path + ".outputs." + name,
              "'" + name + "' is the name of an input too; inputs and outputs need distinct names");
    }
  }

  if (const YAML::Node join = node["join"]; join && Mapping(join, path + ".join", {"window_ms"})) {
    if (join["window_ms"]) {
      Millis(join["window_ms"], path + ".join.window_ms", 1, 86'400'000, &f->join_window);
    }
  }
  if (const YAML::Node c = node["concurrency"];
      c && Mapping(c, path + ".concurrency", {"min", "max"})) {
    uint64_t value = 0;
    if (c["min"] && Unsigned(c["min"], path + ".concurrency.min", 0, 1024, &value)) {
      f->min_workers = static_cast<uint32_t>(value);
    }
    if (c["max"] && Unsigned(c["max"], path + ".concurrency.max", 1, 1024, &value)) {
      f->max_workers = static_cast<uint32_t>(value);
    }
    if (c["min"] && !c["max"]) f->max_workers = std::max(f->max_workers, f->min_workers);
    if (f->max_workers < f->min_workers) {
      Problem(c, path + ".concurrency",
              "max (" + std::to_string(f->max_workers) + ") is below min (" +
                  std::to_string(f->min_workers) + ")");
    }
  }
  if (const YAML::Node l = node["limits"];
      l && Mapping(l, path + ".limits",
                   {"memory_mb", "cpus", "pids", "timeout_ms", "max_payload_bytes"})) {
    uint64_t value = 0;
    if (l["memory_mb"] &&
        Unsigned(l["memory_mb"], path + ".limits.memory_mb", 1, 1 << 20, &value)) {
      f->limits.memory_bytes = value << 20;
    }
    if (const YAML::Node cpus = l["cpus"]) {
      double share = 0;
      bool parsed = false;
      try {
        share = cpus.as<double>();
        parsed = cpus.IsScalar();
      } catch (const YAML::Exception&) {
      }
      if (!parsed || !(share > 0) || share > 1024) {
        Problem(cpus, path + ".limits.cpus", "must be a number of cores above 0 (e.g. 0.5)");
      } else {
        f->limits.cpus = share;
      }
    }
    if (l["pids"] && Unsigned(l["pids"], path + ".limits.pids", 1, 1 << 20, &value)) {
      f->limits.pids = static_cast<uint32_t>(value);
    }
    if (l["timeout_ms"]) {
      Millis(l["timeout_ms"], path + ".limits.timeout_ms", 1, 86'400'000, &f->limits.timeout);
    }
    if (l["max_payload_bytes"]) {
      Unsigned(l["max_payload_bytes"], path + ".limits.max_payload_bytes", 1, 1ull << 30,
               &f->limits.max_payload_bytes);
    }
  }
  if (const YAML::Node r = node["retry"];
      r && Mapping(r, path + ".retry", {"attempts", "backoff_ms", "backoff_max_ms"})) {
    uint64_t value = 0;
    if (r["attempts"] && Unsigned(r["attempts"], path + ".retry.attempts", 1, 100, &value)) {
      f->retry.attempts = static_cast<uint32_t>(value);
    }
    if (r["backoff_ms"]) {
      Millis(r["backoff_ms"], path + ".retry.backoff_ms", 0, 3'600'000, &f->retry.backoff);
    }
    if (r["backoff_max_ms"]) {
      Millis(r["backoff_max_ms"], path + ".retry.backoff_max_ms", 0, 3'600'000,
             &f->retry.backoff_max);
    }
  }
  if (node["dead_letter"])
    Channel(node["dead_letter"], path + ".dead_letter", &f->dead_letter_channel);
  if (node["dedupe_window_ms"]) {
    Millis(node["dedupe_window_ms"], path + ".dedupe_window_ms", 0, 86'400'000, &f->dedupe_window);
  }
  if (const YAML::Node c = node["context"]; c && Mapping(c, path + ".context", {"per_key"})) {
    if (c["per_key"]) Bool(c["per_key"], path + ".context.per_key", &f->context_per_key);
  }
  if (node["allow_cycle"]) Bool(node["allow_cycle"], path + ".allow_cycle", &f->allow_cycle);
}

// Reports each group of functions that feed their own inputs (a strongly connected component of
// the "an output channel of A is an input channel of B" graph, or a self-loop), unless one of them
// allows it.
void SpecReader::Cycles(const PipelineSpec& spec, const YAML::Node& functions) {
  const size_t n = spec.functions.size();
  std::vector<std::vector<size_t>> edges(n);
  for (size_t a = 0; a < n; ++a) {
    for (size_t b = 0; b < n; ++b) {
      bool feeds = false;
      for (const auto& [out_name, out_channel] : spec.functions[a].outputs) {
        for (const auto& [in_name, in_channel] : spec.functions[b].inputs) {
          feeds = feeds || (!out_channel.empty() && out_channel == in_channel);
        }
      }
      if (feeds) edges[a].push_back(b);
    }
  }
  // Tarjan's algorithm; n is small (a pipeline's functions).
  std::vector<int> index(n, -1), low(n, 0);
  std::vector<bool> on_stack(n, false);
  std::vector<size_t> stack;
  std::vector<std::vector<size_t>> components;
  int next = 0;
  std::function<void(size_t)> visit = [&](size_t v) {
    index[v] = low[v] = next++;
    stack.push_back(v);
    on_stack[v] = true;
    for (size_t w : edges[v]) {
      if (index[w] < 0) {
        visit(w);
        low[v] = std::min(low[v], low[w]);
      } else if (on_stack[w]) {
        low[v] = std::min(low[v], index[w]);
      }
    }
    if (low[v] == index[v]) {
      std::vector<size_t> component;
      size_t w;
      do {
        w = stack.back();
        stack.pop_back();
        on_stack[w] = false;
        component.push_back(w);
      } while (w != v);
      components.push_back(std::move(component));
    }
  };
  for (size_t v = 0; v < n; ++v) {
    if (index[v] < 0) visit(v);
  }
  for (std::vector<size_t>& component : components) {
    const bool self_loop =
        component.size() == 1 && std::find(edges[component[0]].begin(), edges[component[0]].end(),
                                           component[0]) != edges[component[0]].end();
    if (component.size() == 1 && !self_loop) continue;
    std::sort(component.begin(), component.end());
    const bool allowed = std::any_of(component.begin(), component.end(),
                                     [&](size_t f) { return spec.functions[f].allow_cycle; });
    if (allowed) continue;
    // A loop in the direction the data flows, from the first function declared back to it.
    const std::set<size_t> members(component.begin(), component.end());
    std::vector<size_t> path_back;
    std::set<size_t> visited;
    std::function<bool(size_t)> find_back = [&](size_t v) {
      path_back.push_back(v);
      for (size_t w : edges[v]) {
        if (w == component[0]) return true;
        if (members.contains(w) && visited.insert(w).second && find_back(w)) return true;
      }
      path_back.pop_back();
      return false;
    };
    find_back(component[0]);
    std::string loop;
    for (size_t f : path_back) loop += spec.functions[f].name + " -> ";
    loop += spec.functions[component[0]].name;
    const FunctionSpec& first = spec.functions[component[0]];
    YAML::Node at = functions;
    for (const auto& entry : functions) {
      if (entry.first.Scalar() == first.name) {
        at = entry.first;
        break;
      }
    }
    Problem(at, "functions." + first.name,
            self_loop ? "'" + first.name +
                            "' publishes on a channel it also consumes, so it feeds itself; set "
                            "allow_cycle: true if that is intended"
                      : "these functions feed their own inputs in a cycle: " + loop +
                            "; set allow_cycle: true on one of them if that is intended");
  }
}

}  // namespace

std::string SpecProblem::ToString(std::string_view source) const {
  std::string out(source);
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += ": ";
  if (!path.empty()) out += path + ": ";
  return out + message;
}

Status SpecParseResult::ToStatus(std::string_view source) const {
  if (problems.empty()) return Status::Ok();
  std::string message = std::to_string(problems.size()) +
                        (problems.size() == 1 ? " problem" : " problems") +
                        " in the pipeline spec:";
  for (const SpecProblem& problem : problems) message += "\n" + problem.ToString(source);
  return Status::InvalidArgument(std::move(message));
}

SpecParseResult ParsePipelineSpec(std::string_view yaml_text) {
  SpecParseResult result;
  SpecReader reader;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::ParserException& e) {
    SpecProblem problem;
    problem.line = e.mark.line >= 0 ? e.mark.line + 1 : 0;
    problem.column = e.mark.column >= 0 ? e.mark.column + 1 : 0;
    problem.message = "invalid YAML: " + e.msg;
    result.problems.push_back(std::move(problem));
    return result;
  } catch (const YAML::Exception& e) {
    result.problems.push_back({0, 0, "", std::string("invalid YAML: ") + e.what()});
    return result;
  }
  if (!root.IsDefined() || root.IsNull()) {
    result.problems.push_back({0, 0, "", "the spec is empty"});
    return result;
  }
  try {
    if (reader.Mapping(root, "", {"pipeline", "functions"})) {
      if (!root["pipeline"]) {
        reader.Problem(root, "pipeline", "is required: the pipeline's name");
      } else if (reader.String(root["pipeline"], "pipeline", &result.spec.name) &&
                 !IsValidName(result.spec.name, true)) {
        reader.Problem(
            root["pipeline"], "pipeline",
            "name '" + result.spec.name + "' must be 1-64 letters, digits, '_', '-' or '.'");
      }
      const YAML::Node functions = root["functions"];
      if (!functions) {
        reader.Problem(root, "functions", "is required: at least one function");
      } else if (!functions.IsMap() || functions.size() == 0) {
        reader.Problem(functions, "functions",
                       "must be a non-empty mapping of function names to functions");
      } else {
        reader.Duplicates(functions, "functions");
        for (const auto& entry : functions) {
          FunctionSpec f;
          reader.Function(result.spec.name, entry.first, entry.second, &f);
          result.spec.functions.push_back(std::move(f));
        }
        reader.Cycles(result.spec, functions);
      }
    }
  } catch (const YAML::Exception& e) {
    // yaml-cpp throws on shapes the reader did not expect (e.g. a complex key); report, not crash.
    reader.Problem(root, "", std::string("cannot read the spec: ") + e.what());
  }
  // In document order; problems at the same place keep the order they were found in.
  std::vector<SpecProblem>& found = reader.problems();
  std::vector<size_t> order(found.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::tuple(found[a].line, found[a].column, a) <
           std::tuple(found[b].line, found[b].column, b);
  });
  for (size_t i : order) result.problems.push_back(std::move(found[i]));
  return result;
}

}  // namespace edgeflow::runtime
