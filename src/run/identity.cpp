// identity.toml: reading, writing and making run identities.
#include "src/run/identity.h"

#include <fcntl.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "src/core/error.h"
#include "src/core/output_file.h"

namespace moe::run {
namespace {

std::string random_hex(size_t bytes) {
  unsigned char raw[32] = {};
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  size_t got = 0;
  while (fd >= 0 && got < bytes) {
    const ssize_t n = ::read(fd, raw + got, bytes - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += size_t(n);
  }
  if (fd >= 0) ::close(fd);
  if (got < bytes) {  // no /dev/urandom: time, pid and host still make a collision unlikely
    const uint64_t a = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
    const uint64_t b = uint64_t(std::chrono::system_clock::now().time_since_epoch().count()) ^
                       (uint64_t(::getpid()) << 32) ^ std::hash<std::string>{}(hostname());
    std::memcpy(raw, &a, 8);
    std::memcpy(raw + 8, &b, 8);
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    out += hex[raw[i] >> 4];
    out += hex[raw[i] & 15];
  }
  return out;
}

}  // namespace

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

std::string slurm_job() {
  const char* job = std::getenv("SLURM_JOB_ID");
  return job && *job ? job : "-";
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string identity_file(const std::string& run_dir) { return run_dir + "/identity.toml"; }

RunIdentity new_identity() {
  RunIdentity id;
  id.id = random_hex(16);
  id.created = utc_now();
  id.host = hostname();
  id.slurm_job = slurm_job();
  return id;
}

std::optional<RunIdentity> read_identity(const std::string& run_dir) {
  const std::string path = identity_file(run_dir);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  const auto bad = [&](const std::string& what) {
    return InputError(path + ": " + what + " (the run's identity; restore it, or start over with --overwrite)", true);
  };
  if (!std::filesystem::is_regular_file(path, ec)) throw bad("not a regular file");
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw bad("does not parse: " + std::string(e.description()));
  }
  RunIdentity id;
  const auto str = [&](const char* key, bool required) {
    const toml::node* n = t.get(key);
    if (!n && !required) return std::string();
    if (!n || !n->is_string()) throw bad(std::string("missing or non-string key ") + key);
    return *n->value<std::string>();
  };
  id.id = str("id", true);
  if (id.id.size() != 32 || id.id.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw bad("id is not 32 hex digits");
  id.created = str("created", false);
  id.host = str("host", false);
  id.slurm_job = str("slurm_job", false);
  if (const toml::table* p = t["forked_from"].as_table()) {
    id.forked = true;
    id.parent_id = (*p)["run_id"].value_or(std::string());
    id.parent_checkpoint = (*p)["checkpoint"].value_or(std::string());
    id.parent_step = (*p)["step"].value_or(int64_t(0));
  }
  return id;
}

void write_identity(const std::string& run_dir, const RunIdentity& id) {
  toml::table t{{"id", id.id}, {"created", id.created}, {"host", id.host}, {"slurm_job", id.slurm_job}};
  if (id.forked)
    t.insert_or_assign("forked_from", toml::table{{"run_id", id.parent_id},
                                                  {"checkpoint", id.parent_checkpoint},
                                                  {"step", id.parent_step}});
  std::ostringstream os;
  os << "# The identity of the run in this directory (src/run/identity.h): its checkpoints carry\n"
        "# this id, and a resume that would continue another run here is refused.\n"
     << t << "\n";
  write_output_atomically(identity_file(run_dir), os.str());
}

std::string describe(const RunIdentity& id) {
  std::string s = "run " + id.id;
  if (id.forked)
    s += " (forked from " + (id.parent_id.empty() ? std::string("a run without an id") : "run " + id.parent_id) +
         " at step " + std::to_string(id.parent_step) + ")";
  return s;
}

}  // namespace moe::run
