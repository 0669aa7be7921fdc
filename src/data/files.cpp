// llm.c shards and text files: mapping, validation, window lookup.
#include "src/data/files.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "src/core/error.h"
#include "src/core/regular_file.h"
#include "src/data/synthetic.h"

namespace moe::data {
namespace {

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  throw InputError(path + ": " + what, /*collective=*/true);
}

std::vector<std::string> expand(const std::string& pattern) {
  glob_t g{};
  int rc = glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> out;
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  globfree(&g);
  if (out.empty()) bad(pattern, "no such file");
  std::sort(out.begin(), out.end());
  return out;
}

MappedFile map_file(const std::string& path) {
  MappedFile f;
  f.path = path;
  int fd = -1;
  int64_t bytes = 0;
  const std::string why = open_regular_file(path, fd, bytes);  // a FIFO must not block
  if (!why.empty()) bad(path, why);
  f.map_bytes = size_t(bytes);
  if (f.map_bytes > 0) {
    f.map = mmap(nullptr, f.map_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f.map == MAP_FAILED) {
      close(fd);
      bad(path, std::string("cannot map: ") + std::strerror(errno));
    }
  }
  close(fd);
  f.base = static_cast<const uint8_t*>(f.map);
  return f;
}

// The first token >= vocab, named with its position and byte offset in the file. Blocks of
// tokens are scanned for their maximum first (a loop that vectorizes), so that a clean file of
// billions of tokens is checked at memory speed.
void check_vocab(const MappedFile& f, int64_t vocab) {
  const int64_t block = 1 << 16, header = f.base - static_cast<const uint8_t*>(f.map);
  for (int64_t b = 0; b < f.tokens; b += block) {
    const int64_t e = std::min(f.tokens, b + block);
    int64_t mx = 0;
    for (int64_t i = b; i < e; ++i) mx = std::max(mx, f.token(i));
    if (mx < vocab) continue;
    for (int64_t i = b; i < e; ++i)
      if (f.token(i) >= vocab)
        bad(f.path, "token " + std::to_string(f.token(i)) + " at position " + std::to_string(i) +
                        " (byte offset " + std::to_string(header + i * f.width) +
                        ") is outside the vocabulary (model.vocab = " + std::to_string(vocab) + ")");
  }
}

void check_llmc(MappedFile& f, int64_t vocab) {
  const int64_t header = 256 * 4;
  if (int64_t(f.map_bytes) < header)
    bad(f.path, "truncated llm.c shard: " + std::to_string(f.map_bytes) + " bytes, the header alone is 1024");
  const int32_t* h = reinterpret_cast<const int32_t*>(f.base);
  if (h[0] != kShardMagic)
    bad(f.path, "not an llm.c token shard (magic " + std::to_string(h[0]) + ", expected 20240520)");
  if (h[1] != kShardVersion)
    bad(f.path, "unsupported llm.c shard version " + std::to_string(h[1]) + " (expected 1: uint16 tokens)");
  int64_t n = h[2];
  if (n < 0) bad(f.path, "negative token count in header");
  int64_t expect = header + 2 * n;
  if (int64_t(f.map_bytes) != expect)
    bad(f.path, (int64_t(f.map_bytes) < expect ? "truncated llm.c shard: " : "llm.c shard has trailing bytes: ") +
                    std::to_string(f.map_bytes) + " bytes, header says " + std::to_string(n) +
                    " tokens (" + std::to_string(expect) + " bytes)");
  f.base += header;
  f.tokens = n;
  f.width = 2;
  check_vocab(f, vocab);
}

// A flat token file: nothing but tokens of `width` bytes, so its size must be a multiple of it.
void check_bin(MappedFile& f, int64_t vocab, int width) {
  if (f.map_bytes % size_t(width) != 0)
    bad(f.path, std::to_string(f.map_bytes) + " bytes is not a whole number of " + std::to_string(width) +
                    "-byte tokens (data.token_bytes = " + std::to_string(width) + ")");
  f.tokens = int64_t(f.map_bytes) / width;
  f.width = width;
  check_vocab(f, vocab);
}

// The (device, inode) of every regular file a pattern names; none when it names nothing (the
// training files of a checkpoint evaluated on another machine may be absent).
std::vector<std::pair<std::string, std::pair<dev_t, ino_t>>> file_ids(const std::string& pattern) {
  glob_t g{};
  std::vector<std::pair<std::string, std::pair<dev_t, ino_t>>> out;
  if (glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      struct stat st {};
      if (stat(g.gl_pathv[i], &st) == 0) out.push_back({g.gl_pathv[i], {st.st_dev, st.st_ino}});
    }
  globfree(&g);
  return out;
}

}  // namespace

FileTokens::FileTokens(const std::string& kind, const std::string& pattern, int64_t vocab,
                       int64_t seq_len, uint64_t seed, WindowSplit split, int token_bytes)
    : kind_(kind), T_(seq_len), ordered_(split.held_out), seed_(seed) {
  for (const std::string& path : expand(pattern)) {
    files_.push_back(map_file(path));
    MappedFile& f = files_.back();
    if (kind == "llmc") {
      check_llmc(f, vocab);
    } else if (kind == "bin") {
      check_bin(f, vocab, token_bytes);
    } else {
      f.tokens = int64_t(f.map_bytes);
      f.width = 1;
      if (vocab < 256) bad(path, "byte-level text needs model.vocab >= 256");
    }
    if (f.tokens < seq_len + 1)
      bad(path, "holds " + std::to_string(f.tokens) + " tokens, fewer than one sequence of " +
                    std::to_string(seq_len + 1));
  }
  window_start_.push_back(0);
  for (const MappedFile& f : files_) {
    windows_ += (f.tokens - 1) / T_;
    window_start_.push_back(windows_);
  }
  if (split.val_fraction > 0) {
    const int64_t all = windows_;
    const int64_t held = std::max<int64_t>(1, int64_t(std::llround(double(all) * split.val_fraction)));
    if (held >= all)
      throw InputError("data.val_fraction = " + std::to_string(split.val_fraction) + " of " + pattern + " (" +
                           std::to_string(all) + " windows of " + std::to_string(T_ + 1) +
                           " tokens) leaves no window to train on",
                       true);
    first_ = split.held_out ? all - held : 0;
    windows_ = split.held_out ? held : all - held;
  }
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  std::swap(path, o.path);
  std::swap(base, o.base);
  std::swap(map_bytes, o.map_bytes);
  std::swap(map, o.map);
  std::swap(tokens, o.tokens);
  std::swap(width, o.width);
  return *this;
}

MappedFile::~MappedFile() {
  if (map) munmap(map, map_bytes);
}

void FileTokens::sequence(int64_t seq, int64_t T, int32_t* out) const {
  MOE_CHECK(T == T_, "sequence length ", T, " but the source was opened for ", T_);
  const int64_t epoch = seq / windows_, i = seq % windows_;
  const int64_t w =
      first_ + (ordered_ ? i : int64_t(Permutation(windows_, seed_ * 1000003ull + epoch)(i)));
  auto it = std::upper_bound(window_start_.begin(), window_start_.end(), w) - 1;
  const MappedFile& f = files_[it - window_start_.begin()];
  const int64_t start = (w - *it) * T_;
  for (int64_t t = 0; t <= T; ++t) out[t] = int32_t(f.token(start + t));
}

int64_t FileTokens::total_tokens() const {
  int64_t n = 0;
  for (const MappedFile& f : files_) n += f.tokens;
  return n;
}

std::string FileTokens::describe() const {
  std::ostringstream os;
  const int width = files_.empty() ? 2 : files_[0].width;
  os << (kind_ == "llmc"  ? "llm.c shards"
         : kind_ == "bin" ? std::string("token files (uint") + std::to_string(8 * width) + ")"
                          : std::string("text (bytes)"))
     << ": " << files_.size() << " file(s), "
     << total_tokens() << " tokens, " << windows_ << " windows of " << T_ + 1;
  if (first_ > 0 || ordered_) os << (ordered_ ? " (held out)" : " (training split)");
  else if (window_start_.back() != windows_) os << " (training split)";
  return os.str();
}

void write_llmc_shard(const std::string& path, const std::vector<uint16_t>& tokens) {
  std::ofstream f(path, std::ios::binary);
  MOE_CHECK(f, "cannot write ", path);
  int32_t header[256] = {};
  header[0] = kShardMagic;
  header[1] = kShardVersion;
  header[2] = int32_t(tokens.size());
  f.write(reinterpret_cast<const char*>(header), sizeof header);
  f.write(reinterpret_cast<const char*>(tokens.data()), tokens.size() * 2);
}

void check_held_out_apart(const config::DataConfig& d) {
  if (d.val_path.empty()) return;
  const auto train = file_ids(config::data_file(d, d.path));
  for (const auto& [held, id] : file_ids(config::data_file(d, d.val_path)))
    for (const auto& [trained, tid] : train)
      if (id == tid)
        throw InputError("data.val_path = \"" + d.val_path + "\" and data.path = \"" + d.path + "\" both read " +
                             held + (trained != held ? " (as " + trained + ")" : "") +
                             ": held-out data must not be trained on",
                         true);
}

std::unique_ptr<TokenSource> make_source(const config::DataConfig& d, int64_t vocab,
                                         int64_t seq_len, const std::string& split) {
  if (d.kind == "synthetic") {
    uint64_t offset = split == "train" ? 0 : (1ull << 61);
    return std::make_unique<SyntheticLanguage>(vocab, d.branching, d.zipf, d.copy_prob,
                                               d.copy_lag, uint64_t(d.seed), offset, seq_len);
  }
  check_held_out_apart(d);
  const bool val = split != "train";
  const int width = int(d.token_bytes);
  if (val && !d.val_path.empty())
    return std::make_unique<FileTokens>(d.kind, config::data_file(d, d.val_path), vocab, seq_len,
                                        uint64_t(d.seed), WindowSplit{0, true}, width);
  return std::make_unique<FileTokens>(d.kind, config::data_file(d, d.path), vocab, seq_len,
                                      uint64_t(d.seed), WindowSplit{d.val_fraction, val}, width);
}

}  // namespace moe::data
