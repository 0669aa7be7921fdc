// Held-out validation data and micro-batches: the split of files into training and held-out
// windows (disjoint, held-out in file order whatever the seed), val_path, the errors that name
// data.val_fraction, and micro-batches that read exactly their step's sequences.
#include <unistd.h>

#include <filesystem>
#include <set>

#include "src/core/error.h"
#include "src/data/files.h"
#include "src/data/source.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

struct Scratch {
  Scratch() {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/moe_split_XXXXXX";
    MOE_CHECK(mkdtemp(tmpl.data()), "mkdtemp ", tmpl);
    path = tmpl;
  }
  ~Scratch() { std::filesystem::remove_all(path); }
  std::string file(const std::string& n) const { return path + "/" + n; }
  std::string path;
};

// A shard whose token i is i mod 4096: a window's first token names its start.
std::string counting_shard(const Scratch& dir, const std::string& name, size_t n) {
  std::vector<uint16_t> tokens(n);
  for (size_t i = 0; i < n; ++i) tokens[i] = uint16_t(i % 4096);
  data::write_llmc_shard(dir.file(name), tokens);
  return dir.file(name);
}

int32_t first_token(const data::TokenSource& s, int64_t seq, int64_t T) {
  std::vector<int32_t> out(T + 1);
  s.sequence(seq, T, out.data());
  return out[0];
}

TEST(DataSplit, HeldOutWindowsAreTheLastOnesInOrderAndNeverTrained) {
  Scratch dir;
  const int64_t T = 10;
  const std::string path = counting_shard(dir, "a.bin", 1001);  // 100 windows of 11 tokens
  auto train = data::make_source(file_data("llmc", path, "", 0.1), 4096, T, "train");
  auto val = data::make_source(file_data("llmc", path, "", 0.1), 4096, T, "val");
  ASSERT_EQ(*train->windows(), 90);
  ASSERT_EQ(*val->windows(), 10);
  std::set<int32_t> trained;
  for (int64_t s = 0; s < 3 * 90; ++s) trained.insert(first_token(*train, s, T));  // three epochs
  EXPECT_EQ(trained.size(), 90u);
  EXPECT_LT(*trained.rbegin(), 900);  // windows 0..89 start at 0, 10, ..., 890
  for (int64_t s = 0; s < 10; ++s) EXPECT_EQ(first_token(*val, s, T), 900 + 10 * s);
  // The held-out batches do not depend on the data seed (training order does).
  auto val7 = data::make_source(file_data("llmc", path, "", 0.1, 7), 4096, T, "val");
  auto train7 = data::make_source(file_data("llmc", path, "", 0.1, 7), 4096, T, "train");
  bool order_differs = false;
  for (int64_t s = 0; s < 10; ++s) {
    EXPECT_EQ(first_token(*val7, s, T), first_token(*val, s, T));
    order_differs |= first_token(*train7, s, T) != first_token(*train, s, T);
  }
  EXPECT_TRUE(order_differs);
  EXPECT_TRUE(Contains(val->describe(), "held out"));
  EXPECT_TRUE(Contains(train->describe(), "training split"));
}

TEST(DataSplit, ValPathIsReadWholeAndInOrder) {
  Scratch dir;
  const int64_t T = 10;
  config::DataConfig d = file_data("llmc", counting_shard(dir, "train.bin", 1001));
  d.val_path = counting_shard(dir, "val.bin", 221);  // 22 windows
  auto train = data::make_source(d, 4096, T, "train");
  auto val = data::make_source(d, 4096, T, "val");
  EXPECT_EQ(*train->windows(), 100);
  EXPECT_EQ(*val->windows(), 22);
  for (int64_t s = 0; s < 22; ++s) EXPECT_EQ(first_token(*val, s, T), 10 * s);
}

TEST(DataSplit, AFractionThatLeavesNothingToTrainOnIsNamed) {
  Scratch dir;
  const std::string path = counting_shard(dir, "tiny.bin", 23);  // 2 windows of 11
  try {
    data::make_source(file_data("llmc", path, "", 0.5), 4096, 10, "train");  // rounds to 1 held out: fine
    data::make_source(file_data("llmc", path, "", 0.5), 4096, 20, "train");  // 1 window: nothing left
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_TRUE(e.collective());
    EXPECT_TRUE(Contains(e.what(), "data.val_fraction"));
    EXPECT_TRUE(Contains(e.what(), path));
  }
}

TEST(DataSplit, MicroBatchesReadTheStepsSequences) {
  Scratch dir;
  const int64_t T = 10, B = 8;
  auto src = data::make_source(file_data("llmc", counting_shard(dir, "m.bin", 5001)), 4096, T, "train");
  for (int world : {1, 2}) {
    for (int r = 0; r < world; ++r) {
      data::LocalBatch whole;
      data::load_batch(*src, 3, B, T, r, world, whole);
      std::vector<int32_t> joined;
      const int64_t micro = 2, n = B / world / micro;
      for (int64_t m = 0; m < n; ++m) {
        data::LocalBatch part;
        data::load_batch(*src, 3, B, T, r, world, part, micro, m);
        ASSERT_EQ(int64_t(part.inputs.size()), micro * T);
        joined.insert(joined.end(), part.inputs.begin(), part.inputs.end());
      }
      EXPECT_EQ(joined, whole.inputs) << "world " << world << " rank " << r;
    }
  }
}

}  // namespace
}  // namespace moe::test
