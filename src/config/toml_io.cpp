// TOML <-> Config. The strict reader visitor (src/config/toml_reader.h) walks the structs,
// checks each value's type and collects the keys it used, so any key left over is reported as
// unknown; a Writer visitor emits the resolved config. Overrides (--set a.b=value) are applied
// to the TOML tree first, and errors on an overridden key name the --set argument instead of
// the file.
#include <toml++/toml.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

#include "src/config/config.h"
#include "src/config/presence.h"
#include "src/config/toml_reader.h"
#include "src/core/error.h"
#include "src/core/regular_file.h"

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
  void write(const char* key, const std::vector<std::string>& v) {
    toml::array a;
    for (const std::string& s : v) a.push_back(s);
    tbl_.insert_or_assign(key, std::move(a));
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

bool looks_numeric(const std::string& v);

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
  } catch (const toml::parse_error& e) {
    // Something that reads as a number but is not a valid TOML one (1e400, an integer beyond 64
    // bits) is a bad number, not a word.
    if (looks_numeric(value))
      throw InputError("--set " + arg + ": " + key + ": \"" + value + "\" is not a representable number (" +
                           std::string(e.description()) + ")",
                       true);
    t->insert_or_assign(parts.back(), value);  // a bare word: take it as a string
  }
}

bool looks_numeric(const std::string& v) {
  size_t i = (!v.empty() && (v[0] == '+' || v[0] == '-')) ? 1 : 0;
  return i < v.size() && (std::isdigit(static_cast<unsigned char>(v[i])) || v[i] == '.');
}

// parallel.ep = "auto" (the built-in default): taken out of the tree before the typed read,
// resolved once the model's expert count is known.
bool take_auto_ep(toml::table& root, const TomlContext& ctx) {
  toml::table* p = root["parallel"].as_table();
  const toml::node* ep = p ? p->get("ep") : nullptr;
  if (!ep || !ep->is_string()) return false;
  if (*ep->value<std::string>() != "auto")
    ctx.fail("parallel.ep", "expected an integer or \"auto\", got " + toml_type_name(*ep));
  p->erase("ep");
  return true;
}

}  // namespace

Config parse_config(const std::string& text, const std::string& origin,
                    const std::vector<std::string>& overrides, int world_size) {
  TomlContext ctx{origin, {}};
  toml::table root = parse_toml(text, origin);
  for (const std::string& o : overrides) apply_override(root, o, ctx);
  const bool ep_auto = take_auto_ep(root, ctx);
  Config c;
  read_toml(root, ctx, c);
  if (c.moe.expert_ratio != 0) {  // resolved here (config.h); a bad ratio is validate()'s to name
    const double w = c.moe.expert_ratio * double(c.model.width);
    if (std::isfinite(w) && w >= 0.5 && w < 1e15) {
      c.moe.expert_width = std::llround(w);
      c.moe.expert_ratio = 0;
    }
  }
  if (ep_auto) {
    c.parallel.ep_auto = true;
    c.parallel.ep = auto_ep(c.moe.experts, world_size);
  }
  validate(c, ctx, world_size);
  check_presence(root, ctx);
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides,
                   int world_size) {
  // Never blocks (a FIFO), and an empty file or /dev/null would train with every default.
  int fd = -1;
  int64_t bytes = 0;
  const std::string why = open_regular_file(path, fd, bytes);
  if (!why.empty())
    throw InputError(path + ": " + (why.rfind("cannot open", 0) == 0 ? "cannot open config file" + why.substr(11)
                                                                     : "config file " + why),
                     true);
  if (bytes == 0) {
    ::close(fd);
    throw InputError(path + ": config file is empty", true);
  }
  std::string text;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw InputError(path + ": cannot read config file: " + std::strerror(err), true);
    }
    if (n == 0) break;
    text.append(buf, size_t(n));
  }
  ::close(fd);
  return parse_config(text, path, overrides, world_size);
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
