// libFuzzer target: ckpt::read_manifest (checkpoint manifest.toml) on an arbitrary file. The checks
// are in tests/fuzz/harness.h.
#include "tests/fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::fuzz::manifest_one(data, size);
  return 0;
}
