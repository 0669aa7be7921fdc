// Token sources: shard and text reading, file errors, batch order, permutation, synthetic language.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "src/data/files.h"
#include "src/data/synthetic.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

// A fresh directory under the test temp dir, removed with everything in it at the end.
class ScratchDir {
 public:
  ScratchDir() {
    std::string base = testing::TempDir();
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    std::string tmpl = base + "/moe_data_XXXXXX";
    MOE_CHECK(mkdtemp(tmpl.data()), "mkdtemp ", tmpl);
    path_ = tmpl;
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
std::string ReadBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The message of the InputError opening the files throws (every rank opens them alike, so it
// is collective); a test failure if none is thrown.
std::string OpenError(const std::string& kind, const std::string& pattern, int64_t vocab,
                      int64_t T) {
  try {
    data::FileTokens f(kind, pattern, vocab, T, 1);
  } catch (const InputError& e) {
    EXPECT_TRUE(e.collective()) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no InputError opening " << pattern;
  return "";
}

std::vector<int32_t> Sequence(const data::TokenSource& src, int64_t seq, int64_t T) {
  std::vector<int32_t> out(T + 1);
  src.sequence(seq, T, out.data());
  return out;
}

TEST(Data, LlmcShardReadBackExactly) {
  ScratchDir dir;
  // Distinct tokens, high values included (byte order, uint16 range): token at i is 65535 - i.
  const int64_t n = 1000, T = 16, windows = (n - 1) / T;
  std::vector<uint16_t> tokens(n);
  for (int64_t i = 0; i < n; ++i) tokens[i] = uint16_t(65535 - i);
  data::write_llmc_shard(dir.file("a.bin"), tokens);
  data::FileTokens src("llmc", dir.file("a.bin"), 65536, T, 7);
  EXPECT_EQ(src.total_tokens(), n);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::set<int64_t> starts;
    for (int64_t s = 0; s < windows; ++s) {
      std::vector<int32_t> w = Sequence(src, epoch * windows + s, T);
      const int64_t start = 65535 - w[0];
      ASSERT_TRUE(start >= 0 && start + T < n) << "window " << s << " starts at " << start;
      for (int64_t t = 0; t <= T; ++t) ASSERT_EQ(w[t], tokens[start + t]) << "window " << s;
      EXPECT_EQ(start % T, 0) << "windows start on multiples of T";
      starts.insert(start);
    }
    // Every window once per epoch.
    EXPECT_EQ(int64_t(starts.size()), windows) << "epoch " << epoch;
    EXPECT_EQ(*starts.rbegin(), (windows - 1) * T);
  }
}

TEST(Data, GlobReadsEveryShardOnce) {
  ScratchDir dir;
  const int64_t T = 8;
  const std::vector<int64_t> sizes = {300, 257, 400};
  std::map<int32_t, std::pair<int, int64_t>> where;  // token -> (file, position)
  int64_t windows = 0;
  uint16_t next = 0;
  for (size_t f = 0; f < sizes.size(); ++f) {
    std::vector<uint16_t> tokens(sizes[f]);
    for (int64_t i = 0; i < sizes[f]; ++i) {
      where[next] = {int(f), i};
      tokens[i] = next++;
    }
    data::write_llmc_shard(dir.file("shard_" + std::to_string(f) + ".bin"), tokens);
    windows += (sizes[f] - 1) / T;
  }
  WriteBytes(dir.file("notes.txt"), "not a shard");  // outside the glob
  data::FileTokens src("llmc", dir.file("shard_*.bin"), 4096, T, 3);
  EXPECT_EQ(src.total_tokens(), 300 + 257 + 400);
  std::set<int32_t> firsts;
  std::vector<int64_t> per_file(sizes.size(), 0);
  for (int64_t s = 0; s < windows; ++s) {
    std::vector<int32_t> w = Sequence(src, s, T);
    auto [file, pos] = where.at(w[0]);
    EXPECT_EQ(pos % T, 0);
    // Windows never straddle two files and lie wholly inside one.
    ASSERT_LE(pos + T, sizes[file] - 1) << "window past the end of file " << file;
    ++per_file[file];
    for (int64_t t = 1; t <= T; ++t) EXPECT_EQ(where.at(w[t]), std::make_pair(file, pos + t));
    firsts.insert(w[0]);
  }
  EXPECT_EQ(int64_t(firsts.size()), windows);
  for (size_t f = 0; f < sizes.size(); ++f) EXPECT_EQ(per_file[f], (sizes[f] - 1) / T) << f;
}

TEST(Data, MalformedShardsNameTheFile) {
  ScratchDir dir;
  const int64_t T = 16;
  std::vector<uint16_t> good(100);
  for (int i = 0; i < 100; ++i) good[i] = uint16_t(i % 50);
  auto shard = [&](const std::string& name, const std::vector<uint16_t>& tokens) {
    data::write_llmc_shard(dir.file(name), tokens);
    return dir.file(name);
  };
  auto patch_header = [&](const std::string& path, int word, int32_t value) {
    std::string b = ReadBytes(path);
    std::memcpy(&b[4 * word], &value, 4);
    WriteBytes(path, b);
  };
  struct Case {
    std::string path, reason;
  };
  std::vector<Case> cases;
  std::string p = shard("truncated.bin", good);
  std::filesystem::resize_file(p, std::filesystem::file_size(p) - 3);
  cases.push_back({p, "truncated"});
  p = shard("header_only.bin", good);
  std::filesystem::resize_file(p, 500);
  cases.push_back({p, "truncated"});
  p = shard("magic.bin", good);
  patch_header(p, 0, 20240521);
  cases.push_back({p, "magic"});
  p = shard("version.bin", good);
  patch_header(p, 1, 2);
  cases.push_back({p, "version"});
  std::vector<uint16_t> big = good;
  big[37] = 50;  // == vocab
  cases.push_back({shard("vocab.bin", big), "vocab"});
  cases.push_back({shard("short.bin", std::vector<uint16_t>(T, 1)), "sequence"});
  cases.push_back({dir.file("missing.bin"), ""});
  for (const Case& c : cases) {
    std::string msg = OpenError("llmc", c.path, 50, T);
    EXPECT_TRUE(Contains(msg, c.path));
    EXPECT_TRUE(Contains(msg, c.reason)) << c.path;
  }
  // The boundaries are accepted: token vocab - 1, exactly T + 1 tokens (one window).
  std::vector<uint16_t> edge(T + 1, 49);
  data::FileTokens ok("llmc", shard("edge.bin", edge), 50, T, 1);
  EXPECT_EQ(Sequence(ok, 0, T), std::vector<int32_t>(T + 1, 49));
  EXPECT_EQ(Sequence(ok, 1, T), std::vector<int32_t>(T + 1, 49));  // epoch 2: the same window
}

TEST(Data, BadShardInsideAGlobIsNamed) {
  ScratchDir dir;
  data::write_llmc_shard(dir.file("s0.bin"), std::vector<uint16_t>(64, 3));
  data::write_llmc_shard(dir.file("s1.bin"), std::vector<uint16_t>(64, 3));
  std::filesystem::resize_file(dir.file("s1.bin"), 1024 + 100);
  std::string msg = OpenError("llmc", dir.file("s*.bin"), 10, 8);
  EXPECT_TRUE(Contains(msg, dir.file("s1.bin")));
  // A glob matching nothing names the pattern.
  msg = OpenError("llmc", dir.file("nothing_*.bin"), 10, 8);
  EXPECT_TRUE(Contains(msg, dir.file("nothing_*.bin")));
}

TEST(Data, TextFilesAreBytes) {
  ScratchDir dir;
  std::string text;
  for (int i = 0; i < 600; ++i) text.push_back(char((i * 7 + 3) % 256));  // every byte value
  WriteBytes(dir.file("t.txt"), text);
  const int64_t T = 10, windows = (600 - 1) / T;
  data::FileTokens src("text", dir.file("t.txt"), 256, T, 5);
  EXPECT_EQ(src.total_tokens(), 600);
  std::set<int64_t> starts;
  for (int64_t s = 0; s < windows; ++s) {
    std::vector<int32_t> w = Sequence(src, s, T);
    // Find the window by content: tokens are unsigned bytes in order.
    int64_t start = -1;
    for (int64_t i = 0; i + T < 600 && start < 0; i += T) {
      bool match = true;
      for (int64_t t = 0; t <= T && match; ++t) match = w[t] == int32_t(uint8_t(text[i + t]));
      if (match) start = i;
    }
    ASSERT_GE(start, 0) << "window " << s << " is not a run of the file";
    starts.insert(start);
  }
  EXPECT_EQ(int64_t(starts.size()), windows);
  EXPECT_TRUE(Contains(OpenError("text", dir.file("t.txt"), 255, T), dir.file("t.txt")));
  WriteBytes(dir.file("empty.txt"), "");
  EXPECT_TRUE(Contains(OpenError("text", dir.file("empty.txt"), 256, T), dir.file("empty.txt")));
}

// Inputs of load_batch on every rank of a `world`-rank layout, concatenated in rank order.
std::vector<int32_t> GatherBatch(const data::TokenSource& src, int64_t step, int64_t B, int64_t T,
                                 int world, std::vector<int32_t>* targets) {
  std::vector<int32_t> in;
  targets->clear();
  for (int r = 0; r < world; ++r) {
    data::LocalBatch lb;
    data::load_batch(src, step, B, T, r, world, lb);
    EXPECT_EQ(int64_t(lb.inputs.size()), B / world * T);
    in.insert(in.end(), lb.inputs.begin(), lb.inputs.end());
    targets->insert(targets->end(), lb.targets.begin(), lb.targets.end());
  }
  return in;
}

TEST(Data, BatchOrderIsIndependentOfRanks) {
  ScratchDir dir;
  std::vector<uint16_t> tokens(3000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = uint16_t(i);
  data::write_llmc_shard(dir.file("b.bin"), tokens);
  const int64_t T = 12, B = 8;
  data::FileTokens files("llmc", dir.file("b.bin"), 4096, T, 2);
  data::SyntheticLanguage synth(50, 4, 1.1, 0.2, 3, 9, 0, T);
  for (const data::TokenSource* src : {static_cast<const data::TokenSource*>(&files),
                                       static_cast<const data::TokenSource*>(&synth)}) {
    for (int64_t step : {0, 3, 40}) {  // step 40 wraps into the second epoch of the file
      std::vector<int32_t> t1, t2, t4;
      std::vector<int32_t> one = GatherBatch(*src, step, B, T, 1, &t1);
      EXPECT_EQ(GatherBatch(*src, step, B, T, 2, &t2), one) << src->describe();
      EXPECT_EQ(GatherBatch(*src, step, B, T, 4, &t4), one) << src->describe();
      EXPECT_EQ(t2, t1);
      EXPECT_EQ(t4, t1);
      // Batch `step` is sequences [step*B, (step+1)*B); targets are the inputs shifted by one.
      for (int64_t b = 0; b < B; ++b) {
        std::vector<int32_t> s = Sequence(*src, step * B + b, T);
        for (int64_t t = 0; t < T; ++t) {
          EXPECT_EQ(one[b * T + t], s[t]);
          EXPECT_EQ(t1[b * T + t], s[t + 1]);
        }
      }
    }
  }
}

TEST(Data, PermutationIsABijection) {
  for (uint64_t n : {1ull, 2ull, 3ull, 5ull, 7ull, 16ull, 17ull, 100ull, 1000ull, 4097ull})
    for (uint64_t seed : {0ull, 1ull, 12345ull}) {
      data::Permutation p(n, seed);
      std::vector<bool> hit(n, false);
      for (uint64_t i = 0; i < n; ++i) {
        uint64_t j = p(i);
        ASSERT_LT(j, n) << "n " << n;
        ASSERT_FALSE(hit[j]) << "n " << n << " seed " << seed << ": " << j << " twice";
        hit[j] = true;
      }
    }
  // Seeds give different orders, and an order is not close to the identity.
  for (uint64_t n : {100ull, 1000ull}) {
    data::Permutation a(n, 1), b(n, 2);
    int same = 0, fixed = 0;
    for (uint64_t i = 0; i < n; ++i) {
      same += a(i) == b(i);
      fixed += a(i) == i;
    }
    EXPECT_LT(same, int(n) / 10) << n;
    EXPECT_LT(fixed, int(n) / 10) << n;
  }
}

TEST(Data, SyntheticIsDeterministicAndInRange) {
  const int64_t V = 40, T = 50;
  data::SyntheticLanguage a(V, 5, 1.2, 0.15, 4, 11, 0, T), b(V, 5, 1.2, 0.15, 4, 11, 0, T);
  data::SyntheticLanguage other_seed(V, 5, 1.2, 0.15, 4, 12, 0, T);
  for (int64_t s : {0, 1, 999}) {
    std::vector<int32_t> x = Sequence(a, s, T);
    EXPECT_EQ(x, Sequence(b, s, T));
    EXPECT_NE(x, Sequence(other_seed, s, T));
    EXPECT_NE(x, Sequence(a, s + 1, T));
    for (int32_t tok : x) {
      EXPECT_GE(tok, 0);
      EXPECT_LT(tok, V);
    }
  }
  config::DataConfig dc;
  auto train = data::make_source(dc, 64, T, "train"), val = data::make_source(dc, 64, T, "val");
  EXPECT_NE(Sequence(*train, 0, T), Sequence(*val, 0, T)) << "val must be a different stream";
}

TEST(Data, SyntheticSuccessorsFollowZipf) {
  const int64_t V = 16, Bf = 4, T = 64, S = 4000;
  const double zipf = 1.2;
  data::SyntheticLanguage lang(V, Bf, zipf, /*copy_prob=*/0.0, /*copy_lag=*/4, 21, 0, T);
  // The chain's rows from prob(): Bf successors with weights (rank)^-zipf / Z.
  double Z = 0;
  for (int64_t j = 1; j <= Bf; ++j) Z += std::pow(double(j), -zipf);
  std::vector<double> q(V * V);
  for (int32_t s = 0; s < V; ++s) {
    std::vector<double> row;
    for (int32_t x = 0; x < V; ++x) {
      int32_t ctx[2] = {s, x};
      q[s * V + x] = lang.prob(ctx, 1, x);
      if (q[s * V + x] > 0) row.push_back(q[s * V + x]);
    }
    ASSERT_EQ(int64_t(row.size()), Bf) << "token " << s;
    std::sort(row.rbegin(), row.rend());
    for (int64_t j = 0; j < Bf; ++j) EXPECT_NEAR(row[j], std::pow(double(j + 1), -zipf) / Z, 1e-12);
  }
  // Empirical successor frequencies within 5 binomial standard errors of q.
  std::vector<int64_t> pair(V * V, 0), from(V, 0);
  for (int64_t i = 0; i < S; ++i) {
    std::vector<int32_t> x = Sequence(lang, i, T);
    for (int64_t t = 1; t <= T; ++t) {
      ++pair[x[t - 1] * V + x[t]];
      ++from[x[t - 1]];
    }
  }
  for (int32_t s = 0; s < V; ++s) {
    ASSERT_GT(from[s], 300) << "too few visits of " << s;
    for (int32_t x = 0; x < V; ++x) {
      const double p = q[s * V + x], f = double(pair[s * V + x]) / from[s];
      if (p == 0) {
        EXPECT_EQ(pair[s * V + x], 0) << s << " -> " << x << " is not a successor";
      } else {
        EXPECT_NEAR(f, p, 5 * std::sqrt(p * (1 - p) / from[s])) << s << " -> " << x;
      }
    }
  }
}

TEST(Data, SyntheticCopyRuleIsVisible) {
  const int64_t V = 32, T = 64, S = 2000, lag = 5;
  const double copy = 0.3;
  data::SyntheticLanguage lang(V, 4, 1.0, copy, lag, 8, 0, T);
  // Per position t >= lag: how often x_t repeats x_{t-lag}, and the sum of the model's
  // probability of that repeat, q(x_t = x_{t-lag} | past); they must agree at every position
  // (the first copy position included), not just on average.
  std::vector<int64_t> hits(T + 1, 0);
  std::vector<double> expected(T + 1, 0.0);
  for (int64_t i = 0; i < S; ++i) {
    std::vector<int32_t> x = Sequence(lang, i, T);
    for (int64_t t = lag; t <= T; ++t) {
      hits[t] += x[t] == x[t - lag];
      expected[t] += lang.prob(x.data(), t, x[t - lag]);
    }
  }
  int64_t all = 0;
  for (int64_t t = lag; t <= T; ++t) {
    const double q = expected[t] / S, se = std::sqrt(q * (1 - q) / S);
    EXPECT_NEAR(double(hits[t]) / S, q, 5 * se + 1e-9) << "position " << t;
    all += hits[t];
  }
  const int64_t count = S * (T - lag + 1);
  const double frac = double(all) / count, se = std::sqrt(frac * (1 - frac) / count);
  EXPECT_GE(frac - 3 * se, copy);  // the copies alone give copy_prob; chance repeats add more
}

TEST(Data, SyntheticEntropyMatchesMonteCarlo) {
  const int64_t V = 64, T = 32, S = 4096;
  data::SyntheticLanguage lang(V, 8, 1.2, 0.15, 8, 3, 0, T);
  std::optional<double> h = lang.entropy();
  ASSERT_TRUE(h.has_value());
  EXPECT_TRUE(std::isfinite(*h));
  EXPECT_GT(*h, 0.0);
  EXPECT_LT(*h, std::log(double(V)));  // better than uniform: the chain is sparse
  // Independent estimate: mean per-token negative log-probability on the training stream.
  double sum = 0, sum2 = 0;
  for (int64_t i = 0; i < S; ++i) {
    std::vector<int32_t> x = Sequence(lang, i, T);
    double nll = 0;
    for (int64_t t = 1; t <= T; ++t) nll -= std::log(lang.prob(x.data(), t, x[t]));
    nll /= T;
    sum += nll;
    sum2 += nll * nll;
  }
  const double mc = sum / S, mc_se = std::sqrt((sum2 / S - mc * mc) / S);
  const double se = std::sqrt(mc_se * mc_se + lang.entropy_stderr() * lang.entropy_stderr());
  EXPECT_GT(lang.entropy_stderr(), 0.0);
  EXPECT_NEAR(*h, mc, 3 * se + 0.01);
}

}  // namespace
}  // namespace moe::test
