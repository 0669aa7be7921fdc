// Config parsing: defaults, keys, type/unknown-key errors, --set, validation, to_toml round trip.
#include "src/config/config.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "src/core/error.h"
#include "tests/test_util.h"

namespace moe::test {
namespace {

using config::Config;

const char* const kOrigin = "cfg_under_test.toml";

// Most cases here are about other keys, in configs at the base shape with the default preset
// (mssp), which needs a regime there: give it one unless the case speaks of the regime itself.
Config parse_config(const std::string& text, const std::string& origin, std::vector<std::string> sets,
                    int world_size = 0) {
  bool named = text.find("regime") != std::string::npos;
  for (const std::string& s : sets) named = named || s.find("regime") != std::string::npos;
  if (!named) sets.insert(sets.begin(), "parameterization.regime=III");
  return config::parse_config(text, origin, sets, world_size);
}

// Parses `text` expecting an InputError; returns its message (empty and a failure if none).
// Every config error is reached by all ranks alike, so it must be collective and exit code 2.
std::string ParseError(const std::string& text, const std::vector<std::string>& sets = {},
                       int world_size = 0) {
  try {
    parse_config(text, kOrigin, sets, world_size);
  } catch (const InputError& e) {
    EXPECT_TRUE(e.collective()) << e.what();
    EXPECT_EQ(e.exit_code(), kExitBadInput);
    return e.what();
  }
  ADD_FAILURE() << "no InputError for:\n" << text;
  return "";
}

TEST(Config, EmptyTextGivesDocumentedDefaults) {
  Config c = parse_config("", kOrigin, {});
  // The defaults that architecture.md and configs/default.toml document.
  EXPECT_EQ(c.run.dir, "runs/default");
  EXPECT_EQ(c.model.vocab, 512);
  EXPECT_EQ(c.model.seq_len, 128);
  EXPECT_EQ(c.model.width, 128);
  EXPECT_EQ(c.model.heads, 4);
  EXPECT_EQ(c.moe.experts, 8);
  EXPECT_EQ(c.moe.top_k, 2);
  EXPECT_EQ(c.parameterization.preset, "mssp");
  EXPECT_EQ(c.optim.name, "adamw");
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-3);
  EXPECT_EQ(c.data.kind, "synthetic");
  EXPECT_EQ(c.parallel.ep, 1);
  // Preset-decided keys stay unset so the table can tell "default" from "overridden".
  EXPECT_FALSE(c.moe.gate.has_value());
  EXPECT_FALSE(c.moe.renormalize.has_value());
  EXPECT_FALSE(c.parameterization.depth_alpha.has_value());
  EXPECT_TRUE(c.parameterization.groups.empty());
}

TEST(Config, DefaultPresetAtTheBaseShapeNeedsARegime) {
  // The built-in defaults are the base shape with preset mssp, whose rules depend on the regime:
  // a config that leaves the regime to "auto" there is refused, naming the key.
  try {
    config::parse_config("", kOrigin, {});
    ADD_FAILURE() << "no error for an empty config";
  } catch (const InputError& e) {
    EXPECT_TRUE(Contains(e.what(), "parameterization.regime: \"auto\" cannot decide"));
  }
  EXPECT_EQ(config::parse_config("", kOrigin, {"parameterization.regime=II"}).parameterization.regime, "II");
}

TEST(Config, StructDefaultsMatchShippedDefaultToml) {
  // default.toml is the 2-rank main job; apart from ep it must only restate the defaults.
  Config shipped =
      config::load_config(std::string(MOE_SOURCE_DIR) + "/configs/default.toml", {"parallel.ep=1"});
  // ... and the regime and tuned multipliers that its preset needs at the base shape.
  EXPECT_EQ(config::to_toml(shipped),
            config::to_toml(parse_config("", kOrigin,
                                         {"parameterization.multipliers.embed.lr=16",
                                          "parameterization.multipliers.unembed.lr=8"})));
}

// A config with a non-default value for every key of every section.
const char* const kEveryKey = R"(
[run]
dir = "runs/all_keys"
seed = 99
[model]
vocab = 300
seq_len = 32
width = 96
heads = 3
depth = 5
attention = false
norm_eps = 1e-6
[moe]
experts = 12
top_k = 3
expert_width = 40
activation = "swiglu"
gate = "sigmoid"
renormalize = false
aggregation = "mean"
expert_bias = true
bias_update_rate = 0.002
capacity_factor = 1.25
aux_loss = 0.03
z_loss = 0.0001
base_top_k = 2
aux_probs = "selected"
[parameterization]
preset = "jiang"
regime = "II"
init_std = 0.05
depth_alpha = 0.5
scale_eps = true
[parameterization.multipliers.expert_down]
lr = 3.0
init = 0.5
[parameterization.base]
width = 64
expert_width = 32
experts = 4
top_k = 1
depth = 2
heads = 2
[parameterization.groups.router]
init_std = 0.0
lr_mult = 2.5
[parameterization.groups.unembed]
lr = 0.004
[parameterization.overrides.expert_up]
lr = { N = -1.0, M = 0.5 }
zero_init = true
[optim]
name = "sgd"
lr = 0.0123456789012345
weight_decay = 0.1
warmup = 7
schedule = "linear"
min_lr_ratio = 0.25
beta1 = 0.8
beta2 = 0.99
eps = 1e-7
momentum = 0.7
grad_clip = 0.5
[train]
steps = 33
batch = 12
log_every = 3
nonfinite = "skip"
dtype = "bf16"
[data]
kind = "bin"
path = "shards/*.bin"
dir = "corpus"
token_bytes = 4
seed = 5
branching = 4
zipf = 0.9
copy_prob = 0.2
copy_lag = 3
[parallel]
ep = 4
backend = "nccl"
zero1 = true
device = "cuda"
[checkpoint]
every = 10
keep = 5
)";

TEST(Config, EveryKeyParses) {
  Config c = parse_config(kEveryKey, kOrigin, {});
  EXPECT_EQ(c.run.dir, "runs/all_keys");
  EXPECT_EQ(c.run.seed, 99);
  EXPECT_EQ(c.model.vocab, 300);
  EXPECT_EQ(c.model.seq_len, 32);
  EXPECT_EQ(c.model.width, 96);
  EXPECT_EQ(c.model.heads, 3);
  EXPECT_EQ(c.model.depth, 5);
  EXPECT_FALSE(c.model.attention);
  EXPECT_DOUBLE_EQ(c.model.norm_eps, 1e-6);
  EXPECT_EQ(c.moe.experts, 12);
  EXPECT_EQ(c.moe.top_k, 3);
  EXPECT_EQ(c.moe.expert_width, 40);
  EXPECT_EQ(c.moe.activation, "swiglu");
  EXPECT_EQ(c.moe.gate, "sigmoid");
  EXPECT_EQ(c.moe.renormalize, false);
  EXPECT_EQ(c.moe.aggregation, "mean");
  EXPECT_EQ(c.moe.expert_bias, true);
  EXPECT_DOUBLE_EQ(c.moe.bias_update_rate, 0.002);
  EXPECT_DOUBLE_EQ(c.moe.capacity_factor, 1.25);
  EXPECT_DOUBLE_EQ(c.moe.aux_loss, 0.03);
  EXPECT_DOUBLE_EQ(c.moe.z_loss, 0.0001);
  const config::ParamConfig& p = c.parameterization;
  EXPECT_EQ(p.preset, "jiang");
  EXPECT_EQ(p.regime, "II");
  EXPECT_EQ(c.moe.base_top_k, 2);
  EXPECT_EQ(c.moe.aux_probs, "selected");
  ASSERT_EQ(p.multipliers.size(), 1u);
  EXPECT_EQ(p.multipliers.at("expert_down").lr, 3.0);
  EXPECT_EQ(p.multipliers.at("expert_down").init, 0.5);
  EXPECT_DOUBLE_EQ(p.init_std, 0.05);
  EXPECT_EQ(p.depth_alpha, 0.5);
  EXPECT_TRUE(p.scale_eps);
  EXPECT_EQ(p.base.width, 64);
  EXPECT_EQ(p.base.expert_width, 32);
  EXPECT_EQ(p.base.experts, 4);
  EXPECT_EQ(p.base.top_k, 1);
  EXPECT_EQ(p.base.depth, 2);
  EXPECT_EQ(p.base.heads, 2);
  ASSERT_EQ(p.groups.size(), 2u);
  EXPECT_EQ(p.groups.at("router").init_std, 0.0);
  EXPECT_EQ(p.groups.at("router").lr_mult, 2.5);
  EXPECT_FALSE(p.groups.at("router").lr.has_value());
  EXPECT_EQ(p.groups.at("unembed").lr, 0.004);
  ASSERT_EQ(p.overrides.size(), 1u);
  const config::GroupOverride& o = p.overrides.at("expert_up");
  ASSERT_TRUE(o.lr.has_value());
  EXPECT_EQ(o.lr->N, -1.0);
  EXPECT_EQ(o.lr->M, 0.5);
  EXPECT_FALSE(o.lr->K.has_value());
  EXPECT_FALSE(o.init.has_value());
  EXPECT_EQ(o.zero_init, true);
  EXPECT_EQ(c.optim.name, "sgd");
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.0123456789012345);
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, 0.1);
  EXPECT_EQ(c.optim.warmup, 7);
  EXPECT_EQ(c.optim.schedule, "linear");
  EXPECT_DOUBLE_EQ(c.optim.min_lr_ratio, 0.25);
  EXPECT_DOUBLE_EQ(c.optim.beta1, 0.8);
  EXPECT_DOUBLE_EQ(c.optim.beta2, 0.99);
  EXPECT_DOUBLE_EQ(c.optim.eps, 1e-7);
  EXPECT_DOUBLE_EQ(c.optim.momentum, 0.7);
  EXPECT_DOUBLE_EQ(c.optim.grad_clip, 0.5);
  EXPECT_EQ(c.train.steps, 33);
  EXPECT_EQ(c.train.batch, 12);
  EXPECT_EQ(c.train.log_every, 3);
  EXPECT_EQ(c.train.nonfinite, "skip");
  EXPECT_EQ(c.train.dtype, "bf16");
  EXPECT_EQ(c.data.kind, "bin");
  EXPECT_EQ(c.data.path, "shards/*.bin");
  EXPECT_EQ(c.data.dir, "corpus");
  EXPECT_EQ(c.data.token_bytes, 4);
  EXPECT_EQ(config::data_file(c.data, c.data.path), "corpus/shards/*.bin");
  EXPECT_EQ(config::data_file(c.data, "/abs/val.bin"), "/abs/val.bin");
  EXPECT_EQ(c.data.seed, 5);
  EXPECT_EQ(c.data.branching, 4);
  EXPECT_DOUBLE_EQ(c.data.zipf, 0.9);
  EXPECT_DOUBLE_EQ(c.data.copy_prob, 0.2);
  EXPECT_EQ(c.data.copy_lag, 3);
  EXPECT_EQ(c.parallel.ep, 4);
  EXPECT_EQ(c.parallel.backend, "nccl");
  EXPECT_TRUE(c.parallel.zero1);
  EXPECT_EQ(c.parallel.device, "cuda");
  EXPECT_EQ(c.checkpoint.every, 10);
  EXPECT_EQ(c.checkpoint.keep, 5);
}

TEST(Config, FloatKeyAcceptsInteger) {
  // TOML writes 1 and 1.0 differently; a user writing `lr = 1` means the number 1.
  EXPECT_DOUBLE_EQ(parse_config("[optim]\nlr = 1\n", kOrigin, {}).optim.lr, 1.0);
}

TEST(Config, WrongTypeNamesKeyAndOrigin) {
  struct Case {
    const char* text;
    const char* key;
  };
  for (const Case& cs : std::vector<Case>{
           {"[model]\nwidth = \"abc\"\n", "model.width"},
           {"[model]\nwidth = 1.5\n", "model.width"},
           {"[model]\nattention = 1\n", "model.attention"},
           {"[optim]\nlr = \"fast\"\n", "optim.lr"},
           {"[run]\ndir = 5\n", "run.dir"},
           {"[moe]\ngate = true\n", "moe.gate"},
           {"model = 3\n", "model"},
           {"[parameterization]\nbase = 7\n", "parameterization.base"},
           {"[parameterization.groups]\nrouter = 1\n", "parameterization.groups.router"}}) {
    std::string msg = ParseError(cs.text);
    EXPECT_TRUE(Contains(msg, cs.key)) << cs.text;
    EXPECT_TRUE(Contains(msg, kOrigin)) << cs.text;
  }
}

TEST(Config, UnknownKeysAreNamed) {
  for (auto [text, key] : std::vector<std::pair<const char*, const char*>>{
           {"bogus = 1\n", "bogus"},
           {"[bogus_section]\nx = 1\n", "bogus_section"},
           {"[model]\nwidht = 64\n", "model.widht"},
           {"[parameterization.base]\nwidht = 64\n", "parameterization.base.widht"},
           {"[parameterization.groups.router]\nlrr = 1.0\n", "parameterization.groups.router.lrr"},
           {"[parameterization.overrides.router]\nlr = { X = 1.0 }\n",
            "parameterization.overrides.router.lr.X"}}) {
    std::string msg = ParseError(text);
    EXPECT_TRUE(Contains(msg, key)) << text;
    EXPECT_TRUE(Contains(msg, "unknown")) << text;
    EXPECT_TRUE(Contains(msg, kOrigin)) << text;
  }
}

TEST(Config, SetOverridesFileValues) {
  const std::string text = "[model]\nwidth = 64\n[run]\ndir = \"runs/file\"\n";
  Config c = parse_config(
      text, kOrigin,
      {"model.width=256", "model.attention=false", "optim.lr=2.5e-4", "run.dir=runs/x",
       "moe.gate=sigmoid", "data.path=\"a b.bin\"", "parameterization.groups.router.lr_mult=3"});
  EXPECT_EQ(c.model.width, 256);
  EXPECT_FALSE(c.model.attention);
  EXPECT_DOUBLE_EQ(c.optim.lr, 2.5e-4);
  EXPECT_EQ(c.run.dir, "runs/x");  // a bare word is taken as a string
  EXPECT_EQ(c.moe.gate, "sigmoid");
  EXPECT_EQ(c.data.path, "a b.bin");  // a quoted TOML string
  EXPECT_EQ(c.parameterization.groups.at("router").lr_mult, 3.0);
  // Keys not overridden keep the file's or the default value.
  EXPECT_EQ(c.model.heads, 4);
  // The later --set of the same key wins.
  EXPECT_EQ(parse_config(text, kOrigin, {"model.depth=2", "model.depth=6"}).model.depth, 6);
}

TEST(Config, BadSetArgumentsAreNamed) {
  std::string msg = ParseError("[model]\nwidth = 64\n", {"model.width=abc"});
  EXPECT_TRUE(Contains(msg, "--set model.width=abc"));
  EXPECT_TRUE(Contains(msg, "model.width"));
  msg = ParseError("", {"model.colour=1"});
  EXPECT_TRUE(Contains(msg, "model.colour"));
  EXPECT_TRUE(Contains(msg, "unknown"));
  msg = ParseError("", {"nonsense"});
  EXPECT_TRUE(Contains(msg, "nonsense"));
  // A key path through a non-table value.
  msg = ParseError("", {"model.width.x=1"});
  EXPECT_TRUE(Contains(msg, "model.width"));
}

TEST(Config, ValidationErrorsNameTheKey) {
  struct Case {
    std::string text;
    const char* key;
    int world;
  };
  std::vector<Case> cases = {
      {"[moe]\nexperts = 4\ntop_k = 5\n", "moe.top_k", 0},
      {"[moe]\nexperts = 6\n[parallel]\nep = 4\n", "parallel.ep", 0},
      {"[model]\nwidth = 130\nheads = 4\n", "model.heads", 0},
      {"[model]\nwidth = -8\n", "model.width", 0},
      {"[model]\nseq_len = 0\n", "model.seq_len", 0},
      {"[moe]\nexperts = -2\n", "moe.experts", 0},
      {"[moe]\nexpert_width = -1\n", "moe.expert_width", 0},
      {"[train]\nbatch = -4\n", "train.batch", 0},
      {"[parameterization]\npreset = \"nope\"\n", "parameterization.preset", 0},
      {"[parameterization.groups.routr]\nlr_mult = 2.0\n", "parameterization.groups.routr", 0},
      {"[parameterization.overrides.expert_upp]\nzero_init = true\n",
       "parameterization.overrides.expert_upp", 0},
      {"[train]\nbatch = 6\n", "train.batch", 4},
      {"[train]\nbatch = 12\n[parallel]\nep = 4\n", "parallel.ep", 6},
      {"[optim]\nschedule = \"step\"\n", "optim.schedule", 0},
      {"[data]\nkind = \"llmc\"\n", "data.path", 0},
      {"[moe]\nactivation = \"relu\"\n", "moe.activation", 0},
      {"[data]\nkind = \"bin\"\npath = \"t.bin\"\ntoken_bytes = 3\n", "data.token_bytes", 0},
      {"[data]\nkind = \"llmc\"\npath = \"t.bin\"\ntoken_bytes = 4\n", "data.token_bytes", 0},
      {"[model]\nvocab = 70000\n[data]\nkind = \"bin\"\npath = \"t.bin\"\n", "model.vocab", 0},
      {"[data]\ndir = \"corpus\"\n", "data.dir", 0},
  };
  for (const Case& cs : cases) {
    std::string msg = ParseError(cs.text, {}, cs.world);
    EXPECT_TRUE(Contains(msg, cs.key)) << cs.text;
    EXPECT_TRUE(Contains(msg, kOrigin)) << cs.text;
  }
  // The same layouts are fine when they fit: the checks are not over-eager.
  EXPECT_NO_THROW(parse_config("[moe]\nexperts = 4\ntop_k = 4\n", kOrigin, {}));
  EXPECT_NO_THROW(parse_config("[moe]\nactivation = \"gelu_tanh\"\n", kOrigin, {}));
  // Vocabularies beyond uint16 in 4-byte token files.
  EXPECT_NO_THROW(parse_config("[model]\nvocab = 128256\n[data]\nkind = \"bin\"\npath = \"t.bin\"\ntoken_bytes = 4\n",
                               kOrigin, {}));
  EXPECT_NO_THROW(parse_config("[train]\nbatch = 6\n", kOrigin, {}, 0));  // 0 skips the world
  EXPECT_NO_THROW(parse_config("[train]\nbatch = 6\n", kOrigin, {}, 3));
  EXPECT_NO_THROW(parse_config("[train]\nbatch = 16\n[parallel]\nep = 4\n", kOrigin, {}, 8));
}

// The MSSP paper's transformer options: RoPE, QK-norm, dense MLP blocks between MoE blocks, and
// the expert width as a ratio of N (resolved at load, so that sweeps scale the number).
TEST(Config, PaperTransformerOptions) {
  Config d = parse_config("", kOrigin, {});
  EXPECT_EQ(d.model.position, "learned");
  EXPECT_DOUBLE_EQ(d.model.rope_base, 10000);
  EXPECT_FALSE(d.model.qk_norm);
  EXPECT_EQ(d.moe.stride, 1);
  EXPECT_EQ(config::mlp_width(d.model), 4 * d.model.width);
  for (int l = 0; l < 4; ++l) EXPECT_TRUE(config::is_moe_block(d.moe, l));

  Config c = parse_config(
      "[model]\nwidth = 64\nheads = 2\ndepth = 6\nposition = \"rope\"\nrope_base = 500.0\n"
      "qk_norm = true\nmlp_width = 100\n[moe]\nstride = 3\nexpert_ratio = 0.75\n",
      kOrigin, {});
  EXPECT_EQ(c.model.position, "rope");
  EXPECT_DOUBLE_EQ(c.model.rope_base, 500);
  EXPECT_TRUE(c.model.qk_norm);
  EXPECT_EQ(config::mlp_width(c.model), 100);
  EXPECT_EQ(c.moe.expert_width, 48);  // 0.75 * 64
  EXPECT_EQ(c.moe.expert_ratio, 0.0);  // resolved: the config holds the number
  EXPECT_EQ(config::moe_layer_count(c.moe, c.model.depth), 2);
  EXPECT_EQ(config::moe_block(c.moe, 0), 2);  // the paper's code: l % stride == stride - 1
  EXPECT_EQ(config::moe_block(c.moe, 1), 5);
  EXPECT_FALSE(config::is_moe_block(c.moe, 0));
  EXPECT_TRUE(config::is_moe_block(c.moe, 2));
  // --set of the width before the ratio is resolved scales the expert width with it.
  EXPECT_EQ(parse_config("[moe]\nexpert_ratio = 0.5\n", kOrigin, {"model.width=256"}).moe.expert_width, 128);
  // The resolved config reloads to the same config.
  EXPECT_EQ(config::to_toml(parse_config(config::to_toml(c), kOrigin, {})), config::to_toml(c));

  struct Case {
    std::string text;
    const char* key;
  };
  std::vector<Case> cases = {
      {"[model]\nposition = \"alibi\"\n", "model.position"},
      {"[model]\nwidth = 30\nheads = 2\nposition = \"rope\"\n", "model.position"},  // d_head 15
      {"[model]\nattention = false\nposition = \"rope\"\n", "model.position"},
      {"[model]\nattention = false\nqk_norm = true\n", "model.qk_norm"},
      {"[model]\nrope_base = 1.0\n", "model.rope_base"},
      {"[model]\nqk_norm = 1\n", "model.qk_norm"},
      {"[model]\nmlp_width = -1\n", "model.mlp_width"},
      {"[model]\nmlp_width = 1.5\n", "model.mlp_width"},
      {"[moe]\nstride = 0\n", "moe.stride"},
      {"[model]\ndepth = 2\n[moe]\nstride = 3\n", "moe.stride"},
      {"[moe]\nstride = \"2\"\n", "moe.stride"},
      {"[moe]\nexpert_ratio = -1.0\n", "moe.expert_ratio"},
      {"[moe]\nexpert_ratio = 0.001\n", "moe.expert_ratio"},  // rounds to no width
      {"[moe]\nexpert_ratio = \"half\"\n", "moe.expert_ratio"},
  };
  for (const Case& cs : cases) {
    std::string msg = ParseError(cs.text);
    EXPECT_TRUE(Contains(msg, cs.key)) << cs.text << " -> " << msg;
  }
}

TEST(Config, ValidationErrorViaSetNamesTheKey) {
  std::string msg = ParseError("", {"moe.top_k=9"});
  EXPECT_TRUE(Contains(msg, "moe.top_k"));
  // The value came from --set: the message says so, not the file.
  EXPECT_TRUE(Contains(ParseError("", {"optim.lr=-1"}), "--set optim.lr=-1: optim.lr: must be > 0"));
  // A cross-key constraint is blamed on the key the user set, whichever key it is checked on.
  EXPECT_TRUE(Contains(ParseError("", {"model.vocab=2"}), "--set model.vocab=2: data.branching"));
  EXPECT_TRUE(Contains(ParseError("", {"moe.experts=1"}), "--set moe.experts=1: moe.top_k"));
  EXPECT_TRUE(Contains(ParseError("[model]\nvocab = 2\n", {}), std::string(kOrigin) + ": data.branching"));
}

TEST(Config, NonFiniteAndOutOfRangeNumbersAreRefused) {
  EXPECT_TRUE(Contains(ParseError("[optim]\nlr = inf\n", {}), "optim.lr: expected a finite number, got inf"));
  EXPECT_TRUE(Contains(ParseError("[moe]\nz_loss = inf\n", {}), "moe.z_loss: expected a finite number, got inf"));
  EXPECT_TRUE(Contains(ParseError("", {"optim.lr=nan"}), "--set optim.lr=nan: optim.lr: expected a finite number, got nan"));
  EXPECT_TRUE(Contains(ParseError("", {"optim.lr=-inf"}), "got -inf"));
  EXPECT_TRUE(Contains(ParseError("", {"optim.lr=1e400"}), "--set optim.lr=1e400: optim.lr: \"1e400\" is not a representable number"));
  EXPECT_TRUE(Contains(ParseError("", {"train.steps=99999999999999999999"}), "is not a representable number"));
  // A word is still a word (a string key), and the wrong type for a number key.
  EXPECT_TRUE(Contains(ParseError("", {"optim.lr=fast"}), "expected a number, got a string"));
}

TEST(Config, AutoEpIsTheLargestDivisorOfExpertsDividingTheWorld) {
  EXPECT_EQ(config::auto_ep(8, 1), 1);
  EXPECT_EQ(config::auto_ep(8, 2), 2);
  EXPECT_EQ(config::auto_ep(8, 4), 4);
  EXPECT_EQ(config::auto_ep(8, 6), 2);
  EXPECT_EQ(config::auto_ep(8, 16), 8);
  EXPECT_EQ(config::auto_ep(6, 4), 2);
  EXPECT_EQ(config::auto_ep(8, 0), 1);
  Config c = parse_config("[parallel]\nep = \"auto\"\n", kOrigin, {}, 4);
  EXPECT_EQ(c.parallel.ep, 4);
  EXPECT_TRUE(c.parallel.ep_auto);
  c = parse_config("[train]\nbatch = 12\n", kOrigin, {"parallel.ep=auto"}, 6);
  EXPECT_EQ(c.parallel.ep, 2);
  EXPECT_TRUE(Contains(ParseError("[parallel]\nep = \"four\"\n", {}), "parallel.ep: expected an integer or \"auto\""));
  // The resolved config holds the number, so it reads back at any world size.
  EXPECT_TRUE(Contains(config::to_toml(c), "ep = 2"));
}

TEST(Config, SyntaxErrorNamesFileAndLine) {
  std::string msg = ParseError("[model]\nwidth = 128\nheads = = 4\n");
  EXPECT_TRUE(Contains(msg, std::string(kOrigin) + ":3"));
}

TEST(Config, LoadConfigNamesMissingFile) {
  const std::string path = testing::TempDir() + "/no_such_config_dir/none.toml";
  try {
    config::load_config(path, {});
    ADD_FAILURE() << "no error for a missing file";
  } catch (const InputError& e) {
    EXPECT_TRUE(Contains(e.what(), path));
  }
}

TEST(Config, LoadConfigErrorsNameThePath) {
  // Unique per process, so concurrent test runs do not share the file.
  const std::string path =
      testing::TempDir() + "/config_test_bad_" + std::to_string(getpid()) + ".toml";
  std::ofstream(path) << "[model]\nwidth = \"wide\"\n";
  try {
    config::load_config(path, {});
    ADD_FAILURE() << "no error for a bad file";
  } catch (const InputError& e) {
    EXPECT_TRUE(Contains(e.what(), path));
    EXPECT_TRUE(Contains(e.what(), "model.width"));
  }
  std::remove(path.c_str());
}

TEST(Config, ToTomlRoundTrips) {
  Config a = parse_config(kEveryKey, kOrigin, {});
  std::string text = config::to_toml(a);
  Config b = parse_config(text, "resolved.toml", {});
  EXPECT_EQ(config::to_toml(b), text);
  // Spot checks on fields of each kind, including values that need full double precision.
  EXPECT_EQ(b.optim.lr, a.optim.lr);
  EXPECT_EQ(b.model.norm_eps, a.model.norm_eps);
  EXPECT_EQ(b.moe.capacity_factor, a.moe.capacity_factor);
  EXPECT_EQ(b.model.attention, a.model.attention);
  EXPECT_EQ(b.run.dir, a.run.dir);
  EXPECT_EQ(b.moe.gate, a.moe.gate);
  EXPECT_EQ(b.parameterization.base.heads, a.parameterization.base.heads);
  EXPECT_EQ(b.parameterization.groups.at("router").lr_mult, 2.5);
  EXPECT_EQ(b.parameterization.overrides.at("expert_up").lr->N, -1.0);
  EXPECT_FALSE(b.parameterization.overrides.at("expert_up").lr->K.has_value());

  // Unset optionals stay unset through the round trip (the preset keeps deciding them).
  Config d = parse_config("[optim]\nlr = 0.1\n", kOrigin, {});
  Config d2 = parse_config(config::to_toml(d), "resolved.toml", {});
  EXPECT_FALSE(d2.moe.gate.has_value());
  EXPECT_FALSE(d2.parameterization.base.heads.has_value());
  EXPECT_EQ(d2.optim.lr, 0.1);
  EXPECT_EQ(config::to_toml(d2), config::to_toml(d));
}

}  // namespace
}  // namespace moe::test
