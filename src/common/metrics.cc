#include "common/metrics.h"

#include <fmt/format.h>

namespace edgeflow::metrics {

const std::array<double, Histogram::kBuckets>& Histogram::Bounds() {
  static const std::array<double, kBuckets> bounds = {
      0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,    0.1,      0.25,    0.5,    1.0,     2.5,    5.0,   10.0,   30.0,  60.0};
  return bounds;
}

void Histogram::ObserveMicros(uint64_t micros) {
  const auto& bounds = Bounds();
  double seconds = static_cast<double>(micros) / 1e6;
  size_t i = 0;
  while (i < kBuckets && seconds > bounds[i]) ++i;
  if (i < kBuckets) buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(micros, std::memory_order_relaxed);
}

void Histogram::Snapshot(std::array<uint64_t, kBuckets>* cumulative, uint64_t* count,
                         double* sum) const {
  uint64_t running = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    (*cumulative)[i] = running;
  }
  *count = count_.load(std::memory_order_relaxed);
  *sum = static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6;
}

size_t Registry::FamilyIndex(const std::string& name, const std::string& help, Kind kind) {
  for (size_t i = 0; i < families_.size(); ++i) {
    if (families_[i].name == name) return i;
  }
  families_.push_back({name, help, kind});
  return families_.size() - 1;
}

Counter* Registry::AddCounter(const std::string& name, const std::string& help,
                              const std::string& labels) {
  std::lock_guard lock(mu_);
  size_t family = FamilyIndex(name, help, Kind::kCounter);
  for (auto& s : series_) {
    if (s.family == family && s.labels == labels && s.counter) return s.counter.get();
  }
  series_.push_back({family, labels, std::make_unique<Counter>(), nullptr, nullptr});
  return series_.back().counter.get();
}

Histogram* Registry::AddHistogram(const std::string& name, const std::string& help,
                                  const std::string& labels) {
  std::lock_guard lock(mu_);
  size_t family = FamilyIndex(name, help, Kind::kHistogram);
  for (auto& s : series_) {
    if (s.family == family && s.labels == labels && s.histogram) return s.histogram.get();
  }
  series_.push_back({family, labels, nullptr, std::make_unique<Histogram>(), nullptr});
  return series_.back().histogram.get();
}

void Registry::AddGauge(const std::string& name, const std::string& help,
                        std::function<double()> read, const std::string& labels) {
  std::lock_guard lock(mu_);
  size_t family = FamilyIndex(name, help, Kind::kGauge);
  series_.push_back({family, labels, nullptr, nullptr, std::move(read)});
}

namespace {
std::string Braced(const std::string& labels, const std::string& extra = "") {
  if (labels.empty() && extra.empty()) return "";
  if (labels.empty()) return "{" + extra + "}";
  if (extra.empty()) return "{" + labels + "}";
  return "{" + labels + "," + extra + "}";
}
}  // namespace

std::string Registry::RenderPrometheus() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (size_t f = 0; f < families_.size(); ++f) {
    const Family& family = families_[f];
    const char* type = family.kind == Kind::kCounter   ? "counter"
                       : family.kind == Kind::kGauge ? "gauge"
                                                     : "histogram";
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", family.name, family.help, family.name, type);
    for (const Series& s : series_) {
      if (s.family != f) continue;
      if (s.counter) {
        out += fmt::format("{}{} {}\n", family.name, Braced(s.labels), s.counter->Value());
      } else if (s.gauge) {
        out += fmt::format("{}{} {}\n", family.name, Braced(s.labels), s.gauge());
      } else if (s.histogram) {
        std::array<uint64_t, Histogram::kBuckets> cumulative{};
        uint64_t count = 0;
        double sum = 0;
        s.histogram->Snapshot(&cumulative, &count, &sum);
        const auto& bounds = Histogram::Bounds();
        for (size_t i = 0; i < Histogram::kBuckets; ++i) {
          out += fmt::format("{}_bucket{} {}\n", family.name,
                             Braced(s.labels, fmt::format("le=\"{}\"", bounds[i])), cumulative[i]);
        }
        out += fmt::format("{}_bucket{} {}\n", family.name, Braced(s.labels, "le=\"+Inf\""), count);
        out += fmt::format("{}_sum{} {}\n", family.name, Braced(s.labels), sum);
        out += fmt::format("{}_count{} {}\n", family.name, Braced(s.labels), count);
      }
    }
  }
  return out;
}

}  // namespace edgeflow::metrics
