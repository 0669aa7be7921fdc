// libFuzzer target: data::FileTokens (llm.c shard and text readers) on an arbitrary file. The
// checks are in tests/fuzz/harness.h.
#include "tests/fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::fuzz::shard_one(data, size);
  return 0;
}
