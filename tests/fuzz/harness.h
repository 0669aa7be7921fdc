// What each fuzz target does with one input, shared by the libFuzzer targets (tests/fuzz/*.cpp,
// built with clang and -fsanitize=fuzzer,address,undefined) and by the regression test that
// replays the committed corpora and crash inputs in the normal build
// (tests/unit/fuzz_regression_test.cpp). Input is accepted or rejected with InputError; any other
// exception escapes (a finding), and a broken invariant aborts.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "src/ckpt/manifest.h"
#include "src/config/config.h"
#include "src/core/error.h"
#include "src/data/files.h"

namespace moe::fuzz {

[[noreturn]] inline void broken(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz invariant broken: %s: %s\n", what, detail.c_str());
  std::abort();
}

// A scratch file (one name per process and tag) holding the input, removed when done.
struct Scratch {
  std::string path;
  Scratch(const char* tag, const uint8_t* data, size_t size)
      : path("/tmp/moe_fuzz_" + std::string(tag) + "_" + std::to_string(::getpid())) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) broken("scratch file", path);
    for (size_t done = 0; done < size;) {
      ssize_t n = ::write(fd, data + done, size - done);
      if (n <= 0) broken("scratch write", path);
      done += size_t(n);
    }
    ::close(fd);
  }
  ~Scratch() { ::unlink(path.c_str()); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// config::parse_config on arbitrary text (world sizes 0 = unchecked and 4). An accepted config
// must survive its own resolved form: to_toml, parsed again, gives the same text.
inline void config_one(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (int world : {0, 4}) {
    config::Config c;
    try {
      c = config::parse_config(text, "fuzz.toml", {}, world);
    } catch (const InputError&) {
      continue;
    }
    const std::string once = config::to_toml(c);
    std::string twice;
    try {
      twice = config::to_toml(config::parse_config(once, "resolved.toml", {}, world));
    } catch (const InputError& e) {
      broken("the resolved config does not parse", e.what());
    }
    if (once != twice) broken("the resolved config changes when re-read", once + "\n---\n" + twice);
  }
}

// data::FileTokens on an arbitrary file, as an llm.c shard, as a flat token file of 2- and 4-byte
// tokens, and as text. An accepted file must give in-vocabulary tokens for any sequence.
inline void shard_one(const uint8_t* data, size_t size) {
  const Scratch file("shard", data, size);
  const std::string& path = file.path;
  struct Kind {
    const char* kind;
    int64_t vocab, T;
    int token_bytes;
  };
  for (Kind k : {Kind{"llmc", 512, 8, 2}, Kind{"llmc", 65536, 1, 2}, Kind{"bin", 512, 8, 2},
                 Kind{"bin", 100000, 2, 4}, Kind{"text", 256, 4, 2}}) {
    try {
      data::FileTokens src(k.kind, path, k.vocab, k.T, 1, {}, k.token_bytes);
      int32_t out[9];
      for (int64_t seq : {int64_t(0), int64_t(1), int64_t(7), int64_t(1) << 40}) {
        src.sequence(seq, k.T, out);
        for (int64_t t = 0; t <= k.T; ++t)
          if (out[t] < 0 || out[t] >= k.vocab)
            broken("token outside the vocabulary",
                   std::string(k.kind) + " " + std::to_string(out[t]));
      }
    } catch (const InputError&) {
    }
  }
}

// ckpt::read_manifest on an arbitrary file. An accepted manifest must survive being written
// back (manifest_to_toml) and read again.
inline void manifest_one(const uint8_t* data, size_t size) {
  ckpt::Manifest m;
  try {
    const Scratch file("manifest", data, size);
    m = ckpt::read_manifest(file.path);
  } catch (const InputError&) {
    return;
  }
  const std::string again_text = ckpt::manifest_to_toml(m);
  const Scratch again("manifest_again", reinterpret_cast<const uint8_t*>(again_text.data()),
                      again_text.size());
  try {
    ckpt::Manifest m2 = ckpt::read_manifest(again.path);
    if (m2.params.size() != m.params.size() || m2.shards.size() != m.shards.size() ||
        m2.step != m.step || m2.config != m.config)
      broken("a manifest changes when written back", again_text);
  } catch (const InputError& e) {
    broken("a manifest written back does not read", e.what());
  }
}

}  // namespace moe::fuzz
