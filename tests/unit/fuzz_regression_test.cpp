// Replays the fuzz targets' committed seed corpora and crash inputs (tests/fuzz/corpus,
// tests/fuzz/regressions) through the same checks (tests/fuzz/harness.h) in the normal build,
// with the libraries the product links: every input must be accepted or rejected with
// InputError, never crash or throw anything else. scripts/fuzz.sh does the fuzzing itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "tests/fuzz/harness.h"

namespace moe::test {
namespace {

namespace fs = std::filesystem;

int replay(const std::string& target, void (*one)(const uint8_t*, size_t)) {
  int n = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path dir = fs::path(MOE_SOURCE_DIR) / "tests/fuzz" / kind / target;
    if (!fs::exists(dir)) continue;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      SCOPED_TRACE(f.string());
      EXPECT_NO_THROW(one(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
      ++n;
    }
  }
  return n;
}

TEST(FuzzRegressions, Config) { EXPECT_GE(replay("config", fuzz::config_one), 6); }
TEST(FuzzRegressions, Shard) { EXPECT_GE(replay("shard", fuzz::shard_one), 3); }
TEST(FuzzRegressions, Manifest) { EXPECT_GE(replay("manifest", fuzz::manifest_one), 4); }

// The overflow fuzz_manifest found: a shape whose element count does not fit int64.
TEST(FuzzRegressions, ManifestShapeOverflowIsAnInputError) {
  const std::string path =
      std::string(MOE_SOURCE_DIR) + "/tests/fuzz/regressions/manifest/shape_product_overflow.toml";
  try {
    ckpt::read_manifest(path);
    FAIL() << "accepted a shape of 2^62 x 4 elements";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("is too large"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moe::test
