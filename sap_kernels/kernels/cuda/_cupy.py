"""The CUDA kernels without a compiler: ``csrc/*.cu`` compiled at run time by NVRTC through CuPy.

EXPERIMENTAL, like the compiled extension: these launchers have never run on a GPU. They mirror
``csrc/bindings.cpp`` function for function (same names, arguments, checks, split plan, grids and
workspaces), so the backend cannot tell the two build paths apart; ``tests/test_cuda_nvrtc.py``
checks that NVRTC compiles every kernel and that both paths expose the same functions with the
same split plan. Tensors stay torch tensors: kernels receive their device pointers, run on torch's
current stream, and every workspace comes from torch's caching allocator.
"""
from __future__ import annotations

import threading
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..spec import projection_dtype
from .sources import NAME_EXPRESSIONS, header_constants, nvrtc_options, read_source

_C = header_constants()
TILE, STAGE, MAX_GRID_YZ = _C["kTile"], _C["kStage"], _C["kMaxGridYZ"]
THREADS = 256  # kThreads of tile_common.cuh: one 16 x 16 thread grid per 64 x 64 tile

_FLOAT_NAMES = {torch.float32: "float", torch.float16: "__half", torch.bfloat16: "__nv_bfloat16",
                torch.float64: "double"}

# The parameter structs of sap_kernels.h, field for field (every field is 8 bytes, so the layout
# has no padding: 27 and 19 words).
CONV_PARAMS = np.dtype([("n", "<i8"), ("channels", "<i8"), ("in", "<i8", 3), ("out", "<i8", 3),
                        ("x_stride", "<i8", 5), ("kernel", "<i8", 3), ("stride", "<i8", 3),
                        ("pad_lo", "<i8", 3), ("dilation", "<i8", 3), ("groups", "<i8"),
                        ("k_per_group", "<i8")], align=True)
GEMM_PARAMS = np.dtype([("batch", "<i8"), ("m", "<i8"), ("n", "<i8"), ("k", "<i8"),
                        ("a", "<u8"), ("a_sb", "<i8"), ("a_sm", "<i8"), ("a_sk", "<i8"),
                        ("b", "<u8"), ("b_sb", "<i8"), ("b_sk", "<i8"), ("b_sn", "<i8"),
                        ("c", "<u8"), ("c_sb", "<i8"), ("c_sm", "<i8"), ("c_sn", "<i8"),
                        ("eigvals", "<u8"), ("total", "<u8"), ("alpha", "<f8")], align=True)


def _kernel_name(kernel: str, *targs: str) -> str:
    return f"sap_cuda::detail::{kernel}<{', '.join(targs)}>"


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def tiles_per_dim(k: int) -> int:
    return cdiv(k, TILE)


def upper_tiles(k: int) -> int:
    t = tiles_per_dim(k)
    return t * (t + 1) // 2


def plan_splits(rows: int, tiles: int, acc_bytes: int) -> tuple[int, int]:
    """``(splits, rows_per_split)``: the split plan of ``bindings.cpp``, from the same constants."""
    if rows <= 0 or tiles <= 0 or acc_bytes not in (4, 8):
        raise ValueError("plan_splits: rows and tiles must be > 0 and acc_bytes 4 or 8")
    by_blocks = cdiv(_C["kTargetBlocks"], tiles)
    by_rows = cdiv(rows, _C["kMinRowsPerSplit"])
    by_memory = max(1, _C["kWorkspaceBytes"] // (tiles * TILE * TILE * acc_bytes))
    splits = max(1, min(by_blocks, by_rows, by_memory, _C["kMaxSplits"]))
    per = cdiv(cdiv(rows, splits), STAGE) * STAGE
    return cdiv(rows, per), per


def constants() -> dict[str, int]:
    """The constants of ``sap_kernels.h`` and the parameter struct sizes (as ``_C.constants()``)."""
    keys = ("kTile", "kStage", "kTargetBlocks", "kMinRowsPerSplit", "kMaxSplits", "kWorkspaceBytes", "kMaxGridYZ")
    out = {k: _C[k] for k in keys}
    out["sizeof(ConvParams)"] = CONV_PARAMS.itemsize
    out["sizeof(GemmParams)"] = GEMM_PARAMS.itemsize
    return out


class _Runtime:
    """CuPy modules per device, compiled on first use (NVRTC, for that device's architecture)."""

    def __init__(self) -> None:
        import cupy  # the optional dependency: an ImportError here says the path is unavailable

        self.cupy: Any = cupy
        self._modules: dict[tuple[int, str], Any] = {}
        self._lock = threading.Lock()

    def kernel(self, device: torch.device, source: str, name: str) -> Any:
        key = (device.index or 0, source)
        with self._lock:
            if key not in self._modules:
                with self.cupy.cuda.Device(key[0]):
                    module = self.cupy.RawModule(code=read_source(source), options=nvrtc_options(),
                                                 name_expressions=list(NAME_EXPRESSIONS[source]))
                    module.compile()
                self._modules[key] = module
        return self._modules[key].get_function(name)

    def launch(self, device: torch.device, source: str, name: str, grid: tuple[int, int, int],
               args: Sequence[Any]) -> None:
        """Run kernel ``name`` on ``device`` on torch's current stream there."""
        fn = self.kernel(device, source, name)
        stream = torch.cuda.current_stream(device)
        with self.cupy.cuda.Device(device.index or 0), self.cupy.cuda.ExternalStream(stream.cuda_stream):
            fn(grid, (THREADS, 1, 1), tuple(args))


_runtime: Optional[_Runtime] = None


def runtime() -> _Runtime:
    """The process's CuPy runtime (imports CuPy on first call)."""
    global _runtime
    if _runtime is None:
        _runtime = _Runtime()
    return _runtime


def _ptr(t: torch.Tensor) -> Any:
    """A device pointer as a kernel argument (8 bytes, like the ``T*`` parameter it fills)."""
    return np.uint64(int(t.data_ptr()))


def _kernel_dtype(t: torch.Tensor, op: str, name: str) -> str:
    if t.dtype not in _FLOAT_NAMES:
        raise TypeError(f"{op}: {name} must be float32, float16, bfloat16 or float64, got {t.dtype}")
    return _FLOAT_NAMES[t.dtype]


def _check_accumulator(x: torch.Tensor, out: torch.Tensor, shape: tuple[int, ...], op: str) -> None:
    if not x.is_cuda:
        raise ValueError(f"{op}: x must be a CUDA tensor, got one on {x.device}")
    if out.device != x.device:
        raise ValueError(f"{op}: out is on {out.device} but x is on {x.device}")
    if out.dtype not in (torch.float32, torch.float64) or (x.dtype == torch.float64 and out.dtype != x.dtype):
        raise TypeError(f"{op}: out must be float32 or float64 (float64 for float64 input), got {out.dtype}")
    if tuple(out.shape) != shape:
        raise ValueError(f"{op}: out has shape {list(out.shape)}, expected {list(shape)}")
    if not out.is_contiguous():
        raise ValueError(f"{op}: out must be contiguous")


def _reduce_into(ws: torch.Tensor, splits: int, groups: int, k: int, out: torch.Tensor) -> None:
    acc = "double" if ws.dtype == torch.float64 else "float"
    dst = "double" if out.dtype == torch.float64 else "float"
    total = groups * upper_tiles(k) * TILE * TILE
    blocks = min(cdiv(total, THREADS), 1 << 20)
    if blocks == 0:
        return
    runtime().launch(out.device, "gram_kernels.cu", _kernel_name("reduce_upper_kernel", acc, dst), (blocks, 1, 1),
                     (_ptr(ws), np.int32(splits), np.int64(groups), np.int64(k), np.int64(tiles_per_dim(k)),
                      _ptr(out)))


def gram_(x: torch.Tensor, out: torch.Tensor) -> None:
    """``out [K, K] += x^T x`` for ``x [M, K]`` (any strides); as ``_C.gram_``."""
    op = "sap_kernels::gram_"
    if x.dim() != 2:
        raise ValueError(f"{op}: x must be 2-d [rows, K], got shape {list(x.shape)}")
    xd = _kernel_dtype(x, op, "x")
    rows, k = x.shape
    _check_accumulator(x, out, (k, k), op)
    if rows == 0 or k == 0:
        return
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    tiles = upper_tiles(k)
    splits, per = plan_splits(rows, tiles, 8 if acc == torch.float64 else 4)
    ws = torch.empty(splits * tiles * TILE * TILE, dtype=acc, device=x.device)
    runtime().launch(x.device, "gram_kernels.cu", _kernel_name("gram_partials_kernel", xd), (tiles, splits, 1),
                     (_ptr(x), np.int64(rows), np.int64(k), np.int64(x.stride(0)), np.int64(x.stride(1)),
                      np.int64(per), np.int64(tiles_per_dim(k)), _ptr(ws)))
    _reduce_into(ws, splits, 1, k, out)


def _conv_params(x: torch.Tensor, kernel_size: Sequence[int], stride: Sequence[int], pad_lo: Sequence[int],
                 pad_hi: Sequence[int], dilation: Sequence[int], groups: int, op: str) -> Any:
    """``ConvParams`` of a conv input promoted to 3 spatial dims (as ``bindings.cpp`` builds it), a
    0-d structured array (``[()]`` gives the scalar passed by value)."""
    nd = x.dim() - 2
    if nd not in (1, 2, 3):
        raise ValueError(f"{op}: x must be [N, C, *spatial] with 1 to 3 spatial dims, got shape {list(x.shape)}")
    lists = {"kernel_size": kernel_size, "stride": stride, "pad_lo": pad_lo, "pad_hi": pad_hi, "dilation": dilation}
    for name, values in lists.items():
        if len(values) != nd:
            raise ValueError(f"{op}: {name} needs {nd} values, got {list(values)}")
    channels = x.shape[1]
    if groups < 1 or channels % groups:
        raise ValueError(f"{op}: groups={groups} must be >= 1 and divide the {channels} input channels")
    if groups > MAX_GRID_YZ:
        raise ValueError(f"{op}: at most {MAX_GRID_YZ} groups are supported, got {groups}")
    p = np.zeros((), dtype=CONV_PARAMS)
    p["n"], p["channels"], p["groups"] = x.shape[0], channels, groups
    p["x_stride"][0], p["x_stride"][1] = x.stride(0), x.stride(1)
    kvol = 1
    for d in range(3):
        src = d - (3 - nd)
        if src < 0:
            for field in ("in", "out", "kernel", "stride", "dilation"):
                p[field][d] = 1
            continue
        ks, st, dl, lo, hi = kernel_size[src], stride[src], dilation[src], pad_lo[src], pad_hi[src]
        if ks < 1 or st < 1 or dl < 1 or lo < 0 or hi < 0:
            raise ValueError(f"{op}: kernel_size, stride, dilation must be >= 1 and padding >= 0")
        span = x.shape[2 + src] + lo + hi - dl * (ks - 1) - 1
        if span < 0:
            raise ValueError(f"{op}: kernel (size {list(kernel_size)}, dilation {list(dilation)}) is larger than "
                             f"the padded input {list(x.shape[2:])}")
        p["in"][d], p["kernel"][d], p["stride"][d], p["dilation"][d] = x.shape[2 + src], ks, st, dl
        p["pad_lo"][d], p["x_stride"][2 + d], p["out"][d] = lo, x.stride(2 + src), span // st + 1
        kvol *= ks
    p["k_per_group"] = channels // groups * kvol
    return p


def conv_gram_(x: torch.Tensor, kernel_size: Sequence[int], stride: Sequence[int], pad_lo: Sequence[int],
               pad_hi: Sequence[int], dilation: Sequence[int], groups: int, out: torch.Tensor) -> None:
    """``out [G, K_g, K_g] += P_g^T P_g`` for a conv input ``x [N, C, *spatial]``; as ``_C.conv_gram_``."""
    op = "sap_kernels::conv_gram_"
    p = _conv_params(x, kernel_size, stride, pad_lo, pad_hi, dilation, groups, op)
    xd = _kernel_dtype(x, op, "x")
    k = int(p["k_per_group"])
    _check_accumulator(x, out, (groups, k, k), op)
    rows = int(p["n"]) * int(np.prod(p["out"]))
    if rows == 0 or k == 0:
        return
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    tiles = upper_tiles(k)
    splits, per = plan_splits(rows, groups * tiles, 8 if acc == torch.float64 else 4)
    ws = torch.empty(groups * splits * tiles * TILE * TILE, dtype=acc, device=x.device)
    runtime().launch(x.device, "gram_kernels.cu", _kernel_name("conv_gram_partials_kernel", xd),
                     (tiles, splits, groups), (_ptr(x), p[()], np.int64(per), np.int64(tiles_per_dim(k)), _ptr(ws)))
    _reduce_into(ws, splits, groups, k, out)


def _gemm(a: torch.Tensor, b: torch.Tensor, b_strides: tuple[int, int, int], c: torch.Tensor,
          eig: Optional[torch.Tensor], total: Optional[torch.Tensor], alpha: float) -> None:
    """``c[b] = a[b] diag(lambda) bmat[b]`` with ``bmat`` read from ``b`` through ``b_strides``
    (batch, k, n); the second launch of ``bindings.cpp``'s projection or the first (no scaling)."""
    batch, m, kk = a.shape
    n = c.shape[2]
    if batch == 0 or m == 0 or n == 0:
        return
    g = np.zeros((), dtype=GEMM_PARAMS)
    g["batch"], g["m"], g["n"], g["k"] = batch, m, n, kk
    g["a"], (g["a_sb"], g["a_sm"], g["a_sk"]) = a.data_ptr(), a.stride()
    g["b"], (g["b_sb"], g["b_sk"], g["b_sn"]) = b.data_ptr(), b_strides
    g["c"], (g["c_sb"], g["c_sm"], g["c_sn"]) = c.data_ptr(), c.stride()
    g["eigvals"] = 0 if eig is None else eig.data_ptr()
    g["total"] = 0 if total is None else total.data_ptr()
    g["alpha"] = alpha
    dt = "double" if a.dtype == torch.float64 else "float"
    contiguous_k = "true" if (b_strides[1] == 1 and kk > 1) else "false"
    grid = (cdiv(n, TILE), cdiv(m, TILE), batch)
    runtime().launch(a.device, "projection_kernels.cu", _kernel_name("gemm_kernel", dt, contiguous_k), grid, (g[()],))


def scaled_projection(weight: torch.Tensor, eigvals: torch.Tensor, eigvecs: torch.Tensor, alpha: float,
                      wv: Optional[torch.Tensor]) -> torch.Tensor:
    """``W V diag(lambda) V^T`` in float32 (float64 for float64 input); as ``_C.scaled_projection``."""
    op = "sap_kernels::scaled_projection"
    if not weight.is_cuda:
        raise ValueError(f"{op}: weight must be a CUDA tensor, got one on {weight.device}")
    if weight.dim() < 2:
        raise ValueError(f"{op}: weight must be [..., out, K], got shape {list(weight.shape)}")
    if not (alpha > 0):
        raise ValueError(f"{op}: alpha must be > 0 (inf keeps the weight), got {alpha}")
    for name, t in (("weight", weight), ("eigvecs", eigvecs), ("eigvals", eigvals)):
        _kernel_dtype(t, op, name)
    lead, (m, k) = tuple(weight.shape[:-2]), tuple(weight.shape[-2:])
    if tuple(eigvals.shape) != (*lead, k) or tuple(eigvecs.shape) != (*lead, k, k):
        raise ValueError(f"{op}: shapes do not match: weight {list(weight.shape)}, eigvals {list(eigvals.shape)}, "
                         f"eigvecs {list(eigvecs.shape)}")
    cdt = projection_dtype(weight.dtype, eigvecs.dtype)
    if weight.numel() == 0:
        return torch.zeros(weight.shape, dtype=cdt, device=weight.device)
    batch = int(np.prod(lead)) if lead else 1
    if batch > MAX_GRID_YZ or cdiv(m, TILE) > MAX_GRID_YZ:
        raise ValueError(f"{op}: at most {MAX_GRID_YZ} matrices and {MAX_GRID_YZ * TILE} output rows per call")
    w3 = weight.to(cdt).reshape(batch, m, k)
    v3 = eigvecs.to(cdt).reshape(batch, k, k)
    e2 = eigvals.to(cdt).reshape(batch, k).contiguous()
    total = torch.empty(batch, dtype=cdt, device=weight.device)
    dt = "double" if cdt == torch.float64 else "float"
    runtime().launch(weight.device, "projection_kernels.cu", _kernel_name("eig_total_kernel", dt), (batch, 1, 1),
                     (_ptr(e2), np.int64(k), _ptr(total)))
    if wv is not None:
        t3 = wv.to(cdt).reshape(batch, m, k)
    else:
        t3 = torch.empty(batch, m, k, dtype=cdt, device=weight.device)
        _gemm(w3, v3, (v3.stride(0), v3.stride(1), v3.stride(2)), t3, None, None, alpha)
    result = torch.empty(batch, m, k, dtype=cdt, device=weight.device)
    vt = (v3.stride(0), v3.stride(2), v3.stride(1))  # bmat[kk, n] = V[n, kk]: V^T through strides
    _gemm(t3, v3, vt, result, e2, total, alpha)
    return result.reshape(weight.shape)
