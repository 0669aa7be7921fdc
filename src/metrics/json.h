// A small JSON writer for metrics lines and result files: values are appended in order, objects
// and arrays nest, numbers print with enough digits to round-trip (non-finite ones as null).
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace moe::metrics {

// The shortest %.Ng text (N = 15, 16 or 17) that reads back as the same double: 0.1 stays
// "0.1", and no digit a reader needs is cut.
inline std::string round_trip(double v) {
  char buf[32];
  for (int digits = 15; digits < 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) return buf;
  }
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

class Json {
 public:
  Json& begin_object() { sep(); out_ += '{'; first_.push_back(true); return *this; }
  Json& end_object() { out_ += '}'; first_.pop_back(); return *this; }
  Json& begin_array() { sep(); out_ += '['; first_.push_back(true); return *this; }
  Json& end_array() { out_ += ']'; first_.pop_back(); return *this; }
  Json& key(const std::string& k) {
    sep();
    quote(k);
    out_ += ':';
    pending_key_ = true;
    return *this;
  }
  Json& value(double v) {
    sep();
    if (!std::isfinite(v)) {
      out_ += "null";
    } else {
      out_ += round_trip(v);
    }
    return *this;
  }
  Json& value(int64_t v) { sep(); out_ += std::to_string(v); return *this; }
  Json& value(int v) { return value(int64_t(v)); }
  Json& value(bool v) { sep(); out_ += v ? "true" : "false"; return *this; }
  Json& value(const std::string& v) { sep(); quote(v); return *this; }
  Json& value(const char* v) { return value(std::string(v)); }
  template <class T>
  Json& kv(const std::string& k, const T& v) { return key(k).value(v); }
  const std::string& str() const { return out_; }

 private:
  void sep() {
    if (pending_key_) {
      pending_key_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back()) out_ += ',';
      first_.back() = false;
    }
  }
  void quote(const std::string& s) {
    out_ += '"';
    for (char c : s) {
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out_ += buf;
      } else {
        out_ += c;
      }
    }
    out_ += '"';
  }
  std::string out_;
  std::vector<bool> first_;
  bool pending_key_ = false;
};

}  // namespace moe::metrics
