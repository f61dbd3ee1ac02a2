// Device helpers shared by the Gram and projection kernels (no torch headers; see sap_kernels.h).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "sap_kernels.h"

namespace sap_cuda {

// 256 threads as a 16 x 16 grid; thread (ty, tx) owns outputs (ty + 16 r, tx + 16 c), r, c < 4, of a
// 64 x 64 tile. The strided ownership keeps shared-memory reads of one warp on distinct banks.
constexpr int kThreads = 256;
constexpr int kSide = 16;
constexpr int kSub = kTile / kSide;
static_assert(kSide * kSide == kThreads, "thread grid must cover the block");
static_assert(kTile * kStage == 4 * kThreads, "each thread loads 4 elements per operand and stage");

// fp32 accumulation for every activation dtype except fp64, which keeps fp64.
template <typename T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ double to_acc(double v) { return v; }

// Explicit round-to-nearest FMA: the "ieee" contract, independent of compiler contraction flags.
__device__ __forceinline__ float fma_rn(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double fma_rn(double a, double b, double c) { return __fma_rn(a, b, c); }

// Upper-triangle tile number t (row-major over ti <= tj of an nt x nt tile grid) -> (ti, tj).
// A loop of at most nt steps: exact, and cheap next to the tile's work.
__device__ __forceinline__ void upper_tile(int64_t t, int64_t nt, int64_t& ti, int64_t& tj) {
  int64_t row = 0;
  while (t >= nt - row) {
    t -= nt - row;
    ++row;
  }
  ti = row;
  tj = row + t;
}

// One shared-memory stage: acc[r][c] += sum_kk a[kk][ty + 16 r] * b[kk][tx + 16 c], in kk order.
template <typename Acc, int kWidth>
__device__ __forceinline__ void stage_fma(const Acc (*a)[kWidth], const Acc (*b)[kWidth], Acc (&acc)[kSub][kSub],
                                          int ty, int tx) {
#pragma unroll
  for (int kk = 0; kk < kStage; ++kk) {
    Acc av[kSub], bv[kSub];
#pragma unroll
    for (int r = 0; r < kSub; ++r) av[r] = a[kk][ty + kSide * r];
#pragma unroll
    for (int c = 0; c < kSub; ++c) bv[c] = b[kk][tx + kSide * c];
#pragma unroll
    for (int r = 0; r < kSub; ++r)
#pragma unroll
      for (int c = 0; c < kSub; ++c) acc[r][c] = fma_rn(av[r], bv[c], acc[r][c]);
  }
}

// Write a thread's 4 x 4 outputs into a dense kTile x kTile partial (consecutive tx -> consecutive words).
template <typename Acc>
__device__ __forceinline__ void store_partial(Acc* __restrict__ dst, const Acc (&acc)[kSub][kSub], int ty, int tx) {
#pragma unroll
  for (int r = 0; r < kSub; ++r)
#pragma unroll
    for (int c = 0; c < kSub; ++c) dst[(ty + kSide * r) * kTile + tx + kSide * c] = acc[r][c];
}

}  // namespace sap_cuda
