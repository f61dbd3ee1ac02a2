// Split-K Gram kernels: G += X^T X for a row matrix X (Linear input) and for the implicit im2col
// matrix of a convolution input. Only upper-triangle 64 x 64 tiles are computed.
//
// Determinism: block (tile, split[, group]) accumulates its rows in a fixed order into registers and
// writes a partial tile to a workspace; a second kernel sums the partials in split order and adds the
// result into `out` (mirroring off-diagonal tiles). No float atomics, so the result is bitwise
// reproducible for the same inputs and split plan (the plan depends only on the shapes).
//
// Kernels live in sap_cuda::detail (external linkage, so NVRTC can name them); the host launchers
// below them are compiled by nvcc only (__CUDACC_RTC__ is NVRTC's).
#ifndef __CUDACC_RTC__
#include <algorithm>
#include <cstdint>
#endif

#include "sap_kernels.h"
#include "tile_common.cuh"

namespace sap_cuda {
namespace detail {

// ---------------------------------------------------------------------------------------------
// Dense rows: x2d[m, k] = x[m * sm + k * sk] (any strides, so transposed views need no copy).
// Grid: (upper tiles, splits).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    gram_partials_kernel(const T* __restrict__ x, int64_t rows, int64_t k, int64_t sm, int64_t sk,
                         int64_t rows_per_split, int64_t nt, typename AccOf<T>::type* __restrict__ ws) {
  using Acc = typename AccOf<T>::type;
  __shared__ Acc sa[kStage][kTile];
  __shared__ Acc sb[kStage][kTile];

  const int tid = threadIdx.x;
  const int tx = tid % kSide, ty = tid / kSide;
  const int64_t tile = blockIdx.x;
  const int64_t split = blockIdx.y;
  int64_t ti, tj;
  upper_tile(tile, nt, ti, tj);
  const bool diag = ti == tj;  // both operand tiles are the same columns: load once
  const int64_t m_begin = split * rows_per_split;
  const int64_t m_end = min(rows, m_begin + rows_per_split);

  // Each thread loads one column (lc) of rows lr, lr + 4, lr + 8, lr + 12 of both operand tiles;
  // consecutive threads read consecutive columns, which is coalesced for row-major x.
  const int lc = tid % kTile, lr = tid / kTile;
  const int64_t ca = ti * kTile + lc, cb = tj * kTile + lc;
  const bool va = ca < k, vb = cb < k;
  const T* xa = x + (va ? ca : 0) * sk;
  const T* xb = x + (vb ? cb : 0) * sk;

  Acc acc[kSub][kSub] = {};
  for (int64_t m0 = m_begin; m0 < m_end; m0 += kStage) {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int r = lr + 4 * q;
      const int64_t m = m0 + r;
      const bool vm = m < m_end;
      sa[r][lc] = (vm && va) ? to_acc(xa[m * sm]) : Acc(0);
      if (!diag) sb[r][lc] = (vm && vb) ? to_acc(xb[m * sm]) : Acc(0);
    }
    __syncthreads();
    stage_fma<Acc, kTile>(sa, diag ? sa : sb, acc, ty, tx);
    __syncthreads();  // the next stage overwrites sa/sb
  }
  store_partial(ws + (split * gridDim.x + tile) * (kTile * kTile), acc, ty, tx);
}

// ---------------------------------------------------------------------------------------------
// Implicit im2col of a 3d-promoted convolution input. Row m = (n, o0, o1, o2); column
// k = (c, a0, a1, a2) of group g; entry x[n, g*Cg + c, o_d * stride_d - pad_lo_d + a_d * dil_d] or 0
// outside the input. Grid: (upper tiles, splits, groups).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    conv_gram_partials_kernel(const T* __restrict__ x, ConvParams p, int64_t rows_per_split, int64_t nt,
                              typename AccOf<T>::type* __restrict__ ws) {
  using Acc = typename AccOf<T>::type;
  __shared__ Acc sa[kStage][kTile];
  __shared__ Acc sb[kStage][kTile];
  // Row decode of the current stage, shared by both operand tiles: element offset of the row's
  // window origin and the origin's spatial coordinates (may be negative inside the padding).
  __shared__ int64_t row_base[kStage];
  __shared__ int64_t row_pos[kStage][3];

  const int tid = threadIdx.x;
  const int tx = tid % kSide, ty = tid / kSide;
  const int64_t tile = blockIdx.x;
  const int64_t split = blockIdx.y;
  const int64_t group = blockIdx.z;
  int64_t ti, tj;
  upper_tile(tile, nt, ti, tj);
  const bool diag = ti == tj;

  const int64_t out_plane = p.out[1] * p.out[2];
  const int64_t per_sample = p.out[0] * out_plane;
  const int64_t rows = p.n * per_sample;
  const int64_t m_begin = split * rows_per_split;
  const int64_t m_end = min(rows, m_begin + rows_per_split);

  // Column decode, once per block: this thread always loads column lc of both operand tiles.
  const int lc = tid % kTile, lr = tid / kTile;
  const int64_t kvol = p.kernel[0] * p.kernel[1] * p.kernel[2];
  const int64_t cg = p.channels / p.groups;
  int64_t col_off[2], col_pos[2][3];
  bool col_ok[2];
#pragma unroll
  for (int s = 0; s < 2; ++s) {
    const int64_t col = (s == 0 ? ti : tj) * kTile + lc;
    col_ok[s] = col < p.k_per_group;
    const int64_t cc = col_ok[s] ? col : 0;
    const int64_t c = group * cg + cc / kvol;
    const int64_t rem = cc % kvol;
    const int64_t a0 = rem / (p.kernel[1] * p.kernel[2]);
    const int64_t a1 = (rem / p.kernel[2]) % p.kernel[1];
    const int64_t a2 = rem % p.kernel[2];
    col_pos[s][0] = a0 * p.dilation[0];
    col_pos[s][1] = a1 * p.dilation[1];
    col_pos[s][2] = a2 * p.dilation[2];
    col_off[s] = c * p.x_stride[1] + col_pos[s][0] * p.x_stride[2] + col_pos[s][1] * p.x_stride[3] +
                 col_pos[s][2] * p.x_stride[4];
  }

  Acc acc[kSub][kSub] = {};
  for (int64_t m0 = m_begin; m0 < m_end; m0 += kStage) {
    if (tid < kStage) {
      const int64_t m = m0 + tid;
      if (m < m_end) {
        const int64_t n = m / per_sample;
        const int64_t o = m % per_sample;
        const int64_t o0 = o / out_plane, o1 = (o / p.out[2]) % p.out[1], o2 = o % p.out[2];
        const int64_t i0 = o0 * p.stride[0] - p.pad_lo[0];
        const int64_t i1 = o1 * p.stride[1] - p.pad_lo[1];
        const int64_t i2 = o2 * p.stride[2] - p.pad_lo[2];
        row_pos[tid][0] = i0;
        row_pos[tid][1] = i1;
        row_pos[tid][2] = i2;
        row_base[tid] = n * p.x_stride[0] + i0 * p.x_stride[2] + i1 * p.x_stride[3] + i2 * p.x_stride[4];
      } else {
        // Past the split's last row: a coordinate no kernel offset can bring inside the input.
        row_pos[tid][0] = -(int64_t(1) << 62);
        row_pos[tid][1] = row_pos[tid][2] = 0;
        row_base[tid] = 0;
      }
    }
    __syncthreads();
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int r = lr + 4 * q;
      const int64_t r0 = row_pos[r][0], r1 = row_pos[r][1], r2 = row_pos[r][2];
      const int64_t base = row_base[r];
#pragma unroll
      for (int s = 0; s < 2; ++s) {
        if (s == 1 && diag) break;
        // Unsigned compares fold the "< 0" padding test into the upper-bound test.
        const bool inside = col_ok[s] && uint64_t(r0 + col_pos[s][0]) < uint64_t(p.in[0]) &&
                            uint64_t(r1 + col_pos[s][1]) < uint64_t(p.in[1]) &&
                            uint64_t(r2 + col_pos[s][2]) < uint64_t(p.in[2]);
        const Acc v = inside ? to_acc(x[base + col_off[s]]) : Acc(0);
        if (s == 0)
          sa[r][lc] = v;
        else
          sb[r][lc] = v;
      }
    }
    __syncthreads();
    stage_fma<Acc, kTile>(sa, diag ? sa : sb, acc, ty, tx);
    // No barrier needed here: the next stage's first writes are to the row tables, and its tile
    // writes come after a barrier that every thread reaches only once done with this stage.
  }
  store_partial(ws + ((group * gridDim.y + split) * gridDim.x + tile) * (kTile * kTile), acc, ty, tx);
}

// ---------------------------------------------------------------------------------------------
// out[g] += sum_s ws[g, s] (split order), mirrored below the diagonal. One thread per workspace
// element of split 0; reads of ws are coalesced, the mirrored writes are strided.
template <typename Acc, typename Out>
__global__ void __launch_bounds__(kThreads)
    reduce_upper_kernel(const Acc* __restrict__ ws, int splits, int64_t groups, int64_t k, int64_t nt,
                        Out* __restrict__ out) {
  constexpr int64_t kTileElems = kTile * kTile;
  const int64_t ntiles = nt * (nt + 1) / 2;
  const int64_t per_group = ntiles * kTileElems;
  const int64_t total = groups * per_group;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t g = idx / per_group;
    const int64_t rem = idx % per_group;
    const int64_t t = rem / kTileElems;
    const int64_t e = rem % kTileElems;
    int64_t ti, tj;
    upper_tile(t, nt, ti, tj);
    const int64_t row = ti * kTile + e / kTile;
    const int64_t col = tj * kTile + e % kTile;
    if (row >= k || col >= k) continue;
    const Acc* src = ws + (g * splits * ntiles + t) * kTileElems + e;
    Acc sum = 0;
    for (int s = 0; s < splits; ++s) sum += src[s * per_group];
    Out* o = out + g * k * k;
    o[row * k + col] += Out(sum);
    // A diagonal tile holds both (row, col) and (col, row) already.
    if (ti != tj) o[col * k + row] += Out(sum);
  }
}

}  // namespace detail

#ifndef __CUDACC_RTC__
using namespace detail;  // the launchers below instantiate the kernels

namespace {

dim3 partial_grid(int64_t k, int splits, int64_t groups) {
  return dim3(static_cast<unsigned>(upper_tiles(k)), static_cast<unsigned>(splits), static_cast<unsigned>(groups));
}

}  // namespace

cudaError_t launch_gram_partials(DType dtype, const void* x, int64_t rows, int64_t k, int64_t stride_m,
                                 int64_t stride_k, SplitPlan plan, void* ws, cudaStream_t stream) {
  const dim3 grid = partial_grid(k, plan.splits, 1);
  const int64_t nt = tiles_per_dim(k);
  switch (dtype) {
    case DType::f32:
      gram_partials_kernel<float><<<grid, kThreads, 0, stream>>>(static_cast<const float*>(x), rows, k, stride_m,
                                                                  stride_k, plan.rows_per_split, nt,
                                                                  static_cast<float*>(ws));
      break;
    case DType::f16:
      gram_partials_kernel<__half><<<grid, kThreads, 0, stream>>>(static_cast<const __half*>(x), rows, k, stride_m,
                                                                   stride_k, plan.rows_per_split, nt,
                                                                   static_cast<float*>(ws));
      break;
    case DType::bf16:
      gram_partials_kernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(
          static_cast<const __nv_bfloat16*>(x), rows, k, stride_m, stride_k, plan.rows_per_split, nt,
          static_cast<float*>(ws));
      break;
    case DType::f64:
      gram_partials_kernel<double><<<grid, kThreads, 0, stream>>>(static_cast<const double*>(x), rows, k, stride_m,
                                                                   stride_k, plan.rows_per_split, nt,
                                                                   static_cast<double*>(ws));
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t launch_conv_gram_partials(DType dtype, const void* x, const ConvParams& p, SplitPlan plan, void* ws,
                                      cudaStream_t stream) {
  const dim3 grid = partial_grid(p.k_per_group, plan.splits, p.groups);
  const int64_t nt = tiles_per_dim(p.k_per_group);
  switch (dtype) {
    case DType::f32:
      conv_gram_partials_kernel<float><<<grid, kThreads, 0, stream>>>(static_cast<const float*>(x), p,
                                                                       plan.rows_per_split, nt,
                                                                       static_cast<float*>(ws));
      break;
    case DType::f16:
      conv_gram_partials_kernel<__half><<<grid, kThreads, 0, stream>>>(static_cast<const __half*>(x), p,
                                                                        plan.rows_per_split, nt,
                                                                        static_cast<float*>(ws));
      break;
    case DType::bf16:
      conv_gram_partials_kernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(
          static_cast<const __nv_bfloat16*>(x), p, plan.rows_per_split, nt, static_cast<float*>(ws));
      break;
    case DType::f64:
      conv_gram_partials_kernel<double><<<grid, kThreads, 0, stream>>>(static_cast<const double*>(x), p,
                                                                        plan.rows_per_split, nt,
                                                                        static_cast<double*>(ws));
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t launch_reduce_upper(DType acc, DType out_dtype, const void* ws, int splits, int64_t groups, int64_t k,
                                void* out, cudaStream_t stream) {
  const int64_t nt = tiles_per_dim(k);
  const int64_t total = groups * upper_tiles(k) * kTile * kTile;
  // Grid-stride loop: cap the grid, every thread then handles several elements.
  const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t(1) << 20);
  if (blocks == 0) return cudaSuccess;
  if (acc == DType::f32 && out_dtype == DType::f32) {
    reduce_upper_kernel<float, float><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        static_cast<const float*>(ws), splits, groups, k, nt, static_cast<float*>(out));
  } else if (acc == DType::f32 && out_dtype == DType::f64) {
    reduce_upper_kernel<float, double><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        static_cast<const float*>(ws), splits, groups, k, nt, static_cast<double*>(out));
  } else if (acc == DType::f64 && out_dtype == DType::f64) {
    reduce_upper_kernel<double, double><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        static_cast<const double*>(ws), splits, groups, k, nt, static_cast<double*>(out));
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

#endif  // __CUDACC_RTC__

}  // namespace sap_cuda
