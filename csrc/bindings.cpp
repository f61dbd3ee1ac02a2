// Torch-facing glue for the CUDA kernels: argument checks, workspace allocation on torch's caching
// allocator, the current stream, and the Python module `sap_kernels._C` (pybind11).
//
// No operator is registered here: the op schemas (torch.ops.sap_kernels.*) have one owner,
// sap_kernels/ops/library.py, and the "cuda" backend (sap_kernels/kernels/cuda) calls these plain
// functions. The CuPy build path (sap_kernels/kernels/cuda/_cupy.py) exposes the same functions
// with the same arguments, from the same .cu files compiled by NVRTC.
//
// The kernels themselves (gram_kernels.cu, projection_kernels.cu) see only raw pointers and strides.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sap_kernels.h"

namespace {

using sap_cuda::DType;
using sap_cuda::kMaxGridYZ;
using sap_cuda::kMaxSplits;
using sap_cuda::kMinRowsPerSplit;
using sap_cuda::kTargetBlocks;
using sap_cuda::kWorkspaceBytes;

DType kernel_dtype(const at::Tensor& t, const char* op, const char* name) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return DType::f32;
    case at::kHalf:
      return DType::f16;
    case at::kBFloat16:
      return DType::bf16;
    case at::kDouble:
      return DType::f64;
    default:
      TORCH_CHECK(false, op, ": ", name, " must be float32, float16, bfloat16 or float64, got ", t.scalar_type());
  }
}

void check_launch(cudaError_t err, const char* op, const char* kernel) {
  TORCH_CHECK(err == cudaSuccess, op, ": launching ", kernel, " failed: ", cudaGetErrorString(err));
}

// Same device, CUDA, and a float32 (float64 for float64 input) accumulator of the given shape.
void check_accumulator(const at::Tensor& x, const at::Tensor& out, at::IntArrayRef shape, const char* op) {
  TORCH_CHECK(x.is_cuda(), op, ": x must be a CUDA tensor, got one on ", x.device());
  TORCH_CHECK(out.device() == x.device(), op, ": out is on ", out.device(), " but x is on ", x.device());
  TORCH_CHECK(out.scalar_type() == at::kFloat || out.scalar_type() == at::kDouble, op,
              ": out must be float32 or float64, got ", out.scalar_type());
  TORCH_CHECK(x.scalar_type() != at::kDouble || out.scalar_type() == at::kDouble, op,
              ": float64 input needs a float64 out, got ", out.scalar_type());
  TORCH_CHECK(out.sizes() == shape, op, ": out has shape ", out.sizes(), ", expected ", shape);
  TORCH_CHECK(out.is_contiguous(), op, ": out must be contiguous");
}

sap_cuda::SplitPlan plan_splits(int64_t rows, int64_t tiles, int64_t acc_bytes) {
  const int64_t by_blocks = (kTargetBlocks + tiles - 1) / tiles;
  const int64_t by_rows = (rows + kMinRowsPerSplit - 1) / kMinRowsPerSplit;
  const int64_t tile_bytes = tiles * sap_cuda::kTile * sap_cuda::kTile * acc_bytes;
  const int64_t by_memory = std::max<int64_t>(1, kWorkspaceBytes / tile_bytes);
  int64_t splits = std::max<int64_t>(1, std::min({by_blocks, by_rows, by_memory, kMaxSplits}));
  int64_t per = (rows + splits - 1) / splits;
  per = (per + sap_cuda::kStage - 1) / sap_cuda::kStage * sap_cuda::kStage;
  splits = (rows + per - 1) / per;  // rounding up per split can leave trailing splits empty: drop them
  return {static_cast<int>(splits), per};
}

// Sum the partials of `ws` into `out` (mirrored) on `stream`.
void reduce_into(const at::Tensor& ws, sap_cuda::SplitPlan plan, int64_t groups, int64_t k, const at::Tensor& out,
                 cudaStream_t stream, const char* op) {
  const DType acc = ws.scalar_type() == at::kDouble ? DType::f64 : DType::f32;
  const DType od = out.scalar_type() == at::kDouble ? DType::f64 : DType::f32;
  check_launch(sap_cuda::launch_reduce_upper(acc, od, ws.const_data_ptr(), plan.splits, groups, k,
                                             out.mutable_data_ptr(), stream),
               op, "reduce_upper");
}

// out += x^T x for x [M, K] (any strides).
void gram_(const at::Tensor& x, const at::Tensor& out) {
  constexpr const char* op = "sap_kernels::gram_";
  TORCH_CHECK(x.dim() == 2, op, ": x must be 2-d [rows, K], got shape ", x.sizes());
  const DType xd = kernel_dtype(x, op, "x");
  const int64_t rows = x.size(0), k = x.size(1);
  check_accumulator(x, out, {k, k}, op);
  if (rows == 0 || k == 0) return;
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const auto acc_type = xd == DType::f64 ? at::kDouble : at::kFloat;
  const int64_t tiles = sap_cuda::upper_tiles(k);
  TORCH_CHECK(tiles <= INT32_MAX, op, ": K = ", k, " is too large");
  const auto plan = plan_splits(rows, tiles, acc_type == at::kDouble ? 8 : 4);
  const at::Tensor ws = at::empty({plan.splits * tiles * sap_cuda::kTile * sap_cuda::kTile}, x.options().dtype(acc_type));
  check_launch(sap_cuda::launch_gram_partials(xd, x.const_data_ptr(), rows, k, x.stride(0), x.stride(1), plan,
                                              ws.mutable_data_ptr(), stream),
               op, "gram_partials");
  reduce_into(ws, plan, 1, k, out, stream, op);
}

// out[g] += P_g^T P_g for the implicit im2col rows P_g of a ConvNd input x [N, C, *spatial] (nd = 1..3).
void conv_gram_(const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef pad_lo,
                at::IntArrayRef pad_hi, at::IntArrayRef dilation, int64_t groups, const at::Tensor& out) {
  constexpr const char* op = "sap_kernels::conv_gram_";
  const int64_t nd = x.dim() - 2;
  TORCH_CHECK(nd >= 1 && nd <= 3, op, ": x must be [N, C, *spatial] with 1 to 3 spatial dims, got shape ", x.sizes());
  for (const auto& [name, list] : {std::pair{"kernel_size", kernel_size}, std::pair{"stride", stride},
                                   std::pair{"pad_lo", pad_lo}, std::pair{"pad_hi", pad_hi},
                                   std::pair{"dilation", dilation}}) {
    TORCH_CHECK(static_cast<int64_t>(list.size()) == nd, op, ": ", name, " needs ", nd, " values, got ", list);
  }
  const DType xd = kernel_dtype(x, op, "x");
  const int64_t channels = x.size(1);
  TORCH_CHECK(groups >= 1 && channels % groups == 0, op, ": groups=", groups, " must be >= 1 and divide the ",
              channels, " input channels");
  TORCH_CHECK(groups <= kMaxGridYZ, op, ": at most ", kMaxGridYZ, " groups are supported, got ", groups);

  sap_cuda::ConvParams p{};
  p.n = x.size(0);
  p.channels = channels;
  p.groups = groups;
  p.x_stride[0] = x.stride(0);
  p.x_stride[1] = x.stride(1);
  int64_t kvol = 1;
  // Promote to 3 spatial dims: leading unit dims with kernel 1, stride 1, no padding.
  for (int d = 0; d < 3; ++d) {
    const int64_t src = d - (3 - nd);
    if (src < 0) {
      p.in[d] = p.out[d] = p.kernel[d] = p.stride[d] = p.dilation[d] = 1;
      p.pad_lo[d] = 0;
      p.x_stride[2 + d] = 0;
      continue;
    }
    TORCH_CHECK(kernel_size[src] >= 1 && stride[src] >= 1 && dilation[src] >= 1, op,
                ": kernel_size, stride and dilation must be >= 1, got ", kernel_size, ", ", stride, ", ", dilation);
    TORCH_CHECK(pad_lo[src] >= 0 && pad_hi[src] >= 0, op, ": padding must be >= 0, got ", pad_lo, " / ", pad_hi);
    p.in[d] = x.size(2 + src);
    p.kernel[d] = kernel_size[src];
    p.stride[d] = stride[src];
    p.dilation[d] = dilation[src];
    p.pad_lo[d] = pad_lo[src];
    p.x_stride[2 + d] = x.stride(2 + src);
    const int64_t span = p.in[d] + pad_lo[src] + pad_hi[src] - dilation[src] * (kernel_size[src] - 1) - 1;
    TORCH_CHECK(span >= 0, op, ": kernel (size ", kernel_size, ", dilation ", dilation,
                ") is larger than the padded input ", x.sizes().slice(2));
    p.out[d] = span / stride[src] + 1;
    kvol *= kernel_size[src];
  }
  p.k_per_group = channels / groups * kvol;
  const int64_t k = p.k_per_group;
  check_accumulator(x, out, {groups, k, k}, op);
  const int64_t rows = p.n * p.out[0] * p.out[1] * p.out[2];
  if (rows == 0 || k == 0) return;

  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const auto acc_type = xd == DType::f64 ? at::kDouble : at::kFloat;
  const int64_t tiles = sap_cuda::upper_tiles(k);
  TORCH_CHECK(tiles <= INT32_MAX, op, ": K_g = ", k, " is too large");
  const auto plan = plan_splits(rows, groups * tiles, acc_type == at::kDouble ? 8 : 4);
  const at::Tensor ws = at::empty({groups * plan.splits * tiles * sap_cuda::kTile * sap_cuda::kTile},
                                  x.options().dtype(acc_type));
  check_launch(sap_cuda::launch_conv_gram_partials(xd, x.const_data_ptr(), p, plan, ws.mutable_data_ptr(), stream),
               op, "conv_gram_partials");
  reduce_into(ws, plan, groups, k, out, stream, op);
}

// W V diag(lambda(e, alpha)) V^T in float32 (float64 if weight or eigvecs is float64), shape of weight.
at::Tensor scaled_projection(const at::Tensor& weight, const at::Tensor& eigvals, const at::Tensor& eigvecs,
                             double alpha, const std::optional<at::Tensor>& wv) {
  constexpr const char* op = "sap_kernels::scaled_projection";
  TORCH_CHECK(weight.is_cuda(), op, ": weight must be a CUDA tensor, got one on ", weight.device());
  TORCH_CHECK(eigvals.device() == weight.device() && eigvecs.device() == weight.device(), op,
              ": weight, eigvals and eigvecs must be on one device, got ", weight.device(), ", ", eigvals.device(),
              ", ", eigvecs.device());
  TORCH_CHECK(weight.dim() >= 2, op, ": weight must be [..., out, K], got shape ", weight.sizes());
  TORCH_CHECK(!std::isnan(alpha) && alpha > 0, op, ": alpha must be > 0 (inf keeps the weight), got ", alpha);
  const int64_t m = weight.size(-2), k = weight.size(-1);
  const auto lead = weight.sizes().slice(0, weight.dim() - 2);
  std::vector<int64_t> e_shape(lead.begin(), lead.end()), v_shape(lead.begin(), lead.end());
  e_shape.push_back(k);
  v_shape.push_back(k);
  v_shape.push_back(k);
  TORCH_CHECK(eigvals.sizes() == at::IntArrayRef(e_shape) && eigvecs.sizes() == at::IntArrayRef(v_shape), op,
              ": shapes do not match: weight ", weight.sizes(), ", eigvals ", eigvals.sizes(), " (expected ",
              at::IntArrayRef(e_shape), "), eigvecs ", eigvecs.sizes(), " (expected ", at::IntArrayRef(v_shape), ")");
  if (wv.has_value()) {
    TORCH_CHECK(wv->device() == weight.device(), op, ": wv is on ", wv->device(), " but weight is on ", weight.device());
    TORCH_CHECK(wv->sizes() == weight.sizes(), op, ": wv has shape ", wv->sizes(), ", expected ", weight.sizes());
  }
  kernel_dtype(weight, op, "weight");
  kernel_dtype(eigvecs, op, "eigvecs");
  kernel_dtype(eigvals, op, "eigvals");
  const auto cdt = at::promote_types(at::promote_types(weight.scalar_type(), eigvecs.scalar_type()), at::kFloat);
  const DType cd = cdt == at::kDouble ? DType::f64 : DType::f32;
  const auto opts = weight.options().dtype(cdt);
  if (weight.numel() == 0) return at::zeros(weight.sizes(), opts);

  int64_t batch = 1;
  for (const int64_t s : lead) batch *= s;
  TORCH_CHECK(batch <= kMaxGridYZ, op, ": at most ", kMaxGridYZ, " matrices per call, got ", batch);
  TORCH_CHECK((m + sap_cuda::kTile - 1) / sap_cuda::kTile <= kMaxGridYZ, op, ": out = ", m, " is too large");

  const c10::cuda::CUDAGuard guard(weight.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  // Strided operands are read in place; only dtype conversions and non-viewable reshapes copy.
  const at::Tensor w3 = weight.to(cdt).reshape({batch, m, k});
  const at::Tensor v3 = eigvecs.to(cdt).reshape({batch, k, k});
  const at::Tensor e2 = eigvals.to(cdt).reshape({batch, k}).contiguous();
  const at::Tensor total = at::empty({batch}, opts);
  check_launch(sap_cuda::launch_eig_total(cd, e2.const_data_ptr(), batch, k, total.mutable_data_ptr(), stream), op,
               "eig_total");

  at::Tensor t3;
  if (wv.has_value()) {
    t3 = wv->to(cdt).reshape({batch, m, k});
  } else {
    t3 = at::empty({batch, m, k}, opts);
    sap_cuda::GemmParams g{};
    g.batch = batch;
    g.m = m;
    g.n = k;
    g.k = k;
    g.a = w3.const_data_ptr();
    g.a_sb = w3.stride(0), g.a_sm = w3.stride(1), g.a_sk = w3.stride(2);
    g.b = v3.const_data_ptr();
    g.b_sb = v3.stride(0), g.b_sk = v3.stride(1), g.b_sn = v3.stride(2);
    g.c = t3.mutable_data_ptr();
    g.c_sb = t3.stride(0), g.c_sm = t3.stride(1), g.c_sn = t3.stride(2);
    g.eigvals = nullptr;
    g.total = nullptr;
    g.alpha = alpha;
    check_launch(sap_cuda::launch_gemm(cd, g, stream), op, "gemm (W V)");
  }

  at::Tensor result = at::empty({batch, m, k}, opts);
  sap_cuda::GemmParams g{};
  g.batch = batch;
  g.m = m;
  g.n = k;
  g.k = k;
  g.a = t3.const_data_ptr();
  g.a_sb = t3.stride(0), g.a_sm = t3.stride(1), g.a_sk = t3.stride(2);
  // bmat[kk, n] = V[n, kk]: V^T through strides.
  g.b = v3.const_data_ptr();
  g.b_sb = v3.stride(0), g.b_sk = v3.stride(2), g.b_sn = v3.stride(1);
  g.c = result.mutable_data_ptr();
  g.c_sb = result.stride(0), g.c_sm = result.stride(1), g.c_sn = result.stride(2);
  g.eigvals = e2.const_data_ptr();
  g.total = total.const_data_ptr();
  g.alpha = alpha;
  check_launch(sap_cuda::launch_gemm(cd, g, stream), op, "gemm ((W V) * lambda V^T)");
  return result.reshape(weight.sizes());
}

// Host-only: the split plan as (splits, rows_per_split), so that the CuPy path's copy of it can be
// checked against this one without a GPU.
std::pair<int64_t, int64_t> plan_splits_py(int64_t rows, int64_t tiles, int64_t acc_bytes) {
  TORCH_CHECK(rows > 0 && tiles > 0 && (acc_bytes == 4 || acc_bytes == 8),
              "plan_splits: rows and tiles must be > 0 and acc_bytes 4 or 8");
  const auto plan = plan_splits(rows, tiles, acc_bytes);
  return {plan.splits, plan.rows_per_split};
}

// Host-only: the constants of sap_kernels.h as compiled, and the sizes of the parameter structs.
std::map<std::string, int64_t> constants() {
  return {{"kTile", sap_cuda::kTile},
          {"kStage", sap_cuda::kStage},
          {"kTargetBlocks", kTargetBlocks},
          {"kMinRowsPerSplit", kMinRowsPerSplit},
          {"kMaxSplits", kMaxSplits},
          {"kWorkspaceBytes", kWorkspaceBytes},
          {"kMaxGridYZ", kMaxGridYZ},
          {"sizeof(ConvParams)", static_cast<int64_t>(sizeof(sap_cuda::ConvParams))},
          {"sizeof(GemmParams)", static_cast<int64_t>(sizeof(sap_cuda::GemmParams))}};
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "CUDA kernels of sap_kernels (EXPERIMENTAL: never run on a GPU); called by sap_kernels.kernels.cuda";
  m.def("gram_", &gram_, "out [K, K] += x^T x for x [M, K] (any strides); CUDA tensors", py::arg("x"),
        py::arg("out"));
  m.def("conv_gram_", &conv_gram_, "out [G, K_g, K_g] += P_g^T P_g for a conv input x [N, C, *spatial]",
        py::arg("x"), py::arg("kernel_size"), py::arg("stride"), py::arg("pad_lo"), py::arg("pad_hi"),
        py::arg("dilation"), py::arg("groups"), py::arg("out"));
  m.def("scaled_projection", &scaled_projection, "W V diag(lambda) V^T in float32 (float64 for float64 input)",
        py::arg("weight"), py::arg("eigvals"), py::arg("eigvecs"), py::arg("alpha"), py::arg("wv"));
  m.def("plan_splits", &plan_splits_py, "(splits, rows_per_split) of a Gram launch", py::arg("rows"),
        py::arg("tiles"), py::arg("acc_bytes"));
  m.def("constants", &constants, "the constants of csrc/sap_kernels.h as compiled, and parameter struct sizes");
}
