"""Cases for tests/test_pipeline_distributed.py: each builds the same model and data on every process,
shards the data unevenly, and runs ``project`` on its shard (in a process group) or on all of it.

Run by spawned workers (``worker``) and by the test itself (``single``); a result is what the
test compares: the weights, the trusted indices, the alpha and the scores.
"""
from __future__ import annotations

import os
import traceback
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sap_kernels

SPLIT = 37  # rank 0 gets samples [0, 37), rank 1 the rest: uneven shards


class Net(nn.Module):
    def __init__(self, wide: int = 6) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, wide)
        self.head = nn.Linear(wide, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x)).flatten(1)
        return self.head(torch.relu(self.fc(h)))


def data(n: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, 4, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def model(wide: int = 6) -> nn.Module:
    torch.manual_seed(0)
    return Net(wide).double()  # float64: the comparison is not blurred by summation order


def _loader(x: torch.Tensor, y: torch.Tensor) -> DataLoader:
    return DataLoader(TensorDataset(x.double(), y), batch_size=8)


def _shard(t: torch.Tensor, rank: int, split: int) -> torch.Tensor:
    return t[:split] if rank == 0 else t[split:]


def _hostile_labels(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Labels the model finds least likely on samples SPLIT.. (so rank 1 gets no trusted sample)."""
    with torch.no_grad():
        worst = m.eval()(x.double()).argmin(1)
    return torch.where(torch.arange(len(y)) >= SPLIT, worst, y)


def _case(name: str) -> dict[str, Any]:
    """Model, data and project() options of a case."""
    x, y = data()
    m = model(400 if name == "rows" else 6)
    if name == "empty_rank":
        y = _hostile_labels(m, x, y)
    opts: dict[str, Any] = {"n_trusted": 20, "alphas": [1.0, 10.0, 100.0, 1e4]}
    vx, vy = data(30, seed=1)
    if name == "balanced":
        opts["class_balanced"] = True
    if name in ("empty_rank", "rows"):
        opts["class_balanced"] = False
    if name == "fixed":
        opts = {"n_trusted": 25, "alpha": 300.0}
    if name == "no_val":
        opts = {"n_trusted": 20, "alphas": [1.0, 10.0, 100.0, 1e4]}
        vx = vy = None
    return {"model": m, "x": x, "y": y, "vx": vx, "vy": vy, "opts": opts}


CASES = ("uneven", "balanced", "empty_rank", "rows", "fixed", "no_val")


def _summary(res: sap_kernels.SAPResult) -> dict[str, Any]:
    return {"weights": {k: v.detach().clone() for k, v in res.model.state_dict().items()},
            "trusted": res.trusted_indices.clone(), "alpha": res.alpha, "scores": dict(res.scores),
            "methods": {r.name: r.method for r in res.layers}}


def single(name: str) -> dict[str, Any]:
    """The case on one process, all data."""
    c = _case(name)
    val = None if c["vx"] is None else _loader(c["vx"], c["vy"])
    res = sap_kernels.project(c["model"], _loader(c["x"], c["y"]), val_loader=val, progress=False,
                              distributed=False, **c["opts"])
    return _summary(res)


def sharded(name: str, rank: int) -> dict[str, Any]:
    """The case on this rank's shard of the data (training and validation)."""
    c = _case(name)
    x, y = _shard(c["x"], rank, SPLIT), _shard(c["y"], rank, SPLIT)
    val = None if c["vx"] is None else _loader(_shard(c["vx"], rank, 11), _shard(c["vy"], rank, 11))
    res = sap_kernels.project(c["model"], _loader(x, y), val_loader=val, progress=False, **c["opts"])
    return _summary(res)


def failing(rank: int) -> dict[str, Any]:
    """Rank 1's validation labels are out of range: every rank must raise and keep its model."""
    c = _case("uneven")
    m = c["model"]
    before = {k: v.clone() for k, v in m.state_dict().items()}
    vy = _shard(c["vy"], rank, 11)
    if rank == 1:
        vy = vy + 50
    val = _loader(_shard(c["vx"], rank, 11), vy)
    try:
        sap_kernels.project(m, _loader(_shard(c["x"], rank, SPLIT), _shard(c["y"], rank, SPLIT)), val_loader=val,
                            inplace=True, progress=False, **c["opts"])
    except Exception as exc:
        unchanged = all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
        return {"raised": type(exc).__name__, "message": str(exc), "unchanged": unchanged}
    return {"raised": None}


def _issues_summary(li: sap_kernels.LabelIssues) -> dict[str, Any]:
    return {"positions": li.positions, "labels": li.given_labels, "probs": li.probabilities, "flags": li.is_issue,
            "quality": li.label_quality, "rule": li.rule}


def issues_single() -> dict[str, Any]:
    """Label issues on one process: the corrected model scores all samples."""
    c = _case("fixed")
    loader = _loader(c["x"], c["y"])
    res = sap_kernels.project(c["model"], loader, progress=False, distributed=False, **c["opts"])
    return _issues_summary(res.label_issues(loader, progress=False, distributed=False))


def issues_sharded(rank: int) -> dict[str, Any]:
    """Label issues from each rank's uneven shard (positions in the concatenated shards)."""
    c = _case("fixed")
    loader = _loader(_shard(c["x"], rank, SPLIT), _shard(c["y"], rank, SPLIT))
    res = sap_kernels.project(c["model"], loader, progress=False, **c["opts"])
    return _issues_summary(res.label_issues(loader, progress=False))


def issues_sampler() -> dict[str, Any]:
    """A shuffling DistributedSampler over the whole data set: positions are dataset indices."""
    c = _case("fixed")
    ds = TensorDataset(c["x"].double(), c["y"])
    sampler = torch.utils.data.DistributedSampler(ds, shuffle=True, seed=5)
    loader = DataLoader(ds, batch_size=8, sampler=sampler)
    res = sap_kernels.project(c["model"], loader, progress=False, **c["opts"])
    return _issues_summary(res.label_issues(loader, progress=False))


def worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """Spawned process: join the group, run every case, save what it got."""
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    results: dict[str, Any] = {}
    runs: list[tuple[str, Callable[[], dict[str, Any]]]] = [(n, lambda n=n: sharded(n, rank)) for n in CASES]
    runs.append(("failing", lambda: failing(rank)))
    runs += [("issues", lambda: issues_sharded(rank)), ("issues_sampler", issues_sampler)]
    try:
        for name, fn in runs:
            try:
                results[name] = fn()
            except Exception:
                results[name] = {"error": traceback.format_exc()}
    finally:
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        torch.distributed.destroy_process_group()
