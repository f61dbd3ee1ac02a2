#!/usr/bin/env bash
# One-shot GPU check: environment, Triton GPU tests, project() end to end on CUDA, Gram benchmark,
# CUDA C++ extension build and tests.
# Usage (from anywhere): OUT=/some/dir bash benchmarks/gpu_check.sh
# Writes under $OUT: env.txt, tests.log, project_gpu.log, bench.log, bench_gram.csv, tune_triton.csv,
# cuda.log, summary.txt (tune.log is folded into summary.txt: at most 8 files come back).
# Designed to finish in under 9.5 minutes on one H100/H200 (each step has its own timeout).
set -u
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="${OUT:-$ROOT/gpu_out}"
mkdir -p "$OUT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
unset TRITON_INTERPRET  # compiled kernels on the GPU, never the interpreter
PY="${PYTHON:-python3}"
START=$(date +%s)
status() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"

{
  nvidia-smi || true
  "$PY" - <<'PYEOF'
import sys, torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)
try:
    import triton; print("triton", triton.__version__)
except Exception as exc:
    print("triton missing:", exc)
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
for mod in ("pytest", "hypothesis", "cupy", "torchvision"):
    try:
        __import__(mod); print(mod, "present")
    except Exception:
        print(mod, "absent")
from sap_kernels import ops
print("conv_gram backends on cuda:", ops.available_backends("conv_gram", "cuda"))
PYEOF
} > "$OUT/env.txt" 2>&1
status "env: $(grep -E '^(device|triton|python)' "$OUT/env.txt" | tr '\n' ' ')"

# Tests: the GPU file always; the op/library files too (they run on CUDA when present), and the
# finiteness check (its NaN/inf detection by min/max reduction, on CUDA too);
# test_triton_ops.py needs hypothesis, so it is left out where that is not installed.
TESTS="tests/test_triton_gpu.py tests/test_triton_library.py tests/test_spectra_eigensolver.py"
if "$PY" -c "import hypothesis" 2>/dev/null; then TESTS="$TESTS tests/test_triton_ops.py"; fi
if "$PY" -c "import pytest" 2>/dev/null; then
  timeout 110 "$PY" -m pytest -q -p no:cacheprovider $TESTS -x --durations=15 > "$OUT/tests.log" 2>&1
  rc=$?
  status "tests rc=$rc: $(tail -n 1 "$OUT/tests.log")"
else
  status "tests skipped: pytest is not installed"
fi

timeout 90 "$PY" benchmarks/project_gpu_check.py > "$OUT/project_gpu.log" 2>&1
status "project on CUDA rc=$?: $(tail -n 1 "$OUT/project_gpu.log")"

timeout 120 "$PY" benchmarks/bench_gram.py --budget-s 85 --out "$OUT/bench_gram.csv" > "$OUT/bench.log" 2>&1
rc=$?
status "benchmark rc=$rc (table in bench.log, CSV in bench_gram.csv)"

# conv_gram tiling search (TF32): stops starting configurations after 60 s.
timeout 80 "$PY" benchmarks/tune_triton.py --out "$OUT" --budget-s 60 > /tmp/tune.log 2>&1
rc=$?
status "tiling search rc=$rc (tune_triton.csv); its table:"
cat /tmp/tune.log >> "$OUT/summary.txt"

# CUDA C++ extension: build in place (sap_kernels/_C*.so, git-ignored), then its GPU tests.
export CUDA_HOME="${CUDA_HOME:-$("$PY" -c 'import torch.utils.cpp_extension as c; print(c.CUDA_HOME or "/usr/local/cuda")')}"
[ -f "$CUDA_HOME/include/cuda_runtime_api.h" ] || export CUDA_HOME=/usr/local/cuda
# The same GPU tests then run on the CuPy/NVRTC build path of the same kernels, where CuPy is installed.
{ MAX_JOBS=8 SAP_KERNELS_BUILD_CUDA=1 timeout 100 "$PY" setup.py build_ext --inplace 2>&1 | tail -40
  SAP_KERNELS_CUDA_LOADER=extension timeout 50 "$PY" -m pytest -q -rs -p no:cacheprovider -m gpu \
    tests/test_cuda_build.py 2>&1 | tail -40
  if "$PY" -c "import cupy" 2>/dev/null; then
    echo "--- CuPy/NVRTC build path"
    SAP_KERNELS_CUDA_LOADER=cupy timeout 60 "$PY" -m pytest -q -rs -p no:cacheprovider -m gpu \
      tests/test_cuda_build.py 2>&1 | tail -40
  fi; } > "$OUT/cuda.log"
status "cuda: $(tail -n 1 "$OUT/cuda.log")"
status "done"
