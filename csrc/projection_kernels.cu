// Fused SAP weight projection: W_hat = ((W V) * lambda) V^T with lambda_i = alpha r_i / ((alpha - 1) r_i + 1),
// r_i = max(e_i, 0) / sum_j max(e_j, 0).
//
// Two launches of one tiled GEMM kernel (T = W V, skipped when a precomputed W V is given; then
// W_hat = (T * lambda) V^T) plus a one-block-per-matrix reduction for sum(e). lambda is evaluated
// while the T tile is staged into shared memory, so it is never written to memory. Costs
// 2 * out * K^2 multiply-adds, less than forming P = V diag(lambda) V^T when out < K.
//
// Kernels in sap_cuda::detail (NVRTC names them); host launchers for nvcc only, as in gram_kernels.cu.
#ifndef __CUDACC_RTC__
#include <cmath>
#include <cstdint>
#endif

#include "sap_kernels.h"
#include "tile_common.cuh"

namespace sap_cuda {
namespace detail {

// total[b] = sum_i max(e[b, i], 0): per-thread strided sums then a fixed tree, so the order (and the
// bits) never change between runs. NaN stays NaN, as with torch's clamp_min.
template <typename T>
__global__ void __launch_bounds__(kThreads) eig_total_kernel(const T* __restrict__ eig, int64_t k, T* __restrict__ total) {
  __shared__ T part[kThreads];
  const T* e = eig + int64_t(blockIdx.x) * k;
  T s = 0;
  for (int64_t i = threadIdx.x; i < k; i += kThreads) {
    const T v = e[i];
    s += v < T(0) ? T(0) : v;
  }
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) total[blockIdx.x] = part[0];
}

// The SAP importance of one direction; same formula and guards as sap_kernels.ops.scales.sap_scales.
template <typename T>
__device__ __forceinline__ T sap_lambda(T e, T total, T alpha, bool alpha_inf) {
  if (alpha_inf) return T(1);
  if (!(total > T(0))) return T(0);  // a layer with no energy (or a NaN total): all zeros
  const T r = (e < T(0) ? T(0) : e) / total;
  return alpha * r / ((alpha - T(1)) * r + T(1));
}

// c[b] = a[b] diag(scale) bmat[b], 64 x 64 output tile per block, 16-deep k stages.
// kBKContig: bmat's k stride is 1 (V^T read from V), so stage it k-fastest for coalescing.
// Shared tiles are padded to 65 columns so the transposing stores hit distinct banks.
template <typename T, bool kBKContig>
__global__ void __launch_bounds__(kThreads) gemm_kernel(GemmParams p) {
  constexpr int kPad = kTile + 1;
  __shared__ T sa[kStage][kPad];  // sa[kk][m] = a[m0 + m, k0 + kk] * scale[k0 + kk]
  __shared__ T sb[kStage][kPad];  // sb[kk][n] = bmat[k0 + kk, n0 + n]

  const int tid = threadIdx.x;
  const int tx = tid % kSide, ty = tid / kSide;
  const int64_t b = blockIdx.z;
  const int64_t m0 = int64_t(blockIdx.y) * kTile, n0 = int64_t(blockIdx.x) * kTile;
  const T* a = static_cast<const T*>(p.a) + b * p.a_sb;
  const T* bm = static_cast<const T*>(p.b) + b * p.b_sb;
  T* c = static_cast<T*>(p.c) + b * p.c_sb;
  const bool scaled = p.eigvals != nullptr;
  const T* eig = scaled ? static_cast<const T*>(p.eigvals) + b * p.k : nullptr;
  const T total = scaled ? static_cast<const T*>(p.total)[b] : T(0);
  const bool alpha_inf = isinf(p.alpha);
  const T alpha = alpha_inf ? T(1) : T(p.alpha);

  T acc[kSub][kSub] = {};
  for (int64_t k0 = 0; k0 < p.k; k0 += kStage) {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int e = tid + kThreads * q;
      // a is row-major [m, k] here (W or W V): k-fastest staging reads 16 consecutive words.
      const int kk = e % kStage, mm = e / kStage;
      const int64_t gm = m0 + mm, gk = k0 + kk;
      T v = T(0);
      if (gm < p.m && gk < p.k) {
        v = a[gm * p.a_sm + gk * p.a_sk];
        if (scaled) v *= sap_lambda(eig[gk], total, alpha, alpha_inf);
      }
      sa[kk][mm] = v;
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int e = tid + kThreads * q;
      const int kk = kBKContig ? e % kStage : e / kTile;
      const int nn = kBKContig ? e / kStage : e % kTile;
      const int64_t gk = k0 + kk, gn = n0 + nn;
      sb[kk][nn] = (gk < p.k && gn < p.n) ? bm[gk * p.b_sk + gn * p.b_sn] : T(0);
    }
    __syncthreads();
    stage_fma<T, kPad>(sa, sb, acc, ty, tx);
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < kSub; ++r) {
    const int64_t gm = m0 + ty + kSide * r;
    if (gm >= p.m) continue;
#pragma unroll
    for (int cc = 0; cc < kSub; ++cc) {
      const int64_t gn = n0 + tx + kSide * cc;
      if (gn < p.n) c[gm * p.c_sm + gn * p.c_sn] = acc[r][cc];
    }
  }
}

}  // namespace detail

#ifndef __CUDACC_RTC__
using namespace detail;  // the launchers below instantiate the kernels

namespace {

template <typename T>
cudaError_t launch_gemm_typed(const GemmParams& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((p.n + kTile - 1) / kTile), static_cast<unsigned>((p.m + kTile - 1) / kTile),
                  static_cast<unsigned>(p.batch));
  if (p.b_sk == 1 && p.k > 1)
    gemm_kernel<T, true><<<grid, kThreads, 0, stream>>>(p);
  else
    gemm_kernel<T, false><<<grid, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_eig_total(DType dtype, const void* eigvals, int64_t batch, int64_t k, void* total,
                             cudaStream_t stream) {
  if (batch == 0) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>(batch);
  if (dtype == DType::f32) {
    eig_total_kernel<float><<<blocks, kThreads, 0, stream>>>(static_cast<const float*>(eigvals), k,
                                                             static_cast<float*>(total));
  } else if (dtype == DType::f64) {
    eig_total_kernel<double><<<blocks, kThreads, 0, stream>>>(static_cast<const double*>(eigvals), k,
                                                              static_cast<double*>(total));
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t launch_gemm(DType dtype, const GemmParams& p, cudaStream_t stream) {
  if (p.batch == 0 || p.m == 0 || p.n == 0) return cudaSuccess;
  if (dtype == DType::f32) return launch_gemm_typed<float>(p, stream);
  if (dtype == DType::f64) return launch_gemm_typed<double>(p, stream);
  return cudaErrorInvalidValue;
}

#endif  // __CUDACC_RTC__

}  // namespace sap_cuda
