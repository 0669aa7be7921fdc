// Listing, resolving and durably updating checkpoint directories (POSIX fsync and rename).
#include "src/ckpt/directory.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "src/core/error.h"

namespace fs = std::filesystem;

namespace moe::ckpt {
namespace {

[[noreturn]] void sys_fail(const std::string& what, const std::string& path) {
  throw Error(what + " " + path + ": " + std::strerror(errno));
}

// "step_00000042" -> 42; false for anything else (including "step_00000042.tmp").
bool parse_step_name(const std::string& name, int64_t& step) {
  if (name.size() <= 5 || name.compare(0, 5, "step_") != 0) return false;
  int64_t v = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - 9) / 10) return false;
    v = v * 10 + (name[i] - '0');
  }
  step = v;
  return true;
}

bool has_manifest(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "manifest.toml", ec);
}

}  // namespace

std::string step_dir_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
  return buf;
}

std::string shard_file_name(int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "shard_%05d.bin", rank);
  return buf;
}

std::vector<CheckpointEntry> list_checkpoints(const std::string& root) {
  std::vector<CheckpointEntry> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    int64_t step;
    if (e.is_symlink(ec) || !e.is_directory(ec)) continue;
    if (!parse_step_name(e.path().filename().string(), step) || !has_manifest(e.path())) continue;
    out.push_back({step, e.path().string()});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

std::string resolve_checkpoint(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw InputError(path + ": no such checkpoint or run directory", true);
  if (has_manifest(path)) return path;
  fs::path root = fs::is_directory(fs::path(path) / "checkpoints", ec)
                      ? fs::path(path) / "checkpoints"
                      : fs::path(path);
  fs::path latest = root / "latest";
  auto all = list_checkpoints(root.string());
  std::string newest = all.empty() ? "" : "; the newest complete checkpoint is " + all.back().dir +
                                              " (pass it to --resume explicitly)";
  fs::path target;
  if (fs::is_symlink(latest, ec)) {
    target = fs::read_symlink(latest, ec);
  } else if (fs::is_regular_file(latest, ec)) {  // a plain file naming the directory also works
    std::ifstream f(latest);
    std::string name;
    std::getline(f, name);
    target = name;
    if (target.empty()) throw InputError(latest.string() + ": empty or unreadable" + newest, true);
  } else if (fs::exists(latest, ec)) {
    throw InputError(latest.string() + ": neither a symlink nor a file naming a checkpoint" + newest, true);
  }
  // Never a guess: a `latest` that points nowhere complete is an error, not a fallback to an
  // older checkpoint (a resumed run would silently repeat steps).
  if (!target.empty()) {
    fs::path dir = target.is_absolute() ? target : root / target;
    if (has_manifest(dir)) return dir.string();
    throw InputError(latest.string() + ": points at " + dir.string() +
                         ", which is not a complete checkpoint (dangling)" + newest,
                     true);
  }
  if (all.empty())
    throw InputError(path +
                         ": not a checkpoint (no manifest.toml) and no complete checkpoint under " +
                         root.string(),
                     true);
  throw InputError(latest.string() + ": missing" + newest, true);
}

void write_file_durably(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) sys_fail("cannot create", path);
  if (const int err = write_all(fd, text.data(), text.size())) {
    ::close(fd);
    errno = err;
    sys_fail("cannot write", path);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    sys_fail("cannot fsync", path);
  }
  if (::close(fd) != 0) sys_fail("cannot close", path);
}

void replace_latest(const std::string& root, const std::string& name) {
  const std::string tmp = root + "/latest.tmp", latest = root + "/latest";
  ::unlink(tmp.c_str());  // left by an interrupted update, if any
  if (::symlink(name.c_str(), tmp.c_str()) != 0) sys_fail("cannot create symlink", tmp);
  if (::rename(tmp.c_str(), latest.c_str()) != 0) sys_fail("cannot rename " + tmp + " to", latest);
  fsync_dir(root);
}

void remove_stale_tmp(const std::string& root) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0 && n != "latest.tmp")
      fs::remove_all(e.path(), ec);
  }
}

void prune_checkpoints(const std::string& root, int64_t keep, const std::string& protect) {
  auto all = list_checkpoints(root);
  int64_t excess = int64_t(all.size()) - keep;
  for (const CheckpointEntry& c : all) {
    if (excess <= 0) break;
    if (fs::path(c.dir).filename() == protect) continue;
    // Renamed first, so that a crash mid-removal leaves a .tmp directory, not a partial
    // checkpoint that still looks complete.
    const std::string doomed = c.dir + ".removing.tmp";
    std::error_code ec;
    fs::rename(c.dir, doomed, ec);
    if (!ec) fs::remove_all(doomed, ec);
    --excess;
  }
  remove_stale_tmp(root);
}

}  // namespace moe::ckpt
