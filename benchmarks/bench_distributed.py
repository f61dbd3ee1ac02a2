#!/usr/bin/env python3
"""SAP on 1 process against N processes (gloo, one CPU thread each), time per phase, side by side.

ResNet-18 / 32x32 (random weights), ``--n`` samples all trusted, a fixed alpha. Each process
runs the public phases on its shard: ``select_trusted`` -> ``collect`` -> ``decompose`` ->
``apply``; a phase's time is the slowest rank's (they end together at the next collective).
Then the decomposition phase alone on the same statistics with 1, 2 and 4 ranks.

    python benchmarks/bench_distributed.py                  # 1000 samples, 1 vs 2 processes
    python benchmarks/bench_distributed.py --n 200 --decompose-ranks 1 2
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from typing import Any, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ALPHA = 1e4


def _setup(threads: int) -> tuple[Any, Any]:
    import torch

    sys.path.insert(0, HERE)
    from resnet_cifar import ResNet18

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    return torch, ResNet18()


def _data(n: int, rank: int, world: int) -> Any:
    import torch

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
    lo, hi = rank * n // world, (rank + 1) * n // world
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[lo:hi], y[lo:hi]), batch_size=50)


def _timed(times: dict[str, float], name: str, fn: Any) -> Any:
    t0 = time.perf_counter()
    out = fn()
    times[name] = time.perf_counter() - t0
    return out


def phases(rank: int, world: int, init: Optional[str], out: str, n: int, stats_path: Optional[str]) -> None:
    """One process of the run: every phase timed; saves ``{phase: seconds}`` (and the statistics)."""
    torch, model = _setup(1)
    import sap_kernels

    if init is not None:
        torch.distributed.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    times: dict[str, float] = {}
    loader = _data(n, rank, world)
    trusted = _timed(times, "rank", lambda: sap_kernels.select_trusted(model, loader, n_trusted=n,
                                                                        class_balanced=False, progress=False))
    stats = _timed(times, "collect", lambda: sap_kernels.collect(model, trusted, progress=False))
    if stats_path is not None:
        stats.save(stats_path)
    spectra = _timed(times, "decompose", lambda: stats.decompose())
    _timed(times, "apply", lambda: sap_kernels.apply(model, spectra, ALPHA))
    with open(os.path.join(out, f"times{rank}.json"), "w") as f:
        json.dump(times, f)
    if init is not None:
        torch.distributed.destroy_process_group()


def decompose_only(rank: int, world: int, init: Optional[str], out: str, stats_path: str) -> None:
    torch, _ = _setup(1)
    import sap_kernels

    if init is not None:
        torch.distributed.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    stats = sap_kernels.Statistics.load(stats_path)
    t0 = time.perf_counter()
    stats.decompose()
    with open(os.path.join(out, f"times{rank}.json"), "w") as f:
        json.dump({"decompose": time.perf_counter() - t0}, f)
    if init is not None:
        torch.distributed.destroy_process_group()


def _launch(target: Any, world: int, args: tuple, out: str) -> dict[str, float]:
    """Run ``target(rank, world, init, out, *args)`` on ``world`` processes; the slowest per phase."""
    ctx = multiprocessing.get_context("spawn")
    init = os.path.join(out, "init") if world > 1 else None
    procs = [ctx.Process(target=target, args=(r, world, init, out, *args)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError(f"a rank failed (exit codes {[p.exitcode for p in procs]})")
    per_rank = [json.load(open(os.path.join(out, f"times{r}.json"))) for r in range(world)]
    return {k: max(t[k] for t in per_rank) for k in per_rank[0]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="samples, all trusted (default %(default)s)")
    ap.add_argument("--world", type=int, default=2, help="processes to compare with one (default %(default)s)")
    ap.add_argument("--decompose-ranks", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args(argv)
    print(f"# ResNet-18/32x32, {args.n} trusted samples, alpha {ALPHA:g}, 1 thread per process, "
          f"{os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        stats_path = os.path.join(tmp, "stats.safetensors")
        runs = {}
        for world in (1, args.world):
            out = tempfile.mkdtemp(dir=tmp)
            runs[world] = _launch(phases, world, (args.n, stats_path if world == 1 else None), out)
            print(f"  {world} process(es) done", flush=True)
        print(f"\n| phase | 1 process (s) | {args.world} processes (s) | ratio |\n|---|---|---|---|")
        for k in runs[1]:
            print(f"| {k} | {runs[1][k]:.2f} | {runs[args.world][k]:.2f} | {runs[args.world][k] / runs[1][k]:.2f} |")
        total = {w: sum(t.values()) for w, t in runs.items()}
        print(f"| total | {total[1]:.2f} | {total[args.world]:.2f} | {total[args.world] / total[1]:.2f} |")
        print("\n| ranks | decompose (s) | ratio to 1 |\n|---|---|---|")
        base = None
        for world in args.decompose_ranks:
            out = tempfile.mkdtemp(dir=tmp)
            t = _launch(decompose_only, world, (stats_path,), out)["decompose"]
            base = base or t
            print(f"| {world} | {t:.2f} | {t / base:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
