// TOML <-> Config. A Reader visitor walks the structs, checks each value's type and collects
// the keys it used, so any key left over is reported as unknown; a Writer visitor emits the
// resolved config. Overrides (--set a.b=value) are applied to the TOML tree first, and errors
// on an overridden key name the --set argument instead of the file.
#include <toml++/toml.h>

#include <fstream>
#include <set>
#include <sstream>

#include "src/config/config.h"
#include "src/core/error.h"

namespace moe::config {
namespace {

template <class T>
constexpr bool has_visit = requires(T& t) { t.visit(std::declval<int&>()); };

template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};
template <class T> struct is_map : std::false_type {};
template <class T> struct is_map<std::map<std::string, T>> : std::true_type {};

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string \"" + *n.value<std::string>() + "\"";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    default: return "a date or time";
  }
}

struct Context {
  std::string origin;                     // file name for messages
  std::map<std::string, std::string> set; // dotted key -> the --set argument that gave it
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    auto it = set.find(key);
    std::string where = it != set.end() ? "--set " + it->second : origin;
    throw InputError(where + ": " + key + ": " + what, /*collective=*/true);
  }
};

class Reader {
 public:
  Reader(const toml::table& t, std::string prefix, const Context& ctx)
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
    if (!n.is_integer()) ctx_.fail(key, "expected an integer, got " + type_name(n));
    out = *n.value<int64_t>();
  }
  void read(const toml::node& n, const std::string& key, double& out) {
    if (!n.is_number()) ctx_.fail(key, "expected a number, got " + type_name(n));
    out = *n.value<double>();
  }
  void read(const toml::node& n, const std::string& key, bool& out) {
    if (!n.is_boolean()) ctx_.fail(key, "expected true or false, got " + type_name(n));
    out = *n.value<bool>();
  }
  void read(const toml::node& n, const std::string& key, std::string& out) {
    if (!n.is_string()) ctx_.fail(key, "expected a string, got " + type_name(n));
    out = *n.value<std::string>();
  }
  template <class T>
  void read(const toml::node& n, const std::string& key, std::optional<T>& out) {
    T v{};
    read(n, key, v);
    out = std::move(v);
  }
  template <class T>
  void read(const toml::node& n, const std::string& key, std::map<std::string, T>& out) {
    if (!n.is_table()) ctx_.fail(key, "expected a table, got " + type_name(n));
    for (auto&& [k, v] : *n.as_table()) {
      T item{};
      read(v, key + "." + std::string(k.str()), item);
      out[std::string(k.str())] = std::move(item);
    }
  }
  template <class T>
    requires has_visit<T>
  void read(const toml::node& n, const std::string& key, T& out) {
    if (!n.is_table()) ctx_.fail(key, "expected a table, got " + type_name(n));
    Reader sub(*n.as_table(), key, ctx_);
    out.visit(sub);
    sub.check_unknown();
  }

  const toml::table& tbl_;
  std::string prefix_;
  const Context& ctx_;
  std::set<std::string> used_;
};

class Writer {
 public:
  explicit Writer(toml::table& t) : tbl_(t) {}
  template <class T>
  void operator()(const char* key, const T& field) {
    write(key, field);
  }

 private:
  void write(const char* key, int64_t v) { tbl_.insert_or_assign(key, v); }
  void write(const char* key, double v) { tbl_.insert_or_assign(key, v); }
  void write(const char* key, bool v) { tbl_.insert_or_assign(key, v); }
  void write(const char* key, const std::string& v) { tbl_.insert_or_assign(key, v); }
  template <class T>
  void write(const char* key, const std::optional<T>& v) {
    if (v) write(key, *v);
  }
  template <class T>
  void write(const char* key, const std::map<std::string, T>& m) {
    toml::table sub;
    for (const auto& [k, v] : m) {
      Writer w(sub);
      w(k.c_str(), v);
    }
    tbl_.insert_or_assign(key, std::move(sub));
  }
  template <class T>
    requires has_visit<T>
  void write(const char* key, const T& v) {
    toml::table sub;
    Writer w(sub);
    const_cast<T&>(v).visit(w);
    tbl_.insert_or_assign(key, std::move(sub));
  }
  toml::table& tbl_;
};

// "a.b.c=value": value parsed as a TOML value, else taken as a bare string.
void apply_override(toml::table& root, const std::string& arg, Context& ctx) {
  auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0)
    throw InputError("--set " + arg + ": expected section.key=value", true);
  std::string key = arg.substr(0, eq), value = arg.substr(eq + 1);
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
  toml::table* t = &root;
  std::string path;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    path += (i ? "." : "") + parts[i];
    toml::node* n = t->get(parts[i]);
    if (!n) {
      t->insert(parts[i], toml::table{});
      n = t->get(parts[i]);
    }
    if (!n->is_table()) throw InputError("--set " + arg + ": " + path + " is not a table", true);
    t = n->as_table();
  }
  ctx.set[key] = arg;
  try {
    toml::table parsed = toml::parse("v = " + value);
    t->insert_or_assign(parts.back(), *parsed.get("v"));
  } catch (const toml::parse_error&) {
    t->insert_or_assign(parts.back(), value);  // a bare word: take it as a string
  }
}

}  // namespace

Config parse_config(const std::string& text, const std::string& origin,
                    const std::vector<std::string>& overrides, int world_size) {
  Context ctx{origin, {}};
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << origin << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
       << e.description();
    throw InputError(os.str(), true);
  }
  for (const std::string& o : overrides) apply_override(root, o, ctx);
  Config c;
  Reader r(root, "", ctx);
  c.visit(r);
  r.check_unknown();
  validate(c, origin, world_size);
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides,
                   int world_size) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(path + ": cannot open config file", true);
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config(ss.str(), path, overrides, world_size);
}

std::string to_toml(const Config& c) {
  toml::table root;
  Writer w(root);
  const_cast<Config&>(c).visit(w);
  std::ostringstream os;
  os << root << "\n";
  return os.str();
}

}  // namespace moe::config
