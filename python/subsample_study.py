"""Does subsampling activation rows, as the published SAP code does, change the accuracy SAP reaches?

On scikit-learn digits (the CNN of ``sap_kernels.demo``, trained to memorise symmetric label
noise), per seed and noise rate, the same trusted samples (``sap_kernels.select_trusted``) are
projected two ways over the same alpha grid (``project``'s default grid, 1 .. 1e6):

- every row: ``sap_kernels.collect`` -> ``Statistics.decompose`` -> ``sap_kernels.apply``, what
  ``project`` does (every patch row of every trusted sample);
- subsampled: the published pipeline's rows and SVD (``benchmarks/authors_pipeline.py``:
  per batch of ``--batch`` samples each layer keeps ``int(max_samples / (N / batch)) + 1`` random
  rows, then at most ``max_samples``; float32 SVD of the ``K x rows`` matrix; input-side
  projection), at ``max_samples`` 50,000 (the published default) and smaller budgets.

Alpha is picked on the noisy validation split by ``project``'s rule (best score averaged over
+-half a decade, the unchanged model when it scores higher) for both; the test accuracy at that
alpha and at the best test alpha is reported, mean +- sample std over seeds.

At ~270 trusted 8x8 samples no digits layer sees 50,000 rows (the widest, the first two convs,
see 64 rows per sample: ~17,000), so at the published default the two ways use the same rows and
differ only in rounding; the smaller budgets show what subsampling does where it bites. The
script prints this table of rows per layer too.

    python python/subsample_study.py                                    # 3 seeds, 25 % and 40 %: a few minutes
    python python/subsample_study.py --seeds 0 --noise-rate 0.25        # one seed
    python python/subsample_study.py --max-samples 50000 2000 500 --batch 64 --out study.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch

import sap_kernels
from sap_kernels.demo.data import tensor_loader
from sap_kernels.demo.experiment import ExperimentConfig, make_noisy_digits, train_clean, train_vanilla
from sap_kernels.demo.train import accuracy
from sap_kernels.sap.alpha.rules import best_alpha
from sap_kernels.sap.options.grid import default_alphas

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import authors_pipeline as ap  # noqa: E402


def _sweep(project_at, model, data) -> dict:
    """Validation (noisy labels) and test accuracy of the unchanged model (key inf) and at every alpha."""
    s, val_y = data.splits, data.val_noise.labels
    val = {math.inf: accuracy(model, s.x_val, val_y)}
    test = {math.inf: accuracy(model, s.x_test, s.y_test)}
    for a in default_alphas():
        m = project_at(a)
        val[a], test[a] = accuracy(m, s.x_val, val_y), accuracy(m, s.x_test, s.y_test)
    pick = best_alpha(val)
    best = max(test, key=lambda a: (test[a], a))
    return {"alpha": pick, "test": test[pick], "best_alpha": best, "best_test": test[best]}


def run_one(seed: int, rate: float, budgets: list[int], batch: int, clean_cache: dict) -> dict:
    config = ExperimentConfig(noise_rate=rate, seed=seed)
    data = make_noisy_digits(config)
    s = data.splits
    model = train_vanilla(data, config)
    if seed not in clean_cache:
        clean_cache[seed] = accuracy(train_clean(data, config), s.x_test, s.y_test)
    trusted = sap_kernels.select_trusted(model, tensor_loader(s.x_train, data.train_noise.labels), progress=False)
    inputs = torch.cat([x for x, _ in trusted.samples.batches()])

    spectra = sap_kernels.collect(model, trusted, progress=False).decompose(progress=False)
    arms = {"every row": _sweep(lambda a: sap_kernels.apply(model, spectra, a), model, data)}
    rows_per_layer = {"every row": None}
    for budget in budgets:
        rows = ap.collect_rows(model, inputs, max_samples=budget, batch_size=batch, output_side=False,
                               generator=torch.Generator().manual_seed(seed))
        bases = ap.svd_bases(rows.pre)
        arms[budget] = _sweep(lambda a: ap.projected_copy(model, bases, a), model, data)
        rows_per_layer[budget] = {k: r.shape[0] for k, r in rows.pre.items()}
    every = ap.collect_rows(model, inputs, max_samples=10**12, batch_size=batch, output_side=False)
    rows_per_layer["every row"] = {k: r.shape[0] for k, r in every.pre.items()}
    kinds = dict(model.named_modules())
    k = {f"{key} ({type(kinds[key]).__name__})": r.shape[1] for key, r in every.pre.items()}
    rows_per_layer = {a: {f"{key} ({type(kinds[key]).__name__})": v for key, v in per.items()}
                      for a, per in rows_per_layer.items()}
    return {"seed": seed, "noise_rate": rate, "n_trusted": len(trusted), "vanilla": accuracy(model, s.x_test, s.y_test),
            "retrain": clean_cache[seed], "arms": {str(a): v for a, v in arms.items()},
            "rows": {str(a): v for a, v in rows_per_layer.items()}, "k": k}


def _ms(values: list[float]) -> str:
    pct = [100 * v for v in values]
    if len(pct) == 1:
        return f"{pct[0]:.2f}"
    return f"{statistics.mean(pct):.2f} ± {statistics.stdev(pct):.2f}"


def report(results: list[dict], budgets: list[int], batch: int) -> str:
    rates = sorted({r["noise_rate"] for r in results})
    seeds = sorted({r["seed"] for r in results})
    names = ["every row"] + [str(b) for b in budgets]
    label = {"every row": "every row (`project`)"}
    label.update({str(b): f"subsampled, max_samples {b:,}" + (" (published default)" if b == ap.MAX_SAMPLES else "")
                  for b in budgets})
    out = [f"Test accuracy %, mean ± sample std over seeds {', '.join(map(str, seeds))}; symmetric noise; "
           f"every arm projects the same trusted samples over the same alpha grid; the published per-batch row budget "
           f"with batches of {batch}.",
           "", "| rows | " + " | ".join(f"{100 * r:g} % noise: val-picked alpha | {100 * r:g} %: best test alpha"
                                         for r in rates) + " |",
           "|---|" + "---|---|" * len(rates)]
    by = {rate: [r for r in results if r["noise_rate"] == rate] for rate in rates}
    out.append("| vanilla (noisy labels) | " + " | ".join(f"{_ms([r['vanilla'] for r in by[rate]])} | "
                                                         for rate in rates) + "|")
    for name in names:
        cells = []
        for rate in rates:
            cells.append(_ms([r["arms"][name]["test"] for r in by[rate]]))
            cells.append(_ms([r["arms"][name]["best_test"] for r in by[rate]]))
        out.append(f"| {label[name]} | " + " | ".join(cells) + " |")
    out.append("| retrain on clean labels | " + " | ".join(f"{_ms([r['retrain'] for r in by[rate]])} | "
                                                          for rate in rates) + "|")
    out += ["", "Alphas picked on the noisy validation split (per seed):", ""]
    for name in names:
        picks = "; ".join(f"{100 * rate:g} %: " + ", ".join(f"{r['arms'][name]['alpha']:.3g}" for r in by[rate])
                          for rate in rates)
        out.append(f"- {label[name]}: {picks}")
    out += ["", "Paired difference to every row, test accuracy at the val-picked alpha, points (per seed):", ""]
    for name in names[1:]:
        diffs = "; ".join(f"{100 * rate:g} %: " + ", ".join(
            f"{100 * (r['arms'][name]['test'] - r['arms']['every row']['test']):+.2f}" for r in by[rate])
            for rate in rates)
        out.append(f"- {label[name]}: {diffs}")
    first = results[0]
    every_rows = first["rows"]["every row"]
    out += [""]
    for b in budgets:
        cut = [key for key, n in first["rows"][str(b)].items() if n < every_rows[key]]
        out.append(f"- max_samples {b:,}: " + (f"rows subsampled in {', '.join(cut)}" if cut else
                   "no layer lost a row (every batch's rows fit the per-batch budget), so this arm projects with "
                   "the same rows as every row and differs only in rounding (float32 SVD of the rows against the "
                   "package's Gram eigendecomposition)"))
    out += ["", f"Rows per layer (seed {first['seed']}, {100 * first['noise_rate']:g} % noise, "
            f"{first['n_trusted']} trusted samples):", "",
            "| layer | K | " + " | ".join(label[n] for n in names) + " |", "|---|---|" + "---|" * len(names)]
    for key in first["rows"]["every row"]:
        out.append(f"| {key} | {first['k'][key]} | " + " | ".join(f"{first['rows'][n][key]:,}" for n in names) + " |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--noise-rate", type=float, nargs="+", default=[0.25, 0.4])
    p.add_argument("--max-samples", type=int, nargs="+", default=[ap.MAX_SAMPLES, 2000, 500],
                   help="published row budgets to compare with every row")
    p.add_argument("--batch", type=int, default=64, help="published --max-batch-size (the CIFAR script's 64)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="write the per-seed results as JSON")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    results, clean = [], {}
    for seed in args.seeds:
        for rate in args.noise_rate:
            r = run_one(seed, rate, args.max_samples, args.batch, clean)
            results.append(r)
            arms = ", ".join(f"{name} {100 * a['test']:.2f} (alpha {a['alpha']:.3g})" for name, a in r["arms"].items())
            print(f"seed {seed}, {100 * rate:g} % noise: vanilla {100 * r['vanilla']:.2f}; {arms}", flush=True)
    print()
    print(report(results, args.max_samples, args.batch))
    print(f"\n{time.perf_counter() - t0:.0f} s, {args.threads} thread(s), torch {torch.__version__}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1, default=float)


if __name__ == "__main__":
    main()
