"""SAP on CIFAR-10 with synthetic and real human label noise (CIFAR-10N), beside what a user would do
instead: vanilla; ``project`` without and with noisy validation data; fine-tuning on the trusted
samples; cleanlab's K-fold workflow -> retrain on what it keeps; the package's label issues ->
retrain; retrain on clean labels. Every arm is scored on the same test images and appended to a
JSONL file as it finishes (a rerun skips arms already there); ``--summarize`` prints the tables.

    python python/cifar10.py --scale cpu --label-sets sym25 aggre random1 worse --seeds 0 1 2 --out cifar10.jsonl
    python python/cifar10.py --summarize --out cifar10.jsonl

Data: ``../shared/data/cifar10`` by default (``--data``: that tar, an image-folder tree, or torchvision's
``cifar-10-batches-py`` folder; ``--labels``: the CIFAR-10N ``.npz``). CIFAR-10N labels: CC BY-NC 4.0,
Wei et al., ICLR 2022.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from cifar10_arms import (
    Cell,
    cv_cleanlab_arm,
    finetune_arm,
    insample_cleanlab_arm,
    package_issues_arm,
    package_rules_arm,
    project_arm,
    train_fresh,
    vanilla_record,
)
from cifar10_setup import SCALES, Records, Scale, SeedData, label_sets, load_data
from cifar10_summary import summarize

ARMS = ("vanilla", "sap_plain", "sap_val", "finetune", "cleanlab_insample", "package_issues", "package_rules",
        "cleanlab_cv", "retrain_clean")
log = logging.getLogger("cifar10")


def _model_file(out: Path, key: str) -> Path:
    return out.with_suffix(".models") / f"{key}.pt"


def cached_training(out: Path, key: str, cell: Cell, fit: Callable[[], tuple[torch.nn.Module, float]]
                    ) -> tuple[torch.nn.Module, float]:
    """A trained model saved beside the JSONL (state dict and seconds), so a resumed run reuses it."""
    path = _model_file(out, key)
    if path.is_file():
        saved = torch.load(path, map_location=cell.device, weights_only=True)
        model = cell.fresh_model()
        model.load_state_dict(saved["state"])
        return model.eval(), float(saved["seconds"])
    model, seconds = fit()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": model.state_dict(), "seconds": seconds}, path)
    return model, seconds


def make_cell(scale: Scale, sd: SeedData, train_set: Any, val_set: Any, seed: int, device: str) -> Cell:
    return Cell(sd.x, train_set.labels.to(device), sd.clean.to(device), sd.x_val, val_set.labels.to(device),
                sd.x_test, sd.y_test, scale.recipe, seed, scale.folds, scale.finetune_epochs, scale.finetune_lr, device,
                {k: list(v) if isinstance(v, tuple) else v for k, v in scale.project_options})


def run_cell(args: argparse.Namespace, scale: Scale, sd: SeedData, name: str, seed: int, n10: Any,
             records: Records) -> None:
    """Every requested arm of one label set and seed that the JSONL does not hold yet."""
    cid = scale.config_id()
    todo = [a for a in args.arms if not records.has(cid, seed, "clean" if a == "retrain_clean" else name, a)]
    if not todo:
        return
    train_set, val_set = label_sets(name, sd, seed, n10)
    cell = make_cell(scale, sd, train_set, val_set, seed, args.device)
    base = {"config_id": cid, "scale": args.scale, "config": scale.__dict__ | {"recipe": scale.recipe.as_dict()},
            "seed": seed, "label_set": name, "device": args.device, "threads": torch.get_num_threads()}

    def emit(arm: str, rec: dict[str, Any] | None, label_set: str = name) -> None:
        if rec is None:
            log.info("%s seed %d %s: skipped (sap_kernels has no label_issues API in this install)", name, seed, arm)
            return
        records.add(base | {"label_set": label_set, "arm": arm, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")} | rec)
        log.info("%s seed %d %-18s test %.4f  %.1fs", label_set, seed, arm, rec.get("test_acc", float("nan")),
                 rec["seconds"])

    vanilla, v_seconds = cached_training(args.out, f"{cid}-s{seed}-{name}-vanilla", cell,
                                         lambda: train_fresh(cell, cell.x, cell.noisy))
    if "vanilla" in todo:
        emit("vanilla", vanilla_record(cell, vanilla, v_seconds))
    plain = None
    if {"sap_plain", "finetune", "package_rules"} & set(todo):
        rec, plain = project_arm(cell, vanilla, with_val=False)
        if "sap_plain" in todo:
            emit("sap_plain", rec)
    if "sap_val" in todo:
        emit("sap_val", project_arm(cell, vanilla, with_val=True)[0])
    if "finetune" in todo and plain is not None:
        emit("finetune", finetune_arm(cell, vanilla, torch.as_tensor(plain.trusted_indices, dtype=torch.long)))
    if "cleanlab_insample" in todo:
        emit("cleanlab_insample", insample_cleanlab_arm(cell, vanilla, v_seconds))
    if "package_issues" in todo:
        emit("package_issues", package_issues_arm(cell, vanilla))
    if "package_rules" in todo and plain is not None:
        emit("package_rules", package_rules_arm(cell, vanilla, plain))
    if "cleanlab_cv" in todo:
        emit("cleanlab_cv", cv_cleanlab_arm(cell))
    if "retrain_clean" in todo:
        clean, c_seconds = cached_training(args.out, f"{cid}-s{seed}-clean", cell,
                                           lambda: train_fresh(cell, cell.x, cell.clean))
        emit("retrain_clean", {"test_acc": cell.test_acc(clean), "seconds": c_seconds, "trainings": 1}, "clean")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    p.add_argument("--label-sets", nargs="+", default=["sym25", "aggre", "random1", "worse"],
                   help="symNN, asymNN, aggre, random1, random2, random3, worse")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--out", type=Path, default=Path("cifar10.jsonl"))
    p.add_argument("--data", type=Path, default=None, help="tar, image-folder tree or cifar-10-batches-py folder")
    p.add_argument("--labels", type=Path, default=None, help="cifar10n_labels.npz")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--summarize", action="store_true", help="print the tables of --out and exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.summarize:
        print(summarize(args.out))
        return 0
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    scale = SCALES[args.scale]
    records = Records(args.out)
    t0 = time.perf_counter()
    data, n10 = load_data(scale, args.seeds, args.data, args.labels, args.device)
    log.info("data ready in %.1fs (config %s)", time.perf_counter() - t0, scale.config_id())
    for seed in args.seeds:
        for name in args.label_sets:
            run_cell(args, scale, data[seed], name, seed, n10, records)
    return 0


if __name__ == "__main__":
    # Configured here, not in main(): a caller (a test) keeps its own logging and streams.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    sys.exit(main())
