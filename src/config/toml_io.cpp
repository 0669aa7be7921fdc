// TOML <-> Config. The strict reader visitor (src/config/toml_reader.h) walks the structs,
// checks each value's type and collects the keys it used, so any key left over is reported as
// unknown; a Writer visitor emits the resolved config. Overrides (--set a.b=value) are applied
// to the TOML tree first, and errors on an overridden key name the --set argument instead of
// the file.
#include <toml++/toml.h>

#include <fstream>
#include <sstream>

#include "src/config/config.h"
#include "src/config/presence.h"
#include "src/config/toml_reader.h"
#include "src/core/error.h"

namespace moe::config {
namespace {

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
void apply_override(toml::table& root, const std::string& arg, TomlContext& ctx) {
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
  TomlContext ctx{origin, {}};
  toml::table root = parse_toml(text, origin);
  for (const std::string& o : overrides) apply_override(root, o, ctx);
  Config c;
  read_toml(root, ctx, c);
  validate(c, origin, world_size);
  check_presence(root, ctx);
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
