// The strict TOML reader behind every input file (configs, sweep specs): a visitor that walks a
// struct's visit(), checks each value's type and reports keys no visit() asked for. Shared so
// that every file the user writes fails the same way: "<file>: <dotted key>: <what>".
#pragma once
#include <toml++/toml.h>

#include <cmath>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "src/core/error.h"

namespace moe::config {

template <class T>
constexpr bool has_visit = requires(T& t) { t.visit(std::declval<int&>()); };

inline std::string toml_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string \"" + *n.value<std::string>() + "\"";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    default:
      return "a date or time";
  }
}

struct TomlContext {
  std::string origin;                      // file name for messages
  std::map<std::string, std::string> set;  // dotted key -> the --set argument that gave it
  // Where a value came from: "--set key=value" when an override gave `key`, else the first
  // overridden key of `related` (a cross-key constraint is blamed on the key the user set),
  // else the file.
  std::string where(const std::string& key, std::initializer_list<const char*> related = {}) const {
    auto it = set.find(key);
    for (auto r = related.begin(); it == set.end() && r != related.end(); ++r) it = set.find(*r);
    return it != set.end() ? "--set " + it->second : origin;
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what,
                         std::initializer_list<const char*> related = {}) const {
    throw InputError(where(key, related) + ": " + key + ": " + what, /*collective=*/true);
  }
};

class TomlReader {
 public:
  TomlReader(const toml::table& t, std::string prefix, const TomlContext& ctx)
      : tbl_(t), prefix_(std::move(prefix)), ctx_(ctx) {}

  template <class T>
  void operator()(const char* key, T& field) {
    used_.insert(key);
    const toml::node* n = tbl_.get(key);
    if (!n) return;  // keep the default
    read(*n, full(key), field);
  }

  // Keys present in the table that no visit() asked for.
  void check_unknown() const {
    for (auto&& [k, v] : tbl_) {
      std::string key(k.str());
      if (!used_.count(key)) ctx_.fail(full(key), "unknown key");
    }
  }

 private:
  std::string full(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }

  void read(const toml::node& n, const std::string& key, int64_t& out) {
    if (!n.is_integer()) ctx_.fail(key, "expected an integer, got " + toml_type_name(n));
    out = *n.value<int64_t>();
  }
  void read(const toml::node& n, const std::string& key, double& out) {
    if (!n.is_number()) ctx_.fail(key, "expected a number, got " + toml_type_name(n));
    out = *n.value<double>();
    // No key means "unbounded" by inf, and nan compares false with every bound check.
    if (!std::isfinite(out))
      ctx_.fail(key, std::string("expected a finite number, got ") + (std::isnan(out) ? "nan" : out > 0 ? "inf" : "-inf"));
  }
  void read(const toml::node& n, const std::string& key, bool& out) {
    if (!n.is_boolean()) ctx_.fail(key, "expected true or false, got " + toml_type_name(n));
    out = *n.value<bool>();
  }
  void read(const toml::node& n, const std::string& key, std::string& out) {
    if (!n.is_string()) ctx_.fail(key, "expected a string, got " + toml_type_name(n));
    out = *n.value<std::string>();
  }
  template <class T>
  void read(const toml::node& n, const std::string& key, std::optional<T>& out) {
    T v{};
    read(n, key, v);
    out = std::move(v);
  }
  // Arrays: each element is checked like a scalar; errors name it as key[i].
  template <class T>
  void read(const toml::node& n, const std::string& key, std::vector<T>& out) {
    if (!n.is_array()) ctx_.fail(key, "expected an array, got " + toml_type_name(n));
    out.clear();
    const toml::array& a = *n.as_array();
    for (size_t i = 0; i < a.size(); ++i) {
      T item{};
      read(*a.get(i), key + "[" + std::to_string(i) + "]", item);
      out.push_back(std::move(item));
    }
  }
  template <class T>
  void read(const toml::node& n, const std::string& key, std::map<std::string, T>& out) {
    if (!n.is_table()) ctx_.fail(key, "expected a table, got " + toml_type_name(n));
    for (auto&& [k, v] : *n.as_table()) {
      T item{};
      read(v, key + "." + std::string(k.str()), item);
      out[std::string(k.str())] = std::move(item);
    }
  }
  template <class T>
    requires has_visit<T>
  void read(const toml::node& n, const std::string& key, T& out) {
    if (!n.is_table()) ctx_.fail(key, "expected a table, got " + toml_type_name(n));
    TomlReader sub(*n.as_table(), key, ctx_);
    out.visit(sub);
    sub.check_unknown();
  }

  const toml::table& tbl_;
  std::string prefix_;
  const TomlContext& ctx_;
  std::set<std::string> used_;
};

// Parses TOML text; a syntax error becomes "<origin>:<line>:<column>: <what>".
inline toml::table parse_toml(const std::string& text, const std::string& origin) {
  try {
    return toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << origin << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
    throw InputError(os.str(), true);
  }
}

// Reads a whole document into a struct with visit(): every key typed, none unknown.
template <class T>
void read_toml(const toml::table& root, const TomlContext& ctx, T& out) {
  TomlReader r(root, "", ctx);
  out.visit(r);
  r.check_unknown();
}

struct Config;
// config::validate with the origin of every overridden key (src/config/validate.cpp).
void validate(const Config& c, const TomlContext& ctx, int world_size);

}  // namespace moe::config
