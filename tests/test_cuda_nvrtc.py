"""The CuPy build path of the CUDA backend, without a GPU: NVRTC compiles every kernel
instantiation the launchers use from the same ``csrc/*.cu`` files nvcc builds (sm_90, no register
spills), and the Python host code agrees with ``csrc/sap_kernels.h`` (constants, parameter struct
layouts). Skips only when CuPy (and with it NVRTC) is not importable. Comparing the two build
paths function by function needs the compiled extension: ``tests/test_cuda_extension.py``."""
from __future__ import annotations

import re

import pytest
import torch

pytest.importorskip("cupy", reason="CuPy is not installed (pip install cupy-cuda13x)")
from cupy.cuda import nvrtc  # noqa: E402

from sap_kernels.kernels.cuda import _cupy, sources  # noqa: E402

ARCH = "sm_90"


@pytest.fixture(scope="module", params=sorted(sources.NAME_EXPRESSIONS))
def compiled(request) -> tuple[str, dict[str, str], str]:
    """``(file, {name expression: lowered name}, ptxas log)`` of one NVRTC compile per file."""
    name = request.param
    prog = nvrtc.createProgram(sources.read_source(name), name, [], [])
    for expr in sources.NAME_EXPRESSIONS[name]:
        nvrtc.addNameExpression(prog, expr)
    try:
        nvrtc.compileProgram(prog, [*sources.nvrtc_options(ARCH), "--ptxas-options=-v"])
    except nvrtc.NVRTCError as exc:
        pytest.fail(f"NVRTC failed on {name}: {exc}\n{nvrtc.getProgramLog(prog)[-4000:]}")
    lowered = {expr: nvrtc.getLoweredName(prog, expr) for expr in sources.NAME_EXPRESSIONS[name]}
    assert len(nvrtc.getCUBIN(prog)) > 0
    return name, lowered, nvrtc.getProgramLog(prog)


def test_every_kernel_instantiation_compiles(compiled):
    name, lowered, _ = compiled
    assert all(lowered.values()), lowered
    assert len(set(lowered.values())) == len(lowered)


def test_no_register_spills_under_nvrtc(compiled):
    name, lowered, log = compiled
    spills = [int(n) for n in re.findall(r"(\d+) bytes spill stores", log)]
    assert len(spills) == len(lowered) and not any(spills), log[-3000:]


@pytest.mark.parametrize("name", sorted(sources.NAME_EXPRESSIONS))
def test_name_expressions_cover_every_global_kernel(name):
    declared = sources.global_kernels(name)
    listed = {re.match(r"sap_cuda::detail::(\w+)<", e).group(1) for e in sources.NAME_EXPRESSIONS[name]}
    assert declared == listed


def _struct_fields(struct: str) -> list[tuple[str, int]]:
    """``[(field, element count)]`` of ``struct <name> { ... };`` in sap_kernels.h."""
    body = re.search(rf"struct {struct} \{{(.*?)\}};", sources.read_source("sap_kernels.h"), re.S).group(1)
    fields = []
    for line in body.splitlines():
        line = line.split("//")[0].strip().rstrip(";")
        if not line:
            continue
        decl = re.sub(r"^(const\s+)?(int64_t|double|void\*)\s*", "", line)
        for part in decl.split(","):
            m = re.fullmatch(r"\s*(\w+)(?:\[(\d+)\])?\s*", part)
            fields.append((m.group(1), int(m.group(2) or 1)))
    return fields


@pytest.mark.parametrize("struct,dtype", [("ConvParams", _cupy.CONV_PARAMS), ("GemmParams", _cupy.GEMM_PARAMS)])
def test_parameter_structs_match_the_header(struct, dtype):
    """Passed by value to the kernels: same fields, order and sizes (all 8-byte: no padding)."""
    ours = [(n, int(dtype.fields[n][0].shape[0]) if dtype.fields[n][0].shape else 1) for n in dtype.names]
    assert ours == _struct_fields(struct)
    assert dtype.itemsize == 8 * sum(c for _, c in ours)


def test_host_constants_come_from_the_header():
    c = sources.header_constants()
    assert {"kTile", "kStage", "kTargetBlocks", "kMinRowsPerSplit", "kMaxSplits", "kWorkspaceBytes",
            "kMaxGridYZ"} <= set(c)
    assert _cupy.TILE == c["kTile"] == 64 and c["kWorkspaceBytes"] == 256 * 2**20


def test_conv_params_match_the_geometry():
    from sap_kernels.kernels.spec import conv_geometry

    x = torch.empty(3, 6, 11, 12).contiguous(memory_format=torch.channels_last)
    geom = conv_geometry(x.shape, (3, 2), stride=(2, 1), padding="valid", dilation=(1, 2), groups=3)
    p = _cupy._conv_params(x, geom.kernel_size, geom.stride, geom.pad_lo, geom.pad_hi, geom.dilation, 3, "t")
    assert tuple(p["out"]) == (1, *geom.out_spatial) and int(p["k_per_group"]) == geom.k_per_group
    assert tuple(p["x_stride"]) == (x.stride(0), x.stride(1), 0, x.stride(2), x.stride(3))
    with pytest.raises(ValueError, match="groups=4"):
        _cupy._conv_params(x, (3, 3), (1, 1), (0, 0), (0, 0), (1, 1), 4, "t")


def test_split_plan_properties():
    for rows in (1, 17, 4096, 10**6):
        for tiles in (1, 36, 10_000):
            splits, per = _cupy.plan_splits(rows, tiles, 4)
            assert per % _cupy.STAGE == 0 and (splits - 1) * per < rows <= splits * per
    with pytest.raises(ValueError, match="acc_bytes"):
        _cupy.plan_splits(10, 1, 2)
