// Export and evaluation from checkpoints saved at the world's layout: the safetensors file is
// re-read (header, names, shapes, byte ranges) and its data compared bit for bit with the
// trained parameters gathered in global expert order; a weights-only load at another layout
// gives the same held-out loss and leaves the optimizer alone.
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>

#include "src/ckpt/export.h"
#include "src/data/source.h"
#include "tests/mpi/checkpoint_util.h"

namespace moe::test {
namespace {

// Just enough JSON for a safetensors header: objects, arrays, strings, numbers.
struct JsonValue {
  enum Kind { Number, String, Array, Object } kind = Number;
  double number = 0;
  std::string string;
  std::vector<JsonValue> array;
  std::vector<std::pair<std::string, JsonValue>> object;
  const JsonValue* get(const std::string& k) const {
    for (auto& [key, v] : object)
      if (key == k) return &v;
    return nullptr;
  }
};

struct JsonParser {
  const std::string& s;
  size_t i = 0;
  void ws() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  char next() {
    ws();
    if (i >= s.size()) throw std::runtime_error("unexpected end of JSON");
    return s[i];
  }
  void expect(char c) {
    if (next() != c)
      throw std::runtime_error(std::string("expected ") + c + " at " + std::to_string(i));
    ++i;
  }
  std::string str() {
    expect('"');
    std::string out;
    while (i < s.size() && s[i] != '"') {
      char c = s[i++];
      if (c == '\\') {
        char e = s[i++];
        if (e == 'n')
          out += '\n';
        else if (e == 't')
          out += '\t';
        else if (e == 'r')
          out += '\r';
        else if (e == 'u')
          out += char(std::stoi(s.substr(i, 4), nullptr, 16)), i += 4;
        else
          out += e;
      } else {
        out += c;
      }
    }
    ++i;
    return out;
  }
  JsonValue value() {
    JsonValue v;
    char c = next();
    if (c == '{') {
      v.kind = JsonValue::Object;
      ++i;
      if (next() == '}') return ++i, v;
      for (;;) {
        std::string k = str();
        expect(':');
        v.object.push_back({k, value()});
        if (next() == ',')
          ++i;
        else
          break;
      }
      expect('}');
    } else if (c == '[') {
      v.kind = JsonValue::Array;
      ++i;
      if (next() == ']') return ++i, v;
      for (;;) {
        v.array.push_back(value());
        if (next() == ',')
          ++i;
        else
          break;
      }
      expect(']');
    } else if (c == '"') {
      v.kind = JsonValue::String;
      v.string = str();
    } else {
      size_t used = 0;
      v.number = std::stod(s.substr(i), &used);
      i += used;
    }
    return v;
  }
};

TEST(CheckpointExport, SafetensorsHoldsEveryWeightInGlobalOrder) {
  const int P = world().size(), ep = P == 3 ? 1 : P;
  std::string dir = shared_dir(world(), "export");
  config::Config c = ckpt_config(dir + "/run");
  c.moe.activation = "swiglu";  // every kind of expert tensor
  c.parallel.ep = ep;
  c.parallel.zero1 = P > 1;
  auto ctx = comm::make_parallel_context(world().split(0, world().rank()), ep, &cpu());
  train::Trainer t(c, ctx, {false, false, false});
  for (int s = 0; s < 3; ++s) t.step();
  std::string saved = t.save_checkpoint();
  auto params = snapshot(t.model().params(), ctx, false);
  auto bias = biases(t);
  const std::string out = dir + "/model.safetensors";
  auto one = world().split(world().rank() == 0 ? 0 : 1, world().rank());
  if (world().rank() == 0) {
    ckpt::ExportInfo info = ckpt::export_safetensors(saved, out, std::move(one), cpu());
    EXPECT_EQ(info.step, 3);
    std::ifstream f(out, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    ASSERT_GE(bytes.size(), 8u);
    ASSERT_EQ(int64_t(bytes.size()), info.bytes);
    uint64_t n = 0;
    for (int b = 7; b >= 0; --b) n = n << 8 | static_cast<unsigned char>(bytes[b]);
    ASSERT_LE(8 + n, bytes.size());
    EXPECT_EQ(n % 8, 0u) << "header padded to 8 bytes";
    const std::string header = bytes.substr(8, n);
    EXPECT_EQ(header.front(), '{');
    JsonValue h = JsonParser{header}.value();
    ASSERT_EQ(h.kind, JsonValue::Object);
    const JsonValue* meta = h.get("__metadata__");
    ASSERT_NE(meta, nullptr);
    EXPECT_EQ(meta->get("step")->string, "3");
    EXPECT_TRUE(Contains(meta->get("config")->string, "activation = 'swiglu'"));
    // The GELU form readers must apply (the dense MLPs beside SwiGLU experts keep the tanh form).
    EXPECT_TRUE(Contains(meta->get("forward")->string, "\"gelu\":\"tanh\"")) << meta->get("forward")->string;
    const char* data = bytes.data() + 8 + n;
    const int64_t data_bytes = int64_t(bytes.size() - 8 - n);
    std::map<std::string, std::vector<float>> file;
    int64_t expected_begin = 0;
    for (auto& [name, v] : h.object) {
      if (name == "__metadata__") continue;
      EXPECT_EQ(v.get("dtype")->string, "F32") << name;
      int64_t numel = 1;
      for (const JsonValue& d : v.get("shape")->array) numel *= int64_t(d.number);
      const auto& off = v.get("data_offsets")->array;
      ASSERT_EQ(off.size(), 2u);
      const int64_t b = int64_t(off[0].number), e = int64_t(off[1].number);
      EXPECT_EQ(b, expected_begin) << name << ": tensors are back to back";
      ASSERT_EQ(e - b, numel * 4) << name;
      ASSERT_LE(e, data_bytes) << name;
      expected_begin = e;
      std::vector<float> vals(numel);
      std::memcpy(vals.data(), data + b, size_t(e - b));
      file[name] = vals;
      if (name.find("expert_") != std::string::npos)
        EXPECT_EQ(int64_t(v.get("shape")->array[0].number), c.moe.experts) << name;
    }
    EXPECT_EQ(expected_begin, data_bytes) << "the data section holds exactly the tensors";
    EXPECT_EQ(file.size(), params.size() + bias.size());
    for (auto& [name, v] : params) {
      ASSERT_TRUE(file.count(name)) << name;
      ASSERT_EQ(file[name].size(), v.size()) << name;
      bool same = true;
      for (size_t k = 0; k < v.size(); ++k) same &= file[name][k] == float(v[k]);
      EXPECT_TRUE(same) << name << " differs from the trained parameter";
    }
    for (size_t l = 0; l < bias.size(); ++l)
      EXPECT_TRUE(file[ckpt::expert_bias_name(int64_t(l))] == bias[l]) << l;
    EXPECT_TRUE(file.count("blocks.1.moe.expert_gate"));
  }
  remove_shared(world(), dir);
}

TEST(CheckpointEval, WeightsOnlyAtAnotherLayout) {
  const int P = world().size(), ep = P == 3 ? 1 : P;
  std::string dir = shared_dir(world(), "eval");
  config::Config c = ckpt_config(dir + "/run");
  c.parallel.ep = ep;
  auto val = data::make_source(c.data, c.model.vocab, c.model.seq_len, "val");
  double before = 0;
  {
    auto ctx = comm::make_parallel_context(world().split(0, world().rank()), ep, &cpu());
    train::Trainer t(c, ctx, {false, false, false});
    for (int s = 0; s < 5; ++s) t.step();
    t.save_checkpoint();
    before = t.evaluate(*val, 3);
  }
  if (auto sub = first_ranks(1)) {
    c.parallel.ep = 1;
    auto ctx = comm::make_parallel_context(std::move(sub), 1, &cpu());
    train::Trainer t(c, ctx, {false, false, false});
    const double untrained = t.evaluate(*val, 3);
    EXPECT_EQ(t.load_checkpoint(c.run.dir, /*optimizer_state=*/false).step, 5);
    const double after = t.evaluate(*val, 3);
    EXPECT_NEAR(after, before, 1e-6 * before) << "P=" << P;
    EXPECT_LT(after, untrained);
    EXPECT_EQ(t.optimizer().steps_taken(), 0);
    EXPECT_EQ(cpu().sum_squares(t.optimizer().state(false).m), 0.0)
        << "weights only: the optimizer is untouched";
  }
  remove_shared(world(), dir);
}

}  // namespace
}  // namespace moe::test
