// The CUDA backend beyond single ops: device memory through the tensor hooks, errors raised
// from kernels at the next synchronization, argument checks, and Philox init on the device
// bit-identical to the host.
#include "tests/cuda/cuda_test_util.h"

namespace moe::test {
namespace {

// Without a GPU (CI) the factory must fail with a clear error instead of crashing.
TEST(CudaBackendNoDevice, FactoryThrowsWithoutDevice) {
  if (ops::cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  try {
    ops::make_cuda_backend(0);
    FAIL() << "make_cuda_backend succeeded without a device";
  } catch (const Error& e) {
    EXPECT_TRUE(Contains(e.what(), "CUDA"));
  }
}

class CudaBackendTest : public CudaTest {};

TEST_F(CudaBackendTest, TensorRoundTripAndViews) {
  Tensor h = randn({17, 9}, DType::F32, "h");
  Tensor d = h.to(Device::CUDA);
  EXPECT_EQ(d.device(), Device::CUDA);
  EXPECT_TRUE(same_bits(d, h.to(Device::CUDA)));
  Tensor back = d.to(Device::CPU);
  EXPECT_EQ(std::memcmp(back.raw(), h.raw(), h.nbytes()), 0);
  // Device-to-device copy into a row view, zero() on the device.
  Tensor z = Tensor::zeros({17, 9}, DType::F32, Device::CUDA);
  z.rows(3, 8).copy_from(d.rows(10, 15));
  Tensor zh = z.to(Device::CPU);
  for (int64_t i = 0; i < 17 * 9; ++i) {
    const int64_t r = i / 9;
    const float want = (r >= 3 && r < 8) ? h.data<float>()[(r + 7) * 9 + i % 9] : 0.0f;
    EXPECT_EQ(zh.data<float>()[i], want) << i;
  }
  d.zero();
  EXPECT_EQ(gpu().sum_squares(d), 0.0);
}

TEST_F(CudaBackendTest, DeviceIndexErrorsRaisedAtSync) {
  ops::Backend& be = gpu();
  Tensor ids = Tensor::empty({3}, DType::I32);
  ids.data<int32_t>()[0] = 1;
  ids.data<int32_t>()[1] = 9;  // outside V = 4
  ids.data<int32_t>()[2] = 0;
  Tensor table = randn({4, 5}, DType::F32, "t").to(Device::CUDA);
  Tensor out = Tensor::zeros({3, 5}, DType::F32, Device::CUDA);
  be.embedding_forward(ids.to(Device::CUDA), table, out, 1.0, false);
  try {
    be.synchronize();
    FAIL() << "the bad token id was not reported";
  } catch (const Error& e) {
    EXPECT_TRUE(Contains(e.what(), "token id")) << e.what();
    EXPECT_TRUE(Contains(e.what(), "9")) << e.what();
  }
  be.synchronize();  // reported once, then cleared
  // cross_entropy reports a bad target itself.
  Tensor logits = randn({2, 6}, DType::F32, "l").to(Device::CUDA);
  Tensor tg = Tensor::empty({2}, DType::I32);
  tg.data<int32_t>()[0] = 2;
  tg.data<int32_t>()[1] = 6;
  Tensor d = Tensor::empty({2, 6}, DType::F32, Device::CUDA);
  EXPECT_THROW(be.cross_entropy(logits, tg.to(Device::CUDA), d, 1.0), Error);
  // Slots outside y.
  Tensor y = randn({2, 4}, DType::F32, "y").to(Device::CUDA);
  Tensor slot = Tensor::empty({1, 2}, DType::I32);
  slot.data<int32_t>()[0] = 1;
  slot.data<int32_t>()[1] = 5;
  Tensor w = randn({1, 2}, DType::F32, "w").to(Device::CUDA),
         o = Tensor::empty({1, 4}, DType::F32, Device::CUDA);
  be.combine_forward(y, slot.to(Device::CUDA), w, 1.0, o);
  EXPECT_THROW(be.synchronize(), Error);
  EXPECT_NO_THROW(be.synchronize());
}

TEST_F(CudaBackendTest, ArgumentChecks) {
  ops::Backend& be = gpu();
  Tensor a = randn({3, 4}, DType::F32, "a");
  Tensor da = a.to(Device::CUDA), c = Tensor::empty({3, 3}, DType::F32, Device::CUDA);
  try {
    be.gemm(a, false, da, true, c, 1.0, 0.0);  // a host tensor
    FAIL();
  } catch (const Error& e) {
    EXPECT_TRUE(Contains(e.what(), "must be a CUDA tensor"));
  }
  EXPECT_THROW(be.gemm(da, false, da, false, c, 1.0, 0.0), Error);  // shapes
  Tensor f64 = Tensor::zeros({4}, DType::F64, Device::CUDA);
  EXPECT_THROW(be.scale(f64, 2.0), Error);
  // The router runs in f32 only.
  Tensor lb = to_backend(randn({4, 6}, DType::F32, "l"), Device::CUDA, DType::BF16);
  Tensor g = Tensor::empty({4, 6}, DType::BF16, Device::CUDA),
         w = Tensor::empty({4, 2}, DType::BF16, Device::CUDA);
  Tensor idx = Tensor::empty({4, 2}, DType::I32, Device::CUDA),
         st = Tensor::empty({7}, DType::BF16, Device::CUDA);
  ops::RouterOptions opt;
  opt.top_k = 2;
  EXPECT_THROW(be.router_forward(lb, Tensor(), opt, g, idx, w, st), Error);
  EXPECT_THROW(ops::make_cuda_backend(ops::cuda_device_count()), Error);
}

// The grouped GEMMs choose their path per call (grouped_gemm_route.h): bf16 operands with an
// f32 result, which cuBLAS's grouped call does not take, run the loop (CUTLASS cannot take
// these widths, not multiples of 8), and a bf16 call after it still gets the grouped call.
// Forcing the grouped call on the mixed types is one clear error.
TEST_F(CudaBackendTest, GroupedGemmPathChosenPerCall) {
  using ops::gpu::GroupedPath;
  const std::vector<ops::Segment> segs = {
      {0, 9, 0}, {9, 9, 1}, {9, 30, 2}, {30, 41, 1}, {41, 47, 3}};
  const int64_t rows = 47, E = 4, in = 20, out = 36;
  const Tensor hx = randn({rows, in}, DType::F32, "rx");
  const Tensor hdy = randn({rows, out}, DType::F32, "rdy");
  const Tensor hw = randn({E, out, in}, DType::F32, "rw");
  auto calls = [&](GroupedPath p) { return gpu().grouped_path_calls(p); };
  const int64_t loop0 = calls(GroupedPath::Loop), grouped0 = calls(GroupedPath::CublasGrouped);

  Tensor dy = to_backend(hdy, Device::CUDA, DType::BF16);
  Tensor x = to_backend(hx, Device::CUDA, DType::BF16);
  Tensor dw = Tensor::zeros({E, out, in}, DType::F32, Device::CUDA);
  gpu().grouped_gemm_tn(dy, x, segs, dw, 0.9);
  Tensor dw_ref = Tensor::zeros({E, out, in}, DType::F32);
  ops::make_cpu_backend()->grouped_gemm_tn(to_backend(hdy, Device::CPU, DType::BF16),
                                           to_backend(hx, Device::CPU, DType::BF16), segs,
                                           dw_ref, 0.9);
  EXPECT_LE(normalized_error(to_host(dw), dw_ref), 1e-5);
  EXPECT_EQ(calls(GroupedPath::Loop), loop0 + 1);
  EXPECT_EQ(calls(GroupedPath::CublasGrouped), grouped0);

  Tensor w = to_backend(hw, Device::CUDA, DType::BF16);
  Tensor y = Tensor::empty({rows, out}, DType::BF16, Device::CUDA);
  gpu().grouped_gemm_nt(x, w, segs, y, 1.0);
  gpu().synchronize();
  EXPECT_EQ(calls(GroupedPath::CublasGrouped), grouped0 + 1);

  ops::gpu::GroupedModeScope forced(gpu(), ops::gpu::GroupedGemmMode::Grouped);
  try {
    gpu().grouped_gemm_tn(dy, x, segs, dw, 0.9);
    FAIL() << "the forced grouped call took bf16 operands with an f32 result";
  } catch (const Error& e) {
    EXPECT_TRUE(Contains(e.what(), "grouped_gemm_tn: cublasGemmGroupedBatchedEx takes A, B and C"));
  }
}

// src/core/rng.h on the device gives the host's numbers bit for bit.
TEST_F(CudaBackendTest, PhiloxBlocksBitIdentical) {
  const rng::Key key = rng::make_key(1234, "blocks.0.moe.expert_up");
  const int64_t n = 4096;
  Tensor d = Tensor::empty({n, 4}, DType::I32, Device::CUDA);
  gpu().philox_blocks(d, key, 5);
  Tensor h = d.to(Device::CPU);
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) {
    const rng::Block b =
        rng::philox(rng::Counter{uint32_t(i), uint32_t(uint64_t(i) >> 32), 5u, 0x6E6F726Du}, key);
    for (int w = 0; w < 4; ++w) wrong += uint32_t(h.data<int32_t>()[4 * i + w]) != b.v[w];
  }
  EXPECT_EQ(wrong, 0);
}

// The init formula of Transformer::init_params (std * normal(key, i, stream), one stream per
// expert) computed on the device. Double-precision log/sin/cos on the device and in libm can
// differ in the last bit; the cast to float then almost never (~2^-29 per element) notices, so
// equality is expected for these 2^18 values.
TEST_F(CudaBackendTest, PhiloxNormalInitBitIdentical) {
  const rng::Key key = rng::make_key(11, "blocks.1.moe.expert_down");
  const int64_t units = 4, per = 65536;
  const double std_dev = 0.02;
  Tensor d = Tensor::empty({units, per}, DType::F32, Device::CUDA);
  gpu().philox_normal(d, key, per, /*stream0=*/1 + 8, /*stream_step=*/1, std_dev);
  Tensor h = d.to(Device::CPU);
  int64_t wrong = 0;
  for (int64_t u = 0; u < units; ++u)
    for (int64_t i = 0; i < per; ++i) {
      const float want =
          static_cast<float>(std_dev * rng::normal(key, uint64_t(i), uint32_t(9 + u)));
      const float got = h.data<float>()[u * per + i];
      if (std::memcmp(&want, &got, 4) != 0 && wrong++ < 5)
        ADD_FAILURE() << "element " << u << "," << i << ": host " << want << " device " << got;
    }
  EXPECT_EQ(wrong, 0);
}

}  // namespace
}  // namespace moe::test
