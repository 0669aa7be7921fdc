// Held-out evaluation batches and the paper's data files: the windows an evaluation reads are
// spread over the whole held-out split (and the same whatever the seed, world size or
// micro-batch); asking for more than the split (or the synthetic stream's bound) holds, or
// holding out training files, is refused naming the key; flat token files (data.kind = "bin")
// are read as the paper's loader reads train.bin and val.bin.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "src/core/error.h"
#include "src/data/files.h"
#include "src/data/held_out.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

namespace fs = std::filesystem;

struct Scratch {
  Scratch() {
    std::string tmpl = fs::temp_directory_path().string() + "/moe_held_out_XXXXXX";
    MOE_CHECK(mkdtemp(tmpl.data()), "mkdtemp ", tmpl);
    path = tmpl;
  }
  ~Scratch() { fs::remove_all(path); }
  std::string file(const std::string& n) const { return path + "/" + n; }
  std::string path;
};

// A flat file of n tokens of `width` bytes, token i = i mod `mod`: a window's first token says
// where it starts.
std::string flat_file(const Scratch& dir, const std::string& name, int64_t n, int width, int64_t mod = 60000) {
  std::ofstream f(dir.file(name), std::ios::binary);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t t = uint32_t(i % mod);
    f.write(reinterpret_cast<const char*>(&t), width);  // little-endian host: the low bytes
  }
  return dir.file(name);
}

std::vector<int32_t> window(const data::TokenSource& s, int64_t seq, int64_t T) {
  std::vector<int32_t> out(T + 1);
  s.sequence(seq, T, out.data());
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    EXPECT_TRUE(e.collective()) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no InputError";
  return "";
}

// The paper's loader: chunk i of a flat file is tokens [i T, i T + T] (inputs, then targets
// shifted by one), non-overlapping inputs at stride T; in uint16 and in uint32.
TEST(HeldOut, FlatTokenFilesReadAsThePapersLoader) {
  Scratch dir;
  const int64_t T = 8;
  for (int width : {2, 4}) {
    SCOPED_TRACE(width);
    const int64_t mod = width == 2 ? 65000 : 100000;  // 4-byte files hold ids beyond uint16
    const std::string path = flat_file(dir, "train" + std::to_string(width) + ".bin", 8 * T + 3, width, mod);
    data::FileTokens src("bin", path, mod, T, 1, {0, /*held_out=*/true}, width);
    ASSERT_EQ(*src.windows(), 8);  // floor((n - 1) / T)
    for (int64_t w = 0; w < 8; ++w) {
      const auto s = window(src, w, T);
      for (int64_t t = 0; t <= T; ++t) EXPECT_EQ(s[t], w * T + t);
    }
    EXPECT_TRUE(Contains(src.describe(), "uint" + std::to_string(8 * width)));
  }
  // Tokens beyond uint16 are read whole from 4-byte files.
  const std::string wide = flat_file(dir, "wide.bin", 2 * T + 1, 4, 200000);
  std::ofstream(wide, std::ios::binary | std::ios::in | std::ios::out).seekp(4 * 3).write("\x40\x0d\x03\x00", 4);
  data::FileTokens w("bin", wide, 200001, T, 1, {0, true}, 4);
  EXPECT_EQ(window(w, 0, T)[3], 200000);  // 0x00030d40
}

TEST(HeldOut, BadFlatFilesNameTheFileAndOffset) {
  Scratch dir;
  const std::string odd = flat_file(dir, "odd.bin", 100, 2);
  fs::resize_file(odd, 201);
  std::string msg = error_of([&] { data::FileTokens("bin", odd, 65536, 8, 1, {}, 2); });
  EXPECT_TRUE(Contains(msg, odd + ": 201 bytes is not a whole number of 2-byte tokens")) << msg;
  // 4-byte tokens 0..99: token 64 is the first >= vocab 64, at position 64, byte offset 256.
  const std::string big = flat_file(dir, "big.bin", 100, 4);
  msg = error_of([&] { data::FileTokens("bin", big, 64, 8, 1, {}, 4); });
  EXPECT_TRUE(Contains(msg, big + ": token 64 at position 64 (byte offset 256) is outside the vocabulary")) << msg;
  // The first bad token of a file longer than one scanning block (65536 tokens).
  const std::string late = flat_file(dir, "late.bin", 200000, 2, 1000);
  std::ofstream(late, std::ios::binary | std::ios::in | std::ios::out).seekp(2 * 150001).write("\xe8\x03", 2);
  msg = error_of([&] { data::FileTokens("bin", late, 1000, 8, 1, {}, 2); });
  EXPECT_TRUE(Contains(msg, "token 1000 at position 150001 (byte offset 300002)")) << msg;
}

// Evaluation windows: evenly spread from the split's first tenth to its last, distinct, the
// same for any seed; and what each rank and micro-batch reads is its share of the same set.
TEST(HeldOut, EvalWindowsSpanTheWholeSplit) {
  Scratch dir;
  const int64_t T = 10, W = 1000;  // val.bin: 1000 windows, window w starts at token 10 w
  config::DataConfig d = file_data("bin", flat_file(dir, "train.bin", 300 * T + 1, 2), flat_file(dir, "val.bin", W * T + 1, 2));
  for (int64_t batches : {1, 4, 16}) {
    const int64_t B = 8, n = batches * B;
    std::set<int64_t> starts;
    for (int64_t seed : {1, 7}) {
      d.seed = seed;
      auto src = data::make_eval_source(d, 65536, T, batches, B, "train.eval_batches");
      ASSERT_EQ(*src->windows(), n);
      std::set<int64_t> these;
      for (int64_t i = 0; i < n; ++i) these.insert(window(*src, i, T)[0] / T);
      if (starts.empty()) starts = these;
      EXPECT_EQ(these, starts) << "seed " << seed;
    }
    EXPECT_EQ(int64_t(starts.size()), n) << "a window read twice";
    EXPECT_LT(*starts.begin(), W / 10) << batches;
    EXPECT_GE(*starts.rbegin(), W - W / 10) << batches;
    // Evenly: consecutive chosen windows are floor(W / n) or ceil(W / n) apart.
    int64_t prev = -1;
    for (int64_t s : starts) {
      if (prev >= 0) EXPECT_LE(s - prev, (W + n - 1) / n);
      if (prev >= 0) EXPECT_GE(s - prev, W / n);
      prev = s;
    }
  }
  // The global batch b of an evaluation, as 1 rank or 2 ranks with micro-batches of 2, reads
  // the same windows.
  auto src = data::make_eval_source(d, 65536, T, 4, 8, "train.eval_batches");
  for (int64_t b = 0; b < 4; ++b) {
    data::LocalBatch whole;
    data::load_batch(*src, b, 8, T, 0, 1, whole);
    std::vector<int32_t> parts;
    for (int r = 0; r < 2; ++r)
      for (int64_t m = 0; m < 2; ++m) {
        data::LocalBatch p;
        data::load_batch(*src, b, 8, T, r, 2, p, 2, m);
        parts.insert(parts.end(), p.inputs.begin(), p.inputs.end());
      }
    EXPECT_EQ(parts, whole.inputs) << "batch " << b;
  }
}

TEST(HeldOut, SpreadWindowIsExactForHugeSplits) {
  // The middle of each of n equal stretches: floor((2 i + 1) W / (2 n)). i * W would overflow
  // int64 here.
  const int64_t W = int64_t(1) << 40, n = int64_t(1) << 30;
  EXPECT_EQ(data::spread_window(0, n, W), 512);
  EXPECT_EQ(data::spread_window(n - 1, n, W), W - 512);
  EXPECT_EQ(data::spread_window(3, 7, 10), 5);  // floor(70 / 14)
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(data::spread_window(i, 10, 10), i);  // all, in order
}

TEST(HeldOut, AskingForMoreThanTheSplitHoldsNamesTheKey) {
  Scratch dir;
  const int64_t T = 10;
  config::DataConfig d = file_data("bin", flat_file(dir, "train.bin", 300 * T + 1, 2), flat_file(dir, "val.bin", 100 * T + 1, 2));
  EXPECT_NO_THROW(data::make_eval_source(d, 65536, T, 12, 8, "train.eval_batches"));  // 96 of 100
  std::string msg = error_of([&] { data::make_eval_source(d, 65536, T, 13, 8, "train.eval_batches"); });
  EXPECT_TRUE(Contains(msg, "train.eval_batches = 13 x train.batch = 8 held-out sequences")) << msg;
  EXPECT_TRUE(Contains(msg, "use train.eval_batches <= 12")) << msg;
  msg = error_of([&] { data::make_eval_source(d, 65536, T, int64_t(1) << 62, 8, "--batches"); });  // overflows
  EXPECT_TRUE(Contains(msg, "use --batches <= 12")) << msg;
  // The synthetic stream: up to kMaxSyntheticEvalSequences, not one more.
  config::DataConfig syn;
  EXPECT_NO_THROW(data::make_eval_source(syn, 64, T, data::kMaxSyntheticEvalSequences / 8, 8, "--batches"));
  msg = error_of([&] { data::make_eval_source(syn, 64, T, data::kMaxSyntheticEvalSequences / 8 + 1, 8, "--batches"); });
  EXPECT_TRUE(Contains(msg, "above the 1048576")) << msg;
  EXPECT_TRUE(Contains(msg, "use --batches <= 131072")) << msg;
}

// Held-out files that are training files, by any name: refused, naming both keys and the file.
TEST(HeldOut, HeldOutFilesMustNotBeTrainingFiles) {
  Scratch dir;
  const std::string a = flat_file(dir, "a.bin", 1001, 2), b = flat_file(dir, "b.bin", 1001, 2);
  fs::create_symlink(a, dir.file("link.bin"));
  fs::create_hard_link(a, dir.file("hard.bin"));
  struct Case {
    config::DataConfig d;
    std::string named;
  };
  config::DataConfig in_dir = file_data("bin", "a.bin", "./a.bin");
  in_dir.dir = dir.path;
  const std::vector<Case> bad = {{file_data("bin", a, a), a},
                                 {file_data("bin", dir.file("*.bin"), b), b},
                                 {file_data("bin", a, dir.file("link.bin")), dir.file("link.bin") + " (as " + a + ")"},
                                 {file_data("bin", a, dir.file("hard.bin")), dir.file("hard.bin")},
                                 {in_dir, dir.path + "/./a.bin (as " + dir.path + "/a.bin)"}};
  for (const Case& c : bad) {
    for (const char* split : {"train", "val"}) {
      const std::string msg = error_of([&] { data::make_source(c.d, 65536, 10, split); });
      EXPECT_TRUE(Contains(msg, "data.val_path = \"" + c.d.val_path + "\" and data.path = \"" + c.d.path +
                                    "\" both read " + c.named))
          << msg;
    }
  }
  // Other files are fine, and so is a training path that does not exist here (a checkpoint
  // evaluated on another machine): only the held-out files are opened then.
  EXPECT_NO_THROW(data::make_source(file_data("bin", a, b), 65536, 10, "val"));
  EXPECT_NO_THROW(data::make_source(file_data("bin", dir.file("gone/*.bin"), b), 65536, 10, "val"));
}

}  // namespace
}  // namespace moe::test
