// Reading a run's metrics.jsonl back (written by the Trainer: one JSON object per logged step)
// for sweeps and reports. Only the top-level numbers are read; a null (the writer's non-finite
// value) reads as NaN, and a torn last line (a run killed mid-write) is ignored.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace moe::train {

inline const char* const kMetricsFile = "metrics.jsonl";  // in the run directory

struct MetricsRecord {
  int64_t step = 0;
  std::map<std::string, double> values;      // top-level numeric keys: loss, ce, tokens_per_s, ...
  double get(const std::string& key) const;  // NaN when absent
};

// Top-level "key": number (or null) pairs of one JSON object; nested objects and arrays are
// skipped. Returns false when the line is not a complete object.
bool parse_metrics_line(const std::string& line, std::map<std::string, double>& out);
// Every complete record with a "step", in file order; empty when the file does not exist.
std::vector<MetricsRecord> read_metrics(const std::string& path);

}  // namespace moe::train
