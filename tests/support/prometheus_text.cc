#include "support/prometheus_text.h"

#include <cstdlib>

#include "support/command_runner.h"

namespace edgeflow::test_support {

PrometheusText PrometheusText::Parse(const std::string& text) {
  PrometheusText out;
  out.text_ = text;
  for (const std::string& line : SplitLines(text)) {
    if (line.empty() || line.front() == '#') continue;
    Sample sample;
    size_t name_end = line.find_first_of("{ ");
    if (name_end == std::string::npos) continue;
    sample.name = line.substr(0, name_end);
    size_t value_start = name_end;
    if (line[name_end] == '{') {
      size_t close = line.rfind('}');
      if (close == std::string::npos || close < name_end) continue;
      sample.labels = line.substr(name_end + 1, close - name_end - 1);
      value_start = close + 1;
    }
    const char* begin = line.c_str() + value_start;
    char* end = nullptr;
    sample.value = std::strtod(begin, &end);
    if (end == begin) continue;
    out.samples_.emplace(sample.name, std::move(sample));
  }
  return out;
}

double PrometheusText::Sum(std::string_view name) const { return Sum(name, ""); }

double PrometheusText::Sum(std::string_view name, std::string_view label_part) const {
  double sum = 0;
  auto [begin, end] = samples_.equal_range(std::string(name));
  for (auto it = begin; it != end; ++it) {
    if (it->second.labels.find(label_part) != std::string::npos) sum += it->second.value;
  }
  return sum;
}

bool PrometheusText::Has(std::string_view name) const {
  return samples_.contains(std::string(name));
}

std::map<std::string, double> PrometheusText::Families(std::string_view prefix) const {
  std::map<std::string, double> families;
  for (const auto& [name, sample] : samples_) {
    if (name.starts_with(prefix)) families[name] += sample.value;
  }
  return families;
}

}  // namespace edgeflow::test_support
