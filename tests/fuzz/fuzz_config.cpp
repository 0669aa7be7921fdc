// libFuzzer target: config::parse_config on arbitrary text. The checks are in tests/fuzz/harness.h.
#include "tests/fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::fuzz::config_one(data, size);
  return 0;
}
