// Reads the Prometheus text format that GET /metrics serves, enough for tests to compare
// counters before and after some traffic.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace edgeflow::test_support {

class PrometheusText {
 public:
  // Unparseable lines are skipped (the test then fails on missing series, with the text shown).
  static PrometheusText Parse(const std::string& text);

  // The sum of every series of the metric `name` (all label sets); 0 if there are none.
  double Sum(std::string_view name) const;
  // The sum of the series of `name` whose label text contains `label_part`, e.g.
  // R"(route="kv_item")".
  double Sum(std::string_view name, std::string_view label_part) const;
  bool Has(std::string_view name) const;
  // Names of all metrics (without labels) that start with `prefix`.
  std::map<std::string, double> Families(std::string_view prefix) const;

  const std::string& text() const { return text_; }

 private:
  struct Sample {
    std::string name;
    std::string labels;
    double value;
  };
  std::string text_;
  std::multimap<std::string, Sample> samples_;  // by name
};

}  // namespace edgeflow::test_support
