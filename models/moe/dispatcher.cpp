// Dispatcher: gather into send order, all-to-all-v, and the weighted combine.
#include "models/moe/dispatcher.h"

#include <chrono>

#include "models/linear.h"

namespace moe::models {
namespace {

// The plan's index arrays to the device without a host wait (Backend::upload).
Tensor upload_i32(ops::Backend& be, const std::vector<int32_t>& v, const Shape& shape, Device dev,
                  Tensor& buf) {
  Tensor t = reuse(buf, shape, DType::I32, dev);
  be.upload(t.raw(), v.data(), v.size() * sizeof(int32_t));
  return t;
}

}  // namespace

void Dispatcher::plan(const int32_t* idx, const uint8_t* kept, int64_t n, int K) {
  auto t0 = std::chrono::steady_clock::now();
  plan_ = make_dispatch_plan(idx, kept, n, K, experts_per_rank_, ep_);
  comm_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Dispatcher::exchange(const Tensor& src, Tensor& dst, bool to_experts) {
  const int64_t N = src.dim(1);
  const auto& sr = to_experts ? plan_.send_rows : plan_.recv_rows;
  const auto& rr = to_experts ? plan_.recv_rows : plan_.send_rows;
  std::vector<int64_t> sc(sr.size()), rc(rr.size());
  for (size_t i = 0; i < sr.size(); ++i) {
    sc[i] = sr[i] * N;
    rc[i] = rr[i] * N;
  }
  auto t0 = std::chrono::steady_clock::now();
  ep_.all_to_all_v(src.raw(), sc, comm::displacements(sc), dst.raw(), rc, comm::displacements(rc),
                   src.dtype(), src.device());
  comm_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Dispatcher::dispatch(ops::Backend& be, const Tensor& x, Tensor& x_recv) {
  const int64_t N = x.dim(1);
  Device dev = x.device();
  perm_ = upload_i32(be, plan_.perm, {plan_.m_send}, dev, perm_);
  slot_ = upload_i32(be, plan_.slot, {plan_.n, plan_.K}, dev, slot_);
  Tensor send = reuse(send_, {plan_.m_send, N}, x.dtype(), dev);
  be.gather_rows(x, perm_, send);
  if (ep_.size() == 1) {
    x_recv = send;
    return;
  }
  x_recv = reuse(x_recv_buf_, {plan_.m_recv, N}, x.dtype(), dev);
  exchange(send, x_recv, true);
}

void Dispatcher::combine(ops::Backend& be, const Tensor& y_recv, const Tensor& w, double c,
                         Tensor& out) {
  const int64_t N = y_recv.dim(1);
  Tensor y_back;
  if (ep_.size() == 1) {
    y_back = y_recv;
  } else {
    y_back = reuse(y_back_buf_, {plan_.m_send, N}, y_recv.dtype(), y_recv.device());
    exchange(y_recv, y_back, false);
  }
  // The weighted sum runs in out's dtype (f32 under mixed precision: gates stay fp32).
  rows_dtype_ = y_recv.dtype();
  y_back_ = as_dtype(be, y_back, out.dtype(), y_wide_);
  be.combine_forward(y_back_, slot_, w, c, out);
}

void Dispatcher::combine_backward(ops::Backend& be, const Tensor& dout, const Tensor& w, double c,
                                  Tensor& dy_recv, Tensor& dw) {
  const int64_t N = dout.dim(1);
  Tensor dy_send = reuse(dy_send_, {plan_.m_send, N}, dout.dtype(), dout.device());
  be.combine_backward(dout, y_back_, slot_, w, c, dy_send, dw);
  const Tensor dys = as_dtype(be, dy_send, rows_dtype_, dy_narrow_);  // back to the rows' dtype
  if (ep_.size() == 1) {
    dy_recv = dys;
    return;
  }
  dy_recv = reuse(dy_recv_buf_, {plan_.m_recv, N}, dys.dtype(), dout.device());
  exchange(dys, dy_recv, true);
}

void Dispatcher::dispatch_backward(ops::Backend& be, const Tensor& dx_recv, Tensor& dx) {
  const int64_t N = dx_recv.dim(1);
  Tensor dx_back;
  if (ep_.size() == 1) {
    dx_back = dx_recv;
  } else {
    dx_back = reuse(dx_back_, {plan_.m_send, N}, dx_recv.dtype(), dx_recv.device());
    exchange(dx_recv, dx_back, false);
  }
  be.scatter_add_slots(as_dtype(be, dx_back, dx.dtype(), dx_wide_), slot_, dx);
}

}  // namespace moe::models
