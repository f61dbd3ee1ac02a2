// Interface between the host code (bindings.cpp, or sap_kernels/kernels/cuda/_cupy.py on the CuPy
// path) and the CUDA kernels (*.cu).
//
// Kept free of torch headers on purpose: the .cu files then compile in seconds with plain nvcc, and
// the same files compile with NVRTC (CuPy), which defines __CUDACC_RTC__ and has no host headers or
// standard library: everything host-only below is guarded. Launchers take raw device pointers,
// element strides and a stream, and return the launch status for the caller to report.
//
// The `constexpr` constants are read by the CuPy path's Python host code (one definition for both
// build paths): keep each on one line as `constexpr <int|int64_t> kName = <decimal literal>;`.
#pragma once

#ifdef __CUDACC_RTC__
typedef long long int64_t;
typedef unsigned long long uint64_t;
#else
#include <cstdint>

#include <cuda_runtime_api.h>
#endif

namespace sap_cuda {

enum class DType : int { f32 = 0, f16 = 1, bf16 = 2, f64 = 3 };

// Output tile edge and rows per shared-memory stage of every Gram kernel; the split-K workspace
// holds one TILE x TILE partial per (group, split, upper-triangle tile).
constexpr int kTile = 64;
constexpr int kStage = 16;

// Split plan constants. Fixed numbers, not read from the device, so that the reduction order, and
// with it every bit of the result, is the same on any GPU for the same shapes.
constexpr int64_t kTargetBlocks = 1024;        // several waves on a 132-SM H100
constexpr int64_t kMinRowsPerSplit = 256;      // below this a split's partial write outweighs its work
constexpr int64_t kMaxSplits = 4096;           // also keeps grid.y under its 65535 limit
constexpr int64_t kWorkspaceBytes = 268435456; // 256 MiB
constexpr int64_t kMaxGridYZ = 65535;          // CUDA's limit on grid.y and grid.z

#ifndef __CUDACC_RTC__
inline int64_t tiles_per_dim(int64_t k) { return (k + kTile - 1) / kTile; }
inline int64_t upper_tiles(int64_t k) {
  const int64_t t = tiles_per_dim(k);
  return t * (t + 1) / 2;
}
#endif

// Rows [s * rows_per_split, (s + 1) * rows_per_split) of the (implicit) row matrix go to split s.
struct SplitPlan {
  int splits;
  int64_t rows_per_split;  // a multiple of kStage
};

#ifndef __CUDACC_RTC__
// x2d[m, k] = x[m * stride_m + k * stride_k]; partial Grams go to ws [splits, upper_tiles(K), kTile, kTile].
cudaError_t launch_gram_partials(DType dtype, const void* x, int64_t rows, int64_t k, int64_t stride_m,
                                 int64_t stride_k, SplitPlan plan, void* ws, cudaStream_t stream);

#endif

// A convolution input promoted to 3 spatial dims (unit dims for 1d/2d), in element strides.
struct ConvParams {
  int64_t n, channels;
  int64_t in[3];         // input spatial sizes (D, H, W)
  int64_t out[3];        // output spatial sizes
  int64_t x_stride[5];   // strides of x as [N, C, D, H, W]
  int64_t kernel[3], stride[3], pad_lo[3], dilation[3];
  int64_t groups;
  int64_t k_per_group;   // channels / groups * prod(kernel)
};

#ifndef __CUDACC_RTC__
// Partial per-group Grams of the implicit im2col matrix: ws [groups, splits, upper_tiles(K_g), kTile, kTile].
cudaError_t launch_conv_gram_partials(DType dtype, const void* x, const ConvParams& p, SplitPlan plan, void* ws,
                                      cudaStream_t stream);

// out[g] += sum over splits (in split order) of ws[g]; each upper tile is mirrored below the diagonal.
// acc is f32 or f64 (the workspace type), out is f32 or f64 with f64 acc only into f64 out.
cudaError_t launch_reduce_upper(DType acc, DType out_dtype, const void* ws, int splits, int64_t groups, int64_t k,
                                void* out, cudaStream_t stream);

// total[b] = sum_i max(eigvals[b, i], 0), in a fixed order. dtype f32 or f64 (eigvals and total alike).
cudaError_t launch_eig_total(DType dtype, const void* eigvals, int64_t batch, int64_t k, void* total,
                             cudaStream_t stream);

#endif

// c[b] = a[b] * diag(scale) * bmat[b] with scale[k] = lambda(eigvals[b, k] / total[b], alpha) when
// eigvals is given, else 1. All operands in `dtype` (f32 or f64), addressed through element strides.
struct GemmParams {
  int64_t batch, m, n, k;
  const void* a;
  int64_t a_sb, a_sm, a_sk;
  const void* b;
  int64_t b_sb, b_sk, b_sn;
  void* c;
  int64_t c_sb, c_sm, c_sn;
  const void* eigvals;  // [batch, k] contiguous, or nullptr for no scaling
  const void* total;    // [batch]
  double alpha;         // > 0; +inf means lambda = 1
};

#ifndef __CUDACC_RTC__
cudaError_t launch_gemm(DType dtype, const GemmParams& p, cudaStream_t stream);
#endif

}  // namespace sap_cuda
