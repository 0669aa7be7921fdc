// A small scanner for the Trainer's metrics lines: enough JSON to find the top-level numbers,
// strict enough to reject a line cut off by a killed run.
#include "src/train/run_metrics.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>

namespace moe::train {
namespace {

class Scanner {
 public:
  explicit Scanner(const std::string& s) : s_(s) {}

  bool object(std::map<std::string, double>& out) {
    ws();
    if (!eat('{')) return false;
    ws();
    if (eat('}')) return end();
    while (true) {
      std::string key;
      ws();
      if (!string(&key)) return false;
      ws();
      if (!eat(':')) return false;
      ws();
      double v = 0;
      bool numeric = false;
      if (!value(&v, &numeric)) return false;
      if (numeric) out[key] = v;
      ws();
      if (eat(',')) continue;
      if (eat('}')) return end();
      return false;
    }
  }

 private:
  bool end() {
    ws();
    return i_ == s_.size();
  }
  void ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool literal(const char* word) {
    size_t n = std::char_traits<char>::length(word);
    if (s_.compare(i_, n, word) != 0) return false;
    i_ += n;
    return true;
  }
  bool string(std::string* out) {
    if (!eat('"')) return false;
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (i_ >= s_.size()) return false;
        c = s_[i_++];
        if (c == 'u') i_ += 4;  // names and values here are ASCII; keep the scan aligned
      }
      if (out) *out += c;
    }
    return false;
  }
  // A value; sets *numeric for numbers, null (NaN) and booleans (0/1).
  bool value(double* v, bool* numeric) {
    if (i_ >= s_.size()) return false;
    char c = s_[i_];
    if (c == '{' || c == '[') return nested();
    if (c == '"') return string(nullptr);
    *numeric = true;
    if (literal("null")) {
      *v = std::numeric_limits<double>::quiet_NaN();
      return true;
    }
    if (literal("true")) {
      *v = 1;
      return true;
    }
    if (literal("false")) {
      *v = 0;
      return true;
    }
    const char* begin = s_.c_str() + i_;
    char* stop = nullptr;
    *v = std::strtod(begin, &stop);
    if (stop == begin) return false;
    i_ += size_t(stop - begin);
    return true;
  }
  // Skips a nested object or array (strings inside may hold brackets).
  bool nested() {
    int depth = 0;
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == '"') {
        if (!string(nullptr)) return false;
        continue;
      }
      ++i_;
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return true;
      }
    }
    return false;
  }

  const std::string& s_;
  size_t i_ = 0;
};

}  // namespace

double MetricsRecord::get(const std::string& key) const {
  auto it = values.find(key);
  return it == values.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
}

bool parse_metrics_line(const std::string& line, std::map<std::string, double>& out) {
  out.clear();
  return Scanner(line).object(out);
}

std::vector<MetricsRecord> read_metrics(const std::string& path) {
  std::vector<MetricsRecord> records;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    MetricsRecord r;
    if (!parse_metrics_line(line, r.values)) continue;
    double step = r.get("step");
    if (!std::isfinite(step)) continue;
    r.step = int64_t(step);
    records.push_back(std::move(r));
  }
  return records;
}

}  // namespace moe::train
