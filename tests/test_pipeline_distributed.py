"""SAP across two processes (gloo, CPU): the same weights, trusted samples and alpha as one process
on the concatenated data, with uneven shards, a rank without trusted samples, class balancing, the
rows route, a fixed alpha, no validation data; and a rank that raises makes every rank raise."""
from __future__ import annotations

import math
import multiprocessing
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import distributed_cases as cases  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")

WORLD = 2


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """rank -> case -> result of the 2-process run (all cases in one spawn)."""
    tmp = tmp_path_factory.mktemp("dist")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=cases.worker, args=(r, WORLD, str(tmp / "init"), str(tmp))) for r in range(WORLD)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
    assert not hung, "a rank hung"
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).double().norm() / b.double().norm().clamp_min(1e-300))


@pytest.mark.parametrize("name", cases.CASES)
def test_two_ranks_give_the_single_process_result(runs, name):
    want = cases.single(name)
    for rank in range(WORLD):
        got = runs[rank][name]
        assert "error" not in got, got.get("error")
        assert torch.equal(got["trusted"], want["trusted"]), (rank, got["trusted"], want["trusted"])
        assert got["alpha"] == want["alpha"] or (math.isinf(got["alpha"]) and math.isinf(want["alpha"]))
        assert got["scores"].keys() == want["scores"].keys()
        assert all(abs(got["scores"][a] - want["scores"][a]) < 1e-12 for a in want["scores"])
        assert got["methods"] == want["methods"]
        for k, w in want["weights"].items():
            assert _rel(got["weights"][k], w) < 1e-6, (rank, k, _rel(got["weights"][k], w))


def test_cases_exercise_what_they_claim(runs):
    empty = cases.single("empty_rank")
    assert bool((empty["trusted"] < cases.SPLIT).all())  # rank 1 holds none of the trusted samples
    assert cases.single("rows")["methods"]["fc"] == "rows"
    assert "solve" in set(cases.single("fixed")["methods"].values())


def test_a_failing_rank_makes_every_rank_raise_and_write_nothing(runs):
    for rank in range(WORLD):
        got = runs[rank]["failing"]
        assert got["raised"] is not None and got["unchanged"], got
    assert "labels out of range" in runs[1]["failing"]["message"]
    assert runs[0]["failing"]["raised"] == "RankFailed"


@pytest.mark.parametrize("name", ["issues", "issues_sampler"])
def test_label_issues_on_two_ranks_cover_every_sample_once(runs, name):
    """Every rank ends with the single-process table: the same positions, labels, flags and rule, and
    probabilities and label quality to rounding (a sharded loader by pass order, a DistributedSampler by index)."""
    want = cases.issues_single()
    for rank in range(WORLD):
        got = runs[rank][name]
        assert "error" not in got, got.get("error")
        assert torch.equal(got["positions"], want["positions"]), (rank, got["positions"])
        assert torch.equal(got["labels"], want["labels"])
        assert float((got["probs"] - want["probs"]).abs().max()) < 1e-9
        assert torch.equal(got["flags"], want["flags"])
        # the neighbours' vote ran on every rank's gathered head inputs, not on a shard's
        assert got["rule"] == want["rule"] == "neighbours"
        assert float((got["quality"] - want["quality"]).abs().max()) < 1e-9
